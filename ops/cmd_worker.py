"""``zf801 worker``: run the bus's stream processors (watchlist, matcher, router, timers);
``zf801 history-forwarder``: the sightings history's forwarding, in a process of its own;
``zf801 checkpointer``: the signed log checkpoints (:mod:`consumers.checkpointer`)."""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Annotated

import typer

from consumers.checkpointer import Checkpointer
from consumers.history_loop import HistoryForwarder
from consumers.metrics import ProcessorMetrics, outcome_counts
from consumers.runtime import Runtime
from ops.errors import OpsError, operator_message
from ops.metrics_option import MetricsPort, serve_metrics
from schemas.errors import BusError
from schemas.settings import MAX_IDLE_S, get_settings

__all__ = ["checkpointer", "history_forwarder", "worker"]


def worker(
    agency: Annotated[
        str, typer.Option("--as", help="The bus processor identity that signs hits.")
    ] = "BUS-MATCHER",
    loglevel: Annotated[str, typer.Option(help="faust log level: debug, info, warning.")] = "info",
    metrics_port: MetricsPort = None,
) -> None:
    """Run the matcher worker until stopped (Ctrl-C or SIGTERM).

    Settings come from ZF801_* variables: bootstrap servers, key store and passphrase,
    ZF801_ACK_TIMEOUT_S, ZF801_TIMER_INTERVAL_S, ZF801_WORKER_ID, ZF801_TOPIC_PREFIX.
    In production mode (ZF801_MODE, the default) it refuses to start while
    ZF801_MATCH_KEY_SECRET or ZF801_KEY_PASSPHRASE holds its demo value or is shorter
    than 16 characters.
    """
    try:
        get_settings().require_real_secrets("zf801 worker")
    except BusError as exc:
        raise _fail(exc) from exc
    # faust takes about a second to import; only this command needs it.
    import faust  # noqa: PLC0415

    from consumers.worker import BusWorker  # noqa: PLC0415

    try:
        bus = BusWorker(Runtime.connect(agency))
        serve_metrics(bus.metrics, metrics_port)
    except BusError as exc:
        raise _fail(exc) from exc
    faust.Worker(bus.app, loglevel=loglevel, quiet=True).execute_from_commandline()


def history_forwarder(
    agency: Annotated[
        str, typer.Option("--as", help="The bus processor identity that reads the sightings.")
    ] = "BUS-MATCHER",
    metrics_port: MetricsPort = None,
) -> None:
    """Forward each hotel check-in and border crossing reported on the police side,
    unchanged (still signed by the reporting unit), to the sightings history of the
    reporting unit's province, until stopped (Ctrl-C or SIGTERM). The responders of that
    province keep them (zf801 responder --follow-sightings). At least once: a copy sent
    twice is kept once. Several forwarders share the work as one consumer group."""
    try:
        runtime = Runtime.connect(agency)
    except BusError as exc:
        raise _fail(exc) from exc
    forwarder = HistoryForwarder.for_bus(runtime)
    metrics = ProcessorMetrics("history-forwarder")
    metrics.collect(lambda: [outcome_counts(
        "history-forwarder", {"read": forwarder.read, "forwarded": forwarder.forwarded}
    )])  # fmt: skip
    try:
        serve_metrics(metrics, metrics_port)
    except OpsError as exc:
        runtime.close()
        raise _fail(exc) from exc

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await forwarder.run(stop)

    try:
        asyncio.run(run())
    except BusError as exc:
        raise _fail(exc) from exc
    finally:
        runtime.close()
    typer.echo(f"history forwarder stopped: {forwarder.read} read, {forwarder.forwarded} forwarded")


def checkpointer(
    agency: Annotated[
        str, typer.Option("--as", help="The bus processor identity that signs the checkpoints.")
    ] = "BUS-AUDIT",
    interval_s: Annotated[
        float,
        typer.Option("--interval", min=0.1, max=MAX_IDLE_S, help="Seconds between two rounds."),
    ] = 60.0,
    once: Annotated[bool, typer.Option("--once", help="One round, then stop.")] = False,
    metrics_port: MetricsPort = None,
) -> None:
    """Write a signed log checkpoint (LogCheckpoint on the checkpoint topic) for each
    checkpointed topic partition with new records, every --interval seconds, until
    stopped (Ctrl-C or SIGTERM finish the round in hand). Each continues the partition's
    hash chain from its last checkpoint, so zf801 replay --verify (or a third party, with
    sign/CHECKPOINTS.md) can check the records against them. Run one per deployment."""
    try:
        runtime = Runtime.connect(agency)
    except BusError as exc:
        raise _fail(exc) from exc
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    writer = Checkpointer.for_bus(runtime)
    metrics = ProcessorMetrics("checkpointer")
    metrics.collect(lambda: [outcome_counts("checkpointer", {"checkpoints": writer.written})])
    try:
        serve_metrics(metrics, metrics_port)
        loaded = writer.load()
        typer.echo(f"checkpointer: {loaded} checkpoint(s) read; {len(writer.topics)} topic(s)")
        if once:
            writer.round(stop.is_set)
        else:
            writer.run(stop.is_set, interval_s)
    except BusError as exc:
        raise _fail(exc) from exc
    finally:
        writer.close()
        runtime.close()
    typer.echo(f"checkpointer stopped: {writer.written} checkpoint(s) written")


def _fail(exc: BusError) -> typer.Exit:
    typer.secho(f"error: {operator_message(exc)}", fg="red", err=True)
    return typer.Exit(1)
