"""The reference data store of the police responders: every kind stored and found again,
each lookup, upserts, and rows refused (with the field and rule named) before storage."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import pickle
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.query_source import (
    CheckedRow,
    QuerySourceError,
    SourceRowError,
    SqliteQuerySource,
    check_row,
)
from schemas.identifiers import vin_check_digit
from schemas.jsonmap import from_json
from schemas.registry import EXAMPLE_DIR, default_registry
from schemas.settings import Settings

NS = "cn.zf801.police.v1."
ENVELOPE = {
    "correlation_id": "5084c078-7c8c-51ed-93eb-be076d863bab",
    "requesting_court_code": "BJ01",
    "answering_unit_code": "110000000000",
    "status": "FOUND",
    "refusal_reason": None,
    "answered_at": "2026-03-03T03:20:00.000000Z",
}


def example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLE_DIR / "police" / f"{name}.json").read_text())
    return document


def validates(schema_name: str, fields: dict[str, Any]) -> None:
    """A result built from the store's fragments is a valid result record."""
    schema = default_registry().get(NS + schema_name)
    schema.validate(from_json(schema, {**ENVELOPE, **fields}))


@pytest.fixture
def source(tmp_path: Path) -> Iterator[SqliteQuerySource]:
    with SqliteQuerySource(tmp_path / "responder" / "110000000000.sqlite") as store:
        yield store


IDENTITY = example("IdentityResult")["person"]
PERSON_ID = IDENTITY["id_number"]
TRAVELLER = example("ExitEntryDocumentResult")["person"]
CROSSINGS = example("BorderCrossingResult")["crossings"]
VEHICLE = example("VehicleRegistrationResult")["vehicles"][0]
STAY = example("HotelStayResult")["stays"][0]
OWNER_ID = "110105198003121238"


def with_check_digit(vin: str) -> str:
    return vin[:8] + vin_check_digit(vin) + vin[9:]


def person_vehicle(vin: str, plate: str) -> dict[str, Any]:
    owner = {"kind": "NATURAL_PERSON", "name": "王建国", "id_number": OWNER_ID,
             "organisation_code": None}  # fmt: skip
    return {**VEHICLE, "vin": with_check_digit(vin), "plate_number": plate, "owner": owner}


def stay_at(when: str, hotel: str = "如家酒店（北京国贸店）") -> dict[str, Any]:
    return {**STAY, "hotel_name": hotel, "checked_in_at": when, "checked_out_at": None}


def test_every_kind_is_found_again_as_a_valid_result_fragment(source: SqliteQuerySource) -> None:
    source.add("person", {**IDENTITY, "registered_phone": "+86 138 1234 5678"})
    documents = TRAVELLER["documents"]
    source.add_many("document", [{"id_number": PERSON_ID, **d} for d in documents])
    source.add_many("crossing", [{"id_number": PERSON_ID, **c} for c in reversed(CROSSINGS)])
    source.add("vehicle", VEHICLE)
    source.add("hotel_stay", {"id_number": PERSON_ID, "name": "王建国", **STAY})

    assert source.identity(PERSON_ID) == IDENTITY
    traveller = source.traveller(PERSON_ID)
    assert traveller is not None
    assert traveller["documents"] == sorted(documents, key=lambda d: d["document_type"])
    assert {k: traveller[k] for k in ("name", "sex", "birth_date")} == {
        "name": "王建国", "sex": "MALE", "birth_date": "1980-03-12",
    }  # fmt: skip
    assert source.crossings(PERSON_ID) == CROSSINGS  # ordered by crossed_at
    assert source.registered_phone(PERSON_ID) == "13812345678"  # normalised
    assert source.vehicles(plate_number="京A12345") == [VEHICLE]
    assert source.hotel_stays(PERSON_ID) == [STAY]
    assert source.person_ref(PERSON_ID) == {"name": "王建国", "id_number": PERSON_ID}
    assert source.counts() == {
        "person": 1, "document": 2, "crossing": 2, "vehicle": 1, "hotel_stay": 1,
    }  # fmt: skip

    validates("IdentityResult", {"person": source.identity(PERSON_ID)})
    validates("ExitEntryDocumentResult", {"person": traveller})
    validates("BorderCrossingResult", {
        "person": traveller, "crossings": source.crossings(PERSON_ID),
        "registered_phone": source.registered_phone(PERSON_ID),
    })  # fmt: skip
    validates("VehicleRegistrationResult", {"vehicles": source.vehicles(plate_number="京A12345")})
    validates("HotelStayResult", {
        "person": source.person_ref(PERSON_ID), "stays": source.hotel_stays(PERSON_ID),
    })  # fmt: skip


