"""``zf801 worker``: the faust-streaming application that keeps the watchlist and routes hits.

- **Orders agent** (the three order topics): verified orders enter the ``watchlist``
  table (match key -> every active order on that subject, with a changelog, so a
  restarted worker recovers it); a verified release or the bus's own expiry notice
  removes the order. The ``order_tracking`` table keeps each order's acknowledgement
  state and deadline.
- **Acknowledgements agent**: records each police acknowledgement and forwards it, as
  signed by the police unit, to the issuing court's alert topic.
- **Matcher** (:mod:`consumers.sighting_loop`): sightings against the watchlist, hits to
  each issuing court's alert topic, in Kafka transactions.
- **Timers**: expiry notices when a control period ends (to the order topic, which the
  police side reads, and to the court), and an overdue alert to the court when an order
  is not acknowledged within ``settings.ack_timeout_s``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaProducer

from consumers.deadlines import ACK_ROLES, Deadlines
from consumers.matcher import Matcher
from consumers.outgoing import Outgoing, OutgoingSigner
from consumers.runtime import Runtime
from consumers.sighting_loop import SightingLoop
from consumers.watchlist import (
    ORDER_TYPES,
    OrderKind,
    WatchEntry,
    active_order_from_record,
)
from schemas.agencies import AgencyRole, load_agencies
from schemas.envelope import KafkaRecord
from schemas.matchkey import MatchKeyer, vehicle_match_keys
from sign.verify_stage import VerifiedEvent

__all__ = ["BusWorker"]

log = logging.getLogger(__name__)

ORDER_TOPIC_IDS: Mapping[OrderKind, str] = {
    OrderKind.EXIT_RESTRICTION: "orders-exit-restriction",
    OrderKind.VEHICLE_SEARCH: "orders-vehicle-search",
    OrderKind.LOCATE_DEBTOR: "orders-locate-debtor",
}

_STATS_INTERVAL_S = 30.0
_RELEASE = "cn.zf801.orders.v1.OrderRelease"
_EXPIRY = "cn.zf801.orders.v1.OrderExpiryNotice"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class BusWorker:
    """One worker process of the ``zf801-matcher`` application."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        settings = runtime.settings
        catalog = runtime.catalog
        watch_spec = catalog.get("watchlist-changelog")
        assert watch_spec.changelog_of is not None
        self.app_id = watch_spec.changelog_of.application
        self.order_topics = {kind: catalog.topic_name(tid) for kind, tid in ORDER_TOPIC_IDS.items()}
        datadir = settings.home / "worker" / self.app_id
        datadir.mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            self.app_id,
            broker=f"kafka://{settings.bootstrap_servers}",
            store="memory://",
            datadir=str(datadir),
            web_enabled=False,
            topic_allow_declare=False,
            topic_disable_leader=True,
            consumer_auto_offset_reset="earliest",
            broker_commit_interval=0.5,
            # A crashed worker's partitions move on after 10 s, not faust's default 60 s.
            broker_session_timeout=10.0,
            broker_heartbeat_interval=3.0,
            producer_acks=-1,
            table_standby_replicas=0,
            topic_partitions=watch_spec.partitions,
            key_serializer="raw",
            value_serializer="raw",
        )
        self.watchlist = self.app.Table(
            watch_spec.changelog_of.table,
            key_type=bytes,
            value_type=bytes,
            partitions=watch_spec.partitions,
        )
        tracking_spec = catalog.get("order-tracking-changelog")
        assert tracking_spec.changelog_of is not None
        self.tracking = self.app.Table(
            tracking_spec.changelog_of.table,
            key_type=bytes,
            value_type=bytes,
            partitions=tracking_spec.partitions,
        )
        self.orders_stage = runtime.verify_stage()
        self.acks_stage = runtime.verify_stage()
        self.sightings_stage = runtime.verify_stage()
        self.matcher = Matcher(
            self._lookup,
            self.sightings_stage,
            runtime.refuse,
            runtime.signer,
            catalog,
            codec=runtime.codec,
            keyer=MatchKeyer(runtime.settings.match_key_secret.get_secret_value().encode()),
        )
        self.loop = SightingLoop(self, self.matcher)
        self._producer: AIOKafkaProducer | None = None
        self.deadlines = Deadlines(
            OutgoingSigner(runtime.signer, runtime.codec), catalog, self.order_topics, self._entry
        )
        self._heap_stale = True
        self._wire()

    # --- watchlist access ----------------------------------------------------------------
    def _lookup(self, key: bytes) -> WatchEntry | None:
        """The matcher's read: straight from the table's store, without the per-access
        sensors of ``Table.get`` (a miss must cost one dict lookup)."""
        raw = self.watchlist.data.get(key)
        return WatchEntry.from_bytes(raw) if raw else None

    def _entry(self, key: bytes) -> WatchEntry:
        return WatchEntry.from_bytes(self.watchlist.get(key))

    def _store(self, key: bytes, entry: WatchEntry) -> None:
        if entry:
            self.watchlist[key] = entry.to_bytes()
        elif key in self.watchlist:
            del self.watchlist[key]

    # --- wiring ----------------------------------------------------------------------------
    def _wire(self) -> None:
        app = self.app
        orders = app.topic(*self.order_topics.values(), key_type=bytes, value_type=bytes)
        acks = app.topic(
            self.rt.catalog.topic_name("order-acknowledgements"), key_type=bytes, value_type=bytes
        )
        app.agent(orders, name="orders")(self._orders_agent)
        app.agent(acks, name="acknowledgements")(self._acks_agent)
        app.timer(self.rt.settings.timer_interval_s)(self._on_timer)
        app.timer(_STATS_INTERVAL_S)(self._log_stats)
        app.task(self.loop.run)
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    async def _on_assigned(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs.get("assigned", ())
        topics = set(self.order_topics.values())
        self.loop.follow({tp.partition for tp in assigned if tp.topic in topics})
        self._heap_stale = True

    async def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.rt.settings.bootstrap_servers,
                acks="all",
                enable_idempotence=True,
                client_id=f"{self.app_id}-notices",
            )
            await self._producer.start()
        return self._producer

    async def publish(self, outgoing: list[Outgoing]) -> None:
        producer = await self.producer()
        futures = [
            await producer.send(
                item.topic,
                key=item.record.key,
                value=item.record.value,
                headers=list(item.record.headers),
            )
            for item in outgoing
        ]
        await asyncio.gather(*futures)

    # --- orders ------------------------------------------------------------------------------
    async def _orders_agent(self, stream: Any) -> None:
        async for event in stream.events():
            verified = self.orders_stage.check_record(_Consumed.of(event.message))
            if verified is None:
                continue
            try:
                await self._apply_order_event(verified)
            except Exception as exc:  # a bad record must not stop the watchlist
                self._refuse(verified, "ORDER_REFUSED", f"{type(exc).__name__}: {exc}")

    async def _apply_order_event(self, verified: VerifiedEvent) -> None:
        schema, record = self.rt.codec.decode(verified.record.value or b"")
        key = verified.record.key or b""
        signer = verified.signature
        if schema.full_name in ORDER_TYPES:
            order = active_order_from_record(schema.full_name, record)
            if order.court_code != signer.agency_code:
                self._refuse(verified, "AGENCY_MISMATCH", (
                    f"enforcing_court_code {order.court_code} is not the signing agency "
                    f"{signer.agency_code}"))  # fmt: skip
                return
            keys = self._subject_keys(key, schema.full_name, record)
            for subject_key in keys:
                self._store(subject_key, self._entry(subject_key).with_order(order))
            self._track_new(order.order_id, order.kind, order.court_code, order.issued_at_us, keys)
            self.deadlines.schedule(order, key)
        elif schema.full_name == _RELEASE:
            self._release(verified, key, record)
        elif schema.full_name == _EXPIRY and signer.role == "bus":
            self._remove_everywhere(key, str(record["order_id"]))

    def _subject_keys(self, key: bytes, schema_name: str, record: Mapping[str, Any]) -> list[bytes]:
        """The record key, plus the VIN key of a vehicle order (found by VIN-only sightings)."""
        if ORDER_TYPES[schema_name] is not OrderKind.VEHICLE_SEARCH:
            return [key]
        subject = record["subject"]
        secret = self.rt.settings.match_key_secret.get_secret_value().encode()
        keys = vehicle_match_keys(subject["plate_number"], subject.get("vin"), secret=secret)
        return list(dict.fromkeys([key, *keys]))

    def _release(self, verified: VerifiedEvent, key: bytes, record: Mapping[str, Any]) -> None:
        order_id = str(record["order_id"])
        order = self._entry(key).orders.get(order_id)
        if order is None:
            log.info("release of order %s: not in the watchlist (already gone)", order_id)
            return
        court = verified.signature.agency_code
        if court != order.court_code or record["releasing_court_code"] != order.court_code:
            self._refuse(
                verified,
                "AGENCY_MISMATCH",
                f"order {order_id} was issued by {order.court_code}, released by {court}",
            )
            return
        self._remove_everywhere(key, order_id)

    def _remove_everywhere(self, key: bytes, order_id: str) -> None:
        """Remove the order under every key it is indexed by (plate and VIN keys)."""
        tracked = self.tracking.get(order_id.encode())
        keys = [key]
        if tracked is not None:
            keys += [bytes.fromhex(k) for k in json.loads(tracked)["keys"]]
            del self.tracking[order_id.encode()]
        for subject_key in dict.fromkeys(keys):
            self._store(subject_key, self._entry(subject_key).without(order_id))

    def _track_new(
        self, order_id: str, kind: OrderKind, court: str, issued_at_us: int, keys: list[bytes]
    ) -> None:
        if self.tracking.get(order_id.encode()) is not None:
            return
        deadline = issued_at_us + int(self.rt.settings.ack_timeout_s * 1_000_000)
        self.tracking[order_id.encode()] = json.dumps({
            "kind": kind.value, "court": court, "issued_at_us": issued_at_us,
            "deadline_us": deadline, "status": None, "keys": [k.hex() for k in keys],
        }).encode()  # fmt: skip

    def _refuse(self, verified: VerifiedEvent, reason: str, detail: str) -> None:
        self.rt.refuse(verified, reason, detail)

    # --- acknowledgements -----------------------------------------------------------------
    async def _acks_agent(self, stream: Any) -> None:
        async for event in stream.events():
            message = _Consumed.of(event.message)
            verified = self.acks_stage.check_record(message)
            if verified is None:
                continue
            _, record = self.rt.codec.decode(verified.record.value or b"")
            problem = self._ack_problem(verified, record)
            if problem is not None:
                self._refuse(verified, *problem)
                continue
            order_key = str(record["order_id"]).encode()
            tracked = self.tracking.get(order_key)
            if tracked is not None:
                state = json.loads(tracked)
                state["status"] = record["status"]
                self.tracking[order_key] = json.dumps(state).encode()
            court = record["court_code"]
            forwarded = KafkaRecord(message.key, message.value or b"", tuple(message.headers))
            await self.publish(
                [Outgoing(self.rt.catalog.topic_name("alerts", court=court), forwarded)]
            )

    def _ack_problem(
        self, verified: VerifiedEvent, record: Mapping[str, Any]
    ) -> tuple[str, str] | None:
        """Why an acknowledgement must not be recorded or forwarded, or None: it must come
        from a unit of the role that acts on the order's kind, that serves the court's
        province (the provincial rules of the agency list), about an order of that court."""
        kind = OrderKind(record["order_kind"])
        unit, role = verified.signature.agency_code, ACK_ROLES[kind]
        if verified.signature.role != role:
            return "ROLE_NOT_ALLOWED", f"{kind} orders are acknowledged by {role}"
        if record["acknowledging_unit_code"] != unit:
            return "AGENCY_MISMATCH", f"acknowledging_unit_code is not the signer {unit}"
        court = record["court_code"]
        serving = {a.code for a in load_agencies().units_serving_court(court, AgencyRole(role))}
        if unit not in serving:
            return "ROLE_NOT_ALLOWED", f"unit {unit} does not receive court {court}'s orders"
        tracked = self.tracking.get(str(record["order_id"]).encode())
        if tracked is not None and json.loads(tracked)["court"] != court:
            return "AGENCY_MISMATCH", f"order {record['order_id']} is not court {court}'s"
        return None

    # --- timers ------------------------------------------------------------------------------
    async def _log_stats(self) -> None:
        """What the worker has done so far, for the operator reading its log."""
        committer = self.loop.committer
        if committer is None:
            return
        totals = committer.totals
        refused = sum(
            sum(stage.rejected.values())
            for stage in (self.orders_stage, self.acks_stage, self.sightings_stage)
        )
        log.info(
            "stats: sightings %d, candidates %d, hits %d, blocked %d, refused %d; "
            "watchlist subjects %d, orders tracked %d",
            totals.seen, totals.candidates, totals.hits, totals.blocked, refused,
            len(self.watchlist.data), len(self.tracking.data),
        )  # fmt: skip

    async def _on_timer(self) -> None:
        if self.app.rebalancing or getattr(self.app, "in_recovery", False):
            return
        if self._heap_stale:
            self.deadlines.reschedule(list(self.watchlist.items()))
            self._heap_stale = False
        now = _now()
        due = self.deadlines.expiry_notices(now)
        due += self.deadlines.overdue_alerts(list(self.tracking.items()), now)
        if due:
            await self.publish(due)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


class _Consumed:
    """A faust message seen as a consumed record (faust timestamps are in seconds)."""

    __slots__ = ("headers", "key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, message: Any) -> None:
        self.topic = message.topic
        self.partition = message.partition
        self.offset = message.offset
        self.timestamp = int(message.timestamp * 1000)
        self.key = message.key
        self.value = message.value
        headers = message.headers or ()
        self.headers = list(headers.items() if isinstance(headers, Mapping) else headers)

    @classmethod
    def of(cls, message: Any) -> _Consumed:
        return cls(message)
