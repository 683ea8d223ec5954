"""The operator's read commands against the real broker: ``zf801 deadletters``, ``blocks``
and ``audit tail`` show what is on their topics (hostile text escaped), refuse a reader the
catalog does not let read with an access-denied line, and ``zf801 status`` reports missing
topics and a group's lag, and ``--wait`` returns once the group has caught up."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from consumers.outgoing import OutgoingSigner
from ops.deployment import Deployment
from schemas.codec import default_codec
from schemas.settings import Settings
from sign.kafka_sinks import KafkaAuditSink, KafkaDeadLetterSink
from sign.verify_stage import ConsumedRecord, Rejection
from tests.builders import deployed

if TYPE_CHECKING:
    from tests.conftest import KafkaClients

pytestmark = pytest.mark.integration

_ZF801 = Path(sys.executable).with_name("zf801")
BUS, AUDITOR, TRAFFIC = "BUS-MATCHER", "SPC-COMMAND", "110000110000"
HOSTILE = "\x1b[2J\x1b[31mred\u202eevil"
BLOCKED = "cn.zf801.orders.v1.VehicleTransferBlocked"


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, kafka_settings: Settings
) -> Iterator[Deployment]:
    home = tmp_path_factory.mktemp("operator-reads")
    with deployed(
        home, kafka_settings, (BUS, "BUS-AUDIT", AUDITOR, TRAFFIC, "BJ01"), "opr"
    ) as deployment:
        yield deployment


def _zf801(deployment: Deployment, *args: str, env: dict[str, str] | None = None,
           ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [str(_ZF801), *args], env={**(env or deployment.worker_env()), "COLUMNS": "300"},
        capture_output=True,
        text=True, timeout=90, check=False,
    )  # fmt: skip


def _json_lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def _assert_escaped(output: str) -> None:
    assert "\x1b" not in output and "\u202e" not in output


def test_deadletters_shows_the_refused_record_escaped(
    deployment: Deployment, kafka_clients: KafkaClients
) -> None:
    producer = kafka_clients.producer(BUS)
    try:
        sink = KafkaDeadLetterSink(producer, deployment.catalog.topic_name("dead-letter"),
                                   deployment.keystore.signer_for(BUS))  # fmt: skip
        original = ConsumedRecord(deployment.catalog.topic_name("sightings-person"), 2, 41,
                                  1_700_000_000_000, b"k" * 32, b"junk", ())  # fmt: skip
        sink.write(Rejection(original, "BAD_SIGNATURE", f"forged {HOSTILE}", BUS,
                             dt.datetime.now(dt.UTC), stage="sightings"))  # fmt: skip
    finally:
        producer.close()
    shown = _zf801(deployment, "deadletters", "--as", AUDITOR, "--format", "json")
    assert shown.returncode == 0, shown.stderr
    _assert_escaped(shown.stdout)
    [letter] = _json_lines(shown.stdout)
    assert letter["reason"] == "SIGNATURE_INVALID" and letter["processor"] == BUS
    assert letter["detail"] == f"BAD_SIGNATURE [sightings]: forged {HOSTILE}"
    assert letter["original"] == {"topic": original.topic, "partition": 2, "offset": 41}
    table = _zf801(deployment, "deadletters", "--as", AUDITOR, "--reason", "BAD_SIGNATURE")
    assert table.returncode == 0, table.stderr
    _assert_escaped(table.stdout)
    assert "\\x1b[2J" in table.stdout and "1 dead letter(s)" in table.stdout
    none = _zf801(deployment, "deadletters", "--as", AUDITOR, "--reason", "REPLAYED")
    assert "0 dead letter(s)" in none.stdout


def test_blocks_shows_the_blocked_registration_escaped(
    deployment: Deployment, kafka_clients: KafkaClients
) -> None:
    topic = deployment.catalog.topic_name("vehicle-blocks")
    order_id = str(uuid.uuid4())
    record = {
        "vehicle": {"plate_number": "京A12345", "vin": None},
        "attempted_operation": "MORTGAGE_REGISTRATION", "order_id": order_id,
        "court_code": "BJ01", "seizure_ruling_reference": f"（2026）京01执9号{HOSTILE}",
        "sighting_id": str(uuid.uuid4()), "reporting_unit_code": TRAFFIC,
        "blocked_at": dt.datetime.now(dt.UTC),
    }  # fmt: skip
    signer = OutgoingSigner(deployment.keystore.signer_for(BUS), default_codec())
    signed = signer.sign(topic, BLOCKED, record, key=b"m" * 32, event_id=str(uuid.uuid4()),
                         now=dt.datetime.now(dt.UTC)).record  # fmt: skip
    producer = kafka_clients.producer(BUS)
    try:
        producer.send(topic, key=signed.key, value=signed.value, headers=list(signed.headers))
        producer.flush()
    finally:
        producer.close()
    shown = _zf801(deployment, "blocks", "--as", TRAFFIC, "--format", "json")
    assert shown.returncode == 0, shown.stderr
    _assert_escaped(shown.stdout)
    [block] = _json_lines(shown.stdout)
    assert (block["order_id"], block["plate_number"]) == (order_id, "京A12345")
    assert block["seizure_ruling_reference"] == f"（2026）京01执9号{HOSTILE}"
    table = _zf801(deployment, "blocks", "--as", TRAFFIC)
    _assert_escaped(table.stdout)
    assert "京A12345" in table.stdout and "MORTGAGE_REGISTRATION" in table.stdout


@pytest.mark.parametrize(
    ("command", "reader"),
    [
        (("deadletters",), TRAFFIC),
        (("blocks",), AUDITOR),
        (("audit", "tail"), "BJ01"),
        (("audit", "search"), "BJ01"),
    ],
)
def test_a_reader_the_catalog_does_not_let_read_gets_one_access_denied_line(
    deployment: Deployment, command: tuple[str, ...], reader: str
) -> None:
    refused = _zf801(deployment, *command, "--as", reader)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: access denied: agency {reader} may not read")
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert refused.stdout == ""


def test_audit_tail_shows_the_records_escaped_and_marks_a_chain_break(
    deployment: Deployment, kafka_clients: KafkaClients
) -> None:
    producer = kafka_clients.producer(BUS)
    try:
        sink = KafkaAuditSink(producer, deployment.catalog.topic_name("audit"),
                              deployment.keystore.signer_for(BUS))  # fmt: skip
        for number in range(3):
            sink.record(user=f"clerk{number}{HOSTILE}", role="operator", agency_code=BUS,
                        operation="order.issue", target=f"order/{number}", result="SUCCESS",
                        detail=None)  # fmt: skip
        sink.resume(sink.sequence + 2, sink.previous_hash)  # two records never written
        sink.record(user="clerk3", role="operator", agency_code=BUS, operation="order.issue",
                    target="order/3", result="FAILURE", detail="after the gap")  # fmt: skip
    finally:
        producer.close()
    shown = _zf801(deployment, "audit", "tail", "--as", AUDITOR, "-n", "4", "--agency", BUS,
                   "--format", "json")  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    _assert_escaped(shown.stdout)
    records = _json_lines(shown.stdout)
    assert [r["target"] for r in records] == ["order/0", "order/1", "order/2", "order/3"]
    assert records[0]["user"] == f"clerk0{HOSTILE}"
    assert [r["chain_break"] for r in records] == [None, None, None, "sequence gap: 5 follows 2"]
    table = _zf801(deployment, "audit", "tail", "--as", AUDITOR, "-n", "50")
    assert table.returncode == 0, table.stderr
    _assert_escaped(table.stdout)
    assert "clerk0\\x1b[2J" in table.stdout and "BREAK: sequence gap" in table.stdout
    chains = _zf801(deployment, "audit", "chains", "--as", AUDITOR, "--agency", BUS,
                    "--format", "json")  # fmt: skip
    assert chains.returncode == 2, chains.stderr  # broken
    [broken] = [c for c in _json_lines(chains.stdout) if c["breaks"]]
    assert (broken["first_sequence"], broken["last_sequence"], broken["records"]) == (0, 5, 4)
    assert broken["head"] == "genesis" and "sequence gap: 5 follows 2" in str(broken["breaks"])
    whole = _zf801(deployment, "audit", "chains", "--as", AUDITOR, "--agency", AUDITOR)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert "0 broken" in whole.stdout and "genesis" in whole.stdout
    reads = _zf801(deployment, "audit", "tail", "--as", AUDITOR, "--operation", "deadletters.",
                   "--result", "denied", "--format", "json")  # fmt: skip
    assert {r["agency_code"] for r in _json_lines(reads.stdout)} <= {TRAFFIC}


def test_audit_search_finds_who_saw_a_subject_from_which_client_and_keeps_its_index(
    deployment: Deployment, kafka_clients: KafkaClients, tmp_path: Path
) -> None:
    person, other = "110105198003121238", "440304199005216316"
    producer = kafka_clients.producer("BJ01")
    try:
        sink = KafkaAuditSink(producer, deployment.catalog.topic_name("audit"),
                              deployment.keystore.signer_for("BJ01"))  # fmt: skip
        sink.record(
            user="judge-wang",
            role="court",
            agency_code="BJ01",
            operation="query.ask",
            target=f"query 1 (P1) about {person}",
            result="SUCCESS",
            detail=None,
        )
        sink.record(user=f"judge-li{HOSTILE}", role="court", agency_code="BJ01",
                    operation="query.ask", target=f"query 2 (P5) about {other}",
                    result="SUCCESS", detail=None)  # fmt: skip
        sink.record(user="judge-wang", role="court", agency_code="BJ01",
                    operation="alerts.read", target="zf801.alerts.SH01", result="DENIED",
                    detail=f"another court's stream, asked about {person}")  # fmt: skip
    finally:
        producer.close()
    index = tmp_path / "audit.sqlite"
    refused = _zf801(deployment, "audit", "search", "--as", TRAFFIC, "--index", str(index))
    assert refused.returncode != 0 and "access denied" in refused.stderr.lower()

    def search(*args: str) -> list[dict[str, object]]:
        shown = _zf801(deployment, "audit", "search", "--as", AUDITOR, "--index", str(index),
                       "--format", "json", *args)  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        _assert_escaped(shown.stdout)
        return _json_lines(shown.stdout)

    about = search("--subject", person)
    assert [(r["operation"], r["result"]) for r in about] == [
        ("query.ask", "SUCCESS"), ("alerts.read", "DENIED")]  # fmt: skip
    client = about[0]["client"]
    assert isinstance(client, dict) and client["host"] and client["address"]
    assert client["application"]
    assert [r["target"] for r in search("--agency", "BJ01", "--operation", "query.")] == [
        f"query 1 (P1) about {person}", f"query 2 (P5) about {other}"]  # fmt: skip
    assert search("--subject", other, "--user", "judge-wang") == []
    # every search is audited, this one included (read after its own record), and so is
    # the refused one above (the access test may have added a refusal of its own)
    searches = search("--operation", "audit.search")
    assert [r["agency_code"] for r in searches if r["result"] == "SUCCESS"] == [AUDITOR] * 4
    refusals = [(r["agency_code"], r["result"]) for r in searches if r["result"] != "SUCCESS"]
    assert (TRAFFIC, "DENIED") in refusals and {result for _, result in refusals} == {"DENIED"}
    table = _zf801(deployment, "audit", "search", "--as", AUDITOR, "--index", str(index))
    assert table.returncode == 0, table.stderr
    _assert_escaped(table.stdout)
    assert "judge-li\\x1b[2J" in table.stdout and "Who saw what" in table.stdout
    # every command run as the auditor continued one chain: consecutive, no break
    tail = _zf801(deployment, "audit", "tail", "--as", AUDITOR, "--agency", AUDITOR, "-n", "100",
                  "--format", "json")  # fmt: skip
    chain = _json_lines(tail.stdout)
    assert len(chain) >= 3 and [r["chain_break"] for r in chain] == [None] * len(chain)
    sequences = [int(str(r["sequence"])) for r in chain]
    assert sequences == list(range(sequences[0], sequences[0] + len(chain)))
    bad = _zf801(deployment, "audit", "search", "--as", AUDITOR, "--from", "yesterday")
    assert bad.returncode == 1 and "--from 'yesterday' is neither" in bad.stderr


def test_status_reports_missing_topics(deployment: Deployment) -> None:
    env = {**deployment.worker_env(), "ZF801_TOPIC_PREFIX": f"none{uuid.uuid4().hex[:8]}-"}
    shown = _zf801(deployment, "status", env=env)
    assert shown.returncode == 1, shown.stderr
    assert "missing: none" in shown.stdout and "0 of " in shown.stdout


def test_status_reports_lag_and_wait_returns_once_the_group_caught_up(
    deployment: Deployment, kafka_clients: KafkaClients
) -> None:
    topic = deployment.catalog.topic_name("sightings-person")
    producer = kafka_clients.producer()
    try:
        for number in range(3):
            producer.send(topic, key=b"s" * 32, value=b"sighting %d" % number)
        producer.flush()
    finally:
        producer.close()
    group = f"{deployment.app_id}-sightings"
    behind = _zf801(deployment, "status", "--format", "json")
    assert behind.returncode == 1, behind.stderr
    assert behind.stdout.strip(), behind.stderr
    [report] = _json_lines(behind.stdout)
    assert report["topics"]["missing"] == []  # type: ignore[index]
    lag = {g["group"]: g for g in report["groups"]}  # type: ignore[attr-defined]
    assert lag[group]["lag"][topic] == 3 and lag[group]["caught_up"] is False
    assert lag[deployment.app_id]["caught_up"] is True
    waiting = subprocess.Popen(
        [str(_ZF801), "status", "--wait", "--timeout", "60"], env=deployment.worker_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        admin = kafka_clients.admin()
        try:
            [partition] = {p for (t, p) in _partitions_with_data(kafka_clients, topic)}
            ends = kafka_clients.consumer(group_id=None)
            end = ends.end_offsets([TopicPartition(topic, partition)])
            ends.close()
            admin.alter_group_offsets(
                group, {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in end.items()}
            )
        finally:
            admin.close()
        out, err = waiting.communicate(timeout=90)
    finally:
        waiting.kill()
    # caught up, and answered: no worker runs in this deployment, so not healthy
    assert waiting.returncode == 1, err
    assert "caught up yes" in out and "no worker is running" in out, out


def _partitions_with_data(kafka_clients: KafkaClients, topic: str) -> set[tuple[str, int]]:
    consumer = kafka_clients.consumer(group_id=None)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(parts)
        return {(tp.topic, tp.partition) for tp, end in ends.items() if end > 0}
    finally:
        consumer.close()
