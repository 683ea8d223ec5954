"""The trust store: anchors, agency certificates by key id, revocations, cached chains.

Anchors come only from local configuration (files under the key store). Issuing-CA and
agency certificates may come from anywhere, including the ``trust`` topic: they are
self-authenticating, because nothing is believed until it chains to an anchor. A key id
may have several certificates (a renewed certificate for the same key, or a forged one
someone published to shadow it); the verifier uses the first one that chains.

Revocation has a time: signatures over events whose time is at or after ``revoked_at``
fail, earlier ones stay valid. To void everything a key ever signed, revoke it at its
certificate's notBefore. Revocations only ever tighten: for one key id the earliest
``revoked_at`` wins, and nothing un-revokes a key.

Thread safety: updates take a lock and bump ``generation``, which empties the chain cache;
readers never lock (single dict reads are atomic in CPython), so the per-event path stays
lock-free. A chain is verified once per key id and generation, failures included, so an
untrusted key that floods the bus costs a dict lookup per event, not a chain walk.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sign.chain import VerifiedChain, check_anchor, verify_chain
from sign.errors import (
    AgencyMismatch,
    CertificateExpired,
    CertificateNotYetValid,
    KeyRevoked,
    TrustMaterialError,
    UnknownKey,
    UntrustedChain,
)
from sign.identity import identity_of, key_id_of

__all__ = ["REVOCATION_REASONS", "Revocation", "TrustStore"]

# RFC 5280 CRLReason names, as the TrustRevocation schema's enum has them (lower-case).
REVOCATION_REASONS = frozenset(
    {
        "unspecified",
        "key-compromise",
        "ca-compromise",
        "affiliation-changed",
        "superseded",
        "cessation-of-operation",
    }
)
# Bounds what a flood of forged certificates for one key id can make us hold.
_MAX_CERTS_PER_KEY = 8


@dataclass(frozen=True, slots=True)
class Revocation:
    """A key is revoked for events at or after ``revoked_at`` (UTC)."""

    key_id: str
    revoked_at: datetime
    reason: str
    recorded_at: datetime
    revoked_by: str = "unspecified"  # the operator, as the TrustRevocation record names them

    def __post_init__(self) -> None:
        if self.reason not in REVOCATION_REASONS:
            raise TrustMaterialError(
                f"revocation reason {self.reason[:40]!r}"
                f"{'...' if len(self.reason) > 40 else ''}: must be one of "
                f"{sorted(REVOCATION_REASONS)}"
            )
        if self.revoked_at.tzinfo is None or self.recorded_at.tzinfo is None:
            raise TrustMaterialError("revocation times: must be timezone-aware (UTC)")


class TrustStore:
    """Anchors, certificates and revocations, with a per-key-id chain cache."""

    def __init__(
        self,
        anchors: Iterable[x509.Certificate] = (),
        certificates: Iterable[x509.Certificate] = (),
        revocations: Iterable[Revocation] = (),
    ) -> None:
        self._lock = threading.RLock()
        self._anchors: list[x509.Certificate] = []
        self._intermediates: dict[x509.Name, list[x509.Certificate]] = {}
        self._by_key_id: dict[str, list[x509.Certificate]] = {}
        self._public_keys: dict[str, Ed25519PublicKey] = {}
        self._revocations: dict[str, Revocation] = {}
        self._chains: dict[str, VerifiedChain | TrustMaterialError] = {}
        self.generation = 0
        for anchor in anchors:
            self.add_anchor(anchor)
        for certificate in certificates:
            self.add_certificate(certificate)
        for revocation in revocations:
            self.add_revocation(revocation)

    def add_anchor(self, anchor: x509.Certificate) -> str:
        """Trust a root (from local configuration only); returns its side."""
        side = check_anchor(anchor)
        with self._lock:
            if anchor not in self._anchors:
                self._anchors.append(anchor)
                self._changed()
        return side

    def add_certificate(self, certificate: x509.Certificate) -> str:
        """Remember an issuing-CA or agency certificate; returns its key id."""
        public_key = certificate.public_key()
        if not isinstance(public_key, Ed25519PublicKey):
            raise TrustMaterialError("certificate: public key must be Ed25519")
        key_id = key_id_of(public_key)
        if _is_ca(certificate):
            with self._lock:
                pool = self._intermediates.setdefault(certificate.subject, [])
                if certificate not in pool:
                    pool.append(certificate)
                    self._changed()
            return key_id
        identity_of(certificate)  # refuse what does not even have the agency profile
        with self._lock:
            pool = self._by_key_id.setdefault(key_id, [])
            if certificate in pool:
                return key_id
            if len(pool) >= _MAX_CERTS_PER_KEY:
                raise TrustMaterialError(
                    f"key id {key_id}: already {len(pool)} certificates, refusing more"
                )
            pool.append(certificate)
            self._public_keys[key_id] = public_key
            self._changed()
        return key_id

    def add_revocation(self, revocation: Revocation) -> Revocation:
        """Record a revocation; returns the one in force (the earliest for that key)."""
        with self._lock:
            current = self._revocations.get(revocation.key_id)
            if current is None or revocation.revoked_at < current.revoked_at:
                self._revocations[revocation.key_id] = revocation
                self._changed()
                return revocation
            return current

    def public_key(self, key_id: str) -> Ed25519PublicKey:
        """The public key for a key id (all its certificates share it, by definition)."""
        key = self._public_keys.get(key_id)
        if key is None:
            raise UnknownKey(f"ce_sigkeyid {key_id}: no certificate in the trust store")
        return key

    def chain_for(self, key_id: str) -> VerifiedChain:
        """The verified chain of a key id (cached per trust-store generation)."""
        cached = self._chains.get(key_id)
        if cached is None:
            cached = self._verify(key_id)
        if isinstance(cached, TrustMaterialError):
            raise UntrustedChain(f"ce_sigkeyid {key_id}: {cached}")
        return cached

    def authorise(self, key_id: str, agency_code: str | None, when: datetime) -> VerifiedChain:
        """The chain of ``key_id`` if it speaks for ``agency_code`` and was good at ``when``.

        Checks, in order: chain to an anchor, agency, validity of every link at ``when``,
        no revocation of any link at or before ``when``. Shared by events and seals.
        """
        chain = self.chain_for(key_id)
        if agency_code != chain.identity.agency_code:
            raise AgencyMismatch(
                f"agency {agency_code!r}: certificate {key_id} speaks for "
                f"{chain.identity.agency_code}"
            )
        if when < chain.not_before:
            raise CertificateNotYetValid(
                f"time {when.isoformat()}: chain of {key_id} valid from "
                f"{chain.not_before.isoformat()}"
            )
        if when > chain.not_after:
            raise CertificateExpired(
                f"time {when.isoformat()}: chain of {key_id} expired {chain.not_after.isoformat()}"
            )
        for link in chain.key_ids:
            revocation = self._revocations.get(link)
            if revocation is not None and when >= revocation.revoked_at:
                raise KeyRevoked(
                    f"time {when.isoformat()}: key {link} revoked at "
                    f"{revocation.revoked_at.isoformat()} ({revocation.reason})"
                )
        return chain

    def revocation_for(self, key_id: str) -> Revocation | None:
        return self._revocations.get(key_id)

    def anchors(self) -> list[x509.Certificate]:
        return list(self._anchors)

    def intermediates(self) -> list[x509.Certificate]:
        with self._lock:
            return [c for pool in self._intermediates.values() for c in pool]

    def certificates(self) -> dict[str, list[x509.Certificate]]:
        with self._lock:
            return {key_id: list(pool) for key_id, pool in self._by_key_id.items()}

    def revocations(self) -> list[Revocation]:
        return list(self._revocations.values())

    def chain_of_certificate(
        self, leaf: x509.Certificate, links: Sequence[x509.Certificate] = ()
    ) -> VerifiedChain:
        """The verified chain of this very ``leaf`` certificate, through ``links`` (issuing
        CAs carried beside it) or the store's own, to one of the store's anchors; raises
        :class:`TrustMaterialError` saying why not. Nothing is added to the store."""
        with self._lock:
            intermediates = {name: list(pool) for name, pool in self._intermediates.items()}
            anchors = list(self._anchors)
        for link in links:
            if _is_ca(link):
                pool = intermediates.setdefault(link.subject, [])
                if link not in pool:
                    pool.insert(0, link)  # the carried link first: its path is the one shown
        return verify_chain(leaf, anchors, intermediates)

    def _verify(self, key_id: str) -> VerifiedChain | TrustMaterialError:
        with self._lock:
            pool = self._by_key_id.get(key_id)
            if not pool:
                raise UnknownKey(f"ce_sigkeyid {key_id}: no certificate in the trust store")
            result: VerifiedChain | TrustMaterialError = TrustMaterialError("no certificate")
            for certificate in pool:
                try:
                    result = verify_chain(certificate, self._anchors, self._intermediates)
                    break
                except TrustMaterialError as exc:
                    result = exc
            self._chains[key_id] = result
            return result

    def _changed(self) -> None:
        self.generation += 1
        # A new dict, not clear(): a lock-free reader holding the old one stays consistent.
        self._chains = {}


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
