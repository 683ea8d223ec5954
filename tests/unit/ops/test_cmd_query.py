"""``zf801 query``, ``zf801 answers`` and ``zf801 responder``: what they refuse before they
connect to anything (one error line, exit code 1, nothing sent)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ops.cli import app

runner = CliRunner()


def _run(*arguments: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(arguments), input=stdin)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("query", "P9", "--as", "BJ01", "-"), "query kind 'P9' is not one of P1"),
        (("query", "P1", "--as", "110000000000", "-"), "is no court: only courts ask"),
        (("query", "P1", "--as", "NOPE", "-"), "'NOPE' is not in the agency list"),
        (("answers", "not-a-uuid", "--as", "BJ01"), "correlation_id: 'not-a-uuid' is not a UUID"),
        (("responder", "--as", "BJ01"), "only police units answer queries"),
        (("responder",), "--as UNIT is required"),
    ],
)
def test_a_wrong_kind_agency_or_id_is_refused_in_one_line(
    arguments: tuple[str, ...], message: str
) -> None:
    code, output = _run(*arguments, stdin='{"subject": {"id_number": "1"}}\n')
    assert code == 1 and message in output, output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ('{"subject": \n', "line 1"),
        ("[1, 2]\n", "a query must be a JSON object"),
        ("", "no query in the input"),
        ("{}\n" * 1001, "more than 1000 queries"),
        ('{"reason": "\\u0000"}\n' + "x" * (1 << 20) + "\n", "line 2"),
    ],
)
def test_a_malformed_input_is_refused_naming_the_line(stdin: str, message: str) -> None:
    code, output = _run("query", "P1", "--as", "BJ01", "-", stdin=stdin)
    assert code == 1 and message in output, output


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    code, output = _run("query", "P1", "--as", "BJ01", str(tmp_path / "nothing.json"))
    assert code == 1 and "nothing.json" in output
