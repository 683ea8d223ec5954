"""A court reads only its own alert stream, through the library and through the CLI."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from consumers.alerts import AlertSubscriber
from consumers.errors import AlertAccessDenied
from consumers.runtime import Runtime
from schemas.agencies import load_agencies
from schemas.settings import Settings
from sign.keystore import KeyStore
from sign.verify_stage import MemoryAuditSink, MemoryDeadLetterSink

pytestmark = pytest.mark.integration

_ZF801 = Path(sys.executable).with_name("zf801")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("isolation")
    KeyStore.from_settings(Settings(home=home)).init(
        list(load_agencies().agencies.values()), dt.datetime.now(dt.UTC)
    )
    return home


def _runtime(home: Path, agency: str) -> Runtime:
    settings = Settings(home=home)
    return Runtime.from_keystore(
        agency, MemoryDeadLetterSink(), MemoryAuditSink(), settings=settings
    )


@pytest.mark.parametrize(
    ("reader", "court"),
    [("BJ01", "SH01"), ("SH01", "BJ01"), ("110000000000", "BJ01"), ("BUS-MATCHER", "BJ01")],
)
def test_library_refuses_another_agencys_alert_stream(home: Path, reader: str, court: str) -> None:
    with pytest.raises(AlertAccessDenied, match=f"may not read the alerts of court {court}"):
        AlertSubscriber(_runtime(home, reader), court)


def test_library_opens_only_the_readers_own_topic(home: Path) -> None:
    subscriber = AlertSubscriber(_runtime(home, "BJ01"), "BJ01")
    assert subscriber.topic == "zf801.alerts.BJ01"


def test_cli_refuses_another_courts_alert_stream(home: Path, bootstrap_servers: str) -> None:
    env = {**os.environ, "ZF801_HOME": str(home), "ZF801_BOOTSTRAP_SERVERS": bootstrap_servers}
    result = subprocess.run(
        [str(_ZF801), "alerts", "--court", "SH01", "--as", "BJ01", "--until-idle", "1"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "may not read the alerts of court SH01" in result.stderr
    assert "Alerts of court" not in result.stdout
