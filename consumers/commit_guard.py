"""Keeps faust's offset commits moving when its own bookkeeping falls behind the group's.

faust commits a partition's offset only while the offsets its agents acknowledged start
right after the offset it believes committed (``Consumer._new_offset``: a gap of more than
one at the head of the acknowledged offsets returns "nothing to commit", forever). That
belief is set from the brokers when a rebalance's recovery seeks the stream partitions to
their committed offsets (``perform_seek``), which it does *after* resuming them, so it
races with fetching and committing:

- a worker that has just lost a partition can still commit it (the brokers accept a
  commit from any member of the current generation), after the worker that received the
  partition read the older committed offset: the newcomer starts from the newer one, its
  acknowledgements begin above the old belief, and none of its commits is ever sent;
- records fetched before the seek completes move faust's read position ahead, so the
  records the seek asked for again are dropped as already read.

Seen on two workers as "the group did not consume the order topics": every record
processed and acknowledged, the committed offset stuck a few records behind, no error
(faust-streaming 0.15; upstream faust issues #312 and #681 describe the same head-gap
rule). Redelivery after a restart made no record lost, but lag never cleared and a
restart would redo every record since.

A third way records stop: faust's fetch loop takes a batch from the Kafka consumer (whose
position then moves past it) and drops it without delivering it to any agent when the
flow is suspended or the generation changes halfway through the batch, or when the
partition is not among those it considers active at that moment (``Consumer.getmany``).
It does not seek back. Seen on one worker after a restart: the order at offset 0 fetched
(position 1), never delivered (faust's read offset of the partition still unset), never
acknowledged, so never committed, and nothing fetched it again.

The guard looks every few seconds, and acts on what it sees on two looks in a row:

- a partition whose acknowledged offsets stand above faust's committed offset by more
  than one: it asks the brokers for the group's committed offset; if that covers the head
  of the acknowledged offsets (another worker committed what lies between), faust's
  belief is brought up to it and its next commit goes out; if not, the records between
  were never committed by anyone, and the partition is sought back to the brokers'
  offset so they are processed here;
- a partition with nothing delivered and unacknowledged, whose consumer position stands
  beyond the next record faust delivered (its read offset, or the group's committed
  offset when it delivered none): the records between were fetched and dropped, and the
  partition is sought back to that record, or to the group's committed offset when that
  is earlier (see :func:`lost_fetches`).

Two of faust's rules commit past records no agent ever received, and no look can see it
afterwards: the head-gap rule lets a gap of exactly one through, and is skipped while the
committed offset is 0 or unknown; and a jump between two delivered offsets is taken as
offsets that do not exist (compaction, transaction markers) and acknowledged. A batch
dropped undelivered (above) is then committed as if processed, and its orders never
reach the watchlist: seen as one to four orders of 48 without a single hit in about one
run in five of the three-worker scale-out test, every offset committed, nothing refused.
The bus's own intake topics have no such offsets (never compacted, never written in
transactions), so on them :class:`ExactCommits` replaces both rules: a partition's
commit moves only over an unbroken run of acknowledged offsets starting at the offset
committed (or, for a partition the group never committed, at its first offset), and a
jump is left a hole the guard repairs.

Every effect of the order flow is idempotent, as on any redelivery. Every repair is
logged as a warning.
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CommitGuard",
    "ExactCommits",
    "Repair",
    "StuckPartition",
    "faust_settling",
    "lost_fetches",
    "next_commit",
    "repairs",
]

log = logging.getLogger(__name__)


def faust_settling(app: Any) -> bool:
    """Whether the faust application ``app`` is rebalancing or restoring its tables: its
    assignment and offsets are not to be acted on until it is done (``in_recovery`` is
    not on every faust version's app)."""
    return bool(app.rebalancing or getattr(app, "in_recovery", False))


@dataclass(frozen=True)
class StuckPartition:
    """A partition whose acknowledged offsets start ``first_acked`` while faust believes
    ``believed`` committed: faust sends no commit for it while this lasts."""

    first_acked: int
    believed: int


@dataclass(frozen=True)
class Repair:
    """What to do for one stuck partition: adopt the brokers' committed offset as faust's
    belief, and seek back to it when records below the acknowledged ones were never
    committed."""

    committed: int
    seek: bool


def next_commit(acked: list[int], index: set[int], expected: int) -> int | None:
    """For a partition whose offsets have no gaps: the offset to commit (the next record
    to process) once the records from ``expected`` on were acknowledged without a hole,
    else None. Offsets below ``expected`` (redeliveries of committed records) and those
    committed now leave ``acked`` and ``index`` (faust's list and set of them)."""
    acked.sort()
    below = bisect_left(acked, expected)
    if below:
        index.difference_update(acked[:below])
        del acked[:below]
    if not acked or acked[0] != expected:
        return None
    end = 1
    while end < len(acked) and acked[end] == acked[end - 1] + 1:
        end += 1
    last = acked[end - 1]
    index.difference_update(acked[:end])
    del acked[:end]
    return last + 1


class ExactCommits:
    """faust's commit rules replaced, on the ``dense`` topics (offsets without gaps), by
    :func:`next_commit` (see the module docstring)."""

    def __init__(self, dense: Collection[str]) -> None:
        self.dense = frozenset(dense)
        self.starts: dict[Any, int] = {}
        """The first offset of each partition held that the group never committed."""
        self._consumer: Any = None
        self._reading: asyncio.Task[dict[Any, int]] | None = None

    def expected(self, consumer: Any, tp: Any) -> int | None:
        """The next record to process of ``tp`` as committed (faust keeps 0 as None)."""
        committed = consumer._committed_offset.get(tp)
        return committed if committed is not None else self.starts.get(tp)

    def install(self, consumer: Any) -> None:
        """Replace faust's ``_new_offset`` and ``_add_gap`` on ``consumer`` (once)."""
        if consumer is self._consumer or not self.dense:
            return
        faust_new_offset, faust_add_gap = consumer._new_offset, consumer._add_gap

        def new_offset(tp: Any) -> int | None:
            if tp.topic not in self.dense:
                return faust_new_offset(tp)  # type: ignore[no-any-return]
            expected = self.expected(consumer, tp)
            if expected is None:
                self._read_starts(consumer)
                return None
            return next_commit(consumer._acked[tp], consumer._acked_index[tp], expected)

        async def add_gap(tp: Any, offset_from: int, offset_to: int) -> None:
            if tp.topic not in self.dense:
                await faust_add_gap(tp, offset_from, offset_to)

        consumer._new_offset = new_offset
        consumer._add_gap = add_gap
        self._consumer = consumer

    def _read_starts(self, consumer: Any) -> None:
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self.read_starts(consumer))

    async def read_starts(self, consumer: Any) -> dict[Any, int]:
        """Read the first offsets of the dense partitions held, and keep those of the
        partitions the group never committed (where a commit run starts); return all."""
        tps = [tp for tp in consumer.assignment() if tp.topic in self.dense]
        earliest = await consumer.earliest_offsets(*tps) if tps else {}
        firsts = {tp: offset for tp, offset in earliest.items() if offset is not None}
        self.starts = {
            tp: offset for tp, offset in firsts.items()
            if consumer._committed_offset.get(tp) is None
        }  # fmt: skip
        return firsts


