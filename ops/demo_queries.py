"""The demo's query phase: police responders answer the courts' P1-P5 queries.

From the scenario and its seed, :func:`plan_queries` decides which courts ask about which
of their debtors, and what each responder unit (every unit the agency list's ``national``
rule names for the three police roles) has on record: a sample of the debtors (identity
and documents at their home province's public security, crossings at one or two border
units, hotel stays at one or two public security units, vehicles at one traffic unit)
among a few hundred generated rows. The other debtors asked about, and one person per
court that no one has heard of, are on no record: every responder must say NOT_FOUND.

:func:`load_reference_data` writes each unit's SQLite source, :class:`ResponderFleet`
runs one ``zf801 responder`` per unit, and :func:`ask_queries` lets each court ask and
records, per query, which unit answered what and how fast (:class:`QueryRun`), for
:mod:`ops.scenario_report` to judge against the plan.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError

from consumers.query_client import QueryClient, QueryOutcome
from consumers.query_source import SqliteQuerySource
from consumers.runtime import Runtime
from ops.deployment import (
    Deployment,
    DeploymentError,
    is_earlier_run,
    spawn,
    stop_group,
    zf801_command,
)
from ops.reference_data import generate, rows_for_person
from ops.scenario import Scenario, ScenarioOrder
from ops.scenario_values import PROVINCE_PLACES, id_number, person_name
from schemas.agencies import NATIONAL, AgencyRole, get_agency, load_agencies
from schemas.queries import QUERY_KINDS, QueryKind, query_kind, responders
from topics.acls import group_prefix
from topics.clients import kafka_admin

__all__ = [
    "AskedQuery",
    "KindSummary",
    "PlannedSubject",
    "QueryPlan",
    "QueryRun",
    "ResponderFleet",
    "ask_queries",
    "load_reference_data",
    "percentile",
    "plan_queries",
    "remove_earlier_sources",
    "summarise",
]

Row = tuple[str, dict[str, Any]]
Advance = Callable[[int], None]

_SUBJECTS_PER_COURT = 5
_FILLER_ROWS = 250
_UNKNOWN_EVERY = 3
"""Of the debtors asked about, every third one is on no record."""
_ROLE_ROWS: Mapping[AgencyRole, frozenset[str]] = {
    AgencyRole.PUBLIC_SECURITY: frozenset({"person", "document", "hotel_stay"}),
    AgencyRole.BORDER_CONTROL: frozenset({"crossing"}),
    AgencyRole.TRAFFIC_MANAGEMENT: frozenset({"vehicle"}),
}
"""The kinds of filler rows each role's source holds."""
_DEBTOR, _PRESERVED = "JUDGMENT_DEBTOR", "PRESERVATION_DEFENDANT"
_REASON = "查明被执行人身份及财产线索，以便采取强制执行措施。"
_LEGAL_BASIS = "《中华人民共和国民事诉讼法》第二百五十二条、第二百五十五条"
_STOP_TIMEOUT_S = 20.0
_POLL_S = 0.2
_LOG_TAIL_BYTES = 2000


# --- the plan (pure) ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PlannedSubject:
    """A person a court asks about, and which units must find them, per kind."""

    court: str
    case_number: str
    handler: Mapping[str, str]
    name: str
    id_number: str
    found_by: Mapping[str, frozenset[str]]
    """Kind code (P1-P5) -> the units holding records of the subject for that kind;
    empty for a subject on no record."""

    @property
    def on_record(self) -> bool:
        return any(self.found_by.values())

    def query(self, kind: QueryKind) -> dict[str, Any]:
        """The query of ``kind`` about the subject, in the JSON mapping."""
        document: dict[str, Any] = {
            "requesting_court_code": self.court,
            "case_number": self.case_number,
            "handler": dict(self.handler),
            "subject_role": _DEBTOR if _DEBTOR in kind.purposes else _PRESERVED,
            "reason": _REASON,
            "legal_basis": _LEGAL_BASIS,
        }
        if kind.code == "P4":
            owner = {"name": self.name, "id_number": self.id_number, "organisation_code": None}
            document["owner"] = {"kind": "NATURAL_PERSON", **owner}
            document["plate_number"] = None
        else:
            document["subject"] = {"name": self.name, "id_number": self.id_number}
        if kind.code == "P5":
            document |= {"stays_from": None, "stays_until": None}
        return document


