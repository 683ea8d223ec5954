"""Three workers in one group play a stream with an exact set of expected hits: person
sightings placed by the bus's partitioner and by another one (CRC32, librdkafka's
default), and watched VINs seen under other plates. One worker is SIGKILLed mid-stream
and another joins later: every expected hit arrives once, none is lost, none repeats."""

from __future__ import annotations

import dataclasses
import threading
import time
import zlib
from collections import Counter
from typing import Any

import pytest

from consumers.watchlist import derive_id
from ops.deployment import DeploymentError
from tests.waiting import wait_group_members
from topics import clients

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POLICE_BJ = "110000000000"
TRAFFIC_BJ = "110000110000"
PERSONS = 24
VEHICLES = 24
ROUNDS = 6
_READY_S = 120.0


def _worker(bus: Any, worker_id: str, tmp_path: Any) -> Any:
    """Another worker process of ``bus``'s application (same topics, keys and group)."""
    settings = bus.settings.model_copy(update={"worker_id": worker_id})
    return dataclasses.replace(
        bus, settings=settings, log_path=tmp_path / f"worker-{worker_id}.log",
        process=None, _publishers={},
    )  # fmt: skip


def _wait_members(bus: Any, count: int) -> None:
    wait_group_members(bus.settings, bus.app_id, count, _READY_S)


def _unwatched(make: Any, watched: list[str]) -> str:
    """A random subject (``make()``) that no order of the test watches."""
    while (value := make()) in watched:
        pass
    return value


