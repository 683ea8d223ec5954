"""Drain: how fast one and two ``zf801 worker`` processes empty a backlog of sightings.

``ZF801_BENCH_DRAIN`` signed check-ins (default 300,000; 1% hit one of 200 orders) wait
on the sightings topic. A plain aiokafka loop reads them first (the floor set by the
broker and the client alone); then one worker is started and timed from its group being
stable to every sighting consumed (committed offsets at the end); then the same count
again with two workers (two processes, distinct worker ids) on the same machine. Every
process, the broker included, shares the machine's cores. ``ZF801_BENCH_DRAIN_STORE``:
the workers' store (``memory``, the default, or ``rocksdb``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import time
from typing import Any

from ops.deployment import Deployment
from producers.publisher import OutgoingEvent, Publisher
from schemas.matchkey import person_match_key
from tests.bench import _bus
from tests.builders import Records
from topics import clients
from topics.clients import aio_producer

SIGHTINGS = int(os.environ.get("ZF801_BENCH_DRAIN", "300000"))
SUBJECTS = 200
_SIGHTING = "cn.zf801.sightings.v1.HotelCheckIn"
_ORDER = "cn.zf801.orders.v1.LocateDebtorOrder"


def _orders(bus: Deployment, people: list[str]) -> None:
    secret = bus.settings.match_key_secret.get_secret_value().encode()
    court = Publisher(bus.keystore.signer_for(_bus.COURT), catalog=bus.catalog,
                      settings=bus.settings)  # fmt: skip
    court.publish_all([
        OutgoingEvent("orders-locate-debtor", _ORDER,
                      Records().person_order(_bus.COURT, "（2026）京01执9号", p),
                      person_match_key(p, secret=secret))
        for p in people
    ])  # fmt: skip
    court.close()


def _prepared(bus: Deployment, people: list[str], seed: int) -> list[tuple[str, Any]]:
    secret = bus.settings.match_key_secret.get_secret_value().encode()
    police = Publisher(bus.keystore.signer_for(_bus.POLICE), catalog=bus.catalog,
                       settings=bus.settings)  # fmt: skip
    strangers = iter(_bus.id_numbers(SIGHTINGS, seed=seed))
    out = []
    for n in range(SIGHTINGS):
        person = people[n // 100 % SUBJECTS] if n % 100 == 0 else next(strangers)
        event = OutgoingEvent("sightings-person", _SIGHTING,
                              Records.hotel_check_in(_bus.POLICE, person),
                              person_match_key(person, secret=secret))  # fmt: skip
        out.append(police.prepare(event))
    police.close()
    return out


async def _send(bus: Deployment, prepared: list[tuple[str, Any]]) -> None:
    producer = aio_producer(bus.settings, _bus.POLICE, linger_ms=10, max_batch_size=1 << 20)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=r.key, value=r.value, headers=list(r.headers))
            for topic, r in prepared
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _drain(workers: list[Deployment]) -> float:
    """Sightings per second from the group being stable with every worker to the last
    sighting's offset committed."""
    for worker in workers:
        worker.start_worker()
    bus = workers[0]
    admin_wait = time.monotonic() + 120
    while time.monotonic() < admin_wait:
        if _members(bus) == len(workers):
            break
        time.sleep(0.2)
    started = time.perf_counter()
    bus.wait_sightings_matched(900)
    return SIGHTINGS / (time.perf_counter() - started)


def _members(bus: Deployment) -> int:
    admin = clients.kafka_admin(bus.settings)
    try:
        group = admin.describe_groups([bus.app_id]).get(bus.app_id, {})
        stable = group.get("group_state") == "Stable"
        return len(group.get("members", ())) if stable else 0
    finally:
        admin.close()


def run() -> list[dict[str, object]]:
    store = os.environ.get("ZF801_BENCH_DRAIN_STORE", "memory")
    bus = Deployment.create(_bus.bench_settings(_bus.kafka_settings(), worker_store=store))
    bus.apply_topics()
    bus.ensure_keys(dt.datetime.now(dt.UTC))
    people = _bus.id_numbers(SUBJECTS, seed=5)
    _orders(bus, people)
    bus.start_worker()  # the watchlist first, then the backlog
    bus.wait_orders_applied(300)
    bus.stop_worker()
    second = dataclasses.replace(
        bus, process=None, _log=None, log_path=bus.log_path.with_name("worker-1.log"),
        settings=bus.settings.model_copy(update={"worker_id": "1"}),
    )  # fmt: skip
    rows = []
    try:
        asyncio.run(_send(bus, _prepared(bus, people, seed=10_000)))
        plain = asyncio.run(
            _bus.plain_read(bus.settings, bus.catalog.topic_name("sightings-person"), SIGHTINGS)
        )
        one = _drain([bus])
        bus.stop_worker()
        asyncio.run(_send(bus, _prepared(bus, people, seed=400_000)))
        two = _drain([bus, second])
    finally:
        second.stop_worker()
        bus.stop_worker()
        bus.remove_run()
    for reader, rate in (
        ("plain aiokafka loop", plain),
        ("1 worker, draining", one),
        ("2 workers, draining", two),
    ):
        rows.append({
            "reader": reader, "sightings": f"{SIGHTINGS:,}", "msg/s": f"{rate:,.0f}",
            "ratio to plain": f"{rate / plain:.2f}", "ratio to 1 worker": f"{rate / one:.2f}",
        })  # fmt: skip
    return rows
