"""Worker restart with a large watchlist: time to the first match, and memory per order.

``ZF801_BENCH_RESTART_ORDERS`` orders (default 1,000,000), each with its watchlist entry
and its tracking, are written straight to the worker's two changelogs, sealed with the
worker's state secret, on the partitions the worker computes (what the worker itself
would have written after taking those orders in). Then, on one deployment:

1. **first start, RocksDB** (``ZF801_WORKER_STORE=rocksdb``): the worker
   restores both changelogs into its local databases;
2. **restart after SIGKILL, RocksDB**: the worker reads only the changelogs' tail;
3. **start, memory store** (``ZF801_WORKER_STORE=memory``, another worker id): the whole
   changelogs are replayed into memory, as every start did before the tables moved to
   disk.

Each row is the time from starting the process to the court receiving the hit of a
sighting published just before (of an order among the N), the worker's resident memory
once it matched, the memory per order against an idle worker with an empty watchlist,
and the size of the worker's folder on disk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from consumers.watchlist import derive_id
from ops.deployment import Deployment
from producers.publisher import OutgoingEvent, Publisher
from schemas.matchkey import person_match_key
from tests.bench import _bus
from tests.builders import Records
from topics.clients import aio_consumer

ORDERS = int(os.environ.get("ZF801_BENCH_RESTART_ORDERS", "1000000"))
_TIMEOUT_S = 1800.0
_SIGHTING = "cn.zf801.sightings.v1.HotelCheckIn"


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _rss(pid: int) -> int:
    """Resident memory of the worker process and its children (the zf801 launcher)."""
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1]) * 1024
    return total


def _order(person: str, n: int) -> dict[str, Any]:
    return {**Records().person_order(_bus.COURT, "（2026）京01执1号", person),
            "order_id": str(uuid.UUID(int=n + 1))}  # fmt: skip


async def _first_match(bus: Deployment, person: str, n: int) -> tuple[float, int]:
    """Start the worker with a sighting of person n waiting; seconds until the court has
    its hit, and the worker's resident memory then."""
    sighting = Records.hotel_check_in(_bus.POLICE, person)
    hit_id = derive_id(_order(person, n)["order_id"], sighting["sighting_id"])
    secret = bus.settings.match_key_secret.get_secret_value().encode()
    alerts = bus.catalog.topic_name("alerts", court=_bus.COURT)
    consumer = aio_consumer(bus.settings, _bus.COURT, group_id=None)
    await consumer.start()
    try:
        partition = TopicPartition(alerts, 0)
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        police = Publisher(bus.keystore.signer_for(_bus.POLICE), catalog=bus.catalog,
                           settings=bus.settings)  # fmt: skip
        key = person_match_key(person, secret=secret)
        police.publish(OutgoingEvent("sightings-person", _SIGHTING, sighting, key))
        police.close()
        started = time.perf_counter()
        bus.start_worker()
        deadline = time.monotonic() + _TIMEOUT_S
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for message in (m for messages in batch.values() for m in messages):
                if dict(message.headers).get("ce_id") == hit_id.encode():
                    elapsed = time.perf_counter() - started
                    assert bus.process is not None
                    return elapsed, _rss(bus.process.pid)
        raise TimeoutError(f"no hit within {_TIMEOUT_S:.0f} s:\n{bus.worker_log_tail()}")
    finally:
        await consumer.stop()


def _idle_rss(base: Any) -> int:
    """A worker with an empty watchlist, once it has joined its group."""
    bus = Deployment.create(_bus.bench_settings(base))
    bus.apply_topics()
    bus.ensure_keys(dt.datetime.now(dt.UTC))
    bus.start_worker()
    try:
        bus.wait_worker_ready(120)
        time.sleep(5.0)
        assert bus.process is not None
        return _rss(bus.process.pid)
    finally:
        bus.stop_worker()
        bus.remove_run()


def run() -> list[dict[str, object]]:
    base = _bus.kafka_settings()
    idle = _idle_rss(base)
    bus = Deployment.create(_bus.bench_settings(base, worker_store="rocksdb"))
    bus.apply_topics()
    bus.ensure_keys(dt.datetime.now(dt.UTC))
    people = _bus.id_numbers(ORDERS, seed=11)
    started = time.perf_counter()
    asyncio.run(_bus.fill_tracked_orders(bus, people))
    fill_s = time.perf_counter() - started
    rows: list[dict[str, object]] = []
    worker_dir = bus.settings.home / "worker"

    def row(what: str, seconds: float, rss: int) -> None:
        rows.append({
            "start": what, "orders": f"{ORDERS:,}", "to first match (s)": f"{seconds:.1f}",
            "resident (MB)": f"{rss / 1e6:,.0f}",
            "bytes per order": f"{(rss - idle) / ORDERS:,.0f}",
            "on disk (MB)": f"{_folder_bytes(worker_dir) / 1e6:,.0f}",
        })  # fmt: skip

    try:
        seconds, rss = asyncio.run(_first_match(bus, people[0], 0))
        row("first start, RocksDB (whole changelogs)", seconds, rss)
        bus.stop_worker(signal.SIGKILL)
        seconds, rss = asyncio.run(_first_match(bus, people[1], 1))
        row("restart after SIGKILL, RocksDB (tail)", seconds, rss)
        bus.stop_worker()
        memory = dataclasses.replace(
            bus, process=None, log_path=bus.log_path.with_name("worker-memory.log"),
            settings=bus.settings.model_copy(
                update={"worker_id": "memory", "worker_store": "memory"}
            ),
        )  # fmt: skip
        try:
            seconds, rss = asyncio.run(_first_match(memory, people[2], 2))
        finally:
            memory.stop_worker()
        row("start, memory store (whole changelogs)", seconds, rss)
    finally:
        bus.stop_worker()
        bus.remove_run()
    rows.append({"start": f"(changelogs written in {fill_s:.0f} s; idle worker "
                          f"{idle / 1e6:,.0f} MB)"})  # fmt: skip
    return rows
