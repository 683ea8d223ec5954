"""``zf801 blocks`` filters: a plate is normalised as the records carry it, and a plate or
court that cannot exist is refused, naming the option and the rule, before the command
connects (no broker runs here)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ops.cli import app
from ops.cmd_blocks import _plate

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--plate", "NOT A PLATE"], "--plate 'NO*****TE': plate number"),
        (["--plate", "京A1234\u202e5"], "--plate"),
        (["--plate", "x" * 5000], "[rule plate_number.length]"),
        (["--court", "ZZ99"], "--court 'ZZ99': court code: is not in the agency list"),
        (["--court", "bj01<script>"], "[rule court_code.format]"),
    ],
)
def test_a_filter_that_cannot_match_is_refused(args: list[str], says: str) -> None:
    result = runner.invoke(app, ["blocks", "--as", "110000110000", *args],
                           env={"ZF801_DEBUG": None, "COLUMNS": "300"})  # fmt: skip
    assert result.exit_code == 1, result.output
    assert says in " ".join(result.output.split()) and "bootstrap" not in result.output


def test_a_plate_is_matched_as_the_records_carry_it() -> None:
    assert _plate("京a·12345") == "京A12345" and _plate(None) is None
