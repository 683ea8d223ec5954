"""Errors of the signing layer: identities, key storage, event signatures and seals.

Every refusal of a signed event is a :class:`SignatureRejected` with a stable ``reason``
code (upper-case ASCII, part of the dead-letter contract: operators filter on it, so a
code is never renamed). Each reason has its own subclass so code can catch one case.
"""

from __future__ import annotations

from typing import ClassVar

from schemas.errors import BusError

__all__ = [
    "AgencyMismatch",
    "BadSignature",
    "CertificateExpired",
    "CertificateNotYetValid",
    "ClockAhead",
    "DocumentMismatch",
    "DuplicateHeader",
    "KeyRevoked",
    "KeyStoreError",
    "MalformedHeader",
    "MalformedSeal",
    "MissingHeader",
    "OversizedHeader",
    "Replayed",
    "RoleNotAllowed",
    "SignError",
    "SignatureRejected",
    "TimeSkew",
    "TooOld",
    "TrustMaterialError",
    "UnknownAlgorithm",
    "UnknownKey",
    "UntrustedChain",
]


class SignError(BusError):
    """Base class of the signing layer's errors."""


class KeyStoreError(SignError):
    """The on-disk key store is missing, malformed, or refuses an operation."""


class TrustMaterialError(SignError, ValueError):
    """A certificate, anchor or revocation is malformed or does not fit the rules."""


class SignatureRejected(SignError, ValueError):  # noqa: N818 - the name the brief fixes
    """A signed event is refused. ``reason`` is a stable machine code, ``detail`` prose,
    ``header`` the header at fault when there is one."""

    reason: ClassVar[str] = "REJECTED"

    def __init__(self, detail: str, *, header: str | None = None) -> None:
        super().__init__(f"{self.reason}: {detail}")
        self.detail = detail
        self.header = header


class MissingHeader(SignatureRejected):
    reason = "MISSING_HEADER"


class DuplicateHeader(SignatureRejected):
    reason = "DUPLICATE_HEADER"


class OversizedHeader(SignatureRejected):
    reason = "OVERSIZED_HEADER"


class MalformedHeader(SignatureRejected):
    reason = "MALFORMED_HEADER"


class UnknownAlgorithm(SignatureRejected):
    reason = "UNKNOWN_ALGORITHM"


class UnknownKey(SignatureRejected):
    reason = "UNKNOWN_KEY"


class BadSignature(SignatureRejected):
    reason = "BAD_SIGNATURE"


class UntrustedChain(SignatureRejected):
    reason = "UNTRUSTED_CHAIN"


class AgencyMismatch(SignatureRejected):
    reason = "AGENCY_MISMATCH"


class CertificateExpired(SignatureRejected):
    reason = "CERT_EXPIRED"


class CertificateNotYetValid(SignatureRejected):
    reason = "CERT_NOT_YET_VALID"


class KeyRevoked(SignatureRejected):
    reason = "KEY_REVOKED"


class RoleNotAllowed(SignatureRejected):
    reason = "ROLE_NOT_ALLOWED"


class TimeSkew(SignatureRejected):
    reason = "TIME_SKEW"


class Replayed(SignatureRejected):
    reason = "REPLAYED"


class ClockAhead(SignatureRejected):
    """``ce_time`` lies further ahead of the processor's clock than the window allows."""

    reason = "CLOCK_AHEAD"


class TooOld(SignatureRejected):
    """``ce_time`` lies further back than the event family's acceptance window (or than
    the replay guard still remembers)."""

    reason = "TOO_OLD"


class DocumentMismatch(SignatureRejected):
    """A sealed document's bytes differ from what its seal states."""

    reason = "DOCUMENT_MISMATCH"


class MalformedSeal(SignatureRejected):
    """A seal file is missing, oversized, not JSON, or not in the seal format."""

    reason = "MALFORMED_SEAL"
