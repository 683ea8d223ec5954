"""The query half against the real broker: courts ask P1-P5 through the query client and
the CLI; every provincial responder of the acting role answers from its own SQLite data
source; answers reach only the asking court, merged per subject with completeness. Bad
input and faults: hostile queries, a responder down, a responder killed mid-stream, the
same query twice, quotas, and a court reading another court's results."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.responder_state import QuotaLimits
from ops.deployment import spawn, stop_group, zf801_command
from producers.routes import outgoing_event
from schemas.envelope import format_time
from schemas.jsonmap import from_json
from schemas.queries import query_kind
from schemas.registry import default_registry
from schemas.tls_layout import ADMIN_NAME
from tests.builders import Records
from tests.e2e.query_bus import QueryBus
from topics import clients
from topics.errors import AccessDenied

pytestmark = [pytest.mark.e2e]

PERSON = "110105198003121238"  # home province 11: P1 and P2 go to Beijing's PSB
OWNER = PERSON
PS_BJ, PS_SH, PS_GD = "110000000000", "310000000000", "440000000000"
BORDER = ("110000230000", "310000230000", "440100230000", "440300230000")
TRAFFIC = ("110000110000", "310000110000", "440000110000")
UNITS = (PS_BJ, PS_SH, PS_GD, *BORDER, *TRAFFIC)
_WAIT_S = 20.0


_PERSON_ROW = {
    "name": "王建国", "former_names": ["王建军"], "sex": "MALE", "birth_date": "1980-03-12",
    "household_registration_place": "北京市朝阳区建国路街道",
    "address": "北京市朝阳区建国路88号院3号楼2单元501室", "id_number": PERSON,
    "registered_phone": "13812345678",
}  # fmt: skip
_DATA: dict[str, list[tuple[str, dict[str, Any]]]] = {
    PS_BJ: [
        ("person", _PERSON_ROW),
        ("document", {"id_number": PERSON, "document_type": "ORDINARY_PASSPORT",
                      "document_number": "E12345678", "issued_on": "2019-07-01",
                      "valid_until": "2029-06-30",
                      "issuing_authority": "北京市公安局出入境管理局"}),
        ("hotel_stay", {"id_number": PERSON, "name": "王建国",
                        "hotel_name": "如家酒店（北京国贸店）",
                        "hotel_address": "北京市朝阳区建国门外大街甲6号", "room": "0816",
                        "checked_in_at": "2026-02-11T12:30:00.000000Z",
                        "checked_out_at": "2026-02-13T03:05:00.000000Z",
                        "registered_phone": "13812345678"}),
    ],
    PS_GD: [
        ("hotel_stay", {"id_number": PERSON, "name": "王建国", "hotel_name": "广州白云宾馆",
                        "hotel_address": "广州市越秀区环市东路367号", "room": "1203",
                        "checked_in_at": "2026-03-01T10:00:00.000000Z",
                        "checked_out_at": None, "registered_phone": None}),
    ],
    "110000230000": [
        ("person", _PERSON_ROW),
        ("crossing", {"id_number": PERSON, "crossed_at": "2026-01-18T02:41:07.000000Z",
                      "direction": "OUT", "port": "首都机场口岸",
                      "destination_country_or_region": "THA",
                      "document_type": "ORDINARY_PASSPORT", "document_number": "E12345678"}),
    ],
    "440300230000": [
        ("crossing", {"id_number": PERSON, "crossed_at": "2026-01-21T11:05:44.000000Z",
                      "direction": "IN", "port": "罗湖口岸", "destination_country_or_region": None,
                      "document_type": "ORDINARY_PASSPORT", "document_number": "E12345678"}),
    ],
    "310000110000": [
        ("vehicle", {"plate_number": "沪A12345", "brand": "大众", "model": "SVW7183LJD",
                     "vehicle_type": "K33 小型轿车", "vin": "LSVAU218XN2183294",
                     "owner": {"kind": "NATURAL_PERSON", "name": "王建国", "id_number": OWNER,
                               "organisation_code": None},
                     "registering_authority": "上海市公安局交通警察总队车辆管理所",
                     "registered_on": "2022-08-16", "mortgagee": None,
                     "seizing_authority": None, "seizure_document_name": None}),
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def qbus(bus_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryBus]:
    bus = QueryBus(bus_factory(), tmp_path_factory.mktemp("responders"), UNITS, _DATA)
    try:
        for unit in UNITS:
            bus.start(unit)
        yield bus
    finally:
        bus.close()


def _merged(outcome: Any) -> dict[str, Any]:
    assert outcome.complete, (outcome.missing, outcome.answers)
    return outcome.merged()


def test_each_kind_is_answered_by_its_responders_and_merged_per_subject(qbus: QueryBus) -> None:
    with qbus.client() as client:
        identity = client.ask("P1", Records.query("P1", PERSON), wait_s=_WAIT_S)
        documents = client.ask("P2", Records.query("P2", PERSON), wait_s=_WAIT_S)
        crossings = client.ask("P3", Records.query("P3", PERSON), wait_s=_WAIT_S)
        vehicles = client.ask("P4", Records.query("P4", OWNER), wait_s=_WAIT_S)
        stays = client.ask("P5", Records.query("P5", PERSON), wait_s=_WAIT_S)

    assert identity.expected == (PS_BJ,) and identity.status == "FOUND"
    assert _merged(identity)["person"]["household_registration_place"] == "北京市朝阳区建国路街道"
    [document] = _merged(documents)["person"]["documents"]
    assert document["document_number"] == "E12345678"

    assert crossings.expected == BORDER and crossings.complete, crossings.missing
    merged = _merged(crossings)
    assert [c["port"] for c in merged["crossings"]] == ["首都机场口岸", "罗湖口岸"]
    assert merged["registered_phone"] == "13812345678"
    statuses = {unit: answer.status for unit, answer in crossings.answers.items()}
    assert statuses == {"110000230000": "FOUND", "310000230000": "NOT_FOUND",
                        "440100230000": "NOT_FOUND", "440300230000": "FOUND"}  # fmt: skip

    assert [v["vin"] for v in _merged(vehicles)["vehicles"]] == ["LSVAU218XN2183294"]
    assert vehicles.answers["310000110000"].status == "FOUND"

    assert stays.expected == (PS_BJ, PS_SH, PS_GD)
    hotels = [stay["hotel_name"] for stay in _merged(stays)["stays"]]
    assert hotels == ["如家酒店（北京国贸店）", "广州白云宾馆"]
    assert not any(answer.late for answer in stays.answers.values())


def test_no_record_is_an_explicit_answer_from_every_responder(qbus: QueryBus) -> None:
    unknown = Records(11).id_number("110101")
    with qbus.client() as client:
        outcome = client.ask("P5", Records.query("P5", unknown), wait_s=_WAIT_S)
    assert outcome.complete and outcome.status == "NOT_FOUND", outcome.missing
    assert {answer.status for answer in outcome.answers.values()} == {"NOT_FOUND"}


def test_a_responder_down_ends_the_wait_at_the_deadline_naming_it_and_its_answer_comes_late(
    qbus: QueryBus,
) -> None:
    qbus.stop(PS_SH)
    try:
        with qbus.client() as client:
            started = time.monotonic()
            outcome = client.ask("P5", Records.query("P5", PERSON), wait_s=4.0)
            waited = time.monotonic() - started
            assert outcome.missing == (PS_SH,) and outcome.completeness == "2 of 3 answered"
            assert 3.5 <= waited < 15, waited
            qbus.start(PS_SH)
            later = client.answers(outcome.correlation_id, idle_s=1.0)
            deadline = time.monotonic() + _WAIT_S
            while not later.complete and time.monotonic() < deadline:
                later = client.answers(outcome.correlation_id, idle_s=1.0)
    finally:
        if PS_SH not in qbus.running:
            qbus.start(PS_SH)
    assert later.complete and later.late == (PS_SH,)
    assert later.answers[PS_SH].status == "NOT_FOUND"


def _raw_query(qbus: QueryBus, signer: str, kind: str, document: dict[str, Any]) -> str:
    """Publish a query signed by ``signer`` without the client's checks (a hostile or
    broken writer), through the operator's connection so the broker's ACLs do not stop it;
    returns its correlation id."""
    chosen = query_kind(kind)
    now = dt.datetime.now(dt.UTC)
    document = {"correlation_id": str(uuid.uuid4()), "requested_at": format_time(now),
                "deadline": format_time(now + dt.timedelta(minutes=5)), **document}  # fmt: skip
    record = from_json(default_registry().get(chosen.query_schema), document)
    event = outgoing_event(chosen.query_schema, record)
    signed = qbus.bus.keystore.signer_for(signer).signed_record(
        chosen.query_schema, record, key=event.key, validate=False
    )
    producer = clients.kafka_producer(qbus.settings, ADMIN_NAME)
    try:
        producer.send(qbus.bus.catalog.topic_name("query-requests"), key=signed.key,
                      value=signed.value, headers=list(signed.headers)).get(timeout=30)  # fmt: skip
    finally:
        producer.close()
    return str(document["correlation_id"])


def _wait_results(qbus: QueryBus, court: str, ids: set[str], count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + _WAIT_S * 2
    while True:
        results = [r for r in qbus.results(court) if str(r["correlation_id"]) in ids]
        if len(results) >= count or time.monotonic() > deadline:
            return results


def test_hostile_queries_get_a_signed_refusal_or_a_dead_letter_never_an_answer(
    qbus: QueryBus,
) -> None:
    police = _raw_query(qbus, PS_BJ, "P1", Records.query("P1", PERSON))
    foreign = _raw_query(
        qbus, "BJ01", "P1", Records.query("P1", PERSON, case_number="（2026）沪01执5号")
    )
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    expired = _raw_query(
        qbus,
        "BJ01",
        "P1",
        Records.query(
            "P1",
            PERSON,
            requested_at=format_time(past - dt.timedelta(minutes=1)),
            deadline=format_time(past),
        ),
    )
    purpose = _raw_query(qbus, "BJ01", "P1", Records.query("P1", PERSON, subject_role="OTHER"))
    twice = str(uuid.uuid4())
    for _ in range(2):
        _raw_query(qbus, "BJ01", "P1", Records.query("P1", PERSON, correlation_id=twice))
    ids = {police, foreign, expired, purpose, twice}
    results = _wait_results(qbus, "BJ01", ids, 4)
    time.sleep(2.0)  # a second answer to the repeated query, or one to the police's, would show now
    results = [r for r in qbus.results("BJ01") if str(r["correlation_id"]) in ids]
    by_id = {str(r["correlation_id"]): r for r in results}
    assert len(results) == 4, results
    assert police not in by_id
    assert by_id[twice]["status"] == "FOUND"
    for refused, rule in ((foreign, "case_number.court"), (expired, "deadline.expired"),
                          (purpose, "purpose")):  # fmt: skip
        assert by_id[refused]["status"] == "REFUSED"
        assert f"[rule {rule}]" in by_id[refused]["refusal_reason"]
    reasons = Counter(r["reason"] for r, _, _ in qbus.bus.read_topic("dead-letter", idle_s=1.0))
    assert reasons["NOT_AUTHORISED"] >= 4  # the police's query and the three refusals


def test_the_client_refuses_a_bad_query_before_sending_anything(qbus: QueryBus) -> None:
    before = len(qbus.results())
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    bad = [
        (Records.query("P1", "110105198003121230"), r"subject\.id_number.*check_char"),
        (Records.query("P1", PERSON, case_number="（2026）沪01执5号"), r"case_number\.court"),
        (Records.query("P1", PERSON, deadline=format_time(past)), r"deadline"),
        (Records.query("P5", PERSON, subject_role="DEFENDANT"), r"rule purpose"),
        ({**Records.query("P1", PERSON), "subject": None}, r"subject"),
        ({**Records.query("P1", PERSON), "reason": "x" * 5000}, r"reason"),
    ]
    with qbus.client() as client:
        for query, message in bad:
            with pytest.raises(Exception, match=message):
                client.ask("P1" if "stays_from" not in query else "P5", query, wait_s=5)
    assert len(qbus.results()) == before


def test_a_court_cannot_read_another_courts_results(qbus: QueryBus) -> None:
    topic = qbus.bus.catalog.topic_name("query-results", court="BJ01")
    for reader in ("SH01", PS_BJ):
        with pytest.raises(AccessDenied):
            clients.kafka_reader(qbus.settings, reader, topic).close()


def test_beyond_the_quota_a_court_gets_a_refusal_not_silence(qbus: QueryBus) -> None:
    qbus.stop(PS_BJ)
    qbus.start(PS_BJ, limits=QuotaLimits(per_court=2, per_unit=0, window_us=3_600_000_000))
    try:
        with qbus.client() as client:
            outcomes = client.ask_all("P1", [Records.query("P1", PERSON) for _ in range(3)],
                                      wait_s=_WAIT_S)  # fmt: skip
        with qbus.client("SH01") as client:
            shanghai = Records.query("P1", PERSON, court="SH01", case_number="（2026）沪01执5号")
            other = client.ask("P1", shanghai, wait_s=_WAIT_S)
    finally:
        qbus.stop(PS_BJ)
        qbus.start(PS_BJ)
    assert sorted(o.status for o in outcomes) == ["FOUND", "FOUND", "REFUSED"]
    refused = next(o for o in outcomes if o.status == "REFUSED")
    assert "[rule quota]" in refused.answers[PS_BJ].document["refusal_reason"]
    assert other.status == "FOUND"  # another court's quota is its own


def _responder_process(qbus: QueryBus, unit: str, log: Path) -> subprocess.Popen[bytes]:
    command = zf801_command("responder", "--as", unit, "--db", str(qbus.db(unit)))
    return spawn(command, qbus.bus.worker_env(), log)


def test_a_responder_killed_mid_stream_loses_no_query_and_answers_none_twice(
    qbus: QueryBus, tmp_path: Path
) -> None:
    qbus.stop(PS_BJ)
    log = tmp_path / "responder.log"
    process = _responder_process(qbus, PS_BJ, log)
    try:
        qbus.wait_members(PS_BJ, 1)
        court = qbus.bus.publisher("BJ01")
        schema = query_kind("P1").query_schema
        queries = []
        now = dt.datetime.now(dt.UTC)
        for _ in range(150):
            document = Records.query(
                "P1", PERSON, correlation_id=str(uuid.uuid4()), requested_at=format_time(now),
                deadline=format_time(now + dt.timedelta(minutes=5)),
            )  # fmt: skip
            queries.append(from_json(default_registry().get(schema), document))
        court.publish_all([outgoing_event(schema, q) for q in queries])
        ids = {str(q["correlation_id"]) for q in queries}
        deadline = time.monotonic() + _WAIT_S
        while len([r for r in qbus.results() if str(r["correlation_id"]) in ids]) < 20:
            assert time.monotonic() < deadline, log.read_text()
        stop_group(process, signal.SIGKILL)
        process = _responder_process(qbus, PS_BJ, log)
        results = _wait_results(qbus, "BJ01", ids, len(ids))
    finally:
        stop_group(process)
        qbus.start(PS_BJ)
    answered = Counter(str(r["correlation_id"]) for r in results)
    assert set(answered) == ids, (len(ids - set(answered)), log.read_text()[-3000:])
    assert max(answered.values()) == 1, [i for i, n in answered.items() if n > 1]


def test_the_command_line_asks_shows_who_answered_and_reads_answers_back(
    qbus: QueryBus, tmp_path: Path
) -> None:
    query = tmp_path / "query.json"
    query.write_text(json.dumps(Records.query("P5", PERSON), ensure_ascii=False), encoding="utf-8")
    command = [sys.executable, "-c", "from ops.cli import main; main()"]
    env = qbus.bus.worker_env()

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, *arguments], env=env, capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip

    done = run("query", "hotel-stays", "--as", "BJ01", str(query), "--wait", "20",
               "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["completeness"] == "3 of 3 answered" and outcome["status"] == "FOUND"
    assert len(outcome["merged"]["stays"]) == 2
    again = run("answers", outcome["correlation_id"], "--as", "BJ01")
    assert again.returncode == 0, again.stderr
    assert "3 of 3 answered" in again.stdout and "广州白云宾馆" in again.stdout

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"subject": {"id_number": "1"}\n', encoding="utf-8")
    before = len(qbus.results())
    bad = run("query", "P5", "--as", "BJ01", str(broken))
    assert bad.returncode == 1 and "line 1" in bad.stderr, bad.stderr
    assert len(qbus.results()) == before