def test_rows_are_stored_normalised_with_defaults_and_found_by_any_spelling(
    source: SqliteQuerySource,
) -> None:
    bare = {k: IDENTITY[k] for k in ("name", "household_registration_place")}
    bare["birth_date"] = "1949-12-31"  # as the ID number below encodes
    source.add("person", {**bare, "id_number": "11010519491231002x"})
    assert source.identity("11010519491231002X") == {
        **bare, "id_number": "11010519491231002X", "former_names": [], "sex": "UNKNOWN",
        "address": None, "photo": None, "photo_sha256": None, "photo_media_type": None,
    }  # fmt: skip
    assert source.identity(" 11010519491231002x ") is not None
    source.add("vehicle", {**VEHICLE, "plate_number": "京a 12345"})
    assert [v["plate_number"] for v in source.vehicles(plate_number="京Ａ12345")] == ["京A12345"]


def test_nothing_on_record_is_none_or_empty(source: SqliteQuerySource) -> None:
    unknown = "310115197511084029"
    assert source.identity(unknown) is None
    assert source.traveller(unknown) is None
    assert source.crossings(unknown) == []
    assert source.registered_phone(unknown) is None
    assert source.vehicles(plate_number="沪A00001", owner_id_number=unknown) == []
    assert source.vehicles() == []
    assert source.hotel_stays(unknown) == []
    assert source.person_ref(unknown) is None
    assert source.identity("not an id number") is None


def test_a_traveller_without_documents_has_an_empty_list(source: SqliteQuerySource) -> None:
    source.add("person", IDENTITY)
    traveller = source.traveller(PERSON_ID)
    assert traveller is not None
    assert traveller["documents"] == []
    assert source.registered_phone(PERSON_ID) is None


def test_vehicles_match_any_criterion_once_ordered_by_vin(source: SqliteQuerySource) -> None:
    company = VEHICLE  # owned by 91110105MA01C7K5HN, plate 京A12345
    first = person_vehicle("LSVAU2180N2183291", "京B54321")
    second = person_vehicle("LFV2A21K5N3027216", "京C11111")
    source.add_many("vehicle", [company, first, second])

    def vins(**criteria: str) -> list[str]:
        return [v["vin"] for v in source.vehicles(**criteria)]

    assert vins(plate_number="京B54321") == [first["vin"]]
    assert vins(owner_id_number=OWNER_ID) == sorted([first["vin"], second["vin"]])
    assert vins(owner_organisation_code="91110105MA01C7K5HN") == [company["vin"]]
    assert vins(
        plate_number="京B54321",  # also owned by OWNER_ID: listed once
        owner_id_number=OWNER_ID,
        owner_organisation_code="91110105MA01C7K5HN",
    ) == sorted(v["vin"] for v in (company, first, second))


def test_hotel_stays_within_a_window_in_check_in_order(source: SqliteQuerySource) -> None:
    times = ["2026-03-01T10:00:00.000000Z", "2026-01-05T10:00:00.000000Z",
             "2026-02-01T10:00:00.000000Z"]  # fmt: skip
    source.add_many("hotel_stay", [{"id_number": PERSON_ID, **stay_at(t)} for t in times])

    def stays(since: dt.datetime | None, until: dt.datetime | None) -> list[str]:
        return [s["checked_in_at"] for s in source.hotel_stays(PERSON_ID, since, until)]

    assert stays(None, None) == sorted(times)
    feb = dt.datetime(2026, 2, 1, 10, tzinfo=dt.UTC)
    assert stays(feb, None) == sorted(times)[1:]  # the bounds are inclusive
    assert stays(None, feb) == sorted(times)[:2]
    assert stays(feb, feb + dt.timedelta(days=20)) == [times[2]]
    beijing = dt.timezone(dt.timedelta(hours=8))
    assert stays(dt.datetime(2026, 2, 1, 18, tzinfo=beijing), feb) == [times[2]]
    with pytest.raises(ValueError, match="timezone-aware"):
        source.hotel_stays(PERSON_ID, since=dt.datetime(2026, 1, 1))


