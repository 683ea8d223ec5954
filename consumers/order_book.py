"""The order topics' effect on the worker's state: orders enter the watchlist, releases
and the bus's expiry notices take them out, and every order id is tracked.

The rules (``sign/REPLAY.md`` says why each is fail-safe):

- an **order** enters the watchlist under each of its subject's match keys (as one
  :class:`consumers.watch_updates.WatchUpdate` per key, applied on that key's
  partition), only if its record
  key is one of them (the key is what sightings are matched by: an order keyed by
  another subject's key would make that subject hit) and its court is its signer; an
  order id that is already **closed** (released or expired) is refused, however the copy
  arrived, so a released order never produces a hit again;
- a **release** by the issuing court, or the bus's **expiry notice**, closes the order
  and removes it under every key it is indexed by, found from the tracking state, not
  from the release's own record key; a closure for an order not (yet) known is kept, so
  the order is refused if it ever arrives. Neither is ever refused for its time or for
  having been seen before.

:meth:`OrderBook.apply` says what it accepted (:class:`Applied`: kind and issuing court),
so the worker forwards exactly that, and nothing it refused, to the police side
(:mod:`consumers.delivery`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from consumers.hit_clocks import COURT, POLICE, HitClock
from consumers.tracking import PURGED, Closure, OrderTrack
from consumers.watch_updates import WatchUpdate
from consumers.watchlist import ORDER_TYPES, ActiveOrder, OrderKind, active_order_from_record
from schemas.edge import normalise_event
from schemas.envelope import from_micros, to_micros
from schemas.errors import BusError
from schemas.event_types import EXPIRY_NOTICE, HIT_CONFIRMATION, RELEASE
from schemas.matchkey import MatchKeyer
from sign.verify_stage import VerifiedEvent

__all__ = ["Applied", "DeadlineWatch", "OrderBook", "TrackingTable"]

log = logging.getLogger(__name__)

Refuse = Callable[[VerifiedEvent, str, str], None]


class TrackingTable(Protocol):
    """Where the book keeps each order's track: the worker's sealed ``order_tracking``
    table (:class:`consumers.sealed_table.SealedTable`), or a dict for a replay's rematch."""

    def payload(self, key: bytes) -> bytes | None: ...
    def put(self, key: bytes, payload: bytes, now_us: int) -> None: ...


class DeadlineWatch(Protocol):
    """The timers the book arms (:class:`consumers.deadlines.Deadlines`)."""

    def schedule(self, order_id: str, end_us: int, kind: OrderKind | None = None) -> None: ...
    def watch_ack(self, order_id: str, deadline_us: int) -> None: ...
    def watch_purge(self, order_id: str, end_us: int) -> None: ...
    def watch_hit(self, order_id: str, hit_id: str) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Applied:
    """An order-topic record the book accepted (an order, or a closure, even one that
    changed nothing): the order's kind and the court that issued it."""

    kind: OrderKind
    court: str


