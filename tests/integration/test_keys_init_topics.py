"""``zf801 keys init`` before ``zf801 topics apply``, against the real broker: one line
telling the operator what to run, within seconds, and nothing generated."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from schemas.settings import Settings

pytestmark = pytest.mark.integration

ZF801 = Path(sys.executable).with_name("zf801")


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_keys_init_without_the_trust_topic_fails_fast_and_generates_nothing(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    if kafka_settings.security == "mtls":
        # The operator's TLS identity of the session asks the brokers (a copy: --force must
        # never touch the session's own).
        shutil.copytree(kafka_settings.keys_dir, keys)
        if not (keys / "tls").exists():
            shutil.copytree(kafka_settings.tls_dir, keys / "tls")
    before = _digest(keys) if keys.exists() else {}
    env = {
        **os.environ,
        "ZF801_MODE": "test",
        "ZF801_SECURITY": kafka_settings.security,
        "ZF801_KEYS_PATH": str(keys),
        "ZF801_TLS_PATH": str(keys / "tls"),
        "ZF801_TOPIC_PREFIX": f"nokeys{uuid.uuid4().hex[:8]}-",  # no topic has this prefix
        "ZF801_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "ZF801_POLICE_BOOTSTRAP_SERVERS": kafka_settings.police_bootstrap_servers,
        "ZF801_BUS_BOOTSTRAP_SERVERS": kafka_settings.bus_bootstrap_servers,
        "COLUMNS": "300",
    }
    started = time.monotonic()
    result = subprocess.run(
        [str(ZF801), "keys", "init", "--force"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert elapsed < 15, elapsed
    [line] = result.stderr.strip().splitlines()
    assert "trust topic" in line and "run `zf801 topics apply` first" in line, line
    assert result.stdout == ""
    assert (_digest(keys) if keys.exists() else {}) == before
