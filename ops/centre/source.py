"""Where the command centre's figures come from: the topics, read to their end again and
again by one background thread, and the cluster's health (brokers, consumer groups).

The bus's own topics (orders, releases, acknowledgements, queries, dead letters) are read
as a bus agency (``BUS-AUDIT`` by default). A court's alert stream and query results may
be read by that court alone (the catalog's ``own-court`` scope, enforced by the brokers),
so each is read as its court, with the court's identity from the operator's key store,
exactly as ``zf801 alerts --court`` reads it; a court without an identity here is left
out and named in the health panel.

Every record counts only if its seal verifies against the trust the operator's key store
holds (signature, chain, validity and revocation at its time, envelope and schema; no
acceptance window, as for any history): a record a writer forged on a topic it may write
moves no figure. What the processors refused is taken out by the dead letters that name
it (:meth:`ops.centre.tally.Tally.observe`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaConsumer
from kafka.errors import KafkaError

from consumers.polling import batches_to_end
from consumers.runtime import Runtime
from ops.centre.tally import Tally
from ops.cmd_status import read_status
from ops.deployment import ORDER_TOPIC_IDS
from schemas.errors import BusError
from schemas.settings import Settings
from sign.acceptance import AcceptancePolicy
from sign.verify_stage import MemoryAuditSink, MemoryDeadLetterSink, SilentSink, VerifyStage
from topics.catalog import bus_catalog
from topics.clients import kafka_admin, kafka_reader
from topics.courts import court_codes

__all__ = ["BUS_TOPIC_IDS", "COURT_TOPIC_IDS", "TopicSource"]

log = logging.getLogger(__name__)


BUS_TOPIC_IDS = (*ORDER_TOPIC_IDS, "order-acknowledgements", "query-requests", "dead-letter")
COURT_TOPIC_IDS = ("alerts", "query-results")
_IDLE_S = 1.0


@dataclass
class TopicSource:
    """The tally, kept current; ``version`` counts the refreshes that changed something."""

    settings: Settings
    reader: str = "BUS-AUDIT"
    refresh_s: float = 2.0
    health_every_s: float = 5.0
    tally: Tally = field(init=False)
    health: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _readers: list[KafkaConsumer] = field(default_factory=list)
    _missing: list[str] = field(default_factory=list)
    _stage: VerifyStage | None = None
    unverified: int = 0
    """Records read that failed their check, counted nowhere else."""

    def __post_init__(self) -> None:
        self.tally = Tally(timedelta(seconds=self.settings.ack_timeout_s))

    def start(self) -> None:
        self._open()
        self._thread = threading.Thread(target=self._run, name="centre-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for reader in self._readers:
            reader.close()
        self._readers.clear()

    def _open(self) -> None:
        runtime = Runtime.from_keystore(
            self.reader, MemoryDeadLetterSink(), MemoryAuditSink(), settings=self.settings
        )
        self._stage = runtime.verify_stage(
            roles_by_topic=False, acceptance=AcceptancePolicy.history(), skew_checked=False,
            dead_letters=SilentSink(), audit=SilentSink(),  # the processors record them
        )  # fmt: skip
        catalog = bus_catalog(self.settings)
        bus_topics = [catalog.topic_name(t) for t in BUS_TOPIC_IDS]
        self._readers.append(self._reader(self.reader, bus_topics))
        for court in court_codes() or ():
            topics = [catalog.topic_name(t, court=court) for t in COURT_TOPIC_IDS]
            try:
                self._readers.append(self._reader(court, topics))
            except (BusError, KafkaError) as exc:  # no identity for it here, or no access
                log.warning("court %s left out of the centre: %s", court, exc)
                self._missing.append(court)

    def _reader(self, agency: str, topics: list[str]) -> KafkaConsumer:
        return kafka_reader(
            self.settings, agency, *topics,
            client_id=f"zf801-centre-{agency.lower()}",
        )  # fmt: skip

    def _run(self) -> None:
        next_health = 0.0
        while not self._stop.is_set():
            try:
                changed = self.refresh()
                if time.monotonic() >= next_health:
                    self._read_health()
                    next_health = time.monotonic() + self.health_every_s
                    changed = True
            except (BusError, KafkaError) as exc:
                log.warning("centre refresh failed: %s", exc)
                with self.lock:
                    self.health = {**self.health, "ok": False, "error": str(exc)[:300]}
                changed = True
            if changed:
                with self.lock:
                    self.version += 1
            self._stop.wait(self.refresh_s)

    def refresh(self) -> bool:
        """Every reader to the end its partitions have now; True when records came."""
        stage = self._stage
        if stage is None:
            raise RuntimeError("the centre's source was not started")
        came = 0
        stop: Callable[[], bool] = self._stop.is_set
        for reader in self._readers:
            for batch in batches_to_end(reader, stop, idle_s=_IDLE_S):
                decoded = []
                for message in batch:
                    verified = stage.check_record(message)
                    if verified is None:  # the processors dead-letter it; counted here only
                        self.unverified += 1
                        continue
                    place = (message.topic, message.partition, message.offset)
                    decoded.append((verified.envelope.schema.full_name, verified.payload, place))
                with self.lock:
                    for name, record, place in decoded:
                        self.tally.observe(name, record, place)
                came += len(batch)
        return came > 0

    def _read_health(self) -> None:
        status = read_status(self.settings)
        admin = kafka_admin(self.settings, client_id="zf801-centre-health")
        try:
            described = admin.describe_groups([g.group for g in status.groups])
        finally:
            admin.close()
        groups = [
            {
                "group": g.group,
                "lag": sum(g.lag.values()),
                "members": len(described.get(g.group, {}).get("members") or ()),
                "state": str(described.get(g.group, {}).get("group_state") or "Empty"),
            }
            for g in status.groups
        ]
        health = {
            "ok": status.healthy,
            "brokers": list(status.brokers),
            "topics_missing": len(status.topics_missing),
            "groups": groups,
            "courts_left_out": list(self._missing),
            "checked_at": datetime.now(UTC).isoformat(),
        }
        with self.lock:
            self.health = health

    def view(self, court: str | None, now: datetime | None = None) -> dict[str, Any]:
        """The national view (``court`` None) or one court's, with the health panel."""
        now = now or datetime.now(UTC)
        with self.lock:
            body = self.tally.national(now) if court is None else self.tally.court(court, now)
            return {**body, "health": dict(self.health), "version": self.version,
                    "records": self.tally.records, "at": now.isoformat()}  # fmt: skip
