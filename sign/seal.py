"""Electronic seals (电子签章) on documents: a detached ``<FILE>.seal.json`` beside the file.

The agency signs a short ASCII *statement* about the document, not the document itself,
so the signing time and the agency are covered by the signature, and a large file is
hashed in a stream. The statement (exactly these lines, LF endings, final LF)::

    ZF801-SEAL-V1
    sha256: <64 lower-case hex digits of SHA-256 over the file bytes>
    size: <file size in bytes>
    agency: <agency code>
    key-id: <key id, 32 hex digits>
    signed-at: <RFC 3339 UTC time, microseconds, Z>

The seal file is JSON::

    {"format": "zf801-seal/1", "algorithm": "ed25519", "statement": "<the text above>",
     "signature": "<base64 of the 64-byte Ed25519 signature over the statement bytes>",
     "certificate": "<agency certificate PEM>", "chain": ["<issuing CA PEM>", "<root PEM>"]}

Anyone can check it with OpenSSL alone (``sign/SEAL-OPENSSL.md``). The chain in the seal
is a convenience: :func:`verify_seal` trusts only its own anchors. An order carries the
document's SHA-256 (:func:`document_digest`), so the order's signature covers the
document too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding

from schemas.files import check_replaceable, read_limited, regular_size, write_replacing
from sign.errors import (
    BadSignature,
    DocumentMismatch,
    MalformedSeal,
    SignError,
    TrustMaterialError,
    UntrustedChain,
)
from sign.identity import identity_of, key_id_of
from sign.trust import TrustStore

__all__ = [
    "SEAL_FORMAT",
    "SEAL_SUFFIX",
    "SealCheck",
    "check_seal_path",
    "describe_seal",
    "document_digest",
    "seal_document",
    "seal_path_for",
    "verify_seal",
]

SEAL_FORMAT = "zf801-seal/1"
SEAL_SUFFIX = ".seal.json"
_STATEMENT_RE = re.compile(
    r"\AZF801-SEAL-V1\n"
    r"sha256: (?P<sha256>[0-9a-f]{64})\n"
    r"size: (?P<size>0|[1-9][0-9]{0,15})\n"
    r"agency: (?P<agency>[A-Za-z0-9][A-Za-z0-9-]{1,31})\n"
    r"key-id: (?P<key_id>[0-9a-f]{32})\n"
    r"signed-at: (?P<signed_at>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{8,15}Z)\n\Z"
)
_MAX_SEAL_BYTES = 64 * 1024
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class SealCheck:
    """What a good seal proves about a document."""

    agency_code: str
    role: str
    key_id: str
    signed_at: datetime
    sha256: str
    size: int


def seal_path_for(document: Path | str) -> Path:
    document = _as_path(document, "document")
    return document.with_name(document.name + SEAL_SUFFIX)


def _as_path(value: object, name: str) -> Path:
    """A path given as a ``Path`` or as text; anything else refused naming ``name``."""
    if isinstance(value, str) and value:
        return Path(value)
    if isinstance(value, Path):
        return value
    raise SignError(f"{name}: a path is needed, got {type(value).__name__} [rule type]")


def check_seal_path(
    path: Path, what: str = "seal", error: type[Exception] = SignError
) -> os.stat_result | None:
    """What is at ``path`` where a seal is to be written (its ``lstat``; None: nothing):
    :func:`schemas.files.check_replaceable`, naming the seal's rule."""
    return check_replaceable(
        path, what, error, rule="; a seal is written as a file beside its document"
    )


def describe_seal(path: Path) -> str | None:
    """A short account of what lies at ``path`` (None: nothing), for a message that an
    existing seal is kept or replaced: the agency, key and time a readable seal states,
    ``a symbolic link to ...`` (not followed), or why it is no seal this module reads.
    Refuses (:class:`SignError`) what :func:`check_seal_path` refuses."""
    found = check_seal_path(path)
    if found is None:
        return None
    if stat.S_ISLNK(found.st_mode):
        try:
            return f"a symbolic link to {os.readlink(path)}"
        except OSError:
            return "a symbolic link"
    try:
        fields = _statement_fields(path, _load_seal(path))
    except SignError as exc:
        return f"not a readable seal: {getattr(exc, 'detail', exc)}"
    return f"sealed by {fields['agency']} with key {fields['key_id']} at {fields['signed_at']}"


def document_digest(path: Path, error: type[SignError] = SignError) -> bytes:
    """SHA-256 of a file's bytes (32 raw bytes), read in 1 MiB chunks."""
    regular_size(path, "document", error)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise error(f"document {path}: cannot be read: {exc.strerror or exc}") from exc
    return digest.digest()