def test_person_ref_from_the_identity_or_the_latest_stay(source: SqliteQuerySource) -> None:
    guest = "310115197511084029"
    source.add(
        "hotel_stay", {"id_number": guest, "name": "李秀英", **stay_at(STAY["checked_in_at"])}
    )
    source.add("hotel_stay", {"id_number": guest, "name": "李秀",
                              **stay_at("2026-01-01T00:00:00Z")})  # fmt: skip
    source.add("hotel_stay", {"id_number": guest, **stay_at("2026-02-20T00:00:00Z")})
    assert source.person_ref(guest) == {"name": "李秀英", "id_number": guest}
    source.add(
        "person",
        {
            **IDENTITY,
            "id_number": guest,
            "name": "李秀英二",
            "sex": "FEMALE",
            "birth_date": "1975-11-08",
        },
    )  # as the guest's ID number encodes
    assert source.person_ref(guest) == {"name": "李秀英二", "id_number": guest}


def test_a_row_added_again_replaces_what_is_held(source: SqliteQuerySource) -> None:
    source.add("person", IDENTITY)
    source.add("person", {**IDENTITY, "address": "北京市海淀区中关村大街27号"})
    crossing = {"id_number": PERSON_ID, **CROSSINGS[0]}
    source.add_many("crossing", [crossing, crossing])
    source.add("crossing", {**crossing, "id_number": PERSON_ID.lower()})
    stay = {"id_number": PERSON_ID, **STAY, "checked_out_at": None}
    source.add_many("hotel_stay", [stay, stay])
    source.add("hotel_stay", {**stay, "checked_out_at": STAY["checked_out_at"]})

    assert source.counts() == {
        "person": 1, "document": 0, "crossing": 1, "vehicle": 0, "hotel_stay": 1,
    }  # fmt: skip
    identity = source.identity(PERSON_ID)
    assert identity is not None
    assert identity["address"] == "北京市海淀区中关村大街27号"
    assert source.hotel_stays(PERSON_ID) == [STAY]  # the check-out recorded later


def test_the_lists_hold_at_most_the_schema_limit_the_latest_ones(
    source: SqliteQuerySource,
) -> None:
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    rows = [
        {"id_number": PERSON_ID, **CROSSINGS[0],
         "crossed_at": (start + dt.timedelta(hours=i)).isoformat()}
        for i in range(1003)
    ]  # fmt: skip
    source.add_many("crossing", rows)
    held = source.crossings(PERSON_ID)
    assert len(held) == 1000
    assert held[0]["crossed_at"] == "2020-01-01T03:00:00.000000Z"
    assert held[-1]["crossed_at"] == "2020-02-11T18:00:00.000000Z"


def without(row: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != name}


BAD_ROWS = [
    ("person", without(IDENTITY, "household_registration_place"),
     "household_registration_place", "required"),
    ("person", {**IDENTITY, "id_number": "110105198003121239"},
     "id_number", "id_number.check_char"),
    ("person", {**IDENTITY, "name": "王建\x1b[2J国"}, "name", "text.characters"),
    ("person", {**IDENTITY, "name": "王\u202e国"}, "name", "text.characters"),
    ("person", {**IDENTITY, "address": "路" * 257}, "address", "zf801.maxLength"),
    ("person", {**IDENTITY, "sex": "M"}, "sex", "symbol"),
    ("person", {**IDENTITY, "birth_date": "1980-02-30"}, "birth_date", "json"),  # no such day
    ("person", {**IDENTITY, "registered_phone": "12368"}, "registered_phone",
     "phone.format"),
    ("person", {**IDENTITY, "nickname": "小王"}, "", "unknown_field"),
    ("document", {**TRAVELLER["documents"][0]}, "id_number", "required"),
    ("document", {"id_number": PERSON_ID, **TRAVELLER["documents"][0],
                  "document_type": "PASSPORT"}, "document_type", "symbol"),
    ("crossing", {"id_number": PERSON_ID, **CROSSINGS[0],
                  "crossed_at": "0001-01-01T00:00:00Z"}, "crossed_at", "time.too_early"),
    ("crossing", {"id_number": PERSON_ID, **CROSSINGS[0],
                  "crossed_at": "2026-01-18T02:41:07"}, "crossed_at", "json"),
    ("crossing", {"id_number": PERSON_ID, **CROSSINGS[0],
                  "destination_country_or_region": "HK"},
     "destination_country_or_region", "country_or_region.format"),
    ("vehicle", {**VEHICLE, "vin": "LSVAU218XN2183295"}, "vin", "vin.check_digit"),
    ("vehicle", {**VEHICLE, "owner": {**VEHICLE["owner"], "name": None}}, "owner.name", "type"),
    ("vehicle", without(VEHICLE, "owner"), "owner", "required"),
    ("hotel_stay", {"id_number": PERSON_ID, "name": "王\x00", **STAY}, "name",
     "text.characters"),
    ("hotel_stay", {"id_number": PERSON_ID, **STAY, "room": "8" * 65}, "room",
     "zf801.maxLength"),
    ("hotel_stay", {"id_number": PERSON_ID, **STAY, "checked_in_at": "2999-01-01T00:00:00Z"},
     "checked_in_at", "time.too_late"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "row", "field", "rule"), BAD_ROWS)