class OrderBook:
    """Applies verified order-topic events to the order-tracking table, and says what
    they change on the watchlist (:meth:`drain_updates`)."""

    def __init__(
        self,
        tracking: TrackingTable,
        keyer: MatchKeyer,
        deadlines: DeadlineWatch,
        refuse: Refuse,
        *,
        ack_timeout_s: float,
        topic_kinds: Mapping[str, OrderKind] | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        keep_expired: bool = False,
    ) -> None:
        self._tracking = tracking
        self._updates: list[WatchUpdate] = []
        self._keyer = keyer
        self._deadlines = deadlines
        self._refuse = refuse
        self._ack_timeout_us = int(ack_timeout_s * 1_000_000)
        self._topic_kinds = topic_kinds or {}
        self._clock = clock
        self._keep_expired = keep_expired
        """Expired orders stay on the watchlist for late sightings, until purged."""
        self._lookbacks: list[tuple[ActiveOrder, tuple[bytes, ...], int]] = []

    # --- reads ---------------------------------------------------------------------------
    def drain_updates(self) -> list[WatchUpdate]:
        """The watchlist changes of the records applied since the last call, in order:
        the worker publishes each to its key's partition (:mod:`consumers.watch_updates`)."""
        updates, self._updates = self._updates, []
        return updates

    def drain_lookbacks(self) -> list[tuple[ActiveOrder, tuple[bytes, ...], int]]:
        """The orders entered or corrected since the last call, with their match keys and
        when the bus first applied them: the worker matches each against the sightings
        that arrived within the look-back window before that (:mod:`consumers.lookback`;
        a corrected order, as corrected, against those that arrived before its first
        copy: the matcher judged those after by the order in force then)."""
        lookbacks, self._lookbacks = self._lookbacks, []
        return lookbacks

    def track(self, order_id: str) -> OrderTrack | None:
        raw = self._tracking.payload(order_id.encode())
        return OrderTrack.from_bytes(raw) if raw else None

    def set_track(self, order_id: str, track: OrderTrack) -> None:
        self._tracking.put(order_id.encode(), track.to_bytes(), self._now_us())

    # --- the order topics ----------------------------------------------------------------
    def apply(self, verified: VerifiedEvent) -> Applied | None:
        """The effect of one verified record of an order topic; what was accepted, or None
        when the record was refused (dead-lettered through ``refuse``)."""
        event_type = verified.envelope.type
        record = verified.payload
        kind = ORDER_TYPES.get(event_type) or _kind_named(record.get("order_kind"))
        topic_kind = self._topic_kinds.get(verified.record.topic)
        if topic_kind is not None and kind is not None and kind is not topic_kind:
            self._refuse(
                verified,
                "MISPLACED",
                (
                    f"a {kind} event on the topic of {topic_kind} orders, which are delivered "
                    "to another police role"
                ),
            )
            return None  # fmt: skip
        kind = kind or topic_kind
        court: str | None = None
        if event_type in ORDER_TYPES:
            problem = _edge_problem(event_type, record)
            if problem is not None:  # signed past the edge (the publisher's rules unrun)
                self._refuse(verified, "EDGE_RULE", problem)
                return None
            court = self._order(verified, event_type, record)
        elif event_type == RELEASE:
            court = self._release(verified, record)
        elif event_type == EXPIRY_NOTICE:
            if verified.signature.role != "bus":
                self._refuse(verified, "ROLE_NOT_ALLOWED", "expiry notices are the bus's")
                return None
            court = str(record["court_code"])
            if self._renewed_since(record):
                return None  # not applied, so not delivered to the police either
            self._close(str(record["order_id"]), Closure.EXPIRED, verified, court)
        return Applied(kind, court) if kind is not None and court is not None else None

    def _order(
        self, verified: VerifiedEvent, event_type: str, record: Mapping[str, Any]
    ) -> str | None:
        """Enter an order; its court, or None when refused."""
        order = active_order_from_record(event_type, record)
        signer = verified.signature.agency_code
        if order.court_code != signer:
            self._refuse(
                verified,
                "AGENCY_MISMATCH",
                (f"enforcing_court_code {order.court_code} is not the signing agency {signer}"),
            )
            return None  # fmt: skip
        keys = self._subject_keys(order.kind, record)
        key = verified.record.key or b""
        if key not in keys:
            self._refuse(
                verified,
                "KEY_MISMATCH",
                (
                    "the record key is not a match key of the order's subject: sightings of "
                    "another subject would hit it"
                ),
            )
            return None  # fmt: skip
        track = self.track(order.order_id)
        if track is not None and track.court != order.court_code:
            if track.kind is not None:  # another court's order holds the id: never taken over
                self._refuse(
                    verified,
                    "AGENCY_MISMATCH",
                    (
                        f"order {order.order_id} is court {track.court}'s order; court "
                        f"{order.court_code} cannot issue an order under its id"
                    ),
                )
                return None  # fmt: skip
            track = None  # a closure by another court names no order of this one
        if track is not None and track.closed is not None:
            self._refuse(
                verified,
                "ORDER_CLOSED",
                (
                    f"order {order.order_id} was {track.closed.lower()} at "
                    f"{_when(track.closed_at_us)}; a closed order never returns to the watchlist"
                ),
            )
            return None  # fmt: skip
        order = order.with_keys(keys)
        if track is not None and track.kind is not None and track.kind is not order.kind:
            self._refuse(
                verified,
                "MISPLACED",
                f"order {order.order_id} is a {track.kind} order, sent again as {order.kind}",
            )
            return None  # fmt: skip
        self._updates += [WatchUpdate(subject_key, order=order) for subject_key in keys]
        if track is None:
            deadline_us = order.issued_at_us + self._ack_timeout_us
            track = OrderTrack(
                order.kind, order.court_code, order.issued_at_us, deadline_us,
                (key, *(k for k in keys if k != key)),  # the record key first
                end_us=order.end_us, case_number=order.case_number, applied_us=self._now_us(),
            )  # fmt: skip
            self._deadlines.watch_ack(order.order_id, deadline_us)
        else:  # the same order again, renewed or corrected: its period is the latest copy's
            # and so is its subject: a corrected subject's keys replace the old ones, under
            # which the order is taken off the watchlist
            ordered = (key, *(k for k in keys if k != key))
            self._updates += [
                WatchUpdate(old, removed=order.order_id) for old in track.keys if old not in keys
            ]
            track = track.renewed(order.end_us, order.case_number, ordered)
        self._lookbacks.append((order, tuple(keys), track.applied_us or order.issued_at_us))
        self.set_track(order.order_id, track)
        self._deadlines.schedule(order.order_id, order.end_us, order.kind)
        return order.court_code

    def _subject_keys(self, kind: OrderKind, record: Mapping[str, Any]) -> list[bytes]:
        """The match keys an order is indexed by: the person's key, or a vehicle's plate
        and VIN keys (a VIN-only sighting finds it)."""
        subject = record["subject"]
        if kind is OrderKind.VEHICLE_SEARCH:
            return self._keyer.vehicle(subject.get("plate_number"), subject.get("vin"))
        return [self._keyer.person(subject["id_number"], "subject.id_number")]

    def _release(self, verified: VerifiedEvent, record: Mapping[str, Any]) -> str | None:
        """Close a released order; the issuing court, or None when refused."""
        order_id = str(record["order_id"])
        court = verified.signature.agency_code
        track = self.track(order_id)
        issuer = track.court if track is not None else court
        if court != issuer or record["releasing_court_code"] != issuer:
            self._refuse(
                verified,
                "AGENCY_MISMATCH",
                f"order {order_id} was issued by {issuer}, released by {court}",
            )
            return None  # fmt: skip
        kind = _kind_named(record.get("order_kind"))
        if track is not None and track.kind is not None and kind is not track.kind:
            self._refuse(
                verified,
                "MISPLACED",
                (
                    f"order {order_id} is a {track.kind} order, released as {kind}: the "
                    "release would reach another police role than the order did"
                ),
            )
            return None  # fmt: skip
        self._close(order_id, Closure.RELEASED, verified, court)
        return court

    def _close(self, order_id: str, closure: Closure, verified: VerifiedEvent, court: str) -> None:
        """Close the order and remove it under every key it is indexed by."""
        key = verified.record.key or b""
        track = self.track(order_id)
        now_us = self._now_us()
        if track is None:
            log.info("%s of order %s before the order itself: kept", closure.lower(), order_id)
            track = OrderTrack.closed_unknown(closure, court, (key,), now_us)
        elif track.closed is None:
            track = track.close(closure, now_us, (key,))
            if closure is Closure.EXPIRED and self._keep_expired and track.end_us is not None:
                # on the watchlist for late sightings until its late window ends
                self.set_track(order_id, track)
                self._deadlines.watch_purge(order_id, track.end_us)
                return
        elif closure is Closure.RELEASED and track.in_late_window:
            track = track.with_notice(PURGED)  # a release ends the late window at once
        else:
            return  # closed before: applying it again changes nothing
        self._remove(order_id, track, key)

    def _remove(self, order_id: str, track: OrderTrack, key: bytes = b"") -> None:
        """Record ``track`` and take the order off the watchlist under every key."""
        self.set_track(order_id, track)
        self._updates += [
            WatchUpdate(subject_key, removed=order_id)
            for subject_key in dict.fromkeys((*track.keys, key) if key else track.keys)
        ]

    def _renewed_since(self, notice: Mapping[str, Any]) -> bool:
        """Whether a bus expiry notice names a period that a renewal applied before it
        replaced: then it is stale, and the order stays (its new end has its own)."""
        track = self.track(str(notice["order_id"]))
        if track is None or track.closed is not None or track.end_us is None:
            return False
        if to_micros(notice["expired_at"]) >= track.end_us:
            return False
        log.info("expiry of order %s at %s: renewed since, until %s", notice["order_id"],
                 notice["expired_at"], _when(track.end_us))  # fmt: skip
        return True

    def noticed(self, order_id: str, notice: str) -> None:
        """Record that ``notice`` was sent for the order (not sent again after a restart)."""
        track = self.track(order_id)
        if track is None or notice in track.noticed:
            return
        if notice == PURGED and track.in_late_window:
            self._remove(order_id, track.with_notice(notice))
        elif notice != PURGED:
            self.set_track(order_id, track.with_notice(notice))

    # --- hit confirmation clocks ----------------------------------------------------------
    def hit_matched(self, order_id: str, clock: HitClock) -> None:
        """Start the confirmation clock of a hit of the order (once per hit)."""
        track = self.track(order_id)
        if track is None or track.kind is None or track.clock(clock.hit_id) is not None:
            return
        self.set_track(order_id, track.with_clock(clock))
        self._deadlines.watch_hit(order_id, clock.hit_id)

    def confirm_hit(self, verified: VerifiedEvent) -> bool:
        """Stop a side's clock of a hit: the court's (``HitConfirmation``, by the order's
        court) or the police's (``EncounterConfirmation``, by the unit that reported the
        sighting). False when refused (dead-lettered through ``refuse``)."""
        record = verified.payload
        order_id, hit_id = record.get("order_id"), str(record["hit_id"])
        track = self.track(str(order_id)) if order_id is not None else None
        clock = track.clock(hit_id) if track is not None else None
        if track is None or clock is None:
            detail = (
                f"order_id {order_id}: no hit {hit_id} of that order awaits confirmation"
                if order_id is not None
                else "order_id: required (the hit's order_id) [rule required]"
            )
            self._refuse(verified, "UNKNOWN_HIT", detail)
            return False
        signer = verified.signature.agency_code
        court_side = verified.envelope.type == HIT_CONFIRMATION
        owner = track.court if court_side else clock.unit
        if signer != owner:
            self._refuse(verified, "AGENCY_MISMATCH",
                         f"hit {hit_id} is confirmed by {owner}, not by {signer}")  # fmt: skip
            return False
        side = COURT if court_side else POLICE
        self.set_track(str(order_id), track.with_clock(clock.confirmed(side, self._now_us())))
        return True

    def acknowledge(self, order_id: str, status: str) -> None:
        track = self.track(order_id)
        if track is not None and track.closed is None:
            self.set_track(order_id, track.acknowledged(status))

    def _now_us(self) -> int:
        return to_micros(self._clock())


def _edge_problem(event_type: str, record: Mapping[str, Any]) -> str | None:
    """Why an order breaks the edge's rules (identifiers, times, text: what the publisher
    checks before it signs), or None. A genuine court's key can sign what never passed
    them (a control period to 9999, another court's case number, a bidi override in the
    police's instructions); such an order is not entered."""
    try:
        normalise_event(event_type, record)
    except (BusError, ValueError) as exc:
        return str(exc)
    return None


def _kind_named(value: object) -> OrderKind | None:
    try:
        return OrderKind(str(value))
    except ValueError:
        return None


def _when(micros: int | None) -> str:
    if micros is None:
        return "an unknown time"
    return from_micros(micros).isoformat()
