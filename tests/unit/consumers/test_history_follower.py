"""A responder keeping its province's sightings history (consumers.history_follower): real
keys and signatures, in-memory dead-letter and audit sinks, a SQLite store, no broker."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from consumers.history_follower import SightingFollower
from consumers.query_source import SqliteQuerySource
from consumers.runtime import Runtime
from producers.publisher import Publisher
from producers.routes import outgoing_event
from schemas.errors import BusError
from schemas.headers import SIGNATURE_HEADERS
from schemas.settings import Settings
from sign.keystore import KeyStore
from sign.verify_stage import ConsumedRecord, MemoryAuditSink, MemoryDeadLetterSink
from tests.builders import Records, trust_set

PS_BJ, CHAOYANG, BORDER_BJ = "110000000000", "110105000000", "110000230000"
PS_SH, TRAFFIC_BJ = "310000000000", "110000110000"
PERSON = "11010519491231002X"
NS = "cn.zf801.sightings.v1."
HOTEL, CROSSING = NS + "HotelCheckIn", NS + "BorderCrossing"
CHECKED_IN = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    codes = (PS_BJ, CHAOYANG, BORDER_BJ, PS_SH, TRAFFIC_BJ, "BJ01")
    return trust_set(tmp_path_factory.mktemp("follower"), codes)


class Unit:
    """One police unit's follower, its sinks and its store."""

    def __init__(self, keystore: KeyStore, code: str, path: Path) -> None:
        self.keystore = keystore
        self.settings = Settings(home=keystore.directory.parent)
        self.dead_letters, self.audit = MemoryDeadLetterSink(), MemoryAuditSink()
        self.runtime = Runtime.from_keystore(
            code, self.dead_letters, self.audit, settings=self.settings, keystore=keystore
        )
        self.store = SqliteQuerySource(path)
        self.follower = SightingFollower(self.runtime, self.store)
        self.offset = 0

    def topic(self, province: str = "11") -> str:
        return self.runtime.catalog.topic_name("sightings-history", province=province)

    def copy(self, signer: str, schema: str, record: dict[str, Any], province: str = "11"
             ) -> ConsumedRecord:  # fmt: skip
        """``record`` as ``signer`` publishes it, as read from ``province``'s history."""
        publisher = Publisher(
            self.keystore.signer_for(signer), catalog=self.runtime.catalog, settings=self.settings
        )
        _, signed = publisher.prepare(outgoing_event(schema, record))
        self.offset += 1
        return ConsumedRecord(self.topic(province), 1, self.offset, 0, signed.key,
                              signed.value, tuple(signed.headers))  # fmt: skip

    def unchecked(self, signer: str, record: dict[str, Any], like: ConsumedRecord
                  ) -> ConsumedRecord:  # fmt: skip
        """A check-in ``signer`` signs as it is, without the publisher's checks (a broken or
        hostile writer), read where ``like`` was."""
        signed = self.keystore.signer_for(signer).signed_record(
            HOTEL, record, key=like.key, validate=False
        )
        self.offset += 1
        return replace(like, offset=self.offset, value=signed.value, headers=signed.headers)

    def reasons(self) -> list[tuple[str, str]]:
        return [(r.reason, r.detail) for r in self.dead_letters.rejections]


@pytest.fixture
def unit(units: KeyStore, tmp_path: Path) -> Iterator[Any]:
    def make(code: str) -> Unit:
        made.append(Unit(units, code, tmp_path / f"{code}.sqlite"))
        return made[-1]

    made: list[Unit] = []
    yield make
    for each in made:
        each.store.close()


def _check_in(unit: str = PS_BJ, **fields: Any) -> dict[str, Any]:
    return {**Records.hotel_check_in(unit, PERSON, CHECKED_IN), **fields}


def test_a_check_in_is_kept_as_a_hotel_stay_with_the_place_reached(unit: Any) -> None:
    ps = unit(PS_BJ)
    read = ps.copy(PS_BJ, HOTEL, _check_in())
    assert ps.follower.store_batch([read]) == 1
    assert ps.store.hotel_stays(PERSON) == [{
        "hotel_name": "如家酒店（朝阳店）", "hotel_address": "北京市朝阳区建国路88号",
        "room": "1203", "checked_in_at": "2026-03-01T10:00:00.000000Z",
        "checked_out_at": None, "registered_phone": "13800138000",
    }]  # fmt: skip
    assert ps.store.person_ref(PERSON) == {"name": "李四", "id_number": PERSON}
    assert ps.store.history_offsets() == {(ps.topic(), 1): read.offset + 1}
    assert ps.follower.counts == {"read": 1, "stored": 1, "repeated": 0, "passed": 0,
                                  "refused": 0}  # fmt: skip
    assert ps.dead_letters.rejections == []


