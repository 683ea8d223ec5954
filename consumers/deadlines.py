"""Deadlines the worker watches: the end of each order's control period, and the time the
police have to acknowledge it.

When a control period ends, an expiry notice (signed by the bus) goes to the issuing
court and to the order's intake topic, where it travels like a release: the orders agent
reads it back, takes the order out of the watchlist and only then delivers it, still
signed by the bus, to the police units of the court's province (:mod:`consumers.delivery`),
after the order and on the same key. When an order is not acknowledged in time, the
court gets an overdue alert. Each notice sent is recorded in the order's tracking (through
the order ledger), so a restarted worker does not send it again; and both ids are derived
from the order id, so a notice repeated by a worker killed before the record was written
is the same event, which the court's subscriber shows once.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping

from consumers.outgoing import Outgoing, OutgoingSigner
from consumers.tracking import OrderTrack
from consumers.watchlist import OrderKind, derive_id
from schemas.envelope import from_micros, to_micros
from topics.catalog import Catalog

__all__ = ["ACK_ROLES", "EXPIRY", "OVERDUE", "Deadlines"]

ACK_ROLES: Mapping[OrderKind, str] = {
    OrderKind.EXIT_RESTRICTION: "border-control",
    OrderKind.VEHICLE_SEARCH: "traffic-management",
    OrderKind.LOCATE_DEBTOR: "public-security",
}
"""Which police role acts on, and acknowledges, each order kind."""

EXPIRY = "expiry"
OVERDUE = "overdue"
"""The notices a worker sends for an order, as :attr:`OrderTrack.noticed` names them."""

_EXPIRY = "cn.zf801.orders.v1.OrderExpiryNotice"
_OVERDUE = "cn.zf801.orders.v1.OrderAckOverdue"


class Deadlines:
    """Finds the orders whose period ended or whose acknowledgement is late.

    Both clocks are kept per order id, from the order-tracking state (which the worker
    holding the order's partition owns, so each notice has one sender), in indexes
    ordered by due time: a tick looks only at what is due (:attr:`looked_up` counts it),
    never at every tracked order."""

    def __init__(
        self,
        outgoing: OutgoingSigner,
        catalog: Catalog,
        order_topics: Mapping[OrderKind, str],
        track: Callable[[str], OrderTrack | None],
    ) -> None:
        self._outgoing = outgoing
        self._catalog = catalog
        self._order_topics = order_topics
        self._track = track
        self._end_heap: list[tuple[int, str]] = []
        self._ack_heap: list[tuple[int, str]] = []
        self.looked_up = 0
        """Tracking entries looked at by the ticks so far (work per tick)."""
        self._expiry_sent: set[str] = set()
        self._overdue_sent: set[str] = set()
        self._noticed: list[tuple[str, str]] = []

    def pending(self) -> tuple[int, int]:
        """The clocks watched now: (control-period ends, acknowledgement deadlines)."""
        return len(self._end_heap), len(self._ack_heap)

    def schedule(self, order_id: str, end_us: int) -> None:
        """Watch a tracked order's end of control period."""
        heapq.heappush(self._end_heap, (end_us, order_id))

    def watch_ack(self, order_id: str, deadline_us: int) -> None:
        """Watch a newly tracked order's acknowledgement deadline."""
        heapq.heappush(self._ack_heap, (deadline_us, order_id))

    def rewatch(self, tracking: Iterable[tuple[bytes, bytes]]) -> None:
        """Watch both clocks of every open order of the tracking table's (order id,
        state) pairs, e.g. after partitions were assigned (once, not per tick)."""
        for _ in self.rewatching(tracking):
            pass

    def rewatching(
        self, tracking: Iterable[tuple[bytes, bytes]], every: int = 5_000
    ) -> Generator[int]:
        """:meth:`rewatch` a part at a time: yields the count of entries read after each
        ``every``, so the caller can let other work run (a million tracked orders take
        seconds). The clocks are all watched once it is exhausted; clocks scheduled
        meanwhile are kept. Abandoned half way, it leaves the index to be rebuilt."""
        ends: list[tuple[int, str]] = []
        acks: list[tuple[int, str]] = []
        self._end_heap, self._ack_heap = ends, acks  # schedule() adds to these meanwhile
        read = 0
        for raw_id, raw in tracking:
            read += 1
            if read % every == 0:
                yield read
            track = OrderTrack.from_bytes(raw)
            if track.kind is None or track.closed is not None:
                continue
            if track.end_us is not None and EXPIRY not in track.noticed:
                ends.append((track.end_us, raw_id.decode()))
            if not track.status and OVERDUE not in track.noticed:
                acks.append((track.deadline_us, raw_id.decode()))
        heapq.heapify(ends)
        heapq.heapify(acks)

    def expiry_notices(self, now: dt.datetime) -> list[Outgoing]:
        """Notices for orders whose control period has ended (once per order)."""
        now_us = to_micros(now)
        due: list[Outgoing] = []
        for order_id, track in self._due(self._end_heap, now_us, _end_of):
            if order_id in self._expiry_sent or EXPIRY in track.noticed:
                continue
            self._expiry_sent.add(order_id)
            self._noticed.append((order_id, EXPIRY))
            kind = track.kind
            assert kind is not None and track.end_us is not None  # _due yields open orders
            notice = {
                "order_id": order_id, "order_kind": kind.value,
                "case_number": track.case_number, "court_code": track.court,
                "expired_at": from_micros(track.end_us),
            }  # fmt: skip
            police = self._order_topics[kind]
            court = self._catalog.topic_name("alerts", court=track.court)
            due += [
                # on the order's own record key: its partition, after the order
                self._outgoing.sign(police, _EXPIRY, notice, key=track.keys[0], now=now,
                                    event_id=derive_id("expiry", order_id, "police")),
                self._outgoing.sign(court, _EXPIRY, notice, key=order_id.encode(), now=now,
                                    event_id=derive_id("expiry", order_id, "court")),
            ]  # fmt: skip
        return due

    def overdue_alerts(self, now: dt.datetime) -> list[Outgoing]:
        """Alerts for orders whose acknowledgement deadline passed with none (once each)."""
        now_us = to_micros(now)
        due: list[Outgoing] = []
        for order_id, track in self._due(self._ack_heap, now_us, _ack_deadline_of):
            if order_id in self._overdue_sent or OVERDUE in track.noticed:
                continue
            self._overdue_sent.add(order_id)
            self._noticed.append((order_id, OVERDUE))
            kind = track.kind
            assert kind is not None
            alert = {
                "order_id": order_id, "order_kind": kind.value, "court_code": track.court,
                "awaited_role": ACK_ROLES[kind].upper().replace("-", "_"),
                "issued_at": from_micros(track.issued_at_us),
                "deadline": from_micros(track.deadline_us), "detected_at": now,
            }  # fmt: skip
            court = self._catalog.topic_name("alerts", court=track.court)
            due.append(self._outgoing.sign(
                court, _OVERDUE, alert, key=order_id.encode(), now=now,
                event_id=derive_id("ack-overdue", order_id),
            ))  # fmt: skip
        return due

    def drain_noticed(self) -> list[tuple[str, str]]:
        """(order id, notice) of every notice built since the last call: the worker
        records each in the order's tracking once it is sent (:attr:`OrderTrack.noticed`),
        so that a restarted worker does not send it again."""
        noticed, self._noticed = self._noticed, []
        return noticed

    def _due(
        self,
        heap: list[tuple[int, str]],
        now_us: int,
        due_of: Callable[[OrderTrack], int | None],
    ) -> Iterator[tuple[str, OrderTrack]]:
        """Pop what is due from ``heap``: each open order whose clock (per ``due_of``,
        None: no longer running) has passed. An order whose clock moved later is
        indexed again under its new time."""
        while heap and heap[0][0] <= now_us:
            _, order_id = heapq.heappop(heap)
            self.looked_up += 1
            track = self._track(order_id)
            if track is None or track.kind is None or track.closed is not None:
                continue  # released or expired meanwhile
            when = due_of(track)
            if when is None:
                continue  # acknowledged meanwhile
            if when > now_us:
                heapq.heappush(heap, (when, order_id))
                continue
            yield order_id, track


def _end_of(track: OrderTrack) -> int | None:
    return track.end_us


def _ack_deadline_of(track: OrderTrack) -> int | None:
    return None if track.status else track.deadline_us
