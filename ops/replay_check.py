"""The pure side of ``zf801 replay``: the range asked for (``--from``/``--to``, a time or
an offset), what it covers of each partition and what retention already deleted of it,
the tally of what the verify stage said about each record (a break is named by topic,
partition, offset and the stage's reason code), and the report document.

Nothing here reads Kafka: ``ops.cmd_replay`` reads the records and hands them over, so
unit tests drive all of it without a broker.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.cmd_audit import AuditEntry, ChainSummary, chain_summaries
from ops.errors import OpsError
from schemas.envelope import from_micros
from schemas.files import check_replaceable
from sign.checkpoint import CheckpointCheck
from sign.errors import KeyRevoked, Replayed
from sign.trust import TrustStore
from sign.verify_stage import Rejection, VerifiedEvent
from topics.catalog import Catalog
from topics.errors import UnknownTopic

__all__ = [
    "REPORT_FORMAT",
    "RETENTION",
    "STALLED",
    "ArrivalClock",
    "Bound",
    "Break",
    "Gap",
    "PartitionCount",
    "PartitionRange",
    "ReplayInputError",
    "ReplayTally",
    "chains_in_range",
    "check_bounds",
    "check_out_path",
    "parse_bound",
    "partition_range",
    "replay_topics",
    "report_document",
    "revoked_on_arrival",
    "start_offset",
]

REPORT_FORMAT = "zf801-replay-report/1"

RETENTION = "deleted by retention"
STALLED = "not read: the partition stopped short of its end (a transaction still open?)"

_OFFSET = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: str.isdigit takes "²" and "١"
MAX_OFFSET = 2**63 - 1
"""Kafka's offsets are signed 64-bit."""

Bound = dt.datetime | int
"""A range end: a time (aware) or an offset that applies to every partition."""


class ReplayInputError(OpsError, ValueError):
    """A replay option that cannot be used; the message names the option and the rule."""


def parse_bound(text: str, option: str) -> Bound:
    """``--from``/``--to``: a non-negative integer offset, or an ISO 8601 time with a zone."""
    stripped = text.strip()
    if _OFFSET.fullmatch(stripped):
        offset = int(stripped)
        if offset < 0:
            raise ReplayInputError(f"{option} {text!r}: an offset is 0 or more")
        if offset > MAX_OFFSET:
            raise ReplayInputError(f"{option} {text!r}: an offset is at most {MAX_OFFSET}")
        return offset
    try:
        moment = dt.datetime.fromisoformat(stripped)
    except ValueError as exc:
        raise ReplayInputError(
            f"{option} {text!r}: neither an offset (0 or more) nor an ISO 8601 time with a "
            "zone (2026-11-28T08:00:00+08:00)"
        ) from exc
    if moment.tzinfo is None:
        raise ReplayInputError(
            f"{option} {text!r}: a time needs its zone (Z or +08:00): a replay range is "
            "never guessed"
        )
    return moment


def check_bounds(start: Bound | None, end: Bound | None) -> None:
    """Refuse a ``--from`` after ``--to`` when both are of one kind (two times or two
    offsets); a time and an offset are compared per partition once resolved."""
    if start is None or end is None or isinstance(start, int) != isinstance(end, int):
        return
    if isinstance(start, int) and isinstance(end, int):
        if start > end:
            raise ReplayInputError(f"--from {start} is after --to {end}: --from <= --to")
    elif isinstance(start, dt.datetime) and isinstance(end, dt.datetime) and start >= end:
        raise ReplayInputError(
            f"--from {start.isoformat()} is not before --to {end.isoformat()}: --from < --to"
        )


def replayable(catalog: Catalog, topic_id: str) -> str | None:
    """Why a catalog topic cannot be replayed (None: it can): a per-court, per-province or
    per-unit template names no one topic, and a processor's state topic carries sealed state
    records, not signed events."""
    spec = catalog.get(topic_id)
    if spec.is_template:
        return (
            "a per-court, per-province or per-unit topic; replay names topics with one Kafka name"
        )
    if not spec.value_schemas:
        return "it carries a processor's sealed state, not signed events"
    return None


