"""The ``zf801`` root group: no traceback reaches a user, whatever a command raises; with
ZF801_DEBUG set, a defect's traceback does."""

from __future__ import annotations

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
