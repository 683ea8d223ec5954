"""Where the worker delivers an accepted order-intake record (consumers.delivery): the
delivery topic of its kind for the issuing court's province, the record unchanged."""

from __future__ import annotations

import pytest

from consumers.delivery import DELIVERY_TOPIC_IDS, OrderDelivery
from consumers.watchlist import OrderKind
from schemas.agencies import load_agencies
from schemas.errors import UnknownAgencyError
from sign.verify_stage import ConsumedRecord
from topics.catalog import load_catalog


@pytest.fixture(scope="module")
def delivery() -> OrderDelivery:
    return OrderDelivery(load_catalog().with_name_prefix("t1-"), load_agencies())


@pytest.mark.parametrize(
    ("kind", "court", "topic"),
    [
        (OrderKind.EXIT_RESTRICTION, "BJ0105", "t1-zf801.orders.exit-restriction.11"),
        (OrderKind.EXIT_RESTRICTION, "SH01", "t1-zf801.orders.exit-restriction.31"),
        (OrderKind.VEHICLE_SEARCH, "GD0304", "t1-zf801.orders.vehicle-search.44"),
        (OrderKind.LOCATE_DEBTOR, "SPC", "t1-zf801.orders.locate-debtor.national"),
    ],
)
def test_the_topic_is_the_kinds_for_the_courts_province(
    delivery: OrderDelivery, kind: OrderKind, court: str, topic: str
) -> None:
    assert delivery.topic(kind, court) == topic


def test_every_kind_and_province_has_a_topic(delivery: OrderDelivery) -> None:
    topics = delivery.topics()
    assert len(topics) == len(set(topics)) == len(DELIVERY_TOPIC_IDS) * 4
    assert "t1-zf801.orders.vehicle-search.national" in topics


def test_the_record_is_forwarded_unchanged(delivery: OrderDelivery) -> None:
    headers = (("ce_id", b"e1"), ("ce_source", b"zf801:agency/SH01"), ("zf801sig", b"\x01" * 64))
    read = ConsumedRecord(
        "t1-zf801.orders.locate-debtor", 4, 17, 1, b"k" * 32, b"\xc3\x01v", headers
    )
    outgoing = delivery.forward(read, OrderKind.LOCATE_DEBTOR, "SH01")
    assert outgoing.topic == "t1-zf801.orders.locate-debtor.31"
    assert (outgoing.record.key, outgoing.record.value) == (read.key, read.value)
    assert outgoing.record.headers == headers


def test_a_court_outside_the_agency_list_has_no_delivery(delivery: OrderDelivery) -> None:
    with pytest.raises(UnknownAgencyError):
        delivery.topic(OrderKind.EXIT_RESTRICTION, "ZZ01")
