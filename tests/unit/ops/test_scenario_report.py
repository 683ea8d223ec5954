"""The demo's verdict: it passes only on exactly the expected outcome, and its report names
what is missing or unexpected. Also which topics a new demo run may remove."""

from __future__ import annotations

import copy
import datetime as dt
import io
from collections.abc import Callable

from rich.console import Console

from ops.demo_play import Observed, ObservedHit
from ops.deployment import is_earlier_run
from ops.scenario import Expected, Scenario, expected_outcome
from ops.scenario_gen import generate_scenario
from ops.scenario_report import judge, render
from schemas.agencies import load_agencies
from schemas.event_types import EXPIRY_NOTICE

BASE = dt.datetime(2026, 6, 1, 2, 0, 0, tzinfo=dt.UTC)


def _scenario() -> tuple[Scenario, Expected]:
    scenario = generate_scenario(21, orders=40, sightings=300, base_time=BASE)
    return scenario, expected_outcome(scenario)


def _perfect(scenario: Scenario, expected: Expected) -> Observed:
    """What a correct bus delivers for the scenario."""
    observed = Observed()
    for hit in expected.hits:
        observed.hits[hit.hit_id] = ObservedHit(
            hit.court, hit.order_id, hit.sighting_id, "BUS-MATCHER"
        )
    observed.acknowledgements.update(expected.acknowledgements)
    observed.overdue |= expected.overdue
    observed.expiry_court |= expected.expiry_notices
    observed.expiry_police |= expected.expiry_notices
    observed.blocked |= expected.blocked
    observed.dead_letters.update(expected.dead_letters)
    observed.dead_letter_reasons.update(expected.dead_letters.values())
    province = {o.order_id: load_agencies().rule_province(o.court) for o in scenario.orders}
    for item in (*scenario.orders, *scenario.releases):
        observed.delivered[(item.schema_name, item.order_id)].add(province[item.order_id])
    for order_id in expected.expiry_notices:
        observed.delivered[(EXPIRY_NOTICE, order_id)].add(province[order_id])
    return observed


def test_a_correct_outcome_passes_every_check() -> None:
    scenario, expected = _scenario()
    verdict = judge(scenario, expected, _perfect(scenario, expected))
    assert verdict.passed, [c for c in verdict.checks if not c.passed]
    assert verdict.missing_hits == () and verdict.unexpected_hits == ()


def test_a_missing_and_an_unexpected_hit_fail_and_are_named() -> None:
    scenario, expected = _scenario()
    observed = _perfect(scenario, expected)
    dropped = sorted(expected.hits, key=lambda h: h.hit_id)[0]
    del observed.hits[dropped.hit_id]
    released = scenario.special.released_orders[0]
    observed.hits["extra-hit"] = ObservedHit("BJ01", released, "s", "BUS-MATCHER")
    verdict = judge(scenario, expected, observed)
    failed = {c.name for c in verdict.checks if not c.passed}
    assert failed == {
        "hits are exactly the expected ones",
        "release before the sighting: no hit",
    }
    assert verdict.missing_hits == (dropped,)
    assert verdict.unexpected_hits == ("extra-hit",)
    output = io.StringIO()
    render(Console(file=output, width=200), scenario=scenario, expected=expected,
           observed=observed, verdict=verdict, timings=[("orders", 1.0)])  # fmt: skip
    text = output.getvalue()
    assert f"missing hit {dropped.hit_id}" in text and "unexpected hit extra-hit" in text
    assert "FAIL" in text and "Orders issued (seed 21)" in text
    assert "Delivered to the police side" in text


def test_each_special_case_has_its_own_check() -> None:
    scenario, expected = _scenario()
    good = _perfect(scenario, expected)
    breakages: dict[str, Callable[[Observed], object]] = {
        "expired order: a late sighting only, flagged late; expiry notices": lambda o: (
            o.expiry_police.clear()
        ),
        "transfer/mortgage on a seized vehicle: blocked": lambda o: o.blocked.clear(),
        "unacknowledged order: overdue alert": lambda o: o.overdue.clear(),
        "acknowledgements forwarded to each court": lambda o: o.acknowledgements.clear(),
        "forged sightings: no hit, dead-lettered": lambda o: o.dead_letters.clear(),
        "each hit on its issuing court's own stream": lambda o: o.hits_elsewhere.append(("a", "b")),
        "orders, releases, expiry notices: to their court's province's police only": lambda o: next(
            iter(o.delivered.values())
        ).add("national"),
    }
    for name, breaking in breakages.items():
        observed = copy.deepcopy(good)
        breaking(observed)
        failed = [c.name for c in judge(scenario, expected, observed).checks if not c.passed]
        assert failed == [name]


def test_which_topics_a_new_demo_run_removes() -> None:
    own = "demo20261127051431-"
    assert is_earlier_run("demo20261127050000-zf801.orders.exit-restriction", "", own)
    assert is_earlier_run("demo20261127050000-zf801-matcher", "", own)
    assert not is_earlier_run(f"{own}zf801.orders.exit-restriction", "", own)
    assert not is_earlier_run("zf801.orders.exit-restriction", "", own)
    assert not is_earlier_run("e2edemo1234abcd-zf801.orders.exit-restriction", "", own)
    assert not is_earlier_run("demo2026-zf801.alerts.BJ01", "", own)
    team = "team-"
    assert is_earlier_run("team-demo20261127050000-zf801.bus.audit", team, team + own)
    assert not is_earlier_run("demo20261127050000-zf801.bus.audit", team, team + own)
