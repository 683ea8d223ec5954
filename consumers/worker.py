r"""``zf801 worker``: the faust-streaming application that keeps the watchlist and routes hits.

- **Orders agent** (the three order topics, the intake that only the bus reads):
  verified orders enter the ``watchlist`` table (match key -> every active order on that
  subject, with a changelog, so a restarted worker recovers it); a verified release or
  the bus's own expiry notice removes the order (:mod:`consumers.order_book`). The
  ``order_tracking`` table keeps each order's acknowledgement state, deadline and
  closure. Every record the book accepted is then forwarded, unchanged, to the delivery
  topic of its kind for the issuing court's province, which only the police units that
  province's rule names may read (:mod:`consumers.delivery`).
- **Acknowledgements agent**: records each police acknowledgement and forwards it, as
  signed by the police unit, to the issuing court's alert topic.
- **Matcher** (:mod:`consumers.sighting_loop`): sightings against the watchlist, hits to
  each issuing court's alert topic, in Kafka transactions.
- **Timers**: expiry notices when a control period ends (to the court, and to the order
  intake, from which the orders agent applies and delivers them like a release), and an
  overdue alert to the court when an order is not acknowledged within
  ``settings.ack_timeout_s``.

Trust across restarts (``sign/REPLAY.md``): both tables are :class:`SealedTable`\ s, so a
restore applies only state this processor sealed; every verify stage's replay guard is
journaled (:mod:`consumers.replay_journal`) and restored when partitions are assigned.
No record on any input, changelogs included, stops the worker: it is dead-lettered,
counted and skipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer

from consumers.addressing import ack_problem
from consumers.deadlines import Deadlines
from consumers.delivery import OrderDelivery
from consumers.matcher import Matcher
from consumers.order_book import Applied, OrderBook
from consumers.outgoing import Outgoing, OutgoingSigner
from consumers.replay_journal import JournalRecord, ReplayJournal
from consumers.runtime import Runtime
from consumers.sealed_table import SealedTable
from consumers.sighting_loop import SightingLoop
from consumers.tracking import OrderTrack
from consumers.watchlist import OrderKind, WatchEntry
from schemas.agencies import load_agencies
from schemas.envelope import KafkaRecord
from schemas.errors import UnknownAgencyError
from schemas.matchkey import MatchKeyer
from sign.state_seal import PAYLOAD_OFFSET
from sign.verify_stage import VerifiedEvent, VerifyStage
from topics.clients import aio_producer, faust_app, require_topics

__all__ = ["BusWorker"]

log = logging.getLogger(__name__)

ORDER_TOPIC_IDS: Mapping[OrderKind, str] = {
    OrderKind.EXIT_RESTRICTION: "orders-exit-restriction",
    OrderKind.VEHICLE_SEARCH: "orders-vehicle-search",
    OrderKind.LOCATE_DEBTOR: "orders-locate-debtor",
}

_STATS_INTERVAL_S = 30.0


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
        self.delivery = OrderDelivery(catalog, load_agencies())
        # faust subscribes without a word to topics it may not read: ask first.
        acks_topic = catalog.topic_name("order-acknowledgements")
        require_topics(settings, runtime.agency_code, [*self.order_topics.values(), acks_topic])
        require_topics(settings, runtime.agency_code, self.delivery.topics(), "write")
        datadir = settings.home / "worker" / self.app_id
        datadir.mkdir(parents=True, exist_ok=True)
        self.app = faust_app(
            settings,
            runtime.agency_code,
            self.app_id,
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
        sealer = runtime.state_sealer()
        tracking_spec = catalog.get("order-tracking-changelog")
        assert tracking_spec.changelog_of is not None
        self.watchlist = SealedTable(
            self.app, sealer=sealer, name=watch_spec.changelog_of.table,
            key_type=bytes, value_type=bytes, partitions=watch_spec.partitions,
        )  # fmt: skip
        self.tracking = SealedTable(
            self.app, sealer=sealer, name=tracking_spec.changelog_of.table,
            key_type=bytes, value_type=bytes, partitions=tracking_spec.partitions,
        )  # fmt: skip
        journal_spec = catalog.get("replay-journal")
        self.journal = ReplayJournal(
            journal_spec.name, journal_spec.partitions, sealer, self.app_id
        )
        self.orders_stage = runtime.verify_stage(journal_scope="orders")
        self.acks_stage = runtime.verify_stage(journal_scope="acknowledgements")
        self.sightings_stage = runtime.verify_stage(journal_scope="sightings")
        self.journal_refused = 0
        keyer = MatchKeyer(settings.match_key_secret.get_secret_value().encode())
        self.matcher = Matcher(
            self._lookup,
            self.sightings_stage,
            runtime.refuse,
            runtime.signer,
            catalog,
            codec=runtime.codec,
            keyer=keyer,
            # Misses are not acted on: a sample is verified so junk and forgeries show.
            verify_misses_every=settings.verify_misses_every,
            sample_stage=runtime.verify_stage() if settings.verify_misses_every else None,
        )
        self.loop = SightingLoop(self, self.matcher)
        self._producer: AIOKafkaProducer | None = None
        self.deadlines = Deadlines(
            OutgoingSigner(runtime.signer, runtime.codec), catalog, self.order_topics,
            self._entry, self._track,
        )  # fmt: skip
        self.book = OrderBook(
            self.watchlist, self.tracking, keyer, self.deadlines, runtime.refuse,
            ack_timeout_s=settings.ack_timeout_s,
            topic_kinds={topic: kind for kind, topic in self.order_topics.items()},
        )  # fmt: skip
        self._heap_stale = True
        self._watch_data: Mapping[bytes, bytes] | None = None
        self._wire()

    # --- watchlist access ----------------------------------------------------------------
    def _lookup(self, key: bytes) -> WatchEntry | None:
        """The matcher's read: straight from the table's store, without the per-access
        sensors of ``Table.get`` (a miss must cost one dict lookup)."""
        data = self._watch_data
        if data is None:
            data = self._watch_data = self.watchlist.data.data
        raw = data.get(key)
        return WatchEntry.from_bytes(raw[PAYLOAD_OFFSET:]) if raw else None

    def _entry(self, key: bytes) -> WatchEntry:
        return self.book.entry(key)

    def _track(self, order_id: str) -> OrderTrack | None:
        return self.book.track(order_id)

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
        order_partitions = {tp.partition for tp in assigned if tp.topic in topics}
        inputs = topics | {self.rt.catalog.topic_name("order-acknowledgements")}
        # Before any event of these partitions is judged: what the guards saw before.
        restored = await self.journal.restore(
            self.rt.settings,
            self.rt.agency_code,
            {tp.partition for tp in assigned if tp.topic in inputs},
            {
                "orders": self.orders_stage.replay_guard,
                "acknowledgements": self.acks_stage.replay_guard,
                "sightings": self.sightings_stage.replay_guard,
            },
        )
        self.journal_refused += len(restored.refused)
        for record, detail in restored.refused:
            self.rt.refuse_record(record, "STATE_INTEGRITY", detail, stage="replay-journal")
        self.loop.follow(order_partitions)
        self._heap_stale = True

    async def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            self._producer = aio_producer(
                self.rt.settings, self.rt.agency_code, client_id=f"{self.app_id}-notices"
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

    def journal_records(self, stage: VerifyStage) -> list[JournalRecord]:
        """The journal records of what ``stage`` accepted since the last call."""
        return self.journal.records(stage.replay_guard.drain(), dt.datetime.now(dt.UTC))

    async def _write_journal(self, stage: VerifyStage) -> None:
        """Make what ``stage`` accepted durable before its effect."""
        records = self.journal_records(stage)
        if not records:
            return
        producer = await self.producer()
        futures = [
            await producer.send(r.topic, key=r.key, value=r.value, partition=r.partition)
            for r in records
        ]
        await asyncio.gather(*futures)

    # --- orders ------------------------------------------------------------------------------
    async def _orders_agent(self, stream: Any) -> None:
        async for event in stream.events():
            verified = self.orders_stage.check_record(_Consumed.of(event.message))
            if verified is None:
                continue
            await self._write_journal(self.orders_stage)
            try:
                applied = self.book.apply(verified)
            except Exception as exc:  # a bad record must not stop the watchlist
                log.exception("order record %s refused", verified.signature.event_id)
                self.rt.refuse(verified, "ORDER_REFUSED", f"{type(exc).__name__}: {exc}")
                continue
            if applied is not None:
                await self._deliver(verified, applied)

    async def _deliver(self, verified: VerifiedEvent, applied: Applied) -> None:
        """Forward an accepted intake record to the police units of its court's province,
        before its offset is committed: a redelivery forwards the same record again."""
        try:
            outgoing = self.delivery.forward(verified.record, applied.kind, applied.court)
        except UnknownAgencyError as exc:  # applied, but no provincial rule reaches it
            self.rt.refuse(verified, "UNDELIVERABLE", f"applied, not delivered: {exc}")
            return
        await self.publish([outgoing])

    # --- acknowledgements -----------------------------------------------------------------
    async def _acks_agent(self, stream: Any) -> None:
        async for event in stream.events():
            message = _Consumed.of(event.message)
            verified = self.acks_stage.check_record(message)
            if verified is None:
                continue
            await self._write_journal(self.acks_stage)
            try:
                forwarded = self._acknowledge(
                    verified.signature.agency_code, verified.signature.role, verified.payload
                )
            except Exception as exc:  # never stop on one record
                forwarded = ("ACK_REFUSED", f"{type(exc).__name__}: {exc}")
            if isinstance(forwarded, tuple):
                self.rt.refuse(verified, *forwarded)
                continue
            record = KafkaRecord(message.key, message.value or b"", tuple(message.headers))
            await self.publish([Outgoing(forwarded, record)])

    def _acknowledge(
        self, unit: str, role: str, record: Mapping[str, Any]
    ) -> str | tuple[str, str]:
        """Record a police acknowledgement; the court's alert topic to forward it to, or
        why it is refused: the provincial rules (:func:`consumers.addressing.ack_problem`),
        and the order, when tracked, must be the acknowledged court's."""
        problem = ack_problem(unit, role, record)
        if problem is not None:
            return problem
        order_id, court = str(record["order_id"]), record["court_code"]
        track = self.book.track(order_id)
        if track is not None and track.court != court:
            return "AGENCY_MISMATCH", f"order {order_id} is not court {court}'s"
        self.book.acknowledge(order_id, record["status"])
        return self.rt.catalog.topic_name("alerts", court=court)

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
            "misses verified %d (failed %d); watchlist subjects %d, orders tracked %d; "
            "state records refused %d",
            totals.seen, totals.candidates, totals.hits, totals.blocked, refused,
            totals.sampled, totals.sample_rejected,
            len(self.watchlist.data), len(self.tracking.data),
            self.watchlist.refused_total + self.tracking.refused_total + self.journal_refused,
        )  # fmt: skip
        if totals.misrouted:
            log.warning(
                "sightings off their key's partition: %d of %d checked (1 in %d is); a "
                "producer partitions sightings with another partitioner than murmur2 of the "
                "key, and with several workers a hit can be missed for them",
                totals.misrouted, totals.routing_checked, self.matcher.check_routing_every,
            )  # fmt: skip

    async def _on_timer(self) -> None:
        if self.app.rebalancing or getattr(self.app, "in_recovery", False):
            return
        for table in (self.watchlist, self.tracking):
            for record, detail in table.drain_refused():
                self.rt.refuse_record(record, "STATE_INTEGRITY", detail, stage=table.name)
        if self._heap_stale:
            self.deadlines.reschedule(self.watchlist.payload_items())
            self.deadlines.rewatch_acks(self.tracking.payload_items())
            self._heap_stale = False
        now = _now()
        due = self.deadlines.expiry_notices(now)
        due += self.deadlines.overdue_alerts(now)
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
