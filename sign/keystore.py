"""The on-disk key store: CAs, agency keys and certificates, revocations, TLS identities.

Layout under ``settings.keys_dir`` (default ``<home>/keys``)::

    anchors/<side>.pem            the two roots (court, police): the trust anchors
    ca/<name>.cert.pem            root and issuing-CA certificates
    ca/<name>.key.pem             their private keys (demo only: a real root stays offline)
    certs/<key id>.pem            every agency certificate ever issued (old ones keep
                                  verifying what they signed while valid)
    private/<key id>.key.pem      agency private keys
    agencies.json                 per agency: name, role, current key id, all key ids
    revocations.json              the revocations issued here
    tls/                          TLS identities for mutual TLS with the broker: one per
                                  agency, the admin and broker nodes 1-3, and the CA
                                  certificates each listener trusts (layout in
                                  :mod:`schemas.tls_layout`, profile in :mod:`sign.tls_identity`)

Signing keys stay signing keys: a TLS identity has a key of its own, renewed with the
agency's signing key (``rotate``) and removed when its current signing key is revoked.

Every private key is PKCS#8 PEM encrypted with ``BestAvailableEncryption`` under
``settings.key_passphrase`` and created with mode 0600 by ``os.open`` (never chmod after,
so there is no moment where another user could read it). Index files are replaced
atomically (write a temporary file, then ``os.replace``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.settings import Settings, get_settings
from schemas.tls_layout import SIDES, TlsIdentityFiles, TlsLayout
from sign.ca import CertificateAuthority
from sign.errors import KeyStoreError
from sign.events import EventSigner
from sign.identity import KEY_ID_PATTERN, key_id_of
from sign.tls_identity import TlsHolder, infrastructure_holders, issue_tls_identity
from sign.trust import Revocation, TrustStore
from sign.trustset import TrustSet

__all__ = ["AgencyLike", "KeyEntry", "KeyStore"]

_CA_FILES = {"court-root": ("root", "court"), "police-root": ("root", "police")}
_CA_FILES.update({name: ("issuer", name) for name in ("court", "bus", "police")})


class AgencyLike(Protocol):
    """What the key store needs from an agency (``schemas.agencies.Agency`` fits)."""

    @property
    def code(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One agency key as ``zf801 keys list`` shows it."""

    agency_code: str
    agency_name: str
    role: str
    key_id: str
    not_before: datetime
    not_after: datetime
    current: bool
    revocation: Revocation | None


