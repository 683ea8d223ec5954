"""``zf801 alerts``: a court reads, verifies and shows its own alert stream."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from consumers.alerts import Alert, AlertSubscriber
from consumers.runtime import Runtime
from ops.errors import operator_message
from ops.terminal import json_line, printable
from schemas.errors import BusError

__all__ = ["alerts"]

_console = Console()


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


def alerts(
    court: Annotated[str, typer.Option("--court", help="The court whose alerts to read.")],
    reader: Annotated[
        str | None,
        typer.Option("--as", help="The reading agency (default: the court itself)."),
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", help="Keep reading new alerts.")] = False,
    until_idle: Annotated[
        float, typer.Option("--until-idle", help="Stop after this many idle seconds.", min=0.1)
    ] = 5.0,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
) -> None:
    """Show the verified alerts (hits, acknowledgements, overdue and expiry notices) of
    one court. A court reads only its own stream; the reading agency's key must be in the
    key store.

    A record that fails verification is never shown: it is dead-lettered and audited the
    first time it is read, and passed over on later reads (remembered per stream under
    ZF801_HOME, in state/alerts)."""
    try:
        subscriber = AlertSubscriber(Runtime.connect(reader or court), court)
        stream = subscriber.read(until_idle_s=None if follow else until_idle)
        if output is OutputFormat.json:
            for alert in stream:
                print(json_line(_as_json(alert)), flush=True)
        elif follow:
            _follow(stream)
        else:
            _table(court, list(stream), subscriber.refused_before)
    except BusError as exc:
        typer.secho(f"error: {operator_message(exc)}", fg="red", err=True)
        raise typer.Exit(1) from exc


def _as_json(alert: Alert) -> dict[str, object]:
    return {
        "id": alert.event_id,
        "type": alert.event_type,
        "signed_by": alert.signed_by,
        "record": alert.document,
    }


def _summary(alert: Alert) -> tuple[str, str, str]:
    record = alert.record
    if alert.kind == "Hit":
        summary = record["summary"]
        where = f"{summary['kind']} {summary['place']}"
        return str(record["order_id"]), record["case_number"], where
    if alert.kind == "OrderAcknowledgement":
        status = record["status"] + (f": {record['reason']}" if record.get("reason") else "")
        return str(record["order_id"]), "", status
    return str(record["order_id"]), str(record.get("case_number", "")), ""


_COLUMNS = ("kind", "order", "case", "detail", "signed by")


def _table(court: str, alerts: list[Alert], refused_before: int = 0) -> None:
    table = Table(title=f"Alerts of court {court}")
    for column in _COLUMNS:
        table.add_column(column)
    for alert in alerts:
        table.add_row(*(Text(printable(cell)) for cell in _cells(alert)))
    _console.print(table)
    passed_over = (
        f"; {refused_before} refused record(s) passed over (audited on an earlier read)"
        if refused_before
        else ""
    )
    _console.print(f"{len(alerts)} alert(s){passed_over}", highlight=False)


def _follow(stream: Iterable[Alert]) -> None:
    """One line per alert as it arrives (a table would show nothing until the end)."""
    _console.print(" | ".join(_COLUMNS), style="bold")
    for alert in stream:
        line = " | ".join(printable(cell) for cell in _cells(alert))
        _console.print(line, highlight=False, markup=False)


def _cells(alert: Alert) -> tuple[str, ...]:
    """The row of one alert: its text comes from records, so the caller escapes it."""
    return (alert.kind, *_summary(alert), alert.signed_by)
