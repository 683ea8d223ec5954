"""Hit latency and drain rate of a real ``zf801 worker`` process, with the watchlist at
each size of ``ZF801_BENCH_TRACKED`` (default ``1000,1000000``: tracked orders written to
the worker's changelogs before it starts, as the restart benchmark writes them, plus the
200 orders that hit).

- **Latency**: a steady 2,000 sightings per second for 15 s; 5% of them hit one of 200
  locate-debtor orders of one court. The court side reads its alert topic at
  ``read_committed`` (hits are committed in transactions); the same run measures a plain
  consumer of the sightings topic, the floor set by the broker and the client alone.
- **Drain**: ``ZF801_BENCH_DRAIN`` sightings (default 100,000, none hits) sent in one
  burst while the worker is stopped (SIGSTOP, well within its 10 s session), then timed
  from SIGCONT to the worker's commit of the last one (watched every 10 ms by a client
  connected before the clock starts), next to a plain aiokafka read of the same records
  in the same run; ``ZF801_BENCH_DRAIN_ROUNDS`` bursts (default 3), their medians
  compared. Both are measured once the worker has indexed the clocks of the orders it
  tracks (which it does after every assignment, a part at a time while it matches; the
  seconds that took are in the first column).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import signal
import statistics
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import TopicPartition

from consumers.watchlist import derive_id
from ops.deployment import Deployment
from producers.publisher import OutgoingEvent, Publisher
from schemas.matchkey import person_match_key
from schemas.settings import Settings
from tests.bench import _bus
from tests.builders import Records
from tests.waiting import wait_for
from topics.clients import aio_consumer, aio_producer, kafka_admin

RATE = int(os.environ.get("ZF801_BENCH_RATE", "2000"))
SECONDS = float(os.environ.get("ZF801_BENCH_SECONDS", "15"))
TRACKED = [int(n) for n in os.environ.get("ZF801_BENCH_TRACKED", "1000,1000000").split(",")]
DRAIN = int(os.environ.get("ZF801_BENCH_DRAIN", "100000"))
DRAIN_ROUNDS = int(os.environ.get("ZF801_BENCH_DRAIN_ROUNDS", "3"))
_STOPPED_MAX_S = 7.0
_COLUMNS = (
    "clocks indexed (s)",
    "path",
    "sent/s",
    "received",
    "p50 ms",
    "p99 ms",
    "max ms",
    "msg/s",
    "ratio",
)
_START_S = 1800.0  # a memory-store worker restores 1,000,000 orders in six to nine minutes
SUBJECTS = 200
HIT_EVERY = 20
_TICK_S = 0.01
_SIGHTING = "cn.zf801.sightings.v1.HotelCheckIn"


def _order(person: str) -> dict[str, Any]:
    return Records().person_order(_bus.COURT, "（2026）京01执9号", person)


def _check_in(person: str) -> dict[str, Any]:
    return Records.hotel_check_in(_bus.POLICE, person)


class _Clock:
    """Send times by hit id (alerts) and by sighting id (the plain consumer)."""

    def __init__(self) -> None:
        self.sent_hit: dict[str, float] = {}
        self.sent_sighting: dict[bytes, float] = {}
        self.hit_latency: list[float] = []
        self.plain_latency: list[float] = []


async def _stream(
    settings: Settings, prepared: list[tuple[str, Any, str | None]], clock: _Clock
) -> float:
    # The police unit's own connection (acks=all, idempotence): the sightings are its.
    producer = aio_producer(settings, _bus.POLICE)
    await producer.start()
    try:
        per_tick = max(1, int(RATE * _TICK_S))
        started = time.perf_counter()
        futures = []
        for n in range(0, len(prepared), per_tick):
            target = started + (n / per_tick) * _TICK_S
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            for topic, record, hit_id in prepared[n : n + per_tick]:
                now = time.time()
                if hit_id is not None:
                    clock.sent_hit[hit_id] = now
                clock.sent_sighting[record.header("ce_id")] = now
                futures.append(await producer.send(
                    topic, key=record.key, value=record.value, headers=list(record.headers)
                ))  # fmt: skip
        await asyncio.gather(*futures)
        return len(prepared) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def _listen(
    settings: Settings, agency: str, topic: str, clock: _Clock, *, alerts: bool, expected: int
) -> None:
    consumer = aio_consumer(
        settings, agency, group_id=None,
        auto_offset_reset="latest",
    )  # fmt: skip
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(1 if alerts else 6)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        deadline = time.monotonic() + SECONDS + 60
        got = 0
        while got < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=50)
            now = time.time()
            for messages in batch.values():
                for message in messages:
                    headers = dict(message.headers)
                    if alerts:
                        sent = clock.sent_hit.get(headers["ce_id"].decode())
                        if sent is not None:
                            clock.hit_latency.append(now - sent)
                    else:
                        sent = clock.sent_sighting.get(headers["ce_id"])
                        if sent is not None:
                            clock.plain_latency.append(now - sent)
                    got += 1
    finally:
        await consumer.stop()


def _prepare(bus: Deployment) -> list[tuple[str, Any, str | None]]:
    people = _bus.id_numbers(SUBJECTS, seed=7)
    court = Publisher(bus.keystore.signer_for(_bus.COURT), catalog=bus.catalog,
                      settings=bus.settings)  # fmt: skip
    orders = [_order(p) for p in people]
    secret = bus.settings.match_key_secret.get_secret_value().encode()
    keys = [person_match_key(p, secret=secret) for p in people]
    court.publish_all([
        OutgoingEvent("orders-locate-debtor", "cn.zf801.orders.v1.LocateDebtorOrder", o, k)
        for o, k in zip(orders, keys, strict=True)
    ])  # fmt: skip
    court.close()
    bus.wait_orders_applied(_START_S)  # after the restore of the tracked orders
    police = Publisher(bus.keystore.signer_for(_bus.POLICE), catalog=bus.catalog,
                       settings=bus.settings)  # fmt: skip
    strangers = iter(_bus.id_numbers(int(RATE * SECONDS), seed=100_000))
    prepared = []
    for n in range(int(RATE * SECONDS)):
        if n % HIT_EVERY == 0:
            who = (n // HIT_EVERY) % SUBJECTS
            sighting = _check_in(people[who])
            key = keys[who]
            hit_id: str | None = derive_id(orders[who]["order_id"], sighting["sighting_id"])
        else:
            person = next(strangers)
            sighting, key, hit_id = _check_in(person), person_match_key(person, secret=secret), None
        topic, record = police.prepare(OutgoingEvent("sightings-person", _SIGHTING, sighting, key))
        prepared.append((topic, record, hit_id))
    police.close()
    return prepared


def _percentiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000, ordered[-1] * 1000


async def _burst(settings: Settings, prepared: Sequence[tuple[str, Any, str | None]]) -> float:
    """Send ``prepared`` as fast as a batching producer can; its rate."""
    producer = aio_producer(settings, _bus.POLICE, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [
            await producer.send(topic, key=r.key, value=r.value, headers=list(r.headers))
            for topic, r, _ in prepared
        ]
        await asyncio.gather(*futures)
        return len(prepared) / (time.perf_counter() - started)
    finally:
        await producer.stop()


def _drain(bus: Deployment, police: Publisher) -> list[dict[str, object]]:
    """The drain rows: ``DRAIN_ROUNDS`` bursts of ``DRAIN`` sightings each through the
    running worker, each followed by a plain read of the same records; the medians."""
    secret = bus.settings.match_key_secret.get_secret_value().encode()
    topic = bus.catalog.topic_name("sightings-person")
    sent, worker, plain = [], [], []
    for round_ in range(DRAIN_ROUNDS):
        prepared = []
        for person in _bus.id_numbers(DRAIN, seed=3_000_000 + round_ * DRAIN):
            key = person_match_key(person, secret=secret)
            event = OutgoingEvent("sightings-person", _SIGHTING, _check_in(person), key)
            prepared.append((*police.prepare(event), None))
        before = asyncio.run(_ends(bus.settings, topic))
        rate, drained = _drain_once(bus, prepared, topic)
        sent.append(rate)
        worker.append(drained)
        plain.append(asyncio.run(_bus.plain_read(bus.settings, topic, DRAIN, before)))
    spread = f"{DRAIN_ROUNDS} x {DRAIN:,}"
    burst = {"sent/s": f"{statistics.median(sent):,.0f}", "received": spread}
    worker_rate, plain_rate = statistics.median(worker), statistics.median(plain)
    return [
        {"path": f"drain: plain aiokafka read of the burst (median of "
                 f"{', '.join(f'{r:,.0f}' for r in plain)})", **burst,
         "msg/s": f"{plain_rate:,.0f}", "ratio": "1.00"},
        {"path": f"drain: worker, burst to its last commit (median of "
                 f"{', '.join(f'{r:,.0f}' for r in worker)})", **burst,
         "msg/s": f"{worker_rate:,.0f}", "ratio": f"{worker_rate / plain_rate:.2f}"},
    ]  # fmt: skip


async def _ends(settings: Settings, topic: str) -> dict[int, int]:
    reader = aio_consumer(settings, _bus.MATCHER, group_id=None)
    await reader.start()
    try:
        found = await reader.end_offsets([TopicPartition(topic, p) for p in range(6)])
        return {tp.partition: offset for tp, offset in found.items()}
    finally:
        await reader.stop()


def _drain_once(
    bus: Deployment, prepared: Sequence[tuple[str, Any, str | None]], topic: str
) -> tuple[float, float]:
    """One burst sent while the worker is stopped: the burst's rate, and the worker's
    from SIGCONT to its commit of the burst's last record."""
    assert bus.process is not None
    # The commits are watched by a client connected before the clock starts, every 10 ms:
    # what is timed is the worker's drain, not the set-up of the clients that watch it.
    admin = kafka_admin(bus.settings, client_id="zf801-bench-drain")
    try:
        _committed(admin, bus.sightings_group, topic)
        # The worker frozen while the burst is sent (well within its 10 s session), so
        # what is timed is its own drain, not the sender's pace.
        os.killpg(bus.process.pid, signal.SIGSTOP)
        stopped = time.perf_counter()
        try:
            sent = asyncio.run(_burst(bus.settings, prepared))
            after = asyncio.run(_ends(bus.settings, topic))
        finally:
            os.killpg(bus.process.pid, signal.SIGCONT)
        started = time.perf_counter()
        if started - stopped > _STOPPED_MAX_S:  # its group moved on: a rebalance was timed
            raise RuntimeError(
                f"the worker was stopped {started - stopped:.1f} s for the burst, too near "
                f"its 10 s session; lower ZF801_BENCH_DRAIN ({DRAIN})"
            )
        while any(_committed(admin, bus.sightings_group, topic).get(p, 0) < end
                  for p, end in after.items()):  # fmt: skip
            if time.perf_counter() - started > 600:
                raise RuntimeError("the worker did not drain the burst in 600 s")
            time.sleep(0.01)
        drained = len(prepared) / (time.perf_counter() - started)
    finally:
        admin.close()
    bus.wait_sightings_matched(600)  # and every sighting it moved (none, with one worker)
    return sent, drained


