"""Verify before act: the stage every consumer puts between the broker and its effect.

``VerifyStage.check(...)`` returns a :class:`VerifiedEvent` for a record whose signature,
chain, agency, validity, revocation, role, envelope (``schemas.envelope.parse_record``:
header forms, ``ce_type`` == the value's writer schema), body (decoded with the codec),
time and replay checks all pass, and ``None`` otherwise. The signature is checked first,
so any tampering reads as BAD_SIGNATURE rather than as whatever the bytes now look like.
A refused record never raises into the processing loop: it is written to the dead-letter
sink (reason code, detail, original topic/partition/offset/timestamp/key/value/headers,
stage) and to the audit sink.

One deliberate exception: if a *sink* fails (the dead-letter topic cannot be written),
the stage raises :class:`SinkError`. Swallowing that would let a refused record
vanish without a trace once the consumer commits its offset; raising stops the loop
before the commit, so the record is redelivered when the sink is back.

Bad message policy: every :class:`sign.errors.SignatureRejected` reason, every envelope
and codec error (reason = the error's class, e.g. ``TYPE_MISMATCH``, ``UNKNOWN_FINGERPRINT``,
``SCHEMA_VALIDATION``) and any unexpected error in verification (``VERIFY_ERROR``) is
dead-lettered and audited, never retried (the same bytes would fail the same way); a
redelivery of an already accepted record passes with ``redelivery=True`` so the effect,
which must be idempotent, can skip work. A record is recorded in the replay guard only
once everything else passed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from schemas.codec import Codec, default_codec
from schemas.envelope import Envelope, parse_received
from schemas.errors import (
    BadMagic,
    CodecError,
    EnvelopeError,
    HeaderDuplicated,
    HeaderMalformed,
    HeaderMissing,
    HeaderTooLarge,
    MalformedPayload,
    SchemaValidationError,
    TrailingBytes,
    TruncatedPayload,
    TypeMismatch,
    UnknownFingerprint,
)
from schemas.headers import SIGNATURE_HEADERS
from sign.acceptance import AcceptancePolicy
from sign.errors import SignatureRejected, SignError, TimeSkew
from sign.events import EventVerifier, VerifiedSignature, read_signed_headers
from sign.replay import ReplayGuard, ReplayVerdict
from sign.trust import TrustStore

__all__ = [
    "AuditSink",
    "ConsumedRecord",
    "DeadLetterSink",
    "MemoryAuditSink",
    "MemoryDeadLetterSink",
    "Rejection",
    "SilentSink",
    "SinkError",
    "VerifiedEvent",
    "VerifyStage",
    "dead_letter_category",
    "failed_stage",
]

WriterRoles = Mapping[str, Collection[str]] | Callable[[str], Collection[str] | None]

# Precise reason codes of envelope and codec errors (schemas.errors), most specific first.
_SCHEMA_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (HeaderMissing, "MISSING_HEADER"),
    (HeaderDuplicated, "DUPLICATE_HEADER"),
    (HeaderTooLarge, "OVERSIZED_HEADER"),
    (TypeMismatch, "TYPE_MISMATCH"),
    (HeaderMalformed, "MALFORMED_HEADER"),
    (BadMagic, "BAD_MAGIC"),
    (UnknownFingerprint, "UNKNOWN_FINGERPRINT"),
    (TruncatedPayload, "TRUNCATED_PAYLOAD"),
    (TrailingBytes, "TRAILING_BYTES"),
    (MalformedPayload, "MALFORMED_PAYLOAD"),
    (SchemaValidationError, "SCHEMA_VALIDATION"),
)
# The DeadLetter schema's coarser reason enum (cn.zf801.bus.v1.DeadLetter.reason); the
# precise code always leads the dead letter's detail.
_CATEGORY = {
    "MISSING_HEADER": "HEADER_MISSING",
    "DUPLICATE_HEADER": "HEADER_DUPLICATED",
    "MALFORMED_HEADER": "HEADER_MALFORMED",
    "OVERSIZED_HEADER": "HEADER_TOO_LARGE",
    "UNKNOWN_ALGORITHM": "UNKNOWN_ALGORITHM",
    "UNKNOWN_KEY": "CERTIFICATE_UNTRUSTED",
    "BAD_SIGNATURE": "SIGNATURE_INVALID",
    "UNTRUSTED_CHAIN": "CERTIFICATE_UNTRUSTED",
    "AGENCY_MISMATCH": "AGENCY_MISMATCH",
    "CERT_EXPIRED": "CERTIFICATE_NOT_VALID_AT_TIME",
    "CERT_NOT_YET_VALID": "CERTIFICATE_NOT_VALID_AT_TIME",
    "KEY_REVOKED": "KEY_REVOKED",
    "ROLE_NOT_ALLOWED": "NOT_AUTHORISED",
    "MISADDRESSED": "NOT_AUTHORISED",
    "MISPLACED": "NOT_AUTHORISED",
    "QUERY_REFUSED": "NOT_AUTHORISED",
    "REPLAYED": "REPLAYED",
    "CLOCK_AHEAD": "OUTSIDE_WINDOW",
    "TOO_OLD": "OUTSIDE_WINDOW",
    "STATE_INTEGRITY": "STATE_INTEGRITY",
    "TYPE_MISMATCH": "TYPE_MISMATCH",
    "BAD_MAGIC": "BAD_MAGIC",
    "UNKNOWN_FINGERPRINT": "UNKNOWN_FINGERPRINT",
    "TRUNCATED_PAYLOAD": "TRUNCATED_PAYLOAD",
    "TRAILING_BYTES": "TRAILING_BYTES",
    "MALFORMED_PAYLOAD": "MALFORMED_PAYLOAD",
    "SCHEMA_VALIDATION": "SCHEMA_VALIDATION",
    "VERIFY_ERROR": "PROCESSING_FAILED",
    # refused after verification, by the rules of the order book and the matcher
    "EDGE_RULE": "SCHEMA_VALIDATION",
    "KEY_MISMATCH": "NOT_AUTHORISED",
    "UNKNOWN_HIT": "NOT_AUTHORISED",
    "ORDER_REFUSED": "PROCESSING_FAILED",
    "ACK_REFUSED": "PROCESSING_FAILED",
}
_HEADER_REASONS = frozenset(
    {"MISSING_HEADER", "DUPLICATE_HEADER", "MALFORMED_HEADER", "OVERSIZED_HEADER"}
)
_DECODE_REASONS = frozenset(
    {"BAD_MAGIC", "UNKNOWN_FINGERPRINT", "TRUNCATED_PAYLOAD", "TRAILING_BYTES"}
    | {"MALFORMED_PAYLOAD", "TYPE_MISMATCH"}
)


def dead_letter_category(reason: str, header: str | None) -> str:
    """The DeadLetter reason symbol for a precise reason code."""
    if reason in {"MISSING_HEADER", "DUPLICATE_HEADER"} and header in SIGNATURE_HEADERS:
        return "SIGNATURE_MISSING" if reason == "MISSING_HEADER" else "HEADER_DUPLICATED"
    return _CATEGORY.get(reason, "OTHER")


def failed_stage(reason: str) -> str:
    """The DeadLetter failed_stage symbol for a precise reason code."""
    if reason in _HEADER_REASONS:
        return "HEADERS"
    if reason in _DECODE_REASONS:
        return "DECODE"
    if reason in {"ROLE_NOT_ALLOWED", "MISADDRESSED", "MISPLACED", "QUERY_REFUSED"}:
        return "AUTHORISE"
    if reason == "SCHEMA_VALIDATION":
        return "VALIDATE"
    return "VERIFY"


class SinkError(SignError):
    """A dead-letter or audit sink could not record a refused record."""


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    """A record exactly as consumed (timestamp in epoch milliseconds)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class VerifiedEvent:
    """A record that may be acted on: what its signature proves, its checked envelope,
    and its value decoded with the writer schema (``payload``)."""

    record: ConsumedRecord
    signature: VerifiedSignature
    envelope: Envelope
    payload: dict[str, Any]
    redelivery: bool


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record was refused, for the dead-letter topic and the audit log."""

    record: ConsumedRecord
    reason: str
    detail: str
    verifier: str
    rejected_at: datetime
    stage: str = "verify"  # which input of the processor refused it, e.g. "sightings"
    header: str | None = None

    @property
    def category(self) -> str:
        return dead_letter_category(self.reason, self.header)

    @property
    def failed_stage(self) -> str:
        return failed_stage(self.reason)


class DeadLetterSink(Protocol):
    def write(self, rejection: Rejection) -> None: ...


class AuditSink(Protocol):
    def write(self, rejection: Rejection) -> None: ...

    def record(
        self,
        *,
        user: str,
        role: str,
        agency_code: str,
        operation: str,
        target: str,
        result: str,
        detail: str | None,
        at: datetime | None = None,
        wait: bool = True,
    ) -> None:
        """Audit a user's operation (result SUCCESS, FAILURE or DENIED); with
        ``wait=False`` it may only be sent, and :meth:`settle` waits for it."""

    def settle(self, timeout_s: float | None = None) -> None:
        """Return once every record given so far is acknowledged (raise if one failed)."""


@dataclass
class MemoryDeadLetterSink:
    """Keeps rejections in a list (unit tests, and a fallback for tools)."""

    rejections: list[Rejection] = field(default_factory=list)

    def write(self, rejection: Rejection) -> None:
        self.rejections.append(rejection)


@dataclass
class MemoryAuditSink:
    rejections: list[Rejection] = field(default_factory=list)
    operations: list[dict[str, Any]] = field(default_factory=list)

    def write(self, rejection: Rejection) -> None:
        self.rejections.append(rejection)

    def record(self, *, at: datetime | None = None, wait: bool = True, **fields: Any) -> None:
        self.operations.append({**fields, "at": at or datetime.now(UTC)})

    def settle(self, timeout_s: float | None = None) -> None:
        return None


class SilentSink(MemoryAuditSink):
    """Keeps no refusal: for a stage whose refusals are counted by its caller and whose
    records are acted on elsewhere (a replay's report, the command centre's figures), so
    neither a dead letter nor an audit record is written for each."""

    def write(self, rejection: Rejection) -> None:
        return None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class VerifyStage:
    """Signature, trust, envelope, schema and replay checks before any effect."""

    def __init__(
        self,
        trust_store: TrustStore,
        replay_guard: ReplayGuard,
        dead_letter_sink: DeadLetterSink,
        audit_sink: AuditSink,
        *,
        verifier_agency: str,
        stage: str = "verify",
        writer_roles: WriterRoles | None = None,
        max_skew: timedelta | None = None,
        acceptance: AcceptancePolicy | None = None,
        codec: Codec | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.verifier = EventVerifier(trust_store)
        self.replay_guard = replay_guard
        self.dead_letter_sink = dead_letter_sink
        self.audit_sink = audit_sink
        self.verifier_agency = verifier_agency
        self.stage = stage
        self._writer_roles = writer_roles
        self._max_skew_ms = None if max_skew is None else max_skew.total_seconds() * 1000
        self._acceptance = acceptance
        self._codec = codec or default_codec()
        self._clock = clock or _utc_now
        self.accepted = 0
        self.redeliveries = 0
        self.rejected: Counter[str] = Counter()

    def check(  # noqa: PLR0917 - positional, in the order of a consumed record's fields
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
    ) -> VerifiedEvent | None:
        """The verified event, or None after dead-lettering and auditing the record."""
        record = ConsumedRecord(
            topic, partition, offset, timestamp, key, value,
            tuple((name, raw if raw is not None else b"") for name, raw in headers),
        )  # fmt: skip
        return self.check_consumed(record)

    def check_consumed(self, record: ConsumedRecord) -> VerifiedEvent | None:
        """``check`` for a record already kept as consumed (its headers' absent values as
        empty bytes)."""
        try:
            return self._verify(record)
        except SignatureRejected as exc:
            self._reject(record, exc.reason, exc.detail, exc.header)
        except (EnvelopeError, CodecError) as exc:
            header = exc.header if isinstance(exc, EnvelopeError) else None
            self._reject(record, _schema_reason(exc), str(exc), header)
        except Exception as exc:  # never raise into the loop (see the module docstring)
            self._reject(record, "VERIFY_ERROR", f"{type(exc).__name__}: {exc}", None)
        return None

    def check_record(self, message: Any) -> VerifiedEvent | None:
        """``check`` for a kafka-python ``ConsumerRecord`` or an aiokafka record."""
        return self.check(
            message.topic,
            message.partition,
            message.offset,
            message.timestamp,
            message.key,
            message.value,
            list(message.headers or ()),
        )

    def handle(self, message: Any, effect: Callable[[VerifiedEvent], None]) -> bool:
        """Check a consumed record and call ``effect`` only if it verified."""
        event = self.check_record(message)
        if event is None:
            return False
        effect(event)
        return True

    def _verify(self, record: ConsumedRecord) -> VerifiedEvent:
        received = read_signed_headers(record.headers)  # once, for the seal and the envelope
        signature = self.verifier.verify_received(
            record.key, record.value, received, self._allowed_roles(record.topic)
        )
        if self._max_skew_ms is not None:
            gap = abs(signature.event_time.timestamp() * 1000 - record.timestamp)
            if gap > self._max_skew_ms:
                raise TimeSkew(
                    f"ce_time {signature.event_time.isoformat()}: {gap / 1000:.3f} s from the "
                    f"record timestamp, more than {self._max_skew_ms / 1000:.3f} s"
                )
        envelope = parse_received(record.key, record.value, received, codec=self._codec)
        payload = envelope.record
        now = self._clock()
        rule = None if self._acceptance is None else self._acceptance.rule_for(envelope.type)
        if rule is not None and rule.window is not None:
            rule.window.check(signature.event_id, signature.event_time, now)
        redelivery = False
        if rule is None or rule.replay_checked:
            verdict = self.replay_guard.observe(
                signature.event_id, signature.event_time,
                record.topic, record.partition, record.offset, now=now,
            )  # fmt: skip
            redelivery = verdict is ReplayVerdict.REDELIVERY
        self.redeliveries += redelivery
        self.accepted += 1
        return VerifiedEvent(record, signature, envelope, payload, redelivery)

    def _allowed_roles(self, topic: str) -> Collection[str] | None:
        if self._writer_roles is None:
            return None
        if callable(self._writer_roles):
            return self._writer_roles(topic)
        return self._writer_roles.get(topic)

    def _reject(self, record: ConsumedRecord, reason: str, detail: str, header: str | None) -> None:
        self.rejected[reason] += 1
        rejection = Rejection(
            record=record,
            reason=reason,
            detail=detail,
            header=header,
            stage=self.stage,
            verifier=self.verifier_agency,
            rejected_at=self._clock(),
        )
        for sink in (self.dead_letter_sink, self.audit_sink):
            try:
                sink.write(rejection)
            except Exception as exc:
                raise SinkError(
                    f"{type(sink).__name__}: could not record {reason} for "
                    f"{record.topic}/{record.partition}@{record.offset}: {exc}"
                ) from exc


def _schema_reason(exc: Exception) -> str:
    for kind, reason in _SCHEMA_REASONS:
        if isinstance(exc, kind):
            return reason
    return "MALFORMED_PAYLOAD"
