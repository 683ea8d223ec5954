"""The commit guard: which partitions faust's head-gap rule holds back, the repair, and the
exact commit rule of the dense topics."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from faust.types import TP

from consumers.commit_guard import (
    CommitGuard,
    ExactCommits,
    Repair,
    StuckPartition,
    lost_fetches,
    next_commit,
    repairs,
    stuck_partitions,
)

TP0, TP1, TP2 = ("orders", 0), ("orders", 1), ("orders", 2)


class _Consumer:
    """faust's consumer bookkeeping, as the guard reads and repairs it."""

    def __init__(
        self,
        acked: dict[Any, list[int]],
        committed: dict[Any, int | None],
        positions: dict[Any, int] | None = None,
        read: dict[Any, int | None] | None = None,
    ) -> None:
        self._acked: defaultdict[Any, list[int]] = defaultdict(list, acked)
        self._committed_offset: defaultdict[Any, int | None] = defaultdict(lambda: None, committed)
        self._read_offset: dict[Any, int | None] = dict(read or {})
        self._unacked_messages: set[Any] = set()
        self.positions = dict(positions or {})
        self.seeks: list[tuple[Any, int]] = []

    def assignment(self) -> set[Any]:
        return set(self.positions) | {("changelog", 0)}

    def _is_changelog_tp(self, tp: Any) -> bool:
        return bool(tp[0] == "changelog")

    async def position(self, tp: Any) -> int | None:
        return self.positions.get(tp)

    async def seek(self, tp: Any, offset: int) -> None:
        self.seeks.append((tp, offset))


class _App:
    def __init__(self, consumer: _Consumer) -> None:
        self.consumer = consumer
        self.rebalancing = False
        self.in_recovery = False


def test_a_partition_is_held_back_only_by_a_gap_of_more_than_one_at_the_head() -> None:
    consumer = _Consumer(
        {TP0: [15, 16, 17], TP1: [13, 14], TP2: [20]},
        {TP0: 12, TP1: 12, TP2: None},  # TP1: a gap of one passes faust's rule; TP2: none yet
    )
    assert stuck_partitions(consumer) == {TP0: StuckPartition(15, 12)}
    assert stuck_partitions(_Consumer({TP0: []}, {TP0: 12})) == {}


def test_the_brokers_offset_covering_the_head_is_adopted_else_the_partition_is_sought_back() -> (
    None
):
    stuck = {TP0: StuckPartition(15, 12), TP1: StuckPartition(30, 20), TP2: StuckPartition(9, 5)}
    got = repairs(stuck, {TP0: 16, TP1: 21, TP2: None})
    assert got == {TP0: Repair(16, seek=False), TP1: Repair(21, seek=True)}  # TP2: ask again
    assert repairs({TP0: StuckPartition(15, 12)}, {TP0: 15}) == {TP0: Repair(15, seek=False)}


def _check(guard: CommitGuard, app: _App, times: int = 1) -> None:
    for _ in range(times):
        asyncio.run(guard.check(app))


def test_the_guard_repairs_a_partition_held_back_on_two_looks_in_a_row() -> None:
    consumer = _Consumer({TP0: [15, 16], TP1: [40]}, {TP0: 12, TP1: 30})
    asked: list[list[Any]] = []

    async def committed(tps: list[Any]) -> dict[Any, int | None]:
        asked.append(tps)
        return {TP0: 17, TP1: 31}

    guard = CommitGuard(committed)
    app = _App(consumer)
    _check(guard, app)
    assert asked == [] and consumer._committed_offset[TP0] == 12  # one look is not enough
    _check(guard, app)
    assert sorted(asked[0]) == [TP0, TP1]
    assert consumer._committed_offset[TP0] == 17 and consumer.seeks == [(TP1, 31)]
    assert consumer._committed_offset[TP1] == 31 and guard.repaired == 2


def test_a_state_that_moves_between_looks_or_a_rebalance_is_left_alone() -> None:
    consumer = _Consumer({TP0: [15, 16]}, {TP0: 12})

    async def committed(tps: list[Any]) -> dict[Any, int | None]:
        raise AssertionError("asked the brokers for a transient state")

    guard = CommitGuard(committed)
    app = _App(consumer)
    _check(guard, app)
    consumer._acked[TP0] = [13, 15, 16]  # processing went on: another state
    _check(guard, app)
    app.rebalancing = True
    _check(guard, app, times=3)
    assert consumer._committed_offset[TP0] == 12 and guard.repaired == 0


def test_records_fetched_beyond_the_next_to_deliver_are_lost_fetches() -> None:
    positions = {TP0: 1, TP1: 10, TP2: 7}
    delivered = {TP0: None, TP1: 9, TP2: 3}
    # TP0: nothing delivered, the group has none: from 0; TP1: up to date; TP2: 4-6 dropped
    assert lost_fetches(positions, delivered, {TP0: None, TP1: 5, TP2: 4}) == {TP0: 0, TP2: 4}
    assert lost_fetches({TP0: 12}, {TP0: None}, {TP0: 12}) == {}  # idle after a restart
    # right after a rebalance faust's read offset is the committed offset (12), not a
    # record it delivered: a batch dropped then is fetched again from 12, not 13
    assert lost_fetches({TP0: 17}, {TP0: 12}, {TP0: 12}) == {TP0: 12}


