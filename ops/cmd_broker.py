"""``zf801 broker``: fetch, start, stop and inspect the local Apache Kafka from this checkout."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ops.broker import LocalCluster
from ops.broker_config import QUORUM_SIZES
from ops.broker_fetch import fetch_kafka
from schemas.errors import BusError
from schemas.settings import get_settings

__all__ = ["broker_app"]

broker_app = typer.Typer(
    help=(
        "The local Apache Kafka (KRaft, combined broker+controller) run with plain java. "
        "One node on ZF801_BROKER_PORT (9092) by default; --nodes 3 runs a quorum on "
        "ZF801_QUORUM_BROKER_PORT.. (9192-9194) for fault tests."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

_console = Console()
_errors = Console(stderr=True)

_StartNodes = Annotated[
    int, typer.Option("--nodes", "-n", help="1 (single node) or 3 (quorum, RF 3, min ISR 2).")
]
_AnyNodes = Annotated[
    int | None,
    typer.Option("--nodes", "-n", help="1 or 3; default: every local cluster of this checkout."),
]


def _fail(exc: BusError) -> typer.Exit:
    _errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def _check_size(nodes: int) -> None:
    if nodes not in QUORUM_SIZES:
        raise typer.BadParameter(f"--nodes={nodes}: a local cluster has 1 or 3 nodes")


@broker_app.command("fetch")
def fetch(
    force: Annotated[bool, typer.Option(help="Fetch again even if the jars are there.")] = False,
) -> None:
    """Fetch the pinned Kafka jars from Maven Central (skipped when already fetched)."""
    settings = get_settings()
    try:
        with _console.status(f"Fetching Apache Kafka {settings.kafka_version} with Maven…"):
            report = fetch_kafka(settings, force=force)
    except BusError as exc:
        raise _fail(exc) from exc
    verb = "already fetched" if report.skipped else f"fetched in {report.seconds:.1f} s"
    _console.print(f"Kafka {report.version}: {report.jar_count} jars {verb} → {report.libs_dir}")


@broker_app.command("start")
def start(nodes: _StartNodes = 1) -> None:
    """Start the local cluster (fetching the jars if needed); print its bootstrap address."""
    _check_size(nodes)
    settings = get_settings()
    cluster = LocalCluster.from_settings(settings, nodes)
    try:
        with _console.status(f"Starting Kafka ({nodes} node{'s' * (nodes > 1)})…"):
            fetch_kafka(settings)
            report = cluster.start()
    except BusError as exc:
        raise _fail(exc) from exc
    for note in report.notes:
        _console.print(f"[yellow]{note}[/]")
    if report.started:
        started = ", ".join(map(str, report.started))
        _console.print(f"Started node(s) {started} in {report.seconds:.1f} s.")
    else:
        _console.print("Already running; nothing started.")
    _console.print(f"bootstrap servers: [bold]{report.bootstrap_servers}[/]")


@broker_app.command("stop")
def stop(nodes: _AnyNodes = None) -> None:
    """Stop the nodes this checkout started (by pid file), and nothing else."""
    settings = get_settings()
    for size in _sizes(nodes):
        try:
            report = LocalCluster.from_settings(settings, size).stop()
        except BusError as exc:
            raise _fail(exc) from exc
        for note in report.notes:
            _console.print(f"[yellow]{size}-node: {note}[/]")
        if report.stopped:
            killed = f" (SIGKILL: {list(report.killed)})" if report.killed else ""
            _console.print(
                f"{size}-node: stopped node(s) {list(report.stopped)} "
                f"in {report.seconds:.1f} s{killed}."
            )
        else:
            _console.print(f"{size}-node: nothing running.")


@broker_app.command("status")
def status(nodes: _AnyNodes = None) -> None:
    """Show each node: pid, state, addresses, resident memory and data folder."""
    settings = get_settings()
    table = Table(title=f"Local Kafka {settings.kafka_version}")
    for column in ("cluster", "node", "pid", "state", "broker", "controller", "RSS"):
        table.add_column(column, no_wrap=True)
    footnotes = []
    for size in _sizes(nodes):
        cluster = LocalCluster.from_settings(settings, size)
        for row in cluster.status():
            state = "[green]running[/]" if row.alive else "[dim]stopped[/]"
            if row.pid and not row.alive:
                state = "[red]dead[/]"
                footnotes.append(f"{size}-node node {row.node_id}: {row.note}")
            rss = f"{row.rss_kib / 1024:.0f} MiB" if row.rss_kib else "-"
            table.add_row(
                f"{size}-node",
                str(row.node_id),
                str(row.pid or "-"),
                state,
                row.bootstrap_address,
                str(row.controller_port),
                rss,
            )
        footnotes.append(f"{size}-node data: {_shown(cluster.layout.cluster_dir)}/node-<n>/data")
    _console.print(table)
    for line in footnotes:
        _console.print(line, highlight=False)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies under it (shorter to read)."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def _sizes(nodes: int | None) -> tuple[int, ...]:
    if nodes is None:
        return QUORUM_SIZES
    _check_size(nodes)
    return (nodes,)