def _statement(sha256: str, size: int, agency: str, key_id: str, signed_at: datetime) -> str:
    when = signed_at.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return (
        f"ZF801-SEAL-V1\nsha256: {sha256}\nsize: {size}\nagency: {agency}\n"
        f"key-id: {key_id}\nsigned-at: {when}\n"
    )


def _sealing_checked(
    private_key: object, chain: object, agency_code: object, signed_at: object
) -> datetime:
    """The arguments of a seal checked before anything is read or written (a seal its own
    verification would refuse replaced a good one): the key is an Ed25519 key, ``chain``
    starts with its certificate, that certificate speaks for ``agency_code``, and
    ``signed_at`` is an aware time (returned in UTC, the form the statement takes)."""
    if not isinstance(private_key, Ed25519PrivateKey):
        raise SignError("private_key: an Ed25519 private key is needed [rule key.type]")
    if (
        not isinstance(chain, list | tuple)
        or not chain
        or not all(isinstance(c, x509.Certificate) for c in chain)
    ):
        raise SignError("chain: a list of certificates, the agency's first [rule chain.type]")
    if chain[0].public_key() != private_key.public_key():
        raise SignError("chain[0]: the certificate does not hold the signing key [rule chain.key]")
    try:
        speaks_for = identity_of(chain[0]).agency_code
    except (TrustMaterialError, ValueError) as exc:
        raise SignError(f"chain[0]: no agency certificate ({exc}) [rule chain.leaf]") from None
    if agency_code != speaks_for:
        raise SignError(
            f"agency_code: {agency_code!r} is not the agency the certificate speaks for "
            f"({speaks_for}) [rule sender]"
        )
    if not isinstance(signed_at, datetime) or signed_at.utcoffset() is None:
        raise SignError("signed_at: a timezone-aware datetime is needed [rule time.zone]")
    return signed_at.astimezone(UTC)


def seal_document(
    document: Path | str,
    private_key: Ed25519PrivateKey,
    chain: list[x509.Certificate],
    agency_code: str,
    signed_at: datetime,
    *,
    replace: bool = True,
) -> Path:
    """Write ``<document>.seal.json``; ``chain`` is [agency cert, issuing CA, root].

    The seal is written to a new file and renamed over the name: a symbolic link there is
    replaced, never followed; a folder or a device there is refused (:class:`SignError`)
    before the document is read. With ``replace=False`` anything already at the name
    (another seal, a link) is refused and kept."""
    signed_at = _sealing_checked(private_key, chain, agency_code, signed_at)
    document = _as_path(document, "document")
    return _write_seal(document, private_key, chain, agency_code, signed_at, replace=replace)


def _write_seal(
    document: Path,
    private_key: Ed25519PrivateKey,
    chain: list[x509.Certificate],
    agency_code: str,
    signed_at: datetime,
    *,
    replace: bool = True,
) -> Path:
    """What :func:`seal_document` writes, its arguments unchecked: what a forger's tool
    would make (the tests' forgeries, which the verifier must refuse)."""
    path = seal_path_for(document)
    found = check_seal_path(path)
    if found is not None and not replace:
        raise SignError(f"seal {path}: already exists ({describe_seal(path)}); it is kept")
    key_id = key_id_of(private_key.public_key())
    statement = _statement(
        document_digest(document).hex(),  # refuses what is no regular file
        regular_size(document, "document", SignError),
        agency_code,
        key_id,
        signed_at,
    )
    seal = {
        "format": SEAL_FORMAT,
        "algorithm": "ed25519",
        "statement": statement,
        "signature": base64.b64encode(private_key.sign(statement.encode("ascii"))).decode(),
        "certificate": chain[0].public_bytes(Encoding.PEM).decode("ascii"),
        "chain": [c.public_bytes(Encoding.PEM).decode("ascii") for c in chain[1:]],
    }
    data = (json.dumps(seal, indent=2) + "\n").encode("utf-8")
    write_replacing(path, data, "seal", error=SignError)
    return path


def _load_seal(path: Path) -> dict[str, object]:
    regular_size(path, "seal", MalformedSeal)  # a FIFO would block the open itself
    raw = read_limited(path, "seal", _MAX_SEAL_BYTES, error=MalformedSeal)
    try:
        seal = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedSeal(f"seal {path}: not JSON ({exc})") from exc
    except RecursionError:
        raise MalformedSeal(f"seal {path}: not JSON (nested too deeply)") from None
    if not isinstance(seal, dict) or seal.get("format") != SEAL_FORMAT:
        raise MalformedSeal(f"seal {path}: 'format' must be {SEAL_FORMAT!r}")
    if seal.get("algorithm") != "ed25519":
        raise MalformedSeal(f"seal {path}: 'algorithm' {seal.get('algorithm')!r} is not ed25519")
    for name in ("statement", "signature", "certificate"):
        if not isinstance(seal.get(name), str):
            raise MalformedSeal(f"seal {path}: {name!r} must be a string")
    chain = seal.get("chain", [])
    if not isinstance(chain, list) or not all(isinstance(pem, str) for pem in chain):
        raise MalformedSeal(f"seal {path}: 'chain' must be a list of PEM strings")
    return seal


