"""``zf801 replay --rematch`` over a real worker's run: an order and a sighting of its
subject (a person; a seized vehicle seen by its VIN under another plate, at a transfer
registration) give hits and a transfer block, and the rematch finds each justified and
none missing (exit 0; the acknowledgement the bus forwards to the court, signed by the
police unit, is judged as the court's subscriber judges it, not as a bus record). Then a
hit validly signed by the bus's matcher but justified by no order is written to the
court's alert topic, and the rematch names it (exit 2)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from consumers.alerts import Alert
from consumers.matcher import hit_id
from schemas.matchkey import MatchKeyer
from topics.clients import kafka_producer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

_ZF801 = Path(sys.executable).with_name("zf801")
COURT, POLICE, TRAFFIC, MATCHER = "BJ01", "110000000000", "110000110000", "BUS-MATCHER"


def _zf801(bus: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_ZF801), *args], env={**bus.worker_env(), "COLUMNS": "300"},
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def _hits(alerts: list[Alert], order_ids: set[str]) -> list[Alert]:
    return [a for a in alerts if a.kind == "Hit" and str(a.record["order_id"]) in order_ids]


def _rematch(bus: Any, started: dt.datetime) -> subprocess.CompletedProcess[str]:
    return _zf801(bus, "replay", "--rematch", "--topics", "orders-locate-debtor",
                  "--from", started.isoformat(), "--alerts-as", COURT, "--blocks-as", TRAFFIC,
                  "--format", "json")  # fmt: skip


def _forge(bus: Any, genuine: Alert) -> str:
    """A copy of a delivered hit for an order that does not exist, signed by the matcher's
    own key and written to the court's alert topic; its order id."""
    order_id = str(uuid.uuid4())
    record = dict(genuine.record)
    sighting_id = record["sighting"]["sighting_id"]
    record.update(order_id=order_id, hit_id=hit_id(order_id, sighting_id))
    signer = bus.keystore.signer_for(MATCHER)
    signed = signer.signed_record("Hit", record, key=order_id.encode(),
                                  event_id=record["hit_id"])  # fmt: skip
    producer = kafka_producer(bus.settings, MATCHER)
    try:
        producer.send(bus.catalog.topic_name("alerts", COURT), key=signed.key,
                      value=signed.value, headers=list(signed.headers)).get(timeout=30)  # fmt: skip
    finally:
        producer.close()
    return order_id


def test_the_rematch_justifies_a_real_run_and_names_a_forged_hit(
    bus_factory: Any, records: Any, wait_for: Any
) -> None:
    bus = bus_factory()
    bus.start()
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    person, plate, vin = records.id_number(), records.plate(), records.vin()
    locate = records.person_order(COURT, "（2026）京01执501号", person)
    seize = records.vehicle_order(COURT, "（2026）京01执502号", plate, vin)
    bus.publish(COURT, "LocateDebtorOrder", locate)
    bus.publish(COURT, "VehicleSearchOrder", seize)
    bus.wait_orders_consumed()
    bus.publish(POLICE, "HotelCheckIn", records.hotel_check_in(POLICE, person))
    transfer = records.vehicle_encounter(TRAFFIC, records.plate("沪"), vin,
                                         "TRANSFER_REGISTRATION")  # fmt: skip
    bus.publish(TRAFFIC, "VehicleEncounter", transfer)
    ack = records.acknowledgement(locate, "LOCATE_DEBTOR", POLICE)
    bus.publish(POLICE, "OrderAcknowledgement", ack)  # forwarded to the court, signed by POLICE
    ids = {locate["order_id"], seize["order_id"]}
    wait_for(lambda: [a for a in bus.alerts(COURT) if a.kind == "OrderAcknowledgement"])
    delivered = wait_for(lambda: len(_hits(bus.alerts(COURT), ids)) == 2 and
                         _hits(bus.alerts(COURT), ids))  # fmt: skip

    clean = _rematch(bus, started)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    report = json.loads(clean.stdout)
    assert report["clean"] is True and report["breaks"] == []  # the forwarded ack included
    rematch = report["rematch"]
    assert rematch["courts_compared"] == [COURT] and rematch["breaks"] == []
    assert (rematch["orders"], rematch["sightings"]) == (2, 2)
    assert (rematch["expected_hits"], rematch["delivered_hits"]) == (2, 2)
    assert (rematch["expected_blocks"], rematch["delivered_blocks"]) == (1, 1)

    forged = _forge(bus, delivered[0])
    failed = _rematch(bus, started)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    report = json.loads(failed.stdout)
    assert report["clean"] is False and report["breaks"] == []  # the forgery's seal is good
    alerts = bus.catalog.topic_name("alerts", COURT)
    assert [(b["code"], b["topic"], b["order_id"]) for b in report["rematch"]["breaks"]] == [
        ("UNJUSTIFIED_HIT", alerts, forged)
    ]
    table = _zf801(bus, "replay", "--rematch", "--topics", "orders-locate-debtor", "--from",
                   started.isoformat(), "--alerts-as", COURT)  # fmt: skip
    assert table.returncode == 2 and "UNJUSTIFIED_HIT" in table.stdout and forged in table.stdout


def test_a_hit_never_delivered_is_missing_and_an_order_before_the_range_counts(
    bus_factory: Any, records: Any
) -> None:
    bus = bus_factory()  # no worker: nothing is matched, no hit delivered
    person = records.id_number()
    order = records.person_order(COURT, "（2026）京01执503号", person)
    bus.publish(COURT, "LocateDebtorOrder", order)
    between = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=1)
    # The sighting reaches the bus 5 s after the order (its Kafka timestamp): beyond the
    # race margin, so the hit is expected for certain.
    arrives = between + dt.timedelta(seconds=5)
    sighting = records.hotel_check_in(POLICE, person)
    keyer = MatchKeyer(bus.settings.match_key_secret.get_secret_value().encode())
    signed = bus.keystore.signer_for(POLICE).signed_record(
        "HotelCheckIn", sighting, key=keyer.person(person), time=arrives
    )
    producer = kafka_producer(bus.settings, POLICE)
    try:
        sent = producer.send(
            bus.catalog.topic_name("sightings-person"), key=signed.key, value=signed.value,
            headers=list(signed.headers), timestamp_ms=int(arrives.timestamp() * 1000),
        ).get(timeout=30)  # fmt: skip
    finally:
        producer.close()
    result = _zf801(bus, "replay", "--rematch", "--topics", "orders-locate-debtor", "--from",
                    between.isoformat(), "--alerts-as", COURT, "--format", "json")  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["records"] == 1 and report["breaks"] == []  # the order is before the range
    rematch = report["rematch"]
    assert (rematch["orders"], rematch["expected_hits"], rematch["delivered_hits"]) == (1, 1, 0)
    assert [
        (b["code"], b["topic"], b["partition"], b["offset"], b["order_id"], b["sighting_id"])
        for b in rematch["breaks"]
    ] == [
        ("MISSING_HIT", bus.catalog.topic_name("sightings-person"), sent.partition, sent.offset,
         order["order_id"], sighting["sighting_id"]),
    ]  # fmt: skip
