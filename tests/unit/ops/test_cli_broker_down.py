"""Every ``zf801`` command that talks to the broker, run against an address where nothing
listens: within 15 s, exit code 1 and one red line naming the address and what to do, never a
traceback (issue 10). Under plaintext and under mTLS (a trust set of the test's own)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from ops.cli import app
from schemas.registry import EXAMPLE_DIR
from tests.builders import trust_set

pytestmark = pytest.mark.usefixtures("fresh_settings")

runner = CliRunner()
EXAMPLES = EXAMPLE_DIR
_BOUND_S = 15.0

BROKER_COMMANDS: dict[str, list[str]] = {
    "publish": ["publish", "ExitRestrictionOrder", "--as", "BJ01"],
    "alerts": ["alerts", "--court", "BJ01", "--until-idle", "1"],
    "topics apply": ["topics", "apply"],
    "topics apply --dry-run": ["topics", "apply", "--dry-run"],
    "topics list": ["topics", "list"],
    "acls plan": ["acls", "plan"],
    "acls apply": ["acls", "apply"],
    "acls list": ["acls", "list"],
    "keys publish": ["keys", "publish"],
    "worker": ["worker"],
    "demo": ["demo"],
    "deadletters": ["deadletters"],
    "blocks": ["blocks", "--as", "110000110000"],
    "audit tail": ["audit", "tail"],
    "status": ["status"],
}


def _dead_address() -> str:
    """A local port that was free a moment ago: nothing listens there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("zf801-home")
    trust_set(directory)
    return directory


def _env(home: Path, security: str, address: str, **extra: str | None) -> dict[str, str | None]:
    return {
        "ZF801_MODE": "test",
        "ZF801_SECURITY": security,
        "ZF801_HOME": str(home),
        "ZF801_KEYS_PATH": str(home / "keys"),
        "ZF801_BOOTSTRAP_SERVERS": address,
        "ZF801_POLICE_BOOTSTRAP_SERVERS": address,
        "ZF801_BUS_BOOTSTRAP_SERVERS": address,
        "KAFKA_BOOTSTRAP_SERVERS": address,  # the demo must not start a local broker
        "ZF801_TOPIC_PREFIX": None,
        "ZF801_TLS_PATH": None,
        "COLUMNS": "400",
        "ZF801_CONNECT_TIMEOUT_S": "2",  # the default 8 s is held to in its own test
    } | extra


def _order() -> str:
    document: dict[str, Any] = json.loads(
        (EXAMPLES / "orders" / "ExitRestrictionOrder.json").read_text("utf-8")
    )
    return json.dumps(document, ensure_ascii=False) + "\n"


def _invoke(args: list[str], env: dict[str, str | None], stdin: str = "") -> tuple[Result, float]:
    began = time.monotonic()
    result = runner.invoke(app, args, input=stdin, env=env)
    return result, time.monotonic() - began


def _assert_one_line_failure(
    result: Result, elapsed: float, address: str, bound_s: float = _BOUND_S
) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # nothing escaped
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert address in errors[0], errors[0]
    assert "zf801 broker start" in errors[0] and "ZF801_BOOTSTRAP_SERVERS" in errors[0]
    assert elapsed < bound_s, f"took {elapsed:.1f} s"


@pytest.mark.parametrize("security", ["plaintext", "mtls"])
@pytest.mark.parametrize("command", sorted(BROKER_COMMANDS))
def test_a_command_fails_in_one_line_when_the_broker_is_down(
    command: str, security: str, home: Path
) -> None:
    address = _dead_address()
    stdin = _order() if command == "publish" else ""
    result, elapsed = _invoke(BROKER_COMMANDS[command], _env(home, security, address), stdin)
    _assert_one_line_failure(result, elapsed, address, _BOUND_S)


def test_the_default_wait_fails_within_10_seconds(home: Path) -> None:
    address = _dead_address()
    env = _env(home, "plaintext", address, ZF801_CONNECT_TIMEOUT_S=None)
    result, elapsed = _invoke(BROKER_COMMANDS["topics list"], env)
    _assert_one_line_failure(result, elapsed, address, 10.0)
    assert elapsed > 6.0, "the default wait (8 s) was not the one in force"