def test_the_guard_seeks_back_a_partition_whose_fetched_records_were_dropped() -> None:
    consumer = _Consumer({}, {TP0: None, TP1: 20}, positions={TP0: 1, TP1: 20},
                         read={TP0: None, TP1: None})  # fmt: skip

    async def committed(tps: list[Any]) -> dict[Any, int | None]:
        return {tp: None if tp == TP0 else 20 for tp in tps}

    guard = CommitGuard(committed)
    app = _App(consumer)
    _check(guard, app)
    assert consumer.seeks == []  # one look is not enough
    _check(guard, app)
    assert consumer.seeks == [(TP0, 0)] and guard.repaired == 1
    consumer.positions[TP0], consumer._read_offset[TP0] = 1, 0  # delivered since
    _check(guard, app, times=2)
    assert consumer.seeks == [(TP0, 0)]


# --- exact commits on the dense topics -----------------------------------------------------
DENSE0, DENSE1, OTHER = TP("intake", 0), TP("intake", 1), TP("compacted", 0)


def test_a_commit_moves_only_over_an_unbroken_run_from_the_offset_committed() -> None:
    acked, index = [14, 12, 13, 16], {12, 13, 14, 16}
    assert next_commit(acked, index, 12) == 15  # 12-14: 16 waits for 15
    assert acked == [16] and index == {16}
    assert next_commit(acked, index, 15) is None  # 15 never acknowledged: no commit past it
    acked, index = [3, 4], {3, 4}
    assert next_commit(acked, index, 2) is None  # faust let a gap of one through here
    acked, index = [1, 2], {1, 2}
    assert next_commit(acked, index, 0) is None  # and at 0 did not look at the head at all
    acked, index = [5, 7, 8], {5, 7, 8}
    assert next_commit(acked, index, 7) == 9 and acked == [] and index == set()  # 5: redelivered


def test_exact_commits_replace_faust_rules_on_the_dense_topics_only() -> None:
    class Consumer:
        def __init__(self) -> None:
            self._acked: defaultdict[Any, list[int]] = defaultdict(list)
            self._acked_index: defaultdict[Any, set[int]] = defaultdict(set)
            self._committed_offset: defaultdict[Any, int | None] = defaultdict(lambda: None)
            self.gaps: list[Any] = []

        def _new_offset(self, tp: Any) -> int | None:
            return 99  # faust's own rule

        async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
            self.gaps.append((tp, offset_from, offset_to))

        def assignment(self) -> set[Any]:
            return {DENSE0, DENSE1, OTHER}

        async def earliest_offsets(self, *tps: Any) -> dict[Any, int]:
            return dict.fromkeys(tps, 0)

    consumer = Consumer()
    exact = ExactCommits(["intake"])
    exact.install(consumer)
    consumer._committed_offset[DENSE0] = 10
    consumer._acked[DENSE0] += [11, 12]
    consumer._acked_index[DENSE0].update([11, 12])
    assert consumer._new_offset(DENSE0) is None and consumer._new_offset(OTHER) == 99
    consumer._acked[DENSE0].append(10)
    consumer._acked_index[DENSE0].add(10)
    assert consumer._new_offset(DENSE0) == 13
    asyncio.run(consumer._add_gap(DENSE0, 13, 20))
    asyncio.run(consumer._add_gap(OTHER, 3, 5))
    assert consumer.gaps == [(OTHER, 3, 5)]  # a jump on a dense topic is a hole, not acks
    # never committed: the commit starts at the partition's first offset, once read
    consumer._acked[DENSE1] += [1, 2]
    consumer._acked_index[DENSE1].update([1, 2])
    assert stuck_partitions(consumer, exact) == {}  # the first offset not known yet
    firsts = asyncio.run(exact.read_starts(consumer))
    assert firsts == {DENSE0: 0, DENSE1: 0}  # every dense partition held: the guard's too
    assert exact.starts == {DENSE1: 0}  # where a commit run starts: never committed
    assert stuck_partitions(consumer, exact) == {DENSE1: StuckPartition(1, 0)}
    assert repairs({DENSE1: StuckPartition(1, 0)}, {DENSE1: None}, exact.starts) == {
        DENSE1: Repair(0, seek=True)
    }
    # a committed offset before the partition's first (retention deleted records never
    # processed) goes on from the first record, not back and forth forever
    assert repairs({DENSE0: StuckPartition(120, 5)}, {DENSE0: 5}, {DENSE0: 100}) == {
        DENSE0: Repair(100, seek=True)
    }
