"""``zf801 alerts``: a court reads, verifies and shows its own alert stream."""

from __future__ import annotations

from typing import Annotated

import typer

from consumers.alerts import Alert, AlertSubscriber
from consumers.runtime import Runtime
from ops.stream_view import OutputFormat, StreamView, idle_limit, show
from schemas.settings import MAX_IDLE_S

_IDLE_S = 5.0
"""How long a read waits once idle by default."""

__all__ = ["OutputFormat", "alerts", "alerts_view"]


def alerts(
    court: Annotated[str, typer.Option("--court", help="The court whose alerts to read.")],
    reader: Annotated[
        str | None,
        typer.Option("--as", help="The reading agency (default: the court itself)."),
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", help="Keep reading new alerts.")] = False,
    until_idle: Annotated[
        float | None,
        typer.Option(
            "--until-idle",
            min=0.1,
            max=MAX_IDLE_S,
            help="Stop after this many idle seconds (default 5; not with --follow).",
        ),
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
) -> None:
    """Show the verified alerts (hits, acknowledgements, overdue and expiry notices) of
    one court. A court reads only its own stream; the reading agency's key must be in the
    key store.

    A record that fails verification is never shown: it is dead-lettered and audited the
    first time it is read, and passed over on later reads (remembered per stream under
    ZF801_HOME, in state/alerts)."""
    idle = idle_limit(follow, until_idle, _IDLE_S)  # before connecting
    subscriber = AlertSubscriber(Runtime.connect(reader or court), court)
    show(alerts_view(court), subscriber, output, idle)


def alerts_view(court: str) -> StreamView:
    return StreamView(f"Alerts of court {court}", "alert", _COLUMNS, _cells)


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


def _cells(alert: Alert) -> tuple[str, ...]:
    """The row of one alert: its text comes from records, so the caller escapes it."""
    return (alert.kind, *_summary(alert), alert.signed_by)
