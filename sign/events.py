"""Signing and verifying events: the canonical byte string, the signer, the verifier.

Canonical byte string, version 2 (also in ``sign/CANONICAL.md`` for other languages)::

    "ZF801-EVENT-SIG-V2\\n"                       19 ASCII bytes
    then, in this order, each as a 4-byte big-endian length followed by the bytes:
      ce_sigalg, ce_sigkeyid, ce_id, ce_source, ce_type, ce_time, ce_specversion,
      content-type        the header values exactly as they travel (UTF-8), no trimming
      ce_altkeys          the optional lookup hints, exactly as they travel; absent is
                          the length 0xFFFFFFFF, no bytes (present and empty is length 0)
      key                 the record key; a null key is the length 0xFFFFFFFF, no bytes
      value               the record value (the Avro single-object bytes); a null value
                          (a tombstone) is the length 0xFFFFFFFF, no bytes

Length-prefixing makes the string unambiguous: no bytes can move from one field to the
next ("splicing"). The algorithm and key id are covered so neither can be swapped.
``ce_altkeys`` is covered because it decides what a sighting matches: stripping, altering
or adding it after signing must break the signature. ``traceparent`` and any other header
are not covered: intermediaries may rewrite them. Version 1 (without ``ce_altkeys``) is
not accepted.

Headers added by the signer (CloudEvents extension attributes, UTF-8):
``ce_sigalg`` = ``ed25519``, ``ce_sigkeyid`` = the key id (:func:`sign.identity.key_id_of`),
``ce_signature`` = standard base64 (with padding) of the 64-byte Ed25519 signature.

The verifier checks, in this order, and refuses with the first failing reason: header
count and sizes (before any crypto), exactly one of each signature and covered header
(at most one ``ce_altkeys``), known algorithm, key id known, signature, ``ce_time``
well-formed, then :meth:`sign.trust.TrustStore.authorise`: chain to an anchor, agency of
the certificate == agency of ``ce_source``, ``ce_time`` inside every link's validity, no
revocation of any link at or before ``ce_time``; last, the role allowed on the topic if
the caller says which roles may write there.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.codec import Codec
from schemas.envelope import KafkaRecord, agency_source, build_record
from schemas.headers import (
    CE_ALTKEYS,
    CE_ID,
    CE_SIGALG,
    CE_SIGKEYID,
    CE_SIGNATURE,
    CE_SOURCE,
    CE_SPECVERSION,
    CE_TIME,
    CE_TYPE,
    CONTENT_TYPE,
    MAX_HEADER_NAME_BYTES,
    MAX_HEADER_VALUE_BYTES,
    MAX_HEADERS,
)
from schemas.received_headers import ReceivedHeaders, read_headers
from sign.errors import (
    AgencyMismatch,
    BadSignature,
    DuplicateHeader,
    MalformedHeader,
    MissingHeader,
    OversizedHeader,
    RoleNotAllowed,
    SignError,
    UnknownAlgorithm,
)
from sign.identity import KEY_ID_PATTERN, agency_code_from_source, agency_uri, key_id_of
from sign.trust import TrustStore

__all__ = [
    "ALGORITHM",
    "COVERED_HEADERS",
    "HEADER_LIMITS",
    "OPTIONAL_COVERED_HEADERS",
    "SIGNATURE_HEADERS",
    "EventSigner",
    "EventVerifier",
    "Headers",
    "VerifiedSignature",
    "canonical_bytes",
    "parse_event_time",
    "read_signed_headers",
]

Headers = Sequence[tuple[str, bytes]]

ALGORITHM = b"ed25519"
SIGNATURE_HEADERS = (CE_SIGALG, CE_SIGKEYID, CE_SIGNATURE)
COVERED_HEADERS = (CE_ID, CE_SOURCE, CE_TYPE, CE_TIME, CE_SPECVERSION, CONTENT_TYPE)
# Covered when present, the null length when absent; at most one of each.
OPTIONAL_COVERED_HEADERS = (CE_ALTKEYS,)
_CANONICAL_ORDER = (CE_SIGALG, CE_SIGKEYID, *COVERED_HEADERS)
_REQUIRED = (*SIGNATURE_HEADERS, *COVERED_HEADERS)
_SCANNED = frozenset((*_REQUIRED, *OPTIONAL_COVERED_HEADERS))
_MAGIC = b"ZF801-EVENT-SIG-V2\n"
_NULL = b"\xff\xff\xff\xff"

# Size limits in bytes, checked before anything is decoded or verified; any other header
# may have up to the envelope's MAX_HEADER_VALUE_BYTES (schemas.headers).
HEADER_LIMITS: dict[str, int] = {
    CE_SIGALG: 32,
    CE_SIGKEYID: 64,
    CE_SIGNATURE: 128,
    CE_ID: 64,
    CE_SOURCE: 128,
    CE_TYPE: 256,
    CE_TIME: 64,
    CE_SPECVERSION: 16,
    CONTENT_TYPE: 128,
    CE_ALTKEYS: 1024,
}
_KEY_ID_RE = re.compile(b"^" + KEY_ID_PATTERN.encode("ascii") + b"$")


def canonical_bytes(
    fields: Sequence[bytes | None], key: bytes | None, value: bytes | None
) -> bytes:
    """The V2 canonical string; ``fields`` are the header values in canonical order, ending
    with ``ce_altkeys`` (None when absent)."""
    parts = [_MAGIC]
    for field in (*fields, key, value):
        if field is None:
            parts.append(_NULL)
        else:
            parts.append(len(field).to_bytes(4, "big"))
            parts.append(field)
    return b"".join(parts)


def parse_event_time(raw: bytes) -> datetime:
    """``ce_time`` as an aware UTC datetime; RFC 3339 with a ``Z`` or numeric offset."""
    try:
        parsed = datetime.fromisoformat(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedHeader(
            f"ce_time {raw[:64]!r}: not an RFC 3339 timestamp", header=CE_TIME
        ) from exc
    if parsed.tzinfo is None:
        raise MalformedHeader(f"ce_time {raw[:64]!r}: needs a UTC offset or 'Z'", header=CE_TIME)
    return parsed


def _collect(headers: Headers, wanted: Collection[str]) -> dict[str, bytes]:
    """One pass: size limits, duplicates of the wanted names, and their values."""
    if len(headers) > MAX_HEADERS:
        raise _too_many(len(headers))
    found: dict[str, bytes] = {}
    for name, raw in headers:
        value = raw if raw is not None else b""
        limit = HEADER_LIMITS.get(name, MAX_HEADER_VALUE_BYTES)
        if len(value) > limit or len(name) > MAX_HEADER_NAME_BYTES:
            raise _oversized(name, len(value), limit)
        if name in wanted:
            if name in found:
                raise _duplicate(name)
            found[name] = value
    return found


def _too_many(count: int) -> OversizedHeader:
    return OversizedHeader(f"headers: {count} exceed the limit of {MAX_HEADERS}")


def _oversized(name: str, size: int, limit: int) -> OversizedHeader:
    return OversizedHeader(
        f"header {name[:MAX_HEADER_NAME_BYTES]!r}: {len(name)}-character name, "
        f"{size}-byte value (limits {MAX_HEADER_NAME_BYTES} and {limit})",
        header=name[:MAX_HEADER_NAME_BYTES],
    )


def _duplicate(name: str) -> DuplicateHeader:
    return DuplicateHeader(f"header {name!r}: appears more than once", header=name)


def read_signed_headers(headers: Iterable[tuple[str, bytes | None]]) -> ReceivedHeaders:
    """A received record's headers read once, with this module's size limits and the
    names a signed event carries once."""
    return read_headers(headers, HEADER_LIMITS, _SCANNED)


def _checked(received: ReceivedHeaders) -> Mapping[str, bytes]:
    """:func:`_collect`'s refusals, from the one pass of :func:`read_signed_headers`."""
    if received.count > MAX_HEADERS:
        raise _too_many(received.count)
    fault = received.fault
    if fault is not None and fault.duplicate:
        raise _duplicate(fault.name)
    if fault is not None:
        raise _oversized(fault.name, fault.size, fault.limit)
    return received.values


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """What a good signature established about an event."""

    event_id: str
    event_type: str
    event_time: datetime
    agency_code: str
    role: str
    key_id: str


