"""``zf801 worker``: run the bus's stream processors (watchlist, matcher, router, timers)."""

from __future__ import annotations

from typing import Annotated

import typer

from consumers.runtime import Runtime
from schemas.errors import BusError

__all__ = ["worker"]


def worker(
    agency: Annotated[
        str, typer.Option("--as", help="The bus processor identity that signs hits.")
    ] = "BUS-MATCHER",
    loglevel: Annotated[str, typer.Option(help="faust log level: debug, info, warning.")] = "info",
) -> None:
    """Run the matcher worker until stopped (Ctrl-C or SIGTERM).

    Settings come from ZF801_* variables: bootstrap servers, key store and passphrase,
    ZF801_ACK_TIMEOUT_S, ZF801_TIMER_INTERVAL_S, ZF801_WORKER_ID, ZF801_TOPIC_PREFIX.
    """
    # faust takes about a second to import; only this command needs it.
    import faust  # noqa: PLC0415

    from consumers.worker import BusWorker  # noqa: PLC0415

    try:
        bus = BusWorker(Runtime.connect(agency))
    except BusError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    faust.Worker(bus.app, loglevel=loglevel, quiet=True).execute_from_commandline()
