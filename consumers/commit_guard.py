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

The guard looks every few seconds for a partition whose acknowledged offsets have stood
above faust's committed offset by more than one for two looks in a row, asks the brokers
for the group's committed offset, and then:

- the brokers' offset covers the head of the acknowledged offsets (another worker
  committed what lies between): faust's belief is brought up to it, and its next commit
  goes out;
- it does not: the records between were never committed by anyone, so the partition is
  sought back to the brokers' offset and they are processed here (every effect of the
  order flow is idempotent, as on any redelivery).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CommitGuard", "Repair", "StuckPartition", "repairs"]

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


class CommitGuard:
    """Run :meth:`check` on a timer in the faust worker (see the module docstring)."""

    def __init__(self, fetch_committed: Callable[[list[Any]], Any]) -> None:
        """``fetch_committed(tps)`` is awaited for the brokers' committed offsets."""
        self._fetch_committed = fetch_committed
        self._seen: dict[Any, StuckPartition] = {}
        self.repaired = 0

    async def check(self, app: Any) -> None:
        if app.rebalancing or getattr(app, "in_recovery", False):
            self._seen.clear()
            return
        consumer = app.consumer
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
