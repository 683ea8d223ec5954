"""``zf801 demo``: the whole bus on this machine, playing a seeded scenario and checking it."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from kafka.errors import KafkaError
from rich.console import Console

from ops.demo import DemoOptions, DemoOutcome, run_demo
from ops.demo_debtors import debtor_table
from ops.demo_lifecycle import lifecycle_table
from ops.errors import operator_message
from ops.scenario_gen import MIN_ORDERS, MIN_SIGHTINGS
from ops.scenario_report import render
from schemas.errors import BusError
from schemas.settings import MAX_IDLE_S, get_settings

__all__ = ["demo"]

_console = Console()


def demo(  # noqa: PLR0917 - a typer command: its options are its parameters
    seed: Annotated[int, typer.Option("--seed", help="Seed of the scenario.")] = 801,
    orders: Annotated[
        int, typer.Option("--orders", min=MIN_ORDERS, help="Orders the courts issue.")
    ] = 300,
    sightings: Annotated[
        int, typer.Option("--sightings", min=MIN_SIGHTINGS, help="Sightings the police report.")
    ] = 3000,
    ack_timeout: Annotated[
        float,
        typer.Option(
            "--ack-timeout",
            min=5.0,
            max=MAX_IDLE_S,
            help="Seconds the police have to acknowledge.",
        ),
    ] = 15.0,
    keep_earlier: Annotated[
        bool, typer.Option("--keep-earlier", help="Keep the topics of earlier demo runs.")
    ] = False,
    query_courts: Annotated[
        int,
        typer.Option(
            "--query-courts",
            min=0,
            help="Courts that ask P1-P5 queries of the police responders (0: none).",
        ),
    ] = 4,
    centre_port: Annotated[
        int | None,
        typer.Option(
            "--centre-port",
            min=0,
            max=65535,
            help="Serve the command centre's page on this port while the demo plays "
            "(its address is printed); 0: any free port.",
        ),
    ] = None,
    centre_linger: Annotated[
        float,
        typer.Option(
            "--centre-linger",
            min=0.0,
            max=86400.0,
            help="Seconds the command centre stays open after the demo.",
        ),
    ] = 0.0,
) -> None:
    """Start the local Kafka (or use KAFKA_BOOTSTRAP_SERVERS), apply the topics, create the
    demo trust set, start `zf801 worker`, and play a scenario generated from --seed: courts
    in three provinces issue orders, police units acknowledge them and report sightings
    (a few forged), courts release some orders. Then every court reads its alerts and the
    report shows orders, acknowledgements and hits per court, blocked transfers, expiry
    notices and dead letters. Then a `zf801 responder` per police unit answers P1-P5
    queries of several courts about their debtors from its own reference data (some on
    record, some unknown), and the report shows the queries per kind.

    Exit 0 when the hits that arrived are exactly the expected ones and every special case
    (two courts, release, expiry, blocked transfer, overdue acknowledgement, forged
    sighting) came out as it must, and every query was answered by every responder, found
    exactly where its records are and refused nowhere; 1 otherwise. The worker's log is
    .zf801/logs/worker.log, the responders' beside it.
    """
    began = time.monotonic()
    # The demo's own trust set and match keys use the demo secrets: demo mode accepts them.
    settings = get_settings().model_copy(update={"mode": "demo"})
    options = DemoOptions(
        seed=seed,
        orders=orders,
        sightings=sightings,
        ack_timeout_s=ack_timeout,
        remove_earlier_runs=not keep_earlier,
        query_courts=query_courts,
        centre_port=centre_port,
        centre_linger_s=centre_linger,
    )
    try:
        outcome = run_demo(options, settings, _console)
    except (BusError, KafkaError) as exc:
        typer.secho(f"error: demo failed: {operator_message(exc)}", fg="red", err=True)
        raise typer.Exit(1) from exc
    render(_console, scenario=outcome.scenario, expected=outcome.expected,
           observed=outcome.observed, verdict=outcome.verdict, timings=outcome.timings,
           queries=outcome.queries)  # fmt: skip
    if outcome.debtors is not None:
        _console.print(debtor_table(outcome.debtors))
    if outcome.lifecycle is not None:
        _console.print(lifecycle_table(outcome.lifecycle))
    _closing(outcome, time.monotonic() - began)
    if not outcome.passed:
        raise typer.Exit(1)


def _closing(outcome: DemoOutcome, elapsed: float) -> None:
    verdict = "[bold green]PASSED[/]" if outcome.passed else "[bold red]FAILED[/]"
    _console.print(f"demo {verdict} in {elapsed:.1f} s (seed {outcome.scenario.seed})")
    _console.print(
        f"topics of this run: prefix {outcome.prefix} (removed by the next run); e.g.\n"
        f"  ZF801_TOPIC_PREFIX={outcome.prefix} zf801 alerts --court BJ01\n"
        f"worker log: {outcome.worker_log}; the broker keeps running (zf801 broker stop)",
        highlight=False,
    )
