"""``zf801 replay --verify`` throughput, next to the raw Ed25519 verify rate of one core.

The replay reads ``ZF801_BENCH_REPLAY`` (default 50,000) signed hotel check-ins from the
real broker and judges every one with the processors' verify stage (seal, trust at its
time, envelope, schema, acceptance window at arrival, repeats per topic), in one process,
as ``ops.cmd_replay.run_replay`` does for the command. The raw rate is a loop of
``Ed25519PublicKey.verify`` over one signed canonical message, measured in the same run:
the replay's ratio to it says how much of a core the other checks and the reading take.
The same range is replayed again with the checks spread over a pool of one process per
core (``--jobs``, ``ops.replay_pool``), next to cores x the raw rate (the goal: 0.8).
The raw rate is measured before, between and after the replays (their median is the
reference), and the load average is printed with each row: on a shared machine a
disturbed run shows, and is run again. "CPU us/record here" is this process's CPU time
per record, which other work on the machine hardly changes: the verify's, the whole
single-process replay's, and with the pool the reading process's share (reading Kafka,
dispatch, tally), the workers' not counted.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consumers.runtime import Runtime
from ops.cmd_replay import ReplayRequest, run_replay
from producers.publisher import OutgoingEvent, Publisher
from schemas.headers import CE_ID, SIGNATURE_HEADERS
from sign.keystore import KeyStore
from tests.bench import _bus
from tests.builders import Records
from topics.clients import aio_producer

RECORDS = int(os.environ.get("ZF801_BENCH_REPLAY", "50000"))
READER = "BUS-AUDIT"
_RAW_VERIFIES = 20_000


def _raw_verify_rate() -> tuple[float, float]:
    """Verifies per second, and CPU microseconds per verify."""
    key = Ed25519PrivateKey.generate()
    message = os.urandom(600)  # about a sighting's canonical bytes
    signature, public = key.sign(message), key.public_key()
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(_RAW_VERIFIES):
        public.verify(signature, message)
    spent = time.process_time() - cpu
    return _RAW_VERIFIES / (time.perf_counter() - started), spent / _RAW_VERIFIES * 1e6


async def _produce(settings: Any, topic: str, records: list[tuple[bytes, bytes, Any]]) -> None:
    producer = aio_producer(settings, _bus.POLICE, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key, headers=headers)
                for key, value, headers in records]  # fmt: skip
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def _sightings(settings: Any, catalog: Any) -> list[tuple[bytes, bytes, Any]]:
    """Signed check-ins, each with a key and an event id of its own."""
    signer = KeyStore.from_settings(settings).signer_for(_bus.POLICE)
    publisher = Publisher(signer, catalog=catalog, settings=settings)
    person = _bus.id_numbers(1)[0]
    _, template = publisher.prepare(OutgoingEvent(
        "sightings-person", "cn.zf801.sightings.v1.HotelCheckIn",
        Records.hotel_check_in(_bus.POLICE, person), os.urandom(32),
    ))  # fmt: skip
    records = []
    for _ in range(RECORDS):
        key, event_id = os.urandom(32), str(uuid.uuid4()).encode()
        unsigned = [(name, event_id if name == CE_ID else value)
                    for name, value in template.headers
                    if name not in SIGNATURE_HEADERS]  # fmt: skip
        records.append((key, template.value, signer.sign(key, template.value, unsigned)))
    return records


def run() -> list[dict[str, object]]:
    settings = _bus.bench_settings(_bus.kafka_settings())
    catalog = _bus.prepare(settings, (_bus.POLICE, _bus.MATCHER, READER))
    asyncio.run(_produce(settings, catalog.topic_name("sightings-person"),
                         _sightings(settings, catalog)))  # fmt: skip
    cores = len(os.sched_getaffinity(0))
    runtime = Runtime.connect(READER, settings)
    rates, cpus, raws, raw_cpus, loads = {}, {}, [], [], {}
    try:
        for jobs in (1, cores):
            rate, cpu = _raw_verify_rate()
            raws.append(rate)
            raw_cpus.append(cpu)
            loads[jobs] = f"{os.getloadavg()[0]:.1f}"
            request = ReplayRequest(READER, ("sightings-person",), None, None, verify=True,
                                    jobs=jobs)  # fmt: skip
            started, cpu_started = time.perf_counter(), time.process_time()
            tally, _, _ = run_replay(runtime, request)
            rates[jobs] = RECORDS / (time.perf_counter() - started)
            cpus[jobs] = (time.process_time() - cpu_started) / RECORDS * 1e6
            assert tally.records == RECORDS and tally.clean, (tally.records, tally.breaks[:3])
        rate, cpu = _raw_verify_rate()
        raws.append(rate)
        raw_cpus.append(cpu)
    finally:
        runtime.close()
    raw = statistics.median(raws)
    spread = f"median of {', '.join(f'{r:,.0f}' for r in raws)}"
    return [
        {"loop": f"raw Ed25519 verify, one core ({spread})", "records": _RAW_VERIFIES,
         "records/s": f"{raw:,.0f}", "ratio to raw": "1.00", "ratio to cores x raw": "",
         "CPU us/record here": f"{statistics.median(raw_cpus):.0f}",
         "load (1 min)": f"{os.getloadavg()[0]:.1f}"},
        {"loop": "zf801 replay --verify --jobs 1", "records": RECORDS,
         "records/s": f"{rates[1]:,.0f}", "ratio to raw": f"{rates[1] / raw:.2f}",
         "ratio to cores x raw": f"{rates[1] / raw / cores:.2f}",
         "CPU us/record here": f"{cpus[1]:.0f}", "load (1 min)": loads[1]},
        {"loop": f"zf801 replay --verify --jobs {cores} (process pool)", "records": RECORDS,
         "records/s": f"{rates[cores]:,.0f}", "ratio to raw": f"{rates[cores] / raw:.2f}",
         "ratio to cores x raw": f"{rates[cores] / raw / cores:.2f}",
         "CPU us/record here": f"{cpus[cores]:.0f} (reader)", "load (1 min)": loads[cores]},
    ]  # fmt: skip
