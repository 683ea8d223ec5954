"""The whole bus as a user runs it: a ``zf801 worker`` subprocess against the real broker,
topics applied under a prefix of their own, a key store of the demo trust set, and the
publishers and court subscriber used in-process as an upstream system would use them."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from consumers.alerts import Alert, AlertSubscriber
from consumers.runtime import Runtime
from producers.publisher import OutgoingEvent, PublishedEvent, Publisher
from producers.routes import outgoing_event
from schemas.agencies import load_agencies
from schemas.codec import default_codec
from schemas.identifiers import id_number_check_char, vin_check_digit
from schemas.registry import default_registry
from schemas.settings import Settings
from sign.keystore import KeyStore
from sign.verify_stage import MemoryAuditSink, MemoryDeadLetterSink
from topics.admin import admin_client, apply, plan, read_cluster_state
from topics.catalog import Catalog, bus_catalog

_ZF801 = Path(sys.executable).with_name("zf801")
_READY_LINE = "matcher follows sighting partitions"
_WORKER_START_TIMEOUT_S = 120.0


@pytest.fixture(scope="session")
def e2e_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with the demo trust set (keys for every agency in the agency list)."""
    home = tmp_path_factory.mktemp("zf801-e2e")
    KeyStore.from_settings(Settings(home=home)).init(
        list(load_agencies().agencies.values()), dt.datetime.now(dt.UTC)
    )
    return home


@dataclass
class Bus:
    """One isolated deployment of the bus (its own topic prefix) and its worker process."""

    settings: Settings
    catalog: Catalog
    keystore: KeyStore
    log_path: Path
    worker_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    _publishers: dict[str, Publisher] = field(default_factory=dict)

    # --- the worker -----------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        settings = self.settings
        return {
            **os.environ,
            "ZF801_HOME": str(settings.home),
            "ZF801_TOPIC_PREFIX": settings.topic_prefix,
            "ZF801_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "ZF801_ACK_TIMEOUT_S": str(settings.ack_timeout_s),
            **self.worker_env,
        }

    def start_worker(self) -> None:
        """Start ``zf801 worker`` and return once it follows its sighting partitions."""
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(_ZF801), "worker", "--loglevel", "info"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + _WORKER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[start:].decode("utf-8", "replace")
            if _READY_LINE in text:
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        tail = self.log_path.read_bytes()[-4000:].decode("utf-8", "replace")
        raise AssertionError(f"worker did not become ready; log tail:\n{tail}")

    def kill_worker(self, signum: int = signal.SIGKILL) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signum)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    # --- publishing -----------------------------------------------------------------------
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

    # --- observing ------------------------------------------------------------------------
    def wait_orders_consumed(self, timeout_s: float = 60.0) -> None:
        """Until the worker's faust group has committed every order topic to its end."""
        group = f"{self.settings.topic_prefix}zf801-matcher"
        topics = [
            self.catalog.topic_name(t)
            for t in ("orders-exit-restriction", "orders-vehicle-search", "orders-locate-debtor")
        ]
        admin = KafkaAdminClient(bootstrap_servers=self.settings.bootstrap_servers)
        consumer = KafkaConsumer(bootstrap_servers=self.settings.bootstrap_servers)
        try:
            partitions = [
                TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
            ]
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                ends = consumer.end_offsets(partitions)
                committed = admin.list_group_offsets(group).get(group, {})
                if all(
                    ends[tp] == 0 or (tp in committed and committed[tp].offset >= ends[tp])
                    for tp in partitions
                ):
                    return
                time.sleep(0.2)
            raise AssertionError("the worker did not consume every order in time")
        finally:
            consumer.close()
            admin.close()

    def alerts(self, court: str, until_idle_s: float = 4.0) -> list[Alert]:
        runtime = Runtime.from_keystore(
            court,
            MemoryDeadLetterSink(),
            MemoryAuditSink(),
            settings=self.settings,
            keystore=self.keystore,
        )
        return list(AlertSubscriber(runtime, court).read(until_idle_s=until_idle_s))

    def read_topic(
        self, topic_id: str, court: str | None = None, *, idle_s: float = 3.0
    ) -> list[tuple[dict[str, Any], dict[str, bytes], str]]:
        """Every record of a topic (read_committed): (decoded value, headers, type name)."""
        topic = self.catalog.topic_name(topic_id, court)
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=self.settings.bootstrap_servers,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            consumer_timeout_ms=int(idle_s * 1000),
            group_id=None,
        )
        out = []
        try:
            for message in consumer:
                schema, record = default_codec().decode(message.value)
                out.append((record, dict(message.headers), schema.name))
        finally:
            consumer.close()
        return out

    def close(self) -> None:
        self.kill_worker(signal.SIGTERM)
        for publisher in self._publishers.values():
            publisher.close()


def _full_name(short: str) -> str:
    for schema in default_registry():
        if schema.name == short:
            return schema.full_name
    raise KeyError(short)


def _apply_topics(catalog: Catalog, bootstrap: str) -> None:
    courts = [agency.code for agency in load_agencies().courts()]
    with admin_client(bootstrap) as admin:
        state = read_cluster_state(admin, catalog.in_namespace)
        apply(plan(catalog, state, courts), admin)


