"""Orders reach the police side under the provincial rules, through a real worker.

Courts of Beijing, Shanghai and the SPC publish orders and releases to the order intake;
the worker forwards what it accepted, unchanged, to the delivery topic of the issuing
court's province. Each province's topic then holds exactly its courts' orders and
releases, and the broker lets a Beijing unit read Beijing's topic (and the national one
its rule names) but neither Shanghai's nor the intake.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from schemas.codec import default_codec
from schemas.headers import CE_ID
from schemas.settings import Settings
from sign.events import EventVerifier
from tests.builders import Records
from tests.kafka_io import read_to_end
from topics import clients
from topics.errors import AccessDenied

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BORDER_BJ, BORDER_SH, POLICE_BJ = "110000230000", "310000230000", "110000000000"
EXIT, LOCATE = "order-delivery-exit-restriction", "order-delivery-locate-debtor"
_TIMEOUTS = {"request_timeout_ms": 5000}


@pytest.fixture(scope="module")
def bus(bus_factory: Any) -> Iterator[Any]:
    bus = bus_factory()
    bus.start()
    yield bus


@pytest.fixture(scope="module")
def published(bus: Any) -> dict[str, Any]:
    """Orders of BJ01, BJ0105, SH01 and the SPC, two of them released; the worker has
    consumed the intake to its end. Name -> the order record."""
    records = Records(2401)
    orders = {
        "bj-exit": ("BJ01", "ExitRestrictionOrder", "（2026）京01执2401号"),
        "bj-exit-released": ("BJ01", "ExitRestrictionOrder", "（2026）京01执2402号"),
        "bj-locate": ("BJ0105", "LocateDebtorOrder", "（2026）京0105执2403号"),
        "sh-exit-released": ("SH01", "ExitRestrictionOrder", "（2026）沪01执2404号"),
        "spc-exit": ("SPC", "ExitRestrictionOrder", "（2026）最高法执2405号"),
    }
    made = {}
    for name, (court, schema, case) in orders.items():
        made[name] = records.person_order(court, case, records.id_number())
        bus.publish(court, schema, made[name])
    for name in ("bj-exit-released", "sh-exit-released"):
        order = made[name]
        bus.publish(order["enforcing_court_code"], "OrderRelease",
                    records.release(order, "EXIT_RESTRICTION"),
                    subject={"id_number": order["subject"]["id_number"]})  # fmt: skip
    bus.wait_orders_consumed()
    return made


def _content(bus: Any, topic_id: str, province: str) -> set[tuple[str, str]]:
    """(event type, order id) of every record of a delivery topic (read as the admin)."""
    return {
        (kind, str(rec["order_id"]))
        for rec, _, kind in bus.read_topic(topic_id, province=province, idle_s=2.0)
    }


def test_each_province_gets_exactly_its_courts_orders_and_releases(
    bus: Any, published: dict[str, Any]
) -> None:
    ids = {name: order["order_id"] for name, order in published.items()}
    order, release = "ExitRestrictionOrder", "OrderRelease"
    assert _content(bus, EXIT, "11") == {
        (order, ids["bj-exit"]),
        (order, ids["bj-exit-released"]),
        (release, ids["bj-exit-released"]),
    }
    assert _content(bus, EXIT, "31") == {
        (order, ids["sh-exit-released"]),
        (release, ids["sh-exit-released"]),
    }
    assert _content(bus, EXIT, "national") == {(order, ids["spc-exit"])}
    assert _content(bus, EXIT, "44") == set()
    assert _content(bus, LOCATE, "11") == {("LocateDebtorOrder", ids["bj-locate"])}
    assert _content(bus, LOCATE, "31") == set()


def test_a_delivered_record_is_the_courts_own_record_unchanged(
    bus: Any, published: dict[str, Any]
) -> None:
    intake = {_event_id(m): m for m in bus.messages("orders-exit-restriction", idle_s=2.0)}
    delivered = bus.messages(EXIT, province="31", idle_s=2.0)
    assert len(delivered) == 2
    verifier = EventVerifier(bus.keystore.trust_store())
    for message in delivered:
        original = intake[_event_id(message)]
        assert (message.key, message.value) == (original.key, original.value)
        assert list(message.headers) == list(original.headers)
        signature = verifier.verify(message.key, message.value, list(message.headers))
        assert (signature.agency_code, signature.role) == ("SH01", "court")


def test_a_beijing_unit_reads_beijing_not_shanghai_nor_the_intake(
    bus: Any, published: dict[str, Any]
) -> None:
    if bus.settings.security != "mtls":
        pytest.skip("the session's broker runs without mTLS: no ACLs to enforce")
    settings, catalog = bus.settings, bus.catalog
    beijing = catalog.topic_name(EXIT, province="11")
    national = catalog.topic_name(EXIT, province="national")
    shanghai = catalog.topic_name(EXIT, province="31")
    intake = catalog.topic_name("orders-exit-restriction")
    ids = {str(published[n]["order_id"]) for n in ("bj-exit", "bj-exit-released")}
    assert {_order_id(m) for m in _read_as(settings, BORDER_BJ, beijing)} == ids
    assert {_order_id(m) for m in _read_as(settings, BORDER_BJ, national)} == {
        published["spc-exit"]["order_id"]
    }
    assert len(_read_as(settings, BORDER_SH, shanghai)) == 2
    for topic in (shanghai, intake):
        with pytest.raises(AccessDenied, match=f"agency {BORDER_BJ}.*{topic}.*READ"):
            clients.require_topics(settings, BORDER_BJ, [topic], "read")
        assert _broker_refuses_read(settings, BORDER_BJ, topic), topic
    # Another police role of Beijing does not read Beijing's exit restrictions either.
    with pytest.raises(AccessDenied):
        clients.require_topics(settings, POLICE_BJ, [beijing], "read")


def _event_id(message: Any) -> str:
    return dict(message.headers)[CE_ID].decode()


def _order_id(message: Any) -> str:
    return str(default_codec().decode(message.value)[1]["order_id"])


def _read_as(settings: Settings, agency: str, topic: str) -> list[Any]:
    """Every record of ``topic``, read to its end with ``agency``'s own connection."""
    return read_to_end(settings, topic, agency, **_TIMEOUTS)


def _broker_refuses_read(settings: Settings, agency: str, topic: str) -> bool:
    """Without our library's check: assign and poll. kafka-python raises nothing and
    returns nothing, but the broker's metadata marks the topic TOPIC_AUTHORIZATION_FAILED."""
    consumer: KafkaConsumer = clients.kafka_consumer(settings, agency, group_id=None, **_TIMEOUTS)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert consumer.poll(timeout_ms=250) == {}
            if topic in consumer._client.cluster.unauthorized_topics:
                return True
        return False
    finally:
        consumer.close()
