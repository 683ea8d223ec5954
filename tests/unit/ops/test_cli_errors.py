"""The ``zf801`` root group: no traceback reaches a user, whatever a command raises; with
ZF801_DEBUG set, a defect's traceback does."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
from typer.testing import CliRunner

from ops.cli import app

runner = CliRunner()
_ARGS = ["schemas", "list"]


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (
            RuntimeError("boom\x1b[2J\nsecond line"),
            "error: unexpected RuntimeError: boom\\x1b[2J second line",
        ),
        (KeyboardInterrupt(), "error: interrupted"),
        (BrokenPipeError(), "error: output closed"),
    ],
)
def test_an_unexpected_error_is_one_sanitised_line(raised: BaseException, expected: str) -> None:
    with mock.patch("ops.cmd_schemas.default_registry", side_effect=raised):
        result = runner.invoke(app, _ARGS, env={"ZF801_DEBUG": None})
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    (line,) = result.stderr.splitlines()
    assert line.startswith(expected), line
    assert "Traceback" not in result.output and "\x1b" not in result.stderr


def test_debug_lets_a_defects_traceback_through() -> None:
    with mock.patch("ops.cmd_schemas.default_registry", side_effect=RuntimeError("boom")):
        result = runner.invoke(app, _ARGS, env={"ZF801_DEBUG": "1"})
    assert isinstance(result.exception, RuntimeError)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["query", "P1", "-", "--as", "BJ01", "--wait", "inf"], "--wait"),
        (["query", "P1", "-", "--as", "BJ01", "--wait", "1e12"], "--wait"),
        (["answers", "x", "--as", "BJ01", "--until-idle", "inf"], "--until-idle"),
        (["alerts", "--as", "BJ01", "--until-idle", "1e300"], "--until-idle"),
        (["notices", "--as", "110000110000", "--until-idle", "inf"], "--until-idle"),
        (["deadletters", "--until-idle", "inf"], "--until-idle"),
        (["subscribe", "debtors", "--as", "110000110000", "--until-idle", "inf"], "--until-idle"),
        (["responder", "--as", "110000110000", "--until-idle", "inf"], "--until-idle"),
        (["status", "--wait", "--timeout", "inf"], "--timeout"),
        (["checkpointer", "--interval", "inf"], "--interval"),
        (["debtors", "receipts", "--as", "BJ01", "--deadline", "inf"], "--deadline"),
        (["documents", "forward", "--as", "BUS-ROUTER", "--until-idle", "inf"], "--until-idle"),
        (["publish", "HotelCheckIn", "--as", "110000110000", "-", "--timeout", "inf"], "--timeout"),
        (["acls", "apply", "--timeout", "inf"], "--timeout"),
        (["demo", "--ack-timeout", "inf"], "--ack-timeout"),
        (["audit", "tail", "-n", "99999999999999999999"], "-n"),
        (["audit", "search", "-n", "99999999999999999999"], "-n"),
        (["deadletters", "--limit", "99999999999999999999"], "--limit"),
    ],
)
def test_an_endless_wait_is_refused_with_its_option_before_any_broker(
    args: list[str], option: str
) -> None:
    """inf or an absurd number of seconds would overflow a timer after connecting (or wait
    forever): each is refused by its option's bound, naming the option, with usage exit 2."""
    env = {"ZF801_BOOTSTRAP_SERVERS": "127.0.0.1:1", "COLUMNS": "300", "ZF801_DEBUG": None}
    result = runner.invoke(app, args, env=env, input="{}\n")
    said = " ".join(result.output.split())
    assert result.exit_code == 2, said
    assert f"Invalid value for '{option}'" in said and "less than or equal to" in said


def test_a_court_checks_no_mirror_and_is_told_why(tmp_path: Path) -> None:
    env = {"ZF801_BOOTSTRAP_SERVERS": "127.0.0.1:1", "COLUMNS": "300", "ZF801_DEBUG": None}
    result = runner.invoke(app, ["debtors", "check", "11010519491231002X", "--as", "BJ01",
                                 "--mirror", str(tmp_path / "m.sqlite")], env=env)  # fmt: skip
    said = " ".join(result.output.split())
    assert result.exit_code == 2, said
    assert "only list-subscriber agencies keep a mirror" in said and "no mirror at" not in said


def test_a_court_keeps_no_mirror_and_none_is_created(tmp_path: Path) -> None:
    """Only a list subscriber keeps a mirror: any other agency is refused before a broker
    is asked or a file made."""
    mirror = tmp_path / "mirror.sqlite"
    env = {"ZF801_BOOTSTRAP_SERVERS": "127.0.0.1:1", "COLUMNS": "300", "ZF801_DEBUG": None}
    result = runner.invoke(app, ["subscribe", "debtors", "--as", "BJ01", "--mirror", str(mirror),
                                 "--until-idle", "1"], env=env)  # fmt: skip
    said = " ".join(result.output.split())
    assert result.exit_code == 2, said
    assert "--as" in said and "only list-subscriber agencies keep a mirror" in said
    assert not mirror.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["alerts", "--court", "BJ01"],
        ["notices", "--as", "110000110000"],
        ["deadletters"],
        ["blocks", "--as", "SH01"],
    ],
)
def test_follow_and_until_idle_together_are_a_usage_error(args: list[str]) -> None:
    """One reads until stopped, the other stops once idle: --follow used to win silently,
    and a script that meant to stop ran for ever."""
    env = {"ZF801_BOOTSTRAP_SERVERS": "127.0.0.1:1", "COLUMNS": "300", "ZF801_DEBUG": None}
    result = runner.invoke(app, [*args, "--follow", "--until-idle", "1"], env=env)
    said = " ".join(result.output.split())
    assert result.exit_code == 2, said
    assert "--until-idle" in said and "give one of them" in said


@pytest.mark.parametrize(
    ("schema", "command"), [("IdentityQuery", "identity"), ("HotelStayQuery", "hotel-stays")]
)
def test_a_query_is_asked_with_the_query_command_not_published(schema: str, command: str) -> None:
    """publish would skip the query's own checks (deadline, purpose) and its outbox."""
    env = {"ZF801_BOOTSTRAP_SERVERS": "127.0.0.1:1", "COLUMNS": "300", "ZF801_DEBUG": None}
    result = runner.invoke(app, ["publish", schema, "--as", "BJ01", "-"], env=env, input="{}\n")
    said = " ".join(result.output.split())
    assert result.exit_code == 2, said
    assert f"zf801 query {command} --as COURT FILE" in said
