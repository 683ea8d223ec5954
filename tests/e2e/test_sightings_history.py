"""The sightings history against the real broker: police units report a hotel check-in and
a border crossing; the worker forwards them to their province's history; the responders
following it keep them, and a court's P5 and P3 queries get them back. Bad input and
faults: a forged copy, another province's report, malformed values and a copy read twice
written straight onto the history; a responder killed mid-stream and restarted; a unit of
another province reading the history."""

from __future__ import annotations

import contextlib
import re
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition

from consumers.query_source import SqliteQuerySource
from ops.deployment import spawn, stop_group, zf801_command
from producers.routes import outgoing_event
from schemas.envelope import KafkaRecord
from schemas.headers import SIGNATURE_HEADERS
from schemas.tls_layout import ADMIN_NAME
from tests.builders import Records
from tests.e2e.query_bus import QueryBus
from tests.kafka_io import read_to_end
from tests.waiting import wait_for
from topics import clients
from topics.errors import AccessDenied

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PS_BJ, PS_SH, PS_GD = "110000000000", "310000000000", "440000000000"
BORDER_BJ, BORDER_SH = "110000230000", "310000230000"
BORDER = (BORDER_BJ, BORDER_SH, "440100230000", "440300230000")
RESPONDERS = (PS_BJ, PS_SH, PS_GD, *BORDER)  # P5 and P3 of every province
HOTEL = "cn.zf801.sightings.v1.HotelCheckIn"
_WAIT_S = 20.0
_STORED_S = 60.0

Place = tuple[str, int, int]
"""(topic, partition, offset) of a record written."""


@pytest.fixture(scope="module")
def hbus(bus_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryBus]:
    bus = bus_factory()
    bus.start()
    home = tmp_path_factory.mktemp("history")
    log = home / "history-forwarder.log"
    forwarder = spawn(zf801_command("history-forwarder"), bus.worker_env(), log)
    qbus = QueryBus(bus, home, RESPONDERS, {})
    try:
        for unit in RESPONDERS:
            qbus.start(unit, follow_sightings=True)
        yield qbus
    finally:
        qbus.close()
        # SIGTERM: the forwarder finishes its batch, commits and says what it did
        assert stop_group(forwarder) == 0, log.read_text()[-3000:]
        assert re.search(r"history forwarder stopped: \d+ read, [1-9]\d* forwarded",
                         log.read_text()), log.read_text()[-3000:]  # fmt: skip


def _history(hbus: QueryBus, province: str = "11") -> str:
    return hbus.bus.catalog.topic_name("sightings-history", province=province)


def _signed(hbus: QueryBus, unit: str, record: dict[str, Any]) -> KafkaRecord:
    """A check-in as ``unit`` publishes it (checked, encoded, signed), not sent."""
    return hbus.bus.publisher(unit).prepare(outgoing_event(HOTEL, record))[1]


def _write(hbus: QueryBus, topic: str, records: list[KafkaRecord]) -> list[Place]:
    """Write ``records`` onto ``topic`` as they are, with the operator's connection (an
    attacker with broker access, or a copy made twice); their places."""
    producer = clients.kafka_producer(hbus.settings, ADMIN_NAME, linger_ms=20)
    try:
        sent = [
            producer.send(topic, key=r.key, value=r.value, headers=list(r.headers)) for r in records
        ]
        producer.flush()
        return [(topic, meta.partition, meta.offset) for meta in (f.get(30) for f in sent)]
    finally:
        producer.close()


@contextlib.contextmanager
def _db(path: Path) -> Iterator[sqlite3.Connection]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        yield db


def _offsets(path: Path) -> dict[tuple[str, int], int]:
    """The next offset to read per (topic, partition), as the store at ``path`` holds it."""
    with _db(path) as db:
        rows = db.execute("SELECT topic, partition, next_offset FROM history_offsets")
        return {(topic, partition): offset for topic, partition, offset in rows}


def _past(held: dict[tuple[str, int], int], places: list[Place]) -> bool:
    """Whether offsets ``held`` are past every one of ``places``."""
    return all(held.get((topic, partition), 0) > offset for topic, partition, offset in places)


def _stays(path: Path, person: str) -> int:
    with _db(path) as db:
        query = "SELECT count(*) FROM hotel_stays WHERE id_number = ?"
        count: int = db.execute(query, (person,)).fetchone()[0]
    return count