def _statement_fields(path: Path, seal: dict[str, object]) -> dict[str, str]:
    fields = _STATEMENT_RE.match(str(seal["statement"]))
    if fields is None:
        raise MalformedSeal(f"seal {path}: 'statement' is not a ZF801-SEAL-V1 statement")
    return fields.groupdict()


def _signed_at(path: Path, text: str) -> datetime:
    """The statement's ``signed-at``: the pattern admits ``2026-13-99T99:99:99Z``, which
    is no time at all."""
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise MalformedSeal(
            f"seal {path}: 'statement' signed-at {text!r} is not an RFC 3339 UTC time ({exc})"
        ) from exc


def _certificates(seal: dict[str, object], path: Path) -> list[x509.Certificate]:
    pems = [seal["certificate"], *_as_list(seal.get("chain"))]
    try:
        return [x509.load_pem_x509_certificate(str(pem).encode("ascii")) for pem in pems]
    except (ValueError, UnicodeEncodeError) as exc:
        raise MalformedSeal(f"seal {path}: a certificate does not parse ({exc})") from exc


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _public_key(certificate: x509.Certificate, path: Path) -> object:
    try:
        return certificate.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise MalformedSeal(f"seal {path}: 'certificate' holds no usable key ({exc})") from exc


def _check_carried(path: Path, certificates: list[x509.Certificate], trust: TrustStore) -> None:
    """Every certificate the seal carries is what it claims: its ``certificate`` chains to
    one of ``trust``'s anchors, and each of its ``chain`` is a link of that path. (The
    key is looked up by id, so an altered copy changed no verdict, while OpenSSL, given
    the same file, refused it.)"""
    try:
        verified = trust.chain_of_certificate(certificates[0], certificates[1:])
    except TrustMaterialError as exc:
        raise UntrustedChain(f"seal {path}: 'certificate' does not verify: {exc}") from None
    for index, certificate in enumerate(certificates[1:]):
        if certificate not in verified.chain:
            raise UntrustedChain(
                f"seal {path}: 'chain'[{index}] is no link of the certificate's chain to a "
                "trust anchor (altered, or another chain's)"
            )


def verify_seal(
    document: Path | str, trust: TrustStore, seal_path: Path | str | None = None
) -> SealCheck:
    """Check a document against its seal; raise a SignatureRejected subclass if it fails.

    The seal's issuing-CA certificate is added to ``trust`` (links are self-authenticating;
    only ``trust``'s own anchors end a chain)."""
    document = _as_path(document, "document")
    path = seal_path_for(document) if seal_path is None else _as_path(seal_path, "seal_path")
    seal = _load_seal(path)
    statement = str(seal["statement"])
    fields = _statement_fields(path, seal)
    signed_at = _signed_at(path, fields["signed_at"])
    certificates = _certificates(seal, path)
    public_key = _public_key(certificates[0], path)
    if not isinstance(public_key, Ed25519PublicKey) or key_id_of(public_key) != fields["key_id"]:
        raise MalformedSeal(f"seal {path}: certificate does not hold key {fields['key_id']}")
    try:
        signature = base64.b64decode(str(seal["signature"]), validate=True)
        public_key.verify(signature, statement.encode("ascii"))
    except (binascii.Error, ValueError, InvalidSignature) as exc:
        raise BadSignature(f"seal {path}: signature does not match the statement") from exc
    size = regular_size(document, "document", DocumentMismatch)
    digest = document_digest(document, DocumentMismatch).hex()
    if digest != fields["sha256"] or size != int(fields["size"]):
        raise DocumentMismatch(
            f"document {document.name}: sha256 {digest} / {size} bytes, the seal says "
            f"{fields['sha256']} / {fields['size']} bytes"
        )
    try:
        _check_carried(path, certificates, trust)
        for certificate in certificates:
            try:
                trust.add_certificate(certificate)  # links only; anchors stay local
            except TrustMaterialError:
                continue  # a root in the chain is not a trust anchor here; harmless
        chain = trust.authorise(fields["key_id"], fields["agency"], signed_at)
    except SignError:
        raise
    except (ValueError, UnsupportedAlgorithm, x509.DuplicateExtension) as exc:  # hostile ones
        raise MalformedSeal(f"seal {path}: a certificate cannot be used ({exc})") from exc
    return SealCheck(
        agency_code=chain.identity.agency_code,
        role=chain.identity.role,
        key_id=fields["key_id"],
        signed_at=signed_at,
        sha256=digest,
        size=size,
    )