class EventSigner:
    """Signs records for one agency with one key (see the module docstring)."""

    def __init__(self, private_key: Ed25519PrivateKey, agency_code: str) -> None:
        self._private_key = private_key
        self.agency_code = agency_code
        self.key_id = key_id_of(private_key.public_key())
        self._key_id_bytes = self.key_id.encode("ascii")
        self._source = agency_uri(agency_code).encode("ascii")

    def sign(
        self, key: bytes | None, value: bytes | None, headers: Headers
    ) -> list[tuple[str, bytes]]:
        """The headers with ``ce_sigalg``, ``ce_sigkeyid`` and ``ce_signature`` appended."""
        try:
            found = _collect(headers, _SCANNED)
        except SignError as exc:
            raise SignError(f"cannot sign: {exc}") from exc
        if any(name in found for name in SIGNATURE_HEADERS):
            raise SignError("cannot sign: the record already carries signature headers")
        missing = [name for name in COVERED_HEADERS if name not in found]
        if missing:
            raise SignError(f"cannot sign: missing header(s) {missing}")
        if found[CE_SOURCE] != self._source:
            raise SignError(
                f"cannot sign: ce_source {found['ce_source']!r} is not this signer's agency "
                f"{self.agency_code}"
            )
        fields = [
            ALGORITHM,
            self._key_id_bytes,
            *(found[name] for name in COVERED_HEADERS),
            *(found.get(name) for name in OPTIONAL_COVERED_HEADERS),
        ]
        signature = self._private_key.sign(canonical_bytes(fields, key, value))
        return [
            *headers,
            (CE_SIGALG, ALGORITHM),
            (CE_SIGKEYID, self._key_id_bytes),
            (CE_SIGNATURE, base64.b64encode(signature)),
        ]

    def sign_record(self, record: KafkaRecord) -> KafkaRecord:
        """A copy of an envelope record (``schemas.envelope``) with the signature headers."""
        signed = self.sign(record.key, record.value, record.headers)
        return record.with_headers(*signed[len(record.headers) :])

    def signed_record(
        self,
        schema_name: str,
        value: Mapping[str, Any],
        *,
        key: bytes | None,
        event_id: uuid.UUID | str | None = None,
        time: datetime | None = None,
        traceparent: str | None = None,
        extra_headers: Sequence[tuple[str, bytes]] = (),
        validate: bool = True,
        codec: Codec | None = None,
    ) -> KafkaRecord:
        """The one way the bus builds and signs an event of this agency: the value encoded
        (validated unless the caller built it from verified values), the CloudEvents
        envelope (``schemas.envelope.build_record``) with ``extra_headers`` (covered by the
        signature when they are, like ``ce_altkeys``), then the signature headers."""
        unsigned = build_record(
            schema_name, value, key=key, source=agency_source(self.agency_code),
            event_id=event_id, time=time, traceparent=traceparent, validate=validate,
            codec=codec,
        )  # fmt: skip
        if extra_headers:
            unsigned = unsigned.with_headers(*extra_headers)
        return self.sign_record(unsigned)


