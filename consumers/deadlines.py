"""Deadlines the worker watches: the end of each order's control period, the warning
before it, the end of the late window after it, and the time the police have to
acknowledge an order.

When a control period ends, an expiry notice (signed by the bus) goes to the issuing
court and to the order's intake topic, where it travels like a release: the intake
(:mod:`consumers.intake_loop`) reads it back, the ledger agent takes the order out of the
watchlist and only then delivers the notice, still signed by the bus, to the police units
of the court's province (:mod:`consumers.delivery`), after the order and on the same key.
When an order is not acknowledged in time, the court gets an overdue alert. Each notice
sent is recorded in the order's tracking (through the order ledger), so a restarted worker
does not send it again; and both ids are derived from the order id, so a notice repeated
by a worker killed before the record was written is the same event, which the court's
subscriber shows once.

**Expiry warning and renewal.** The issuing court is warned ``warn_before_us[kind]``
before the period ends (:data:`WARNING`). It renews an order by sending it again (same
order id) with a later ``control_period_end``: the order book moves the end and counts
the renewal (:attr:`OrderTrack.renewals`), the watchlist entry and the police side's
delivered copy take the new period, and both clocks run again for it. The notices of
each period are marked and identified by the period's number (:func:`period_notice`),
so the warning and the expiry of the renewed period are sent once each, and a renewal
never suppresses them.

**Late window.** An expired order stays on the watchlist ``late_window_us`` longer, where
only late sightings match it (:meth:`consumers.watchlist.ActiveOrder.is_late`); then the
worker records :data:`PURGED` in the ledger, and applying that removes the order from
the watchlist (:meth:`consumers.order_book.OrderBook.noticed`).
"""

from __future__ import annotations

import datetime as dt
import heapq
import re
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping

from consumers.hit_clocks import LEVELS, HitClock, HitPolicy, escalation_mark
from consumers.outgoing import Outgoing, OutgoingSigner
from consumers.tracking import PURGED, OrderTrack
from consumers.watchlist import OrderKind, derive_id
from schemas.envelope import from_micros, to_micros
from schemas.event_types import EXPIRY_WARNING, HIT_UNCONFIRMED
from topics.catalog import Catalog

__all__ = [
    "ACK_ROLES", "EXPIRY", "OVERDUE", "PURGED", "WARNING", "Deadlines", "DueIndex", "period_notice",
]  # fmt: skip

ACK_ROLES: Mapping[OrderKind, str] = {
    OrderKind.EXIT_RESTRICTION: "border-control",
    OrderKind.VEHICLE_SEARCH: "traffic-management",
    OrderKind.LOCATE_DEBTOR: "public-security",
}
"""Which police role acts on, and acknowledges, each order kind."""

EXPIRY = "expiry"
OVERDUE = "overdue"
WARNING = "warning"
"""The notices a worker sends for an order, as :attr:`OrderTrack.noticed` names them
(the expiry and the warning per period: :func:`period_notice`)."""

_EXPIRY = "cn.zf801.orders.v1.OrderExpiryNotice"
_WARNING = EXPIRY_WARNING


def period_notice(notice: str, renewals: int) -> str:
    """The mark of ``notice`` for the order's period after ``renewals`` renewals: the
    first period's is the notice's own name (as before renewals existed)."""
    return notice if not renewals else f"{notice}#{renewals}"


def _period_parts(renewals: int) -> tuple[int, ...]:
    """What a renewed period adds to a notice's derived event id."""
    return (renewals,) if renewals else ()


_OVERDUE = "cn.zf801.orders.v1.OrderAckOverdue"


