"""``zf801 responder``: a police unit answers the queries addressed to it (and, with
``--follow-sightings``, keeps its province's sightings history in its data source); ``zf801
responder load`` fills the unit's reference data source."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from consumers.history_follower import SightingFollower
from consumers.metrics import ProcessorMetrics, outcome_counts, stage_families
from consumers.query_source import SqliteQuerySource
from consumers.responder import Responder
from consumers.responder_state import ResponderState
from consumers.runtime import Runtime
from ops.cmd_responder_load import load
from ops.errors import OpsError
from ops.metrics_option import MetricsPort, serve_metrics
from schemas.agencies import get_agency
from schemas.settings import MAX_IDLE_S, get_settings

__all__ = ["responder_app"]

responder_app = typer.Typer(
    invoke_without_command=True,
    help="A police unit answers queries (P1-P5) from its reference data source.",
)
responder_app.command("load")(load)


@responder_app.callback()
def responder(  # noqa: PLR0917 - a typer command: its options are its parameters
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
        typer.Option(
            "--until-idle", min=0.1, max=MAX_IDLE_S, help="Stop once no query came for this long."
        ),
    ] = None,
    follow_sightings: Annotated[
        bool,
        typer.Option(
            "--follow-sightings",
            help="Also keep the sightings history of the provinces whose rule names the "
            "unit in the data source (hotel stays for public security, crossings for "
            "border control).",
        ),
    ] = False,
    metrics_port: MetricsPort = None,
) -> None:
    """Answer the queries addressed to the unit until stopped (Ctrl-C or SIGTERM).

    Each query is verified (a court's seal, its own case number, a permitted purpose,
    sent before its deadline, within quota: ZF801_QUERY_QUOTA_*) and answered from the
    unit's SQLite data source: FOUND, NOT_FOUND, or a signed refusal naming the rule.
    Every answer and refusal is audited.

    With --follow-sightings the unit also reads the sightings history the bus forwards
    to its province (every hotel check-in and border crossing its police units report)
    and stores each report it answers from in the data source, once, so that its answers
    include them. A report is verified first; one signed by no police unit of that
    province, or breaking the loader's row rules, is dead-lettered and audited. The place
    reached is stored with the rows: a restart resumes there."""
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
    following: _Following | None = None
    metrics = ProcessorMetrics("responder")
    metrics.collect(lambda: [
        outcome_counts("responder", dict(answering.counts)),
        *stage_families("responder", {"queries": answering.stage}),
    ])  # fmt: skip
    try:
        serve_metrics(metrics, metrics_port)
        if follow_sightings:
            following = _Following(runtime, path, stopping)
        answering.run(stopping.is_set, until_idle_s=until_idle)
    finally:
        stopping.set()
        if following is not None:
            following.join()
        answering.close()
        source.close()
        runtime.close()
    counts = ", ".join(f"{count} {name}" for name, count in answering.counts.items())
    if following is not None:
        kept = ", ".join(f"{n} {name}" for name, n in following.follower.counts.items())
        counts += f"; sightings history: {kept}"
    typer.echo(f"responder {agency.code} stopped: {counts}")
    if following is not None and following.failure is not None:
        raise OpsError(f"the sightings history stopped: {following.failure}")


class _Following:
    """The unit's sightings history kept in a thread of its own, on its own connection to
    the data source. A failure stops the responder too (``stopping``): the history then
    resumes, with the queries, when the command is run again."""

    def __init__(self, runtime: Runtime, path: Path, stopping: threading.Event) -> None:
        self._store = SqliteQuerySource(path, create=False)
        try:
            self.follower = SightingFollower(runtime, self._store)
        except BaseException:  # e.g. a unit that reads no history: nothing left open
            self._store.close()
            raise
        self.failure: BaseException | None = None
        self._stopping = stopping
        self._thread = threading.Thread(target=self._run, name="sightings-history", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.follower.run(self._stopping.is_set)
        except BaseException as exc:
            logging.getLogger(__name__).exception("the sightings history stopped")
            self.failure = exc
            self._stopping.set()

    def join(self) -> None:
        self._thread.join()
        self._store.close()
