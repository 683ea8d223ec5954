r"""``zf801 worker``: the faust-streaming application that keeps the watchlist and routes hits.

- **Orders and acknowledgements agents** (the three order topics, the intake that only
  the bus reads, and the police acknowledgements): verify each event once, then move it
  to the ``order-ledger`` on the partition of its order id (:mod:`consumers.ledger`).
- **Ledger agent**: applies each order's events in order, where its ``order_tracking``
  entry lives (acknowledgement state, deadlines, closure; :mod:`consumers.order_book`):
  an order enters the watchlist, a verified release or the bus's own expiry notice takes
  it out, as one sealed update per match key of the subject
  (:mod:`consumers.watch_updates`). Every record the book accepted is then forwarded,
  unchanged, to the delivery topic of its kind for the issuing court's province, which
  only the police units that province's rule names may read (:mod:`consumers.delivery`);
  each acknowledgement is recorded and forwarded, as signed by the police unit, to the
  issuing court's alert topic.
- **Watchlist agent**: applies the updates to the ``watchlist`` table (match key -> every
  active order on that subject, with a changelog, so a restarted worker recovers it), in
  the partition of each key.
- **Matcher** (:mod:`consumers.sighting_loop`): sightings against the watchlist, hits to
  each issuing court's alert topic, in Kafka transactions; a sighting key whose
  watchlist partition another worker holds is moved there (:mod:`consumers.routing`).
- **Timers**: expiry notices when a control period ends (to the court, and to the order
  intake, from which it travels like a release), and an overdue alert to the court when
  an order is not acknowledged within ``settings.ack_timeout_s``: both kept per order id
  by the worker holding its ledger partition (:mod:`consumers.deadlines`).

Trust across restarts (``sign/REPLAY.md``): both tables are :class:`SealedTable`\ s, so a
restore applies only state this processor sealed, and the ledger and watchlist updates
are sealed too; every verify stage's replay guard is journaled
(:mod:`consumers.replay_journal`) and restored once a rebalance's table recovery is done,
before faust resumes the input partitions. No record on any input, changelogs included,
stops the worker: it is dead-lettered, counted and skipped.

Progress across rebalances and restarts: faust's own offset bookkeeping can hold a
partition's commits back forever, or drop a fetched batch without delivering it; the
worker looks for both every few seconds and repairs them (:mod:`consumers.commit_guard`).
``kill -USR1`` logs where it waits (:mod:`consumers.diagnostics`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer

from consumers.action_notices import ActionNotices
from consumers.addressing import ack_problem
from consumers.commit_guard import CommitGuard, ExactCommits
from consumers.deadlines import Deadlines
from consumers.delivery import OrderDelivery
from consumers.diagnostics import install_state_dump
from consumers.hit_clocks import HitClock, HitPolicy
from consumers.ledger import HitMatched, Noticed, OrderLedger
from consumers.lookback import LookBack, LookBackRequest
from consumers.matcher import Matcher, MatchResult
from consumers.metrics import ProcessorMetrics, counter, gauge, stage_families
from consumers.order_book import Applied, OrderBook
from consumers.outgoing import Outgoing, OutgoingSigner
from consumers.replay_journal import JournalRecord, ReplayJournal
from consumers.runtime import Runtime
from consumers.sealed_table import SealedTable
from consumers.sighting_loop import SightingLoop
from consumers.tracking import LOOKED_BACK, OrderTrack, tracked
from consumers.watch_updates import WatchUpdates
from consumers.watchlist import ActiveOrder, OrderKind, WatchEntry
from schemas.agencies import load_agencies
from schemas.envelope import KafkaRecord, to_micros
from schemas.errors import UnknownAgencyError
from schemas.event_types import ACKNOWLEDGEMENT, ENCOUNTER_CONFIRMATION, HIT_CONFIRMATION
from schemas.matchkey import MatchKeyer
from sign.acceptance import AcceptancePolicy
from sign.state_seal import PAYLOAD_OFFSET, StateIntegrityError
from sign.verify_stage import ConsumedRecord, VerifiedEvent, VerifyStage
from topics.catalog import Catalog
from topics.clients import aio_producer, faust_app, kafka_admin, require_topics, topic_ids
from topics.spec import CleanupPolicy

__all__ = ["BusWorker", "static_member_id"]

log = logging.getLogger(__name__)

ORDER_TOPIC_IDS: Mapping[OrderKind, str] = {
    OrderKind.EXIT_RESTRICTION: "orders-exit-restriction",
    OrderKind.VEHICLE_SEARCH: "orders-vehicle-search",
    OrderKind.LOCATE_DEBTOR: "orders-locate-debtor",
}

_STATS_INTERVAL_S = 30.0
_COMMIT_GUARD_S = 5.0
T = TypeVar("T")


def _sealed_topic(catalog: Catalog, topic_id: str) -> tuple[str, str, int]:
    """A topic of the processor's own sealed records: the seal's store name (bound to
    application and table), the topic name and its partition count."""
    spec = catalog.get(topic_id)
    assert spec.changelog_of is not None  # such topics are declared as the processor's
    return (
        f"{spec.changelog_of.application}/{spec.changelog_of.table}",
        spec.name,
        spec.partitions,
    )


def _warnings_before(default_s: float, by_kind: Mapping[Any, float]) -> dict[OrderKind, int]:
    """How long before its period ends each kind's court is warned (0: not warned)."""
    seconds = {kind: float(by_kind.get(kind.value, default_s)) for kind in OrderKind}
    return {kind: int(s * 1_000_000) for kind, s in seconds.items() if s > 0}


