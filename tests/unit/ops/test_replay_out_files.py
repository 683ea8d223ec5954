"""``zf801 replay --out PATH``: the report and PATH.seal.json are written to new files
renamed over their names, so a symbolic link at either is replaced, never written
through; a folder or a device at PATH.seal.json is refused before anything is read or
written."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import ops.cmd_replay
from consumers.runtime import Runtime
from ops.cli import app
from ops.replay_check import ReplayInputError
from sign.seal import verify_seal
from sign.trustset import TrustSet

NOW = dt.datetime.now(dt.UTC)
REPORT = {"format": "zf801-replay-report/1", "clean": True, "reader": "法院"}


@dataclass
class _KeyStore:
    key: Any
    chain: list[Any]

    def current_key_id(self, agency_code: str) -> str:
        return "current"

    def private_key(self, key_id: str) -> Any:
        return self.key

    def chain_of(self, key_id: str) -> list[Any]:
        return self.chain


@dataclass
class _Runtime:
    keystore: _KeyStore
    agency_code: str = "BJ01"


@pytest.fixture(scope="module")
def trust() -> TrustSet:
    return TrustSet.create(NOW - dt.timedelta(days=2))


@pytest.fixture(scope="module")
def runtime(trust: TrustSet) -> _Runtime:
    key, cert = trust.issue(
        "BJ01", "北京市第一中级人民法院", "court", now=NOW - dt.timedelta(days=1),
        lifetime=dt.timedelta(days=30),
    )  # fmt: skip
    chain = [cert, trust.issuers["court"].certificate, trust.roots["court"].certificate]
    return _Runtime(_KeyStore(key, chain))


def _write(runtime: _Runtime, out: Path) -> Path:
    return ops.cmd_replay._write_report(runtime, out, REPORT)  # type: ignore[arg-type]


def test_a_link_at_out_is_replaced_and_its_target_kept(tmp_path: Path, runtime: _Runtime,
                                                       trust: TrustSet) -> None:  # fmt: skip
    victim = tmp_path / "victim.json"
    victim.write_text("victim\n")
    out = tmp_path / "link.json"
    out.symlink_to(victim)
    seal = _write(runtime, out)
    assert victim.read_text() == "victim\n"
    assert not out.is_symlink() and json.loads(out.read_text()) == REPORT
    assert verify_seal(out, trust.trust_store(), seal).agency_code == "BJ01"


def test_a_link_at_the_reports_seal_is_replaced_and_its_target_kept(
    tmp_path: Path, runtime: _Runtime, trust: TrustSet
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("victim\n")
    out = tmp_path / "report.json"
    (tmp_path / "report.json.seal.json").symlink_to(victim)
    seal = _write(runtime, out)
    assert victim.read_text() == "victim\n" and not seal.is_symlink()
    assert verify_seal(out, trust.trust_store()).sha256


def test_a_rerun_replaces_the_report_and_its_seal(tmp_path: Path, runtime: _Runtime,
                                                  trust: TrustSet) -> None:  # fmt: skip
    out = tmp_path / "report.json"
    _write(runtime, out)
    out.write_text("an old report\n")
    _write(runtime, out)
    assert verify_seal(out, trust.trust_store()).agency_code == "BJ01"


def test_a_folder_or_fifo_at_the_reports_seal_is_refused_before_the_report_is_written(
    tmp_path: Path, runtime: _Runtime
) -> None:
    out = tmp_path / "report.json"
    seal = tmp_path / "report.json.seal.json"
    seal.mkdir()
    with pytest.raises(ReplayInputError, match=r"--out .*report.json: its seal .*: a folder, not"):
        _write(runtime, out)
    assert not out.exists()
    seal.rmdir()
    os.mkfifo(seal)
    with pytest.raises(ReplayInputError, match=r"its seal .*: not a regular file"):
        _write(runtime, out)
    assert not out.exists()


def test_the_command_refuses_a_folder_at_the_seal_before_it_connects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("connected despite a bad --out")

    monkeypatch.setattr(Runtime, "connect", never)
    out = tmp_path / "report.json"
    (tmp_path / "report.json.seal.json").mkdir()
    result = CliRunner().invoke(app, ["replay", "--verify", "--out", str(out)])
    assert result.exit_code == 1, result.output
    said = " ".join(result.output.split())
    assert (
        said.startswith("error: --out ") and "report.json.seal.json: a folder, not a file" in said
    )
    assert not out.exists()
