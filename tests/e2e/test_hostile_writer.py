"""Attacks by a writer with access to the broker, through a real worker, each failing safe.

Written as the attacker would do it: raw producer writes of byte-for-byte copies, records
signed by an agency whose clock is wrong, junk and forged records on the worker's own
changelogs, and worker restarts in between. Every test asserts what arrived (hits,
dead letters), never only that nothing crashed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka import KafkaProducer

from consumers.watchlist import derive_id
from schemas.headers import CE_ALTKEYS, CE_ID
from schemas.matchkey import MatchKeyer
from schemas.tls_layout import ADMIN_NAME
from topics import clients

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POLICE_BJ = "110000000000"
BORDER_BJ = "110000230000"
TRAFFIC_BJ = "110000110000"
_IDLE_S = 2.0


@pytest.fixture(scope="module")
def bus(bus_factory: Any) -> Iterator[Any]:
    # Every sighting that misses is verified too: a stripped header cannot hide.
    bus = bus_factory(verify_misses_every=1)
    bus.start()
    yield bus


@pytest.fixture(scope="module")
def raw(bus: Any) -> Iterator[KafkaProducer]:
    """The attacker: a producer with no library checks. Under mTLS it is the admin's, which
    may write anywhere: the worst case of a compromised or misconfigured system with broker
    access (an agency's own certificate could write only its ACLs' topics)."""
    producer = clients.kafka_producer(bus.settings, ADMIN_NAME, enable_idempotence=False)
    yield producer
    producer.close()


def _records(bus: Any, topic_id: str) -> list[Any]:
    return bus.messages(topic_id, idle_s=_IDLE_S)


def _event_id(message: Any) -> str:
    return dict(message.headers)[CE_ID].decode()


def _copy(raw: KafkaProducer, message: Any, **changes: Any) -> None:
    """Write a consumed record again, byte for byte unless ``changes`` say otherwise."""
    fields = {"key": message.key, "value": message.value, "headers": list(message.headers)}
    fields.update(changes)
    raw.send(message.topic, partition=message.partition, **fields)
    raw.flush()


def _hit_records(bus: Any, court: str, order_id: str) -> list[dict[str, Any]]:
    return [
        rec for rec, _, kind in bus.read_topic("alerts", court, idle_s=_IDLE_S)
        if kind == "Hit" and str(rec["order_id"]) == order_id
    ]  # fmt: skip


def _dead_letters(bus: Any, reason: str, key: bytes | None = None) -> list[dict[str, Any]]:
    return [
        rec for rec, _, _ in bus.read_topic("dead-letter", idle_s=_IDLE_S)
        if rec["detail"].startswith(reason) and (key is None or rec["original_key"] == key)
    ]  # fmt: skip


def _restart(bus: Any) -> None:
    bus.stop_worker()
    bus.start()


def _sighting_message(bus: Any, topic_id: str, event_id: str) -> Any:
    return next(m for m in _records(bus, topic_id) if _event_id(m) == event_id)


def test_a_sighting_copied_after_a_restart_makes_no_new_hit(
    bus: Any, raw: KafkaProducer, records: Any, wait_for: Callable[..., Any]
) -> None:
    person = records.id_number()
    order = records.person_order("BJ01", "（2026）京01执901号", person)
    bus.publish("BJ01", "LocateDebtorOrder", order)
    bus.wait_orders_consumed()
    sighting = bus.publish(POLICE_BJ, "HotelCheckIn", records.hotel_check_in(POLICE_BJ, person))
    wait_for(lambda: _hit_records(bus, "BJ01", order["order_id"]))

    _restart(bus)
    original = _sighting_message(bus, "sightings-person", sighting.event_id)
    _copy(raw, original)
    replayed = wait_for(lambda: _dead_letters(bus, "REPLAYED", original.key), timeout_s=60)

    assert replayed[0]["reason"] == "REPLAYED"
    assert len(_hit_records(bus, "BJ01", order["order_id"])) == 1


def test_a_released_order_copied_after_a_restart_never_hits_again(
    bus: Any, raw: KafkaProducer, records: Any, wait_for: Callable[..., Any]
) -> None:
    person = records.id_number()
    order = records.person_order("BJ01", "（2026）京01执902号", person)
    published = bus.publish("BJ01", "ExitRestrictionOrder", order)
    bus.publish("BJ01", "OrderRelease", records.release(order, "EXIT_RESTRICTION"),
                subject={"id_number": person})  # fmt: skip
    bus.wait_orders_consumed()

    _restart(bus)
    original = next(
        m for m in _records(bus, "orders-exit-restriction") if _event_id(m) == published.event_id
    )
    _copy(raw, original)
    # A court system re-sending the released order under a new event id is refused too.
    bus.publish("BJ01", "ExitRestrictionOrder", order)
    bus.wait_orders_consumed()
    crossing = records.border_crossing(BORDER_BJ, person)
    bus.publish(BORDER_BJ, "BorderCrossing", crossing)

    # The byte copy is known to the restored replay journal; the re-sent order by the
    # order's closure, kept across the restart.
    assert wait_for(lambda: _dead_letters(bus, "REPLAYED", original.key), timeout_s=60)
    assert wait_for(lambda: _dead_letters(bus, "ORDER_CLOSED", original.key))
    bus.wait_consumed(bus.sightings_group, ("sightings-person",), 60)
    assert _hit_records(bus, "BJ01", order["order_id"]) == []
    # What the bus refused never reaches the police: Beijing's units got the order once
    # (the original) and its release, neither the byte copy nor the re-sent order.
    delivered = [
        kind for rec, _, kind in bus.read_topic(
            "order-delivery-exit-restriction", province="11", idle_s=_IDLE_S)
        if str(rec["order_id"]) == order["order_id"]
    ]  # fmt: skip
    assert sorted(delivered) == ["ExitRestrictionOrder", "OrderRelease"]


def test_an_event_a_year_ahead_is_refused_and_costs_no_genuine_sighting(
    bus: Any, records: Any, wait_for: Callable[..., Any]
) -> None:
    person = records.id_number()
    order = records.person_order("BJ01", "（2026）京01执903号", person)
    bus.publish("BJ01", "LocateDebtorOrder", order)
    bus.wait_orders_consumed()
    police = bus.publisher(POLICE_BJ)
    ahead = records.hotel_check_in(POLICE_BJ, person)
    year_ahead = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    police.publish(dataclasses.replace(bus.event("HotelCheckIn", ahead), time=year_ahead))
    genuine = [records.hotel_check_in(POLICE_BJ, person) for _ in range(6)]
    police.publish_all([bus.event("HotelCheckIn", s) for s in genuine])

    expected = {derive_id(order["order_id"], s["sighting_id"]) for s in genuine}
    hits = wait_for(
        lambda: expected <= {str(r["hit_id"]) for r in _hit_records(bus, "BJ01", order["order_id"])}
    )
    assert hits
    assert {str(r["hit_id"]) for r in _hit_records(bus, "BJ01", order["order_id"])} == expected
    assert wait_for(lambda: _dead_letters(bus, "CLOCK_AHEAD"))[0]["reason"] == "OUTSIDE_WINDOW"


def test_a_court_clock_thirty_days_fast_cannot_keep_a_released_order_alive(
    bus: Any, records: Any, wait_for: Callable[..., Any]
) -> None:
    person = records.id_number()
    order = records.person_order("BJ01", "（2026）京01执904号", person)
    bus.publish("BJ01", "LocateDebtorOrder", order)
    bus.wait_orders_consumed()
    fast = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    release = bus.event("OrderRelease", records.release(order, "LOCATE_DEBTOR"),
                        subject={"id_number": person})  # fmt: skip
    bus.publisher("BJ01").publish(dataclasses.replace(release, time=fast))
    # An order from the fast clock would activate an effect: it is refused instead.
    other = records.id_number()
    fast_order = records.person_order("BJ01", "（2026）京01执905号", other)
    bus.publisher("BJ01").publish(
        dataclasses.replace(bus.event("LocateDebtorOrder", fast_order), time=fast)
    )
    bus.wait_orders_consumed()
    bus.publish(POLICE_BJ, "HotelCheckIn", records.hotel_check_in(POLICE_BJ, person))
    bus.publish(POLICE_BJ, "HotelCheckIn", records.hotel_check_in(POLICE_BJ, other))

    keyer = MatchKeyer(bus.settings.match_key_secret.get_secret_value().encode())
    assert wait_for(lambda: _dead_letters(bus, "CLOCK_AHEAD", keyer.person(other)))
    assert _hit_records(bus, "BJ01", order["order_id"]) == []
    assert _hit_records(bus, "BJ01", fast_order["order_id"]) == []


def test_forged_null_and_junk_changelog_records_neither_hit_nor_erase_nor_crash(
    bus: Any, raw: KafkaProducer, records: Any, wait_for: Callable[..., Any]
) -> None:
    keyer = MatchKeyer(bus.settings.match_key_secret.get_secret_value().encode())
    kept = records.id_number()
    order = records.person_order("BJ01", "（2026）京01执906号", kept)
    bus.publish("BJ01", "LocateDebtorOrder", order)
    bus.wait_orders_consumed()
    changelog = bus.catalog.topic_name("watchlist-changelog")
    entry = next(m for m in _records(bus, "watchlist-changelog") if m.key == keyer.person(kept))

    forged_subject = records.id_number()
    forged_key = keyer.person(forged_subject)
    forged_order = records.person_order("BJ01", "（2026）京01执907号", forged_subject)
    forged_entry = {forged_order["order_id"]: [
        forged_order["order_id"], "LOCATE_DEBTOR", "BJ01", forged_order["case_number"],
        "王法官", "13900139000", "拘留", 0, 2**62, 0, None]}  # fmt: skip
    raw.send(changelog, key=forged_key, value=json.dumps(forged_entry).encode(),
             partition=entry.partition)  # fmt: skip
    sealed_lookalike = b"ZS1" + bytes(24) + json.dumps(forged_entry).encode()
    raw.send(changelog, key=forged_key, value=sealed_lookalike, partition=entry.partition)
    raw.send(changelog, key=entry.key, value=None, partition=entry.partition)  # erase
    raw.send(changelog, key=b"\x00" * 32, value=b"\xde\xad" * 19, partition=0)  # 38-byte junk
    raw.send(changelog, key=forged_key, value=entry.value, partition=entry.partition)  # moved
    raw.flush()

    _restart(bus)
    assert bus.process is not None and bus.process.poll() is None
    bus.publish(POLICE_BJ, "HotelCheckIn", records.hotel_check_in(POLICE_BJ, kept))
    bus.publish(POLICE_BJ, "HotelCheckIn", records.hotel_check_in(POLICE_BJ, forged_subject))

    assert wait_for(lambda: _hit_records(bus, "BJ01", order["order_id"]))
    refused = wait_for(lambda: len(_dead_letters(bus, "STATE_INTEGRITY")) >= 5 and
                       _dead_letters(bus, "STATE_INTEGRITY"))  # fmt: skip
    assert {r["reason"] for r in refused} == {"STATE_INTEGRITY"}
    assert _hit_records(bus, "BJ01", forged_order["order_id"]) == []
    _restart(bus)  # and again: no crash loop
    assert bus.process is not None and bus.process.poll() is None


def test_a_stripped_alternative_key_is_caught_not_silently_suppressed(
    bus: Any, raw: KafkaProducer, records: Any, wait_for: Callable[..., Any]
) -> None:
    vin = records.vin()
    order = records.vehicle_order("BJ01", "（2026）京01执908号", records.plate(), vin)
    bus.publish("BJ01", "VehicleSearchOrder", order)
    bus.wait_orders_consumed()
    false_plates = records.vehicle_encounter(TRAFFIC_BJ, records.plate(), vin, "PATROL")
    published = bus.publish(TRAFFIC_BJ, "VehicleEncounter", false_plates)
    wait_for(lambda: _hit_records(bus, "BJ01", order["order_id"]))

    original = _sighting_message(bus, "sightings-vehicle", published.event_id)
    stripped = [(n, v) for n, v in original.headers if n != CE_ALTKEYS]
    assert len(stripped) == len(original.headers) - 1
    _copy(raw, original, headers=stripped)

    assert wait_for(lambda: _dead_letters(bus, "BAD_SIGNATURE", original.key))
    assert len(_hit_records(bus, "BJ01", order["order_id"])) == 1
