"""Signed log checkpoints against the real broker: ``zf801 checkpointer`` writes a
checkpoint per partition that moved, a second run continues each partition's chain from
the first run's checkpoints, ``zf801 replay --verify`` finds every checkpoint in range
matching its records, and a checkpoint that does not match its records is named by its
own place with CHECKPOINT_MISMATCH (exit 2)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ops.deployment import Deployment
from schemas.codec import decode
from schemas.settings import Settings
from sign.checkpoint import CHECKPOINT_SCHEMA, PartitionChain
from tests.builders import Records, deployed
from tests.kafka_io import read_to_end

if TYPE_CHECKING:
    from tests.conftest import KafkaClients

pytestmark = pytest.mark.integration

_ZF801 = Path(sys.executable).with_name("zf801")
AUDITOR, MATCHER, POLICE = "BUS-AUDIT", "BUS-MATCHER", "110105000000"


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, kafka_settings: Settings
) -> Iterator[Deployment]:
    home = tmp_path_factory.mktemp("checkpoints")
    with deployed(home, kafka_settings, (MATCHER, AUDITOR, POLICE), "ckp") as deployment:
        yield deployment


def _zf801(deployment: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_ZF801), *args], env={**deployment.worker_env(), "COLUMNS": "300"},
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def _publish(deployment: Deployment, kafka_clients: KafkaClients, count: int) -> None:
    signer = deployment.keystore.signer_for(POLICE)
    producer = kafka_clients.producer(POLICE)
    try:
        for _ in range(count):
            sighting = Records().hotel_check_in(POLICE, Records().id_number())
            record = signer.signed_record("HotelCheckIn", sighting, key=uuid.uuid4().bytes * 2)
            producer.send(
                deployment.catalog.topic_name("sightings-person"), key=record.key,
                value=record.value, headers=list(record.headers),
            ).get(timeout=30)  # fmt: skip
    finally:
        producer.close()


def _checkpoints(
    deployment: Deployment, kafka_clients: KafkaClients
) -> list[tuple[Any, dict[str, Any]]]:
    topic = deployment.catalog.topic_name("checkpoints")
    return [(m, decode(m.value)[1]) for m in read_to_end(kafka_clients.settings, topic)]


def _replay(deployment: Deployment) -> tuple[int, dict[str, Any]]:
    result = _zf801(deployment, "replay", "--topics", "sightings-person", "--verify",
                    "--format", "json")  # fmt: skip
    assert result.returncode in (0, 2), result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, report


def test_checkpoints_continue_across_runs_and_match_the_log(
    deployment: Deployment, kafka_clients: KafkaClients
) -> None:
    sightings = deployment.catalog.topic_name("sightings-person")
    _publish(deployment, kafka_clients, 6)
    first = _zf801(deployment, "checkpointer", "--once")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "0 checkpoint(s) read" in first.stdout
    written = _checkpoints(deployment, kafka_clients)
    ours = [value for _, value in written if value["topic"] == sightings]
    assert sum(value["record_count"] for value in ours) == 6
    assert all(value["previous_head"] == bytes(32) for value in ours)
    # the audit log (the checkpointer's own read, among others) is checkpointed too
    assert any(value["topic"] == deployment.catalog.topic_name("audit") for _, value in written)

    _publish(deployment, kafka_clients, 5)
    second = _zf801(deployment, "checkpointer", "--once")
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"{len(written)} checkpoint(s) read" in second.stdout
    later = [value for _, value in _checkpoints(deployment, kafka_clients)[len(written):]
             if value["topic"] == sightings]  # fmt: skip
    assert sum(value["record_count"] for value in later) == 5
    for value in later:
        before = [v for v in ours if v["partition"] == value["partition"]]
        if before:  # continues that partition's chain
            assert value["start_offset"] == before[-1]["end_offset"]
            assert value["previous_head"] == before[-1]["head"]

    code, report = _replay(deployment)
    assert code == 0, report
    assert report["clean"] is True and report["breaks"] == []
    assert report["checkpoints"]["matched"] == len(ours) + len(later)
    assert report["checkpoints"]["failed"] == 0
    # only the checkpoints of the partitions read count, all inside the whole topic's range
    assert report["checkpoints"]["checkpoints"] == len(ours) + len(later)
    assert report["checkpoints"]["outside_range"] == 0


def test_a_checkpoint_that_does_not_match_its_records_is_named(
    deployment: Deployment, kafka_clients: KafkaClients
) -> None:
    sightings = deployment.catalog.topic_name("sightings-person")
    ran = _zf801(deployment, "checkpointer", "--once")  # everything before is vouched for
    assert ran.returncode == 0, ran.stdout + ran.stderr
    last = {}
    for _, value in _checkpoints(deployment, kafka_clients):
        if value["topic"] == sightings:
            last[value["partition"]] = value
    _publish(deployment, kafka_clients, 4)
    records = [m for m in read_to_end(kafka_clients.settings, sightings)
               if m.offset >= last.get(m.partition, {"end_offset": 0})["end_offset"]]  # fmt: skip
    partition = records[0].partition
    mine = [m for m in records if m.partition == partition]
    start = last[partition]["end_offset"] if partition in last else 0
    # A bus processor's checkpoint of those records as if one had held another value: what
    # a log rewritten after its checkpoint looks like.
    chain = PartitionChain(start, last[partition]["head"] if partition in last else bytes(32))
    for index, message in enumerate(mine):
        chain.add(message if index else message._replace(value=b"rewritten"))
    end = mine[-1].offset + 1
    value = chain.checkpoint_value(sightings, partition, end)
    value |= {"checkpoint_id": str(uuid.uuid4()), "written_at": dt.datetime.now(dt.UTC)}
    signed = deployment.keystore.signer_for(AUDITOR).signed_record(
        CHECKPOINT_SCHEMA, value, key=f"{sightings}:{partition}".encode()
    )
    producer = kafka_clients.producer(AUDITOR)
    try:
        placed = producer.send(
            deployment.catalog.topic_name("checkpoints"), key=signed.key, value=signed.value,
            headers=list(signed.headers),
        ).get(timeout=30)  # fmt: skip
    finally:
        producer.close()

    code, report = _replay(deployment)
    assert code == 2
    assert report["clean"] is False
    assert [(b["topic"], b["partition"], b["offset"], b["reason"]) for b in report["breaks"]] == [
        (placed.topic, placed.partition, placed.offset, "CHECKPOINT_MISMATCH")
    ]
    assert f"{sightings}[{partition}] offsets {start}-{end - 1}" in report["breaks"][0]["detail"]
    assert report["checkpoints"]["failed"] == 1
