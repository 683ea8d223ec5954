"""Verify before act: the stage every consumer puts between the broker and its effect.

``VerifyStage.check(...)`` returns a :class:`VerifiedEvent` for a record whose signature,
chain, agency, validity, revocation, role, time and replay checks all pass (and that
decodes, if a decoder is given), and ``None`` otherwise. A refused record never raises
into the processing loop: it is written to the dead-letter sink (reason code, detail,
original topic/partition/offset/timestamp/key/value/headers, stage) and to the audit sink.

One deliberate exception: if a *sink* fails (the dead-letter topic cannot be written),
the stage raises :class:`SinkError`. Swallowing that would let a refused record
vanish without a trace once the consumer commits its offset; raising stops the loop
before the commit, so the record is redelivered when the sink is back.

Bad message policy: every :class:`sign.errors.SignatureRejected` reason, a decoder
failure (``UNDECODABLE``) and any unexpected error in verification (``VERIFY_ERROR``) is
dead-lettered and audited, never retried (the same bytes would fail the same way); a
redelivery of an already accepted record passes with ``redelivery=True`` so the effect,
which must be idempotent, can skip work.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sign.errors import SignatureRejected, SignError, TimeSkew, Undecodable
from sign.events import EventVerifier, VerifiedSignature
from sign.replay import ReplayGuard, ReplayVerdict
from sign.trust import TrustStore

__all__ = [
    "AuditSink",
    "ConsumedRecord",
    "DeadLetterSink",
    "MemoryAuditSink",
    "MemoryDeadLetterSink",
    "Rejection",
    "SinkError",
    "VerifiedEvent",
    "VerifyStage",
]

WriterRoles = Mapping[str, Collection[str]] | Callable[[str], Collection[str] | None]


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
    """A record that may be acted on, with what its signature proves."""

    record: ConsumedRecord
    signature: VerifiedSignature
    redelivery: bool
    payload: Any = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record was refused, for the dead-letter topic and the audit log."""

    record: ConsumedRecord
    reason: str
    detail: str
    stage: str
    verifier: str
    rejected_at: datetime


class DeadLetterSink(Protocol):
    def write(self, rejection: Rejection) -> None: ...


class AuditSink(Protocol):
    def write(self, rejection: Rejection) -> None: ...


@dataclass
class MemoryDeadLetterSink:
    """Keeps rejections in a list (unit tests, and a fallback for tools)."""

    rejections: list[Rejection] = field(default_factory=list)

    def write(self, rejection: Rejection) -> None:
        self.rejections.append(rejection)


@dataclass
class MemoryAuditSink:
    rejections: list[Rejection] = field(default_factory=list)

    def write(self, rejection: Rejection) -> None:
        self.rejections.append(rejection)


class VerifyStage:
    """Signature, trust, replay (and optionally schema) checks before any effect."""

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
        decoder: Callable[[bytes | None], Any] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.verifier = EventVerifier(trust_store)
        self.replay_guard = replay_guard
        self.dead_letter_sink = dead_letter_sink
        self.audit_sink = audit_sink
        self.verifier_agency = verifier_agency
        self.stage = stage
        self._writer_roles = writer_roles
        self._max_skew_ms = None if max_skew is None else max_skew.total_seconds() * 1000
        self._decoder = decoder
        self._clock = clock
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
        try:
            return self._verify(record)
        except SignatureRejected as exc:
            self._reject(record, exc.reason, exc.detail)
        except Exception as exc:  # never raise into the loop (see the module docstring)
            self._reject(record, "VERIFY_ERROR", f"{type(exc).__name__}: {exc}")
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
        signature = self.verifier.verify(
            record.key, record.value, record.headers, self._allowed_roles(record.topic)
        )
        if self._max_skew_ms is not None:
            gap = abs(signature.event_time.timestamp() * 1000 - record.timestamp)
            if gap > self._max_skew_ms:
                raise TimeSkew(
                    f"ce_time {signature.event_time.isoformat()}: {gap / 1000:.3f} s from the "
                    f"record timestamp, more than {self._max_skew_ms / 1000:.3f} s"
                )
        payload = None
        if self._decoder is not None:
            try:
                payload = self._decoder(record.value)
            except (ValueError, SignError) as exc:
                raise Undecodable(f"value: {exc}") from exc
        verdict = self.replay_guard.observe(
            signature.event_id, signature.event_time, record.topic, record.partition, record.offset
        )
        redelivery = verdict is ReplayVerdict.REDELIVERY
        self.redeliveries += redelivery
        self.accepted += 1
        return VerifiedEvent(record, signature, redelivery, payload)

    def _allowed_roles(self, topic: str) -> Collection[str] | None:
        if self._writer_roles is None:
            return None
        if callable(self._writer_roles):
            return self._writer_roles(topic)
        return self._writer_roles.get(topic)

    def _reject(self, record: ConsumedRecord, reason: str, detail: str) -> None:
        self.rejected[reason] += 1
        rejection = Rejection(
            record=record,
            reason=reason,
            detail=detail,
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
