"""The reading side of the operator read commands (``zf801 deadletters``, ``blocks``,
``audit tail``): one catalog topic read as an agency, checked against the catalog's read
rule and the brokers' ACLs first, every read audited, every record's seal verified."""

from __future__ import annotations

import datetime as dt
import getpass
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Self

from kafka import KafkaConsumer, TopicPartition

from consumers.runtime import Runtime
from ops.errors import OpsError
from ops.topic_scan import RangeScan
from schemas.agencies import get_agency
from schemas.jsonmap import to_json
from sign.acceptance import AcceptancePolicy
from sign.verify_stage import MemoryDeadLetterSink
from topics.clients import kafka_reader
from topics.errors import AccessDenied
from topics.spec import ReadScope

__all__ = ["SinceInvalid", "TopicReader", "TopicRecord", "parse_since"]

_POLL_MS = 200
_STALL_S = 5.0  # history: stop waiting for a partition end that stopped moving
_RELATIVE = re.compile(r"^([0-9]+)\s*([smhd])$", re.ASCII)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class SinceInvalid(OpsError, ValueError):  # noqa: N818 - reads as a verdict, like the others
    """A ``--since`` that is neither a time nor an age."""


def parse_since(text: str, now: dt.datetime, option: str = "--since") -> dt.datetime:
    """``--since``: an ISO 8601 time (UTC when it names no zone) or an age such as
    ``30m``, ``2h``, ``7d``."""
    relative = _RELATIVE.match(text.strip())
    if relative:
        amount, unit = relative.groups()
        try:
            return now - dt.timedelta(**{_UNITS[unit]: int(amount)})
        except OverflowError:
            raise SinceInvalid(
                f"{option} {text!r}: an age reaching before the year 1 (the calendar's start)"
            ) from None
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise SinceInvalid(
            f"{option} {text!r} is neither an ISO 8601 time (2026-01-31T08:00) nor an age "
            "(30m, 2h, 7d)"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """One record whose seal verified, decoded once."""

    event_id: str
    event_type: str
    signed_by: str
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes
    record: Mapping[str, Any]
    document: Mapping[str, Any]
    """The record in the bus's JSON mapping."""


class TopicReader:
    """Reads one catalog topic as ``runtime``'s agency: the catalog's read rule and then the
    brokers are asked first (refusals raise :class:`AccessDenied`, audited DENIED), each
    read is audited as ``operation``, and every record's seal is verified; a record that
    fails is refused (audited) and counted in :attr:`refused`, never shown."""

    def __init__(
        self, runtime: Runtime, topic_id: str, operation: str, *, court: str | None = None
    ) -> None:
        """``court``: the court whose topic of a per-court entry is read (``alerts``)."""
        self._rt = runtime
        self._reader = get_agency(runtime.agency_code)
        self._operation = operation
        self.topic = runtime.catalog.topic_name(topic_id, court)
        spec = runtime.catalog.get(topic_id)
        role = str(self._reader.role)
        own = self._reader.code if role == "court" else None
        if not runtime.catalog.may_read(role, topic_id, court, reader_court=own):
            why = f"the catalog lets only {', '.join(spec.access.read)} read it"
            if court is not None and spec.access.read_scope is ReadScope.OWN_COURT:
                why += ", a court only its own"
            self._denied(AccessDenied(self._reader.code, self.topic, "READ", why))
        if topic_id == "dead-letter":
            # A dead letter that fails its own check is audited, not dead-lettered again:
            # each read would otherwise add to the topic it reads.
            runtime = replace(runtime, dead_letters=MemoryDeadLetterSink())
        self._stage = runtime.verify_stage(acceptance=AcceptancePolicy.history())
        self._seen: set[tuple[str, str]] = set()
        """(signing agency, event id) of every record accepted: a copy is shown once, and
        another writer's record under the same id is not taken for a copy (it would hide
        the genuine one from the fold that reads it, e.g. a bus escalation)."""
        self._consumer: KafkaConsumer | None = None
        self._assignment: list[TopicPartition] = []
        self.read_to: dict[int, int] = {}
        """The end offset of each partition the last :meth:`history` read up to."""
        self.stalled: dict[int, tuple[int, int]] = {}
        """The partitions the last :meth:`scan` gave up on (no progress for a while):
        the offsets ``(position, stop)`` it did not read."""
        self.deleted: dict[int, tuple[int, int]] = {}
        """The offsets ``(first, stop)`` of a partition that retention deleted while the
        last :meth:`scan` read it."""

    @property
    def refused(self) -> int:
        return sum(self._stage.rejected.values())

    def _denied(self, exc: AccessDenied) -> None:
        self.audit("DENIED", str(exc))
        raise exc

    def audit(self, result: str, detail: str | None) -> None:
        """Every read of the topic, and every refused one, is in the audit log."""
        self._rt.audit.record(
            user=getpass.getuser(), role=str(self._reader.role), agency_code=self._reader.code,
            operation=self._operation, target=self.topic, result=result, detail=detail,
        )  # fmt: skip

    def __enter__(self) -> Self:
        try:
            self._consumer = kafka_reader(
                self._rt.settings, self._reader.code, self.topic,
                client_id=f"zf801-{self._operation}",
            )  # fmt: skip
        except AccessDenied as exc:
            self._denied(exc)
        self._assignment = sorted(self._consumer_().assignment())
        self.audit("SUCCESS", None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _consumer_(self) -> KafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("TopicReader is read inside a `with` block")
        return self._consumer

    def history(
        self,
        *,
        since: dt.datetime | None = None,
        tail: int | None = None,
        start: Mapping[int, int] | None = None,
    ) -> list[TopicRecord]:
        """Every record up to the end the topic has now (kept in :attr:`read_to`), from
        ``since`` (or the start), from the offset ``start`` gives a partition, or only
        the last ``tail`` of each partition."""
        consumer = self._consumer_()
        ends: dict[TopicPartition, int] = consumer.end_offsets(self._assignment)
        self.read_to = {tp.partition: offset for tp, offset in ends.items()}
        if since is not None:
            self._seek_to_time(since, ends)
        if start is not None:
            for tp in self._assignment:
                if tp.partition in start:
                    consumer.seek(tp, min(start[tp.partition], ends[tp]))
        if tail is not None:
            starts = consumer.beginning_offsets(self._assignment)
            for tp in self._assignment:
                consumer.seek(tp, max(starts[tp], ends[tp] - tail))
        records: list[TopicRecord] = []
        progress = time.monotonic()
        while any(consumer.position(tp) < ends[tp] for tp in self._assignment):
            batch = self._poll()
            records += batch
            if batch:
                progress = time.monotonic()
            elif time.monotonic() - progress > _STALL_S:
                break  # e.g. a transaction left open: what is committed has been read
        return records

    def beginnings(self) -> dict[int, int]:
        """The first offset each partition still keeps (retention deletes the older)."""
        starts = self._consumer_().beginning_offsets(self._assignment)
        return {tp.partition: offset for tp, offset in starts.items()}

    def ends(self) -> dict[int, int]:
        """The end offset of each partition now (one past its last record)."""
        ends = self._consumer_().end_offsets(self._assignment)
        return {tp.partition: offset for tp, offset in ends.items()}

    def offsets_at(self, moment: dt.datetime) -> dict[int, int | None]:
        """The first offset of each partition whose record is at or after ``moment``
        (None: no record is). A moment before 1970 is the start: Kafka's timestamps
        begin there (a negative one is refused by the client)."""
        millis = max(0, int(moment.timestamp() * 1000))
        found = self._consumer_().offsets_for_times(dict.fromkeys(self._assignment, millis))
        return {
            tp.partition: (None if (position := found.get(tp)) is None else position.offset)
            for tp in self._assignment
        }

    def scan(self, ranges: Mapping[int, tuple[int, int]]) -> Iterator[Any]:
        """Every consumed record of each partition's ``(first, stop)`` offsets (stop
        exclusive), raw and unverified, for a caller that judges each record itself
        (``zf801 replay``); partitions not in ``ranges`` are not read. Read with aiokafka
        (:class:`ops.topic_scan.RangeScan`), read-committed like every read here; what it
        could not read is left in :attr:`stalled` and :attr:`deleted`."""
        self._consumer_()  # inside the `with`: the read rule checked, the read audited
        scan = RangeScan(self._rt.settings, self._reader.code, self.topic,
                         f"zf801-{self._operation}")  # fmt: skip
        self.stalled, self.deleted = {}, {}
        try:
            yield from scan.records(ranges)
        finally:
            self.stalled, self.deleted = scan.stalled, scan.deleted

    def _seek_to_time(self, since: dt.datetime, ends: Mapping[TopicPartition, int]) -> None:
        consumer = self._consumer_()
        found = self.offsets_at(since)
        for tp in self._assignment:
            offset = found[tp.partition]
            consumer.seek(tp, offset if offset is not None else ends[tp])

    def follow(
        self, idle_s: float | None = None, stop: Callable[[], bool] = lambda: False
    ) -> Iterator[TopicRecord]:
        """New records as they arrive: forever (``idle_s`` None) or until none came for
        ``idle_s`` seconds."""
        last = time.monotonic()
        while not stop():
            batch = self._poll()
            yield from batch
            if batch:
                last = time.monotonic()
            elif idle_s is not None and time.monotonic() - last >= idle_s:
                return

    def _poll(self) -> list[TopicRecord]:
        polled = self._consumer_().poll(timeout_ms=_POLL_MS, max_records=500)
        return [
            record
            for messages in polled.values()
            for message in messages
            if (record := self._accept(message)) is not None
        ]

    def _accept(self, message: Any) -> TopicRecord | None:
        verified = self._stage.check_record(message)
        if verified is None:
            return None
        signature = verified.signature
        seen = (signature.agency_code, signature.event_id)
        if seen in self._seen:  # a redelivered copy: shown once
            return None
        self._seen.add(seen)
        return TopicRecord(
            event_id=signature.event_id,
            event_type=signature.event_type,
            signed_by=signature.agency_code,
            partition=message.partition,
            offset=message.offset,
            timestamp_ms=message.timestamp,
            value=bytes(message.value or b""),
            record=verified.payload,
            document=to_json(verified.envelope.schema, verified.payload),
        )
