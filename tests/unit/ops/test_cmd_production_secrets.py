"""``zf801 worker`` and ``zf801 publish`` in production mode with the demo secrets: a clean
refusal (no traceback, exit code 1) that names the variables to set."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner, Result

from ops.cli import app

pytestmark = pytest.mark.usefixtures("fresh_settings")

runner = CliRunner()
# The demo secrets are the defaults: removing the variables leaves them in force.
PRODUCTION_WITH_DEMO_SECRETS: dict[str, str | None] = {
    "ZF801_MODE": "production",
    "ZF801_MATCH_KEY_SECRET": None,
    "ZF801_KEY_PASSPHRASE": None,
}


def _assert_refused(result: Result, command: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # typer.Exit, not an escaped error
    assert "Traceback" not in result.output
    message = result.stderr
    assert message.startswith(f"error: {command} refused to start: ZF801_MODE is production")
    assert "ZF801_MATCH_KEY_SECRET holds the public demo value" in message
    assert "ZF801_KEY_PASSPHRASE holds the public demo value" in message
    assert "ZF801_MODE=demo" in message
    assert result.stdout == ""


def test_worker_refuses_the_demo_secrets_in_production_mode():
    result = runner.invoke(app, ["worker"], env=PRODUCTION_WITH_DEMO_SECRETS)
    _assert_refused(result, "zf801 worker")


def test_publish_refuses_the_demo_secrets_in_production_mode_before_reading_input():
    result = runner.invoke(
        app,
        ["publish", "ExitRestrictionOrder", "--as", "BJ01", "-"],
        input='{"not": "read"}\n',
        env=PRODUCTION_WITH_DEMO_SECRETS,
    )
    _assert_refused(result, "zf801 publish")


def test_publish_names_only_the_variable_still_at_its_demo_value():
    env = {**PRODUCTION_WITH_DEMO_SECRETS, "ZF801_MATCH_KEY_SECRET": "x" * 32}
    result = runner.invoke(app, ["publish", "ExitRestrictionOrder", "--as", "BJ01", "-"], env=env)
    assert result.exit_code == 1, result.output
    assert "ZF801_KEY_PASSPHRASE holds the public demo value" in result.stderr
    assert "ZF801_MATCH_KEY_SECRET" not in result.stderr
