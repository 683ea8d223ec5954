"""How ``zf801 alerts`` and ``zf801 notices`` show an owned stream: a table when reading to
the end, one line per record as it arrives when following, or one JSON object per line;
then a summary that counts (and names) the records refused."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from consumers.own_stream import OwnStreamSubscriber, Refusal, StreamRecord
from ops.terminal import json_line, printable

__all__ = [
    "OutputFormat", "ReadSummary", "StreamView", "follow", "idle_limit", "show", "summary", "table",
]  # fmt: skip

_console = Console()
_errors = Console(stderr=True)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


@dataclass(frozen=True, slots=True)
class StreamView:
    """What one command shows of a record: the table's title, the noun it counts, the
    columns and the cells of a record (text from records: escaped when shown)."""

    title: str
    noun: str
    columns: tuple[str, ...]
    cells: Callable[[StreamRecord], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class ReadSummary:
    """What one read did besides showing records."""

    shown: int
    refused: Sequence[Refusal] = ()
    """Refused in this read: dead-lettered and audited now."""
    passed_over: int = 0
    """Refused on an earlier read (audited then), passed over now."""


def show(
    view: StreamView,
    subscriber: OwnStreamSubscriber,
    output: OutputFormat,
    until_idle_s: float | None,
) -> ReadSummary:
    """Read ``subscriber``'s stream (following when ``until_idle_s`` is None) and show it in
    ``output``; the summary goes below a table, else to stderr (stdout stays records)."""
    stream = subscriber.read(until_idle_s=until_idle_s)
    records: list[StreamRecord] = []
    if output is OutputFormat.json:
        shown = _json_lines(stream)
    elif until_idle_s is None:
        shown = follow(view, stream)
    else:
        records = list(stream)
        shown = len(records)
    read = ReadSummary(shown, tuple(subscriber.refusals), subscriber.refused_before)
    if output is OutputFormat.table and until_idle_s is not None:
        table(view, records, read)
    else:
        summary(view, read, _errors)
    return read


def _json_lines(stream: Iterable[StreamRecord]) -> int:
    shown = 0
    for record in stream:
        print(json_line(as_json(record)), flush=True)
        shown += 1
    return shown


def as_json(record: StreamRecord) -> dict[str, object]:
    return {
        "id": record.event_id,
        "type": record.event_type,
        "signed_by": record.signed_by,
        "record": record.document,
    }


def table(view: StreamView, records: Iterable[StreamRecord], read: ReadSummary) -> None:
    shown = Table(title=view.title)
    for column in view.columns:
        shown.add_column(column)
    for record in records:
        shown.add_row(*(Text(printable(cell)) for cell in view.cells(record)))
    _console.print(shown)
    summary(view, read, _console)


def summary(view: StreamView, read: ReadSummary, console: Console) -> None:
    """The count of records shown and refused; each refused now named by its place and
    reason (on stderr: the operator's attention, not the records)."""
    parts = [f"{read.shown} {view.noun}(s)"]
    if read.refused:
        parts.append(f"{len(read.refused)} refused (dead-lettered and audited)")
    if read.passed_over:
        parts.append(
            f"{read.passed_over} refused record(s) passed over (audited on an earlier read)"
        )
    console.print("; ".join(parts), highlight=False, markup=False)
    for refusal in read.refused:
        line = (
            f"refused: partition {refusal.partition} offset {refusal.offset}: "
            f"{refusal.reason}: {printable(refusal.detail)}"
        )
        _errors.print(line, highlight=False, markup=False, style="yellow")


def follow(view: StreamView, stream: Iterable[StreamRecord]) -> int:
    """One line per record as it arrives (a table would show nothing until the end); how
    many were shown."""
    _console.print(" | ".join(view.columns), style="bold")
    shown = 0
    for record in stream:
        line = " | ".join(printable(cell) for cell in view.cells(record))
        _console.print(line, highlight=False, markup=False)
        shown += 1
    return shown


def idle_limit(follow: bool, until_idle: float | None, default: float | None) -> float | None:
    """How long a read waits once idle: None with ``--follow`` (until stopped), else
    ``--until-idle`` or ``default``. Both given contradict each other: a usage error, not
    a silent choice (a script that meant to stop would run for ever)."""
    if follow and until_idle is not None:
        raise typer.BadParameter(
            "--follow reads until stopped and --until-idle stops once idle: give one of them",
            param_hint="--until-idle",
        )
    return None if follow else (default if until_idle is None else until_idle)
