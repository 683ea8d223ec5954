"""The whole bus as a user runs it: a ``zf801 worker`` subprocess against the real broker,
topics applied under a prefix of their own, a key store of the demo trust set, and the
publishers and court subscriber used in-process as an upstream system would use them."""

from __future__ import annotations

import datetime as dt
import signal
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from consumers.alerts import Alert, AlertSubscriber
from consumers.runtime import Runtime
from ops.deployment import ORDER_TOPIC_IDS, Deployment
from producers.publisher import OutgoingEvent, PublishedEvent, Publisher
from producers.routes import outgoing_event
from schemas.agencies import load_agencies
from schemas.codec import default_codec
from schemas.identifiers import id_number_check_char, vin_check_digit
from schemas.registry import default_registry
from schemas.settings import Settings
from sign.keystore import KeyStore
from sign.verify_stage import MemoryAuditSink, MemoryDeadLetterSink
from topics.catalog import bus_catalog

_WORKER_START_TIMEOUT_S = 120.0
_CONSUMED_TIMEOUT_S = 60.0


@pytest.fixture(scope="session")
def e2e_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with the demo trust set (keys for every agency in the agency list)."""
    home = tmp_path_factory.mktemp("zf801-e2e")
    KeyStore.from_settings(Settings(home=home)).init(
        list(load_agencies().agencies.values()), dt.datetime.now(dt.UTC)
    )
    return home


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
        """Until the worker has committed every order topic to its end."""
        self.wait_consumed(self.app_id, ORDER_TOPIC_IDS, _CONSUMED_TIMEOUT_S)

    def alerts(self, court: str, until_idle_s: float = 4.0) -> list[Alert]:
        runtime = Runtime.from_keystore(
            court, MemoryDeadLetterSink(), MemoryAuditSink(), settings=self.settings,
            keystore=self.keystore,
        )  # fmt: skip
        return list(AlertSubscriber(runtime, court).read(until_idle_s=until_idle_s))

    def read_topic(
        self, topic_id: str, court: str | None = None, *, idle_s: float = 3.0
    ) -> list[tuple[dict[str, Any], dict[str, bytes], str]]:
        """Every record of a topic (read_committed): (decoded value, headers, type name)."""
        consumer = KafkaConsumer(
            self.catalog.topic_name(topic_id, court),
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
    bootstrap_servers: str, e2e_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """Makes isolated buses: ``bus_factory(ack_timeout_s=5)`` (worker not started); their
    topics and consumer groups are deleted afterwards."""
    made: list[Bus] = []

    def make(**settings_overrides: Any) -> Bus:
        settings_overrides.setdefault("home", e2e_home)
        settings = Settings(
            topic_prefix=f"e2e{uuid.uuid4().hex[:8]}-",
            bootstrap_servers=bootstrap_servers,
            **settings_overrides,
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