class KeyStore:
    """Files of one trust set; every method re-reads the index, so CLI calls compose."""

    def __init__(self, directory: Path, passphrase: bytes, cert_lifetime: timedelta) -> None:
        self.directory = directory
        self._passphrase = passphrase
        self._cert_lifetime = cert_lifetime

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> KeyStore:
        settings = settings or get_settings()
        return cls(
            settings.keys_dir,
            settings.key_passphrase.get_secret_value().encode("utf-8"),
            timedelta(days=settings.agency_cert_days),
        )

    def exists(self) -> bool:
        return (self.directory / "agencies.json").is_file()

    def _not_initialised(self) -> KeyStoreError:
        return KeyStoreError(f"key store {self.directory}: not initialised (zf801 keys init)")

    def _require_initialised(self) -> None:
        if not self.exists():
            raise self._not_initialised()

    @property
    def tls_layout(self) -> TlsLayout:
        return TlsLayout.under(self.directory)

    def init(
        self, agencies: Iterable[AgencyLike], now: datetime, force: bool = False
    ) -> list[KeyEntry]:
        """Create both roots, the issuing CAs, a key + certificate per agency, and the TLS
        identities of every agency, the admin and broker nodes 1-3."""
        if self.exists() and not force:
            raise KeyStoreError(f"key store {self.directory}: already initialised (use --force)")
        # TLS material of a replaced trust set must not linger: its CAs are gone.
        shutil.rmtree(self.tls_layout.root, ignore_errors=True)
        for sub in ("anchors", "ca", "certs", "private"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
            for stale in (self.directory / sub).glob("*.pem"):
                stale.unlink()  # --force: keys of a replaced trust set must not linger
        trust_set = TrustSet.create(now)
        for file_name, (kind, name) in _CA_FILES.items():
            ca = trust_set.roots[name] if kind == "root" else trust_set.issuers[name]
            self._write_ca(file_name, ca, overwrite=True)
        for side, root in trust_set.roots.items():
            _write_public(self.directory / "anchors" / f"{side}.pem", _pem(root.certificate))
        self._write_json("agencies.json", {})
        self._write_json("revocations.json", [])
        holders = []
        for agency in agencies:
            self._issue_into(trust_set, agency.code, agency.name, agency.role, now)
            holders.append(TlsHolder(agency.code, str(agency.role)))
        self._issue_tls(trust_set, [*holders, *infrastructure_holders()], now)
        return self.entries()

    def issue(self, agency_code: str, agency_name: str, role: str, now: datetime) -> KeyEntry:
        """The first key of an agency and its TLS identity (``rotate`` replaces them)."""
        if agency_code in self._index():
            raise KeyStoreError(f"agency {agency_code}: already has a key (use rotate)")
        trust_set = self._trust_set()
        key_id = self._issue_into(trust_set, agency_code, agency_name, role, now)
        self._issue_tls(trust_set, [TlsHolder(agency_code, role)], now)
        return self._entry(key_id, self._index(), self.revocations())

    def rotate(self, agency_code: str, now: datetime) -> KeyEntry:
        """A new signing key and certificate, and a new TLS identity. The old signing
        certificate stays for verification; the old TLS files are replaced (a client
        reconnecting picks up the new ones; the principal, ``User:<code>``, is the same)."""
        record = self._agency(agency_code)
        trust_set = self._trust_set()
        key_id = self._issue_into(trust_set, agency_code, record["name"], record["role"], now)
        self._issue_tls(trust_set, [TlsHolder(agency_code, record["role"])], now)
        return self._entry(key_id, self._index(), self.revocations())

    def revoke(
        self, key_id: str, at: datetime, reason: str, now: datetime, revoked_by: str
    ) -> Revocation:
        """Revoke a key for events at or after ``at``. Revoking an agency's current key also
        removes its TLS identity files (``rotate`` issues new ones); revoking a rotated-out
        key leaves the TLS identity, which ``rotate`` already renewed.

        The broker cannot see the revocation of a TLS certificate (no CRL is published): a
        copy of the removed files still completes the handshake until the certificate
        expires. The ACLs are the enforcement point: ``zf801 acls apply --prune`` after a
        revoke removes the principal's access."""
        entry = self._entry(key_id, self._index(), [])  # refuses unknown key ids
        revocation = Revocation(
            key_id=key_id, revoked_at=at, reason=reason, recorded_at=now, revoked_by=revoked_by
        )
        rows = self._read_json("revocations.json")
        rows.append(_revocation_row(revocation))
        self._write_json("revocations.json", rows)
        if entry.current:
            self._remove_tls(entry.agency_code)
        return revocation

    def tls_identity(self, name: str) -> TlsIdentityFiles:
        """The chain and key files of the TLS identity of an agency, a broker node
        (``node-<id>``) or the admin; KeyStoreError when there is none."""
        files = self.tls_layout.identity(name)
        if not files.exists():
            raise KeyStoreError(
                f"{name}: no TLS identity in {self.tls_layout.root} "
                "(zf801 keys issue or rotate; a revoked agency has none)"
            )
        return files

    def has_tls_identity(self, name: str) -> bool:
        return self.tls_layout.identity(name).exists()

    def ensure_tls(self, now: datetime) -> int:
        """Issue the TLS identities a store made before mutual TLS lacks: every agency
        whose current key is not revoked, the admin and broker nodes 1-3, and the trusted
        CA files. Returns how many identities were issued; a second call issues none."""
        revoked = {r.key_id for r in self.revocations()}
        agencies = [
            TlsHolder(code, record["role"])
            for code, record in self._index().items()
            if record["current"] not in revoked
        ]
        missing = [h for h in [*agencies, *infrastructure_holders()] if not self._has_tls(h)]
        if missing or not all(path.is_file() for path in self._tls_trust_files()):
            self._issue_tls(self._trust_set(), missing, now)
        return len(missing)

    def entries(self) -> list[KeyEntry]:
        index, revocations = self._index(), self.revocations()
        return [
            self._entry(key_id, index, revocations)
            for record in index.values()
            for key_id in record["keys"]
        ]

    def revocations(self) -> list[Revocation]:
        return [_revocation_from_row(row) for row in self._read_json("revocations.json")]

    def current_key_id(self, agency_code: str) -> str:
        return str(self._agency(agency_code)["current"])

    def certificate(self, key_id: str) -> x509.Certificate:
        path = self.directory / "certs" / f"{_checked_key_id(key_id)}.pem"
        if not path.is_file():
            raise KeyStoreError(f"key id {key_id}: no certificate in {self.directory}")
        return x509.load_pem_x509_certificate(path.read_bytes())

    def private_key(self, key_id: str) -> Ed25519PrivateKey:
        return self._load_key(self.directory / "private" / f"{_checked_key_id(key_id)}.key.pem")

    def signer_for(self, agency_code: str) -> EventSigner:
        """A signer with the agency's current key."""
        return EventSigner(self.private_key(self.current_key_id(agency_code)), agency_code)

    def state_secret(self, agency_code: str) -> bytes:
        """A 32-byte secret of a bus processor for MACs over its own state (table
        changelogs, replay journal), created on first use. It is kept apart from the
        signing keys, so a key rotation leaves the state verifiable; every worker of the
        processor reads the same file, encrypted at rest like the signing keys."""
        self._agency(agency_code)  # an agency of this store, or KeyStoreError
        folder = self.directory / "state"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / f"{agency_code}.key.pem"
        if not path.exists():
            with contextlib.suppress(FileExistsError):  # another worker made it first
                _publish_secret(path, self._key_pem(Ed25519PrivateKey.generate()))
        raw = self._load_key(path).private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return hashlib.sha256(b"zf801 processor state secret v1\x00" + raw).digest()

    def anchors(self) -> list[x509.Certificate]:
        return [_load_cert(p) for p in sorted((self.directory / "anchors").glob("*.pem"))]

    def issuing_certificates(self) -> list[x509.Certificate]:
        return [_load_cert(self.directory / "ca" / f"{n}.cert.pem") for n in _issuer_names()]

    def chain_of(self, key_id: str) -> list[x509.Certificate]:
        """The agency certificate followed by its issuing CA and root."""
        leaf = self.certificate(key_id)
        chain = self.trust_store().chain_for(key_id).chain
        return [leaf, *chain[1:]]

    def trust_store(self) -> TrustStore:
        self._require_initialised()
        certs = [_load_cert(p) for p in sorted((self.directory / "certs").glob("*.pem"))]
        return TrustStore(
            anchors=self.anchors(),
            certificates=[*self.issuing_certificates(), *certs],
            revocations=self.revocations(),
        )

    def _issue_into(
        self, trust_set: TrustSet, code: str, name: str, role: str, now: datetime
    ) -> str:
        key, certificate = trust_set.issue(code, name, role, now=now, lifetime=self._cert_lifetime)
        key_id = key_id_of(key.public_key())
        self._write_key(self.directory / "private" / f"{key_id}.key.pem", key)
        _write_public(self.directory / "certs" / f"{key_id}.pem", _pem(certificate))
        index = self._index()
        record = index.setdefault(code, {"name": name, "role": role, "keys": []})
        record["keys"].append(key_id)
        record["current"] = key_id
        self._write_json("agencies.json", index)
        return key_id

    def _issue_tls(self, trust_set: TrustSet, holders: list[TlsHolder], now: datetime) -> None:
        """Write the trusted CA files and a new TLS identity per holder (replacing one)."""
        layout = self.tls_layout
        for sub in (layout.root, layout.truststore("bus").parent):
            sub.mkdir(parents=True, exist_ok=True, mode=0o700)
        for side in SIDES:
            _write_public(layout.truststore(side), _pem(trust_set.issuers[side].certificate))
        _write_public(layout.brokers_ca, _pem(trust_set.issuers["bus"].certificate))
        for holder in holders:
            identity = issue_tls_identity(trust_set, holder, now=now, lifetime=self._cert_lifetime)
            files = layout.identity(holder.name)
            files.chain.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _replace_secret(files.key, identity.key_pem(self._passphrase))
            _write_public(files.chain, identity.chain_pem())
            if holder.node_id is not None:
                keystore = layout.node_keystore(holder.node_id)
                keystore.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                _replace_secret(keystore, identity.pkcs12(holder.name, self._passphrase))

    def _has_tls(self, holder: TlsHolder) -> bool:
        if not self.has_tls_identity(holder.name):
            return False
        return holder.node_id is None or self.tls_layout.node_keystore(holder.node_id).is_file()

    def _tls_trust_files(self) -> list[Path]:
        layout = self.tls_layout
        return [*(layout.truststore(side) for side in SIDES), layout.brokers_ca]

    def _remove_tls(self, name: str) -> None:
        files = self.tls_layout.identity(name)
        files.key.unlink(missing_ok=True)
        files.chain.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: leave what is not ours
            files.chain.parent.rmdir()

    def _trust_set(self) -> TrustSet:
        self._require_initialised()
        cas = {
            name: CertificateAuthority(
                _load_cert(self.directory / "ca" / f"{name}.cert.pem"),
                self._load_key(self.directory / "ca" / f"{name}.key.pem"),
            )
            for name in _CA_FILES
        }
        return TrustSet(
            roots={"court": cas["court-root"], "police": cas["police-root"]},
            issuers={name: cas[name] for name in _issuer_names()},
        )

    def _entry(
        self, key_id: str, index: dict[str, dict[str, Any]], revocations: list[Revocation]
    ) -> KeyEntry:
        certificate = self.certificate(key_id)
        for code, record in index.items():
            if key_id in record["keys"]:
                mine = [r for r in revocations if r.key_id == key_id]
                revocation = min(mine, key=lambda r: r.revoked_at) if mine else None
                return KeyEntry(
                    agency_code=code,
                    agency_name=record["name"],
                    role=record["role"],
                    key_id=key_id,
                    not_before=certificate.not_valid_before_utc,
                    not_after=certificate.not_valid_after_utc,
                    current=record["current"] == key_id,
                    revocation=revocation,
                )
        raise KeyStoreError(f"key id {key_id}: not in the agency index")

    def _agency(self, agency_code: str) -> dict[str, Any]:
        record = self._index().get(agency_code)
        if record is None:
            raise KeyStoreError(f"agency {agency_code}: no key in {self.directory}")
        return record

    def _index(self) -> dict[str, dict[str, Any]]:
        index = self._read_json("agencies.json")
        if not isinstance(index, dict):
            raise KeyStoreError(f"{self.directory / 'agencies.json'}: must be a JSON object")
        return index

    def _read_json(self, name: str) -> Any:
        path = self.directory / name
        if not path.is_file():
            raise self._not_initialised()
        return json.loads(path.read_text(encoding="utf-8"))

    def _write_json(self, name: str, data: Any) -> None:
        path = self.directory / name
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(temporary, path)

    def _write_ca(self, name: str, ca: CertificateAuthority, overwrite: bool) -> None:
        _write_public(self.directory / "ca" / f"{name}.cert.pem", _pem(ca.certificate))
        key_path = self.directory / "ca" / f"{name}.key.pem"
        if overwrite:
            key_path.unlink(missing_ok=True)
        self._write_key(key_path, ca.private_key)

    def _write_key(self, path: Path, key: Ed25519PrivateKey) -> None:
        _create_secret(path, self._key_pem(key))

    def _key_pem(self, key: Ed25519PrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase),
        )

    def _load_key(self, path: Path) -> Ed25519PrivateKey:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), self._passphrase)
        except FileNotFoundError as exc:
            raise KeyStoreError(f"private key {path}: missing") from exc
        except (ValueError, TypeError) as exc:
            raise KeyStoreError(f"private key {path}: wrong passphrase or corrupt") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyStoreError(f"private key {path}: not an Ed25519 key")
        return key


