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

Every effect of the order flow is idempotent, as on any redelivery. Every repair is
logged as a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CommitGuard", "Repair", "StuckPartition", "lost_fetches", "repairs"]

log = logging.getLogger(__name__)


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


def stuck_partitions(consumer: Any) -> dict[Any, StuckPartition]:
    """The partitions of ``consumer`` (faust's) that its head-gap rule holds back."""
    stuck = {}
    for tp, acked in list(consumer._acked.items()):
        believed = consumer._committed_offset.get(tp)
        if acked and believed and min(acked) - believed > 1:
            stuck[tp] = StuckPartition(min(acked), believed)
    return stuck


def repairs(
    stuck: Mapping[Any, StuckPartition], committed: Mapping[Any, int | None]
) -> dict[Any, Repair]:
    """The repair of each stuck partition given the brokers' committed offsets (None:
    the group has none for it, then nothing is done: the next look asks again)."""
    out = {}
    for tp, state in stuck.items():
        offset = committed.get(tp)
        if offset is None or offset < 0:
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

    def __init__(self, fetch_committed: Callable[[list[Any]], Any]) -> None:
        """``fetch_committed(tps)`` is awaited for the brokers' committed offsets."""
        self._fetch_committed = fetch_committed
        self._seen: dict[Any, StuckPartition] = {}
        self._fetched: dict[Any, tuple[int, int | None]] = {}
        self.repaired = 0

    async def check(self, app: Any) -> None:
        if app.rebalancing or getattr(app, "in_recovery", False):
            self._seen.clear()
            self._fetched.clear()
            return
        await self._commits(app.consumer)
        await self._fetches(app.consumer)

    async def _commits(self, consumer: Any) -> None:
        now = stuck_partitions(consumer)
        persistent = {tp: state for tp, state in now.items() if self._seen.get(tp) == state}
        self._seen = now
        if not persistent:
            return
        committed = await self._fetch_committed(list(persistent))
        for tp, repair in repairs(persistent, committed).items():
            state = persistent[tp]
            log.warning(
                "offset commits of %s held back: acknowledged from %d, faust believed %d "
                "committed, the group has %d; %s",
                tp, state.first_acked, state.believed, repair.committed,
                "records below were never committed: sought back to process them"
                if repair.seek else "belief brought up to the group's",
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
