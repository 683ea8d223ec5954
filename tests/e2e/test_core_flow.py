"""Orders, sightings, hits, releases, expiry and acknowledgements through a real worker.

One worker serves the module (its own topic prefix); each test uses subjects of its own,
so tests do not see each other's hits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from consumers.alerts import Alert
from consumers.watchlist import derive_id
from producers.publisher import Publisher
from tests.builders import trust_set

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BORDER_BJ = "110000230000"
POLICE_BJ = "110000000000"
TRAFFIC_BJ = "110000110000"
POLICE_SH = "310000000000"
POLICE_GD = "440000000000"


@pytest.fixture(scope="module")
def bus(bus_factory: Any) -> Iterator[Any]:
    bus = bus_factory(ack_timeout_s=4.0)
    bus.start()
    yield bus


def _hits(alerts: list[Alert], order_ids: set[str]) -> list[Alert]:
    return [a for a in alerts if a.kind == "Hit" and str(a.record["order_id"]) in order_ids]


def test_a_sighting_hits_every_court_with_an_active_order(
    bus: Any, records: Any, wait_for: Any
) -> None:
    person = records.id_number()
    exit_order = records.person_order("BJ01", "（2026）京01执100号", person)
    locate_order = records.person_order("SH01", "（2026）沪01执200号", person)
    bus.publish("BJ01", "ExitRestrictionOrder", exit_order)
    bus.publish("SH01", "LocateDebtorOrder", locate_order)
    bus.wait_orders_consumed()

    crossing = records.border_crossing(BORDER_BJ, person)
    bus.publish(BORDER_BJ, "BorderCrossing", crossing)
    check_in = records.hotel_check_in(POLICE_BJ, person)
    bus.publish(POLICE_BJ, "HotelCheckIn", check_in)

    ids = {exit_order["order_id"], locate_order["order_id"]}
    beijing = wait_for(lambda: _hits(bus.alerts("BJ01"), ids))
    shanghai = wait_for(
        lambda: len(_hits(bus.alerts("SH01"), ids)) >= 2 and _hits(bus.alerts("SH01"), ids)
    )

    # The exit restriction hits on the border crossing only; locate-debtor on both.
    assert {str(a.record["hit_id"]) for a in beijing} == {
        derive_id(exit_order["order_id"], crossing["sighting_id"])
    }
    assert {str(a.record["hit_id"]) for a in shanghai} == {
        derive_id(locate_order["order_id"], crossing["sighting_id"]),
        derive_id(locate_order["order_id"], check_in["sighting_id"]),
    }
    hit = beijing[0]
    assert hit.signed_by == "BUS-MATCHER"
    assert hit.record["court_code"] == "BJ01"
    assert hit.record["handler"] == {"name": "王法官", "phone": "13900139000"}
    assert str(hit.record["sighting"]["sighting_id"]) == crossing["sighting_id"]
    assert hit.record["summary"]["kind"] == "BORDER_EXIT"
    assert hit.record["summary"]["reporting_unit_code"] == BORDER_BJ


def test_release_stops_matching_and_same_second_sightings_are_defined(
    bus: Any, records: Any, wait_for: Any
) -> None:
    """Release wins once processed: a sighting processed before the release hits, one
    processed after it does not, even when both were observed in the same second."""
    person = records.id_number()
    order = records.person_order("BJ0105", "（2026）京0105执300号", person)
    bus.publish("BJ0105", "LocateDebtorOrder", order)
    bus.wait_orders_consumed()

    same_second = dt.datetime.now(dt.UTC).replace(microsecond=0)
    before = records.hotel_check_in(POLICE_BJ, person, observed_at=same_second)
    bus.publish(POLICE_BJ, "HotelCheckIn", before)
    wait_for(lambda: _hits(bus.alerts("BJ0105"), {order["order_id"]}))

    release = records.release(order, "LOCATE_DEBTOR")
    release["released_at"] = same_second
    bus.publish("BJ0105", "OrderRelease", release, subject={"id_number": person})
    bus.wait_orders_consumed()
    after = records.hotel_check_in(
        POLICE_BJ, person, observed_at=same_second + dt.timedelta(microseconds=500_000)
    )
    bus.publish(POLICE_BJ, "HotelCheckIn", after)
    # A later, unrelated hit proves the matcher has moved past ``after``.
    marker_person = records.id_number()
    marker = records.person_order("BJ0105", "（2026）京0105执301号", marker_person)
    bus.publish("BJ0105", "LocateDebtorOrder", marker)
    bus.wait_orders_consumed()
    bus.publish(POLICE_BJ, "HotelCheckIn", records.hotel_check_in(POLICE_BJ, marker_person))
    wait_for(lambda: _hits(bus.alerts("BJ0105"), {marker["order_id"]}))

    hits = _hits(bus.alerts("BJ0105"), {order["order_id"]})
    assert [str(h.record["hit_id"]) for h in hits] == [
        derive_id(order["order_id"], before["sighting_id"])
    ]
    # The police side holding the order sees the release on its province's delivery topic.
    police_view = bus.read_topic("order-delivery-locate-debtor", province="11")
    assert any(
        kind == "OrderRelease" and str(rec["order_id"]) == order["order_id"]
        for rec, _, kind in police_view
    )


def test_expired_order_stops_matching_and_both_sides_are_told(
    bus: Any, records: Any, wait_for: Any
) -> None:
    person = records.id_number()
    now = dt.datetime.now(dt.UTC)
    order = records.person_order(
        "BJ01", "（2026）京01执400号", person,
        start=now - dt.timedelta(days=1), end=now + dt.timedelta(seconds=3),
    )  # fmt: skip
    bus.publish("BJ01", "ExitRestrictionOrder", order)
    bus.wait_orders_consumed()

    def expiry_notices() -> list[Alert]:
        return [
            a for a in bus.alerts("BJ01", until_idle_s=2.0)
            if a.kind == "OrderExpiryNotice" and str(a.record["order_id"]) == order["order_id"]
        ]  # fmt: skip

    notices = wait_for(expiry_notices, timeout_s=40)
    assert len(notices) == 1
    assert notices[0].signed_by == "BUS-MATCHER"
    police_view = bus.read_topic("order-delivery-exit-restriction", province="11")
    assert any(
        kind == "OrderExpiryNotice" and str(rec["order_id"]) == order["order_id"]
        for rec, _, kind in police_view
    )
    crossing = records.border_crossing(BORDER_BJ, person)
    bus.publish(BORDER_BJ, "BorderCrossing", crossing)
    marker_person = records.id_number()
    marker = records.person_order("BJ01", "（2026）京01执401号", marker_person)
    bus.publish("BJ01", "ExitRestrictionOrder", marker)
    bus.wait_orders_consumed()
    bus.publish(BORDER_BJ, "BorderCrossing", records.border_crossing(BORDER_BJ, marker_person))
    wait_for(lambda: _hits(bus.alerts("BJ01"), {marker["order_id"]}))
    assert _hits(bus.alerts("BJ01"), {order["order_id"]}) == []


def test_acknowledgements_reach_the_court_and_silence_raises_an_overdue_alert(
    bus: Any, records: Any, wait_for: Any
) -> None:
    acked = records.person_order("SH0115", "（2026）沪0115执500号", records.id_number("310115"))
    silent = records.person_order("SH0115", "（2026）沪0115执501号", records.id_number("310115"))
    bus.publish("SH0115", "LocateDebtorOrder", acked)
    bus.publish("SH0115", "LocateDebtorOrder", silent)
    bus.wait_orders_consumed()
    bus.publish(POLICE_SH, "OrderAcknowledgement",
                records.acknowledgement(acked, "LOCATE_DEBTOR", POLICE_SH))  # fmt: skip
    # A unit that does not serve Shanghai's courts cannot acknowledge their orders.
    foreign = records.acknowledgement(silent, "LOCATE_DEBTOR", POLICE_GD)
    bus.publish(POLICE_GD, "OrderAcknowledgement", foreign)

    def alerts_for(kind: str, order: dict[str, Any]) -> list[Alert]:
        return [
            a for a in bus.alerts("SH0115", until_idle_s=2.0)
            if a.kind == kind and str(a.record["order_id"]) == order["order_id"]
        ]  # fmt: skip

    ack = wait_for(lambda: alerts_for("OrderAcknowledgement", acked))
    assert ack[0].signed_by == POLICE_SH
    assert ack[0].record["status"] == "DEPLOYED"
    overdue = wait_for(lambda: alerts_for("OrderAckOverdue", silent), timeout_s=40)
    assert overdue[0].record["awaited_role"] == "PUBLIC_SECURITY"
    assert alerts_for("OrderAckOverdue", acked) == []
    assert alerts_for("OrderAcknowledgement", silent) == []
    refused = [
        rec for rec, _, _ in bus.read_topic("dead-letter")
        if "does not receive court SH0115's orders" in rec["detail"]
    ]  # fmt: skip
    assert len(refused) == 1


def test_transfer_attempt_on_a_seized_vehicle_is_blocked_and_reported(
    bus: Any, records: Any, wait_for: Any
) -> None:
    plate, vin = records.plate(), records.vin()
    order = records.vehicle_order("BJ01", "（2026）京01执600号", plate, vin)
    bus.publish("BJ01", "VehicleSearchOrder", order)
    bus.wait_orders_consumed()
    attempt = records.vehicle_encounter(TRAFFIC_BJ, plate, vin, "TRANSFER_REGISTRATION")
    bus.publish(TRAFFIC_BJ, "VehicleEncounter", attempt)

    hits = wait_for(lambda: _hits(bus.alerts("BJ01"), {order["order_id"]}))
    assert hits[0].record["summary"]["kind"] == "TRANSFER_REGISTRATION"
    blocks = [
        rec for rec, _, kind in bus.read_topic("vehicle-blocks")
        if kind == "VehicleTransferBlocked" and str(rec["order_id"]) == order["order_id"]
    ]  # fmt: skip
    assert len(blocks) == 1
    assert blocks[0]["attempted_operation"] == "TRANSFER_REGISTRATION"
    assert blocks[0]["vehicle"]["plate_number"] == plate


def test_forged_and_tampered_sightings_are_dead_lettered_not_matched(
    bus: Any, records: Any, tmp_path: Any, wait_for: Any
) -> None:
    person = records.id_number()
    order = records.person_order("BJ01", "（2026）京01执700号", person)
    bus.publish("BJ01", "LocateDebtorOrder", order)
    bus.wait_orders_consumed()

    # A key store of its own: same agency code, certificate under roots the bus never trusted.
    rogue = trust_set(tmp_path, [POLICE_BJ])
    forged = records.hotel_check_in(POLICE_BJ, person)
    with Publisher(rogue.signer_for(POLICE_BJ), catalog=bus.catalog,
                   settings=bus.settings) as forger:  # fmt: skip
        forger.publish(bus.event("HotelCheckIn", forged))

    tampered = records.hotel_check_in(POLICE_BJ, person)
    topic, signed = bus.publisher(POLICE_BJ).prepare(bus.event("HotelCheckIn", tampered))
    value = bytearray(signed.value)
    value[-1] ^= 0x01
    bus.publisher(POLICE_BJ).producer.send(
        topic, key=signed.key, value=bytes(value), headers=list(signed.headers)
    ).get(timeout=10)

    def dead_letters() -> list[dict[str, Any]]:
        return [
            rec for rec, _, _ in bus.read_topic("dead-letter")
            if rec["original_key"] == signed.key
        ]  # fmt: skip

    letters = wait_for(lambda: len(dead_letters()) >= 2 and dead_letters())
    # The forger's certificate was never published to the bus: its key is unknown. The
    # precise reason code leads the detail; ``reason`` is the schema's category.
    found = sorted((rec["detail"].split(" ", 1)[0], rec["reason"]) for rec in letters)
    assert found == [
        ("BAD_SIGNATURE", "SIGNATURE_INVALID"),
        ("UNKNOWN_KEY", "CERTIFICATE_UNTRUSTED"),
    ]
    assert _hits(bus.alerts("BJ01"), {order["order_id"]}) == []
    audit = [rec for rec, _, _ in bus.read_topic("audit") if rec["user"] == "BUS-MATCHER"]
    assert len(audit) >= 2
