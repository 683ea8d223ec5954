"""The synthetic reference data: deterministic, realistic, and every row accepted by the
reference store's checks; a scenario's subjects always on record."""

from __future__ import annotations

import collections
import json
import random
from pathlib import Path

from consumers.query_source import ROW_KINDS, SqliteQuerySource, check_row
from ops.reference_data import generate, rows_for_person, rows_for_vehicle, write_jsonl
from ops.scenario import Subject
from schemas.identifiers import normalise_id_number

DEBTOR = Subject("王建国", id_number="110105198003121238")
CAR = Subject("陈志强", plate_number="粤B12345", vin="LSVAU218XN2183294")


def test_one_seed_gives_the_same_rows_and_another_seed_others() -> None:
    assert list(generate(3000, seed=4)) == list(generate(3000, seed=4))
    assert list(generate(3000, seed=4)) != list(generate(3000, seed=5))


def test_count_rows_of_every_kind_from_several_provinces() -> None:
    rows = list(generate(4000, seed=1))
    assert len(rows) == 4000
    kinds = collections.Counter(kind for kind, _ in rows)
    assert set(kinds) == set(ROW_KINDS)
    assert kinds["person"] > 500
    provinces = {row["id_number"][:2] for kind, row in rows if kind == "person"}
    assert len(provinces) >= 6
    organisations = [r["owner"]["organisation_code"] for k, r in rows if k == "vehicle"]
    assert any(organisations)  # company vehicles beside people's


def test_every_row_passes_the_store_checks_unchanged_in_meaning() -> None:
    for kind, row in generate(3000, seed=2):
        checked = check_row(kind, row)
        if kind == "person":
            assert checked.columns[0] == normalise_id_number(row["id_number"]) == row["id_number"]


def test_the_subjects_come_first_and_are_complete() -> None:
    rows = list(generate(1, seed=3, subjects=[DEBTOR, CAR]))
    assert len(rows) >= 7  # the subjects alone need more than asked: all of them come
    debtor_kinds = {kind for kind, row in rows if DEBTOR.id_number in json.dumps(row)}
    assert debtor_kinds == set(ROW_KINDS)
    vehicles = [row for kind, row in rows if kind == "vehicle"]
    car = next(v for v in vehicles if v["plate_number"] == CAR.plate_number)
    assert car["vin"] == CAR.vin
    assert car["owner"]["name"] == CAR.name
    for kind, row in rows:
        check_row(kind, row)


def test_rows_for_a_person_and_a_vehicle(tmp_path: Path) -> None:
    rng = random.Random(9)
    rows = rows_for_person("440304199005216316", "陈志强", rng)
    rows += rows_for_vehicle("沪A8C123", "LFV2A21K2N3027216", rng)
    with SqliteQuerySource(tmp_path / "store.sqlite") as store:
        for kind, row in rows:
            store.add(kind, row)
        assert store.traveller("440304199005216316") is not None
        assert store.crossings("440304199005216316")
        assert store.hotel_stays("440304199005216316")
        assert store.vehicles(owner_id_number="440304199005216316")
        company = store.vehicles(plate_number="沪A8C123")
        assert company[0]["owner"]["kind"] == "LEGAL_PERSON"
        assert company[0]["registering_authority"].startswith("上海市公安局")


def test_write_jsonl_writes_one_row_per_line(tmp_path: Path) -> None:
    rows = list(generate(50, seed=6))
    path = tmp_path / "rows.jsonl"
    assert write_jsonl(path, rows) == 50
    lines = path.read_text(encoding="utf-8").splitlines()
    read = [json.loads(line) for line in lines]
    assert [(doc.pop("kind"), doc) for doc in read] == rows
