"""Query round trip: a court's query to a ``zf801 responder`` process and its answer back
at the court, with a reference store of ZF801_BENCH_QUERY_ROWS rows (1,000,000 by default).

Three figures, one run:

- **paced**: P1 (identity) queries of people on record, signed by the court and sent at a
  steady ZF801_BENCH_QUERY_RATE per second (200) for ZF801_BENCH_SECONDS (15); the round
  trip is from the send to the answer read at the court's results stream (read_committed,
  as the query client reads it): p50 / p99 / max.
- **floor**: the same paced queries answered by a plain kafka-python loop in the same
  process as the responder would be (consume the query, produce a reply of the same size
  to the results stream; no verification, no lookup, no signature): what the broker and
  the client cost alone.
- **burst**: ZF801_BENCH_QUERY_BURST (5,000) queries sent at once: the responder's
  sustained rate, from the first send to the last answer.

The store is built once from ``ops.reference_data.generate`` (each row checked, a few
thousand rows per second) and kept under the checkout's ``.zf801/bench/``, so later runs
start at once. Quotas are lifted for the run (ZF801_QUERY_QUOTA_PER_COURT=0).
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import sqlite3
import statistics
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from rich.progress import Progress

from consumers.query_source import SqliteQuerySource
from ops.deployment import Deployment, spawn, stop_group, zf801_command
from ops.reference_data import generate
from producers.publisher import Publisher
from producers.routes import outgoing_event
from schemas.agencies import get_agency
from schemas.envelope import format_time
from schemas.jsonmap import from_json
from schemas.queries import query_kind
from schemas.registry import default_registry
from schemas.settings import Settings
from schemas.tls_layout import ADMIN_NAME
from tests.bench import _bus
from tests.builders import Records
from topics import clients
from topics.acls import group_prefix

ROWS = int(os.environ.get("ZF801_BENCH_QUERY_ROWS", "1000000"))
RATE = int(os.environ.get("ZF801_BENCH_QUERY_RATE", "200"))
SECONDS = float(os.environ.get("ZF801_BENCH_SECONDS", "15"))
BURST = int(os.environ.get("ZF801_BENCH_QUERY_BURST", "5000"))
_KIND = query_kind("P1")
_BATCH = 5000


def _store() -> Path:
    """The reference store of ROWS generated rows (built once, then reused)."""
    path = _bus.REPO_ROOT / ".zf801" / "bench" / f"reference-{ROWS}.sqlite"
    ready = path.with_suffix(".ready")
    if ready.exists():
        return path
    path.unlink(missing_ok=True)
    with SqliteQuerySource(path) as source, Progress() as progress:
        task = progress.add_task(f"reference store ({ROWS:,} rows, built once)", total=ROWS)
        rows = generate(ROWS, seed=801)
        while batch := list(itertools.islice(rows, _BATCH)):
            for kind, group in itertools.groupby(batch, key=lambda row: row[0]):
                source.add_many(kind, [row for _, row in group])
            progress.advance(task, len(batch))
    ready.touch()
    return path


def _people(path: Path, count: int) -> list[str]:
    """ID numbers on record whose home province (Beijing) the responder answers for."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT id_number FROM persons WHERE id_number LIKE '11%' LIMIT ?", (count,)
        ).fetchall()
    if not rows:
        raise RuntimeError(f"no Beijing person in {path}")
    return [row[0] for row in rows]


def _queries(publisher: Publisher, people: list[str], count: int) -> list[tuple[str, Any, str]]:
    """``count`` signed queries (topic, record, correlation id), prepared before the clock."""
    schema = default_registry().get(_KIND.query_schema)
    now = dt.datetime.now(dt.UTC)
    deadline = format_time(now + dt.timedelta(hours=1))
    out = []
    for n in range(count):
        correlation = str(uuid.uuid4())
        document = Records.query(
            "P1", people[n % len(people)], correlation_id=correlation, deadline=deadline,
            requested_at=format_time(now),
        )  # fmt: skip
        record = from_json(schema, document)
        topic, signed = publisher.prepare(outgoing_event(_KIND.query_schema, record))
        out.append((topic, signed, correlation))
    return out