@pytest.fixture(scope="module")
def bus_factory(
    bootstrap_servers: str, e2e_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """Makes isolated buses: ``bus_factory(ack_timeout_s=5)`` (worker not started)."""
    made: list[Bus] = []

    def make(**settings_overrides: Any) -> Bus:
        prefix = f"e2e{uuid.uuid4().hex[:8]}-"
        settings = Settings(
            home=e2e_home,
            topic_prefix=prefix,
            bootstrap_servers=bootstrap_servers,
            **settings_overrides,
        )
        catalog = bus_catalog(settings)
        _apply_topics(catalog, bootstrap_servers)
        bus = Bus(
            settings=settings,
            catalog=catalog,
            keystore=KeyStore.from_settings(settings),
            log_path=tmp_path_factory.mktemp("worker") / f"worker-{prefix}log",
        )
        made.append(bus)
        return bus

    yield make
    for bus in made:
        bus.close()


_NOW = dt.datetime.now


class Records:
    """Builders of realistic events for the e2e tests (valid identifiers, fresh ids)."""

    def __init__(self, seed: int) -> None:
        import random  # noqa: PLC0415

        self._random = random.Random(seed)

    def id_number(self, area: str = "110105") -> str:
        birth = dt.date(1960, 1, 1) + dt.timedelta(days=self._random.randrange(20000))
        first17 = f"{area}{birth:%Y%m%d}{self._random.randrange(1000):03d}"
        return first17 + id_number_check_char(first17)

    def plate(self, province: str = "京") -> str:
        digits = "".join(self._random.choice("0123456789") for _ in range(5))
        return f"{province}A{digits}"

    def vin(self) -> str:
        alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
        body = "LSV" + "".join(self._random.choice(alphabet) for _ in range(14))
        vin = body[:8] + "0" + body[9:]
        return vin[:8] + vin_check_digit(vin) + vin[9:]

    @staticmethod
    def _order_common(
        court: str, case_number: str, start: dt.datetime, end: dt.datetime
    ) -> dict[str, Any]:
        province = load_agencies().get(court).province
        return {
            "order_id": str(uuid.uuid4()),
            "case_number": case_number,
            "enforcing_court_code": court,
            "handler": {"name": "王法官", "phone": "13900139000"},
            "control_period_start": start,
            "control_period_end": end,
            "police_requirements": "发现后立即通知承办人",
            "sealed_documents": [
                {
                    "kind": "RULING",
                    "document_id": f"doc-{uuid.uuid4().hex[:8]}",
                    "sha256": bytes(32),
                    "title": "执行裁定书",
                },
            ],
            "province_code": province.code if province else "11",
            "issued_at": _NOW(dt.UTC),
        }

    def person_order(
        self,
        court: str,
        case_number: str,
        id_number: str,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> dict[str, Any]:
        now = _NOW(dt.UTC)
        record = self._order_common(
            court,
            case_number,
            start or now - dt.timedelta(days=1),
            end or now + dt.timedelta(days=30),
        )
        record["subject"] = {"name": "李四", "id_number": id_number}
        return record

    def vehicle_order(
        self, court: str, case_number: str, plate: str, vin: str, **kwargs: Any
    ) -> dict[str, Any]:
        record = self.person_order(court, case_number, "", **kwargs)
        record["subject"] = {"plate_number": plate, "vin": vin, "owner": None}
        record["seizure_ruling_reference"] = f"{case_number}之一"
        record["impound_on_sight"] = True
        return record

    @staticmethod
    def border_crossing(
        unit: str, id_number: str, observed_at: dt.datetime | None = None
    ) -> dict[str, Any]:
        when = observed_at or _NOW(dt.UTC)
        return {
            "sighting_id": str(uuid.uuid4()),
            "reporting_unit_code": unit,
            "observed_at": when,
            "person": {"name": "李四", "id_number": id_number},
            "direction": "OUT",
            "port": "首都国际机场口岸",
            "destination_country_or_region": "THA",
            "document_type": "ORDINARY_PASSPORT",
            "document_number": "E12345678",
            "crossed_at": when,
        }

    @staticmethod
    def hotel_check_in(
        unit: str, id_number: str, observed_at: dt.datetime | None = None
    ) -> dict[str, Any]:
        when = observed_at or _NOW(dt.UTC)
        return {
            "sighting_id": str(uuid.uuid4()),
            "reporting_unit_code": unit,
            "observed_at": when,
            "person": {"name": "李四", "id_number": id_number},
            "hotel_name": "如家酒店（朝阳店）",
            "hotel_address": "北京市朝阳区建国路88号",
            "room": "1203",
            "checked_in_at": when,
            "expected_check_out": None,
            "registered_phone": "13800138000",
        }

    @staticmethod
    def vehicle_encounter(unit: str, plate: str, vin: str | None, kind: str) -> dict[str, Any]:
        now = _NOW(dt.UTC)
        return {
            "sighting_id": str(uuid.uuid4()),
            "reporting_unit_code": unit,
            "observed_at": now,
            "kind": kind,
            "vehicle": {"plate_number": plate, "vin": vin},
            "place": "北京市车辆管理所",
        }

    @staticmethod
    def release(order: Mapping[str, Any], kind: str) -> dict[str, Any]:
        return {
            "order_id": order["order_id"],
            "order_kind": kind,
            "case_number": order["case_number"],
            "releasing_court_code": order["enforcing_court_code"],
            "reason": "被执行人已履行全部义务",
            "sealed_documents": [],
            "released_at": _NOW(dt.UTC),
        }

    @staticmethod
    def acknowledgement(
        order: Mapping[str, Any], kind: str, unit: str, status: str = "DEPLOYED"
    ) -> dict[str, Any]:
        return {
            "order_id": order["order_id"],
            "order_kind": kind,
            "court_code": order["enforcing_court_code"],
            "acknowledging_unit_code": unit,
            "status": status,
            "reason": None if status == "DEPLOYED" else "证件信息不全",
            "acknowledged_at": _NOW(dt.UTC),
        }


@pytest.fixture
def records(request: pytest.FixtureRequest) -> Records:
    return Records(hash(request.node.name) & 0xFFFF)
