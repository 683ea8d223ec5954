"""The responder's decisions on real signed queries (real keys, verify stage and SQLite
source; the producer is a stand-in that keeps what was sent)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from consumers.query_source import SqliteQuerySource
from consumers.responder import Responder, result_event_id
from consumers.responder_state import QuotaLimits, ResponderState
from consumers.runtime import Runtime
from producers.publisher import Publisher
from producers.routes import outgoing_event
from schemas.codec import default_codec
from schemas.envelope import format_time
from schemas.jsonmap import from_json
from schemas.queries import query_kind
from schemas.registry import default_registry
from schemas.settings import Settings
from sign.keystore import KeyStore
from sign.verify_stage import MemoryAuditSink, MemoryDeadLetterSink
from tests.builders import Records, trust_set

UNIT = "110000000000"
PERSON = "110105198003121238"
_HOUR_US = 3_600_000_000


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    return trust_set(tmp_path_factory.mktemp("responder"), ("BJ01", "SH01", UNIT, "110000230000"))


class _Producer:
    """Keeps what the publisher sends (topic, key, value, headers)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]] = []

    def send(self, topic: str, *, key: bytes | None, value: bytes, headers: Any) -> None:
        self.sent.append((topic, key, value, headers))

    def flush(self, timeout: float | None = None) -> None:
        return None

    def close(self, timeout: float | None = None) -> None:
        return None


class Fixture:
    def __init__(self, keys: KeyStore, tmp_path: Path, limits: QuotaLimits) -> None:
        self.settings = Settings(home=keys.directory.parent)
        self.keys = keys
        self.dead_letters, self.audit = MemoryDeadLetterSink(), MemoryAuditSink()
        self.runtime = Runtime.from_keystore(
            UNIT, self.dead_letters, self.audit, settings=self.settings, keystore=keys
        )
        self.source = SqliteQuerySource(tmp_path / "source.sqlite")
        self.source.add("person", {
            "name": "王建国", "former_names": ["王建军"], "sex": "MALE", "birth_date": "1980-03-12",
            "household_registration_place": "北京市朝阳区建国路街道", "address": None,
            "id_number": PERSON,
        })  # fmt: skip
        self.state_path = tmp_path / "state.sqlite"
        self.limits = limits
        self.producer = _Producer()
        self.responder = self._responder()
        self.offset = 0

    def _responder(self) -> Responder:
        publisher = Publisher(
            self.keys.signer_for(UNIT), catalog=self.runtime.catalog, settings=self.settings,
            producer=self.producer,  # type: ignore[arg-type]
        )  # fmt: skip
        state = ResponderState(self.state_path, self.limits)
        return Responder(self.runtime, self.source, state, publisher=publisher)

    def restart(self) -> None:
        self.responder.state.close()
        self.responder = self._responder()

    def message(self, signer: str, kind: str, document: dict[str, Any]) -> Any:
        """A query record as consumed, signed by ``signer`` (no edge checks: a hostile
        writer's record is possible)."""
        chosen = query_kind(kind)
        now = dt.datetime.now(dt.UTC)
        document = {
            "correlation_id": str(uuid.uuid4()), "requested_at": format_time(now),
            "deadline": format_time(now + dt.timedelta(minutes=5)), **document,
        }  # fmt: skip
        record = from_json(default_registry().get(chosen.query_schema), document)
        event = outgoing_event(chosen.query_schema, record)
        signed = self.keys.signer_for(signer).signed_record(
            chosen.query_schema, record, key=event.key, validate=False
        )
        self.offset += 1
        return SimpleNamespace(
            topic=self.runtime.catalog.topic_name("query-requests"), partition=0,
            offset=self.offset, timestamp=int(now.timestamp() * 1000), key=signed.key,
            value=signed.value, headers=list(signed.headers),
        )  # fmt: skip

    def answers(self) -> list[tuple[str, dict[str, Any]]]:
        """(topic, decoded result) of everything sent so far."""
        return [
            (topic, default_codec().decode(value)[1]) for topic, _, value, _ in self.producer.sent
        ]


@pytest.fixture
def bus(keys: KeyStore, tmp_path: Path) -> Fixture:
    return Fixture(keys, tmp_path, QuotaLimits(per_court=2, per_unit=0, window_us=_HOUR_US))


