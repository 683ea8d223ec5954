"""The worker's clocks: what falls due per order, and the look-back of new orders.

Every tick (``settings.timer_interval_s``) sends what fell due: expiry warnings and
notices when a control period ends, an overdue alert when an order is not acknowledged in
time, an escalation when a hit is not confirmed (:mod:`consumers.deadlines`, indexed by
due time: a tick touches only what is due), then records in the order's ledger that each
was sent, so a restarted worker does not send it again. After partitions were assigned,
the clocks of the orders tracked here are indexed again, a part at a time so that the
matcher and the order flow run between the parts.

The look-back matches the orders entered or corrected since its last run against the
sightings of its window (:mod:`consumers.lookback`, off the event loop) and records each
order as looked back for.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from consumers.commit_guard import faust_settling
from consumers.deadlines import Deadlines
from consumers.ledger import OrderLedger
from consumers.lookback import LookBack, LookBackRequest
from consumers.order_book import OrderBook
from consumers.outgoing import Outgoing
from consumers.runtime import Runtime
from consumers.sealed_table import SealedTable
from consumers.tracking import LOOKED_BACK, OrderTrack, tracked
from consumers.watchlist import WatchEntry
from schemas.envelope import to_micros

__all__ = ["WorkerClocks"]

log = logging.getLogger(__name__)


def _open(track: OrderTrack | None) -> bool:
    return track is not None and track.kind is not None and track.closed is None


class WorkerClocks:
    """The timers of one worker (see the module docstring)."""

    def __init__(
        self,
        app: Any,
        runtime: Runtime,
        *,
        deadlines: Deadlines,
        book: OrderBook,
        ledger: OrderLedger,
        watchlist: SealedTable,
        tracking: SealedTable,
        publish: Callable[[list[Outgoing]], Awaitable[None]],
        lookup: Callable[[bytes], WatchEntry | None],
        lookback: LookBack | None,
        lookbacks: list[LookBackRequest],
    ) -> None:
        self._app = app
        self._rt = runtime
        self.deadlines = deadlines
        self._book = book
        self._ledger = ledger
        self._tracking = tracking
        self._tables = (watchlist, tracking)  # their refused restore records, each tick
        self._publish = publish
        self._lookup = lookup
        self.lookback = lookback
        self._lookbacks = lookbacks
        self._stale = True

    def assigned(self) -> None:
        """Partitions were assigned: the next tick indexes the clocks again."""
        self._stale = True

    async def tick(self) -> None:
        if faust_settling(self._app):
            return
        for table in self._tables:
            for record, detail in table.drain_refused():
                self._rt.refuse_record(record, "STATE_INTEGRITY", detail, stage=table.name)
        if self._stale:
            self._stale = False
            pending = await self._reindex()
            if pending is None:
                self._stale = True  # a rebalance began: the next tick starts again
                return
            self._lookbacks += pending
        now = dt.datetime.now(dt.UTC)
        due = self.deadlines.due(now)
        noticed = self.deadlines.drain_noticed()
        if due:
            await self._publish(due)
        if noticed:  # once sent: a restarted worker does not send them again
            now_us = to_micros(now)
            await self._publish(self._ledger.notices(noticed, now_us))

    async def _reindex(self) -> list[LookBackRequest] | None:
        """One pass over the orders tracked here, after partitions were assigned: the
        clocks of every open order watched again (:meth:`Deadlines.rewatching`) and the
        orders still to look back for found (:meth:`_collect_lookbacks`). A part at a time,
        so that the matcher and the order flow run between the parts; None when a
        rebalance began meanwhile (the next tick starts again)."""
        pending: list[LookBackRequest] = []
        started = time.monotonic()
        items = self._tracking.iter_payloads()
        parts = self.deadlines.rewatching(self._collect_lookbacks(tracked(items), pending))
        try:
            for _ in parts:
                await asyncio.sleep(0)
                if self._app.rebalancing:
                    return None
        finally:
            parts.close()
            items.close()  # a RocksDB iterator holds its database open
        ends, acks = self.deadlines.pending()
        log.info(
            "clocks indexed in %.1f s: %d control-period end(s), %d acknowledgement "
            "deadline(s); %d order(s) to look back for",
            time.monotonic() - started, ends, acks, len(pending),
        )  # fmt: skip
        return pending

    async def look_back(self) -> None:
        """Match the orders entered or corrected since the last run against the sightings
        of the look-back window (off the event loop), send their retroactive hits, then
        record each order as looked back (a restarted worker looks back again for those
        not recorded: :meth:`_collect_lookbacks`)."""
        lookback = self.lookback
        if lookback is None or faust_settling(self._app):
            return
        queued = list(self._lookbacks)
        self._lookbacks.clear()
        latest = {r.order.order_id: r for r in queued}  # an order queued twice: its last copy
        requests = [r for r in latest.values() if _open(self._book.track(r.order.order_id))]
        if not requests:
            return
        now = dt.datetime.now(dt.UTC)
        hits = await asyncio.to_thread(lookback.run, requests, now)
        if hits:
            await self._publish(hits)
        log.info("look-back: %d order(s), %d retroactive hit(s), %d sighting record(s) read",
                 len(requests), len(hits), lookback.read)  # fmt: skip
        now_us = to_micros(now)
        await self._publish(
            self._ledger.notices(((r.order.order_id, LOOKED_BACK) for r in requests), now_us)
        )

    def _collect_lookbacks(
        self, tracks: Iterator[tuple[str, OrderTrack]], pending: list[LookBackRequest]
    ) -> Iterator[tuple[str, OrderTrack]]:
        """Pass ``tracks`` on, adding to ``pending`` each open order issued within the
        look-back window and not looked back for (a worker stopped before it recorded
        it), as held on this worker's watchlist."""
        if self.lookback is None:
            yield from tracks
            return
        since_us = to_micros(dt.datetime.now(dt.UTC) - self.lookback.window)
        for order_id, track in tracks:
            if (_open(track) and LOOKED_BACK not in track.noticed and track.keys
                    and track.issued_at_us >= since_us):  # fmt: skip
                entry = self._lookup(track.keys[0])
                order = entry.orders.get(order_id) if entry else None
                if order is not None:
                    applied_us = track.applied_us or track.issued_at_us
                    pending.append(LookBackRequest(order, track.keys, applied_us // 1000))
            yield order_id, track
