"""``zf801 publish`` through the real broker: what it prints is what the topics hold, signed
by the publishing agency; a file with a bad line leaves the topics untouched."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ops.cli import app
from ops.cmd_publish import PublishHooks
from ops.deployment import Deployment
from schemas.agencies import load_agencies
from schemas.codec import decode
from schemas.matchkey import person_match_key
from schemas.registry import EXAMPLE_DIR
from schemas.settings import Settings
from sign.events import EventVerifier
from sign.keystore import KeyStore
from tests.kafka_io import read_to_end
from topics.catalog import bus_catalog

pytestmark = pytest.mark.integration

EXAMPLES = EXAMPLE_DIR
ZF801 = Path(sys.executable).with_name("zf801")


@pytest.fixture
def deployment(
    kafka_settings: Settings, unique_name: Callable[..., str], tmp_path: Path
) -> Iterator[Deployment]:
    """The catalog's topics (and, under mTLS, their ACLs) under a prefix of their own,
    deleted after, and a key store of the demo trust set."""
    settings = kafka_settings.model_copy(
        update={"topic_prefix": unique_name("pub") + "-", "keys_path": tmp_path / "keys"}
    )
    KeyStore.from_settings(settings).init(
        load_agencies().agencies.values(), dt.datetime.now(dt.UTC)
    )
    deployment = Deployment.create(settings)
    deployment.apply_topics()
    yield deployment
    deployment.remove_run()


def _example(family: str, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES / family / f"{name}.json").read_text("utf-8"))
    return document


def _lines(*documents: object) -> str:
    return "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents)


def _read(settings: Settings, topic_id: str) -> list[Any]:
    """Every record of the topic, read as the admin (from the beginning, to its end)."""
    return read_to_end(settings, bus_catalog(settings).topic_name(topic_id))


def _orders(count: int) -> list[dict[str, Any]]:
    orders = []
    for index in range(count):
        order = _example("orders", "ExitRestrictionOrder")
        order["order_id"] = f"93f2b536-8ee6-577b-9484-4c722ead{index:04d}"
        orders.append(order)
    return orders


def test_published_events_are_on_the_topics_as_printed(deployment: Deployment) -> None:
    settings = deployment.settings
    result = CliRunner().invoke(
        app,
        ["publish", "ExitRestrictionOrder", "--as", "BJ01"],
        input=_lines(*_orders(3)),
        obj=PublishHooks(settings=lambda: settings),
    )
    assert result.exit_code == 0, result.output
    printed = {
        (row[0], row[1], int(row[2]), int(row[3]))
        for row in (line.split("\t") for line in result.stdout.splitlines())
    }
    records = _read(settings, "orders-exit-restriction")
    assert {
        (dict(r.headers)["ce_id"].decode(), r.topic, r.partition, r.offset) for r in records
    } == printed
    verifier = EventVerifier(KeyStore.from_settings(settings).trust_store())
    secret = settings.match_key_secret.get_secret_value().encode()
    for record in records:
        assert verifier.verify(record.key, record.value, record.headers).agency_code == "BJ01"
        assert record.key == person_match_key("110105198003121238", secret=secret)
        assert decode(record.value)[1]["enforcing_court_code"] == "BJ01"
    # One subject: one key, so one partition, in input order.
    assert sorted(str(decode(r.value)[1]["order_id"]) for r in records) == [
        o["order_id"] for o in _orders(3)
    ]


def test_a_bad_line_publishes_nothing_and_skip_bad_publishes_the_rest(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment.settings
    checkins = [_example("sightings", "HotelCheckIn") for _ in range(3)]
    for index, checkin in enumerate(checkins):
        checkin["sighting_id"] = f"feeab477-377a-555e-a0b6-34c29172{index:04d}"
    checkins[1]["person"]["id_number"] = "440304199005216317"
    path = tmp_path / "checkins.jsonl"
    path.write_text(_lines(*checkins), encoding="utf-8")
    env = deployment.worker_env()  # the settings as ZF801_* variables: prefix, keys, TLS
    command = [str(ZF801), "publish", "HotelCheckIn", "--as", "110105000000", str(path)]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *extra], env=env, capture_output=True, text=True, timeout=120, check=False
        )

    refused = run()
    assert refused.returncode == 1, refused.stderr
    assert "line 2: person.id_number" in refused.stderr
    assert _read(settings, "sightings-person") == []

    skipped = run("--skip-bad")
    assert skipped.returncode == 1, skipped.stderr
    records = _read(settings, "sightings-person")
    assert sorted(str(decode(r.value)[1]["sighting_id"]) for r in records) == [
        checkins[0]["sighting_id"],
        checkins[2]["sighting_id"],
    ]
    assert {dict(r.headers)["ce_id"].decode() for r in records} == {
        line.split("\t")[0] for line in skipped.stdout.splitlines()
    }