def test_a_bad_row_is_refused_naming_field_and_rule(
    source: SqliteQuerySource, kind: str, row: dict[str, Any], field: str, rule: str
) -> None:
    with pytest.raises(SourceRowError) as refused:
        source.add(kind, row)
    assert (refused.value.kind, refused.value.field, refused.value.rule) == (kind, field, rule)
    assert str(refused.value).startswith(f"{kind} row: {field or '<row>'}: ")
    assert set(source.counts().values()) == {0}


def test_one_bad_row_stores_none_of_its_batch(source: SqliteQuerySource) -> None:
    good = {"id_number": PERSON_ID, **CROSSINGS[0]}
    bad = {**good, "direction": "SIDEWAYS"}
    with pytest.raises(SourceRowError, match=r"crossing row: direction: .*\[rule symbol\]"):
        source.add_many("crossing", [good, bad])
    assert source.counts()["crossing"] == 0


@pytest.mark.parametrize(
    ("kind", "row", "field", "rule"),
    [
        ("boat", {}, "kind", "kind.unknown"),
        ("person", ["not", "a", "row"], "", "type"),
        ("person", {**IDENTITY, "former_names": [{"deep": [1]}]}, "former_names[0]", "type"),
        ("vehicle", {**VEHICLE, "owner": "nobody"}, "owner", "type"),
    ],
)
def test_hostile_shapes_are_refused_not_crashed_on(
    kind: str, row: Any, field: str, rule: str
) -> None:
    with pytest.raises(SourceRowError) as refused:
        check_row(kind, row)
    assert (refused.value.field, refused.value.rule) == (field, rule)


def test_the_row_error_survives_pickling() -> None:
    error = SourceRowError("person", "name", "text.characters", "contains U+0000")
    copied = pickle.loads(pickle.dumps(error))
    assert (copied.kind, copied.field, copied.rule, str(copied)) == (
        "person", "name", "text.characters", str(error),
    )  # fmt: skip


def test_checking_does_not_change_the_caller_row() -> None:
    row = {**VEHICLE, "owner": dict(VEHICLE["owner"])}
    before = copy.deepcopy(row)
    check_row("vehicle", row)
    assert row == before


