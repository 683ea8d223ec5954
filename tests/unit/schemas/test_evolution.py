"""Full compatibility by the Avro resolution rules, and ``zf801 schemas check`` against git."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ops.cli import app
from schemas.evolution import full_compatibility, reader_incompatibilities
from schemas.history import check_against_ref
from schemas.registry import SCHEMA_DIR, default_registry


def record(*fields: dict[str, Any], name: str = "Sighting", **extra: Any) -> dict[str, Any]:
    return {
        "type": "record",
        "name": name,
        "namespace": "cn.zf801.test.v1",
        "fields": list(fields),
        **extra,
    }


def field(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def enum(symbols: list[str], **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "Kind", "symbols": symbols, **extra}


def rules(old: dict[str, Any], new: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(i.direction, i.path, i.rule) for i in full_compatibility(old, new)}


BASE = record(field("id", "string"), field("count", "int"))


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        # adding a field: only with a default
        (
            record(
                field("id", "string"),
                field("count", "int"),
                field("note", ["null", "string"], default=None),
            ),
            set(),
        ),
        (
            record(field("id", "string"), field("count", "int"), field("note", "string")),
            {("backward", "note", "field_added_without_default")},
        ),
        # removing a field: only if the old reader had a default for it
        (record(field("id", "string")), {("forward", "count", "field_removed_without_default")}),
        # renaming without alias is a removal plus an addition
        (
            record(field("id", "string"), field("total", "int")),
            {
                ("backward", "total", "field_added_without_default"),
                ("forward", "count", "field_removed_without_default"),
            },
        ),
        # an alias lets the new reader find the old field, but old readers still miss it
        (
            record(field("id", "string"), field("total", "int", aliases=["count"])),
            {("forward", "count", "field_removed_without_default")},
        ),
        # promotion works one way only
        (
            record(field("id", "string"), field("count", "long")),
            {("forward", "count", "type_changed")},
        ),
        (record(field("id", "bytes"), field("count", "int")), set()),
        (
            record(field("id", "string"), field("count", "string")),
            {("backward", "count", "type_changed"), ("forward", "count", "type_changed")},
        ),
        # a required field becoming optional: old readers cannot read null
        (
            record(field("id", "string"), field("count", ["null", "int"], default=None)),
            {("forward", "count", "union_branch")},
        ),
        # logical types change the meaning of the same bytes
        (
            record(field("id", {"type": "string", "logicalType": "uuid"}), field("count", "int")),
            {("backward", "id", "logical_type_changed"), ("forward", "id", "logical_type_changed")},
        ),
        # record renamed without alias
        (
            record(field("id", "string"), field("count", "int"), name="Encounter"),
            {("backward", "", "name_changed"), ("forward", "", "name_changed")},
        ),
        (
            record(
                field("id", "string"), field("count", "int"), name="Encounter", aliases=["Sighting"]
            ),
            {("forward", "", "name_changed")},
        ),
        # documentation and custom properties do not matter
        (
            record(
                field("id", {"type": "string", "zf801.maxLength": 8}, doc="x"),
                field("count", "int"),
            ),
            set(),
        ),
    ],
)
def test_field_rules(new: dict[str, Any], expected: set[tuple[str, str, str]]) -> None:
    assert rules(BASE, new) == expected


def test_removing_a_field_that_had_a_default_is_fine() -> None:
    old = record(field("id", "string"), field("note", ["null", "string"], default=None))
    assert rules(old, record(field("id", "string"))) == set()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (enum(["A", "B"], default="A"), enum(["A", "B", "C"], default="A"), set()),
        (enum(["A", "B"]), enum(["A", "B", "C"]), {("forward", "kind", "enum_symbol_added")}),
        (enum(["A", "B"]), enum(["A"]), {("backward", "kind", "enum_symbol_removed")}),
        (enum(["A", "B"], default="A"), enum(["A"], default="A"), set()),
        (
            {"type": "fixed", "name": "Digest", "size": 32},
            {"type": "fixed", "name": "Digest", "size": 20},
            {("backward", "kind", "fixed_size_changed"), ("forward", "kind", "fixed_size_changed")},
        ),
        (
            {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2},
            {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 4},
            {
                ("backward", "kind", "logical_type_changed"),
                ("forward", "kind", "logical_type_changed"),
            },
        ),
        (
            {"type": "array", "items": "int"},
            {"type": "array", "items": "long"},
            {("forward", "kind[]", "type_changed")},
        ),
        ({"type": "map", "values": "string"}, {"type": "map", "values": "bytes"}, set()),
        (["null", "string"], ["null", "string", "long"], {("forward", "kind", "union_branch")}),
        (["null", "string", "long"], ["null", "string"], {("backward", "kind", "union_branch")}),
    ],
)
def test_type_rules(old: Any, new: Any, expected: set[tuple[str, str, str]]) -> None:
    assert rules(record(field("kind", old)), record(field("kind", new))) == expected


def test_nested_paths_are_named() -> None:
    handler = {"type": "record", "name": "CaseHandler", "fields": [field("name", "string")]}
    new_handler = copy.deepcopy(handler)
    new_handler["fields"].append(field("phone", "string"))
    issues = full_compatibility(
        record(field("handler", handler)), record(field("handler", new_handler))
    )
    assert [(i.path, i.rule) for i in issues] == [("handler.phone", "field_added_without_default")]
    assert "handler.phone" in str(issues[0]) and "backward" in str(issues[0])


def test_reader_incompatibilities_one_direction() -> None:
    old, new = BASE, record(field("id", "string"))
    assert reader_incompatibilities(new, old) == []
    assert [i.rule for i in reader_incompatibilities(old, new, "forward")] == [
        "field_removed_without_default"
    ]


def test_every_shipped_schema_is_compatible_with_itself() -> None:
    for schema in default_registry():
        assert full_compatibility(schema.raw, schema.raw) == []


def test_adding_an_optional_field_to_a_shipped_schema_is_compatible() -> None:
    old = dict(default_registry().get("HotelCheckIn").raw)
    new = copy.deepcopy(old)
    new["fields"].append({"name": "floor", "type": ["null", "int"], "default": None, "doc": "楼层"})
    assert full_compatibility(old, new) == []


# ---- zf801 schemas check against a temporary git repository ------------------------------


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repo holding a copy of the shipped schemas in one commit."""
    shutil.copytree(SCHEMA_DIR, tmp_path / "schemas" / "avro")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "schemas")
    return tmp_path / "schemas" / "avro"