def stuck_partitions(consumer: Any, exact: ExactCommits | None = None) -> dict[Any, StuckPartition]:
    """The partitions of ``consumer`` (faust's) whose commits are held back: by faust's
    head-gap rule, or on a dense topic of ``exact`` by any record missing at the head."""
    stuck = {}
    for tp, acked in list(consumer._acked.items()):
        if not acked:
            continue
        if exact is not None and tp.topic in exact.dense:
            expected = exact.expected(consumer, tp)
            if expected is not None and min(acked) > expected:
                stuck[tp] = StuckPartition(min(acked), expected)
            continue
        believed = consumer._committed_offset.get(tp)
        if believed and min(acked) - believed > 1:
            stuck[tp] = StuckPartition(min(acked), believed)
    return stuck


def repairs(
    stuck: Mapping[Any, StuckPartition],
    committed: Mapping[Any, int | None],
    firsts: Mapping[Any, int] | None = None,
) -> dict[Any, Repair]:
    """The repair of each stuck partition given the brokers' committed offsets and, for
    the dense topics, each partition's first offset (``firsts``): where the group has no
    offset, or one before the first (records deleted by retention before anyone processed
    them), the partition goes on from its first record. Where neither is known nothing is
    done: the next look asks again."""
    out = {}
    for tp, state in stuck.items():
        offset = committed.get(tp)
        first = (firsts or {}).get(tp)
        if offset is None or offset < 0 or (first is not None and offset < first):
            offset = first
        if offset is None:
            continue
        out[tp] = Repair(offset, seek=offset < state.first_acked)
    return out


