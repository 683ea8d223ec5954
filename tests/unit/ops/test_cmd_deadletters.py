"""``zf801 deadletters`` and ``zf801 blocks``: a verified record becomes an entry, the
filters, and a row whose hostile text is shown escaped."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from typer.testing import CliRunner

from ops.cli import app
from ops.cmd_blocks import COMMAND as BLOCKS
from ops.cmd_blocks import block_entry, block_filter
from ops.cmd_deadletters import COMMAND as DEAD_LETTERS
from ops.cmd_deadletters import dead_letter_entry, reason_filter
from ops.cmd_inspect import TopicRecord

runner = CliRunner()

T0 = dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.UTC)


def _record(value: dict[str, Any]) -> TopicRecord:
    return TopicRecord(event_id="e-1", event_type="t", signed_by="BUS-MATCHER", partition=0,
                       offset=7, timestamp_ms=0, value=b"", record=value, document={})  # fmt: skip


DEAD = _record({
    "reason": "SIGNATURE_INVALID", "failed_stage": "VERIFY", "processor": "BUS-MATCHER",
    "original": {"topic": "zf801.sightings.person", "partition": 2, "offset": 41},
    "original_timestamp": T0, "dead_lettered_at": T0 + dt.timedelta(seconds=1),
    "detail": "BAD_SIGNATURE [sightings]: \x1b]0;pwned\x07 " + "x" * 200,
    "original_value": b"\x00" * 9,
})  # fmt: skip
BLOCK = _record({
    "vehicle": {"plate_number": "京A12345", "vin": None}, "attempted_operation":
    "TRANSFER_REGISTRATION", "order_id": "o-1", "court_code": "BJ01",
    "seizure_ruling_reference": "（2026）京01执1号\u202e", "sighting_id": "s-1",
    "reporting_unit_code": "110000110000", "blocked_at": T0,
})  # fmt: skip


def test_a_dead_letter_entry_and_its_reason_filter() -> None:
    entry = dead_letter_entry(DEAD)
    assert entry.original == "zf801.sightings.person/2@41"
    assert entry.precise_reason == "BAD_SIGNATURE" and entry.original_value_bytes == 9
    assert reason_filter(None)(entry)
    assert reason_filter("signature_invalid")(entry) and reason_filter("BAD_SIGNATURE")(entry)
    assert not reason_filter("REPLAYED")(entry)


def test_a_reason_no_dead_letter_has_is_answered_with_the_reasons_read() -> None:
    entry = dead_letter_entry(DEAD)
    misspelt = reason_filter("SIGNATURE_INVALDI")
    assert not misspelt(entry) and not misspelt(entry)
    assert misspelt.unmatched_note() == (
        "no dead letter with reason SIGNATURE_INVALDI; the reasons read: SIGNATURE_INVALID (2)"
    )
    assert reason_filter("REPLAYED").unmatched_note() == (
        "no dead letter with reason REPLAYED: no dead letter was read"
    )
    found = reason_filter("bad_signature")
    assert found(entry) and found.unmatched_note() is None
    assert reason_filter(None).unmatched_note() is None


@pytest.mark.parametrize("reason", ["bad sig", "", "SIG-INVALID", "X" * 65, "1ABC", "\x1b[31m"])
def test_a_reason_that_is_not_a_code_is_refused_before_any_broker(reason: str) -> None:
    env = {"ZF801_BOOTSTRAP_SERVERS": "127.0.0.1:1", "COLUMNS": "300"}
    result = runner.invoke(app, ["deadletters", "--reason", reason], env=env)
    said = " ".join(result.output.split())
    assert result.exit_code == 2, said
    assert "--reason" in said and "is not a reason code" in said and "\x1b[" not in said


def test_a_dead_letter_row_is_escaped_and_cut_the_json_keeps_the_whole_detail(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    entry = dead_letter_entry(DEAD)
    DEAD_LETTERS.view.table([entry], "1")
    DEAD_LETTERS.view.json(entry)
    table, line = capsys.readouterr().out.rsplit("\n", 2)[0:2]
    assert "\x1b" not in table and "\x07" not in table
    assert "\\x1b]0;pwned\\x07" in table and "x" * 200 not in table
    assert "\\u001b]0;pwned\\u0007 " + "x" * 200 in line
    assert "2026-03-01 08:30:00Z" in table and "SIGNATURE_INVALID" in table


def test_a_block_entry_its_filter_and_its_row(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = block_entry(BLOCK)
    assert (entry.plate_number, entry.vin, entry.court_code) == ("京A12345", None, "BJ01")
    assert block_filter(None, None)(entry) and block_filter("京A12345", "BJ01")(entry)
    assert not block_filter("京B00000", None)(entry) and not block_filter(None, "SH01")(entry)
    monkeypatch.setenv("COLUMNS", "400")
    BLOCKS.view.table([entry], "1")
    out = capsys.readouterr().out
    assert "（2026）京01执1号\\u202e" in out and "\u202e" not in out
    assert "TRANSFER_REGISTRATION" in out
