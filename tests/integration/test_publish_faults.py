"""``zf801 publish`` when its broker dies mid-run (SIGKILL) or is stopped (SIGTERM): the
command ends within its timeout with one error line and no traceback, its output names
every line the broker acknowledged (each really on the topic where it says) and every line
sent but not acknowledged; after the broker is back, a rerun with ``--skip-acknowledged``
publishes the rest, so every input line is on the topic, each under one event id.

The broker is a node of this module's own (temp folder, free ports, the session's
security), so killing it disturbs no other test."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.broker import LocalCluster
from ops.broker_config import BrokerSecurity, ClusterLayout
from ops.broker_fetch import fetch_kafka, kafka_libs_dir
from ops.deployment import Deployment
from schemas.agencies import load_agencies
from schemas.codec import decode
from schemas.registry import EXAMPLE_DIR
from schemas.settings import Settings
from sign.keystore import KeyStore
from tests.kafka_io import free_ports, read_to_end
from topics.catalog import bus_catalog

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ZF801 = Path(sys.executable).with_name("zf801")
EXAMPLES = EXAMPLE_DIR
_LINES = 8_000
_KILL_AFTER_ROWS = 2_000
_TIMEOUT_S = 10  # the command's --timeout


@pytest.fixture(scope="module")
def node(
    kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalCluster, Settings]]:
    """One broker node of our own, and settings that reach it."""
    fetch_kafka(kafka_settings)
    broker, controller, police, bus = free_ports(4)
    layout = ClusterLayout.on_ports(
        tmp_path_factory.mktemp("faults") / "node",
        host=kafka_settings.broker_host,
        broker_ports=[broker],
        controller_ports=[controller],
        police_ports=[police],
        bus_ports=[bus],
        heap=kafka_settings.quorum_broker_heap,
        security=BrokerSecurity.from_settings(kafka_settings),
    )
    cluster = LocalCluster(layout, kafka_libs_dir(kafka_settings), stop_timeout_s=20.0)
    cluster.start()
    host = kafka_settings.broker_host
    settings = kafka_settings.model_copy(update={
        "bootstrap_servers": f"{host}:{broker}",
        "police_bootstrap_servers": f"{host}:{police}",
        "bus_bootstrap_servers": f"{host}:{bus}",
    })  # fmt: skip
    try:
        yield cluster, settings
    finally:
        cluster.stop()


def _checkins(count: int) -> str:
    template = json.loads((EXAMPLES / "sightings" / "HotelCheckIn.json").read_text("utf-8"))
    lines = []
    for index in range(count):
        template["sighting_id"] = f"feeab477-377a-555e-a0b6-{index:012d}"
        lines.append(json.dumps(template, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def _rows(text: str) -> list[list[str]]:
    return [row.split("\t") for row in text.splitlines() if row]


def _wait_rows(path: Path, count: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while len(path.read_bytes().splitlines()) < count:
        assert process.poll() is None, "the command ended before the broker was stopped"
        assert time.monotonic() < deadline, "too slow to reach the rows to stop at"
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
def test_publish_reports_each_line_when_the_broker_dies_and_a_rerun_completes_it(
    node: tuple[LocalCluster, Settings], tmp_path: Path, signum: signal.Signals
) -> None:
    cluster, node_settings = node
    settings = node_settings.model_copy(
        update={"topic_prefix": f"f{signum.value}-", "keys_path": tmp_path / "keys"}
    )
    KeyStore.from_settings(settings).init(
        load_agencies().agencies.values(), dt.datetime.now(dt.UTC)
    )
    deployment = Deployment.create(settings)
    deployment.apply_topics()
    source = tmp_path / "checkins.jsonl"
    source.write_text(_checkins(_LINES), encoding="utf-8")
    command = [
        str(ZF801), "publish", "HotelCheckIn", "--as", "110105000000", str(source),
        "--timeout", str(_TIMEOUT_S),
    ]  # fmt: skip
    env = deployment.worker_env()
    first_out, first_err = tmp_path / "first.tsv", tmp_path / "first.err"
    with first_out.open("wb") as out, first_err.open("wb") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        try:
            _wait_rows(first_out, _KILL_AFTER_ROWS, process)
            cluster.kill_node(1, signum)
            stopped_at = time.monotonic()
            code = process.wait(timeout=_TIMEOUT_S * 3 + 30)
            took = time.monotonic() - stopped_at
        finally:
            process.kill()
    errors = first_err.read_text("utf-8")
    assert code == 1, errors
    assert "Traceback" not in errors
    assert took < _TIMEOUT_S * 3 + 15, f"took {took:.0f} s after the broker went"
    (error,) = [line for line in errors.splitlines() if line.startswith("error:")]
    assert "--skip-acknowledged" in error
    rows = _rows(first_out.read_text("utf-8"))
    acknowledged = {int(r[4]): r for r in rows if r[1] != "UNACKNOWLEDGED"}
    assert len(acknowledged) >= _KILL_AFTER_ROWS

    cluster.start()
    second = subprocess.run(
        [*command, "--skip-acknowledged", str(first_out)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    resent = {int(r[4]) for r in _rows(second.stdout)}
    assert resent.isdisjoint(acknowledged)
    assert resent | set(acknowledged) == set(range(1, _LINES + 1))

    records = read_to_end(settings, bus_catalog(settings).topic_name("sightings-person"))
    placed = {(r.partition, r.offset): dict(r.headers)["ce_id"].decode() for r in records}
    for row in acknowledged.values():  # each acknowledged line is where its row says
        assert placed[(int(row[2]), int(row[3]))] == row[0]
    ids_by_sighting: dict[str, set[str]] = {}
    for record in records:
        sighting = str(decode(record.value)[1]["sighting_id"])
        ids_by_sighting.setdefault(sighting, set()).add(dict(record.headers)["ce_id"].decode())
    assert len(ids_by_sighting) == _LINES  # every line is on the topic
    assert all(len(ids) == 1 for ids in ids_by_sighting.values())  # under one event id
    deployment.remove_run()