def lost_fetches(
    positions: Mapping[Any, int | None],
    delivered: Mapping[Any, int | None],
    committed: Mapping[Any, int | None],
) -> dict[Any, int]:
    """The partitions whose consumer position stands beyond the next record to deliver,
    and the offset to fetch again from: ``delivered`` is faust's read offset (the last
    record it delivered; None for none since the assignment), ``committed`` the group's
    committed offset (None: the group has none, then the partition's start).

    The offset is the earlier of the two: faust's read offset right after a rebalance is
    the committed offset itself (the next record, not one delivered), so a batch dropped
    then starts *at* it. Records fetched again that were delivered before are
    redeliveries, which every effect of the order flow absorbs."""
    lost = {}
    for tp, position in positions.items():
        if position is None:
            continue
        last = delivered.get(tp)
        group = committed.get(tp)
        following = last + 1 if last is not None else (group or 0)
        if position > following:
            lost[tp] = min(following, group) if group is not None and group >= 0 else following
    return lost


class CommitGuard:
    """Run :meth:`check` on a timer in the faust worker (see the module docstring)."""

    def __init__(
        self, fetch_committed: Callable[[list[Any]], Any], exact: ExactCommits | None = None
    ) -> None:
        """``fetch_committed(tps)`` is awaited for the brokers' committed offsets;
        ``exact``: the commit rules of the dense topics, installed on the consumer."""
        self._fetch_committed = fetch_committed
        self.exact = exact
        self._seen: dict[Any, StuckPartition] = {}
        self._fetched: dict[Any, tuple[int, int | None]] = {}
        self.repaired = 0

    def attach(self, consumer: Any) -> None:
        """Install the exact commit rules on faust's ``consumer`` (on every assignment,
        before anything is committed; once per consumer)."""
        if self.exact is not None:
            self.exact.install(consumer)

    async def check(self, app: Any) -> None:
        if faust_settling(app):
            self._seen.clear()
            self._fetched.clear()
            return
        self.attach(app.consumer)
        firsts = {} if self.exact is None else await self.exact.read_starts(app.consumer)
        await self._commits(app.consumer, firsts)
        await self._fetches(app.consumer)

    async def _commits(self, consumer: Any, firsts: Mapping[Any, int]) -> None:
        """Repair the partitions held back since the last look; ``firsts``: the first
        offsets of the dense partitions."""
        now = stuck_partitions(consumer, self.exact)
        persistent = {tp: state for tp, state in now.items() if self._seen.get(tp) == state}
        self._seen = now
        if not persistent:
            return
        committed = await self._fetch_committed(list(persistent))
        for tp, repair in repairs(persistent, committed, firsts).items():
            state = persistent[tp]
            log.warning(
                "offset commits of %s held back: acknowledged from %d, faust believed %d "
                "committed; goes on from %d, %s; %s",
                tp, state.first_acked, state.believed, repair.committed,
                "the group's committed offset" if committed.get(tp) == repair.committed
                else "the partition's first record (the group has none after it)",
                "records below were never committed: sought back to process them"
                if repair.seek else "belief brought up to it",
            )  # fmt: skip
            consumer._committed_offset[tp] = repair.committed
            if repair.seek:
                await consumer.seek(tp, repair.committed)
            self.repaired += 1
        self._seen.clear()

    async def _fetches(self, consumer: Any) -> None:
        """Seek back partitions whose fetched records were dropped undelivered."""
        busy = {message.tp for message in consumer._unacked_messages}
        busy.update(tp for tp, acked in consumer._acked.items() if acked)
        quiet = [
            tp for tp in consumer.assignment()
            if tp not in busy and not consumer._is_changelog_tp(tp)
        ]  # fmt: skip
        positions = {tp: await consumer.position(tp) for tp in quiet}
        delivered = {tp: consumer._read_offset.get(tp) for tp in quiet}
        believed = {tp: consumer._committed_offset.get(tp) for tp in quiet}
        ahead = list(lost_fetches(positions, delivered, believed))  # brokers asked next
        now = {tp: (positions[tp] or 0, delivered[tp]) for tp in ahead}
        persistent = [tp for tp in ahead if self._fetched.get(tp) == now[tp]]
        self._fetched = now
        if not persistent:
            return
        committed = await self._fetch_committed(persistent)
        lost = lost_fetches(
            {tp: positions[tp] for tp in persistent}, delivered, committed
        )  # fmt: skip
        for tp, offset in lost.items():
            log.warning(
                "records of %s fetched and never delivered (position %s, last delivered %s): "
                "sought back to %d",
                tp, positions[tp], delivered[tp], offset,
            )  # fmt: skip
            await consumer.seek(tp, offset)
            self.repaired += 1
        self._fetched.clear()
