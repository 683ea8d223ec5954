"""The demo's query phase without a broker: the plan is reproducible and puts each
debtor's records where the query kinds look for them, the summary counts and percentiles
are right, and the verdict's query checks fail on each way the answers can be wrong."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from ops.demo_play import Observed
from ops.demo_queries import (
    AskedQuery,
    QueryPlan,
    QueryRun,
    percentile,
    plan_queries,
    remove_earlier_sources,
    summarise,
)
from ops.scenario import Scenario, expected_outcome
from ops.scenario_gen import generate_scenario
from ops.scenario_report import judge, queries_table
from schemas.queries import QUERY_KINDS, query_kind, responders

BASE = dt.datetime(2026, 6, 1, 2, 0, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return generate_scenario(21, orders=40, sightings=300, base_time=BASE)


@pytest.fixture(scope="module")
def plan(scenario: Scenario) -> QueryPlan:
    return plan_queries(scenario, courts=3, filler=20)


def _answered(plan: QueryPlan) -> QueryRun:
    """What correct responders answer: FOUND where the records are, NOT_FOUND elsewhere."""
    asked = []
    for subject in plan.subjects:
        for kind in QUERY_KINDS:
            units = responders(kind, subject.query(kind))
            found = subject.found_by[kind.code]
            statuses = {u: "FOUND" if u in found else "NOT_FOUND" for u in units}
            latencies = tuple(0.01 * i for i in range(1, len(units) + 1))
            asked.append(AskedQuery(kind.code, subject.court, subject.id_number, found, units,
                                    statuses, latencies))  # fmt: skip
    return QueryRun(plan.queries, tuple(asked), plan.units, plan.row_count)


def test_the_plan_is_reproducible_and_mixes_debtors_on_record_and_unknown(
    scenario: Scenario, plan: QueryPlan
) -> None:
    assert plan_queries(scenario, courts=3, filler=20) == plan
    assert len(plan.courts) == 3 and plan.queries == 5 * len(plan.subjects)
    on_record = [s for s in plan.subjects if s.on_record]
    assert on_record and len(on_record) < len(plan.subjects)
    debtors = {(o.court, o.subject.id_number) for o in scenario.orders}
    anyone = {number for _, number in debtors}
    for court in plan.courts:
        mine = [s for s in plan.subjects if s.court == court]
        strangers = [s for s in mine if s.id_number not in anyone]
        assert len(strangers) == 1 and not strangers[0].on_record
        assert all((court, s.id_number) in debtors for s in mine if s not in strangers)


def test_each_debtor_on_record_is_where_its_kinds_look(plan: QueryPlan) -> None:
    def held(unit: str, kind: str, number: str) -> bool:
        return any(k == kind and (row.get("id_number") or (row.get("owner") or {})
                                  .get("id_number")) == number
                   for k, row in plan.rows[unit])  # fmt: skip

    needs = {"P1": "person", "P2": "document", "P3": "crossing", "P4": "vehicle",
             "P5": "hotel_stay"}  # fmt: skip
    for subject in plan.subjects:
        for kind in QUERY_KINDS:
            found_by = subject.found_by[kind.code]
            holding = {u for u in plan.units if held(u, needs[kind.code], subject.id_number)}
            assert holding == set(found_by)
            assert found_by <= set(responders(kind, subject.query(kind)))
        if subject.on_record:
            assert all(subject.found_by.values())
    assert all(len(rows) >= 20 for rows in plan.rows.values())


def test_queries_keep_the_purpose_each_kind_allows(plan: QueryPlan) -> None:
    subject = plan.subjects[0]
    for kind in QUERY_KINDS:
        query = subject.query(kind)
        assert query["subject_role"] in kind.purposes
        assert query["requesting_court_code"] == subject.court
    assert subject.query(query_kind("P4"))["owner"]["id_number"] == subject.id_number


def test_percentile_is_the_nearest_rank() -> None:
    values = [0.5, 0.1, 0.4, 0.2, 0.3]
    assert percentile(values, 50) == 0.3
    assert percentile(values, 99) == 0.5
    assert percentile(values, 1) == 0.1
    assert percentile(range(1, 101), 99) == 99
    assert percentile([], 50) is None


def test_the_summary_counts_answers_per_kind(plan: QueryPlan) -> None:
    run = _answered(plan)
    summary = {s.kind: s for s in summarise(run.asked)}
    assert list(summary) == ["P1", "P2", "P3", "P4", "P5"]
    p3 = summary["P3"]
    assert p3.queries == len(plan.subjects) == p3.complete
    assert p3.answers == p3.expected_answers == 4 * len(plan.subjects)
    assert p3.found == sum(len(s.found_by["P3"]) for s in plan.subjects)
    assert p3.found + p3.not_found == p3.answers and p3.refused == 0
    assert (p3.p50_s, p3.p99_s) == (0.02, 0.04)


def test_the_queries_table_shows_every_kind(plan: QueryPlan) -> None:
    output = io.StringIO()
    Console(file=output, width=200).print(queries_table(_answered(plan)))
    text = output.getvalue()
    for kind in QUERY_KINDS:
        assert f"{kind.code} {kind.name}" in text
    assert f"{len(plan.subjects)} of {len(plan.subjects)}" in text and "p99 ms" in text


def _first(run: QueryRun, wanted: Callable[[AskedQuery], bool]) -> int:
    return next(i for i, a in enumerate(run.asked) if wanted(a))


def _broken(run: QueryRun, index: int, **changes: object) -> QueryRun:
    asked = list(run.asked)
    asked[index] = dataclasses.replace(asked[index], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(run, asked=tuple(asked))


def test_the_query_checks_pass_on_correct_answers_and_fail_on_each_fault(
    scenario: Scenario, plan: QueryPlan
) -> None:
    expected = expected_outcome(scenario)
    observed = Observed()

    def failed(run: QueryRun) -> list[str]:
        verdict = judge(scenario, expected, observed, run)
        return [c.name for c in verdict.checks if not c.passed and c.name.startswith("queries")]

    good = _answered(plan)
    assert failed(good) == []
    assert not any(c.name.startswith("queries") for c in judge(scenario, expected, observed).checks)
    known = _first(good, lambda a: bool(a.found_by) and len(a.expected) > 1)
    unknown = _first(good, lambda a: not a.found_by)
    unit = good.asked[known].expected[0]
    silent = {u: s for u, s in good.asked[known].statuses.items() if u != unit}
    missing_found = {u: "NOT_FOUND" for u in good.asked[known].expected}
    found_unknown = {u: "FOUND" for u in good.asked[unknown].expected}
    refused = {**good.asked[unknown].statuses, good.asked[unknown].expected[0]: "REFUSED"}
    cases = {
        "queries: every responder answered every query": [
            _broken(good, known, statuses=silent),
            dataclasses.replace(good, planned=good.planned + 1),
        ],
        "queries: debtors on record FOUND by the units holding them": [
            _broken(good, known, statuses=missing_found)
        ],
        "queries: unknown subjects NOT_FOUND from every responder": [
            _broken(good, unknown, statuses=found_unknown)
        ],
    }
    for name, runs in cases.items():
        for run in runs:
            assert name in failed(run)
    assert set(failed(_broken(good, unknown, statuses=refused))) == {
        "queries: unknown subjects NOT_FOUND from every responder",
        "queries: no answer refused",
    }


def test_a_new_run_removes_only_earlier_runs_reference_data(tmp_path: Path) -> None:
    own = "demo20261127051431-"
    for name in ("demo20261127050000-", own, "e2edemo1234abcd-", "notes"):
        (tmp_path / name / "responders").mkdir(parents=True)
    assert remove_earlier_sources(tmp_path, "", own) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [own, "e2edemo1234abcd-", "notes"]
