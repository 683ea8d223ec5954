"""``--metrics-port`` and ZF801_METRICS_PORT/HOST: a bad value is named with its rule before
a processor starts; a port already taken is an error that names the option."""

from __future__ import annotations

import socket

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from consumers.metrics import ProcessorMetrics
from ops.cli import app
from ops.errors import OpsError
from ops.metrics_option import serve_metrics
from schemas.settings import Settings, get_settings

pytestmark = pytest.mark.usefixtures("fresh_settings")

runner = CliRunner()


@pytest.mark.parametrize("command", ["worker", "history-forwarder", "checkpointer", "responder"])
@pytest.mark.parametrize("port", ["65536", "-5", "http", "1" * 30])
def test_a_bad_metrics_port_is_named(command: str, port: str) -> None:
    result = runner.invoke(app, [command, "--metrics-port", port], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert "Invalid value for '--metrics-port'" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("metrics_port", 70000),
        ("metrics_port", -1),
        ("metrics_host", "0.0.0.0; curl evil"),
        ("metrics_host", "x" * 100),
        ("metrics_host", ""),
    ],
)
def test_bad_metrics_settings_are_named(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: value})  # type: ignore[arg-type]


def test_a_taken_port_names_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OpsError, match=f"--metrics-port {port}: cannot listen on 127.0.0.1"):
            serve_metrics(ProcessorMetrics("worker"), port)


def test_the_port_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZF801_METRICS_PORT", raising=False)
    assert get_settings().metrics_port is None  # unset: no endpoint
    monkeypatch.setenv("ZF801_METRICS_PORT", "0")
    get_settings.cache_clear()
    assert get_settings().metrics_port == 0