class EventVerifier:
    """Verifies signed records against a trust store (see the module docstring)."""

    def __init__(self, trust: TrustStore) -> None:
        self.trust = trust

    def verify(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        allowed_roles: Collection[str] | None = None,
    ) -> VerifiedSignature:
        """Return what the signature proves, or raise a :class:`SignatureRejected`."""
        return self.verify_received(key, value, read_signed_headers(headers), allowed_roles)

    def verify_received(
        self,
        key: bytes | None,
        value: bytes | None,
        received: ReceivedHeaders,
        allowed_roles: Collection[str] | None = None,
    ) -> VerifiedSignature:
        """:meth:`verify` of headers already read (:func:`read_signed_headers`), as the
        verify stage reads them once for the signature and the envelope."""
        found = _checked(received)
        for name in _REQUIRED:
            if name not in found:
                raise MissingHeader(f"header {name!r}: required on a signed event", header=name)
        if found[CE_SIGALG] != ALGORITHM:
            raise UnknownAlgorithm(
                f"ce_sigalg {found[CE_SIGALG]!r}: only 'ed25519' is known", header=CE_SIGALG
            )
        raw_key_id = found[CE_SIGKEYID]
        if not _KEY_ID_RE.match(raw_key_id):
            raise MalformedHeader(
                f"ce_sigkeyid {raw_key_id!r}: must be 32 lower-case hex", header=CE_SIGKEYID
            )
        key_id = raw_key_id.decode("ascii")
        public_key = self.trust.public_key(key_id)
        signature = _decode_signature(found[CE_SIGNATURE])
        fields = [
            *(found[name] for name in _CANONICAL_ORDER),
            *(found.get(name) for name in OPTIONAL_COVERED_HEADERS),
        ]
        message = canonical_bytes(fields, key, value)
        try:
            public_key.verify(signature, message)
        except InvalidSignature as exc:
            raise BadSignature(f"key {key_id}: signature does not match the event") from exc
        source = found[CE_SOURCE].decode("utf-8", "replace")
        event_time = parse_event_time(found[CE_TIME])
        try:
            identity = self.trust.authorise(
                key_id, agency_code_from_source(source), event_time
            ).identity
        except AgencyMismatch as exc:
            raise AgencyMismatch(f"ce_source {source!r}: {exc.detail}") from None
        if allowed_roles is not None and identity.role not in allowed_roles:
            raise RoleNotAllowed(
                f"agency {identity.agency_code}: role {identity.role!r} may not write here "
                f"(allowed: {sorted(allowed_roles)})"
            )
        return VerifiedSignature(
            event_id=found[CE_ID].decode("utf-8", "replace"),
            event_type=found[CE_TYPE].decode("utf-8", "replace"),
            event_time=event_time,
            agency_code=identity.agency_code,
            role=identity.role,
            key_id=key_id,
        )


def _decode_signature(raw: bytes) -> bytes:
    try:
        signature = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadSignature("ce_signature: not valid base64") from exc
    if len(signature) != 64:
        raise BadSignature(f"ce_signature: {len(signature)} bytes, an Ed25519 signature has 64")
    return signature