def replay_topics(catalog: Catalog, role: str, wanted: Sequence[str] | None) -> list[str]:
    """The catalog ids to replay: ``wanted`` (each checked), or every replayable topic
    the reader's role may read. Whether the reader may read a named topic is checked
    (and a refusal audited) when it is opened."""
    if not wanted:
        return [
            topic_id
            for topic_id in catalog.ids()
            if replayable(catalog, topic_id) is None and role in catalog.get(topic_id).access.read
        ]
    chosen: list[str] = []
    for topic_id in wanted:
        try:
            why = replayable(catalog, topic_id)
        except UnknownTopic as exc:
            raise ReplayInputError(f"--topics {topic_id!r}: {exc}") from exc
        if why is not None:
            raise ReplayInputError(f"--topics {topic_id!r}: cannot be replayed: {why}")
        if topic_id not in chosen:
            chosen.append(topic_id)
    return chosen


def check_out_path(path: Path) -> None:
    """``--out``: a file (not a folder) in an existing folder this user may write, with
    its seal beside it; checked before anything is read, so a bad path writes nothing.
    (/dev/null, /dev/stdout, a FIFO: nothing to seal.)"""
    check_replaceable(path, "--out", ReplayInputError, rule="; the report is sealed as a file")
    if not os.access(path.parent, os.W_OK):
        raise ReplayInputError(f"--out {path}: its folder is not writable by this user")


@dataclass(frozen=True, slots=True)
class Gap:
    """Offsets of a partition inside the range that were not read: deleted by retention,
    or (``cause``) not readable when the replay ran. Never passed over silently."""

    topic: str
    partition: int
    first: int
    last: int
    cause: str = RETENTION

    def describe(self) -> str:
        return (
            f"{self.topic} partition {self.partition}: offsets {self.first}..{self.last} "
            f"{self.cause}"
        )


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """What is read of one partition: offsets ``first`` up to ``stop`` (exclusive)."""

    topic: str
    partition: int
    first: int
    stop: int
    gap: Gap | None = None

    @property
    def size(self) -> int:
        return max(self.stop - self.first, 0)


def partition_range(  # noqa: PLR0917 - a partition's facts, all needed
    topic: str,
    partition: int,
    log_start: int,
    log_end: int,
    start: int | None,
    stop: int | None,
) -> PartitionRange:
    """The range of one partition. ``start`` is the first offset asked for (None: the
    topic's beginning, offset 0), ``stop`` one past the last (None: the end now). A
    time resolves to the first offset whose record is at or after it; a time at or before
    the first record still kept resolves to ``log_start`` and is passed here as 0, since
    the deleted records before it may lie in the range. What of ``[start, stop)`` lies
    before ``log_start`` is a :class:`Gap`."""
    wanted_first = 0 if start is None else start
    wanted_stop = log_end if stop is None else stop
    first = max(wanted_first, log_start)
    end = min(wanted_stop, log_end)
    gap = None
    gap_last = min(wanted_stop, log_start) - 1
    if wanted_first <= gap_last:
        gap = Gap(topic, partition, wanted_first, gap_last)
    return PartitionRange(topic, partition, first, max(first, end), gap)


def start_offset(found: int | None, log_start: int, log_end: int) -> int:
    """The start offset asked for by a time, from ``offsets_for_times`` (None: no record
    at or after the time): a time that reaches back to the first kept record reaches into
    what retention deleted, so it starts at 0."""
    if found is None:
        return log_end
    return 0 if found <= log_start else found