_ID_BITS = 128
_ID_MASK = (1 << _ID_BITS) - 1
# The namespace of the uuid5 standing in for an order id that is not a UUID.
_NAMES = uuid.UUID("6f1c4d8e-2b0a-4f57-9a51-0d6c2e7b8f10")
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class DueIndex:
    """(due time, order id) pairs ordered by due time, each held as one int: the time in
    the high bits, the order id's 128 bits below. About 56 bytes a pair, where a tuple of
    an int and a 36-character str took about 180: at millions of tracked orders with
    several clocks each, this is most of the worker's memory per order. Order ids are
    UUIDs in canonical form; one that is not is named through a side table (its uuid5)."""

    __slots__ = ("_heap", "_named")

    def __init__(self) -> None:
        self._heap: list[int] = []
        self._named: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due_us: int, order_id: str) -> None:
        heapq.heappush(self._heap, self._pair(due_us, order_id))

    def append(self, due_us: int, order_id: str) -> None:
        """Add without ordering (a bulk load); :meth:`heapify` before the next pop."""
        self._heap.append(self._pair(due_us, order_id))

    def heapify(self) -> None:
        heapq.heapify(self._heap)

    def pop_due(self, now_us: int) -> str | None:
        """The order id of the earliest pair due at ``now_us``, taken out; None if none."""
        heap = self._heap
        if not heap or heap[0] >> _ID_BITS > now_us:
            return None
        bits = heapq.heappop(heap) & _ID_MASK
        named = self._named.get(bits)
        return named if named is not None else str(uuid.UUID(int=bits))

    def _pair(self, due_us: int, order_id: str) -> int:
        due_us = max(due_us, 0)  # before 1970 (a warning ahead of an early end): due now
        if _CANONICAL_UUID.fullmatch(order_id):
            bits = int(order_id.replace("-", ""), 16)
        else:
            bits = uuid.uuid5(_NAMES, order_id).int
            self._named[bits] = order_id
        return (due_us << _ID_BITS) | bits


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
        *,
        warn_before_us: Mapping[OrderKind, int] | None = None,
        late_window_us: int = 0,
        hit_policy: HitPolicy | None = None,
    ) -> None:
        self._outgoing = outgoing
        self._catalog = catalog
        self._order_topics = order_topics
        self._track = track
        self._end_heap = DueIndex()
        self._ack_heap = DueIndex()
        self._warn_heap = DueIndex()
        self._purge_heap = DueIndex()
        self._warn_before = dict(warn_before_us or {})
        self._late_window_us = late_window_us
        self._hit_policy = hit_policy
        self._hit_heap: list[tuple[int, str, str, int]] = []
        """(due, order id, hit id, level) of the hit confirmation clocks."""
        self._escalated: set[tuple[str, int]] = set()
        self.looked_up = 0
        """Tracking entries looked at by the ticks so far (work per tick)."""
        self.ticks = 0
        """Calls of :meth:`due` so far."""
        self._expiry_sent: set[tuple[str, int]] = set()
        self._warning_sent: set[tuple[str, int]] = set()
        self._overdue_sent: set[str] = set()
        self._noticed: list[tuple[str, str]] = []

    def pending(self) -> tuple[int, int]:
        """The clocks watched now: (control-period ends, acknowledgement deadlines)."""
        return len(self._end_heap), len(self._ack_heap)

    def schedule(self, order_id: str, end_us: int, kind: OrderKind | None = None) -> None:
        """Watch a tracked order's end of control period (and, given its kind, the warning
        before it)."""
        self._end_heap.push(end_us, order_id)
        if kind is not None and kind in self._warn_before:
            self._warn_heap.push(end_us - self._warn_before[kind], order_id)

    def watch_hit(self, order_id: str, hit_id: str) -> None:
        """Watch both escalation levels of a hit's confirmation clock."""
        track = self._track(order_id)
        clock = track.clock(hit_id) if track is not None else None
        if self._hit_policy is None or track is None or track.kind is None or clock is None:
            return
        for level in LEVELS:
            due = self._hit_policy.due_us(clock, track.kind, track.court, level)
            heapq.heappush(self._hit_heap, (due, order_id, hit_id, level))

    def watch_purge(self, order_id: str, end_us: int) -> None:
        """Watch the end of an expired order's late window."""
        self._purge_heap.push(end_us + self._late_window_us, order_id)

    def watch_ack(self, order_id: str, deadline_us: int) -> None:
        """Watch a newly tracked order's acknowledgement deadline."""
        self._ack_heap.push(deadline_us, order_id)

    def rewatch(self, tracking: Iterable[tuple[str, OrderTrack]]) -> None:
        """Watch both clocks of every open order of the tracking table's (order id,
        state) pairs (:func:`consumers.tracking.tracked`), e.g. after partitions were
        assigned (once, not per tick)."""
        for _ in self.rewatching(tracking):
            pass

    def rewatching(
        self, tracking: Iterable[tuple[str, OrderTrack]], every: int = 5_000
    ) -> Generator[int]:
        """:meth:`rewatch` a part at a time: yields the count of entries read after each
        ``every``, so the caller can let other work run (a million tracked orders take
        seconds). The clocks are all watched once it is exhausted; clocks scheduled
        meanwhile are kept. Abandoned half way, it leaves the index to be rebuilt."""
        ends, acks, warns, purges = DueIndex(), DueIndex(), DueIndex(), DueIndex()
        hits: list[tuple[int, str, str, int]] = []
        # schedule(), watch_ack(), watch_hit() and watch_purge() add to these meanwhile
        self._end_heap, self._ack_heap, self._warn_heap, self._purge_heap = (
            ends, acks, warns, purges
        )  # fmt: skip
        self._hit_heap = hits
        read = 0
        for order_id, track in tracking:
            read += 1
            if read % every == 0:
                yield read
            if track.kind is None or track.end_us is None:
                continue
            if track.closed is not None:
                if track.in_late_window:
                    purges.append(track.end_us + self._late_window_us, order_id)
                continue
            if period_notice(EXPIRY, track.renewals) not in track.noticed:
                ends.append(track.end_us, order_id)
            warn = self._warn_before.get(track.kind)
            if warn is not None and period_notice(WARNING, track.renewals) not in track.noticed:
                warns.append(track.end_us - warn, order_id)
            if not track.status and OVERDUE not in track.noticed:
                acks.append(track.deadline_us, order_id)
            hits += self._open_clocks(order_id, track)
        for index in (ends, acks, warns, purges):
            index.heapify()
        heapq.heapify(hits)

    def due(self, now: dt.datetime) -> list[Outgoing]:
        """One tick: every warning, escalation, expiry notice and overdue alert due at
        ``now``, and the purges due recorded (each clock fires once)."""
        self.ticks += 1
        due = self.expiry_warnings(now)
        due += self.hit_escalations(now)
        due += self.expiry_notices(now)
        due += self.overdue_alerts(now)
        self.purges(now)
        return due

    def expiry_notices(self, now: dt.datetime) -> list[Outgoing]:
        """Notices for orders whose control period has ended (once per order)."""
        now_us = to_micros(now)
        due: list[Outgoing] = []
        for order_id, track in self._due(self._end_heap, now_us, _end_of):
            mark = period_notice(EXPIRY, track.renewals)
            if (order_id, track.renewals) in self._expiry_sent or mark in track.noticed:
                continue
            self._expiry_sent.add((order_id, track.renewals))
            self._noticed.append((order_id, mark))
            kind = track.kind
            assert kind is not None and track.end_us is not None  # _due yields open orders
            notice = {
                "order_id": order_id, "order_kind": kind.value,
                "case_number": track.case_number, "court_code": track.court,
                "expired_at": from_micros(track.end_us),
            }  # fmt: skip
            police = self._order_topics[kind]
            court = self._catalog.topic_name("alerts", court=track.court)
            period = _period_parts(track.renewals)
            due += [
                # on the order's own record key: its partition, after the order
                self._outgoing.sign(police, _EXPIRY, notice, key=track.keys[0], now=now,
                                    event_id=derive_id("expiry", order_id, "police", *period)),
                self._outgoing.sign(court, _EXPIRY, notice, key=order_id.encode(), now=now,
                                    event_id=derive_id("expiry", order_id, "court", *period)),
            ]  # fmt: skip
        return due

    def expiry_warnings(self, now: dt.datetime) -> list[Outgoing]:
        """Warnings to the issuing court of orders whose period ends soon (once per
        period: a renewed order is warned again before its new end)."""
        now_us = to_micros(now)
        due: list[Outgoing] = []
        for order_id, track in self._due(self._warn_heap, now_us, self._warning_of):
            mark = period_notice(WARNING, track.renewals)
            if (order_id, track.renewals) in self._warning_sent or mark in track.noticed:
                continue
            self._warning_sent.add((order_id, track.renewals))
            self._noticed.append((order_id, mark))
            assert track.kind is not None and track.end_us is not None
            warning = {
                "order_id": order_id, "order_kind": track.kind.value,
                "case_number": track.case_number, "court_code": track.court,
                "period_end": from_micros(track.end_us), "warned_at": now,
            }  # fmt: skip
            court = self._catalog.topic_name("alerts", court=track.court)
            event_id = derive_id("expiry-warning", order_id, *_period_parts(track.renewals))
            due.append(self._outgoing.sign(
                court, _WARNING, warning, key=order_id.encode(), now=now, event_id=event_id
            ))  # fmt: skip
        return due

    def hit_escalations(self, now: dt.datetime) -> list[Outgoing]:
        """``HitUnconfirmed`` for every hit whose clock passed a level with a side still
        awaited: once per hit and level (marked in the tracking)."""
        policy = self._hit_policy
        now_us, sent = to_micros(now), []
        heap = self._hit_heap
        while policy is not None and heap and heap[0][0] <= now_us:
            deadline_us, order_id, hit_id, level = heapq.heappop(heap)
            self.looked_up += 1
            track = self._track(order_id)
            clock = track.clock(hit_id) if track is not None else None
            mark = escalation_mark(hit_id, level)
            if track is None or track.kind is None or track.closed is not None or clock is None:
                continue  # released or expired meanwhile: nobody is to act on the hit
            if not clock.awaiting or mark in track.noticed or (hit_id, level) in self._escalated:
                continue
            self._escalated.add((hit_id, level))
            self._noticed.append((order_id, mark))
            sent += self._unconfirmed(policy, order_id, track, clock, due=(level, deadline_us),
                                      now=now)  # fmt: skip
        return sent

    def _unconfirmed(
        self,
        policy: HitPolicy,
        order_id: str,
        track: OrderTrack,
        clock: HitClock,
        *,
        due: tuple[int, int],
        now: dt.datetime,
    ) -> list[Outgoing]:
        """The escalation records of a hit at ``due`` (level, deadline), one per addressee."""
        assert track.kind is not None
        level, deadline_us = due
        out = []
        for addressee in policy.addressees(track.court, level):
            record = {
                "hit_id": clock.hit_id, "order_id": order_id, "order_kind": track.kind.value,
                "court_code": track.court, "addressed_to": addressee,
                "province_code": policy.province_of(track.court), "level": level,
                "awaiting": clock.awaiting, "reporting_unit_code": clock.unit,
                "matched_at": from_micros(clock.matched_us),
                "deadline": from_micros(deadline_us), "escalated_at": now,
            }  # fmt: skip
            topic = (
                self._catalog.topic_name("alerts", court=addressee)
                if level == 1
                else self._catalog.topic_name("escalations")
            )
            key = order_id.encode() if level == 1 else clock.hit_id.encode()
            event_id = derive_id("unconfirmed", clock.hit_id, level, addressee)
            out.append(self._outgoing.sign(topic, HIT_UNCONFIRMED, record, key=key, now=now,
                                           event_id=event_id))  # fmt: skip
        return out

    def _open_clocks(self, order_id: str, track: OrderTrack) -> list[tuple[int, str, str, int]]:
        """The escalations still to watch of an open order's hit clocks (after a restart)."""
        policy = self._hit_policy
        if policy is None or track.kind is None:
            return []
        return [
            (policy.due_us(clock, track.kind, track.court, level), order_id, clock.hit_id, level)
            for clock in track.clocks
            if clock.awaiting
            for level in LEVELS
            if escalation_mark(clock.hit_id, level) not in track.noticed
        ]

    def purges(self, now: dt.datetime) -> None:
        """Record :data:`PURGED` for expired orders whose late window has passed: applied
        from the ledger, it takes them off the watchlist."""
        now_us = to_micros(now)
        while (order_id := self._purge_heap.pop_due(now_us)) is not None:
            self.looked_up += 1
            track = self._track(order_id)
            if track is not None and track.in_late_window:
                self._noticed.append((order_id, PURGED))

    def _warning_of(self, track: OrderTrack) -> int | None:
        warn = self._warn_before.get(track.kind) if track.kind else None
        if warn is None or track.end_us is None:
            return None
        return track.end_us - warn

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
        index: DueIndex,
        now_us: int,
        due_of: Callable[[OrderTrack], int | None],
    ) -> Iterator[tuple[str, OrderTrack]]:
        """Pop what is due from ``index``: each open order whose clock (per ``due_of``,
        None: no longer running) has passed. An order whose clock moved later is
        indexed again under its new time."""
        while (order_id := index.pop_due(now_us)) is not None:
            self.looked_up += 1
            track = self._track(order_id)
            if track is None or track.kind is None or track.closed is not None:
                continue  # released or expired meanwhile
            when = due_of(track)
            if when is None:
                continue  # acknowledged meanwhile
            if when > now_us:
                index.push(when, order_id)
                continue
            yield order_id, track


def _end_of(track: OrderTrack) -> int | None:
    return track.end_us


def _ack_deadline_of(track: OrderTrack) -> int | None:
    return None if track.status else track.deadline_us
