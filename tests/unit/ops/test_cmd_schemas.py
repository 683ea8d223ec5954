"""``zf801 schemas list|encode|decode``: what an integrator types, with the example files."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ops.cli import app
from schemas.codec import decode
from schemas.registry import EXAMPLE_DIR, default_registry

EXAMPLES = EXAMPLE_DIR
runner = CliRunner()


def test_list_shows_every_schema_with_its_fingerprint() -> None:
    result = runner.invoke(app, ["schemas", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 35
    hit = next(r for r in rows if r["name"] == "cn.zf801.bus.v1.Hit")
    assert hit == {
        "name": "cn.zf801.bus.v1.Hit",
        "version": 1,
        "fingerprint": default_registry().get("Hit").fingerprint.hex(),
    }
    table = runner.invoke(app, ["schemas", "list"])
    assert "cn.zf801.orders.v1.ExitRestrictionOrder" in table.stdout


def test_encode_then_decode_gives_back_the_json() -> None:
    document = (EXAMPLES / "orders" / "ExitRestrictionOrder.json").read_text("utf-8")
    encoded = runner.invoke(app, ["schemas", "encode", "ExitRestrictionOrder"], input=document)
    assert encoded.exit_code == 0, encoded.output
    value = encoded.stdout_bytes
    writer, record = decode(value)
    assert writer.name == "ExitRestrictionOrder" and record["subject"]["name"] == "王建国"
    decoded = runner.invoke(app, ["schemas", "decode"], input=value)
    assert decoded.exit_code == 0, decoded.output
    assert json.loads(decoded.stdout) == json.loads(document)


def test_hex_and_type_wrapper() -> None:
    document = (EXAMPLES / "bus" / "HitConfirmation.json").read_text("utf-8")
    encoded = runner.invoke(app, ["schemas", "encode", "HitConfirmation", "--hex"], input=document)
    assert encoded.stdout.startswith("c301")
    decoded = runner.invoke(
        app, ["schemas", "decode", "--hex", "--with-type"], input=encoded.stdout
    )
    wrapped = json.loads(decoded.stdout)
    assert wrapped["type"] == "cn.zf801.bus.v1.HitConfirmation"
    assert wrapped["fingerprint"] == encoded.stdout[4:20]
    assert wrapped["record"] == json.loads(document)


def test_encode_refuses_invalid_json_with_the_field_and_rule() -> None:
    document = json.loads((EXAMPLES / "sightings" / "HotelCheckIn.json").read_text("utf-8"))
    document["observed_at"] = "2026-04-08 13:02"
    result = runner.invoke(app, ["schemas", "encode", "HotelCheckIn"], input=json.dumps(document))
    assert result.exit_code == 1
    assert "observed_at" in result.output and "zone" in result.output
    assert result.stdout_bytes == b""
    document["observed_at"] = "2026-04-08T13:02:00Z"
    document["room"] = "6" * 65
    result = runner.invoke(app, ["schemas", "encode", "HotelCheckIn"], input=json.dumps(document))
    assert result.exit_code == 1 and "room" in result.output and "maxLength" in result.output


def test_encode_and_decode_errors() -> None:
    assert runner.invoke(app, ["schemas", "encode", "NoSuch"], input="{}").exit_code == 1
    assert runner.invoke(app, ["schemas", "encode", "Hit"], input="{not json").exit_code == 1
    result = runner.invoke(app, ["schemas", "decode"], input=b"\xc3\x01" + bytes(8))
    assert result.exit_code == 1 and "fingerprint" in result.output
    result = runner.invoke(app, ["schemas", "decode", "--hex"], input="zz")
    assert result.exit_code == 1 and "hex" in result.output
