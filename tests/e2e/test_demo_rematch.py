"""``zf801 replay --rematch`` over the demo run of ``tests/e2e/conftest.py`` (30 orders,
200 sightings, releases, an expiry, blocked transfers, forged sightings, queries) through
a real worker: every hit the scenario expects was delivered and justified, every block
accounted for, every log checkpoint of the demo matches its records; the only breaks are
the demo's forged sightings, named by ``--verify``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ops.deployment import Deployment
from schemas.agencies import load_agencies
from tests.e2e.conftest import DemoRun

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

_ZF801 = Path(sys.executable).with_name("zf801")
TRAFFIC = "110000110000"


def test_the_rematch_of_a_demo_run_justifies_every_hit_and_names_only_the_forgeries(
    demo_run: DemoRun,
) -> None:
    result, settings = demo_run.outcome, demo_run.settings
    assert result.verdict.passed
    courts = [a.code for a in load_agencies().agencies.values() if str(a.role) == "court"]
    command = [str(_ZF801), "replay", "--rematch", "--blocks-as", TRAFFIC, "--format", "json"]
    for court in courts:
        command += ["--alerts-as", court]
    env = {**Deployment.create(settings).worker_env(), "COLUMNS": "300"}
    replayed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300,
                              check=False)  # fmt: skip
    assert replayed.returncode == 2, replayed.stdout + replayed.stderr  # the forgeries
    report = json.loads(replayed.stdout)
    forged = result.scenario.special.forged_sightings
    assert len(report["breaks"]) == len(forged) > 0
    assert {b["topic"] for b in report["breaks"]} <= {
        settings.topic_prefix + "zf801.sightings.person",
        settings.topic_prefix + "zf801.sightings.vehicle",
    }
    # the demo's checkpoint round vouched for what it published: every checkpoint of a
    # partition read matches, the forgeries included (they were on the log when written)
    assert report["checkpoints"]["matched"] == report["checkpoints"]["checkpoints"] > 0
    rematch = report["rematch"]
    assert rematch["breaks"] == [] and rematch["notes"] == [], rematch
    # the scenario's hits, and the lifecycle phase's (a retroactive one, a live one)
    hits = len(result.expected.hits) + (result.lifecycle.hits if result.lifecycle else 0)
    assert (rematch["expected_hits"], rematch["delivered_hits"], rematch["unchecked_hits"]) == (
        hits, hits, 0,
    )  # fmt: skip
    blocks = len(result.expected.blocked)
    assert (rematch["expected_blocks"], rematch["delivered_blocks"]) == (blocks, blocks)
    assert rematch["releases"] >= 1 and rematch["expiry_notices"] >= 1
