"""The matcher: sightings against the watchlist, hits out to the issuing courts.

For each sighting the matcher looks its record key up in the watchlist first (and a
vehicle's VIN key from ``ce_altkeys``; each key on the worker holding its partition,
:mod:`consumers.routing`): a miss costs one dict lookup, no decode and no signature
check. Only a candidate hit is verified (signature, chain, agency, replay) and decoded,
always before anything is acted on. Each hit is built for *every* active order on the
subject whose kind the sighting can hit, signed by the matcher, and addressed to the
issuing court's own alert topic. A hit's id is derived from order id and sighting id, so
a redelivered sighting yields the same hit, never a second alert. A transfer or mortgage
registration attempt on a vehicle under a search order also yields a "blocked" answer to
the police side.

So that junk or forged sightings of unwatched subjects still leave a trace, one miss in
``verify_misses_every`` (counted, so deterministic; 0 = never) is checked in full by a
sample stage whose replay guard nothing else uses: a failing one is dead-lettered and
audited, a good one has no effect at all (``tests/bench/bench_matcher.py`` measures it).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from consumers.action_notices import ActionNotices
from consumers.hit_records import blocked_record, evidence, hit_id, hit_record
from consumers.outgoing import Outgoing, OutgoingSigner
from consumers.routing import ROUTE_HEADER, Origin, Placement
from consumers.watchlist import (
    ActiveOrder,
    OrderKind,
    WatchEntry,
    derive_id,
    key_fingerprint,
    kinds_matched_by,
    late_orders,
    matching_orders,
)
from schemas.codec import Codec, default_codec
from schemas.edge_rules import CLOCK_SKEW
from schemas.envelope import KafkaRecord, to_micros
from schemas.event_types import SIGHTINGS
from schemas.headers import CE_ALTKEYS, CE_TYPE
from schemas.matchkey import MatchKeyer
from sign.events import EventSigner
from sign.verify_stage import VerifiedEvent, VerifyStage
from topics.catalog import Catalog

__all__ = [
    "ConsumedSighting",
    "MatchResult",
    "Matcher",
    "alt_keys",
    "blocked_event_id",
    "blocks_transfer",
    "hit_id",
    "orders_hit",
    "sighting_problem",
]

log = logging.getLogger(__name__)

_BLOCKED_KINDS = frozenset({"TRANSFER_REGISTRATION", "MORTGAGE_REGISTRATION"})
_HIT = "cn.zf801.bus.v1.Hit"
_BLOCKED = "cn.zf801.orders.v1.VehicleTransferBlocked"


class ConsumedSighting(Protocol):
    """The fields of a consumed Kafka record the matcher reads (aiokafka or kafka-python,
    or the verify stage's frozen ``ConsumedRecord``): read-only."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Any: ...


@dataclass
class MatchResult:
    """What one batch of sightings produced. ``rejected`` counts refused candidates;
    ``sampled`` the misses verified by sampling, ``sample_rejected`` those refused."""

    outgoing: list[Outgoing] = field(default_factory=list)
    after_commit: list[Outgoing] = field(default_factory=list)
    """Records to send once the batch's transaction is committed, outside it: the starts
    of the hits' confirmation clocks, on the order ledger (read by faust, whose commits
    would stop short of a transaction's marker there)."""
    seen: int = 0
    candidates: int = 0
    hits: int = 0
    late: int = 0
    """Of the hits, those flagged late (:func:`consumers.watchlist.late_orders`)."""
    action_notices: int = 0
    unaddressed_notices: int = 0
    """Hits whose reporting unit has no action-notices topic (not a police unit of the
    agency list): the court hears of the hit, no notice is sent."""
    blocked: int = 0
    rejected: int = 0
    sampled: int = 0
    sample_rejected: int = 0
    routing_checked: int = 0
    misrouted: int = 0
    """Of the sightings whose partition was checked, those not on their key's murmur2
    partition (a producer with another partitioner)."""
    rerouted: int = 0
    """Copies of sightings moved to the partition of a key another worker holds."""
    hit_timestamps_ms: list[int] = field(default_factory=list)
    """Per hit, when its sighting reached the bus (the record's timestamp): the hit
    latency, once the batch is committed."""


def _header(headers: Iterable[tuple[str, bytes]], name: str) -> bytes | None:
    for header_name, value in headers:
        if header_name == name:
            return value
    return None


class Matcher:
    """Matches sightings against a watchlist lookup and builds signed hits. ``refuse``
    dead-letters and audits a verified sighting that must not be acted on.

    ``verify_misses_every`` = N > 0 verifies the N-th, 2N-th, ... miss with
    ``sample_stage`` (required then; never the hits' ``verify_stage``, so a sampled miss
    is not recorded in the replay guard of what is acted on).
    """

    def __init__(
        self,
        lookup: Callable[[bytes], WatchEntry | None],
        verify_stage: VerifyStage,
        refuse: Callable[[VerifiedEvent, str, str], None],
        signer: EventSigner,
        catalog: Catalog,
        *,
        codec: Codec | None = None,
        keyer: MatchKeyer | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        verify_misses_every: int = 0,
        sample_stage: VerifyStage | None = None,
        check_routing_every: int = 64,
        action_notices: ActionNotices | None = None,
        late_window_us: int = 0,
        clock_start: Callable[[ActiveOrder, str, str, dt.datetime], Outgoing] | None = None,
    ) -> None:
        if verify_misses_every < 0:
            raise ValueError(f"verify_misses_every {verify_misses_every}: must be >= 0")
        if verify_misses_every and sample_stage is None:
            raise ValueError("verify_misses_every > 0 needs a sample_stage")
        if sample_stage is not None and sample_stage is verify_stage:
            raise ValueError("sample_stage must not be the verify stage of the hits")
        self.verify_misses_every = verify_misses_every
        self._sample_stage = sample_stage
        self._misses_to_sample = verify_misses_every
        self._lookup = lookup
        self._keyer = keyer or MatchKeyer()
        self._stage = verify_stage
        self._refuse = refuse
        self._signer = signer
        self._catalog = catalog
        self._codec = codec or default_codec()
        self._clock = clock
        self._outgoing = OutgoingSigner(signer, self._codec)
        self._action_notices = action_notices
        self._late_window_us = late_window_us
        self._clock_start = clock_start
        """Builds the record that starts a live hit's confirmation clock (order, hit id,
        reporting unit, time), sent with the hit (:mod:`consumers.hit_clocks`)."""
        self._blocks_topic = catalog.topic_name("vehicle-blocks")
        self._vehicle_topic = catalog.topic_name("sightings-vehicle")
        self._routed_topic = catalog.topic_name("sightings-routed")
        self._partition_counts = {
            catalog.topic_name(topic_id): catalog.get(topic_id).partitions
            for topic_id in ("sightings-person", "sightings-vehicle")
        }
        self.placement = Placement(catalog.get("watchlist-changelog").partitions)
        self.check_routing_every = max(1, check_routing_every)
        self._to_routing_check = 1

    def hold(self, partitions: Iterable[int]) -> None:
        """The watchlist partitions this worker holds (:class:`consumers.routing.Placement`)."""
        self.placement.hold(partitions)

    def process(self, records: Iterable[ConsumedSighting]) -> MatchResult:
        """Match a batch; the result lists every record to publish, in order."""
        result = MatchResult()
        lookup = self._lookup
        placement = self.placement
        holds_all = placement.holds_all  # assignments change between batches, not within
        sampling = self.verify_misses_every
        vehicles, routed = self._vehicle_topic, self._routed_topic
        for message in records:
            result.seen += 1
            key = message.key
            if key is None:  # nothing to look up: junk, which sampling may show
                self._maybe_sample(message, result)
                continue
            if message.topic == routed:
                self._moved_here(message, result)
                continue
            alt = alt_keys(message.headers) if message.topic == vehicles else None
            if holds_all:
                self._to_routing_check -= 1
                if not self._to_routing_check:
                    self._to_routing_check = self.check_routing_every
                    self._check_routing(message, result)
                if alt is None:  # the common case: one key, held here
                    entry = lookup(key)
                    found = [(key, entry)] if entry else None
                else:
                    found = self._found([key, *alt], range(len(alt) + 1))
            else:
                keys = [key, *alt] if alt else [key]
                result.routing_checked += 1
                if placement.partition_of(key) != message.partition:
                    result.misrouted += 1
                here, elsewhere = placement.split(keys)
                for partition, indexes in elsewhere.items():
                    self._move(message, partition, indexes, result)
                found = self._found(keys, here) if here else None
            if not found:
                if sampling:
                    self._maybe_sample(message, result)
                continue
            self._candidate(message, found, None, result)
        return result

    def _found(
        self, keys: list[bytes], indexes: Iterable[int]
    ) -> list[tuple[bytes, WatchEntry]] | None:
        """The entries of ``keys[i]`` for each i in ``indexes``, each without the orders
        also indexed under an earlier key of the sighting (hit there, not twice)."""
        found = []
        for index in indexes:
            entry = self._lookup(keys[index])
            if entry and index:
                earlier = [key_fingerprint(key) for key in keys[:index]]
                entry = WatchEntry({
                    order_id: order for order_id, order in entry.orders.items()
                    if not any(order.indexed_under(fp) for fp in earlier)
                })  # fmt: skip
            if entry:
                found.append((keys[index], entry))
        return found or None

    def _candidate(
        self,
        message: ConsumedSighting,
        found: list[tuple[bytes, WatchEntry]],
        origin: Origin | None,
        result: MatchResult,
    ) -> None:
        """Verify a sighting with orders on its keys, then build its hits. A moved
        sighting is verified at its ``origin``: its copies are one sighting."""
        headers = list(message.headers or ())
        raw_type = _header(headers, CE_TYPE)
        sighting_type = raw_type.decode("utf-8", "replace") if raw_type is not None else ""
        if not any(_could_hit(entry, sighting_type) for _, entry in found):
            if sighting_type not in SIGHTINGS:  # no sighting at all, under a watched key
                self._refuse_junk(message, origin, headers, result)
            return  # a sighting of a kind these orders do not look for: a miss
        result.candidates += 1
        verified = self._checked(message, origin, headers)
        if verified is None:
            result.rejected += 1
            return
        self._hits_for(verified, found, result)

    def _refuse_junk(
        self,
        message: ConsumedSighting,
        origin: Origin | None,
        headers: list[tuple[str, bytes]],
        result: MatchResult,
    ) -> None:
        """What is no sighting (no or another ``ce_type``, junk) found under a watched key
        is refused where it fails, dead-lettered and audited: it was passed over silently,
        like a miss. A signed record of another type is refused as out of place."""
        verified = self._checked(message, origin, headers)
        result.rejected += 1
        if verified is not None:
            self._refuse(verified, "MISPLACED", f"a {verified.envelope.type} is no sighting")

    def _checked(
        self, message: ConsumedSighting, origin: Origin | None, headers: list[tuple[str, bytes]]
    ) -> VerifiedEvent | None:
        """The record verified where it is judged: its place, or for a moved one its
        original place (its copies are one record); None when refused."""
        topic, partition, offset = (
            (message.topic, message.partition, message.offset)
            if origin is None
            else (origin.topic, origin.partition, origin.offset)
        )
        return self._stage.check(
            topic, partition, offset, message.timestamp, message.key, message.value, headers
        )

    def _maybe_sample(self, message: ConsumedSighting, result: MatchResult) -> None:
        """Count a miss; verify it in full when its turn in ``verify_misses_every`` came."""
        if self.verify_misses_every:
            self._misses_to_sample -= 1
            if not self._misses_to_sample:
                self._misses_to_sample = self.verify_misses_every
                self._verify_miss(message, result)

    def _move(
        self, message: ConsumedSighting, partition: int, indexes: list[int], result: MatchResult
    ) -> None:
        """Move the sighting, unchanged, to ``partition`` of the routed topic, to have
        ``indexes`` of its keys looked up by the worker that holds them."""
        origin = Origin(message.topic, message.partition, message.offset, tuple(indexes))
        headers = [(name, value) for name, value in message.headers or () if name != ROUTE_HEADER]
        headers.append((ROUTE_HEADER, origin.header()))
        record = KafkaRecord(message.key, message.value or b"", tuple(headers))
        result.outgoing.append(Outgoing(self._routed_topic, record, partition=partition))
        result.rerouted += 1

    def _moved_here(self, message: ConsumedSighting, result: MatchResult) -> None:
        """A sighting another worker moved here: look up the keys it names."""
        try:
            origin = Origin.parse(_header(message.headers or (), ROUTE_HEADER))
            if origin.topic not in self._partition_counts:
                raise ValueError(f"{origin.topic} is not a sightings topic")
        except ValueError as exc:
            log.error("moved sighting %s@%d refused: %s", message.topic, message.offset, exc)
            result.rejected += 1
            return
        key = message.key or b""
        alt = alt_keys(message.headers) if origin.topic == self._vehicle_topic else None
        keys = [key, *alt] if alt else [key]
        found = self._found(keys, [index for index in origin.indexes if index < len(keys)])
        if found:
            self._candidate(message, found, origin, result)

    def _check_routing(self, message: ConsumedSighting, result: MatchResult) -> None:
        """Is this sighting on the partition of its key? Sampled where this worker holds
        every partition (the answer changes nothing there; it tells the operator that a
        producer places sightings with another partitioner)."""
        if message.key is None:
            return
        result.routing_checked += 1
        if message.partition != self.placement.partition_of(message.key):
            result.misrouted += 1

    def _verify_miss(self, message: ConsumedSighting, result: MatchResult) -> None:
        """Check a sampled miss in full; the sample stage dead-letters and audits a
        failure. Nothing is acted on either way."""
        stage = self._sample_stage
        assert stage is not None  # __init__ refuses sampling without a sample stage
        result.sampled += 1
        verified = stage.check(
            message.topic, message.partition, message.offset, message.timestamp,
            message.key, message.value, list(message.headers or ()),
        )  # fmt: skip
        if verified is None:
            result.sample_rejected += 1

    def _hits_for(
        self, verified: VerifiedEvent, found: list[tuple[bytes, WatchEntry]], result: MatchResult
    ) -> None:
        consumed = verified.record
        schema, sighting = verified.envelope.schema, verified.payload  # decoded once, verified
        problem = sighting_problem(
            self._keyer,
            (consumed.key or b"", *(key for key, _ in found)),
            sighting,
            verified.signature.agency_code,
            verified.signature.event_time,
        )
        if problem is not None:
            # Signed, but the key (what was matched) is not the subject the value names, or
            # the unit claims another unit's report: never act on it.
            self._refuse(verified, *problem)
            result.rejected += 1
            return
        now = self._clock()
        observed_us, now_us = to_micros(sighting["observed_at"]), to_micros(now)
        entries = [entry for _, entry in found]
        orders = orders_hit(entries, schema.full_name, observed_us, now_us)
        late = late_orders(entries, schema.full_name, observed_us, now_us, self._late_window_us)
        reference, summary, parent = evidence(verified)
        for order in late:  # informational: the court hears of it, the police do nothing
            hit = hit_record(order, reference, summary, now, late=True)
            result.outgoing.append(self._hit(order, hit, parent, now))
            result.hits += 1
            result.hit_timestamps_ms.append(consumed.timestamp)
            result.late += 1
        for order in orders:
            hit = hit_record(order, reference, summary, now)
            result.outgoing.append(self._hit(order, hit, parent, now))
            result.hits += 1
            result.hit_timestamps_ms.append(consumed.timestamp)
            self._notify(
                result, order, hit["hit_id"], sighting_type=schema.full_name, sighting=sighting,
                now=now, parent=parent,
            )  # fmt: skip
            if self._clock_start is not None:
                unit = verified.signature.agency_code
                result.after_commit.append(self._clock_start(order, hit["hit_id"], unit, now))
            if blocks_transfer(order, sighting):
                result.outgoing.append(self._blocked(order, sighting, consumed.key, parent, now))
                result.blocked += 1

    def _notify(
        self,
        result: MatchResult,
        order: ActiveOrder,
        hit_id: str,
        *,
        sighting_type: str,
        sighting: Mapping[str, Any],
        now: dt.datetime,
        parent: str | None,
    ) -> None:
        """The action notice of a live hit, to the reporting unit's own topic; a unit
        without one is counted and logged, never given a topic on the fly."""
        notices = self._action_notices
        if notices is None:
            return
        notice = notices.notice(order, hit_id, sighting_type, sighting, now, parent=parent)
        if notice is not None:
            result.outgoing.append(notice)
            result.action_notices += 1
            return
        result.unaddressed_notices += 1
        log.warning(
            "hit %s: no action notice: reporting unit %r is not a police unit of the agency "
            "list, so it has no action-notices topic (the court still hears of the hit)",
            hit_id, sighting.get("reporting_unit_code"),
        )  # fmt: skip

    def retroactive_hits(
        self, verified: VerifiedEvent, keys: Iterable[bytes], orders: Iterable[ActiveOrder]
    ) -> list[Outgoing]:
        """The look-back's hits (:mod:`consumers.lookback`): a verified sighting, found by
        ``keys``, against new or corrected ``orders`` on its subject; each hit as if the
        order had existed when the sighting arrived (its record timestamp), flagged
        retroactive. No action notice: the encounter is over. A sighting that must not be
        acted on (:func:`sighting_problem`) yields nothing and is refused."""
        sighting = verified.payload
        record = verified.record
        problem = sighting_problem(
            self._keyer, (record.key or b"", *keys), sighting, verified.signature.agency_code,
            verified.signature.event_time,
        )  # fmt: skip
        if problem is not None:
            self._refuse(verified, *problem)
            return []
        observed_us, arrived_us = to_micros(sighting["observed_at"]), record.timestamp * 1000
        now = self._clock()
        reference, summary, parent = evidence(verified)
        kinds = kinds_matched_by(verified.envelope.type)
        return [
            self._hit(order, hit_record(order, reference, summary, now, retroactive=True),
                      parent, now)
            for order in sorted(orders, key=lambda order: order.order_id)
            if order.kind in kinds and order.is_active(observed_us, arrived_us)
        ]  # fmt: skip

    def _blocked(
        self,
        order: ActiveOrder,
        sighting: Mapping[str, Any],
        key: bytes | None,
        parent: str | None,
        now: dt.datetime,
    ) -> Outgoing:
        """The "blocked" answer to the police side of a transfer or mortgage attempt."""
        return self._outgoing.sign(
            self._blocks_topic, _BLOCKED, blocked_record(order, sighting, now), key=key,
            event_id=blocked_event_id(order.order_id, sighting["sighting_id"]),
            parent=parent, now=now,
        )  # fmt: skip

    def _hit(
        self, order: ActiveOrder, hit: Mapping[str, Any], parent: str | None, now: dt.datetime
    ) -> Outgoing:
        """A hit, signed, to the issuing court's own alert topic."""
        return self._outgoing.sign(
            self._catalog.topic_name("alerts", court=order.court_code), _HIT, hit,
            key=order.order_id.encode(), event_id=hit["hit_id"], parent=parent, now=now,
        )  # fmt: skip


def _could_hit(entry: WatchEntry, sighting_type: str) -> bool:
    kinds = kinds_matched_by(sighting_type)
    return any(order.kind in kinds for order in entry.orders.values())


def alt_keys(headers: Any) -> list[bytes] | None:
    """A vehicle sighting's other keys (``ce_altkeys``); None when there are none, or when
    the header is not a list of hex keys (then only the record key counts)."""
    hints = _header(headers or (), CE_ALTKEYS)
    if not hints:
        return None
    try:
        return [bytes.fromhex(text.decode("ascii")) for text in hints.split(b",")]
    except ValueError:
        return None


def sighting_problem(
    keyer: MatchKeyer,
    used: Iterable[bytes],
    sighting: Mapping[str, Any],
    signer_agency: str,
    reported_at: dt.datetime,
) -> tuple[str, str] | None:
    """Why a verified sighting must not be acted on (reason code, detail): it was observed
    later than its unit reported it (``reported_at``, its signed ``ce_time``, itself within
    minutes of the bus's clock) beyond clock skew, a hit dated days ahead; its unit is not
    its signer; or a key it was keyed or found by (``used``) is not its subject's. None if
    none of these."""
    observed = sighting.get("observed_at")
    if isinstance(observed, dt.datetime) and observed > reported_at + CLOCK_SKEW:
        return "CLOCK_AHEAD", (
            f"observed_at {observed.isoformat()} is later than the sighting was reported "
            f"(ce_time {reported_at.isoformat()}) by more than "
            f"{CLOCK_SKEW.total_seconds():.0f} s"
        )
    if sighting.get("reporting_unit_code") != signer_agency:
        return "AGENCY_MISMATCH", (
            f"reporting_unit_code {sighting.get('reporting_unit_code')!r} is not the "
            f"signing agency {signer_agency}"
        )
    if "person" in sighting:
        keys = [keyer.person(sighting["person"]["id_number"], "person.id_number")]
    else:
        vehicle = sighting["vehicle"]
        keys = keyer.vehicle(vehicle.get("plate_number"), vehicle.get("vin"))
    if any(key not in keys for key in used):
        return "KEY_MISMATCH", "a key of the record is not a match key of its subject"
    return None


def orders_hit(
    entries: Iterable[WatchEntry], sighting_type: str, observed_at_us: int, now_us: int
) -> list[ActiveOrder]:
    """The orders a sighting hits, once each, by order id: those of the watchlist
    ``entries`` found by its keys that :func:`consumers.watchlist.matching_orders` names."""
    return sorted(
        {
            order.order_id: order
            for entry in entries
            for order in matching_orders(entry, sighting_type, observed_at_us, now_us)
        }.values(),
        key=lambda order: order.order_id,
    )


def blocks_transfer(order: ActiveOrder, sighting: Mapping[str, Any]) -> bool:
    """Whether the hit also yields a "blocked" answer: a transfer or mortgage registration
    of a vehicle under a search order."""
    return order.kind is OrderKind.VEHICLE_SEARCH and sighting.get("kind") in _BLOCKED_KINDS


def blocked_event_id(order_id: str, sighting_id: object) -> str:
    """The event id of the VehicleTransferBlocked answer of an order and a sighting."""
    return derive_id("blocked", order_id, sighting_id)
