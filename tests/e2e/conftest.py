"""The whole bus as a user runs it: a ``zf801 worker`` subprocess against the real broker,
topics applied under a prefix of their own, a key store of the demo trust set, and the
publishers and court subscriber used in-process as an upstream system would use them."""

from __future__ import annotations

import contextlib
import io
import signal
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka.errors import KafkaError
from rich.console import Console

from consumers.alerts import Alert, AlertSubscriber
from consumers.runtime import Runtime
from ops.demo import DemoOptions, DemoOutcome, run_demo
from ops.deployment import Deployment
from producers.publisher import OutgoingEvent, PublishedEvent, Publisher
from producers.routes import outgoing_event
from schemas.codec import default_codec
from schemas.registry import default_registry
from schemas.settings import Settings
from schemas.tls_layout import ADMIN_NAME
from sign.keystore import KeyStore
from sign.verify_stage import MemoryAuditSink, MemoryDeadLetterSink
from tests import waiting
from tests.builders import Records, trust_set
from topics import clients
from topics.catalog import bus_catalog

_WORKER_START_TIMEOUT_S = 120.0
_CONSUMED_TIMEOUT_S = 60.0


@pytest.fixture(scope="session")
def e2e_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with the demo trust set (keys for every agency in the agency list)."""
    home = tmp_path_factory.mktemp("zf801-e2e")
    trust_set(home)
    return home


@dataclass(frozen=True)
class DemoRun:
    """One demo run through the real broker and a ``zf801 worker`` subprocess: what it
    observed, what it printed, and the settings (its topic prefix) to read its topics."""

    outcome: DemoOutcome
    log: str
    settings: Settings


@pytest.fixture(scope="session")
def demo_run(
    kafka_settings: Settings, kafka_clients: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoRun]:
    """A small demo (30 orders, 200 sightings, queries, debtors, the lifecycle phase) under
    a topic prefix of its own, run once for the tests that examine it (its scenario, its
    replay); its topics are deleted afterwards."""
    home = tmp_path_factory.mktemp("zf801-demo")
    prefix = f"e2edemo{uuid.uuid4().hex[:8]}-"
    settings = kafka_settings.model_copy(update={"home": home, "keys_path": home / "keys"})
    options = DemoOptions(
        seed=2026, orders=30, sightings=200, ack_timeout_s=10.0, prefix=prefix,
        remove_earlier_runs=False, start_broker=False,
    )  # fmt: skip
    output = io.StringIO()
    result = run_demo(options, settings, Console(file=output, width=160))
    yield DemoRun(
        result, output.getvalue(), settings.model_copy(update={"topic_prefix": result.prefix})
    )
    admin = kafka_clients.admin()
    try:
        with contextlib.suppress(KafkaError):
            admin.delete_topics([t for t in admin.list_topics() if t.startswith(prefix)])
    finally:
        admin.close()


@dataclass
class Bus(Deployment):
    """A deployment (own topic prefix, worker subprocess) seen as upstream systems and
    courts use it: publishing as an agency, reading a court's alerts, reading a topic."""

    _publishers: dict[str, Publisher] = field(default_factory=dict)

    def start(self) -> None:
        self.start_worker()
        self.wait_worker_ready(_WORKER_START_TIMEOUT_S)

    def kill(self) -> None:
        self.stop_worker(signal.SIGKILL)

    def publisher(self, agency: str) -> Publisher:
        if agency not in self._publishers:
            self._publishers[agency] = Publisher(
                self.keystore.signer_for(agency), catalog=self.catalog, settings=self.settings
            )
        return self._publishers[agency]

    def event(
        self, schema: str, record: Mapping[str, Any], subject: Mapping[str, Any] | None = None
    ) -> OutgoingEvent:
        full = schema if "." in schema else _full_name(schema)
        return outgoing_event(full, record, subject)

    def publish(
        self,
        agency: str,
        schema: str,
        record: Mapping[str, Any],
        subject: Mapping[str, Any] | None = None,
    ) -> PublishedEvent:
        return self.publisher(agency).publish(self.event(schema, record, subject))

    def wait_orders_consumed(self) -> None:
        """Until the worker has committed every order topic to its end, and applied the
        watchlist changes they made."""
        self.wait_orders_applied(_CONSUMED_TIMEOUT_S)

    def alerts(self, court: str, until_idle_s: float = 4.0) -> list[Alert]:
        runtime = Runtime.from_keystore(
            court, MemoryDeadLetterSink(), MemoryAuditSink(), settings=self.settings,
            keystore=self.keystore,
        )  # fmt: skip
        return list(AlertSubscriber(runtime, court).read(until_idle_s=until_idle_s))

    def messages(
        self,
        topic_id: str,
        court: str | None = None,
        *,
        province: str | None = None,
        unit: str | None = None,
        idle_s: float = 3.0,
        agency: str = ADMIN_NAME,
    ) -> list[Any]:
        """Every record of a topic as consumed (read_committed) by ``agency`` (the operator
        by default), until ``idle_s`` of quiet."""
        consumer = clients.kafka_consumer(
            self.settings,
            agency,
            self.catalog.topic_name(topic_id, court, province=province, unit=unit),
            auto_offset_reset="earliest",
            consumer_timeout_ms=int(idle_s * 1000),
            group_id=None,
        )
        try:
            return list(consumer)
        finally:
            consumer.close()

    def read_topic(
        self,
        topic_id: str,
        court: str | None = None,
        *,
        province: str | None = None,
        unit: str | None = None,
        idle_s: float = 3.0,
    ) -> list[tuple[dict[str, Any], dict[str, bytes], str]]:
        """Every record of a topic (read_committed): (decoded value, headers, type name)."""
        out = []
        messages = self.messages(topic_id, court, province=province, unit=unit, idle_s=idle_s)
        for message in messages:
            schema, record = default_codec().decode(message.value)
            out.append((record, dict(message.headers), schema.name))
        return out

    def close(self) -> None:
        self.stop_worker()
        for publisher in self._publishers.values():
            publisher.close()


def _full_name(short: str) -> str:
    for schema in default_registry():
        if schema.name == short:
            return schema.full_name
    raise KeyError(short)


@pytest.fixture(scope="module")
def bus_factory(
    kafka_settings: Settings, e2e_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """Makes isolated buses: ``bus_factory(ack_timeout_s=5)`` (worker not started); their
    topics, ACLs (under mTLS) and consumer groups are made here, topics and groups deleted
    afterwards. Signing keys are the e2e trust set's; the TLS identities the session's."""
    made: list[Bus] = []

    def make(**settings_overrides: Any) -> Bus:
        settings_overrides.setdefault("home", e2e_home)
        settings = kafka_settings.model_copy(
            update={"topic_prefix": f"e2e{uuid.uuid4().hex[:8]}-", **settings_overrides}
        )
        bus = Bus(
            settings=settings,
            catalog=bus_catalog(settings),
            keystore=KeyStore.from_settings(settings),
            log_path=tmp_path_factory.mktemp("worker") / "worker.log",
        )
        bus.apply_topics()
        made.append(bus)
        return bus

    yield make
    for bus in made:
        bus.close()
        bus.remove_run()


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    return waiting.wait_for


@pytest.fixture
def records(request: pytest.FixtureRequest) -> Records:
    return Records(hash(request.node.name) & 0xFFFF)
