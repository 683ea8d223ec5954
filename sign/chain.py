"""Strict chain verification of agency certificates against the trust anchors.

Why not ``cryptography.x509.verification``: in cryptography 50 its ``PolicyBuilder``
verifiers implement the CA/B Forum Web PKI profile, which refuses Ed25519 keys
("Forbidden public key algorithm: Ed25519", even with ``ExtensionPolicy.permit_all()``)
and the client verifier demands the clientAuth EKU. Our certificates are Ed25519 by
design (DESIGN §3), so this module implements the minimal strict check instead:

1. the leaf has the agency profile (:func:`sign.identity.identity_of`), is not a CA, and
   may sign (keyUsage digitalSignature);
2. walking up, each issuer is found by subject name (and by key identifier when both
   sides carry one), is a CA (basicConstraints CA:TRUE, within its pathLenConstraint),
   may sign certificates (keyCertSign), and its public key verifies the child's signature
   (``verify_directly_issued_by``: name match + signature);
3. the walk ends at a configured anchor (self-signed, checked the same way) within
   :data:`MAX_DEPTH` certificates; intermediates come from the trust store, anchors only
   from local configuration;
4. the leaf's role is one the anchor's side may certify (:data:`sign.identity.SIDE_ROLES`);
5. no certificate carries a critical extension this module does not understand.

Time is not checked here: the result carries the intersection of every link's validity
window, and the event verifier compares it with each event's own time. That is what
lets a chain be verified once per key id and cached (:class:`sign.trust.TrustStore`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import ExtensionOID

from sign.errors import TrustMaterialError
from sign.identity import SIDE_ROLES, AgencyIdentity, identity_of, key_id_of, side_of_ca

__all__ = ["MAX_DEPTH", "VerifiedChain", "check_anchor", "verify_chain"]

MAX_DEPTH = 4
_UNDERSTOOD = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    }
)


@dataclass(frozen=True, slots=True)
class VerifiedChain:
    """A leaf that chains to an anchor; times are the intersection of every link."""

    identity: AgencyIdentity
    side: str
    chain: tuple[x509.Certificate, ...]
    public_key: Ed25519PublicKey
    not_before: datetime
    not_after: datetime
    # Key ids of every link, leaf first: a revoked issuing CA revokes what it issued.
    key_ids: tuple[str, ...]


def _refuse_unknown_critical(certificate: x509.Certificate) -> None:
    for extension in certificate.extensions:
        if extension.critical and extension.oid not in _UNDERSTOOD:
            raise TrustMaterialError(
                f"certificate {certificate.subject.rfc4514_string()!r}: unknown critical "
                f"extension {extension.oid.dotted_string}"
            )


def _basic_constraints(certificate: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _key_usage(certificate: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _check_ca(certificate: x509.Certificate, below: int) -> None:
    """``below`` = number of CA certificates under this one in the chain."""
    _refuse_unknown_critical(certificate)
    constraints = _basic_constraints(certificate)
    subject = certificate.subject.rfc4514_string()
    if constraints is None or not constraints.ca:
        raise TrustMaterialError(f"issuer {subject!r}: basicConstraints CA:TRUE is missing")
    if constraints.path_length is not None and below > constraints.path_length:
        raise TrustMaterialError(f"issuer {subject!r}: pathLenConstraint exceeded")
    usage = _key_usage(certificate)
    if usage is not None and not usage.key_cert_sign:
        raise TrustMaterialError(f"issuer {subject!r}: keyUsage lacks keyCertSign")


def _check_leaf(certificate: x509.Certificate) -> AgencyIdentity:
    _refuse_unknown_critical(certificate)
    identity = identity_of(certificate)
    constraints = _basic_constraints(certificate)
    if constraints is not None and constraints.ca:
        raise TrustMaterialError("agency certificate: must not be a CA")
    usage = _key_usage(certificate)
    if usage is None or not usage.digital_signature:
        raise TrustMaterialError("agency certificate: keyUsage must allow digitalSignature")
    return identity


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def check_anchor(anchor: x509.Certificate) -> str:
    """Check that a trust anchor is a self-signed CA root of a known side; return the side."""
    _check_ca(anchor, 0)
    if not _issued_by(anchor, anchor):
        raise TrustMaterialError(
            f"anchor {anchor.subject.rfc4514_string()!r}: not self-signed (signature fails)"
        )
    return side_of_ca(anchor)


def _candidates(
    child: x509.Certificate, pool: Iterable[x509.Certificate]
) -> list[x509.Certificate]:
    return [c for c in pool if c.subject == child.issuer]


def _walk(
    path: list[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    intermediates: Mapping[x509.Name, Sequence[x509.Certificate]],
) -> tuple[list[x509.Certificate], x509.Certificate] | None:
    """Depth-first search for a path to an anchor; returns (path, anchor) or None."""
    child = path[-1]
    for anchor in _candidates(child, anchors):
        if _issued_by(child, anchor):
            try:
                _check_ca(anchor, len(path) - 1)
            except TrustMaterialError:
                continue
            return path, anchor
    if len(path) >= MAX_DEPTH - 1:
        return None
    for issuer in intermediates.get(child.issuer, ()):
        if issuer in path or not _issued_by(child, issuer):
            continue
        try:
            _check_ca(issuer, len(path) - 1)
        except TrustMaterialError:
            continue
        found = _walk([*path, issuer], anchors, intermediates)
        if found is not None:
            return found
    return None


def verify_chain(
    leaf: x509.Certificate,
    anchors: Sequence[x509.Certificate],
    intermediates: Mapping[x509.Name, Sequence[x509.Certificate]],
) -> VerifiedChain:
    """Verify ``leaf`` up to one of ``anchors``; raise TrustMaterialError saying why not."""
    identity = _check_leaf(leaf)
    found = _walk([leaf], anchors, intermediates)
    if found is None:
        raise TrustMaterialError(
            f"agency {identity.agency_code} key {identity.key_id}: no chain to a trust anchor "
            f"(issuer {leaf.issuer.rfc4514_string()!r})"
        )
    path, anchor = found
    side = side_of_ca(anchor)
    if identity.role not in SIDE_ROLES[side]:
        raise TrustMaterialError(
            f"agency {identity.agency_code}: role {identity.role!r} may not be certified by "
            f"the {side} anchor"
        )
    links = [*path, anchor]
    public_key = leaf.public_key()
    assert isinstance(public_key, Ed25519PublicKey)  # identity_of checked it
    return VerifiedChain(
        identity=identity,
        side=side,
        chain=tuple(links),
        public_key=public_key,
        not_before=max(c.not_valid_before_utc for c in links),
        not_after=min(c.not_valid_after_utc for c in links),
        key_ids=tuple(_key_id(c) for c in links),
    )


def _key_id(certificate: x509.Certificate) -> str:
    public_key = certificate.public_key()
    if not isinstance(public_key, Ed25519PublicKey):
        raise TrustMaterialError("certificate in chain: public key must be Ed25519")
    return key_id_of(public_key)
