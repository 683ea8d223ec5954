"""``zf801 schemas example``: the example of every event an agency may publish passes what
``zf801 publish`` checks, with times of the last day."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ops.cli import app
from ops.cmd_schemas import example_document
from schemas.edge_rules import TIME_HORIZONS
from schemas.jsonmap import from_json
from schemas.registry import EXAMPLE_DIR, RegisteredSchema, default_registry
from tests.unit.ops.example_checks import PUBLISHABLE, check_publishable

runner = CliRunner()
every_publishable = pytest.mark.parametrize(
    "schema", PUBLISHABLE, ids=[schema.name for schema in PUBLISHABLE]
)


def test_the_publishable_kinds_are_those_of_the_routes() -> None:
    assert len(PUBLISHABLE) == 29
    assert "cn.zf801.bus.v1.Hit" not in {schema.full_name for schema in PUBLISHABLE}


@every_publishable
def test_example_passes_the_publish_checks(schema: RegisteredSchema) -> None:
    result = runner.invoke(app, ["schemas", "example", schema.name, "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    check_publishable(schema, json.loads(line))


@every_publishable
def test_example_times_lie_within_the_last_day(schema: RegisteredSchema) -> None:
    now = dt.datetime.now(dt.UTC)
    record = from_json(schema, {
        k: v for k, v in example_document(schema, now).items() if k != "subject"
    })  # fmt: skip
    observed = [v for k, v in record.items() if isinstance(v, dt.datetime)
                and k not in TIME_HORIZONS]  # fmt: skip
    assert observed, schema.name
    assert now - dt.timedelta(days=1) < max(observed) <= now


def test_full_name_and_indented_json() -> None:
    result = runner.invoke(app, ["schemas", "example", "cn.zf801.orders.v1.OrderRelease"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("{\n  ")
    release = json.loads(result.stdout)
    order = json.loads(runner.invoke(app, ["schemas", "example", "ExitRestrictionOrder"]).stdout)
    # The release names the example order and the subject that order was issued for.
    assert release["order_id"] == order["order_id"]
    assert release["subject"] == {"id_number": order["subject"]["id_number"]}


def test_vehicle_release_subject_is_the_vehicle_of_the_order(tmp_path: Path) -> None:
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLE_DIR, folder)
    path = folder / "orders" / "OrderRelease.json"
    path.write_text(json.dumps({**json.loads(path.read_text("utf-8")),
                                "order_kind": "VEHICLE_SEARCH"}), "utf-8")  # fmt: skip
    release = example_document(default_registry().get("OrderRelease"), folder=folder)
    vehicle = json.loads((folder / "orders" / "VehicleSearchOrder.json").read_text("utf-8"))
    assert release["subject"] == {
        "plate_number": vehicle["subject"]["plate_number"],
        "vin": vehicle["subject"]["vin"],
    }
    event = check_publishable(default_registry().get("OrderRelease"), release)
    assert event.topic_id == "orders-vehicle-search"


def test_unknown_name_fails_with_one_line() -> None:
    result = runner.invoke(app, ["schemas", "example", "NoSuchEvent"])
    assert result.exit_code == 1
    assert "NoSuchEvent" in result.output