def _open(track: OrderTrack | None) -> bool:
    return track is not None and track.kind is not None and track.closed is None


def static_member_id(app_id: str, worker_id: str, host: str | None = None) -> str:
    """The worker's ``group.instance.id`` (static membership, KIP-345) when its tables are
    on disk: a worker restarted on the same host with the same worker id takes its
    partitions, and its databases, back at once, with no rebalance and no wait for the
    session of the process it replaces to end. A worker that stops leaves its partitions
    where they are until that session ends (10 s), as a crashed one does. Two live workers
    of one id on one host are refused by the group (FENCED_INSTANCE_ID): they would share
    a disk as well."""
    name = host if host is not None else socket.gethostname()
    host_part = re.sub(r"[^a-zA-Z0-9._-]", "_", name)[:64] or "host"
    return f"{app_id}-{host_part}-{worker_id}"


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
        self.confirmation_topics = [
            catalog.topic_name("hit-confirmations"),
            catalog.topic_name("encounter-confirmations"),
        ]
        require_topics(
            settings, runtime.agency_code,
            [*self.order_topics.values(), acks_topic, *self.confirmation_topics],
        )  # fmt: skip
        outgoing = OutgoingSigner(runtime.signer, runtime.codec)
        action_notices = ActionNotices(catalog, load_agencies(), outgoing)
        escalations = catalog.topic_name("escalations")
        require_topics(
            settings, runtime.agency_code,
            [*self.delivery.topics(), *action_notices.topics(), escalations], "write",
        )  # fmt: skip
        datadir = settings.home / "worker" / f"{self.app_id}-{settings.worker_id}"
        datadir.mkdir(parents=True, exist_ok=True)
        persistent = settings.worker_store == "rocksdb"
        self.app = faust_app(
            settings,
            runtime.agency_code,
            self.app_id,
            store="rocksdb://" if persistent else "memory://",
            datadir=str(datadir),
            web_enabled=False,
            topic_allow_declare=False,
            topic_disable_leader=True,
            consumer_auto_offset_reset="earliest",
            broker_commit_interval=0.5,
            # A crashed worker's partitions move on after 10 s, not faust's default 60 s.
            broker_session_timeout=10.0,
            consumer_group_instance_id=(
                static_member_id(self.app_id, settings.worker_id) if persistent else None
            ),
            broker_heartbeat_interval=3.0,
            producer_acks=-1,
            table_standby_replicas=settings.standby_replicas if persistent else 0,
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
            persistent=persistent, indexed=True,
        )  # fmt: skip
        self.tracking = SealedTable(
            self.app, sealer=sealer, name=tracking_spec.changelog_of.table,
            key_type=bytes, value_type=bytes, partitions=tracking_spec.partitions,
            persistent=persistent,
        )  # fmt: skip
        self._bind_changelogs(settings, runtime.agency_code)
        self.tracking.on_recover(self._restore_held_journal)
        journal_spec = catalog.get("replay-journal")
        self.journal = ReplayJournal(
            journal_spec.name, journal_spec.partitions, sealer, self.app_id
        )
        self.orders_stage = runtime.verify_stage(journal_scope="orders")
        self.acks_stage = runtime.verify_stage(journal_scope="acknowledgements")
        self.sightings_stage = runtime.verify_stage(journal_scope="sightings")
        self.confirmations_stage = runtime.verify_stage(journal_scope="confirmations")
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
            action_notices=action_notices,
            late_window_us=int(settings.late_window_s * 1_000_000),
            clock_start=self._clock_start,
        )
        self.loop = SightingLoop(self, self.matcher)
        self.lookback = (
            LookBack(
                settings, runtime.agency_code, catalog, self.matcher,
                lambda: runtime.verify_stage(acceptance=AcceptancePolicy.history()),
                window_s=settings.lookback_s,
            )
            if settings.lookback_s > 0
            else None
        )  # fmt: skip
        self._lookbacks: list[LookBackRequest] = []
        self._producer: AIOKafkaProducer | None = None
        self.deadlines = Deadlines(
            outgoing, catalog, self.order_topics, self._track,
            warn_before_us=_warnings_before(settings.expiry_warning_s,
                                            settings.expiry_warning_by_kind),
            late_window_us=int(settings.late_window_s * 1_000_000),
            hit_policy=HitPolicy(load_agencies(), settings.hit_confirm_s),
        )  # fmt: skip
        self.watch_updates = WatchUpdates(sealer, *_sealed_topic(catalog, "watchlist-updates"))
        self.ledger = OrderLedger(sealer, *_sealed_topic(catalog, "order-ledger"), runtime.codec)
        self.book = OrderBook(
            self.tracking, keyer, self.deadlines, runtime.refuse,
            ack_timeout_s=settings.ack_timeout_s,
            topic_kinds={topic: kind for kind, topic in self.order_topics.items()},
            keep_expired=settings.late_window_s > 0,
        )  # fmt: skip
        self._clocks_stale = True
        self._crashing: asyncio.Future[Any] | None = None
        self._watch_read: Callable[[bytes], bytes | None] | None = None
        self.commit_guard = CommitGuard(self._group_committed, ExactCommits(self._dense_inputs()))
        self.metrics = ProcessorMetrics("worker")
        self.metrics.collect(self.metric_families)
        self._wire()

    # --- watchlist access ----------------------------------------------------------------
    def _bind_changelogs(self, settings: Any, agency: str) -> None:
        """Give each table on disk its changelog's topic id: a database built from a
        changelog since deleted and created again is discarded, and restored from the new
        one (:func:`consumers.sealed_table.discard_if_recreated`)."""
        if not self.watchlist.persistent:
            return
        tables = {t.changelog_topic.get_topic_name(): t for t in (self.watchlist, self.tracking)}
        for name, topic_id in topic_ids(settings, agency, tables).items():
            tables[name].changelog_id = topic_id

    def _lookup(self, key: bytes) -> WatchEntry | None:
        """The matcher's read: straight from the table's store, without the per-access
        sensors of ``Table.get`` (a miss must cost one dict or key-index lookup)."""
        read = self._watch_read
        if read is None:
            read = self._watch_read = self.watchlist.lookup_raw()
        raw = read(key)
        return WatchEntry.from_bytes(raw[PAYLOAD_OFFSET:]) if raw else None

    def _track(self, order_id: str) -> OrderTrack | None:
        return self.book.track(order_id)

    def _clock_start(
        self, order: ActiveOrder, hit_id: str, unit: str, now: dt.datetime
    ) -> Outgoing:
        """The ledger record starting a live hit's confirmation clock (sent once the hit's
        transaction is committed, outside it: see :class:`consumers.matcher.MatchResult`)."""
        now_us = to_micros(now)
        return self.ledger.hit_matched(order.order_id, HitClock(hit_id, unit, now_us), now_us)

    # --- wiring ----------------------------------------------------------------------------
    def _wire(self) -> None:
        app = self.app
        orders = app.topic(*self.order_topics.values(), key_type=bytes, value_type=bytes)
        acks = app.topic(
            self.rt.catalog.topic_name("order-acknowledgements"), key_type=bytes, value_type=bytes
        )
        updates = app.topic(self.watch_updates.topic, key_type=bytes, value_type=bytes)
        ledger = app.topic(self.ledger.topic, key_type=bytes, value_type=bytes)
        app.agent(orders, name="orders")(self._orders_agent)
        app.agent(ledger, name="ledger")(self._ledger_agent)
        app.agent(updates, name="watchlist")(self._watchlist_agent)
        app.agent(acks, name="acknowledgements")(self._acks_agent)
        confirmations = app.topic(*self.confirmation_topics, key_type=bytes, value_type=bytes)
        app.agent(confirmations, name="confirmations")(self._confirmations_agent)
        app.timer(self.rt.settings.timer_interval_s)(self._on_timer)
        app.timer(self.rt.settings.timer_interval_s)(self._look_back)
        app.timer(_STATS_INTERVAL_S)(self._log_stats)
        app.timer(_COMMIT_GUARD_S)(self._guard_commits)
        app.task(self.loop.run)
        app.task(self._install_state_dump)
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]

    def _dense_inputs(self) -> list[str]:
        """The agents' input topics whose offsets have no gaps: the catalog never compacts
        them, and nothing writes them in transactions (the matcher's transactions write
        hits, moved sightings and its journal, none of them read by an agent)."""
        catalog = self.rt.catalog
        inputs = [
            *self.order_topics.values(), catalog.topic_name("order-acknowledgements"),
            *self.confirmation_topics, self.ledger.topic, self.watch_updates.topic,
        ]  # fmt: skip
        return [t for t in inputs if catalog.resolve(t).spec.cleanup_policy is CleanupPolicy.DELETE]

    async def _guard_commits(self) -> None:
        await self.commit_guard.check(self.app)

    async def _group_committed(self, tps: list[Any]) -> dict[Any, int | None]:
        """The group's committed offsets of ``tps``, as the brokers have them now."""
        return await asyncio.to_thread(self._committed_now, tps)

    def _committed_now(self, tps: list[Any]) -> dict[Any, int | None]:
        admin = kafka_admin(
            self.rt.settings, self.rt.agency_code, client_id=f"{self.app_id}-commit-guard"
        )
        try:
            offsets = admin.list_group_offsets({self.app_id: None}).get(self.app_id, {})
        finally:
            admin.close()
        found = {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}
        return {tp: found.get((tp.topic, tp.partition)) for tp in tps}

    async def _install_state_dump(self) -> None:
        install_state_dump(self.app)

    async def _on_revoked(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        await self.loop.pause()

    async def _on_assigned(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        """Have the matcher follow the watchlist partitions held: sightings of these
        partitions are read here (it starts once the rebalance is over)."""
        assigned = args[0] if args else kwargs.get("assigned", ())
        self.commit_guard.attach(self.app.consumer)  # before anything is committed
        self.loop.follow({tp.partition for tp in assigned if tp.topic == self.watch_updates.topic})
        self._clocks_stale = True

    async def _restore_held_journal(self) -> None:
        """Called by faust once a rebalance's table recovery is done and before it resumes
        the input partitions (a table's recovery callback): the replay guards learn what
        was acted on in the partitions now held before any of their events is judged.
        (Restored from the assignment signal, the guards were empty for the first events
        after a partition moved, and accepted again what the previous holder had.)"""
        await self._restore_journal({tp.partition for tp in self.app.consumer.assignment()})

    async def _restore_journal(self, partitions: set[int]) -> None:
        """What the verify stages acted on in ``partitions`` (of every input: the journal
        entry of input partition p is in journal partition p), into their replay guards."""
        restored = await self.journal.restore(
            self.rt.settings,
            self.rt.agency_code,
            partitions,
            {
                "orders": self.orders_stage.replay_guard,
                "acknowledgements": self.acks_stage.replay_guard,
                "sightings": self.sightings_stage.replay_guard,
                "confirmations": self.confirmations_stage.replay_guard,
            },
        )
        self.journal_refused += len(restored.refused)
        for record, detail in restored.refused:
            self.rt.refuse_record(record, "STATE_INTEGRITY", detail, stage="replay-journal")

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
                partition=item.partition,
            )
            for item in outgoing
        ]
        await asyncio.gather(*futures)

    async def emit(self, outgoing: list[Outgoing]) -> None:
        """Send through faust's producer without waiting for each acknowledgement. faust
        flushes that producer before it commits the offsets of the events that caused
        the sends, so a worker that dies first redoes those events (at least once, and
        every effect here is idempotent); a send that fails stops the worker, which
        then resumes from the last commit. This is what lets the order topics be taken
        at the broker's pace rather than one round trip per order."""
        producer = self.app.producer
        for item in outgoing:
            future = await producer.send(
                item.topic, item.record.key, item.record.value, item.partition, None,
                list(item.record.headers),
            )  # fmt: skip
            future.add_done_callback(self._on_emitted)  # type: ignore[attr-defined]

    def _on_emitted(self, future: Any) -> None:
        if future.cancelled() or future.exception() is None:
            return
        exc = future.exception()
        log.error("a send failed: %r; the worker stops and resumes from its last commit", exc)
        self._crashing = asyncio.ensure_future(self.app.crash(exc))

    def journal_records(self, stage: VerifyStage) -> list[JournalRecord]:
        """The journal records of what ``stage`` accepted since the last call."""
        return self.journal.records(stage.replay_guard.drain(), dt.datetime.now(dt.UTC))

    async def _write_journal(self, stage: VerifyStage) -> None:
        """Record what ``stage`` accepted, sent ahead of its effect and, like it, flushed
        before the offsets of the input are committed."""
        records = self.journal_records(stage)
        await self.emit([
            Outgoing(r.topic, KafkaRecord(r.key, r.value, ()), partition=r.partition)
            for r in records
        ])  # fmt: skip

    # --- orders and acknowledgements: verified, then moved to the ledger -------------------
    async def _orders_agent(self, stream: Any) -> None:
        await self._to_ledger(stream, self.orders_stage)

    async def _acks_agent(self, stream: Any) -> None:
        await self._to_ledger(stream, self.acks_stage)

    async def _confirmations_agent(self, stream: Any) -> None:
        await self._to_ledger(stream, self.confirmations_stage)

    async def _to_ledger(self, stream: Any, stage: VerifyStage) -> None:
        """Verify each record, then move it to the partition of its order id, where the
        ledger agent applies it (:mod:`consumers.ledger`)."""
        async for event in stream.events():
            verified = stage.check_record(_Consumed.of(event.message))
            if verified is None:
                continue
            await self._write_journal(stage)
            try:
                entry = self.ledger.outgoing(verified, to_micros(_now()))
            except KeyError:
                self.rt.refuse(verified, "ORDER_REFUSED", "the event names no order_id")
                continue
            await self.emit([entry])

    # --- the ledger: each order's events, in order, where its tracking lives ----------------
    async def _ledger_agent(self, stream: Any) -> None:
        async for event in stream.events():
            verified = self._opened(event.message, self.ledger.open, "order-ledger")
            if verified is None:
                continue
            if isinstance(verified, Noticed):
                self.book.noticed(verified.order_id, verified.notice)
                await self._emit_watch_updates()  # a purge takes an expired order off
            elif isinstance(verified, HitMatched):
                self.book.hit_matched(verified.order_id, verified.clock)
            elif verified.envelope.type in (HIT_CONFIRMATION, ENCOUNTER_CONFIRMATION):
                self.book.confirm_hit(verified)
            elif verified.envelope.type == ACKNOWLEDGEMENT:
                await self._acknowledged(verified)
            else:
                await self._apply_order_event(verified)

    def _opened(self, message: Any, open_: Callable[[bytes | None, bytes | None], T], stage: str
                ) -> T | None:  # fmt: skip
        """A sealed record of the bus's own, opened; None (dead-lettered and audited) when
        it does not open: forged, altered, moved to another key, or not what it claims."""
        try:
            return open_(message.key, message.value)
        except (StateIntegrityError, ValueError) as exc:
            record = _Consumed.of(message).as_record()
            self.rt.refuse_record(record, "STATE_INTEGRITY", str(exc), stage=stage)
            return None

    async def _apply_order_event(self, verified: VerifiedEvent) -> None:
        try:
            applied = self.book.apply(verified)
        except Exception as exc:  # a bad record must not stop the watchlist
            log.exception("order record %s refused", verified.signature.event_id)
            self.rt.refuse(verified, "ORDER_REFUSED", f"{type(exc).__name__}: {exc}")
            self.book.drain_updates()
            self.book.drain_lookbacks()
            return
        await self._emit_watch_updates()  # before the police hear of the order
        if self.lookback is not None:
            self._lookbacks += [
                LookBackRequest(order, keys, applied_us // 1000)
                for order, keys, applied_us in self.book.drain_lookbacks()
            ]
        if applied is not None:
            await self._deliver(verified, applied)

    async def _emit_watch_updates(self) -> None:
        """The book's watchlist changes, each to the partition of its key."""
        now_us = to_micros(_now())
        await self.emit([
            self.watch_updates.outgoing(update, now_us) for update in self.book.drain_updates()
        ])  # fmt: skip

    async def _watchlist_agent(self, stream: Any) -> None:
        """Apply the ledger's watchlist changes, each in its key's partition."""
        async for event in stream.events():
            update = self._opened(event.message, self.watch_updates.open, "watchlist-updates")
            if update is None:
                continue
            entry = WatchEntry.from_bytes(self.watchlist.payload(update.key))
            changed = update.applied_to(entry)
            if changed is not entry:
                self.watchlist.put(update.key, changed.to_bytes() if changed else b"",
                                   to_micros(_now()))  # fmt: skip

    async def _deliver(self, verified: VerifiedEvent, applied: Applied) -> None:
        """Forward an accepted intake record to the police units of its court's province,
        before its offset is committed: a redelivery forwards the same record again."""
        try:
            outgoing = self.delivery.forward(verified.record, applied.kind, applied.court)
        except UnknownAgencyError as exc:  # applied, but no provincial rule reaches it
            self.rt.refuse(verified, "UNDELIVERABLE", f"applied, not delivered: {exc}")
            return
        await self.emit([outgoing])

    async def _acknowledged(self, verified: VerifiedEvent) -> None:
        """Record a police acknowledgement and forward it, as signed by the unit, to the
        issuing court."""
        try:
            forwarded = self._acknowledge(
                verified.signature.agency_code, verified.signature.role, verified.payload
            )
        except Exception as exc:  # never stop on one record
            forwarded = ("ACK_REFUSED", f"{type(exc).__name__}: {exc}")
        if isinstance(forwarded, tuple):
            self.rt.refuse(verified, *forwarded)
            return
        original = verified.record
        record = KafkaRecord(original.key, original.value or b"", original.headers)
        await self.emit([Outgoing(forwarded, record)])

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

    # --- metrics -----------------------------------------------------------------------------
    def hits_committed(self, sighting_timestamps_ms: list[int]) -> None:
        """The hit latency of a committed batch's hits (one observation per hit)."""
        now_ms = time.time() * 1000
        for timestamp in sighting_timestamps_ms:
            self.metrics.hit_latency.observe(max(0.0, now_ms - timestamp) / 1000)

    def metric_families(self) -> Iterator[Any]:
        """The worker's counters as Prometheus sees them, read at scrape time."""
        committer = self.loop.committer
        totals = committer.totals if committer is not None else MatchResult()
        me = ["worker"]
        yield counter("zf801_sightings", "Sightings matched against the watchlist",
                      ["processor"], [(me, totals.seen)])  # fmt: skip
        yield counter("zf801_hits", "Hits signed and routed to courts",
                      ["processor"], [(me, totals.hits)])  # fmt: skip
        yield counter("zf801_transfers_blocked", "Vehicle transfers blocked",
                      ["processor"], [(me, totals.blocked)])  # fmt: skip
        yield from stage_families("worker", {
            "orders": self.orders_stage, "acknowledgements": self.acks_stage,
            "sightings": self.sightings_stage,
        })  # fmt: skip
        yield gauge("zf801_consumer_lag", "Records of an input beyond the last commit",
                    ["processor", "topic"],
                    [(["worker", topic], lag) for topic, lag in self.loop.lag()])  # fmt: skip
        yield counter("zf801_timer_ticks", "Timer ticks that looked for clocks due",
                      ["processor"], [(me, self.deadlines.ticks)])  # fmt: skip
        yield counter("zf801_clock_lookups", "Tracked orders the ticks looked up: the "
                      "clocks that fell due, never every order", ["processor"],
                      [(me, self.deadlines.looked_up)])  # fmt: skip
        ends, acks = self.deadlines.pending()
        clocks = [(["worker", "control-end"], ends), (["worker", "acknowledgement"], acks)]
        yield gauge("zf801_timers_pending", "Clocks watched: control-period ends and "
                    "acknowledgement deadlines", ["processor", "clock"], clocks)  # fmt: skip

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
            self.watchlist.count(), self.tracking.count(),
            self.watchlist.refused_total + self.tracking.refused_total + self.journal_refused,
        )  # fmt: skip
        if totals.misrouted:
            log.warning(
                "sightings off their key's partition: %d of %d checked; a producer places "
                "sightings with another partitioner than murmur2 of the key (they are "
                "matched all the same: moved to their key's partition when another worker "
                "holds it; %d moved so far)",
                totals.misrouted, totals.routing_checked, totals.rerouted,
            )  # fmt: skip

    async def _on_timer(self) -> None:
        if self.app.rebalancing or getattr(self.app, "in_recovery", False):
            return
        for table in (self.watchlist, self.tracking):
            for record, detail in table.drain_refused():
                self.rt.refuse_record(record, "STATE_INTEGRITY", detail, stage=table.name)
        if self._clocks_stale:
            self._clocks_stale = False
            pending = await self._reindex()
            if pending is None:
                self._clocks_stale = True  # a rebalance began: the next tick starts again
                return
            self._lookbacks += pending
        now = _now()
        due = self.deadlines.due(now)
        noticed = self.deadlines.drain_noticed()
        if due:
            await self.publish(due)
        if noticed:  # once sent: a restarted worker does not send them again
            now_us = to_micros(now)
            await self.publish([
                self.ledger.noticed(order_id, notice, now_us) for order_id, notice in noticed
            ])  # fmt: skip

    async def _reindex(self) -> list[LookBackRequest] | None:
        """One pass over the orders tracked here, after partitions were assigned: the
        clocks of every open order watched again (:meth:`Deadlines.rewatching`) and the
        orders still to look back for found (:meth:`_collect_lookbacks`). A part at a time,
        so that the matcher and the order flow run between the parts; None when a
        rebalance began meanwhile (the next tick starts again)."""
        pending: list[LookBackRequest] = []
        started = time.monotonic()
        items = self.tracking.iter_payloads()
        parts = self.deadlines.rewatching(self._collect_lookbacks(tracked(items), pending))
        try:
            for _ in parts:
                await asyncio.sleep(0)
                if self.app.rebalancing:
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

    async def _look_back(self) -> None:
        """Match the orders entered or corrected since the last run against the sightings
        of the look-back window (off the event loop), send their retroactive hits, then
        record each order as looked back (a restarted worker looks back again for those
        not recorded: :meth:`_collect_lookbacks`)."""
        lookback = self.lookback
        if lookback is None or self.app.rebalancing or getattr(self.app, "in_recovery", False):
            return
        queued, self._lookbacks = self._lookbacks, []
        latest = {r.order.order_id: r for r in queued}  # an order queued twice: its last copy
        requests = [r for r in latest.values() if _open(self.book.track(r.order.order_id))]
        if not requests:
            return
        now = _now()
        hits = await asyncio.to_thread(lookback.run, requests, now)
        if hits:
            await self.publish(hits)
        log.info("look-back: %d order(s), %d retroactive hit(s), %d sighting record(s) read",
                 len(requests), len(hits), lookback.read)  # fmt: skip
        now_us = to_micros(now)
        await self.publish([
            self.ledger.noticed(r.order.order_id, LOOKED_BACK, now_us) for r in requests
        ])  # fmt: skip

    def _collect_lookbacks(
        self, tracks: Iterator[tuple[str, OrderTrack]], pending: list[LookBackRequest]
    ) -> Iterator[tuple[str, OrderTrack]]:
        """Pass ``tracks`` on, adding to ``pending`` each open order issued within the
        look-back window and not looked back for (a worker stopped before it recorded
        it), as held on this worker's watchlist."""
        if self.lookback is None:
            yield from tracks
            return
        since_us = to_micros(_now() - self.lookback.window)
        for order_id, track in tracks:
            if (_open(track) and LOOKED_BACK not in track.noticed and track.keys
                    and track.issued_at_us >= since_us):  # fmt: skip
                entry = self._lookup(track.keys[0])
                order = entry.orders.get(order_id) if entry else None
                if order is not None:
                    applied_us = track.applied_us or track.issued_at_us
                    pending.append(LookBackRequest(order, track.keys, applied_us // 1000))
            yield order_id, track

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

    def as_record(self) -> ConsumedRecord:
        value = self.value if isinstance(self.value, bytes | None) else None
        return ConsumedRecord(
            self.topic, self.partition, self.offset, self.timestamp, self.key, value,
            tuple((name, header or b"") for name, header in self.headers),
        )  # fmt: skip
