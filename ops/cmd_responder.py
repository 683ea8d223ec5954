"""``zf801 responder``: a police unit answers the queries addressed to it; ``zf801
responder load`` fills the unit's reference data source."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from consumers.query_source import SqliteQuerySource
from consumers.responder import Responder
from consumers.responder_state import ResponderState
from consumers.runtime import Runtime
from ops.cmd_responder_load import load
from ops.errors import OpsError
from schemas.agencies import get_agency
from schemas.settings import get_settings

__all__ = ["responder_app"]

responder_app = typer.Typer(
    invoke_without_command=True,
    help="A police unit answers queries (P1-P5) from its reference data source.",
)
responder_app.command("load")(load)


@responder_app.callback()
def responder(
    ctx: typer.Context,
    unit: Annotated[
        str | None, typer.Option("--as", help="The answering police unit (its key signs).")
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option("--db", help="The data source (default: ZF801_HOME/responder/UNIT.sqlite)."),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="Its answered queries and quota use (default: ZF801_HOME/state/responder).",
        ),
    ] = None,
    until_idle: Annotated[
        float | None,
        typer.Option("--until-idle", min=0.1, help="Stop once no query came for this long."),
    ] = None,
) -> None:
    """Answer the queries addressed to the unit until stopped (Ctrl-C or SIGTERM).

    Each query is verified (a court's seal, its own case number, a permitted purpose,
    sent before its deadline, within quota: ZF801_QUERY_QUOTA_*) and answered from the
    unit's SQLite data source: FOUND, NOT_FOUND, or a signed refusal naming the rule.
    Every answer and refusal is audited."""
    if ctx.invoked_subcommand is not None:
        return
    if unit is None:
        raise OpsError("--as UNIT is required: the police unit that answers")
    agency = get_agency(unit)
    if not agency.is_police:
        raise OpsError(f"--as {unit}: a {agency.role} agency; only police units answer queries")
    settings = get_settings()
    path = db or SqliteQuerySource.default_path(settings, agency.code)
    if not path.is_file():
        raise OpsError(
            f"no data source at {path}: fill it with `zf801 responder load --as {unit} FILE`"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    source = SqliteQuerySource(path, create=False)
    runtime = Runtime.connect(agency.code)
    answering = Responder(runtime, source, ResponderState.for_unit(settings, agency, state))
    try:
        answering.run(stopping.is_set, until_idle_s=until_idle)
    finally:
        answering.close()
        source.close()
        runtime.close()
    counts = ", ".join(f"{count} {name}" for name, count in answering.counts.items())
    typer.echo(f"responder {agency.code} stopped: {counts}")
