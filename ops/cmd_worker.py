"""``zf801 worker``: run the bus's stream processors (watchlist, matcher, router, timers);
``zf801 history-forwarder``: the sightings history's forwarding, in a process of its own."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from consumers.history_loop import HistoryForwarder
from consumers.runtime import Runtime
from ops.errors import operator_message
from schemas.errors import BusError
from schemas.settings import get_settings

__all__ = ["history_forwarder", "worker"]


def worker(
    agency: Annotated[
        str, typer.Option("--as", help="The bus processor identity that signs hits.")
    ] = "BUS-MATCHER",
    loglevel: Annotated[str, typer.Option(help="faust log level: debug, info, warning.")] = "info",
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
    except BusError as exc:
        raise _fail(exc) from exc
    faust.Worker(bus.app, loglevel=loglevel, quiet=True).execute_from_commandline()


def history_forwarder(
    agency: Annotated[
        str, typer.Option("--as", help="The bus processor identity that reads the sightings.")
    ] = "BUS-MATCHER",
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


def _fail(exc: BusError) -> typer.Exit:
    typer.secho(f"error: {operator_message(exc)}", fg="red", err=True)
    return typer.Exit(1)
