"""The engine of ``zf801 publish``: check input lines as they are read, hold what waits on a
disk spool (never in memory), send in windows, and report exactly which lines the broker
acknowledged.

A line's fate is printed only once it is settled: an acknowledged event once the broker
has acknowledged both the event and its audit record (audit records are batched per
window, sent without waiting and settled together, so they cost little and none is lost);
a line the broker did not acknowledge, when sending stops, with the event id it was sent
under. That output, given back with ``--skip-acknowledged``, makes a rerun safe: the lines
acknowledged are skipped and the others are sent again under the same event ids, so a
copy that did reach the bus is dropped as a replay, not acted on twice.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import multiprocessing
import os
import pickle
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kafka.errors import KafkaError

from ops.errors import OpsError
from ops.publish_input import (
    BadLine,
    InputAbandonedError,
    InputError,
    check_text,
    read_documents,
)
from producers.publisher import Publisher
from producers.routes import SUBJECT_FIELD, check_sender, checked_event
from schemas.envelope import KafkaRecord
from schemas.errors import BusError
from schemas.identifiers import normalise_id_number, normalise_plate_number, normalise_vin
from schemas.jsonmap import from_json, json_kind
from schemas.registry import RegisteredSchema

__all__ = [
    "EVENT_ID_FIELD",
    "MAX_REPORT_ROW_BYTES",
    "READ_AHEAD_LINES",
    "UNACKNOWLEDGED",
    "CheckedEvent",
    "EventIds",
    "LineChecker",
    "Outcome",
    "PriorRun",
    "Sender",
    "Spool",
]

EVENT_ID_FIELD = "ce_id"
"""An input line's optional top-level event id (a UUID); not part of the record."""
UNACKNOWLEDGED = "UNACKNOWLEDGED"
"""The topic column of a report row whose line the broker did not acknowledge."""

_RELEASE = "cn.zf801.orders.v1.OrderRelease"
_ID_NAMESPACE = uuid.UUID("0f3c6f0e-7d51-5a8e-9e57-1b6d2a3c4e5f")  # ids derived by --id-from


@dataclass(frozen=True, slots=True)
class CheckedEvent:
    """An input line that passed every check: signed and ready to send."""

    line: int
    event_id: str
    topic: str
    record: KafkaRecord


# --- event ids -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PriorRun:
    """What an earlier run's report says: the lines acknowledged, and the event ids that
    lines the broker did not acknowledge were sent under."""

    acknowledged: frozenset[int] = frozenset()
    unacknowledged: Mapping[int, str] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> PriorRun:
        """Parse a report (the rows ``zf801 publish`` printed), row by row as it is read;
        raises OpsError naming the report and the rule when it is no regular file, or at
        the first row that is not a report row (one longer than
        :data:`MAX_REPORT_ROW_BYTES` is refused unread)."""
        acknowledged: set[int] = set()
        unacknowledged: dict[int, str] = {}
        for number, row in _report_rows(path):
            if not row.strip():
                continue
            fields = row.split("\t")
            try:
                event_id, topic, partition, _offset, line = fields
                uuid.UUID(event_id)
                if not (line.isascii() and line.isdigit()):
                    raise ValueError(line)
                line_number = int(line)
            except ValueError:
                raise OpsError(
                    f"{_REPORT_OPTION} {path}: row {number} is not a report row "
                    "(event id, topic, partition, offset, line)"
                ) from None
            if topic == UNACKNOWLEDGED:
                unacknowledged[line_number] = event_id
            elif partition.isascii() and partition.isdigit():
                acknowledged.add(line_number)
                unacknowledged.pop(line_number, None)
        return cls(frozenset(acknowledged), unacknowledged)


MAX_REPORT_ROW_BYTES = 4096
"""Longest report row read: a row printed by ``zf801 publish`` (event id 36, topic name at
most 249, partition, offset and line number at most 20 digits each, 4 tabs) stays under
400 bytes. A report is read one row at a time, so its size (a run of millions of lines
makes a report of hundreds of MB) costs no memory beyond the line numbers it names; only
a row is bounded."""
_REPORT_OPTION = "--skip-acknowledged"