def test_an_identity_on_record_is_answered_found_to_the_asking_courts_stream(bus: Fixture) -> None:
    message = bus.message("BJ01", "P1", Records.query("P1", PERSON))
    replies = bus.responder.answer_batch([message])
    [(topic, result)] = bus.answers()
    assert topic == bus.runtime.catalog.topic_name("query-results", court="BJ01")
    assert result["status"] == "FOUND" and result["person"]["name"] == "王建国"
    assert result["answering_unit_code"] == UNIT
    headers = dict(bus.producer.sent[0][3])
    assert headers["ce_id"].decode() == result_event_id(replies[0].correlation_id, UNIT)
    assert [op["result"] for op in bus.audit.operations] == ["SUCCESS"]
    assert PERSON in bus.audit.operations[0]["target"]


def test_no_record_is_an_explicit_answer(bus: Fixture) -> None:
    other = Records(7).id_number()
    bus.responder.answer_batch([bus.message("BJ01", "P1", Records.query("P1", other))])
    [(_, result)] = bus.answers()
    assert result["status"] == "NOT_FOUND" and result["person"] is None


def test_a_query_for_another_province_is_passed_over_without_a_trace(bus: Fixture) -> None:
    shanghai = Records(3).id_number("310115")
    bus.responder.answer_batch([bus.message("BJ01", "P1", Records.query("P1", shanghai))])
    assert (
        bus.producer.sent == [] and bus.audit.operations == [] and not bus.dead_letters.rejections
    )


def test_the_same_correlation_id_is_answered_once_also_after_a_restart(bus: Fixture) -> None:
    query = Records.query("P1", PERSON, correlation_id=str(uuid.uuid4()))
    bus.responder.answer_batch([bus.message("BJ01", "P1", query), bus.message("BJ01", "P1", query)])
    bus.restart()
    bus.responder.answer_batch([bus.message("BJ01", "P1", query)])
    assert len(bus.producer.sent) == 1
    assert bus.responder.counts["repeated"] == 1
    assert [op["result"] for op in bus.audit.operations][-1] == "FAILURE"


def test_a_query_signed_by_a_police_key_is_dead_lettered_and_not_answered(bus: Fixture) -> None:
    bus.responder.answer_batch([bus.message("110000230000", "P1", Records.query("P1", PERSON))])
    assert bus.producer.sent == []
    [rejection] = bus.dead_letters.rejections
    assert rejection.reason == "ROLE_NOT_ALLOWED"


def _refusal(
    bus: Fixture, signer: str, query: dict[str, Any], reason: str, rule: str
) -> dict[str, Any]:
    kind = "P4" if "owner" in query else "P5" if "stays_from" in query else "P1"
    bus.responder.answer_batch([bus.message(signer, kind, query)])
    [(topic, result)] = bus.answers()
    assert result["status"] == "REFUSED", result
    assert f"[rule {rule}]" in result["refusal_reason"], result["refusal_reason"]
    assert topic == bus.runtime.catalog.topic_name("query-results", court=signer)
    [rejection] = bus.dead_letters.rejections
    assert rejection.reason == reason
    assert bus.audit.operations[-1]["result"] == "DENIED"
    return result


def test_a_query_citing_another_courts_case_number_gets_a_signed_refusal(bus: Fixture) -> None:
    query = Records.query("P1", PERSON, case_number="（2026）沪01执5号")
    _refusal(bus, "BJ01", query, "QUERY_REFUSED", "case_number.court")


def test_a_court_asking_in_another_courts_name_is_refused_to_itself(bus: Fixture) -> None:
    query = Records.query("P1", PERSON, court="SH01", case_number="（2026）沪01执5号")
    result = _refusal(bus, "BJ01", query, "AGENCY_MISMATCH", "sender")
    assert result["requesting_court_code"] == "BJ01"


def test_a_query_for_a_purpose_its_kind_does_not_serve_is_refused(bus: Fixture) -> None:
    query = Records.query("P5", PERSON, subject_role="DEFENDANT")
    _refusal(bus, "BJ01", query, "QUERY_REFUSED", "purpose")


def test_a_query_sent_after_its_deadline_is_refused(bus: Fixture) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    query = Records.query("P1", PERSON, requested_at=format_time(past - dt.timedelta(minutes=1)),
                          deadline=format_time(past))  # fmt: skip
    _refusal(bus, "BJ01", query, "QUERY_REFUSED", "deadline.expired")