def _create_secret(path: Path, data: bytes) -> None:
    # O_EXCL: never follow a planted file or symlink; 0o600 from the first byte.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _publish_secret(path: Path, data: bytes) -> None:
    """Create ``path`` whole or not at all: written under a name of this process's own,
    then linked to ``path`` (FileExistsError if it exists; nothing is replaced). Created
    in place, a worker starting beside the one writing it read a partial file and exited
    ("wrong passphrase or corrupt"): one run in about thirty of three workers started at
    once."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    _create_secret(temporary, data)
    try:
        os.link(temporary, path)
    finally:
        temporary.unlink()


def _replace_secret(path: Path, data: bytes) -> None:
    """Create or replace ``path``: a fresh 0600 file, then an atomic rename over it."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    _create_secret(temporary, data)
    os.replace(temporary, path)


def _issuer_names() -> list[str]:
    return [name for name, (kind, _) in _CA_FILES.items() if kind == "issuer"]


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _write_public(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _revocation_row(revocation: Revocation) -> dict[str, str]:
    return {
        "key_id": revocation.key_id,
        "revoked_at": revocation.revoked_at.isoformat(),
        "reason": revocation.reason,
        "recorded_at": revocation.recorded_at.isoformat(),
        "revoked_by": revocation.revoked_by,
    }


def _revocation_from_row(row: dict[str, str]) -> Revocation:
    return Revocation(
        key_id=row["key_id"],
        revoked_at=datetime.fromisoformat(row["revoked_at"]),
        reason=row["reason"],
        recorded_at=datetime.fromisoformat(row["recorded_at"]),
        revoked_by=row.get("revoked_by", "unspecified"),
    )


_KEY_ID = re.compile(KEY_ID_PATTERN)


def _checked_key_id(key_id: object) -> str:
    """``key_id`` as a key id (:func:`sign.identity.key_id_of`: 32 lower-case hex digits);
    a name of a file (``../anchors/court``) is no key id."""
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise KeyStoreError(f"key id {key_id!r}: not a key id (32 lower-case hex digits)")
    return key_id
