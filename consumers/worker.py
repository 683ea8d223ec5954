r"""``zf801 worker``: the faust-streaming application that keeps the watchlist and routes hits.

The worker is made of parts, each with one job:

- **Intake** (:mod:`consumers.intake_loop`): each event of the order topics, the police
  acknowledgements and the confirmations, in batches, verified once and moved to the
  ``order-ledger`` on its order id's partition.
- **Order flow** (:mod:`consumers.order_flow`): the faust agents that apply each ledger
  event to the order's tracking (:mod:`consumers.order_book`, typed as
  :class:`consumers.tracking.OrderTrack`), change the ``watchlist`` table in each match
  key's partition, and forward it to the police units of the court's province; police
  acknowledgements are checked (:mod:`consumers.addressing`) and forwarded to the court.
- **Matcher** (:mod:`consumers.sighting_loop`): sightings against the watchlist, hits to
  each issuing court's alert topic, in Kafka transactions; a sighting key whose
  watchlist partition another worker holds is moved there (:mod:`consumers.routing`).
- **Clocks** (:mod:`consumers.worker_clocks`): expiry warnings and notices when a control
  period ends, overdue alerts when an order is not acknowledged within
  ``settings.ack_timeout_s``, hit escalations, all indexed by due time per order id on
  the worker holding its ledger partition (:mod:`consumers.deadlines`); and the
  look-back of new orders over recent sightings (:mod:`consumers.lookback`).
- **Sends** (:mod:`consumers.worker_sends`) and **stats** (:mod:`consumers.worker_stats`).

This module joins them: it builds the faust application and its two tables, wires the
agents and timers, and follows rebalances.

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
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from consumers.action_notices import ActionNotices
from consumers.commit_guard import CommitGuard, ExactCommits
from consumers.deadlines import Deadlines
from consumers.delivery import OrderDelivery
from consumers.diagnostics import install_state_dump
from consumers.hit_clocks import HitClock, HitPolicy
from consumers.intake_loop import IntakeLoop
from consumers.ledger import OrderLedger
from consumers.lookback import LookBack
from consumers.matcher import Matcher
from consumers.metrics import ProcessorMetrics
from consumers.order_book import OrderBook
from consumers.order_flow import OrderFlow
from consumers.outgoing import Outgoing, OutgoingSigner
from consumers.replay_journal import ReplayJournal
from consumers.runtime import Runtime
from consumers.sealed_table import SealedTable
from consumers.sighting_loop import SightingLoop
from consumers.tracking import OrderTrack
from consumers.watch_updates import WatchUpdates
from consumers.watchlist import ActiveOrder, OrderKind, WatchEntry
from consumers.worker_clocks import WorkerClocks
from consumers.worker_sends import WorkerSends
from consumers.worker_stats import WorkerStats
from schemas.agencies import load_agencies
from schemas.envelope import to_micros
from schemas.matchkey import MatchKeyer
from schemas.settings import Settings
from sign.acceptance import AcceptancePolicy
from sign.state_seal import PAYLOAD_OFFSET
from topics.catalog import Catalog
from topics.clients import committed_offsets, faust_app, require_topics, topic_ids
from topics.spec import CleanupPolicy

if TYPE_CHECKING:
    import faust

__all__ = ["BusWorker", "static_member_id"]

log = logging.getLogger(__name__)

ORDER_TOPIC_IDS: Mapping[OrderKind, str] = {
    OrderKind.EXIT_RESTRICTION: "orders-exit-restriction",
    OrderKind.VEHICLE_SEARCH: "orders-vehicle-search",
    OrderKind.LOCATE_DEBTOR: "orders-locate-debtor",
}

_STATS_INTERVAL_S = 30.0
_COMMIT_GUARD_S = 5.0


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


def _faust_app(settings: Settings, agency: str, app_id: str, partitions: int) -> faust.App:
    """The worker's faust application: tables in RocksDB under ZF801_HOME (or in memory),
    static membership when they are on disk, a crashed worker's partitions moved on after
    10 s, every input and changelog record as raw bytes."""
    datadir = settings.home / "worker" / f"{app_id}-{settings.worker_id}"
    datadir.mkdir(parents=True, exist_ok=True)
    persistent = settings.worker_store == "rocksdb"
    return faust_app(
        settings,
        agency,
        app_id,
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
            static_member_id(app_id, settings.worker_id) if persistent else None
        ),
        broker_heartbeat_interval=3.0,
        producer_acks=-1,
        # The order flow's sends (ledger effects, watchlist updates, deliveries, table
        # changelogs) wait up to 20 ms to share a produce request: at linger 0 each went
        # alone, and one TLS write per record was the worker's largest cost in ingest.
        producer_linger=0.02,
        table_standby_replicas=settings.standby_replicas if persistent else 0,
        topic_partitions=partitions,
        key_serializer="raw",
        value_serializer="raw",
    )


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
        persistent = settings.worker_store == "rocksdb"
        self.app = _faust_app(settings, runtime.agency_code, self.app_id, watch_spec.partitions)
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
        self.ledger = OrderLedger(sealer, *_sealed_topic(catalog, "order-ledger"), runtime.codec)
        self.sends = WorkerSends(self.app, settings, runtime.agency_code, self.app_id)
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
        self.intake = IntakeLoop(
            runtime, self.app, self.app_id,
            {**dict.fromkeys(self.order_topics.values(), self.orders_stage),
             acks_topic: self.acks_stage,
             **dict.fromkeys(self.confirmation_topics, self.confirmations_stage)},
            self.ledger, journal=self.journal.accepted_by,
        )  # fmt: skip
        self.loop = SightingLoop(
            runtime, self.app, self.app_id, self.matcher, self.sightings_stage,
            journal=self.journal.accepted_by, on_hits=self._hits_committed,
            after_commit=self.sends.publish,
        )  # fmt: skip
        lookback = (
            LookBack(
                settings, runtime.agency_code, catalog, self.matcher,
                lambda: runtime.verify_stage(acceptance=AcceptancePolicy.history()),
                window_s=settings.lookback_s,
            )
            if settings.lookback_s > 0
            else None
        )  # fmt: skip
        deadlines = Deadlines(
            outgoing, catalog, self.order_topics, self._track,
            warn_before_us=_warnings_before(settings.expiry_warning_s,
                                            settings.expiry_warning_by_kind),
            late_window_us=int(settings.late_window_s * 1_000_000),
            hit_policy=HitPolicy(load_agencies(), settings.hit_confirm_s),
        )  # fmt: skip
        self.book = OrderBook(
            self.tracking, keyer, deadlines, runtime.refuse,
            ack_timeout_s=settings.ack_timeout_s,
            topic_kinds={topic: kind for kind, topic in self.order_topics.items()},
            keep_expired=settings.late_window_s > 0,
        )  # fmt: skip
        self.flow = OrderFlow(
            runtime, self.sends, delivery=self.delivery, book=self.book, ledger=self.ledger,
            watch_updates=WatchUpdates(sealer, *_sealed_topic(catalog, "watchlist-updates")),
            watchlist=self.watchlist, looks_back=lookback is not None,
        )  # fmt: skip
        self.clocks = WorkerClocks(
            self.app, runtime, deadlines=deadlines, book=self.book, ledger=self.ledger,
            watchlist=self.watchlist, tracking=self.tracking, publish=self.sends.publish,
            lookup=self._lookup, lookback=lookback, lookbacks=self.flow.lookbacks,
        )  # fmt: skip
        self.stats = WorkerStats(
            self.loop,
            self.intake,
            {"orders": self.orders_stage, "acknowledgements": self.acks_stage,
             "sightings": self.sightings_stage},
            deadlines=deadlines, watchlist=self.watchlist, tracking=self.tracking,
        )  # fmt: skip
        self._watch_read: Callable[[bytes], bytes | None] | None = None
        self.commit_guard = CommitGuard(self._group_committed, ExactCommits(self._dense_inputs()))
        self._wire()

    @property
    def metrics(self) -> ProcessorMetrics:
        return self.stats.metrics

    def _hits_committed(self, sighting_timestamps_ms: list[int]) -> None:
        self.stats.hits_committed(sighting_timestamps_ms)

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
        app, flow = self.app, self.flow
        settings = self.rt.settings
        updates = app.topic(flow.watch_updates.topic, key_type=bytes, value_type=bytes)
        ledger = app.topic(self.ledger.topic, key_type=bytes, value_type=bytes)
        app.agent(ledger, name="ledger")(flow.ledger_agent)
        app.agent(updates, name="watchlist")(flow.watchlist_agent)
        app.timer(settings.timer_interval_s)(self.clocks.tick)
        app.timer(settings.timer_interval_s)(self.clocks.look_back)
        app.timer(_STATS_INTERVAL_S)(self.stats.log_stats)
        app.timer(_COMMIT_GUARD_S)(self._guard_commits)
        app.task(self.intake.run)
        app.task(self.loop.run)
        app.task(self._install_state_dump)
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]

    def _dense_inputs(self) -> list[str]:
        """The agents' input topics whose offsets have no gaps: the catalog never compacts
        them, and nothing writes them in transactions (the matcher's transactions write
        hits, moved sightings and its journal, none of them read by an agent)."""
        catalog = self.rt.catalog
        inputs = [self.ledger.topic, self.flow.watch_updates.topic]
        return [t for t in inputs if catalog.resolve(t).spec.cleanup_policy is CleanupPolicy.DELETE]

    async def _guard_commits(self) -> None:
        await self.commit_guard.check(self.app)

    async def _group_committed(self, tps: list[Any]) -> dict[Any, int | None]:
        """The group's committed offsets of ``tps``, as the brokers have them now."""
        return await asyncio.to_thread(self._committed_now, tps)

    def _committed_now(self, tps: list[Any]) -> dict[Any, int | None]:
        found = committed_offsets(
            self.rt.settings, self.rt.agency_code, self.app_id,
            client_id=f"{self.app_id}-commit-guard",
        )  # fmt: skip
        return {tp: found.get((tp.topic, tp.partition)) for tp in tps}

    async def _install_state_dump(self) -> None:
        install_state_dump(self.app)

    async def _on_revoked(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        await asyncio.gather(self.intake.pause(), self.loop.pause())

    async def _on_assigned(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        """Have the matcher follow the watchlist partitions held: sightings of these
        partitions are read here (it starts once the rebalance is over)."""
        assigned = args[0] if args else kwargs.get("assigned", ())
        self.commit_guard.attach(self.app.consumer)  # before anything is committed
        updates = self.flow.watch_updates.topic
        held = {tp.partition for tp in assigned if tp.topic == updates}
        self.intake.follow(held)
        self.loop.follow(held)
        self.clocks.assigned()

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
        self.stats.journal_refused += len(restored.refused)
        for record, detail in restored.refused:
            self.rt.refuse_record(record, "STATE_INTEGRITY", detail, stage="replay-journal")

    async def stop(self) -> None:
        await self.sends.stop()
