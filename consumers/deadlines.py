"""Deadlines the worker watches: the end of each order's control period, and the time the
police have to acknowledge it.

When a control period ends, an expiry notice (signed by the bus) goes to the issuing
court and to the order's intake topic, where it travels like a release: the orders agent
reads it back, takes the order out of the watchlist and only then delivers it, still
signed by the bus, to the police units of the court's province (:mod:`consumers.delivery`),
after the order and on the same key. When an order is not acknowledged in time, the
court gets an overdue alert. Both ids are derived from the order id, so a notice repeated
after a restart is the same event, which the court's subscriber shows once.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Callable, Iterable, Mapping

from consumers.outgoing import Outgoing, OutgoingSigner
from consumers.tracking import OrderTrack
from consumers.watchlist import ActiveOrder, OrderKind, WatchEntry, derive_id, to_micros
from topics.catalog import Catalog

__all__ = ["ACK_ROLES", "Deadlines", "from_micros"]

ACK_ROLES: Mapping[OrderKind, str] = {
    OrderKind.EXIT_RESTRICTION: "border-control",
    OrderKind.VEHICLE_SEARCH: "traffic-management",
    OrderKind.LOCATE_DEBTOR: "public-security",
}
"""Which police role acts on, and acknowledges, each order kind."""

_EXPIRY = "cn.zf801.orders.v1.OrderExpiryNotice"
_OVERDUE = "cn.zf801.orders.v1.OrderAckOverdue"


def from_micros(micros: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)


class Deadlines:
    """Finds the orders whose period ended or whose acknowledgement is late."""

    def __init__(
        self,
        outgoing: OutgoingSigner,
        catalog: Catalog,
        order_topics: Mapping[OrderKind, str],
        entry: Callable[[bytes], WatchEntry],
        track: Callable[[str], OrderTrack | None],
    ) -> None:
        self._outgoing = outgoing
        self._catalog = catalog
        self._order_topics = order_topics
        self._entry = entry
        self._track = track
        self._heap: list[tuple[int, str, bytes]] = []
        self._ack_heap: list[tuple[int, str]] = []
        self.looked_up = 0
        """Tracking entries looked at by :meth:`overdue_alerts` so far (work per tick)."""
        self._expiry_sent: set[str] = set()
        self._overdue_sent: set[str] = set()

    def schedule(self, order: ActiveOrder, key: bytes) -> None:
        """Watch a new order's end (the entry under ``key`` holds it)."""
        heapq.heappush(self._heap, (order.end_us, order.order_id, key))

    def reschedule(self, entries: Iterable[tuple[bytes, bytes]]) -> None:
        """Watch every order of the watchlist's (key, stored entry) pairs, e.g. after the
        table was recovered."""
        heap = [
            (order.end_us, order.order_id, key)
            for key, raw in entries
            for order in WatchEntry.from_bytes(raw).orders.values()
        ]
        heapq.heapify(heap)
        self._heap = heap

    def watch_ack(self, order_id: str, deadline_us: int) -> None:
        """Watch a newly tracked order's acknowledgement deadline."""
        heapq.heappush(self._ack_heap, (deadline_us, order_id))

    def rewatch_acks(self, tracking: Iterable[tuple[bytes, bytes]]) -> None:
        """Watch the deadline of every open, unacknowledged order of the tracking table's
        (order id, state) pairs, e.g. after partitions were assigned (once, not per tick)."""
        heap = []
        for raw_id, raw in tracking:
            track = OrderTrack.from_bytes(raw)
            if track.kind is not None and not track.status and track.closed is None:
                heap.append((track.deadline_us, raw_id.decode()))
        heapq.heapify(heap)
        self._ack_heap = heap

    def expiry_notices(self, now: dt.datetime) -> list[Outgoing]:
        """Notices for orders whose control period has ended (once per order)."""
        now_us = to_micros(now)
        due: list[Outgoing] = []
        while self._heap and self._heap[0][0] <= now_us:
            _, order_id, key = heapq.heappop(self._heap)
            order = self._entry(key).orders.get(order_id)
            if order is None or order_id in self._expiry_sent:
                continue  # released meanwhile, or already noticed
            self._expiry_sent.add(order_id)
            notice = {
                "order_id": order_id, "order_kind": order.kind.value,
                "case_number": order.case_number, "court_code": order.court_code,
                "expired_at": from_micros(order.end_us),
            }  # fmt: skip
            police = self._order_topics[order.kind]
            court = self._catalog.topic_name("alerts", court=order.court_code)
            due += [
                self._outgoing.sign(police, _EXPIRY, notice, key=key, now=now,
                                    event_id=derive_id("expiry", order_id, "police")),
                self._outgoing.sign(court, _EXPIRY, notice, key=order_id.encode(), now=now,
                                    event_id=derive_id("expiry", order_id, "court")),
            ]  # fmt: skip
        return due

    def overdue_alerts(self, now: dt.datetime) -> list[Outgoing]:
        """Alerts for orders whose acknowledgement deadline passed with none (once each).
        Only the deadlines due are looked at: the index is ordered by due time, so a tick
        costs what is due, not the number of tracked orders."""
        now_us = to_micros(now)
        due: list[Outgoing] = []
        while self._ack_heap and self._ack_heap[0][0] <= now_us:
            _, order_id = heapq.heappop(self._ack_heap)
            self.looked_up += 1
            track = self._track(order_id)
            kind = track.kind if track is not None else None
            if (
                track is None or kind is None or track.status or track.closed
                or order_id in self._overdue_sent
            ):  # fmt: skip
                continue  # acknowledged, released or expired meanwhile, or alerted
            if track.deadline_us > now_us:  # watched under an earlier deadline
                heapq.heappush(self._ack_heap, (track.deadline_us, order_id))
                continue
            self._overdue_sent.add(order_id)
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
