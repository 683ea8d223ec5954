"""``zf801 demo`` end to end: broker, topics, trust set, a worker subprocess, and a seeded
scenario played through them, checked against its expected outcome; then courts ask P1-P5
queries of a ``zf801 responder`` per police unit (:mod:`ops.demo_queries`).

Each run has topics of its own (prefix ``demo<UTC time>-``), so a second run, even with
the same seed, starts from a clean bus; the topics of earlier runs are removed first.
The worker is told to expect acknowledgements within ``ack_timeout_s`` (short, so the
overdue alert shows up during the demo). Every wait is on the broker's state (a consumer
group's committed offsets reaching the end of its topics), except the one wait for the
expiring order's control period to end, which is a wait for an instant of time.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ops.centre.server import serving
from ops.demo_debtors import DebtorRun, play_debtor_list
from ops.demo_lifecycle import LifecycleRun, play_lifecycle
from ops.demo_play import Observed, Player, read_outcome
from ops.demo_queries import (
    QueryPlan,
    QueryRun,
    ResponderFleet,
    ask_queries,
    load_reference_data,
    plan_queries,
    remove_earlier_sources,
)
from ops.deployment import Deployment
from ops.scenario import Expected, Scenario, expected_outcome
from ops.scenario_gen import generate_scenario
from ops.scenario_report import Verdict, judge
from schemas.settings import Settings

__all__ = ["DemoOptions", "DemoOutcome", "run_demo"]


@dataclass(frozen=True)
class DemoOptions:
    seed: int = 801
    orders: int = 300
    sightings: int = 3000
    ack_timeout_s: float = 15.0
    prefix: str | None = None
    """Topic prefix of the run; None: ``<ZF801_TOPIC_PREFIX>demo<UTC time>-``."""
    remove_earlier_runs: bool = True
    worker_start_timeout_s: float = 120.0
    catch_up_timeout_s: float = 120.0
    start_broker: bool = True
    query_courts: int = 4
    """Courts that ask P1-P5 queries of the police responders; 0: no query phase."""
    query_wait_s: float = 20.0
    responder_start_timeout_s: float = 60.0
    debtor_list: bool = True
    centre_port: int | None = None
    """Serve the command centre on this port while the demo plays (0: any free port)."""
    centre_linger_s: float = 0.0
    """Seconds the command centre stays open after the demo."""
    """Play the dishonest-debtor list phase (a listing, its subscribers, a removal)."""
    lifecycle: bool = True
    """Play the order lifecycle phase (action notices, expiry warnings, clocks, an anomaly)."""
    hit_confirm_s: dict[str, float] = field(
        default_factory=lambda: {"national/LOCATE_DEBTOR": 10.0}
    )
    """The worker's hit confirmation limits: seconds for the SPC's orders (the lifecycle
    phase's escalation), the defaults (minutes) elsewhere."""


@dataclass
class DemoOutcome:
    scenario: Scenario
    expected: Expected
    observed: Observed
    verdict: Verdict
    prefix: str
    worker_log: str
    timings: list[tuple[str, float]] = field(default_factory=list)
    queries: QueryRun | None = None
    debtors: DebtorRun | None = None
    lifecycle: LifecycleRun | None = None

    @property
    def passed(self) -> bool:
        phases = (self.debtors, self.lifecycle)
        return self.verdict.passed and all(p.passed for p in phases if p is not None)


# The debtor the demo lists and removes (the README's example ID number).
_DEMO_DEBTOR = "11010519491231002X"


class _Phases:
    """Times each phase and shows it as a line of the progress display."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.timings: list[tuple[str, float]] = []

    @contextmanager
    def phase(self, name: str, total: float | None = None) -> Iterator[TaskID]:
        task = self.progress.add_task(name, total=total)
        began = time.monotonic()
        try:
            yield task
        finally:
            elapsed = time.monotonic() - began
            self.timings.append((name, elapsed))
            done = self.progress.tasks[task].total or 1
            self.progress.update(task, total=done, completed=done)

    def advance(self, task: TaskID) -> Callable[[int], None]:
        return lambda step: self.progress.advance(task, step)

    def report(self, task: TaskID) -> Callable[[int, int], None]:
        return lambda done, total: self.progress.update(task, completed=done, total=total)


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _prefix(settings: Settings, options: DemoOptions) -> str:
    if options.prefix is not None:
        return options.prefix
    return f"{settings.topic_prefix}demo{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}-"


def run_demo(options: DemoOptions, settings: Settings, console: Console) -> DemoOutcome:
    """Play the scenario of ``options`` and judge what arrived (see the module docstring)."""
    prefix = _prefix(settings, options)
    limits = {**settings.hit_confirm_s, **options.hit_confirm_s}
    update = {"topic_prefix": prefix, "ack_timeout_s": options.ack_timeout_s,
              "hit_confirm_s": limits}  # fmt: skip
    bus = Deployment.create(settings.model_copy(update=update))
    fleet = ResponderFleet(bus)
    queries = debtors = lifecycle = None
    centre = ExitStack()
    with _progress(console) as progress:
        phases = _Phases(progress)
        try:
            _deploy(bus, phases, options, settings.topic_prefix)
            _serve_centre(centre, bus, options, progress.console)
            scenario = generate_scenario(options.seed, orders=options.orders,
                                         sightings=options.sightings,
                                         base_time=dt.datetime.now(dt.UTC))  # fmt: skip
            late_window = dt.timedelta(seconds=bus.settings.late_window_s)
            expected = expected_outcome(scenario, late_window)
            plan = _start_responders(fleet, phases, scenario, options, settings.topic_prefix)
            _play(bus, phases, scenario, options)
            if plan is not None:
                queries = _ask(fleet, phases, plan, options)
            with phases.phase("reading every court's alerts, blocks, dead letters"):
                observed = read_outcome(bus, scenario, expected, options.ack_timeout_s + 60)
            if options.lifecycle:
                with phases.phase("order lifecycle: action notices, warnings, an anomaly"):
                    special = scenario.special
                    lifecycle = play_lifecycle(bus, observed, special.expired_order)
            if options.debtor_list:
                with phases.phase("dishonest-debtor list: listing, subscribers, removal"):
                    debtors = play_debtor_list(bus, _DEMO_DEBTOR)
            with phases.phase("log checkpoints (zf801 checkpointer --once)"):
                progress.console.log(bus.checkpoint_once())
        finally:
            centre.close()
            if fleet.processes:
                with phases.phase("stopping the responders"):
                    fleet.stop()
            with phases.phase("stopping the worker"):
                bus.stop_worker()
    return DemoOutcome(
        scenario=scenario,
        expected=expected,
        observed=observed,
        verdict=judge(scenario, expected, observed, queries),
        prefix=prefix,
        worker_log=str(bus.log_path),
        timings=phases.timings,
        queries=queries,
        debtors=debtors,
        lifecycle=lifecycle,
    )


def _serve_centre(
    stack: ExitStack, bus: Deployment, options: DemoOptions, console: Console
) -> None:
    """The command centre while the demo plays (``--centre-port``), its address printed
    whole, for a copy and paste."""
    if options.centre_port is None:
        return

    def say(line: str) -> None:
        console.print(line, soft_wrap=True, highlight=False, markup=False)

    stack.enter_context(serving(bus.settings, options.centre_port, say, options.centre_linger_s))


def _deploy(bus: Deployment, phases: _Phases, options: DemoOptions, user_prefix: str) -> None:
    # Keys first: under mTLS the broker's own identity and every client's come from them.
    with phases.phase("demo trust set (keys)"):
        issued = bus.ensure_keys(dt.datetime.now(dt.UTC))
        phases.progress.console.log(f"key store {bus.keystore.directory}: {issued} key(s) issued")
    if options.start_broker:
        with phases.phase("broker"):
            phases.progress.console.log(bus.start_broker())
    with phases.phase("topics and ACLs" if bus.settings.security == "mtls" else "topics"):
        if options.remove_earlier_runs:
            removed = bus.remove_earlier_runs(user_prefix)
            if removed:
                phases.progress.console.log(f"removed {removed} topic(s) of earlier demo runs")
        created = bus.apply_topics()
        phases.progress.console.log(
            f"{created} topics created under prefix {bus.settings.topic_prefix}"
        )
    with phases.phase("worker start (zf801 worker)"):
        bus.start_worker()
        bus.wait_worker_ready(options.worker_start_timeout_s)


def _start_responders(
    fleet: ResponderFleet,
    phases: _Phases,
    scenario: Scenario,
    options: DemoOptions,
    user_prefix: str,
) -> QueryPlan | None:
    """Fill every responder unit's reference data and start its ``zf801 responder``; they
    join their groups while the scenario plays (waiting for them after it costs more)."""
    if options.query_courts <= 0:
        return None
    bus = fleet.bus
    plan = plan_queries(scenario, courts=options.query_courts)
    root, own = bus.settings.home / "demo", bus.settings.topic_prefix
    if options.remove_earlier_runs:
        remove_earlier_sources(root, user_prefix, own)
    directory = root / own / "responders"
    with phases.phase(f"reference data of {len(plan.units)} responders", plan.row_count) as task:
        sources = load_reference_data(plan, directory, phases.advance(task))
    with phases.phase("responders start (zf801 responder)"):
        fleet.start(sources)
    return plan


def _ask(fleet: ResponderFleet, phases: _Phases, plan: QueryPlan, options: DemoOptions) -> QueryRun:
    with phases.phase("responders join their groups", len(plan.units)) as task:
        fleet.wait_ready(options.responder_start_timeout_s, phases.report(task))
    courts = len(plan.courts)
    with phases.phase(f"{courts} courts ask P1-P5 queries", plan.queries) as task:
        asked = ask_queries(fleet.bus, plan, options.query_wait_s, phases.advance(task))
    return QueryRun(plan.queries, asked, plan.units, plan.row_count)


def _play(bus: Deployment, phases: _Phases, scenario: Scenario, options: DemoOptions) -> None:
    player = Player(bus)
    timeout = options.catch_up_timeout_s
    try:
        with phases.phase("courts publish orders", len(scenario.orders)) as task:
            player.orders(scenario, phases.advance(task))
        with phases.phase("worker's watchlist catches up") as task:
            bus.wait_orders_applied(timeout, phases.report(task))
        with phases.phase("police acknowledge", len(scenario.acknowledgements)) as task:
            player.acknowledgements(scenario, phases.advance(task))
            bus.wait_orders_applied(timeout)
        with phases.phase("courts release orders", len(scenario.releases)) as task:
            player.releases(scenario, phases.advance(task))
            bus.wait_orders_applied(timeout)
        with phases.phase("waiting for the expiring order's end"):
            time.sleep(
                max(0.0, (scenario.sightings_not_before - dt.datetime.now(dt.UTC)).total_seconds())
            )
        with phases.phase("police report sightings", len(scenario.sightings)) as task:
            player.sightings(scenario, phases.advance(task))
        with phases.phase("matcher catches up") as task:
            bus.wait_sightings_matched(timeout, phases.report(task))
    finally:
        player.close()
