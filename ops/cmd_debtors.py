"""``zf801 debtors``: a court sees the receipts of its removals; a subscriber asks its
mirror whether a debtor is listed."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from consumers.debtor_mirror import DebtorMirror
from consumers.debtor_subscriber import list_subscriber
from consumers.removal_receipts import removal_statuses
from consumers.runtime import Runtime
from ops.cmd_subscribe import default_mirror_path
from ops.errors import operator_message
from schemas.errors import BusError
from schemas.settings import MAX_IDLE_S, MAX_QUERY_WAIT_S, get_settings

__all__ = ["debtors_app"]

debtors_app = typer.Typer(help="The dishonest-debtor list: receipts and lookups.",
                          no_args_is_help=True)  # fmt: skip
_console = Console()


@debtors_app.command("receipts")
def receipts(
    court: Annotated[str, typer.Option("--as", help="The court whose removals to show.")],
    deadline: Annotated[
        float,
        typer.Option(
            "--deadline", help="Seconds a subscriber has to confirm.", min=1, max=MAX_QUERY_WAIT_S
        ),
    ] = 3600.0,
    until_idle: Annotated[
        float,
        typer.Option(
            "--until-idle",
            help="Stop reading after this many idle seconds.",
            min=0.1,
            max=MAX_IDLE_S,
        ),
    ] = 3.0,
) -> None:
    """Per removal of the court's listings: the subscribers that confirmed it (signed
    receipts, verified) and those overdue (no receipt DEADLINE seconds after the removal).
    Exit code 2 if any subscriber is overdue."""
    try:
        runtime = Runtime.connect(court)
        statuses = removal_statuses(
            runtime, deadline=dt.timedelta(seconds=deadline), until_idle_s=until_idle
        )
        runtime.close()
    except BusError as exc:
        typer.secho(f"error: {operator_message(exc)}", fg="red", err=True)
        raise typer.Exit(1) from exc
    table = Table(title=f"removals of {court} and their receipts")
    for column in ("listing", "case number", "removed at", "confirmed", "overdue", "waiting"):
        table.add_column(column)
    for status in statuses:
        table.add_row(
            status.listing_id, status.case_number, status.removed_at.isoformat(timespec="seconds"),
            ", ".join(sorted(status.confirmed)), ", ".join(status.overdue),
            ", ".join(status.waiting),
        )  # fmt: skip
    _console.print(table)
    overdue = sum(len(s.overdue) for s in statuses)
    _console.print(f"{len(statuses)} removals, {overdue} overdue receipts")
    if overdue:
        raise typer.Exit(2)


@debtors_app.command("check")
def check(
    identifier: Annotated[str, typer.Argument(help="A citizen ID number or credit code.")],
    subscriber: Annotated[str, typer.Option("--as", help="The list subscriber.")],
    mirror_path: Annotated[Path | None, typer.Option("--mirror", help="The SQLite mirror.")] = None,
) -> None:
    """Whether a debtor is listed, from the subscriber's mirror (exit code 3 if listed)."""
    try:  # only a list subscriber keeps a mirror: say so, not "no mirror"
        list_subscriber(subscriber)
    except BusError as exc:
        raise typer.BadParameter(operator_message(exc), param_hint="--as") from None
    path = mirror_path or default_mirror_path(get_settings(), subscriber)
    if not path.exists():
        typer.secho(f"error: no mirror at {path}: run zf801 subscribe debtors", fg="red", err=True)
        raise typer.Exit(1)
    try:
        with DebtorMirror(path) as mirror:
            started = time.perf_counter()
            listed = mirror.lookup(identifier)
            took_us = (time.perf_counter() - started) * 1e6
    except BusError as exc:
        typer.secho(f"error: {operator_message(exc)}", fg="red", err=True)
        raise typer.Exit(1) from exc
    if listed is None:
        _console.print(f"not listed ({took_us:.0f} µs)")
        return
    _console.print(
        f"LISTED by {listed.court}: {listed.name}, case {listed.case_number}, listing "
        f"{listed.listing_id} ({took_us:.0f} µs)"
    )
    raise typer.Exit(3)