def _report_rows(path: Path) -> Iterator[tuple[int, str]]:
    """(row number, text without its line end) of each row of the report at ``path``, a
    regular file (a device such as ``/dev/zero``, a FIFO or a folder is refused before
    anything is read); OpsError naming the option and the rule otherwise."""
    where = f"{_REPORT_OPTION} {path}"
    try:
        # O_NONBLOCK: opening a FIFO nobody writes to returns at once (to be refused below)
        # instead of waiting for a writer; it changes nothing for a regular file.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise OpsError(f"{where}: not found") from None
    except OSError as exc:
        raise OpsError(f"{where}: cannot be read: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        rule = "a folder, not a file" if stat.S_ISDIR(mode) else "not a regular file"
        raise OpsError(f"{where}: {rule}")
    with os.fdopen(fd, "rb") as handle:
        number = 0
        try:
            while raw := handle.readline(MAX_REPORT_ROW_BYTES + 1):
                number += 1
                if len(raw) > MAX_REPORT_ROW_BYTES:
                    raise OpsError(
                        f"{where}: row {number} is longer than {MAX_REPORT_ROW_BYTES} bytes: "
                        "not a report row"
                    )
                try:
                    yield number, raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    raise OpsError(f"{where}: row {number} is not UTF-8 text") from None
        except OSError as exc:
            raise OpsError(f"{where}: cannot be read: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class EventIds:
    """Where a line's event id comes from: its own ``ce_id``, else the record field named
    by ``--id-from`` (a UUID value is taken as is; any other value yields a UUID derived
    from the agency, the event type and the value), else the id an earlier run sent the
    line under, else a new random one."""

    agency: str
    id_from: tuple[str, ...] = ()
    prior: PriorRun = field(default_factory=PriorRun)

    def for_line(self, line: int, schema: str, record: Mapping[str, Any], own: Any) -> str:
        if own is not None:
            if not isinstance(own, str):
                raise InputError(f"{EVENT_ID_FIELD}: must be a UUID string [rule ce_id.uuid]")
            try:
                return str(uuid.UUID(own))
            except ValueError:
                raise InputError(
                    f"{EVENT_ID_FIELD}: {own[:60]!r} is not a UUID [rule ce_id.uuid]"
                ) from None
        if self.id_from:
            return self._derived(schema, record)
        return self.prior.unacknowledged.get(line) or str(uuid.uuid4())

    def _derived(self, schema: str, record: Mapping[str, Any]) -> str:
        path = ".".join(self.id_from)
        value: Any = record
        for name in self.id_from:
            value = value.get(name) if isinstance(value, Mapping) else None
        if value is None or isinstance(value, (Mapping, list, bytes)):
            raise InputError(
                f"{path}: --id-from names a field this line has no text or number in "
                "[rule id_from.present]"
            )
        text = str(value)
        try:
            return str(uuid.UUID(text))
        except ValueError:
            return str(uuid.uuid5(_ID_NAMESPACE, f"{self.agency}\0{schema}\0{text}"))


# --- checking --------------------------------------------------------------------------------
def _release_subject(document: dict[str, Any]) -> dict[str, str]:
    """The ``subject`` of an OrderRelease input (not part of the record), normalised."""
    subject = document.pop(SUBJECT_FIELD, None)
    if not isinstance(subject, Mapping):
        raise InputError(
            f"{SUBJECT_FIELD}: an OrderRelease needs the subject its order was issued for, "
            '{"id_number": ...} or {"plate_number": ..., "vin": ...} [rule required]'
        )
    kind = document.get("order_kind")
    if kind == "VEHICLE_SEARCH":
        if not subject.get("plate_number"):
            raise InputError(f"{SUBJECT_FIELD}.plate_number: a vehicle order's release needs it")
        plate = normalise_plate_number(subject["plate_number"], f"{SUBJECT_FIELD}.plate_number")
        out = {"plate_number": plate}
        if subject.get("vin") is not None:
            out["vin"] = normalise_vin(subject["vin"], f"{SUBJECT_FIELD}.vin")
        return out
    if not subject.get("id_number"):
        raise InputError(f"{SUBJECT_FIELD}.id_number: a person order's release needs it")
    return {"id_number": normalise_id_number(subject["id_number"], f"{SUBJECT_FIELD}.id_number")}


class LineChecker:
    """Checks input lines one at a time (JSON, text hygiene, the schema's JSON mapping,
    identifier and edge rules, the sending agency, routing, the catalog's write rule, the
    codec) and signs the good ones; nothing is sent."""

    def __init__(self, publisher: Publisher, schema: RegisteredSchema, ids: EventIds) -> None:
        self._publisher = publisher
        self._schema = schema
        self._ids = ids

    def check(self, line: int, document: Any) -> CheckedEvent | BadLine:
        try:
            return self._checked(line, document)
        except (BusError, ValueError) as exc:  # every edge error names field and rule
            return BadLine(line, str(exc))
        except Exception as exc:  # a checker tripped on a hostile shape: still this line's
            return BadLine(line, f"cannot be checked ({type(exc).__name__}: {exc})")

    def _checked(self, line: int, document: Any) -> CheckedEvent:
        schema = self._schema
        if not isinstance(document, dict):
            raise InputError(f"expected a JSON object, got {json_kind(document)}")
        check_text(document, "")
        check_sender(schema.full_name, document, self._publisher.agency.code)
        own_id = document.pop(EVENT_ID_FIELD, None)
        subject = _release_subject(document) if schema.full_name == _RELEASE else None
        event = checked_event(schema.full_name, from_json(schema, document), subject)
        event_id = self._ids.for_line(line, schema.full_name, event.record, own_id)
        topic, signed = self._publisher.prepare(
            dataclasses.replace(event, event_id=event_id), checked=True
        )
        return CheckedEvent(line, event_id, topic, signed)

    def lines(
        self, stream: IO[bytes], skip: frozenset[int] = frozenset(), workers: int = 1
    ) -> Iterator[CheckedEvent | BadLine]:
        """Each line of ``stream`` checked, in input order, as it is read; lines in
        ``skip`` are passed over unchecked. With ``workers`` > 1, once the input holds more
        than one chunk, the checking (mapping, rules, encoding, signing) is spread over
        that many forked processes, each a copy of this checker; at most
        :data:`READ_AHEAD_LINES` lines are read ahead of what has been yielded. Raises
        :class:`ops.publish_input.InputAbandonedError`."""
        documents = (
            (number, document) for number, document in read_documents(stream) if number not in skip
        )
        first = list(itertools.islice(documents, _CHUNK))
        if workers <= 1 or len(first) < _CHUNK:
            for number, document in itertools.chain(first, documents):
                yield document if isinstance(document, BadLine) else self.check(number, document)
            return
        yield from self._in_parallel(itertools.chain(first, documents), workers)

    def _in_parallel(
        self, documents: Iterator[tuple[int, Any]], workers: int
    ) -> Iterator[CheckedEvent | BadLine]:
        pending: collections.deque[Any] = collections.deque()
        # each worker is handed this checker as it starts (inherited through fork, never
        # pickled), so no parent-wide state can be reset under a pool being built
        context = multiprocessing.get_context("fork")
        with context.Pool(workers, initializer=_adopt_checker, initargs=(self,)) as pool:
            try:
                while chunk := list(itertools.islice(documents, _CHUNK)):
                    pending.append(pool.apply_async(_check_chunk, (chunk,)))
                    while len(pending) >= _CHUNKS_AHEAD:
                        yield from pending.popleft().get()
            except InputAbandonedError:  # what was read before still counts
                while pending:
                    yield from pending.popleft().get()
                raise
            while pending:
                yield from pending.popleft().get()


_CHUNK = 256
_CHUNKS_AHEAD = 4
READ_AHEAD_LINES = _CHUNK * _CHUNKS_AHEAD
"""The most lines read (and held) ahead of the checked lines handed out."""
_FORKED_CHECKER: LineChecker | None = None


def _adopt_checker(checker: LineChecker) -> None:
    """In a forked worker, as it starts: the checker every chunk is checked with."""
    global _FORKED_CHECKER  # noqa: PLW0603 - one checker per worker process
    _FORKED_CHECKER = checker


def _check_chunk(chunk: list[tuple[int, Any]]) -> list[CheckedEvent | BadLine]:
    """In a forked worker: check the documents of one chunk with the parent's checker."""
    checker = _FORKED_CHECKER
    if checker is None:  # pragma: no cover - only outside a pool of LineChecker.lines
        raise RuntimeError("no checker in this worker")
    return [
        document if isinstance(document, BadLine) else checker.check(number, document)
        for number, document in chunk
    ]


# --- the spool -------------------------------------------------------------------------------
class Spool:
    """Checked events kept on disk in input order until every line has been checked, so
    that endless or huge input never grows memory. Read back once, in order."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="zf801-publish-")  # noqa: SIM115
        self.count = 0

    def add(self, event: CheckedEvent) -> None:
        pickle.dump(event, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self.count += 1

    def __iter__(self) -> Iterator[CheckedEvent]:
        self._file.seek(0)
        for _ in range(self.count):
            yield pickle.load(self._file)  # noqa: S301 - our own file, written above

    def close(self) -> None:
        self._file.close()


# --- sending ---------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What became of the lines given to :class:`Sender`."""

    acknowledged: int = 0
    unacknowledged: list[CheckedEvent] = field(default_factory=list)
    failure: str | None = None


Row = Callable[[CheckedEvent, str, int, int], None]
"""Prints one settled line: (event, topic, partition, offset)."""


class Sender:
    """Sends checked events through the publisher's producer in windows. A window is
    settled (its acknowledgements awaited, ``audit`` called with the acknowledged events
    and their metadata, returning once their audit is acknowledged, its rows printed)
    after the next window has been sent, so the broker always has work.
    Stops at the first event the broker does not acknowledge within ``timeout_s``."""

    def __init__(
        self,
        publisher: Publisher,
        *,
        audit: Callable[[list[tuple[CheckedEvent, Any]]], None],
        row: Row,
        window: int = 1000,
        timeout_s: float = 30.0,
    ) -> None:
        self._publisher = publisher
        self._audit = audit
        self._row = row
        self._window = window
        self._timeout_s = timeout_s
        self.outcome = Outcome()

    def send_all(self, events: Iterable[CheckedEvent]) -> Outcome:
        """Send ``events`` (a lazy iterable: input is read only as fast as it is sent)."""
        unsettled: list[list[tuple[CheckedEvent, Any]]] = []  # sent windows, oldest first
        current: list[tuple[CheckedEvent, Any]] = []
        producer = self._publisher.producer
        try:
            for event in events:
                record = event.record
                future = producer.send(
                    event.topic, key=record.key, value=record.value, headers=list(record.headers)
                )
                current.append((event, future))
                if len(current) >= self._window:
                    unsettled.append(current)
                    current = []
                    if len(unsettled) > 1:
                        self._settle(unsettled.pop(0))
            unsettled.append(current)
            current = []
            while unsettled:
                self._settle(unsettled.pop(0))
        except (_StoppedError, KafkaError) as exc:  # KafkaError: send() got no metadata
            stopped = exc.events if isinstance(exc, _StoppedError) else []
            self.outcome.failure = str(exc)
            self.outcome.unacknowledged += stopped + [
                event for window in [*unsettled, current] for event, _ in window
            ]
        return self.outcome

    def _settle(self, window: list[tuple[CheckedEvent, Any]]) -> None:
        done, missing, failure = self._acknowledgements(window)
        try:
            if done:
                self._audit(done)
        except KafkaError as exc:  # published, but not done until its audit record is
            events = [event for event, _ in done] + missing
            raise _StoppedError(f"the audit records were not acknowledged: {exc}", events) from exc
        for event, metadata in sorted(done, key=lambda item: item[0].line):
            self._row(event, metadata.topic, metadata.partition, metadata.offset)
        self.outcome.acknowledged += len(done)
        if failure is not None:
            raise _StoppedError(failure, missing)

    def _acknowledgements(
        self, window: list[tuple[CheckedEvent, Any]]
    ) -> tuple[list[tuple[CheckedEvent, Any]], list[CheckedEvent], str | None]:
        """(events acknowledged with their metadata, events not, why not) for a window."""
        deadline = time.monotonic() + self._timeout_s
        done: list[tuple[CheckedEvent, Any]] = []
        for index, (event, future) in enumerate(window):
            try:
                done.append((event, future.get(timeout=max(0.0, deadline - time.monotonic()))))
            except KafkaError as exc:
                rest = window[index:]
                done += [(e, f.value) for e, f in rest if _succeeded(f)]
                missing = [e for e, f in rest if not _succeeded(f)]
                return done, missing, f"the broker did not acknowledge line {event.line}: {exc}"
        return done, [], None


def _succeeded(future: Any) -> bool:
    return bool(future.is_done and future.succeeded())


class _StoppedError(Exception):
    def __init__(self, reason: str, events: list[CheckedEvent]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.events = events
