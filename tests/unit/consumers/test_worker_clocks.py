"""The worker's look-back timer: which queued orders are looked back for, what is sent, and
what is recorded so that a restarted worker does not look back again. The look-back's own
reading of the sightings is the broker tests' (tests/e2e/test_order_lifecycle.py); here it
is a stand-in that records what it was asked."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from consumers.lookback import LookBackRequest
from consumers.outgoing import Outgoing
from consumers.tracking import LOOKED_BACK, Closure, OrderTrack
from consumers.watchlist import ActiveOrder, OrderKind
from consumers.worker_clocks import WorkerClocks
from schemas.envelope import KafkaRecord


class _App:
    rebalancing = False
    in_recovery = False


class _Book:
    def __init__(self, tracks: dict[str, OrderTrack]) -> None:
        self.tracks = tracks

    def track(self, order_id: str) -> OrderTrack | None:
        return self.tracks.get(order_id)


class _Ledger:
    def notices(self, noticed: Any, now_us: int) -> list[Outgoing]:
        return [Outgoing("ledger", KafkaRecord(order_id.encode(), notice.encode(), ()))
                for order_id, notice in noticed]  # fmt: skip


class _LookBack:
    window = dt.timedelta(hours=72)
    read = 0

    def __init__(self) -> None:
        self.asked: list[list[LookBackRequest]] = []

    def run(self, requests: list[LookBackRequest], now: dt.datetime) -> list[Outgoing]:
        self.asked.append(list(requests))
        return [Outgoing("alerts", KafkaRecord(b"hit", r.order.order_id.encode(), ()))
                for r in requests]  # fmt: skip


def _order(order_id: str, case: str = "（2026）京01执1号") -> ActiveOrder:
    return ActiveOrder(order_id, OrderKind.LOCATE_DEBTOR, "BJ01", case, "h", "1", "contact",
                       0, 2**62, 0, keys=(b"k",))  # fmt: skip


def _track(closed: bool = False) -> OrderTrack:
    track = OrderTrack(OrderKind.LOCATE_DEBTOR, "BJ01", 0, 2**62, (b"k",))
    return track.close(Closure.RELEASED, 1) if closed else track


def _clocks(tracks: dict[str, OrderTrack], queued: list[LookBackRequest]) -> tuple[
    WorkerClocks, _LookBack, list[list[Outgoing]]
]:  # fmt: skip
    sent: list[list[Outgoing]] = []

    async def publish(outgoing: list[Outgoing]) -> None:
        sent.append(outgoing)

    lookback = _LookBack()
    clocks = WorkerClocks(
        _App(), Any, deadlines=Any, book=_Book(tracks), ledger=_Ledger(),  # type: ignore[arg-type]
        watchlist=Any, tracking=Any, publish=publish, lookup=lambda key: None,  # type: ignore[arg-type]
        lookback=lookback, lookbacks=queued,  # type: ignore[arg-type]
    )  # fmt: skip
    return clocks, lookback, sent


def test_each_open_order_is_looked_back_for_once_with_its_last_copy_and_recorded() -> None:
    first, corrected = _order("o-1"), _order("o-1", "（2026）京01执2号")
    queued = [
        LookBackRequest(first, (b"k",), 1), LookBackRequest(_order("o-2"), (b"k",), 1),
        LookBackRequest(corrected, (b"k",), 2), LookBackRequest(_order("o-3"), (b"k",), 1),
    ]  # fmt: skip
    tracks = {"o-1": _track(), "o-2": _track(closed=True)}  # o-3: not tracked here
    clocks, lookback, sent = _clocks(tracks, queued)
    asyncio.run(clocks.look_back())
    (asked,) = lookback.asked
    assert [r.order for r in asked] == [corrected]
    hits, notices = sent
    assert [o.record.value for o in hits] == [b"o-1"]
    assert [(o.record.key, o.record.value) for o in notices] == [(b"o-1", LOOKED_BACK.encode())]
    assert queued == []  # taken: the next run starts from what comes after
    asyncio.run(clocks.look_back())
    assert len(lookback.asked) == 1 and len(sent) == 2  # nothing queued, nothing done


def test_nothing_is_looked_back_for_while_the_group_rebalances() -> None:
    queued = [LookBackRequest(_order("o-1"), (b"k",), 1)]
    clocks, lookback, sent = _clocks({"o-1": _track()}, queued)
    clocks._app.rebalancing = True
    asyncio.run(clocks.look_back())
    assert lookback.asked == [] and sent == [] and len(queued) == 1
