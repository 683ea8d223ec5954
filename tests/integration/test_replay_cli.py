"""``zf801 replay`` against the real broker: a clean range passes with a sealed report
that ``zf801 verify-seal`` accepts; a record signed by a key after its revocation fails
while an earlier one by the same key passes; a tampered record written by a hostile
producer is named by partition and offset; a range before the log start is a gap; bad
options are refused with nothing written; the replay is itself audited."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kafka import TopicPartition

from consumers.runtime import Runtime
from ops import cmd_replay
from ops.deployment import Deployment
from schemas.settings import Settings
from sign.events import EventSigner
from sign.kafka_sinks import KafkaAuditSink
from tests.builders import Records, deployed

if TYPE_CHECKING:
    from tests.conftest import KafkaClients

pytestmark = pytest.mark.integration

_ZF801 = Path(sys.executable).with_name("zf801")
AUDITOR, COMMAND, MATCHER = "BUS-AUDIT", "SPC-COMMAND", "BUS-MATCHER"
POLICE, TRAFFIC, COURT = "110105000000", "110000110000", "BJ01"


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, kafka_settings: Settings
) -> Iterator[Deployment]:
    home = tmp_path_factory.mktemp("replay")
    with deployed(
        home, kafka_settings, (MATCHER, AUDITOR, COMMAND, POLICE, TRAFFIC, COURT), "rpl"
    ) as deployment:
        yield deployment


def _zf801(deployment: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_ZF801), *args], env={**deployment.worker_env(), "COLUMNS": "300"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _publish(
    deployment: Deployment, kafka_clients: KafkaClients, signer: EventSigner,
    *, tamper: bool = False, written_at: dt.datetime | None = None,
) -> tuple[int, int]:  # fmt: skip
    """A signed HotelCheckIn on sightings-person, written by a plain producer (as a hostile
    writer would, when ``tamper`` flips a byte of the value); its partition and offset."""
    now = written_at or dt.datetime.now(dt.UTC)
    sighting = Records().hotel_check_in(signer.agency_code, Records().id_number())
    record = signer.signed_record("HotelCheckIn", sighting, key=uuid.uuid4().bytes * 2, time=now)
    value = record.value or b""
    if tamper:
        value = value[:-1] + bytes([value[-1] ^ 0x01])
    producer = kafka_clients.producer(signer.agency_code)
    try:
        sent = producer.send(
            deployment.catalog.topic_name("sightings-person"), key=record.key, value=value,
            headers=list(record.headers), timestamp_ms=int(now.timestamp() * 1000),
        ).get(timeout=30)  # fmt: skip
    finally:
        producer.close()
    return sent.partition, sent.offset


def _openssl_recipe(document: Path, anchor: Path) -> subprocess.CompletedProcess[str]:
    """The bash block of sign/SEAL-OPENSSL.md, verbatim: OpenSSL and jq only."""
    text = (Path(__file__).resolve().parents[2] / "sign" / "SEAL-OPENSSL.md").read_text("utf-8")
    block = re.search(r"<!-- recipe:begin -->\n```bash\n(.*?)```\n<!-- recipe:end -->", text, re.S)
    assert block is not None
    env = {**os.environ, "DOC": str(document), "SEAL": f"{document}.seal.json",
           "ANCHOR": str(anchor)}  # fmt: skip
    return subprocess.run(["bash", "-c", block.group(1)], env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


def _signer(deployment: Deployment, agency: str) -> EventSigner:
    return deployment.keystore.signer_for(agency)


def test_a_clean_range_passes_with_a_sealed_report(
    deployment: Deployment, kafka_clients: KafkaClients, tmp_path: Path
) -> None:
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    placed = {_publish(deployment, kafka_clients, _signer(deployment, POLICE)) for _ in range(3)}
    out = tmp_path / "report.json"
    clean = _zf801(deployment, "replay", "--topics", "sightings-person", "--topics", "audit",
                   "--from", started.isoformat(), "--verify", "--out", str(out),
                   "--format", "json")  # fmt: skip
    assert clean.returncode == 0, clean.stdout + clean.stderr
    report = _report(clean)
    assert report == json.loads(out.read_text(encoding="utf-8"))
    assert report["clean"] is True and report["breaks"] == [] and report["gaps"] == []
    assert report["reader"] == AUDITOR and report["verified"] is True
    sightings = deployment.catalog.topic_name("sightings-person")
    counted = {(p["partition"], p["records"], p["verified"]) for p in report["partitions"]
               if p["topic"] == sightings and p["records"]}  # fmt: skip
    assert sum(records for _, records, _ in counted) == 3
    assert all(records == verified for _, records, verified in counted)
    assert {p for p, _ in placed} == {p for p, _, _ in counted}
    assert report["chains"] and all(not chain["breaks"] for chain in report["chains"])
    sealed = _zf801(deployment, "verify-seal", str(out))
    assert sealed.returncode == 0, sealed.stdout + sealed.stderr
    assert f"sealed by {AUDITOR}" in sealed.stdout
    if shutil.which("openssl") and shutil.which("jq"):
        anchor = deployment.keystore.directory / "anchors" / "court.pem"
        by_openssl = _openssl_recipe(out, anchor)
        assert by_openssl.returncode == 0, by_openssl.stdout + by_openssl.stderr
        assert f"seal OK: {AUDITOR} signed {out}" in by_openssl.stdout
    table = _zf801(deployment, "replay", "--topics", "sightings-person", "--from",
                   started.isoformat(), "--verify")  # fmt: skip
    assert table.returncode == 0, table.stdout + table.stderr
    assert "3 record(s), 0 break(s), 0 gap(s)" in table.stdout
    audited = _zf801(deployment, "audit", "tail", "--as", COMMAND, "--operation", "replay",
                     "--format", "json")  # fmt: skip
    outcomes = [json.loads(line) for line in audited.stdout.splitlines() if line.strip()]
    assert any(o["result"] == "SUCCESS" and sightings in o["target"] and
               o["detail"].startswith("3 record(s), 0 break(s)") for o in outcomes)  # fmt: skip


def test_to_ends_the_range_before_a_time(
    deployment: Deployment, kafka_clients: KafkaClients
) -> None:
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    signer = _signer(deployment, POLICE)
    inside = {_publish(deployment, kafka_clients, signer) for _ in range(2)}
    boundary = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=5)
    _publish(deployment, kafka_clients, signer, written_at=boundary + dt.timedelta(seconds=1))
    result = _zf801(deployment, "replay", "--topics", "sightings-person", "--from",
                    started.isoformat(), "--to", boundary.isoformat(), "--verify",
                    "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = _report(result)
    assert report["records"] == 2 and report["range"]["to"] == boundary.isoformat()
    read = {(p["partition"], p["to_offset"]) for p in report["partitions"] if p["records"]}
    assert read == {(p, max(o for q, o in inside if q == p)) for p, _ in inside}


def test_a_record_signed_after_its_keys_revocation_fails_and_an_earlier_one_passes(
    deployment: Deployment, kafka_clients: KafkaClients
) -> None:
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    signer = _signer(deployment, TRAFFIC)
    earlier = _publish(deployment, kafka_clients, signer)
    revoked_at = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=500)
    revoke = _zf801(deployment, "keys", "revoke", "--key-id", signer.key_id, "--at",
                    revoked_at.isoformat(), "--reason", "key-compromise", "--publish")  # fmt: skip
    assert revoke.returncode == 0, revoke.stdout + revoke.stderr
    later = _publish(deployment, kafka_clients, signer,
                     written_at=max(dt.datetime.now(dt.UTC), revoked_at))  # fmt: skip
    result = _zf801(deployment, "replay", "--topics", "sightings-person", "--from",
                    started.isoformat(), "--verify", "--format", "json")  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    report = _report(result)
    assert [(b["partition"], b["offset"], b["reason"]) for b in report["breaks"]] == [
        (*later, "KEY_REVOKED")
    ]
    assert earlier != later and report["records"] == 2
    trust = _zf801(deployment, "replay", "--topics", "trust", "--verify", "--format", "json")
    assert trust.returncode == 0, trust.stdout + trust.stderr  # the revocation is sound
    assert _report(trust)["records"] >= 1


def test_a_tampered_record_is_named_by_partition_and_offset(
    deployment: Deployment, kafka_clients: KafkaClients
) -> None:
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    signer = _signer(deployment, POLICE)
    _publish(deployment, kafka_clients, signer)
    partition, offset = _publish(deployment, kafka_clients, signer, tamper=True)
    result = _zf801(deployment, "replay", "--topics", "sightings-person", "--from",
                    started.isoformat(), "--verify")  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "BAD_SIGNATURE" in result.stdout and "2 record(s), 1 break(s)" in result.stdout
    as_json = _report(_zf801(deployment, "replay", "--topics", "sightings-person", "--from",
                             started.isoformat(), "--verify", "--format", "json"))  # fmt: skip
    [found] = as_json["breaks"]
    assert (found["partition"], found["offset"], found["reason"]) == (
        partition, offset, "BAD_SIGNATURE"
    )  # fmt: skip
    dead = _zf801(deployment, "deadletters", "--as", COMMAND, "--format", "json")
    assert dead.returncode == 0 and dead.stdout.strip() == ""  # a replay only reports


def test_a_range_before_the_log_start_is_a_gap(
    deployment: Deployment, kafka_clients: KafkaClients, kafka_admin: Any
) -> None:
    topic = deployment.catalog.topic_name("sightings-person")
    signer = _signer(deployment, POLICE)
    partition, offset = _publish(deployment, kafka_clients, signer)
    _publish(deployment, kafka_clients, signer)
    kafka_admin.delete_records({TopicPartition(topic, partition): offset + 1})
    result = _zf801(deployment, "replay", "--topics", "sightings-person", "--format", "json")
    assert result.returncode == 2, result.stdout + result.stderr
    gaps = {(g["partition"], g["first_offset"], g["last_offset"])
            for g in _report(result)["gaps"]}  # fmt: skip
    assert gaps == {(partition, 0, offset)}
    table = _zf801(deployment, "replay", "--topics", "sightings-person")
    assert f"partition {partition}: offsets 0..{offset} deleted by retention" in table.stdout
    after = _zf801(deployment, "replay", "--topics", "sightings-person", "--from", str(offset + 1),
                   "--format", "json")  # fmt: skip
    assert after.returncode == 0, after.stdout + after.stderr


def test_audit_chains_reaching_into_the_range_are_checked_from_their_start(
    deployment: Deployment, kafka_clients: KafkaClients
) -> None:
    producer = kafka_clients.producer(MATCHER)
    try:
        topic, signer = deployment.catalog.topic_name("audit"), _signer(deployment, MATCHER)
        # Two processes of one agency, each its own chain, both started before the range.
        first, second = (
            KafkaAuditSink(producer, topic, signer),
            KafkaAuditSink(producer, topic, signer),
        )
        for sink, count in ((first, 3), (second, 2)):
            for number in range(count):
                _audit(sink, f"before/{number}")
        boundary = dt.datetime.now(dt.UTC)
        _audit(first, "after/0")
        _audit(second, "after/1")
        second.resume(second.sequence + 2, second.previous_hash)  # two records never written
        _audit(second, "after/2")
    finally:
        producer.close()
    result = _zf801(deployment, "replay", "--topics", "audit", "--from", boundary.isoformat(),
                    "--verify", "--format", "json")  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    report = _report(result)
    assert report["breaks"] == [] and report["clean"] is False
    mine = sorted((c["first_sequence"], c["last_sequence"], c["records"], c["head"])
                  for c in report["chains"] if c["agency_code"] == MATCHER)  # fmt: skip
    assert mine == [(0, 3, 4, "genesis"), (0, 5, 4, "genesis")]
    broken = [b for c in report["chains"] for b in c["breaks"]]
    assert len(broken) == 1 and "sequence gap: 5 follows 2" in broken[0]


def test_by_default_every_topic_the_reader_may_read_is_replayed(deployment: Deployment) -> None:
    started = dt.datetime.now(dt.UTC)
    result = _zf801(deployment, "replay", "--as", COMMAND, "--from", started.isoformat(),
                    "--verify", "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = _report(result)
    assert report["reader"] == COMMAND and report["clean"] is True
    assert set(report["range"]["topic_ids"]) == {
        "enforcement-cases", "dishonest-debtors", "judicial-documents", "hit-confirmations",
        "trust", "dead-letter", "audit", "anomalies", "checkpoints",
        "encounter-confirmations", "escalations",
    }  # fmt: skip
    # The replay's own reads are audited as it starts: in range, on a chain checked whole.
    reads = [c for c in report["chains"] if c["agency_code"] == COMMAND]
    assert reads and all(not c["breaks"] for c in report["chains"])
    assert report["records"] >= len(report["range"]["topic_ids"])


def _audit(sink: KafkaAuditSink, target: str) -> None:
    sink.record(user="clerk", role="bus", agency_code=MATCHER, operation="order.issue",
                target=target, result="SUCCESS", detail=None)  # fmt: skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--topics", "nope"), "--topics 'nope': no topic with id 'nope'"),
        (("--topics", "alerts"), "--topics 'alerts': cannot be replayed"),
        (("--from", "9", "--to", "3"), "--from 9 is after --to 3"),
        (("--from", "2026-11-01T08:00:00Z", "--to", "2026-11-01T07:00:00Z"),
         "is not before --to"),
        (("--from", "2026-13-01"), "--from '2026-13-01': neither an offset"),
        (("--from=-4",), "--from '-4': an offset is 0 or more"),
        (("--out", "/nonexistent-folder/report.json"), "--out /nonexistent-folder/report.json"),
        (("--as", COURT, "--topics", "audit"), f"access denied: agency {COURT} may not read"),
    ],
)  # fmt: skip
def test_bad_options_are_refused_with_nothing_written(
    deployment: Deployment, tmp_path: Path, options: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "report.json"
    args = options if "--out" in options else (*options, "--out", str(out))
    refused = _zf801(deployment, "replay", "--verify", *args)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.startswith("error: ") and message in refused.stderr
    assert "Traceback" not in refused.stderr and refused.stdout == ""
    assert not out.exists() and not out.with_name("report.json.seal.json").exists()


def test_a_pool_of_processes_reports_what_one_process_does(
    deployment: Deployment, kafka_clients: KafkaClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    police = _signer(deployment, POLICE)
    tampered = set()
    for number in range(12):
        placed = _publish(deployment, kafka_clients, police, tamper=number % 4 == 1)
        if number % 4 == 1:
            tampered.add(placed)
    time.sleep(0.05)
    cutoff = dt.datetime.now(dt.UTC)  # before the replays' own audit records
    time.sleep(0.05)
    monkeypatch.setattr(cmd_replay, "_POOL_MINIMUM", 0)  # a pool even for a few records
    runtime = Runtime.connect(AUDITOR, deployment.settings)
    try:
        outcomes = []
        for jobs in (1, 2):
            request = cmd_replay.ReplayRequest(
                AUDITOR, ("sightings-person", "audit"), started, cutoff, verify=True, jobs=jobs
            )
            tally, chains, _ = cmd_replay.run_replay(runtime, request)
            counts = sorted((c.topic, c.partition, c.records, c.verified)
                            for c in tally.counts.values())  # fmt: skip
            # In the report's order: the partitions' records interleave as fetched.
            breaks = [
                b.document()
                for b in sorted(tally.breaks, key=lambda b: (b.topic, b.partition, b.offset))
            ]
            outcomes.append((breaks, counts, [chain["agency_code"] for chain in chains]))
    finally:
        runtime.close()
    single, pooled = outcomes
    assert pooled == single
    sightings = deployment.catalog.topic_name("sightings-person")
    assert {(b["partition"], b["offset"]) for b in single[0] if b["topic"] == sightings} == tampered
    assert len(tampered) == 3


class _Captured:
    """A producer that keeps what a sink sends (to be published later, as an attacker
    replaying captured records would); each send is acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []

    def send(
        self, topic: str, *, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Any:
        self.sent.append((key, value, headers))
        return _Acknowledged()


class _Acknowledged:
    def get(self, timeout: float | None = None) -> None:
        return None


def test_reordered_audit_records_and_two_writers_on_one_chain_are_named(
    deployment: Deployment, kafka_clients: KafkaClients
) -> None:
    topic, signer = deployment.catalog.topic_name("audit"), _signer(deployment, MATCHER)
    boundary = dt.datetime.now(dt.UTC)
    captured = _Captured()
    reordered = KafkaAuditSink(captured, topic, signer)
    for number in range(3):
        _audit(reordered, f"reordered/{number}")
    producer = kafka_clients.producer(MATCHER)
    try:
        # sequence 2 reaches the log before sequence 1 (its timestamp says so)
        base = int(time.time() * 1000)
        for (key, value, headers), at in zip(
            captured.sent, (base, base + 2, base + 1), strict=True
        ):
            producer.send(topic, key=key, value=value, headers=headers, timestamp_ms=at).get(30)
        first = KafkaAuditSink(producer, topic, signer)
        _audit(first, "writer/0")
        second = KafkaAuditSink(producer, topic, signer)
        second.resume(first.sequence, first.previous_hash)  # one chain, two writers
        _audit(first, "writer/1")
        _audit(second, "writer/1 again")
    finally:
        producer.close()
    result = _zf801(deployment, "replay", "--topics", "audit", "--from", boundary.isoformat(),
                    "--verify", "--format", "json")  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    report = _report(result)
    broken = sorted(b for c in report["chains"] if c["agency_code"] == MATCHER for b in c["breaks"])
    assert len(broken) == 2, broken
    assert "sequence 1 follows a record another one already follows" in broken[0]
    assert "previous hash of sequence 2 matches no record read" in broken[1]