def test_three_workers_a_sigkill_and_a_newcomer_lose_no_hit_and_repeat_none(
    bus_factory: Any, records: Any, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    bus = bus_factory()
    workers = [bus, _worker(bus, "1", tmp_path), _worker(bus, "2", tmp_path)]
    # every worker but the bus's own (the fixture stops it) is stopped however the test
    # ends: a wait that fails must not leave worker processes running
    request.addfinalizer(lambda: [worker.stop_worker() for worker in workers[1:]])
    for worker in workers:
        worker.start_worker()
    _wait_members(bus, 3)

    persons = [records.id_number() for _ in range(PERSONS)]
    vehicles = [(records.plate(), records.vin()) for _ in range(VEHICLES)]
    person_orders = [
        records.person_order("BJ01", f"（2026）京01执{900 + i}号", person)
        for i, person in enumerate(persons)
    ]
    vehicle_orders = [
        records.vehicle_order("BJ01", f"（2026）京01执{950 + i}号", plate, vin)
        for i, (plate, vin) in enumerate(vehicles)
    ]
    court = bus.publisher("BJ01")
    court.publish_all(
        [bus.event("LocateDebtorOrder", o) for o in person_orders]
        + [bus.event("VehicleSearchOrder", o) for o in vehicle_orders]
    )
    bus.wait_orders_applied(60)

    expected: set[str] = set()
    kind_of: dict[str, str] = {}  # hit id -> round and kind of its sighting (for a failure)
    order_of: dict[str, str] = {}  # hit id -> order id
    rounds: list[tuple[list[Any], list[Any]]] = []  # (events to publish, records to place)
    for number in range(ROUNDS):
        placed_by_bus, placed_by_crc = [], []
        for order, person in zip(person_orders, persons, strict=True):
            for target, placer in ((placed_by_bus, "murmur2"), (placed_by_crc, "crc32")):
                sighting = records.hotel_check_in(POLICE_BJ, person)
                hit_id = derive_id(order["order_id"], sighting["sighting_id"])
                expected.add(hit_id)
                kind_of[hit_id] = f"round {number}, person placed by {placer}"
                order_of[hit_id] = order["order_id"]
                target.append(bus.event("HotelCheckIn", sighting))
            stranger = _unwatched(records.id_number, persons)
            placed_by_bus.append(
                bus.event("HotelCheckIn", records.hotel_check_in(POLICE_BJ, stranger))
            )
        watched_plates = [plate for plate, _ in vehicles]
        for order, (_, vin) in zip(vehicle_orders, vehicles, strict=True):
            # the watched VIN under a plate of its own: found by the VIN key alone (a random
            # plate equal to another order's watched plate would hit that order too)
            plate = _unwatched(records.plate, watched_plates)
            sighting = records.vehicle_encounter(TRAFFIC_BJ, plate, vin, "PATROL")
            hit_id = derive_id(order["order_id"], sighting["sighting_id"])
            expected.add(hit_id)
            kind_of[hit_id] = f"round {number}, VIN under another plate"
            order_of[hit_id] = order["order_id"]
            placed_by_bus.append(bus.event("VehicleEncounter", sighting))
        rounds.append((placed_by_bus, placed_by_crc))

    police = bus.publisher(POLICE_BJ)
    traffic = bus.publisher(TRAFFIC_BJ)
    crc = clients.kafka_producer(bus.settings, POLICE_BJ)
    partitions = bus.catalog.get("sightings-person").partitions
    killed = threading.Event()

    def stream() -> None:
        for number, (by_bus, by_crc) in enumerate(rounds):
            if number == ROUNDS // 2:
                killed.wait(timeout=120)  # half the stream comes after the kill
            for event in by_bus:
                unit = traffic if event.schema_name.endswith("VehicleEncounter") else police
                unit.publish(event)
            for event in by_crc:  # a librdkafka producer at its default: CRC32 of the key
                topic, signed = police.prepare(event)
                partition = (zlib.crc32(signed.key) & 0x7FFFFFFF) % partitions
                crc.send(topic, key=signed.key, value=signed.value,
                         headers=list(signed.headers), partition=partition)  # fmt: skip
            crc.flush()
            time.sleep(0.5)

    streaming = threading.Thread(target=stream)
    streaming.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not bus.read_topic("alerts", "BJ01", idle_s=0.5):
            pass
        workers[1].kill()  # SIGKILL one worker while the stream goes on
        killed.set()
        _wait_members(bus, 2)
        newcomer = _worker(bus, "3", tmp_path)
        newcomer.start_worker()
        workers.append(newcomer)
        _wait_members(bus, 3)
    finally:
        killed.set()
        streaming.join()
        crc.close()

    def hit_ids() -> list[str]:
        return [
            str(record["hit_id"])
            for record, _, kind in bus.read_topic("alerts", "BJ01", idle_s=3.0)
            if kind == "Hit"
        ]

    bus.wait_sightings_matched(120)
    seen = hit_ids()
    deadline = time.monotonic() + 60
    while set(seen) != expected and time.monotonic() < deadline:
        time.sleep(1.0)
        seen = hit_ids()
    missing, unexpected = expected - set(seen), set(seen) - expected
    if missing or unexpected:
        refused = Counter(
            (record["reason"], record["detail"][:200])
            for record, _, _ in bus.read_topic("dead-letter", idle_s=2.0)
        )
        others = Counter(
            kind for _, _, kind in bus.read_topic("alerts", "BJ01", idle_s=2.0) if kind != "Hit"
        )
        raise AssertionError(
            f"{len(missing)} hits missing, {len(unexpected)} unexpected; other alerts: "
            f"{sorted(others.items())}; missing by "
            f"sighting: {sorted(Counter(kind_of[hit] for hit in missing).items())}; orders: "
            f"{sorted(Counter(order_of[hit] for hit in missing).items())}; "
            f"dead letters: {sorted(refused.items())}"
        )
    repeated = sorted(
        (str(record["hit_id"]), record["sighting"]["topic"], record["sighting"]["partition"],
         record["sighting"]["offset"])
        for record, _, kind in bus.read_topic("alerts", "BJ01", idle_s=3.0)
        if kind == "Hit" and seen.count(str(record["hit_id"])) > 1
    )  # fmt: skip
    assert not repeated, f"hits twice in the committed alert stream: {repeated}"


def test_orders_and_releases_in_flight_through_rebalances_leave_no_stale_entry(
    bus_factory: Any, records: Any, tmp_path: Any
) -> None:
    """Orders and releases are published while a second worker joins and while it leaves
    again, so partitions move away from the first worker and come back. Afterwards a
    sighting of every subject hits exactly the orders not released: no hit for an order
    whose release was processed (on either worker), no entry left over from before a
    partition moved back, and no state record refused on the way."""
    bus = bus_factory()
    bus.start_worker()
    _wait_members(bus, 1)
    court = bus.publisher("BJ01")

    def order(number: int) -> tuple[str, dict[str, Any]]:
        person = records.id_number()
        return person, records.person_order("BJ01", f"（2026）京01执{2000 + number}号", person)

    first = [order(i) for i in range(PERSONS)]
    court.publish_all([bus.event("LocateDebtorOrder", o) for _, o in first])
    bus.wait_orders_applied(60)

    def release(batch: list[tuple[str, dict[str, Any]]]) -> None:
        court.publish_all([
            bus.event("OrderRelease", records.release(o, "LOCATE_DEBTOR"), subject={"id_number": p})
            for p, o in batch
        ])  # fmt: skip

    second = _worker(bus, "1", tmp_path)
    later = [order(PERSONS + i) for i in range(PERSONS)]
    try:
        second.start_worker()  # partitions move to the newcomer while these are in flight
        release(first[: PERSONS // 3])
        court.publish_all([bus.event("LocateDebtorOrder", o) for _, o in later])
        _wait_members(bus, 2)
        release(first[PERSONS // 3 : 2 * PERSONS // 3])  # applied where the partitions went
        release(later[: PERSONS // 2])
        try:
            bus.wait_orders_applied(60)
        except DeploymentError as exc:  # the newcomer's own account too
            tail = second.worker_log_tail() + second.worker_state_dump()
            raise AssertionError(f"{exc}\nsecond worker:\n{tail}") from exc
    finally:
        second.stop_worker()  # ... and back to the first worker
    _wait_members(bus, 1)
    bus.wait_orders_applied(60)

    released = {o["order_id"] for _, o in [*first[: 2 * PERSONS // 3], *later[: PERSONS // 2]]}
    expected: set[str] = set()
    police = bus.publisher(POLICE_BJ)
    for person, placed in [*first, *later]:
        sighting = records.hotel_check_in(POLICE_BJ, person)
        if placed["order_id"] not in released:
            expected.add(derive_id(placed["order_id"], sighting["sighting_id"]))
        police.publish(bus.event("HotelCheckIn", sighting))
    bus.wait_sightings_matched(60)
    hits = {
        str(record["hit_id"])
        for record, _, kind in bus.read_topic("alerts", "BJ01", idle_s=3.0)
        if kind == "Hit"
    }
    if hits != expected:  # what the bus refused on the way explains most such failures
        refused = [
            (record["reason"], record["detail"][:160])
            for record, _, _ in bus.read_topic("dead-letter", idle_s=2.0)
        ]
        raise AssertionError(
            f"{len(expected - hits)} hits missing, {len(hits - expected)} unexpected; "
            f"dead letters: {refused}"
        )
    refused = [
        record for record, _, _ in bus.read_topic("dead-letter", idle_s=1.0)
        if record["reason"] == "STATE_INTEGRITY"
    ]  # fmt: skip
    assert not refused, refused[:3]
