"""``zf801 responder load`` on a small app of its own: JSON lines and CSV files, stdin,
bad rows with and without --skip-bad, malformed and oversized lines; and the CSV row
parser."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from consumers.query_source import SqliteQuerySource
from ops import cmd_responder_load
from ops.cmd_responder_load import load, parse_csv_row
from ops.publish_input import InputError
from ops.reference_data import generate, write_jsonl

UNIT = "110000000000"
PERSON_ID = "110105198003121238"
STAY = {"kind": "hotel_stay", "id_number": PERSON_ID, "name": "王建国",
        "hotel_name": "如家酒店（北京国贸店）", "hotel_address": "北京市朝阳区建国门外大街甲6号",
        "room": "0816", "checked_in_at": "2026-02-11T12:30:00Z"}  # fmt: skip

app = typer.Typer()
app.command("load")(load)


@app.callback()
def _root() -> None:
    """Holds ``load`` as a sub-command, as the real CLI does."""


Invoke = Callable[..., Result]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.sqlite"


@pytest.fixture
def invoke(db: Path) -> Invoke:
    def run(*args: str, stdin: bytes | None = None) -> Result:
        return CliRunner().invoke(app, ["load", "--as", UNIT, "--db", str(db), *args], input=stdin)

    return run


def held(db: Path) -> dict[str, int]:
    with SqliteQuerySource(db, create=False) as store:
        return store.counts()


def stay_at(day: int, **changes: Any) -> dict[str, Any]:
    return {**STAY, "checked_in_at": f"2026-02-{day:02d}T12:30:00Z", **changes}


def jsonl(path: Path, *documents: Any) -> Path:
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents))
    return path


def test_a_jsonl_file_is_loaded_whole(invoke: Invoke, db: Path, tmp_path: Path) -> None:
    rows = list(generate(600, seed=8))
    write_jsonl(tmp_path / "rows.jsonl", rows)
    result = invoke(str(tmp_path / "rows.jsonl"))
    assert result.exit_code == 0, result.output
    assert "stored 600 row(s)" in result.stderr
    assert "0 refused" in result.stderr
    counts = held(db)
    assert sum(counts.values()) <= 600  # a person's document number may repeat another's
    assert counts["person"] == sum(1 for kind, _ in rows if kind == "person")


def test_a_csv_file_with_nested_and_list_columns(invoke: Invoke, db: Path, tmp_path: Path) -> None:
    persons = tmp_path / "persons.csv"
    persons.write_text(
        "\ufeffname,former_names,sex,birth_date,household_registration_place,address,"
        "id_number,registered_phone\n"
        "王建国,王建军|王小军,MALE,1980-03-12,北京市朝阳区建国路街道,,110105198003121238,"
        "13812345678\n"
        '李秀英,,FEMALE,1975-11-08,"上海市浦东新区,陆家嘴街道",,310115197511084029,\n',
        encoding="utf-8",
    )
    vehicles = tmp_path / "vehicles.csv"
    vehicles.write_text(
        "plate_number,brand,model,vehicle_type,vin,owner.kind,owner.name,owner.id_number,"
        "owner.organisation_code,registering_authority,registered_on\n"
        "京A12345,大众,SVW7183LJD,K33 小型轿车,LSVAU218XN2183294,LEGAL_PERSON,"
        "北京恒远商贸有限公司,,91110105MA01C7K5HN,北京市公安局公安交通管理局车辆管理所,"
        "2022-08-16\n",
        encoding="utf-8",
    )
    assert invoke("--kind", "person", str(persons)).exit_code == 0
    result = invoke("--kind", "vehicle", str(vehicles))
    assert result.exit_code == 0, result.output
    with SqliteQuerySource(db, create=False) as store:
        wang = store.identity(PERSON_ID)
        li = store.identity("310115197511084029")
        company = store.vehicles(owner_organisation_code="91110105MA01C7K5HN")
        phone = store.registered_phone(PERSON_ID)
    assert wang is not None and li is not None
    assert (wang["former_names"], wang["address"], phone) == (
        ["王建军", "王小军"],
        None,
        "13812345678",
    )
    assert (li["former_names"], li["household_registration_place"]) == (
        [], "上海市浦东新区,陆家嘴街道",
    )  # fmt: skip
    assert company[0]["owner"] == {
        "kind": "LEGAL_PERSON", "name": "北京恒远商贸有限公司", "id_number": None,
        "organisation_code": "91110105MA01C7K5HN",
    }  # fmt: skip
    assert company[0]["mortgagee"] is None


def test_rows_from_stdin(invoke: Invoke, db: Path) -> None:
    lines = "".join(json.dumps(stay_at(day)) + "\n" for day in (1, 2, 3))
    result = invoke("-", stdin=lines.encode())
    assert result.exit_code == 0, result.output
    assert "stored 3 row(s)" in result.stderr
    assert held(db)["hotel_stay"] == 3


def test_a_bad_row_stops_the_load_naming_file_and_line(
    invoke: Invoke, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cmd_responder_load, "BATCH_ROWS", 2)
    path = jsonl(tmp_path / "stays.jsonl", stay_at(1), stay_at(2), stay_at(3),
                 stay_at(4, id_number="110105198003121239"), stay_at(5))  # fmt: skip
    result = invoke(str(path))
    assert result.exit_code == 1
    assert f"{path}:4: hotel_stay row: id_number:" in result.stderr
    assert "[rule id_number.check_char]" in result.stderr
    assert "the 1 row(s) checked since the last batch are not stored" in result.stderr
    assert held(db)["hotel_stay"] == 2  # the first batch stays; line 3 and 5 are not stored


def test_skip_bad_reports_each_refusal_and_loads_the_rest(
    invoke: Invoke, db: Path, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        json.dumps(stay_at(1)) + "\n"
        + "{not json\n"
        + "[1, 2]\n"
        + json.dumps({**stay_at(2), "kind": "boat"}) + "\n"
        + json.dumps({k: v for k, v in stay_at(3).items() if k != "kind"}) + "\n"
        + json.dumps(stay_at(4, name="王\u0000")) + "\n"
        + "\n"
        + json.dumps(stay_at(5)) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    result = invoke("--skip-bad", str(path))
    assert result.exit_code == 0, result.output
    refusals = [line for line in result.stderr.splitlines() if line.startswith("refused")]
    assert [r.split(": ", 1)[0] for r in refusals] == [
        f"refused {path}:{n}" for n in (2, 3, 4, 5, 6)
    ]
    assert "not valid JSON" in refusals[0]
    assert "expected a JSON object, got array" in refusals[1]
    assert "'boat' is not one of person" in refusals[2]
    assert 'no "kind"' in refusals[3]
    assert "name: contains U+0000" in refusals[4]
    assert "stored 2 row(s)" in result.stderr
    assert "5 refused" in result.stderr
    assert held(db)["hotel_stay"] == 2


def test_kind_option_gives_lines_without_one(invoke: Invoke, db: Path, tmp_path: Path) -> None:
    row = {k: v for k, v in stay_at(1).items() if k != "kind"}
    result = invoke("--kind", "hotel_stay", str(jsonl(tmp_path / "s.jsonl", row)))
    assert result.exit_code == 0, result.output
    assert held(db)["hotel_stay"] == 1


def test_an_oversized_line_is_refused_unread(invoke: Invoke, db: Path, tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    huge = json.dumps(stay_at(2, room="8" * (2 << 20)))
    path.write_text(json.dumps(stay_at(1)) + "\n" + huge + "\n" + json.dumps(stay_at(3)) + "\n")
    stopped = invoke(str(path))
    assert stopped.exit_code == 1
    assert f"{path}:2: longer than 1048576 bytes: refused unread" in stopped.stderr
    skipped = invoke("--skip-bad", str(path))
    assert skipped.exit_code == 0, skipped.output
    assert held(db)["hotel_stay"] == 2


def test_csv_errors_name_the_line(invoke: Invoke, db: Path, tmp_path: Path) -> None:
    path = tmp_path / "stays.csv"
    path.write_bytes(
        b"id_number,hotel_name,hotel_address,checked_in_at\n"
        + f"{PERSON_ID},如家酒店,北京市朝阳区,2026-02-11T12:30:00Z\n".encode()
        + f"{PERSON_ID},如家酒店\n".encode()
        + f"{PERSON_ID},如家酒店,北京市朝阳区,2026-02-12T12:30:00Z,extra\n".encode()
        + b"\xff\xfe,x,y,z\n"
        + f'{PERSON_ID},"{"x" * (1 << 20)}",a,b\n'.encode()
        + f'{PERSON_ID},"unclosed,北京市,2026-02-13T12:30:00Z\n'.encode()
    )
    result = invoke("--kind", "hotel_stay", "--skip-bad", str(path))
    assert result.exit_code == 0, result.output
    refusals = [line for line in result.stderr.splitlines() if line.startswith("refused")]
    assert len(refusals) == 5
    assert f"{path}:3: 2 cells, but the header names 4 columns" in refusals[0]
    assert f"{path}:4: 5 cells" in refusals[1]
    assert f"{path}:5: not valid UTF-8" in refusals[2]
    assert f"{path}:6: longer than 1048576 bytes" in refusals[3]
    assert f"{path}:7: unexpected end of data" in refusals[4]
    assert held(db)["hotel_stay"] == 1


def test_a_csv_missing_a_required_column(invoke: Invoke, db: Path, tmp_path: Path) -> None:
    path = tmp_path / "stays.csv"
    path.write_text(f"id_number,hotel_name,checked_in_at\n{PERSON_ID},如家,2026-02-11T12:30:00Z\n")
    result = invoke("--kind", "hotel_stay", str(path))
    assert result.exit_code == 1
    assert f"{path}:2: hotel_stay row: hotel_address: required field is missing" in result.stderr


def test_a_bad_csv_header_ends_the_file(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "stays.csv"
    path.write_text("owner,owner.kind\nx,y\n")
    result = invoke("--kind", "vehicle", str(path))
    assert result.exit_code == 1
    assert f"{path}:1: header: column 'owner.kind' nests under column 'owner'" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x.csv"], "--kind is needed for CSV"),
        (["--format", "csv", "x.txt"], "--kind is needed for CSV"),
        (["--kind", "boat", "x.jsonl"], "--kind: 'boat' is not one of"),
        (["--format", "xml", "x.jsonl"], "--format: 'xml' is not one of jsonl, csv"),
    ],
)
def test_wrong_options_exit_2(invoke: Invoke, args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_the_unit_must_be_a_police_unit(db: Path) -> None:
    result = CliRunner().invoke(app, ["load", "--as", "BJ01", "--db", str(db), "-"], input=b"")
    assert result.exit_code == 2
    assert "BJ01 is a court agency, not a police unit" in result.stderr
    result = CliRunner().invoke(app, ["load", "--as", "999", "--db", str(db), "-"], input=b"")
    assert result.exit_code == 2
    assert "--as: agency '999' is not in the agency list" in result.stderr


def test_an_empty_input_and_a_missing_file_fail(invoke: Invoke, tmp_path: Path) -> None:
    empty = invoke("-", stdin=b"")
    assert empty.exit_code == 1
    assert "no rows in the input" in empty.stderr
    missing = invoke(str(tmp_path / "absent.jsonl"))
    assert missing.exit_code == 1
    assert "cannot read" in missing.stderr


def test_parse_csv_row_nests_splits_and_nulls() -> None:
    header = ["plate_number", "owner.kind", "owner.name", "owner.id_number", "former_names"]
    assert parse_csv_row(header, ["京A12345", "NATURAL_PERSON", "王建国", "", "甲|乙"]) == {
        "plate_number": "京A12345",
        "owner": {"kind": "NATURAL_PERSON", "name": "王建国", "id_number": None},
        "former_names": ["甲", "乙"],
    }
    assert parse_csv_row(["former_names", "address"], ["", ""]) == {
        "former_names": [], "address": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("header", "cells", "message"),
    [
        (["a", "b"], ["1"], "1 cells, but the header names 2 columns"),
        (["a", "a"], ["1", "2"], "column 'a' is named twice"),
        (["a", "a.b"], ["1", "2"], "column 'a.b' nests under column 'a'"),
    ],
)
def test_parse_csv_row_refuses_what_cannot_be_a_row(
    header: list[str], cells: list[str], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        parse_csv_row(header, cells)
