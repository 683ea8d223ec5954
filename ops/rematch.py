"""The pure side of ``zf801 replay --rematch``: the matching rules run again over the
verified orders, releases, expiry notices and sightings of a replay, in the order they
reached the bus, and compared with the hits (and blocked transfers) it delivered.

Nothing here re-states a rule: the order lifecycle is :class:`consumers.order_book.
OrderBook` itself (with in-memory state and no timers), the watchlist is the worker's
:class:`consumers.watchlist.WatchEntry` per match key, and a sighting's keys, refusal,
hit orders, hit id and block are the matcher's own functions
(:mod:`consumers.matcher`). The live bus processes a sighting a little after it arrives
and the order topics on another agent, so a sighting and an order (or its release, or
the end of its control period) within :data:`ops.rematch_result.RACE_MARGIN_MS` of
each other could have gone either way: such a difference is a ``RACE`` note, never a
break.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from consumers.matcher import (
    alt_keys,
    blocked_event_id,
    blocks_transfer,
    hit_id,
    orders_hit,
    sighting_problem,
)
from consumers.order_book import OrderBook
from consumers.watchlist import (
    ORDER_TYPES,
    ActiveOrder,
    OrderKind,
    WatchEntry,
    key_fingerprint,
    kinds_matched_by,
    late_orders,
    matching_orders,
)
from ops.rematch_result import (
    MISSING_BLOCK,
    MISSING_HIT,
    OUT_OF_RANGE,
    RACE,
    RACE_MARGIN_MS,
    UNACCOUNTED_BLOCK,
    UNJUSTIFIED_HIT,
    Difference,
    ExpectedHit,
    Position,
    RematchResult,
)
from schemas.envelope import to_micros
from schemas.event_types import BLOCKED, EXPIRY_NOTICE, HIT, RELEASE
from schemas.matchkey import MatchKeyer
from sign.verify_stage import VerifiedEvent

__all__ = ["Rematch", "RematchTopics"]


def _position(verified: VerifiedEvent) -> Position:
    record = verified.record
    return Position(record.topic, record.partition, record.offset)


@dataclass(frozen=True, slots=True)
class RematchTopics:
    """The Kafka names of what the rematch reads, by role. ``alerts`` maps each alert
    topic read to its court: only those courts' hits are compared (a court's alert topic
    is readable by that court only); ``blocks`` is None when the blocks were not read."""

    orders: Mapping[str, OrderKind]
    sightings: frozenset[str]
    vehicle_sightings: str
    alerts: Mapping[str, str]
    blocks: str | None = None


@dataclass(slots=True)
class _Presence:
    """When an order was on the watchlist (arrival times, milliseconds)."""

    order: ActiveOrder
    entered_ms: int
    closed_ms: int | None = None

    def near(self, arrival_ms: int) -> bool:
        """The order entered, left or ended within the race margin of ``arrival_ms``."""
        edges = [self.entered_ms, self.order.end_us // 1000]
        if self.closed_ms is not None:
            edges.append(self.closed_ms)
        return any(abs(edge - arrival_ms) <= RACE_MARGIN_MS for edge in edges)


@dataclass(frozen=True, slots=True)
class _Sighting:
    position: Position
    arrival_ms: int
    keys: tuple[bytes, ...]
    sighting_type: str
    observed_us: int
    refused: bool

    def could_hit(self, order: ActiveOrder) -> bool:
        """The order is under one of the sighting's keys, of a kind it hits, and active
        at its observation time (whatever the processing clock)."""
        if not any(order.indexed_under(key_fingerprint(key)) for key in self.keys):
            return False
        entry = WatchEntry({order.order_id: order})
        return bool(matching_orders(entry, self.sighting_type, self.observed_us, self.observed_us))


@dataclass(frozen=True, slots=True)
class _Delivered:
    position: Position
    order_id: str
    sighting_id: str
    sighting: Position | None


class _Tracks:
    """The order book's tracking table, in memory."""

    def __init__(self) -> None:
        self.rows: dict[bytes, bytes] = {}

    def payload(self, key: bytes) -> bytes | None:
        return self.rows.get(key)

    def put(self, key: bytes, payload: bytes, now_us: int) -> None:
        self.rows[key] = payload


