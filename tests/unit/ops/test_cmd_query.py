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


def test_a_deadline_named_in_the_query_is_said_before_the_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A deadline in the file overrides --wait: the command says how long it will wait
    (it waited days in silence)."""
    import datetime as dt  # noqa: PLC0415
    import json  # noqa: PLC0415

    from ops import cmd_query  # noqa: PLC0415
    from schemas.registry import EXAMPLE_DIR, default_registry  # noqa: PLC0415
    from topics.errors import BrokerUnreachable  # noqa: PLC0415

    schema = default_registry().get("IdentityQuery")
    query = json.loads((EXAMPLE_DIR / schema.family / "IdentityQuery.json").read_text("utf-8"))
    for generated in ("correlation_id", "requested_at"):
        query.pop(generated)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    query["deadline"] = later.isoformat().replace("+00:00", "Z")

    def unreachable(court: str) -> None:
        raise BrokerUnreachable("no broker here")

    monkeypatch.setattr(cmd_query.QueryClient, "connect", unreachable)
    court = query["requesting_court_code"]
    code, output = _run("query", "P1", "--as", court, "--wait", "5", "-", stdin=json.dumps(query))
    assert code == 1 and "no broker here" in output
    assert f"waiting for answers until {later.isoformat()[:16]}" in output
    assert f"zf801 answers CORRELATION_ID --as {court}" in output


def test_a_query_made_out_for_another_court_is_refused_as_such() -> None:
    """Asked as BJ01 with SH01 as the requesting court, the sender is named (it was blamed on
    the case number, which did not fit the court written in)."""
    import json  # noqa: PLC0415

    from schemas.registry import EXAMPLE_DIR, default_registry  # noqa: PLC0415

    schema = default_registry().get("IdentityQuery")
    query = json.loads((EXAMPLE_DIR / schema.family / "IdentityQuery.json").read_text("utf-8"))
    for generated in ("correlation_id", "requested_at", "deadline"):
        query.pop(generated)
    asking = query["requesting_court_code"]
    other = "SH01" if asking != "SH01" else "BJ01"
    query["requesting_court_code"] = other
    code, output = _run("query", "P1", "--as", asking, "-", stdin=json.dumps(query))
    assert code == 1 and f"requesting_court_code: '{other}' is not the publishing agency" in output
    assert "[rule sender]" in output