@dataclass(frozen=True)
class QueryPlan:
    """Who asks about whom, and every responder unit's reference rows."""

    units: tuple[str, ...]
    rows: Mapping[str, tuple[Row, ...]]
    subjects: tuple[PlannedSubject, ...]

    @property
    def courts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.court for s in self.subjects))

    @property
    def queries(self) -> int:
        return len(self.subjects) * len(QUERY_KINDS)

    @property
    def row_count(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


def responder_units() -> tuple[str, ...]:
    """Every unit the ``national`` rule names for a police role, in the list's order."""
    rule = load_agencies().rules.get(NATIONAL, {})
    return tuple(dict.fromkeys(code for role in _ROLE_ROWS for code in rule.get(role, ())))


def plan_queries(scenario: Scenario, *, courts: int, filler: int = _FILLER_ROWS) -> QueryPlan:
    """The query phase of ``scenario``: the ``courts`` courts with the most debtors ask
    about up to five of them each (see the module docstring). One scenario, one plan."""
    rng = random.Random(f"{scenario.seed}/queries")  # noqa: S311 - reproducible on purpose
    units = responder_units()
    rows: dict[str, list[Row]] = {unit: [] for unit in units}
    asked = _debtors_asked(scenario, courts, rng)
    taken = {str(o.subject.id_number) for o in scenario.orders if o.subject.id_number}
    subjects = []
    for index, order in enumerate(asked):
        found_by: dict[str, frozenset[str]] = {}
        if index % _UNKNOWN_EVERY != _UNKNOWN_EVERY - 1:
            found_by = _place_records(order.subject.name, str(order.subject.id_number), rng, rows)
        subjects.append(_subject(order, order.subject.name, str(order.subject.id_number),
                                 found_by))  # fmt: skip
    for court in dict.fromkeys(order.court for order in asked):
        order = next(o for o in asked if o.court == court)
        number, name = _stranger(rng, order, taken)
        subjects.append(_subject(order, name, number, {}))
    for unit in units:
        rows[unit].extend(_filler(unit, filler, rng.randrange(2**32), taken))
    return QueryPlan(units, {u: tuple(r) for u, r in rows.items()}, tuple(subjects))


def _debtors_asked(scenario: Scenario, courts: int, rng: random.Random) -> list[ScenarioOrder]:
    """One order per person asked about (its court asks, under its case number)."""
    by_court: dict[str, dict[str, ScenarioOrder]] = {}
    for order in scenario.orders:
        if not order.subject.is_vehicle and order.subject.id_number:
            by_court.setdefault(order.court, {}).setdefault(order.subject.id_number, order)
    chosen = sorted(by_court, key=lambda court: (-len(by_court[court]), court))[:courts]
    asked: list[ScenarioOrder] = []
    seen: set[str] = set()
    for court in chosen:
        fresh = [o for number, o in by_court[court].items() if number not in seen]
        picked = rng.sample(fresh, min(_SUBJECTS_PER_COURT, len(fresh)))
        seen.update(str(o.subject.id_number) for o in picked)
        asked.extend(picked)
    return asked


def _subject(
    order: ScenarioOrder, name: str, number: str, found_by: Mapping[str, frozenset[str]]
) -> PlannedSubject:
    handler = order.record["handler"]
    return PlannedSubject(order.court, str(order.record["case_number"]),
                          {"name": handler["name"], "phone": handler["phone"]}, name, number,
                          {kind.code: found_by.get(kind.code, frozenset())
                           for kind in QUERY_KINDS})  # fmt: skip


def _stranger(rng: random.Random, order: ScenarioOrder, taken: set[str]) -> tuple[str, str]:
    """A person of the court's province on no one's record."""
    province = get_agency(order.court).province
    areas = PROVINCE_PLACES[province.code].areas if province else None
    while True:
        number, female = id_number(rng, areas)
        if number not in taken:
            taken.add(number)
            return number, person_name(rng, female)


def _place_records(
    name: str, number: str, rng: random.Random, rows: dict[str, list[Row]]
) -> dict[str, frozenset[str]]:
    """Spread a debtor's records over the units that would hold them; who holds what."""
    records = rows_for_person(number, name, rng)
    by_kind: dict[str, list[Row]] = {}
    for row in records:
        by_kind.setdefault(row[0], []).append(row)
    rule = load_agencies().rules[NATIONAL]
    home = responders(query_kind("P1"), {"subject": {"id_number": number}})
    for unit in home:
        rows[unit].extend(by_kind.get("person", []) + by_kind.get("document", []))
    crossings = _spread(rng, by_kind.get("crossing", []), rule[AgencyRole.BORDER_CONTROL], rows)
    stays = _spread(rng, by_kind.get("hotel_stay", []), rule[AgencyRole.PUBLIC_SECURITY], rows)
    vehicles = _spread(rng, by_kind.get("vehicle", []), rule[AgencyRole.TRAFFIC_MANAGEMENT],
                       rows, 1)  # fmt: skip
    return {"P1": frozenset(home), "P2": frozenset(home), "P3": crossings, "P4": vehicles,
            "P5": stays}  # fmt: skip


def _spread(
    rng: random.Random,
    records: Sequence[Row],
    units: Sequence[str],
    rows: dict[str, list[Row]],
    most: int = 2,
) -> frozenset[str]:
    """Deal ``records`` round-robin to one or ``most`` of ``units``; the units dealt to."""
    if not records:
        return frozenset()
    chosen = rng.sample(list(units), rng.randint(1, min(most, len(records), len(units))))
    for index, row in enumerate(records):
        rows[chosen[index % len(chosen)]].append(row)
    return frozenset(chosen)


def _filler(unit: str, count: int, seed: int, taken: set[str]) -> Iterator[Row]:
    """``count`` generated rows of the kinds the unit's role holds, about no one asked of."""
    kinds = _ROLE_ROWS[get_agency(unit).role]
    wanted = (
        row for row in generate(2**31, seed) if row[0] in kinds and _person_of(row) not in taken
    )
    return islice(wanted, count)


def _person_of(row: Row) -> str | None:
    kind, fields = row
    holder = fields.get("owner") or {} if kind == "vehicle" else fields
    number = holder.get("id_number")
    return str(number) if number else None


# --- the responders ---------------------------------------------------------------------------
def load_reference_data(plan: QueryPlan, directory: Path, advance: Advance) -> dict[str, Path]:
    """Each unit's SQLite source under ``directory`` (rows checked as they are stored)."""
    paths = {}
    for unit in plan.units:
        path = paths[unit] = directory / f"{unit}.sqlite"
        with SqliteQuerySource(path) as source:
            by_kind: dict[str, list[dict[str, Any]]] = {}
            for kind, row in plan.rows[unit]:
                by_kind.setdefault(kind, []).append(row)
            for kind, rows in by_kind.items():
                advance(source.add_many(kind, rows))
    return paths


def remove_earlier_sources(root: Path, user_prefix: str, own_prefix: str) -> int:
    """Delete the reference data of earlier demo runs (``root/<their prefix>``), as their
    topics are deleted; the number of runs removed."""
    earlier = [path for path in root.glob("*") if path.is_dir()
               and is_earlier_run(path.name, user_prefix, own_prefix)]  # fmt: skip
    for path in earlier:
        shutil.rmtree(path, ignore_errors=True)
    return len(earlier)


@dataclass
class ResponderFleet:
    """One ``zf801 responder`` subprocess per unit, each in its own process group, logging
    next to the worker's log."""

    bus: Deployment
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def log_path(self, unit: str) -> Path:
        return self.bus.log_path.with_name(f"responder-{unit}.log")

    def group(self, unit: str) -> str:
        return f"{group_prefix(self.bus.catalog, get_agency(unit))}responder"

    def start(self, sources: Mapping[str, Path]) -> None:
        env = self.bus.worker_env()
        for unit, path in sources.items():
            state = path.with_name(f"{unit}-state.sqlite")  # this run's answers and quotas
            command = zf801_command("responder", "--as", unit, "--db", str(path),
                                    "--state", str(state))  # fmt: skip
            self.processes[unit] = spawn(command, env, self.log_path(unit))

    def wait_ready(self, timeout_s: float, progress: Callable[[int, int], None]) -> None:
        """Until every unit's consumer group is Stable with a member."""
        admin = kafka_admin(self.bus.settings, client_id="zf801-demo")
        deadline = time.monotonic() + timeout_s
        waiting = dict.fromkeys(self.processes)
        try:
            while waiting and time.monotonic() < deadline:
                self._check_running()
                with contextlib.suppress(KafkaError):
                    groups = admin.describe_groups([self.group(u) for u in waiting])
                    for unit in list(waiting):
                        group = groups.get(self.group(unit), {})
                        if group.get("group_state") == "Stable" and group.get("members"):
                            del waiting[unit]
                progress(len(self.processes) - len(waiting), len(self.processes))
                if waiting:
                    time.sleep(_POLL_S)  # polling the broker's state, not waiting on a guess
        finally:
            admin.close()
        if waiting:
            raise DeploymentError(
                f"responder(s) {', '.join(waiting)} did not join their consumer group within "
                f"{timeout_s:.0f} s; see {self.log_path(next(iter(waiting)))}"
            )

    def _check_running(self) -> None:
        for unit, process in self.processes.items():
            if process.poll() is not None:
                tail = self.log_path(unit).read_bytes()[-_LOG_TAIL_BYTES:]
                raise DeploymentError(
                    f"the responder of {unit} exited with code {process.returncode}; log "
                    f"tail:\n{tail.decode('utf-8', 'replace')}"
                )

    def stop(self) -> None:
        """SIGTERM to every responder's process group, SIGKILL after a grace period."""
        processes, self.processes = self.processes, {}
        for process in processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():  # all were told at once; each then gets its grace
            stop_group(process, timeout_s=_STOP_TIMEOUT_S)


# --- asking -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AskedQuery:
    """One query the demo asked: who was to find the subject, and who answered what."""

    kind: str
    court: str
    id_number: str
    found_by: frozenset[str]
    """The units given records of the subject for this kind (the plan's expectation)."""
    expected: tuple[str, ...]
    """The units the court's client waited for."""
    statuses: Mapping[str, str]
    """Unit -> the status of its answer (FOUND, NOT_FOUND, REFUSED)."""
    latencies: tuple[float, ...]
    """Seconds from sending to reading each answer."""

    @property
    def complete(self) -> bool:
        return bool(self.expected) and all(unit in self.statuses for unit in self.expected)

    def units(self, status: str) -> frozenset[str]:
        return frozenset(unit for unit, given in self.statuses.items() if given == status)


@dataclass(frozen=True)
class QueryRun:
    """What the query phase asked and saw."""

    planned: int
    asked: tuple[AskedQuery, ...]
    units: tuple[str, ...]
    rows: int


def ask_queries(
    bus: Deployment, plan: QueryPlan, wait_s: float, advance: Advance
) -> tuple[AskedQuery, ...]:
    """Every court asks its queries, kind by kind (the courts at once)."""

    def court_asks(court: str) -> list[AskedQuery]:
        subjects = [s for s in plan.subjects if s.court == court]
        asked: list[AskedQuery] = []
        with QueryClient(Runtime.connect(court, bus.settings)) as client:
            for kind in QUERY_KINDS:
                outcomes = client.ask_all(kind, [s.query(kind) for s in subjects], wait_s=wait_s)
                asked.extend(_asked(kind, s, o) for s, o in zip(subjects, outcomes, strict=True))
                advance(len(subjects))
        return asked

    with ThreadPoolExecutor(max_workers=max(1, len(plan.courts))) as pool:
        return tuple(a for asked in pool.map(court_asks, plan.courts) for a in asked)


def _asked(kind: QueryKind, subject: PlannedSubject, outcome: QueryOutcome) -> AskedQuery:
    answers = outcome.answers.values()
    return AskedQuery(kind.code, subject.court, subject.id_number, subject.found_by[kind.code],
                      outcome.expected, {a.unit: a.status for a in answers},
                      tuple(a.received_s for a in answers if a.received_s is not None))  # fmt: skip


# --- summaries (pure) ----------------------------------------------------------------------
def percentile(values: Iterable[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values``; None if empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class KindSummary:
    """One kind's queries: how many, how complete, what the answers said, how fast."""

    kind: str
    queries: int
    complete: int
    answers: int
    expected_answers: int
    found: int
    not_found: int
    refused: int
    p50_s: float | None
    p99_s: float | None


def summarise(asked: Sequence[AskedQuery]) -> list[KindSummary]:
    """A :class:`KindSummary` per kind, P1 to P5 (answers counted per unit)."""
    summaries = []
    for kind in QUERY_KINDS:
        mine = [a for a in asked if a.kind == kind.code]
        statuses = [s for a in mine for s in a.statuses.values()]
        latencies = [t for a in mine for t in a.latencies]
        summaries.append(KindSummary(
            kind.code, len(mine), sum(a.complete for a in mine), len(statuses),
            sum(len(a.expected) for a in mine), statuses.count("FOUND"),
            statuses.count("NOT_FOUND"), statuses.count("REFUSED"),
            percentile(latencies, 50), percentile(latencies, 99),
        ))  # fmt: skip
    return summaries