class _Answers(threading.Thread):
    """Reads the court's results stream from its end; arrival time per correlation id."""

    def __init__(self, settings: Settings, topic: str) -> None:
        super().__init__(daemon=True)
        self.arrived: dict[str, float] = {}
        self.stop = threading.Event()
        self._consumer = clients.kafka_reader(settings, _bus.COURT, topic)
        partitions = list(self._consumer.assignment())
        self._consumer.seek_to_end(*partitions)
        for partition in partitions:
            self._consumer.position(partition)

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for messages in self._consumer.poll(timeout_ms=50, max_records=2000).values():
                    now = time.perf_counter()
                    for message in messages:
                        self.arrived.setdefault((message.key or b"").decode(), now)
        finally:
            self._consumer.close()

    def wait(self, ids: list[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(i not in self.arrived for i in ids):
            time.sleep(0.05)


def _send(
    settings: Settings, prepared: list[tuple[str, Any, str]], rate: float | None
) -> dict[str, float]:
    """Send at ``rate`` per second (None: at once); the send time per correlation id."""
    producer = clients.kafka_producer(settings, _bus.COURT, linger_ms=0)
    sent: dict[str, float] = {}
    started = time.perf_counter()
    try:
        for n, (topic, record, correlation) in enumerate(prepared):
            if rate is not None:
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            sent[correlation] = time.perf_counter()
            producer.send(topic, key=record.key, value=record.value, headers=list(record.headers))
        producer.flush()
    finally:
        producer.close()
    return sent


def _echo(settings: Settings, query_topic: str, results_topic: str, stop: threading.Event) -> None:
    """The floor: consume each query and produce a reply of its size at once, unchecked."""
    consumer = clients.kafka_consumer(settings, ADMIN_NAME, query_topic, group_id=None,
                                      auto_offset_reset="latest")  # fmt: skip
    consumer.partitions_for_topic(query_topic)
    producer = clients.kafka_producer(settings, ADMIN_NAME, linger_ms=0)
    try:
        while not stop.is_set():
            for messages in consumer.poll(timeout_ms=50, max_records=500).values():
                for message in messages:
                    producer.send(results_topic, key=message.key, value=message.value)
                producer.flush()
    finally:
        consumer.close()
        producer.close()


def _latencies(sent: dict[str, float], arrived: dict[str, float]) -> list[float]:
    return sorted(arrived[i] - t for i, t in sent.items() if i in arrived)


def _row(
    name: str, sent: dict[str, float], arrived: dict[str, float], elapsed: float | None
) -> dict[str, object]:
    times = _latencies(sent, arrived)
    cut = max(0, int(len(times) * 0.99) - 1)

    def ms(value: float) -> float | None:
        return round(value * 1000, 1) if times else None

    return {
        "run": name,
        "queries": len(sent),
        "answered": len(times),
        "p50 ms": ms(statistics.median(times)) if times else None,
        "p99 ms": ms(times[cut]) if times else None,
        "max ms": ms(times[-1]) if times else None,
        "answers/s": round(len(times) / elapsed) if elapsed else None,
    }


def _responder(bus: Deployment, db: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **bus.worker_env(),
        "ZF801_QUERY_QUOTA_PER_COURT": "0",
        "ZF801_QUERY_QUOTA_PER_UNIT": "0",
    }
    return spawn(zf801_command("responder", "--as", _bus.POLICE, "--db", str(db)), env, log)


def _wait_member(settings: Settings, group: str, process: subprocess.Popen[bytes]) -> None:
    admin = clients.kafka_admin(settings)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            described = admin.describe_groups([group]).get(group, {})
            if described.get("group_state") == "Stable" and described.get("members"):
                return
            if process.poll() is not None:
                raise RuntimeError(f"the responder exited with {process.returncode}")
            time.sleep(0.2)
    finally:
        admin.close()
    raise RuntimeError("the responder did not join its group")


def run() -> list[dict[str, object]]:
    store = _store()
    people = _people(store, 5000)
    settings = _bus.bench_settings(_bus.kafka_settings())
    catalog = _bus.prepare(settings, (_bus.COURT, _bus.POLICE, "BUS-AUDIT"))
    bus = Deployment.create(settings)
    query_topic = catalog.topic_name("query-requests")
    results_topic = catalog.topic_name("query-results", court=_bus.COURT)
    court = Publisher(bus.keystore.signer_for(_bus.COURT), catalog=catalog, settings=settings)
    paced_count = int(RATE * SECONDS)
    rows: list[dict[str, object]] = []

    answers = _Answers(settings, results_topic)
    answers.start()
    log = Path(settings.home) / "responder.log"
    process = _responder(bus, store, log)
    try:
        _wait_member(
            settings, f"{group_prefix(catalog, get_agency(_bus.POLICE))}responder", process
        )
        paced = _queries(court, people, paced_count)
        sent = _send(settings, paced, RATE)
        answers.wait(list(sent), 60)
        rows.append(_row(f"responder, {RATE}/s, {ROWS:,} rows", sent, answers.arrived, None))
        burst = _queries(court, people, BURST)
        started = time.perf_counter()
        sent = _send(settings, burst, None)
        answers.wait(list(sent), 300)
        elapsed = max(answers.arrived.get(i, started) for i in sent) - started
        rows.append(_row(f"responder, burst of {BURST:,}", sent, answers.arrived, elapsed))
    finally:
        stop_group(process)

    stop_echo = threading.Event()
    echo = threading.Thread(target=_echo, args=(settings, query_topic, results_topic, stop_echo),
                            daemon=True)  # fmt: skip
    echo.start()
    try:
        time.sleep(2.0)  # the echo's consumer is at the end of the query topic
        floor = _queries(court, people, paced_count)
        sent = _send(settings, floor, RATE)
        answers.wait(list(sent), 30)
        rows.append(_row(f"floor: plain echo, {RATE}/s", sent, answers.arrived, None))
    finally:
        stop_echo.set()
        echo.join(10)
        answers.stop.set()
        answers.join(10)
        court.close()
        bus.remove_run()
    return rows