class _NoTimers:
    """A rematch arms no timers: the bus's expiry notices are on the order topics."""

    def schedule(self, order_id: str, end_us: int, kind: OrderKind | None = None) -> None:
        return None

    def watch_ack(self, order_id: str, deadline_us: int) -> None:
        return None

    def watch_purge(self, order_id: str, end_us: int) -> None:
        return None

    def watch_hit(self, order_id: str, hit_id: str) -> None:
        return None


class Rematch:
    """Collects the verified records of a replay (:meth:`add`, in any order) and runs the
    rules over them in the order they reached the bus (:meth:`result`)."""

    def __init__(self, keyer: MatchKeyer, topics: RematchTopics, *,
                 late_window_s: float = 0.0, lookback_s: float = 0.0) -> None:  # fmt: skip
        """The rules as the worker runs them with these windows (``late_window_s``,
        ``lookback_s``: 0 = none)."""
        self._keyer = keyer
        self._late_window_us = int(late_window_s * 1_000_000)
        self._lookback_ms = int(lookback_s * 1000)
        self._topics = topics
        self._events: list[VerifiedEvent] = []
        self._now = dt.datetime.now(dt.UTC)
        self._book = OrderBook(
            _Tracks(), keyer, _NoTimers(), self._refused, ack_timeout_s=0.0,
            topic_kinds=topics.orders, clock=lambda: self._now,
            keep_expired=self._late_window_us > 0,
        )  # fmt: skip
        self._watchlist: dict[bytes, WatchEntry] = {}
        self._presence: dict[str, _Presence] = {}
        self._sightings: dict[str, _Sighting] = {}
        self._expected: dict[str, ExpectedHit] = {}
        self._hits: dict[str, _Delivered] = {}
        self._blocks: dict[str, _Delivered] = {}
        self._result = RematchResult(blocks_checked=topics.blocks is not None)
        self._bounded = False

    def wants(self, topic: str) -> bool:
        topics = self._topics
        return (
            topic in topics.orders
            or topic in topics.sightings
            or topic in topics.alerts
            or topic == topics.blocks
        )

    def is_order_topic(self, topic: str) -> bool:
        return topic in self._topics.orders

    def add(self, verified: VerifiedEvent) -> None:
        """A verified record of one of the rematch's topics (others are ignored)."""
        if self.wants(verified.record.topic):
            self._events.append(verified)

    def result(
        self, ranges: Mapping[tuple[str, int], tuple[int, int]] | None = None, *,
        bounded: bool = False,
    ) -> RematchResult:  # fmt: skip
        """Run the rules and compare. ``ranges``: the offsets read of each sightings
        partition (first, stop), so a delivered hit of a sighting outside them is a note
        (``OUT_OF_RANGE``), not a break; ``bounded``: the range does not cover the whole
        topics, so a block of a sighting not in the range is a note too."""
        self._bounded = bounded
        arrival = sorted(self._events, key=_arrival_order)
        for verified in arrival:
            self._now = _arrival(verified)
            topic = verified.record.topic
            if topic in self._topics.orders:
                self._order_event(verified)
            elif topic in self._topics.sightings:
                self._sighting(verified)
            elif topic in self._topics.alerts:
                self._delivered_hit(verified)
            else:
                self._delivered_block(verified)
        self._compare(ranges or {})
        return self._result

    # --- the rules, in arrival order ------------------------------------------------------
    def _refused(self, verified: VerifiedEvent, reason: str, detail: str) -> None:
        self._result.refused_orders += 1

    def _order_event(self, verified: VerifiedEvent) -> None:
        event_type = verified.envelope.type
        if event_type in ORDER_TYPES:
            self._result.orders += 1
        elif event_type == RELEASE:
            self._result.releases += 1
        elif event_type == EXPIRY_NOTICE:
            self._result.expiries += 1
        self._book.apply(verified)
        at_ms = verified.record.timestamp
        for order, keys, applied_us in self._book.drain_lookbacks():
            if self._lookback_ms:
                self._looked_back(order, keys, applied_us // 1000)
        for update in self._book.drain_updates():  # as the watchlist agent applies them
            entry = self._watchlist.get(update.key, WatchEntry.empty())
            self._watchlist[update.key] = update.applied_to(entry)
            if update.order is not None:
                known = self._presence.get(update.order.order_id)
                if known is None or known.closed_ms is not None:
                    self._presence[update.order.order_id] = _Presence(update.order, at_ms)
                else:
                    known.order = update.order
            elif update.removed is not None:
                gone = self._presence.get(update.removed)
                if gone is not None and gone.closed_ms is None:
                    gone.closed_ms = at_ms

    def _sighting(self, verified: VerifiedEvent) -> None:
        """As :meth:`consumers.matcher.Matcher.process` and ``_hits_for``: the sighting's
        keys looked up, a refused sighting hits nothing, every active order hit once."""
        self._result.sightings += 1
        record, sighting = verified.record, verified.payload
        extra = alt_keys(record.headers) if record.topic == self._topics.vehicle_sightings else None
        keys = (record.key or b"", *(extra or ()))
        found = [(key, entry) for key in keys if (entry := self._watchlist.get(key))]
        sighting_type = verified.envelope.type
        observed_us = to_micros(sighting["observed_at"])
        refused = bool(found) and (
            sighting_problem(self._keyer, (keys[0], *(key for key, _ in found)), sighting,
                             verified.signature.agency_code,
                             verified.signature.event_time) is not None
        )  # fmt: skip
        sighting_id = str(sighting["sighting_id"])
        position, arrival_ms = _position(verified), record.timestamp
        self._sightings.setdefault(
            sighting_id,
            _Sighting(position, arrival_ms, keys, sighting_type, observed_us, refused),
        )
        if refused or not found:
            return
        now_us = arrival_ms * 1000
        entries = [entry for _, entry in found]
        late = late_orders(entries, sighting_type, observed_us, now_us, self._late_window_us)
        for order in [*orders_hit(entries, sighting_type, observed_us, now_us), *late]:
            expected = ExpectedHit(
                hit_id(order.order_id, sighting_id), order.order_id, order.court_code,
                sighting_id, position, arrival_ms, blocks_transfer(order, sighting),
            )  # fmt: skip
            self._expected.setdefault(expected.hit_id, expected)

    def _looked_back(self, order: ActiveOrder, keys: tuple[bytes, ...], at_ms: int) -> None:
        """As :mod:`consumers.lookback`: the sightings that arrived within the look-back
        window before a new or corrected order, on one of its keys, hit it if it would
        have been active when each arrived (retroactive, never a block)."""
        wanted = set(keys)
        for sighting_id, seen in self._sightings.items():
            if seen.refused or not at_ms - self._lookback_ms <= seen.arrival_ms <= at_ms:
                continue
            if wanted.isdisjoint(seen.keys) or order.kind not in kinds_matched_by(
                seen.sighting_type
            ):
                continue
            if order.is_active(seen.observed_us, seen.arrival_ms * 1000):
                expected = ExpectedHit(
                    hit_id(order.order_id, sighting_id), order.order_id, order.court_code,
                    sighting_id, seen.position, seen.arrival_ms, False,
                )  # fmt: skip
                self._expected.setdefault(expected.hit_id, expected)

    def _delivered_hit(self, verified: VerifiedEvent) -> None:
        if verified.envelope.type != HIT:
            return  # acknowledgements, overdue alerts, expiry notices: no hits
        hit = verified.payload
        reference = hit["sighting"]
        where = Position(reference["topic"], reference["partition"], reference["offset"])
        self._hits.setdefault(
            str(hit["hit_id"]),
            _Delivered(_position(verified), str(hit["order_id"]),
                       str(reference["sighting_id"]), where),
        )  # fmt: skip

    def _delivered_block(self, verified: VerifiedEvent) -> None:
        if verified.envelope.type != BLOCKED:
            return
        block = verified.payload
        self._blocks.setdefault(
            verified.signature.event_id,
            _Delivered(_position(verified), str(block["order_id"]),
                       str(block.get("sighting_id") or ""), None),
        )  # fmt: skip

    # --- the comparison ------------------------------------------------------------------
    def _compare(self, ranges: Mapping[tuple[str, int], tuple[int, int]]) -> None:
        result, courts = self._result, set(self._topics.alerts.values())
        compared = {k: hit for k, hit in self._expected.items() if hit.court in courts}
        result.expected_hits = len(compared)
        result.unchecked_hits = len(self._expected) - len(compared)
        result.delivered_hits = len(self._hits)
        for expected in compared.values():
            if expected.hit_id not in self._hits:
                self._missing(expected)
        for key, delivered in self._hits.items():
            if key not in self._expected:
                self._unjustified(delivered, ranges)
        if self._topics.blocks is not None:
            self._compare_blocks(ranges)

    def _racing(self, sighting: _Sighting | None, order_id: str) -> bool:
        presence = self._presence.get(order_id)
        return (
            sighting is not None
            and presence is not None
            and presence.near(sighting.arrival_ms)
            and not sighting.refused
            and sighting.could_hit(presence.order)
        )

    def _missing(self, expected: ExpectedHit) -> None:
        sighting = self._sightings.get(expected.sighting_id)
        raced = self._racing(sighting, expected.order_id)
        self._result.differences.append(Difference(
            RACE if raced else MISSING_HIT, expected.sighting, expected.order_id,
            expected.sighting_id,
            f"hit {expected.hit_id} of order {expected.order_id} (court {expected.court}) "
            + ("not delivered; the order changed within the race margin of the sighting"
               if raced else "expected for this sighting was never delivered"),
        ))  # fmt: skip

    def _unjustified(
        self, delivered: _Delivered, ranges: Mapping[tuple[str, int], tuple[int, int]]
    ) -> None:
        sighting = self._sightings.get(delivered.sighting_id)
        code, why = UNJUSTIFIED_HIT, "no order of the range justifies it"
        reference = delivered.sighting
        if sighting is None and _outside(reference, ranges):
            assert reference is not None
            code, why = OUT_OF_RANGE, f"its sighting ({reference.text()}) is outside the range"
        if sighting is None and code != OUT_OF_RANGE:
            why = "its sighting is not among the sightings of the range"
        elif self._racing(sighting, delivered.order_id):
            code, why = RACE, "the order changed within the race margin of the sighting"
        self._result.differences.append(Difference(
            code, delivered.position, delivered.order_id, delivered.sighting_id,
            f"hit of order {delivered.order_id} for sighting {delivered.sighting_id}: {why}",
        ))  # fmt: skip

    def _compare_blocks(self, ranges: Mapping[tuple[str, int], tuple[int, int]]) -> None:
        result = self._result
        hits_of = {(hit.order_id, hit.sighting_id): hit for hit in self._hits.values()}
        wanted = {
            blocked_event_id(hit.order_id, hit.sighting_id): hit
            for hit in self._expected.values()
            if hit.blocks
        }
        result.expected_blocks, result.delivered_blocks = len(wanted), len(self._blocks)
        for event_id, hit in wanted.items():
            if event_id not in self._blocks and hit.hit_id in self._hits:
                result.differences.append(Difference(
                    MISSING_BLOCK, hit.sighting, hit.order_id, hit.sighting_id,
                    f"the hit of order {hit.order_id} was delivered, its transfer block never",
                ))  # fmt: skip
        for event_id, block in self._blocks.items():
            if event_id in wanted:
                continue
            delivered = hits_of.get((block.order_id, block.sighting_id))
            if block.sighting_id not in self._sightings and (
                self._bounded or (delivered is not None and _outside(delivered.sighting, ranges))
            ):  # the block's sighting was not read: before the range, or deleted by retention
                code, why = OUT_OF_RANGE, "whose sighting is not in the range"
            else:
                code, why = UNACCOUNTED_BLOCK, "that no expected hit explains"
            result.differences.append(Difference(
                code, block.position, block.order_id, block.sighting_id,
                f"a transfer block of order {block.order_id} {why}",
            ))  # fmt: skip


def _outside(reference: Position | None, ranges: Mapping[tuple[str, int], tuple[int, int]]) -> bool:
    """Whether a sighting's place lies outside the offsets read of its partition."""
    if reference is None:
        return False
    first, stop = ranges.get((reference.topic, reference.partition), (0, 1 << 62))
    return not first <= reference.offset < stop


def _arrival(verified: VerifiedEvent) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
        milliseconds=verified.record.timestamp
    )


def _arrival_order(verified: VerifiedEvent) -> tuple[int, str, int, int]:
    record = verified.record
    return (record.timestamp, record.topic, record.partition, record.offset)