def _edit(path: Path, change: Any) -> None:
    raw = json.loads(path.read_text("utf-8"))
    change(raw)
    path.write_text(json.dumps(raw, ensure_ascii=False, indent=2), encoding="utf-8")


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["schemas", "check", *args])
    return result.exit_code, result.output


def test_check_passes_on_an_unchanged_tree(repo: Path) -> None:
    code, output = _run("--dir", str(repo))
    assert code == 0, output
    assert "41 unchanged" in output and "fully compatible" in output


def test_check_fails_on_an_incompatible_change(repo: Path) -> None:
    def add_required(raw: dict[str, Any]) -> None:
        raw["fields"].append({"name": "room_rate", "type": "long"})

    _edit(repo / "sightings" / "HotelCheckIn.avsc", add_required)
    code, output = _run("--dir", str(repo), "--ref", "HEAD")
    assert code == 1, output
    assert "room_rate" in output and "field_added_without_default" in output
    report = check_against_ref("HEAD", repo)
    assert report.changed == ["sightings/HotelCheckIn.avsc"] and not report.ok


def test_check_fails_when_an_enum_symbol_is_removed(repo: Path) -> None:
    def drop_symbol(raw: dict[str, Any]) -> None:
        kind = raw["fields"][1]["type"]
        kind["symbols"].remove("LOCATE_DEBTOR")

    _edit(repo / "orders" / "OrderRelease.avsc", drop_symbol)
    code, output = _run("--dir", str(repo))
    assert code == 1 and "enum_symbol_removed" in output


def test_check_accepts_a_compatible_change_and_a_new_schema(repo: Path) -> None:
    def add_optional(raw: dict[str, Any]) -> None:
        raw["fields"].append({"name": "floor", "type": ["null", "int"], "default": None})

    _edit(repo / "sightings" / "HotelCheckIn.avsc", add_optional)
    new = json.loads((repo / "bus" / "HitConfirmation.avsc").read_text("utf-8"))
    new["name"] = "HitEscalation"
    (repo / "bus" / "HitEscalation.avsc").write_text(json.dumps(new), encoding="utf-8")
    code, output = _run("--dir", str(repo))
    assert code == 0, output
    assert "1 changed, 1 added" in output


def test_check_fails_when_a_schema_is_deleted(repo: Path) -> None:
    (repo / "bus" / "HitConfirmation.avsc").unlink()
    code, output = _run("--dir", str(repo))
    assert code == 1 and "bus/HitConfirmation.avsc" in output and "removed" in output


def test_check_compares_with_an_older_ref(repo: Path) -> None:
    path = repo / "police" / "HotelStayResult.avsc"

    def drop_answered_at(raw: dict[str, Any]) -> None:
        raw["fields"] = [f for f in raw["fields"] if f["name"] != "answered_at"]

    _edit(path, drop_answered_at)
    _git(repo.parent.parent, "commit", "-q", "-am", "drop answered_at")
    assert _run("--dir", str(repo))[0] == 0  # HEAD already has the change
    code, output = _run("--dir", str(repo), "--ref", "HEAD~1")
    assert code == 1 and "answered_at" in output and "field_removed_without_default" in output


def test_check_reports_a_bad_ref(repo: Path) -> None:
    code, output = _run("--dir", str(repo), "--ref", "no-such-ref")
    assert code == 2 and "no-such-ref" in output