def test_a_copy_read_again_is_kept_once_and_never_undoes_a_later_check_out(unit: Any) -> None:
    ps = unit(PS_BJ)
    read = ps.copy(PS_BJ, HOTEL, _check_in())
    assert ps.follower.store_batch([read, read]) == 1
    [stay] = ps.store.hotel_stays(PERSON)
    ps.store.add("hotel_stay", {**stay, "id_number": PERSON,
                                "checked_out_at": "2026-03-02T02:00:00Z"})  # fmt: skip
    assert ps.follower.store_batch([replace(read, offset=read.offset + 7)]) == 0
    [stay] = ps.store.hotel_stays(PERSON)
    assert stay["checked_out_at"] == "2026-03-02T02:00:00.000000Z"
    assert (ps.follower.counts["stored"], ps.follower.counts["repeated"]) == (1, 2)
    assert ps.store.history_offsets() == {(ps.topic(), 1): read.offset + 8}


def test_each_unit_keeps_what_its_role_answers_from(unit: Any) -> None:
    ps, border = unit(PS_BJ), unit(BORDER_BJ)
    crossing = Records.border_crossing(BORDER_BJ, PERSON, CHECKED_IN)
    reports = [ps.copy(PS_BJ, HOTEL, _check_in()), ps.copy(BORDER_BJ, CROSSING, crossing)]
    assert ps.follower.store_batch(reports) == 1
    assert border.follower.store_batch(reports) == 1
    assert (ps.store.crossings(PERSON), len(ps.store.hotel_stays(PERSON))) == ([], 1)
    assert border.store.hotel_stays(PERSON) == []
    [kept] = border.store.crossings(PERSON)
    assert (kept["port"], kept["direction"], kept["document_number"]) == (
        "首都国际机场口岸", "OUT", "E12345678")  # fmt: skip
    assert ps.follower.counts["passed"] == border.follower.counts["passed"] == 1
    # Both moved past both records: the next start is after them.
    assert ps.store.history_offsets() == border.store.history_offsets()


def test_a_report_out_of_its_place_is_refused_naming_the_rule(unit: Any) -> None:
    ps = unit(PS_BJ)
    shanghai = ps.copy(PS_SH, HOTEL, _check_in(PS_SH))  # genuine, onto Beijing's history
    claimed = ps.unchecked(PS_BJ, _check_in(CHAOYANG), shanghai)  # naming another unit
    encounter = {**Records.hotel_check_in(PS_BJ, PERSON), "kind": "PATROL", "place": "朝阳"}
    for name in ("hotel_name", "hotel_address", "room", "checked_in_at", "expected_check_out",
                 "registered_phone"):  # fmt: skip
        encounter.pop(name)
    patrol = ps.copy(PS_BJ, NS + "PersonEncounter", encounter)
    assert ps.follower.store_batch([shanghai, claimed, patrol]) == 0
    reasons = ps.reasons()
    assert [reason for reason, _ in reasons] == ["MISPLACED", "AGENCY_MISMATCH", "MISPLACED"]
    assert "310000000000 is no police unit of province 11" in reasons[0][1]
    assert "[rule history.province]" in reasons[0][1]
    assert "[rule reporter]" in reasons[1][1]
    assert "[rule value-schemas]" in reasons[2][1]
    offsets = [read.offset for read in (shanghai, claimed, patrol)]
    assert [rejection.record.offset for rejection in ps.audit.rejections] == offsets
    assert {r.stage for r in ps.dead_letters.rejections} == {"sightings-history"}
    assert ps.store.counts()["hotel_stay"] == 0
    assert ps.store.history_offsets() == {(ps.topic(), 1): patrol.offset + 1}
    assert ps.follower.counts["refused"] == 3


def _unsigned(read: ConsumedRecord) -> list[tuple[str, bytes]]:
    return [(name, value) for name, value in read.headers if name not in SIGNATURE_HEADERS]


def test_a_forged_or_malformed_report_is_refused_and_not_kept(unit: Any) -> None:
    ps = unit(PS_BJ)
    genuine = ps.copy(PS_BJ, HOTEL, _check_in())
    flipped = replace(genuine, value=genuine.value[:-1] + bytes([genuine.value[-1] ^ 1]))
    signer = ps.keystore.signer_for(PS_BJ)
    junk = b"\xc3\x01" + b"\x00" * 8 + b"not avro"
    headers = tuple(signer.sign(genuine.key, junk, _unsigned(genuine)))
    signed_junk = replace(genuine, value=junk, headers=headers)
    bad_id = _check_in(person={"name": "李四", "id_number": PERSON[:-1] + "1"})
    broken = ps.unchecked(PS_BJ, bad_id, genuine)
    assert ps.follower.store_batch([flipped, signed_junk, broken]) == 0
    reasons = ps.reasons()
    assert [reason for reason, _ in reasons] == [
        "BAD_SIGNATURE", "UNKNOWN_FINGERPRINT", "SCHEMA_VALIDATION"]  # fmt: skip
    assert "id_number" in reasons[2][1] and "[rule id_number.check_char]" in reasons[2][1]
    assert ps.store.counts()["hotel_stay"] == 0


def test_a_unit_follows_the_provinces_its_rule_names_if_its_role_reads_the_history(
    unit: Any,
) -> None:
    assert dict(unit(PS_BJ).follower.topics) == {unit(PS_BJ).topic("11"): "11"}
    assert list(unit(CHAOYANG).follower.topics.values()) == ["11"]
    for code in (TRAFFIC_BJ, "BJ01"):
        with pytest.raises(BusError, match=r"follows no sightings history: it is read by "
                                           r"border-control, public-security units"):  # fmt: skip
            unit(code)