def test_a_malformed_identifier_from_a_hostile_writer_is_refused_naming_it(bus: Fixture) -> None:
    query = Records.query("P1", PERSON[:-1] + ("0" if PERSON[-1] != "0" else "1"))
    _refusal(bus, "BJ01", query, "QUERY_REFUSED", "id_number.check_char")


def test_beyond_the_courts_quota_a_query_is_refused_and_the_count_survives_a_restart(
    bus: Fixture,
) -> None:
    asked = [bus.message("BJ01", "P1", Records.query("P1", PERSON)) for _ in range(2)]
    bus.responder.answer_batch(asked)
    bus.restart()
    bus.responder.answer_batch([bus.message("BJ01", "P1", Records.query("P1", PERSON))])
    statuses = [result["status"] for _, result in bus.answers()]
    assert statuses == ["FOUND", "FOUND", "REFUSED"]
    assert "[rule quota]" in bus.answers()[-1][1]["refusal_reason"]


def test_refusals_do_not_use_up_the_quota(bus: Fixture) -> None:
    bad = Records.query("P5", PERSON, subject_role="DEFENDANT")
    bus.responder.answer_batch([bus.message("BJ01", "P5", bad) for _ in range(3)])
    bus.responder.answer_batch([bus.message("BJ01", "P1", Records.query("P1", PERSON))])
    assert [result["status"] for _, result in bus.answers()] == ["REFUSED"] * 3 + ["FOUND"]


def test_only_a_police_unit_answers(keys: KeyStore) -> None:
    runtime = Runtime.from_keystore(
        "BJ01", MemoryDeadLetterSink(), MemoryAuditSink(),
        settings=Settings(home=keys.directory.parent), keystore=keys,
    )  # fmt: skip
    with pytest.raises(Exception, match="no police unit"):
        Responder(runtime, None)  # type: ignore[arg-type]


class _ForeignSource:
    """A province's own adapter (no ``rows_checked``): it returns what its database holds."""

    def __init__(self, name: str) -> None:
        self.name = name

    def identity(self, id_number: str) -> dict[str, Any] | None:
        return {"name": self.name, "former_names": [], "sex": "MALE", "birth_date": "1980-03-12",
                "household_registration_place": "北京市朝阳区", "address": None,
                "id_number": id_number.lower(), "photo": None, "photo_sha256": None,
                "photo_media_type": None}  # fmt: skip

    def close(self) -> None:
        return None


def _foreign(bus: Fixture, name: str) -> Responder:
    publisher = Publisher(
        bus.keys.signer_for(UNIT), catalog=bus.runtime.catalog, settings=bus.settings,
        producer=bus.producer,  # type: ignore[arg-type]
    )  # fmt: skip
    state = ResponderState(bus.state_path.with_name("foreign.sqlite"), bus.limits)
    return Responder(bus.runtime, _ForeignSource(name), state, publisher=publisher)  # type: ignore[arg-type]


def test_a_foreign_sources_answer_goes_through_the_edge_rules(bus: Fixture) -> None:
    person = "110105198003121254"  # born 1980-03-12, male: what the foreign source says
    responder = _foreign(bus, "王建国")
    responder.answer_batch([bus.message("BJ01", "P1", Records.query("P1", person))])
    [(_, result)] = bus.answers()
    assert result["status"] == "FOUND" and result["person"]["id_number"] == person


def test_a_malformed_value_from_a_source_becomes_a_refusal_and_the_responder_goes_on(
    bus: Fixture,
) -> None:
    responder = _foreign(bus, "王\u202e建国")
    asked = [bus.message("BJ01", "P1", Records.query("P1", PERSON)) for _ in range(2)]
    responder.answer_batch(asked)
    statuses = [result["status"] for _, result in bus.answers()]
    assert statuses == ["REFUSED", "REFUSED"]
    assert "[rule answer.invalid]" in bus.answers()[0][1]["refusal_reason"]


def test_a_correlation_id_is_the_asking_courts_another_court_reusing_it_is_answered(
    bus: Fixture,
) -> None:
    shared = str(uuid.uuid4())
    beijing = Records.query("P1", PERSON, correlation_id=shared)
    shanghai = Records.query("P1", PERSON, correlation_id=shared, court="SH01",
                             case_number="（2026）沪01执5号")  # fmt: skip
    bus.responder.answer_batch([bus.message("BJ01", "P1", beijing)])
    bus.responder.answer_batch([bus.message("SH01", "P1", shanghai)])
    courts = [result["requesting_court_code"] for _, result in bus.answers()]
    assert courts == ["BJ01", "SH01"]
