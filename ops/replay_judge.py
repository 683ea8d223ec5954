"""The judge of ``zf801 replay --verify``: each record of the range checked by the
runtime's verify stage as the bus judged it on arrival, into the tally; the audit records
kept for the chain check, and (``--rematch``) the verified records handed to the rematch.
A court's alert topic is judged as that court's subscriber judges it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from consumers.addressing import alert_problem
from consumers.runtime import Runtime
from ops.cmd_audit import AuditEntry, audit_entry, chain_document
from ops.cmd_inspect import TopicReader, TopicRecord
from ops.rematch import Rematch
from ops.replay_check import (
    ArrivalClock,
    PartitionRange,
    ReplayTally,
    chains_in_range,
    revoked_on_arrival,
)
from schemas.jsonmap import to_json
from sign.acceptance import AcceptancePolicy
from sign.checkpoint import Checkpoint, CheckpointCheck
from sign.trust import TrustStore
from sign.verify_stage import (
    ConsumedRecord,
    MemoryDeadLetterSink,
    Rejection,
    SilentSink,
    VerifiedEvent,
    VerifyStage,
)

__all__ = ["Judge", "VerdictSink", "check_on_arrival", "replay_stage"]


class VerdictSink(Protocol):
    """Takes records to judge elsewhere (:class:`ops.replay_pool.VerdictPool`)."""

    def submit(self, message: Any) -> None: ...


def replay_stage(
    runtime: Runtime, dead: MemoryDeadLetterSink, clock: ArrivalClock, *, roles_by_topic: bool
) -> VerifyStage:
    """The runtime's verify stage, judging each record as the bus did when it arrived:
    seal and trust at ``ce_time``, ``ce_time`` within its family's acceptance window of
    the arrival time (``clock``), repeats judged per topic by the tally, refusals kept
    here (a replay never dead-letters). Without ``roles_by_topic`` the signer's role is
    judged per event type by the caller (a court's alert topic carries the
    acknowledgements the bus forwards as the police signed them)."""
    return runtime.verify_stage(
        acceptance=AcceptancePolicy.from_settings(runtime.settings, replay_checked=False),
        dead_letters=dead, audit=SilentSink(), clock=clock, roles_by_topic=roles_by_topic,
    )  # fmt: skip


def check_on_arrival(
    stage: VerifyStage,
    dead: MemoryDeadLetterSink,
    clock: ArrivalClock,
    trust: TrustStore,
    message: Any,
) -> tuple[VerifiedEvent | None, Rejection | None, str | None]:
    """One record judged by a replay stage (:func:`replay_stage` over ``dead`` and
    ``clock``) as of its arrival: the verified event, or the stage's rejection; and for a
    verified one, why its key was revoked before it arrived (:func:`revoked_on_arrival`)."""
    arrival = clock.set(message.timestamp)
    if isinstance(message, ConsumedRecord):
        verified = stage.check_consumed(message)
    else:
        verified = stage.check_record(message)
    if verified is None:
        return None, dead.rejections.pop(), None
    return verified, None, revoked_on_arrival(trust, verified, arrival)


class Judge:
    """Judges each record of the range into the tally, and keeps the verified audit
    records for the chain check."""

    def __init__(
        self, runtime: Runtime, tally: ReplayTally, rematch: Rematch | None = None
    ) -> None:
        self.tally = tally
        self.rematch = rematch
        self.ranges: dict[tuple[str, int], tuple[int, int]] = {}
        """The offsets read of each partition, ``(first, stop)`` (the rematch's range)."""
        self._dead = MemoryDeadLetterSink()
        self._arrival = ArrivalClock()
        self._stage = replay_stage(runtime, self._dead, self._arrival, roles_by_topic=True)
        self._alert_stage = replay_stage(runtime, self._dead, self._arrival, roles_by_topic=False)
        self._catalog = runtime.catalog
        self._courts: dict[str, str | None] = {}
        self._trust = runtime.trust
        self._audit_topic = runtime.catalog.topic_name("audit")
        self.pool: VerdictSink | None = None
        """Where the plain records' checks go when a process pool judges them."""
        self.checkpoints: CheckpointCheck | None = None
        """The check of the log checkpoints (:meth:`read_checkpoints`), if read."""
        self.entries: list[AuditEntry] = []
        """The audit records in range."""
        self.context: list[AuditEntry] = []
        """The audit records before the range: the start of the chains that reach into it."""

    def judge(self, message: Any) -> None:
        if self.checkpoints is not None:
            self.checkpoints.feed(message)
        if not self.tally.verify:
            self.tally.add(message.topic, message.partition, message.offset, None, None)
            return
        court = self._alerts_of(message.topic)
        if self.pool is not None and court is None and message.topic != self._audit_topic:
            self.pool.submit(message)  # the rematch's inputs never: it runs without a pool
            return
        stage = self._stage if court is None else self._alert_stage
        verified, rejection, revoked = check_on_arrival(
            stage, self._dead, self._arrival, self._trust, message
        )
        refused = None
        if verified is not None and court is not None:
            signature = verified.signature
            refused = alert_problem(court, signature.event_type, signature.agency_code,
                                    signature.role, verified.payload)  # fmt: skip
        found = self.tally.add(
            message.topic, message.partition, message.offset, verified, rejection,
            revoked=revoked, refused=refused,
        )  # fmt: skip
        if verified is not None and found is None and self.rematch is not None:
            self.rematch.add(verified)
        if verified is not None and message.topic == self._audit_topic:
            self.entries.append(audit_entry(_topic_record(message, verified)))

    def _alerts_of(self, topic: str) -> str | None:
        """The court whose alert topic ``topic`` is (None: not an alert topic): its records
        are judged as that court's subscriber judges them (``consumers.addressing``)."""
        if topic not in self._courts:
            concrete = self._catalog.resolve(topic)
            self._courts[topic] = concrete.court if concrete.spec.id == "alerts" else None
        return self._courts[topic]

    def read_chain_starts(self, reader: TopicReader, ranges: Sequence[PartitionRange]) -> None:
        """The audit topic before the range (from what is kept), so each chain that reaches
        into the range is checked from its start: counted nowhere, refusals ignored."""
        if not self.tally.verify or reader.topic != self._audit_topic:
            return
        for message, verified in self._verified_before(reader, ranges):
            self.context.append(audit_entry(_topic_record(message, verified)))

    def read_orders_before(self, reader: TopicReader, ranges: Sequence[PartitionRange]) -> None:
        """An order topic before the range (from its start: orders are kept for ever), so
        the rematch's watchlist holds every order still active when the range begins:
        counted nowhere, refusals ignored (they were judged when the range covered them)."""
        if self.rematch is None or not self.rematch.is_order_topic(reader.topic):
            return
        for _, verified in self._verified_before(reader, ranges):
            self.rematch.add(verified)

    def read_checkpoints(self, reader: TopicReader) -> None:
        """Every checkpoint kept on the checkpoint topic (``reader``), verified, for the
        check of the partitions read (:class:`sign.checkpoint.CheckpointCheck`): counted
        nowhere, refusals ignored (a refused checkpoint in range is a break of its own)."""
        ends = reader.ends()
        wanted = {p: (first, ends[p]) for p, first in reader.beginnings().items()}
        check = CheckpointCheck()
        for message, verified in self._verified(reader, wanted):
            place = (message.topic, message.partition, message.offset)
            check.add_checkpoint(Checkpoint.from_record(verified.payload, place))
        self.checkpoints = check

    def _verified_before(
        self, reader: TopicReader, ranges: Sequence[PartitionRange]
    ) -> Iterator[tuple[Any, VerifiedEvent]]:
        kept = reader.beginnings()
        before = {s.partition: (kept[s.partition], s.first) for s in ranges
                  if s.first > kept[s.partition]}  # fmt: skip
        return self._verified(reader, before)

    def _verified(
        self, reader: TopicReader, wanted: Mapping[int, tuple[int, int]]
    ) -> Iterator[tuple[Any, VerifiedEvent]]:
        """The records of ``wanted`` offsets that verify, each as of its arrival."""
        for message in reader.scan(wanted):
            self._arrival.set(message.timestamp)
            verified = self._stage.check_record(message)
            if verified is None:
                self._dead.rejections.pop()
            else:
                yield message, verified

    def chains(self) -> list[Mapping[str, object]]:
        """Every audit chain with a record in range, checked from its start; its breaks
        go to the tally."""
        found = chains_in_range(self.context, self.entries)
        for chain in found:
            self.tally.add_chain_breaks(f"{chain.agency_code}: {text}" for text in chain.breaks)
        return [dict(chain_document(chain)) for chain in found]


def _topic_record(message: Any, verified: Any) -> TopicRecord:
    signature = verified.signature
    return TopicRecord(
        event_id=signature.event_id, event_type=signature.event_type,
        signed_by=signature.agency_code, partition=message.partition, offset=message.offset,
        timestamp_ms=message.timestamp, value=bytes(message.value or b""),
        record=verified.payload, document=to_json(verified.envelope.schema, verified.payload),
    )  # fmt: skip