class ArrivalClock:
    """The verify stage's clock during a replay: the time the record being judged reached
    the bus (its Kafka timestamp), so each record's ``ce_time`` is held to the acceptance
    window it met on arrival (``TOO_OLD``, ``CLOCK_AHEAD``), as the bus judged it then."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = dt.datetime.now(dt.UTC)

    def set(self, timestamp_ms: int) -> dt.datetime:
        """The record being judged reached the bus at ``timestamp_ms`` (a record without a
        timestamp is judged at the replay's own time)."""
        self.at = from_micros(timestamp_ms * 1000) if timestamp_ms >= 0 else dt.datetime.now(dt.UTC)
        return self.at

    def __call__(self) -> dt.datetime:
        return self.at


def revoked_on_arrival(
    trust: TrustStore, verified: VerifiedEvent, arrival: dt.datetime
) -> str | None:
    """Why a record valid at its ``ce_time`` is still suspect: its key was revoked before
    the record reached the bus (a holder of a revoked key back-dating ``ce_time``); None
    otherwise. A key that merely expired after ``ce_time`` is no fault (a sighting stored
    and forwarded after an outage)."""
    signature = verified.signature
    if arrival <= signature.event_time:
        return None
    try:
        trust.authorise(signature.key_id, signature.agency_code, arrival)
    except KeyRevoked as exc:
        return (
            f"ce_time {signature.event_time.isoformat()} precedes the revocation, but the "
            f"record reached the bus at {arrival.isoformat()}: {exc.detail}"
        )
    except Exception:
        return None
    return None


@dataclass(frozen=True, slots=True)
class Break:
    """A record that fails the replay's check, with the verify stage's reason code."""

    topic: str
    partition: int
    offset: int
    reason: str
    detail: str

    def document(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass(slots=True)
class PartitionCount:
    topic: str
    partition: int
    first: int
    stop: int
    records: int = 0
    verified: int = 0
    breaks: int = 0
    judged: bool = True
    """False when the replay only counts (no ``--verify``): ``verified`` means nothing."""

    def document(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "from_offset": self.first,
            "to_offset": self.stop - 1,
            "records": self.records,
            "verified": self.verified if self.judged else None,
            "breaks": self.breaks,
        }


@dataclass
class ReplayTally:
    """Counts per partition and the breaks, record by record. A ``ce_id`` seen before on
    the same topic at another position is a break (``REPLAYED``); the same id on another
    topic is not (the bus copies records between topics, e.g. routed sightings)."""

    verify: bool = True
    """False: records are only counted, never judged."""
    counts: dict[tuple[str, int], PartitionCount] = field(default_factory=dict)
    breaks: list[Break] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    chain_breaks: list[str] = field(default_factory=list)
    checkpoints: dict[str, int] | None = None
    """The log checkpoints' summary (:meth:`add_checkpoints`); None: not checked."""
    _seen: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)

    def expect(self, ranges: Iterable[PartitionRange]) -> None:
        for scope in ranges:
            self.counts[(scope.topic, scope.partition)] = PartitionCount(
                scope.topic, scope.partition, scope.first, scope.stop, judged=self.verify
            )
            if scope.gap is not None:
                self.gaps.append(scope.gap)

    def add(
        self,
        topic: str,
        partition: int,
        offset: int,
        verified: VerifiedEvent | None,
        rejection: Rejection | None,
        *,
        revoked: str | None = None,
        refused: tuple[str, str] | None = None,
    ) -> Break | None:
        """Count one record: verified, or refused with ``rejection``'s reason, or verified
        but signed with a key ``revoked`` before it arrived (:func:`revoked_on_arrival`),
        or verified but ``refused`` (reason code, detail) by its reader's own rule (a
        court's alert addressing); only counted when the tally does not ``verify``."""
        if verified is None:
            refusal = (
                (rejection.reason, rejection.detail)
                if rejection is not None
                else ("VERIFY_ERROR", "refused without a reason")
            )
            return self.add_verdict(topic, partition, offset, None, refusal)
        return self.add_verdict(
            topic, partition, offset, verified.signature.event_id, refused, revoked=revoked
        )

    def add_verdict(
        self,
        topic: str,
        partition: int,
        offset: int,
        event_id: str | None,
        refusal: tuple[str, str] | None,
        *,
        revoked: str | None = None,
    ) -> Break | None:
        """:meth:`add` from a verdict reached elsewhere (a process of the replay's pool):
        the verified record's ``event_id`` (None: refused), the ``refusal`` (reason code,
        detail) of the verify stage or of the reader's own rule, and ``revoked``."""
        count = self.counts.setdefault(
            (topic, partition),
            PartitionCount(topic, partition, offset, offset + 1, judged=self.verify),
        )
        count.records += 1
        if not self.verify:
            return None
        found: Break | None = None
        if event_id is None:
            reason, detail = refusal or ("VERIFY_ERROR", "refused without a reason")
            found = Break(topic, partition, offset, reason, detail)
        else:
            found = self._replayed(topic, partition, offset, event_id)
            if found is None and refusal is not None:
                found = Break(topic, partition, offset, *refusal)
            if found is None and revoked is not None:
                found = Break(topic, partition, offset, KeyRevoked.reason, revoked)
        if found is None:
            count.verified += 1
            return None
        count.breaks += 1
        self.breaks.append(found)
        return found

    def _replayed(self, topic: str, partition: int, offset: int, event_id: str) -> Break | None:
        seen = self._seen.setdefault(topic, {})
        earlier = seen.setdefault(event_id, (partition, offset))
        if earlier == (partition, offset):
            return None
        return Break(
            topic, partition, offset, Replayed.reason,
            f"ce_id {event_id} first seen at partition {earlier[0]} offset {earlier[1]}",
        )  # fmt: skip

    def add_chain_breaks(self, breaks: Iterable[str]) -> None:
        """Breaks of the audit hash chains in range (``ops.cmd_audit.chain_summaries``):
        they have no reason code of the verify stage, so they stay in the chains' words."""
        self.chain_breaks.extend(breaks)

    def add_checkpoints(self, check: CheckpointCheck) -> None:
        """The outcome of the log checkpoints' check: each checkpoint that does not hold
        is a break at the checkpoint record's own place."""
        self.checkpoints = check.summary()
        for finding in check.findings:
            self.breaks.append(Break(*finding.place, finding.reason, finding.detail))

    @property
    def records(self) -> int:
        return sum(count.records for count in self.counts.values())

    @property
    def clean(self) -> bool:
        return not self.breaks and not self.gaps and not self.chain_breaks


def _bound_text(bound: Bound | None) -> object:
    if bound is None:
        return None
    return bound if isinstance(bound, int) else bound.isoformat()


def chains_in_range(
    before: Iterable[AuditEntry], in_range: Sequence[AuditEntry]
) -> list[ChainSummary]:
    """The audit chains with a record in range, each checked from its start: the records
    ``before`` the range only link the chains, so a chain (or a second process's chain
    of one agency) that started before the range is no break, while any break of a chain
    that reaches into the range is one."""
    places = {(entry.partition, entry.offset) for entry in in_range}
    return [
        chain
        for chain in chain_summaries([*before, *in_range])
        if (chain.last.partition, chain.last.offset) in places
    ]


def report_document(
    *,
    reader: str,
    topic_ids: Sequence[str],
    topics: Sequence[str],
    start: Bound | None,
    end: Bound | None,
    verify: bool,
    tally: ReplayTally,
    chains: Sequence[Mapping[str, Any]],
    started: dt.datetime,
    finished: dt.datetime,
    rematch: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report as a JSON-ready mapping (``REPORT_FORMAT``): what was asked, what each
    partition held, every break, chain and gap, the rematch (``ops.rematch``: its
    ``breaks`` fail the replay as the others do), and whether it is clean."""
    ordered = sorted(tally.counts.values(), key=lambda c: (c.topic, c.partition))
    clean = tally.clean and not (rematch is not None and rematch["breaks"])
    document: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "reader": reader,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "range": {
            "topic_ids": list(topic_ids),
            "topics": list(topics),
            "from": _bound_text(start),
            "to": _bound_text(end),
        },
        "verified": verify,
        "clean": clean,
        "records": tally.records,
        "partitions": [count.document() for count in ordered],
        "breaks": [b.document() for b in sorted(tally.breaks, key=_break_order)],
        "chains": list(chains),
        "checkpoints": tally.checkpoints,
        "gaps": [
            {
                "topic": g.topic,
                "partition": g.partition,
                "first_offset": g.first,
                "last_offset": g.last,
                "detail": g.describe(),
            }
            for g in tally.gaps
        ],
    }
    if rematch is not None:
        document["rematch"] = dict(rematch)
    return document


def _break_order(found: Break) -> tuple[str, int, int]:
    return (found.topic, found.partition, found.offset)
