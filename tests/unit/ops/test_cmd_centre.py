"""``zf801 command-centre``'s own inputs: port, host, court, lifetime, agency; each bad one
named with its rule, before anything starts. The token it prints opens the page."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ops.centre.tokens import verify_token
from ops.cli import app
from schemas.settings import Settings
from sign.keystore import KeyStore

pytestmark = pytest.mark.usefixtures("fresh_settings")

runner = CliRunner()


def _env(settings: Settings) -> dict[str, str]:
    return {"ZF801_KEYS_PATH": str(settings.keys_path), "ZF801_TOPIC_PREFIX": "", "COLUMNS": "300"}


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--port", "65536"], "'--port'"),
        (["--port", "-1"], "'--port'"),
        (["--port", "eighty"], "'--port'"),
        (["--port", "9" * 40], "'--port'"),
        (["--host", "evil.example; rm -rf /"], "--host: 'evil.example; rm -rf /' is not an IP"),
        (["--host", ""], "--host: '' is not an IP address"),
        (["token", "--as", "BJ01", "--lifetime", "0"], "'--lifetime'"),
        (["token", "--as", "BJ01", "--lifetime", "43201"], "'--lifetime'"),
        (["token", "--as", "BJ01", "--court", "bj01<script>"], "[rule court_code.format]"),
        (["token", "--as", "BJ01", "--court", "ZZ99"], "[rule court_code.unknown]"),
        (["token", "--as", "BJ01", "--base", "javascript:alert(1)"], "--base: 'javascript:al"),
        (["token", "--as", "BJ01", "--base", "127.0.0.1:8801"], "is not an http(s) address"),
        (["token", "--as", "NOBODY"], "NOBODY"),
        (["token"], "'--as'"),
    ],
)
def test_bad_input_is_named(settings: Settings, args: list[str], named: str) -> None:
    result = runner.invoke(app, ["command-centre", *args], env=_env(settings))
    assert result.exit_code != 0
    assert named in " ".join(result.output.split()), result.output


def test_the_printed_address_carries_a_token_of_the_agency(settings: Settings) -> None:
    result = runner.invoke(
        app, ["command-centre", "token", "--as", "GD01", "--court", "GD01", "--base",
              "http://127.0.0.1:9999/"], env=_env(settings),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    address = result.output.strip()
    assert address.startswith("http://127.0.0.1:9999/?court=GD01#token=")
    viewer = verify_token(address.split("#token=", 1)[1], KeyStore.from_settings(settings)
                          .trust_store())  # fmt: skip
    assert viewer.code == "GD01"
