"""Look-back matching: a new or corrected order is matched against the sightings of the last
``window`` (``ZF801_LOOKBACK_S``, default 72 h, like NCIC's delayed inquiry), with the same
hits as if the order had existed when each sighting arrived, flagged retroactive.

The sighting history is the sightings topics themselves (kept 365 days, partitioned by
match key): the sightings of a key are in the partition its murmur2 gives. So the look-back
costs the matcher nothing per sighting (no store is fed on its hot path); its work is per
order, off the matcher's path: for the orders of one batch, each partition their keys
fall in is read once, from the offset of ``now - window`` to the end it has, and only the
records whose key (or a vehicle's VIN key, ``ce_altkeys``) is one of the orders' keys are
verified and decoded (:meth:`consumers.matcher.Matcher.retroactive_hits`).

Deterministic: a hit's id is derived from order id and sighting id, so a sighting the
matcher hit live for the same order, or a look-back run again (after a restart), yields
the same hit, which a court's subscriber shows once. An order closed (released, expired)
before its look-back runs is not looked back for (the worker checks its tracking). A
sighting moved to ``sightings-routed`` is found at its original position.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from kafka import TopicPartition

from consumers.matcher import Matcher, alt_keys
from consumers.outgoing import Outgoing
from consumers.polling import batches_to_end
from consumers.watchlist import ActiveOrder, OrderKind
from schemas.settings import Settings
from sign.verify_stage import VerifyStage
from topics.catalog import Catalog
from topics.clients import kafka_consumer
from topics.partitioning import KeyPartitions

__all__ = ["LookBack", "LookBackRequest"]

log = logging.getLogger(__name__)

_IDLE_S = 2.0


@dataclass(frozen=True, slots=True)
class LookBackRequest:
    """An order to look back for, with every match key it is indexed by, and when the
    bus applied it: the sightings that arrived from then on are the matcher's, live."""

    order: ActiveOrder
    keys: tuple[bytes, ...]
    applied_ms: int


class LookBack:
    """Reads the sightings of the window for a batch of orders and builds their hits."""

    def __init__(
        self,
        settings: Settings,
        agency: str,
        catalog: Catalog,
        matcher: Matcher,
        stage: Callable[[], VerifyStage],
        *,
        window_s: float,
    ) -> None:
        self._settings = settings
        self._agency = agency
        self._matcher = matcher
        self._stage = stage
        self.window = dt.timedelta(seconds=window_s)
        self._topics = {
            "person": catalog.topic_name("sightings-person"),
            "vehicle": catalog.topic_name("sightings-vehicle"),
        }
        partitions = {catalog.get(t).partitions for t in ("sightings-person", "sightings-vehicle")}
        assert len(partitions) == 1  # the matcher's co-partition group
        self._partition_of = KeyPartitions(partitions.pop())
        self.read = 0
        """Sighting records read by the look-backs so far (the cost, for the log)."""

    def run(self, requests: Sequence[LookBackRequest], now: dt.datetime) -> list[Outgoing]:
        """The retroactive hits of ``requests`` (blocking: the worker runs it in a thread)."""
        if not requests:
            return []
        wanted: dict[TopicPartition, dict[bytes, list[LookBackRequest]]] = defaultdict(dict)
        for request in requests:
            kind = "vehicle" if request.order.kind is OrderKind.VEHICLE_SEARCH else "person"
            for key in request.keys:
                tp = TopicPartition(self._topics[kind], self._partition_of(key))
                wanted[tp].setdefault(key, []).append(request)
        stage = self._stage()  # its own replay guard: a sighting acted on live is fine here
        return self._scan(wanted, stage, now)

    def _scan(
        self,
        wanted: dict[TopicPartition, dict[bytes, list[LookBackRequest]]],
        stage: VerifyStage,
        now: dt.datetime,
    ) -> list[Outgoing]:
        """Every partition of ``wanted`` read together by one consumer, from the window's
        start to its end now (a consumer per partition cost a TLS connection each, for
        every batch of orders while orders were loaded)."""
        consumer = kafka_consumer(
            self._settings, self._agency, group_id=None, enable_auto_commit=False,
            client_id=f"{self._agency.lower()}-lookback",
        )  # fmt: skip
        try:
            since_ms = int((now - self.window).timestamp() * 1000)
            starts = consumer.offsets_for_times(dict.fromkeys(wanted, since_ms))
            recent = {tp: found.offset for tp, found in starts.items() if found is not None}
            if not recent:
                return []  # nothing that recent
            consumer.assign(list(recent))
            for tp, offset in recent.items():
                consumer.seek(tp, offset)
            outgoing: list[Outgoing] = []
            for batch in batches_to_end(consumer, idle_s=_IDLE_S):
                self.read += len(batch)
                for message in batch:
                    orders_by_key = wanted[TopicPartition(message.topic, message.partition)]
                    outgoing += self._candidate(message, orders_by_key, stage)
            return outgoing
        finally:
            consumer.close()

    def _candidate(
        self, message: object, orders_by_key: dict[bytes, list[LookBackRequest]],
        stage: VerifyStage,
    ) -> list[Outgoing]:  # fmt: skip
        """A record of the partition: nothing unless one of its keys is wanted by an order
        applied after it arrived; then verified, and its hits."""
        key = getattr(message, "key", None)
        if key is None:
            return []
        headers = list(getattr(message, "headers", None) or ())
        keys = [key, *(alt_keys(headers) or ())]
        arrived_ms = message.timestamp  # type: ignore[attr-defined]
        before = {
            k: [r.order for r in orders_by_key[k] if arrived_ms < r.applied_ms]
            for k in keys
            if k in orders_by_key
        }
        found = [k for k, orders in before.items() if orders]
        if not found:
            return []
        verified = stage.check(
            message.topic, message.partition, message.offset,  # type: ignore[attr-defined]
            message.timestamp, key, message.value, headers,  # type: ignore[attr-defined]
        )  # fmt: skip
        if verified is None:
            return []
        orders = _distinct(order for k in found for order in before[k])
        return self._matcher.retroactive_hits(verified, found, orders)


def _distinct(orders: Iterable[ActiveOrder]) -> list[ActiveOrder]:
    return list({order.order_id: order for order in orders}.values())