def test_a_reported_check_in_and_crossing_are_answered_to_a_courts_p5_and_p3(
    hbus: QueryBus, records: Records
) -> None:
    person = records.id_number()
    check_in = Records.hotel_check_in(PS_BJ, person)
    crossing = Records.border_crossing(BORDER_BJ, person)
    hbus.bus.publish(PS_BJ, "HotelCheckIn", check_in)
    hbus.bus.publish(BORDER_BJ, "BorderCrossing", crossing)

    def kept() -> bool:
        with _db(hbus.db(BORDER_BJ)) as db:
            query = "SELECT count(*) FROM crossings WHERE id_number = ?"
            crossed = db.execute(query, (person,)).fetchone()[0]
        return _stays(hbus.db(PS_BJ), person) == 1 and crossed == 1

    wait_for(kept, timeout_s=_STORED_S)
    with hbus.client() as client:
        stays = client.ask("P5", Records.query("P5", person), wait_s=_WAIT_S)
        crossings = client.ask("P3", Records.query("P3", person), wait_s=_WAIT_S)

    assert stays.complete and crossings.complete, (stays.missing, crossings.missing)
    assert {u: a.status for u, a in stays.answers.items()} == {
        PS_BJ: "FOUND", PS_SH: "NOT_FOUND", PS_GD: "NOT_FOUND"}  # fmt: skip
    [stay] = stays.merged()["stays"]
    assert (stay["hotel_name"], stay["room"], stay["registered_phone"]) == (
        "如家酒店（朝阳店）", "1203", "13800138000")  # fmt: skip
    assert stays.merged()["person"] == {"name": "李四", "id_number": person}
    assert crossings.answers[BORDER_BJ].status == "FOUND"
    assert {a.status for u, a in crossings.answers.items() if u != BORDER_BJ} == {"NOT_FOUND"}
    [crossed] = crossings.merged()["crossings"]
    assert (crossed["port"], crossed["direction"], crossed["destination_country_or_region"]) == (
        "首都国际机场口岸", "OUT", "THA")  # fmt: skip

    # Forwarded unchanged to Beijing's history only; Beijing's public security keeps
    # only the stay (P5), its border control only the crossing (P3).
    history = {
        str(record["sighting_id"]): headers
        for record, headers, _ in hbus.bus.read_topic("sightings-history", province="11")
    }
    assert {check_in["sighting_id"], crossing["sighting_id"]} <= set(history)
    assert history[check_in["sighting_id"]]["ce_source"] == f"zf801:agency/{PS_BJ}".encode()
    for province in ("31", "44"):
        others = hbus.bus.read_topic("sightings-history", province=province, idle_s=1.0)
        assert not {str(r["sighting_id"]) for r, _, _ in others} & set(history)
    assert _stays(hbus.db(BORDER_BJ), person) == 0


def _unsigned(record: KafkaRecord) -> list[tuple[str, bytes]]:
    return [(name, value) for name, value in record.headers if name not in SIGNATURE_HEADERS]


def _forwarded(hbus: QueryBus, event_id: str) -> KafkaRecord | None:
    """The record the worker forwarded with ``event_id``, as it is on the history; None
    while it is not there."""
    for message in read_to_end(hbus.settings, _history(hbus)):
        if dict(message.headers).get("ce_id") == event_id.encode():
            return KafkaRecord(message.key, message.value, tuple(message.headers))
    return None


def test_hostile_copies_on_the_history_are_refused_and_a_repeated_one_is_kept_once(
    hbus: QueryBus, records: Records
) -> None:
    people = {name: records.id_number() for name in ("forged", "misplaced", "junk", "bad", "twice")}
    genuine = _signed(hbus, PS_BJ, Records.hotel_check_in(PS_BJ, people["forged"]))
    forged = KafkaRecord(genuine.key, genuine.value[:-1] + b"\x00", genuine.headers)
    misplaced = _signed(hbus, PS_SH, Records.hotel_check_in(PS_SH, people["misplaced"]))
    signer = hbus.bus.keystore.signer_for(PS_BJ)
    base = _signed(hbus, PS_BJ, Records.hotel_check_in(PS_BJ, people["junk"]))
    junk = b"\xc3\x01" + bytes(8) + b"not avro"
    signed_junk = KafkaRecord(base.key, junk, tuple(signer.sign(base.key, junk, _unsigned(base))))
    bad = Records.hotel_check_in(PS_BJ, people["bad"])
    bad["person"]["id_number"] = people["bad"][:-1] + ("1" if people["bad"][-1] != "1" else "2")
    broken = signer.signed_record(HOTEL, bad, key=base.key, validate=False)
    twice = hbus.bus.publish(PS_BJ, "HotelCheckIn", Records.hotel_check_in(PS_BJ, people["twice"]))
    forwarded = wait_for(lambda: _forwarded(hbus, twice.event_id), timeout_s=_STORED_S)
    topic = _history(hbus)
    places = _write(hbus, topic, [forged, misplaced, signed_junk, broken])
    copies = _write(hbus, topic, [forwarded, forwarded])  # the same event, twice more

    wait_for(lambda: _past(_offsets(hbus.db(PS_BJ)), places + copies), timeout_s=_STORED_S)
    for name in ("forged", "misplaced", "junk", "bad"):
        assert _stays(hbus.db(PS_BJ), people[name]) == 0, name
    assert _stays(hbus.db(PS_BJ), people["twice"]) == 1
    with _db(hbus.db(PS_BJ)) as db:
        held = "SELECT count(*) FROM history_events WHERE event_id = ?"
        assert db.execute(held, (twice.event_id,)).fetchone()[0] == 1

    refused = {
        (letter["original"]["partition"], letter["original"]["offset"]): letter
        for letter, _, _ in hbus.bus.read_topic("dead-letter", idle_s=2.0)
        if letter["processor"] == PS_BJ and letter["original"]["topic"] == topic
    }
    reasons = [refused[(partition, offset)]["reason"] for _, partition, offset in places]
    assert reasons == ["SIGNATURE_INVALID", "NOT_AUTHORISED", "UNKNOWN_FINGERPRINT",
                       "SCHEMA_VALIDATION"]  # fmt: skip
    misplaced_detail = refused[places[1][1:]]["detail"]
    assert "310000000000 is no police unit of province 11" in misplaced_detail
    assert "[rule history.province]" in misplaced_detail
    assert "[rule id_number.check_char]" in refused[places[3][1:]]["detail"]
    assert not any(place[1:] in refused for place in copies)  # a repeat is no refusal
    audited = {
        record["target"]
        for record, _, _ in hbus.bus.read_topic("audit", idle_s=2.0)
        if record["agency_code"] == PS_BJ and record["operation"] == "event.verify"
    }
    assert {f"{t}/{p}@{o}" for t, p, o in places} <= audited


