"""A small demo scenario (30 orders, 200 sightings) through the real broker and a
``zf801 worker`` subprocess under a topic prefix of its own: the hits that arrive are
exactly the expected ones, and every special case comes out as it must. Then courts ask
P1-P5 of a ``zf801 responder`` subprocess per police unit: every query is answered by every
responder, found exactly where the demo put the debtor's records, and never refused. Last,
``zf801 replay --rematch`` over the run (releases, an expiry, blocked transfers, forged
sightings, queries): every hit the scenario expects was delivered and justified, every
block accounted for, every log checkpoint matches its records; the only breaks are the
demo's forged sightings, named by ``--verify``.

One module, one run: the rematch reads what the scenario left (and the tests of a module
stay in one test process)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from ops.demo import DemoOutcome
from ops.demo_queries import summarise
from ops.deployment import Deployment
from ops.scenario import Forgery
from ops.scenario_report import render
from schemas.agencies import load_agencies
from schemas.queries import QUERY_KINDS
from tests.e2e.conftest import DemoRun

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

_ZF801 = Path(sys.executable).with_name("zf801")
TRAFFIC = "110000110000"


@pytest.fixture(scope="module")
def outcome(demo_run: DemoRun) -> tuple[DemoOutcome, str]:
    return demo_run.outcome, demo_run.log


def test_hits_are_exactly_the_expected_ones(outcome: tuple[DemoOutcome, str]) -> None:
    result, log = outcome
    observed, expected = result.observed, result.expected
    assert len(expected.hits) > 10
    assert set(observed.hits) == expected.hit_ids, log
    for hit_id, hit in observed.hits.items():
        wanted = next(h for h in expected.hits if h.hit_id == hit_id)
        assert (hit.court, hit.order_id, hit.sighting_id) == (
            wanted.court,
            wanted.order_id,
            wanted.sighting_id,
        )
        assert hit.signed_by == "BUS-MATCHER"
    assert observed.hits_elsewhere == [] and observed.refused_alerts == 0
    assert result.verdict.passed, [c for c in result.verdict.checks if not c.passed]


def test_special_cases(outcome: tuple[DemoOutcome, str]) -> None:
    result, _ = outcome
    scenario, observed, expected = result.scenario, result.observed, result.expected
    special = scenario.special
    hit_orders = {hit.order_id for hit in observed.hits.values()}
    # One subject, two courts: the check-in reached both.
    hotel = special.two_court_sightings[0]
    assert len({h.court for h in observed.hits.values() if h.sighting_id == hotel}) == 2
    # Released orders never hit.
    assert hit_orders.isdisjoint(special.released_orders)
    # Transfer and mortgage attempts on seized vehicles: blocked, signed by the bus.
    assert observed.blocked == expected.blocked
    assert {s for _, s in observed.blocked} >= set(special.blocked_sightings)
    assert observed.blocked_unverified == 0
    # The expired order: only the sighting observed in its period hits it, flagged late (it
    # was published after the end, within the late window); expiry notices to both sides.
    expired = {(h.sighting_id, h.late) for h in observed.hits.values()
               if h.order_id == special.expired_order}  # fmt: skip
    assert expired == {(special.expired_sightings[0], True)}
    assert special.expired_order in observed.expiry_court
    assert special.expired_order in observed.expiry_police
    # The order no unit acknowledged: an overdue alert; the others were forwarded.
    assert special.unacknowledged_order in observed.overdue
    assert observed.acknowledgements == expected.acknowledgements
    # Forged sightings: no hit, dead-lettered with the reason of their forgery.
    forged = {scenario.sighting(i).forgery: i for i in special.forged_sightings}
    assert observed.dead_letters[forged[Forgery.TAMPERED_VALUE]] == "SIGNATURE_INVALID"
    assert observed.dead_letters[forged[Forgery.UNTRUSTED_KEY]] == "CERTIFICATE_UNTRUSTED"
    assert {h.sighting_id for h in observed.hits.values()}.isdisjoint(special.forged_sightings)


def test_the_worker_ran_and_stopped(outcome: tuple[DemoOutcome, str]) -> None:
    result, _ = outcome
    log = Path(result.worker_log).read_text("utf-8", "replace")
    assert "matcher follows partitions" in log
    assert [phase for phase, _ in result.timings][-1] == "stopping the worker"


def test_courts_queries_are_answered_by_every_responder(outcome: tuple[DemoOutcome, str]) -> None:
    result, log = outcome
    queries = result.queries
    assert queries is not None and queries.planned == len(queries.asked) >= 5 * 8, log
    checks = [c for c in result.verdict.checks if c.name.startswith("queries")]
    assert len(checks) == 4 and all(c.passed for c in checks), checks
    for kind in summarise(queries.asked):
        assert kind.complete == kind.queries and kind.answers == kind.expected_answers > 0
        assert kind.found > 0 and kind.not_found > 0 and kind.refused == 0, kind
        assert kind.p99_s is not None and kind.p99_s < 20
    report = io.StringIO()
    render(Console(file=report, width=200), scenario=result.scenario, expected=result.expected,
           observed=result.observed, verdict=result.verdict, timings=result.timings,
           queries=queries)  # fmt: skip
    table = report.getvalue().split("Queries (")[1].split("Checks")[0]
    assert [k.code for k in QUERY_KINDS if f"{k.code} {k.name}" in table] == [
        "P1",
        "P2",
        "P3",
        "P4",
        "P5",
    ]
    # Each responder was stopped by SIGTERM and said so on its way out.
    for unit in queries.units:
        log_path = Path(result.worker_log).with_name(f"responder-{unit}.log")
        assert f"responder {unit} stopped:" in log_path.read_text("utf-8", "replace")
    phases = [phase for phase, _ in result.timings]
    assert phases.index("stopping the responders") == len(phases) - 2


def test_the_debtor_list_reaches_every_subscriber_and_its_removal_is_confirmed(
    outcome: tuple[DemoOutcome, str],
) -> None:
    debtors = outcome[0].debtors
    assert debtors is not None and debtors.passed, debtors
    assert set(debtors.listed) == {"SUB-RAIL12306", "SUB-SAMR"}
    assert debtors.confirmed == ["SUB-RAIL12306", "SUB-SAMR"] and debtors.overdue == []


def test_the_lifecycle_phase_shows_action_notices_a_warning_and_an_escalation(
    outcome: tuple[DemoOutcome, str],
) -> None:
    result, _ = outcome
    run = result.lifecycle
    assert run is not None and run.passed, run
    assert {"DETAIN", "STOP_DEPARTURE"} <= set(run.actions), run.actions
    assert run.late_hits == 1 and run.expiring_warned and run.retroactive_hits == 1
    assert run.anomaly_statuses == ["OVERDUE", "ESCALATED", "ACKNOWLEDGED_LATE"]
    assert run.escalation == "level 1 to SPC, awaiting POLICE"  # the court confirmed
    assert any(phase.startswith("order lifecycle") for phase, _ in result.timings)


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