def test_the_file_is_in_wal_mode_and_keeps_its_data_when_reopened(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "store.sqlite"
    with SqliteQuerySource(path) as store:
        store.add("person", IDENTITY)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with SqliteQuerySource(path, create=False) as store:
        assert store.identity(PERSON_ID) == IDENTITY


def test_a_missing_or_foreign_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(QuerySourceError, match="no reference data"):
        SqliteQuerySource(tmp_path / "missing.sqlite", create=False)
    assert not (tmp_path / "missing.sqlite").exists()
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(QuerySourceError, match="not a SQLite database"):
        SqliteQuerySource(garbage)
    foreign = tmp_path / "foreign.sqlite"
    with contextlib.closing(sqlite3.connect(foreign)) as db:
        db.execute("PRAGMA user_version = 7")
    with pytest.raises(QuerySourceError, match="of this version"):
        SqliteQuerySource(foreign)
    with pytest.raises(QuerySourceError, match="a folder, not a file"):
        SqliteQuerySource(tmp_path)  # a folder


def test_the_default_path_is_under_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert SqliteQuerySource.default_path(settings, "110000000000") == (
        tmp_path / "responder" / "110000000000.sqlite"
    )
    with pytest.raises(ValueError, match="not a unit code"):
        SqliteQuerySource.default_path(settings, "../../etc/passwd")


# --- the sightings history a responder follows --------------------------------------------
TOPIC = "zf801.sightings.history.11"


def test_history_rows_are_kept_once_per_event_id_with_the_offsets(
    source: SqliteQuerySource,
) -> None:
    first = check_row("hotel_stay", {"id_number": PERSON_ID, **stay_at("2026-03-01T10:00:00Z")})
    second = check_row("crossing", {"id_number": PERSON_ID, **CROSSINGS[0]})
    assert source.add_history([("e1", first), ("e2", second)], {(TOPIC, 0): 5}) == 2
    assert source.add_history([("e1", first), ("e3", first)], {(TOPIC, 0): 7, (TOPIC, 2): 1}) == 1
    assert source.history_offsets() == {(TOPIC, 0): 7, (TOPIC, 2): 1}
    assert source.counts()["hotel_stay"] == source.counts()["crossing"] == 1


def test_a_failed_history_batch_stores_neither_rows_nor_offsets(
    source: SqliteQuerySource,
) -> None:
    good = check_row("hotel_stay", {"id_number": PERSON_ID, **stay_at("2026-03-01T10:00:00Z")})
    broken = CheckedRow("hotel_stay", ("too", "few"))
    with pytest.raises(sqlite3.Error):
        source.add_history([("e1", good), ("e2", broken)], {(TOPIC, 0): 9})
    assert source.history_offsets() == {}
    assert source.counts()["hotel_stay"] == 0
    assert source.add_history([("e1", good)], {(TOPIC, 0): 9}) == 1  # e1 was not kept


def test_a_store_of_version_1_is_brought_up_to_date_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    with SqliteQuerySource(path) as store:
        store.add("person", IDENTITY)
    with contextlib.closing(sqlite3.connect(path)) as db:  # as version 1 left it
        db.executescript(
            "DROP TABLE history_events; DROP TABLE history_offsets; PRAGMA user_version = 1;"
        )
    row = check_row("crossing", {"id_number": PERSON_ID, **CROSSINGS[0]})
    with SqliteQuerySource(path, create=False) as store:
        assert store.identity(PERSON_ID) == IDENTITY
        assert store.history_offsets() == {}
        assert store.add_history([("e1", row)], {(TOPIC, 1): 3}) == 1
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    with SqliteQuerySource(path, create=False) as store:
        assert store.history_offsets() == {(TOPIC, 1): 3}


@pytest.mark.parametrize(
    ("kind", "row", "field", "rule"),
    [
        ("person", {**IDENTITY, "birth_date": "1990-01-01"}, "birth_date", "birth_date.id_number"),
        ("person", {**IDENTITY, "sex": "FEMALE"}, "sex", "sex.id_number"),
        ("hotel_stay", {"id_number": PERSON_ID, "name": "王建国", **STAY,
                        "checked_out_at": "2000-01-01T00:00:00Z"}, "checked_out_at",
         "check_out.order"),
    ],
    ids=["birth-date", "sex", "check-out"],
)  # fmt: skip
def test_a_row_contradicting_its_id_number_or_its_own_times_is_refused(
    source: SqliteQuerySource, kind: str, row: dict[str, Any], field: str, rule: str
) -> None:
    """Such rows would be signed and sent to courts as answers."""
    with pytest.raises(SourceRowError) as info:
        source.add(kind, row)
    assert (info.value.field, info.value.rule) == (field, rule), str(info.value)
    assert source.identity(PERSON_ID) is None and source.hotel_stays(PERSON_ID) == []


def test_a_vehicle_query_answers_the_owners_vehicles_and_a_plate_only_narrows(
    source: SqliteQuerySource,
) -> None:
    """A court that names a debtor and another person's plate learns nothing of that
    person: the plate narrows the owner's vehicles, it never adds one."""
    from consumers.query_answers import _look_up  # noqa: PLC0415 - the answer's own lookup
    from schemas.queries import query_kind  # noqa: PLC0415

    theirs = person_vehicle("LSVAU2180N2183291", "京B54321")
    someone = {"kind": "NATURAL_PERSON", "name": "郝莉", "id_number": "110112199411273167",
               "organisation_code": None}  # fmt: skip
    stranger = {**person_vehicle("LFV2A21K5N3027216", "京H80M95"), "owner": someone}
    source.add_many("vehicle", [theirs, stranger])
    p4 = query_kind("P4")
    owner = {"kind": "NATURAL_PERSON", "name": "王建国", "id_number": OWNER_ID,
             "organisation_code": None}  # fmt: skip

    def plates(plate: str | None) -> list[str]:
        found = _look_up(p4, {"owner": owner, "plate_number": plate}, source)["vehicles"]
        return [v["plate_number"] for v in found]

    assert plates(None) == ["京B54321"]
    assert plates("京B54321") == ["京B54321"]
    assert plates("京H80M95") == []  # the stranger's car: not in the owner's answer
