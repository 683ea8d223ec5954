"""``zf801 publish`` against the Python publisher, on the same broker in the same run.

``ZF801_BENCH_PUBLISH`` (default 20,000) hotel check-ins, each of another person, are
published by the police unit that reports them:

- through ``Publisher.publish_all`` (the records built beforehand, as an upstream system
  holds them: validate, sign, send, await every acknowledgement);
- through ``zf801 publish`` as a process reading JSON lines from a file: process start,
  checking every line, the disk spool, sending in windows, one audit record per event
  (batched, acknowledged before a line is reported) and the report on stdout; by default
  and with ``--skip-bad`` (sent as read, no spool);
- the process start alone (``zf801 --help``), for scale.

Best of two interleaved rounds each; every round publishes fresh events (new ids). The
ratio column divides by the Python publisher's rate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ops.deployment import Deployment
from producers.publisher import OutgoingEvent, Publisher
from producers.routes import outgoing_event
from schemas.edge import normalise_event
from schemas.jsonmap import from_json
from schemas.registry import EXAMPLE_DIR, default_registry
from tests.bench import _bus

EVENTS = int(os.environ.get("ZF801_BENCH_PUBLISH", "20000"))
ROUNDS = 2
_SCHEMA = "cn.zf801.sightings.v1.HotelCheckIn"
_ZF801 = Path(sys.executable).with_name("zf801")


def _documents(count: int, seed: int) -> list[dict[str, Any]]:
    template = json.loads((EXAMPLE_DIR / "sightings" / "HotelCheckIn.json").read_text("utf-8"))
    documents = []
    for person in _bus.id_numbers(count, seed=seed):
        document = json.loads(json.dumps(template))
        document["sighting_id"] = str(uuid.uuid4())
        document["person"]["id_number"] = person
        documents.append(document)
    return documents


def _events(documents: list[dict[str, Any]]) -> list[OutgoingEvent]:
    schema = default_registry().get(_SCHEMA)
    return [
        outgoing_event(_SCHEMA, normalise_event(_SCHEMA, from_json(schema, d))) for d in documents
    ]


def _python_publish(bus: Deployment, unit: str, events: list[OutgoingEvent]) -> float:
    """Seconds for ``Publisher.publish_all`` of ``events``, connected and warm (scaled
    from all but the first 100, sent first to connect)."""
    with Publisher(bus.keystore.signer_for(unit), settings=bus.settings) as publisher:
        publisher.publish_all(events[:100])
        seconds = _timed(lambda: publisher.publish_all(events[100:]))
    return seconds * len(events) / (len(events) - 100)


def _timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def run() -> list[dict[str, object]]:
    settings = _bus.bench_settings(_bus.kafka_settings())
    unit = json.loads((EXAMPLE_DIR / "sightings" / "HotelCheckIn.json").read_text("utf-8"))[
        "reporting_unit_code"
    ]
    _bus.prepare(settings, (unit,))
    bus = Deployment.create(settings)
    env = bus.worker_env()
    folder = Path(tempfile.mkdtemp(prefix="zf801-bench-publish-"))
    best: dict[str, float] = {}

    def record(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, seconds), seconds)

    def cli(path: Path, *extra: str) -> None:
        command = [str(_ZF801), "publish", "HotelCheckIn", "--as", unit, str(path), *extra]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"zf801 publish failed: {done.stderr[-2000:]}")
        if done.stdout.count("\n") != EVENTS:
            raise RuntimeError("zf801 publish did not report every line")

    seed = 0
    for _ in range(ROUNDS):
        for mode in ("python", "cli", "cli --skip-bad"):
            seed += EVENTS
            documents = _documents(EVENTS, seed)
            if mode == "python":
                record(mode, _python_publish(bus, unit, _events(documents)))
                continue
            path = folder / f"{seed}.jsonl"
            path.write_text(
                "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents), "utf-8"
            )
            extra = ("--skip-bad",) if mode.endswith("--skip-bad") else ()
            record(mode, _timed(lambda: cli(path, *extra)))  # noqa: B023 - called at once
        record("process start (zf801 --help)", _timed(lambda: subprocess.run(
            [str(_ZF801), "--help"], env=env, capture_output=True, check=True
        )))  # fmt: skip
    python_rate = EVENTS / best["python"]
    rows = []
    for name, label in (
        ("python", "Publisher.publish_all"),
        ("cli", "zf801 publish FILE (spooled, audited)"),
        ("cli --skip-bad", "zf801 publish --skip-bad FILE (streamed, audited)"),
    ):
        rate = EVENTS / best[name]
        rows.append({
            "path": label, "events": f"{EVENTS:,}", "seconds": f"{best[name]:.2f}",
            "events/s": f"{rate:,.0f}", "ratio": f"{rate / python_rate:.2f}",
        })  # fmt: skip
    start = best["process start (zf801 --help)"]
    rows.append({
        "path": "process start (zf801 --help)", "events": "-", "seconds": f"{start:.2f}",
        "events/s": "-", "ratio": "-",
    })  # fmt: skip
    return rows