def test_a_unit_of_another_province_cannot_read_this_provinces_history(hbus: QueryBus) -> None:
    topic = _history(hbus)
    for reader in (PS_SH, BORDER_SH, "110000110000", "BJ01"):  # and no traffic unit, no court
        with pytest.raises(AccessDenied, match=f"agency {reader}.*{re.escape(topic)}.*READ"):
            clients.kafka_reader(hbus.settings, reader, topic).close()
    # Without our library's check, the broker still says no: assign and poll.
    raw = clients.kafka_consumer(hbus.settings, PS_SH, group_id=None, request_timeout_ms=5000)
    try:
        raw.assign([TopicPartition(topic, 0)])
        refused = False
        for _ in range(40):
            assert raw.poll(timeout_ms=250) == {}
            if topic in raw._client.cluster.unauthorized_topics:
                refused = True
                break
        assert refused
    finally:
        raw.close()
    clients.kafka_reader(hbus.settings, PS_SH, _history(hbus, "31")).close()  # its own: yes


def test_a_responder_killed_mid_stream_resumes_without_losing_or_repeating_a_report(
    hbus: QueryBus, records: Records, tmp_path: Path
) -> None:
    unique: dict[str, None] = {}
    while len(unique) < 3000:  # ID numbers drawn at random meet now and then
        unique[records.id_number()] = None
    people = list(unique)
    topic = _history(hbus)
    reports = [_signed(hbus, PS_BJ, Records.hotel_check_in(PS_BJ, p)) for p in people]
    places = _write(hbus, topic, reports)
    db = tmp_path / "responder.sqlite"
    SqliteQuerySource(db).close()  # a new, empty data source
    log = tmp_path / "responder.log"
    command = zf801_command(
        "responder", "--as", PS_BJ, "--db", str(db), "--state", str(tmp_path / "state.sqlite"),
        "--follow-sightings",
    )  # fmt: skip
    env = hbus.bus.worker_env()
    process = spawn(command, env, log)
    try:
        wait_for(lambda: _offsets(db), timeout_s=_STORED_S, interval_s=0.01)
        stop_group(process, signal.SIGKILL)
        at_kill = _offsets(db)
        process = spawn(command, env, log)
        wait_for(lambda: _past(_offsets(db), places), timeout_s=_STORED_S)
    finally:
        stop_group(process)
    assert at_kill and not _past(at_kill, places), "killed after the stream, not in it"
    on_topic = read_to_end(hbus.settings, topic)
    after_kill = [m for m in on_topic if m.offset >= at_kill.get((m.topic, m.partition), 0)]
    # The restarted process read from where the killed one last stored, not before.
    read = [int(n) for n in re.findall(r"sightings history: (\d+) read", log.read_text())]
    assert read == [len(after_kill)], log.read_text()[-3000:]
    with _db(db) as store:
        rows = store.execute("SELECT id_number, count(*) FROM hotel_stays GROUP BY id_number")
        kept = dict(rows.fetchall())
    assert [person for person in people if kept.get(person) != 1] == []