def test_publish_reports_a_bad_line_before_the_broker_error(home: Path) -> None:
    address = _dead_address()
    bad = json.loads(_order())
    bad["subject"]["id_number"] = "110105198003121230"  # wrong check character
    result, elapsed = _invoke(
        BROKER_COMMANDS["publish"], _env(home, "plaintext", address), json.dumps(bad) + "\n"
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("line 1: ") and "subject.id_number" in lines[0], result.stderr
    assert "[rule " in lines[0], result.stderr
    assert address in lines[-1] and lines[-1].startswith("error:"), result.stderr
    assert elapsed < _BOUND_S


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["report", "--severity", "SEVERE"], "severity: 'SEVERE' is not one of LOW"),
        (["report", "--component", " "], "component: must not be empty [rule required]"),
        (["report", "--description", "x" * 2001], "description: 2001 characters, at most 2000"),
        (["report", "--description", "a\u202eb"], "character U+202E [rule printable]"),
        (["report", "--detected-at", "2099-01-01T00:00:00+08:00"], "is in the future [rule past]"),
        (["ack", "not-a-uuid"], "NOTICE_ID: 'not-a-uuid' is not a UUID [rule uuid]"),
        (["ack", "6f1c1f5e-2f7a-4b59-9b3e-1f0c2b1d9a11", "--note", "n" * 2001],
         "note: 2001 characters, at most 2000 allowed"),
    ],
)  # fmt: skip
def test_bad_anomaly_input_is_refused_before_any_broker_is_reached(
    args: list[str], says: str, home: Path
) -> None:
    """The refusal names the field and the rule, whether a broker is up or not: the input
    is checked before the command connects (it used to say only that the broker was down)."""
    good = {"--component": "db", "--severity": "LOW", "--description": "down"}
    if args[0] == "report":
        given = dict(zip(args[1::2], args[2::2], strict=True))
        args = ["report", *(x for k, v in (good | given).items() for x in (k, v))]
    address = _dead_address()
    result, _ = _invoke(["anomaly", *args, "--as", "BJ01"], _env(home, "plaintext", address))
    assert result.exit_code == (2 if "--detected-at" in args else 1), result.output  # usage
    assert says in result.stderr and address not in result.stderr, result.stderr


def test_a_bad_query_is_refused_before_any_broker_is_reached(home: Path) -> None:
    """Every query of the file is checked before the command connects: the refusal names
    the field and the rule even with the broker down (it used to say only that)."""
    query: dict[str, Any] = json.loads(
        (EXAMPLES / "query" / "IdentityQuery.json").read_text("utf-8")
    )
    query["subject"]["id_number"] = "110105198003121230"  # wrong check character
    address = _dead_address()
    result, _ = _invoke(["query", "P1", "-", "--as", "BJ01"], _env(home, "plaintext", address),
                        json.dumps(query, ensure_ascii=False) + "\n")  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "subject.id_number" in result.stderr and "[rule " in result.stderr, result.stderr
    assert address not in result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["../../etc/passwd", "--as", "110000000000"], "ORDER_ID '../../etc/passwd': UUID: "
         "expected 8-4-4-4-12 hexadecimal digits [rule uuid.format]"),
        (["5d6a1c2e-0b1a-4c6b-9e55-1b2c3d4e5f60", "--as", "BJ01"], "not a police unit code"),
        (["5d6a1c2e-0b1a-4c6b-9e55-1b2c3d4e5f60", "--as", "110000000000", "--out",
          "/etc/passwd/papers"], "/etc/passwd is not a folder"),
    ],
)  # fmt: skip
def test_documents_fetch_checks_the_order_id_and_the_unit_before_any_broker_is_reached(
    args: list[str], says: str, home: Path
) -> None:
    address = _dead_address()
    result, _ = _invoke(["documents", "fetch", *args], _env(home, "plaintext", address))
    assert result.exit_code in (1, 2), result.output
    assert says in result.stderr and address not in result.stderr, result.stderr