def _committed(admin: Any, group: str, topic: str) -> dict[int, int]:
    """The offsets ``group`` has committed on the partitions of ``topic``."""
    found = admin.list_group_offsets({group: None}).get(group, {})
    return {tp.partition: meta.offset for tp, meta in found.items() if tp.topic == topic}


def _clocks_indexed(bus: Deployment) -> float:
    """Once the worker has indexed the clocks of the orders it tracks (after its start
    and after every assignment, while it already matches), the seconds that took: the
    steady state is measured, not the minutes after a start."""
    found = wait_for(
        lambda: re.search(r"clocks indexed in ([0-9.]+) s", bus.worker_log()),
        timeout_s=_START_S,
    )
    return float(found[1])


def run() -> list[dict[str, object]]:
    base = _bus.kafka_settings()
    rows: list[dict[str, object]] = []
    for tracked in TRACKED:
        for row in _run(base, tracked):
            rows.append({"tracked": f"{tracked:,}", **dict.fromkeys(_COLUMNS, "-"), **row})
    return rows


def _run(base: Settings, tracked: int) -> list[dict[str, object]]:
    settings = _bus.bench_settings(base)
    bus = Deployment.create(settings)
    bus.apply_topics()
    bus.ensure_keys(dt.datetime.now(dt.UTC))
    if tracked:
        asyncio.run(_bus.fill_tracked_orders(bus, _bus.id_numbers(tracked, seed=5_000_000)))
    bus.start_worker()
    try:
        bus.wait_worker_ready(_START_S)
        indexed_s = _clocks_indexed(bus)
        prepared = _prepare(bus)
        clock = _Clock()
        hits = sum(1 for _, _, hit in prepared if hit is not None)

        async def measure() -> float:
            # The court reads its alerts as itself; the plain consumer reads as the matcher.
            alerts = asyncio.create_task(_listen(
                settings, _bus.COURT, bus.catalog.topic_name("alerts", court=_bus.COURT),
                clock, alerts=True, expected=hits,
            ))  # fmt: skip
            plain = asyncio.create_task(_listen(
                settings, _bus.MATCHER, bus.catalog.topic_name("sightings-person"),
                clock, alerts=False, expected=len(prepared),
            ))  # fmt: skip
            await asyncio.sleep(1.0)  # both listeners positioned at the end
            rate = await _stream(settings, prepared, clock)
            await asyncio.gather(alerts, plain)
            return rate

        rate = asyncio.run(measure())
        police = Publisher(bus.keystore.signer_for(_bus.POLICE), catalog=bus.catalog,
                           settings=bus.settings)  # fmt: skip
        drained = _drain(bus, police)
        police.close()
    finally:
        bus.stop_worker()
        bus.remove_run()
    rows: list[dict[str, object]] = []
    for name, values, count in (
        ("sighting publish -> court alert (read_committed)", clock.hit_latency, hits),
        ("sighting publish -> plain consumer of sightings", clock.plain_latency, len(prepared)),
    ):
        p50, p99, worst = _percentiles(values)
        rows.append({
            "path": name, "sent/s": f"{rate:,.0f}", "received": f"{len(values)}/{count}",
            "p50 ms": f"{p50:.1f}", "p99 ms": f"{p99:.1f}", "max ms": f"{worst:.1f}",
        })  # fmt: skip
    indexed = {"clocks indexed (s)": f"{indexed_s:.1f}"}
    return [{**indexed, **row} for row in (*rows, *drained)]
