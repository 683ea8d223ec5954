"""The showing side of the operator read commands: every text that came from a topic is
escaped before it reaches the terminal (:func:`ops.terminal.printable`), shown as a table,
as one line per entry while following, or as one JSON object per line; and the flow every
read command shares (read to the end, keep the last N wanted, follow)."""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Annotated, Any, Generic, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from consumers.runtime import Runtime
from ops.cmd_alerts import OutputFormat
from ops.cmd_inspect import TopicReader, TopicRecord, parse_since
from ops.errors import operator_message
from ops.stream_view import idle_limit
from ops.terminal import json_line, printable
from schemas.errors import BusError
from schemas.identifiers import normalise_agency_code
from schemas.settings import MAX_IDLE_S, MAX_LISTED
from topics.errors import AccessDenied

__all__ = [
    "Follow",
    "Format",
    "Limit",
    "OutputFormat",
    "ReadCommand",
    "ReadOptions",
    "Since",
    "UntilIdle",
    "View",
    "cell",
    "fail",
    "json_line",
    "select",
    "shorten",
    "when",
]

_console = Console()

Entry = TypeVar("Entry")


# --- text for the terminal -----------------------------------------------------------------
def when(value: object) -> str:
    """A time of a record in UTC to the second (``-`` when absent)."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return "-" if value is None else str(value)


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, an ellipsis marking the cut."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def cell(text: object) -> Text:
    """A table cell: the text escaped, never read as rich markup (``[red]`` stays text)."""
    return Text(printable("" if text is None else str(text)))


def fail(exc: BaseException) -> typer.Exit:
    """One red line for the operator (``access denied: ...`` for a refused read)."""
    message = operator_message(exc)
    if isinstance(exc, AccessDenied):
        message = f"access denied: {message}"
    typer.secho(f"error: {printable(message)}", fg="red", err=True)
    return typer.Exit(1)


# --- showing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class View(Generic[Entry]):
    """How one command shows its entries: a table title, columns and a row per entry
    (texts, escaped on the way out), and the JSON object of an entry."""

    title: str
    columns: Sequence[str]
    row: Callable[[Entry], Sequence[object]]
    document: Callable[[Entry], Mapping[str, Any]]

    def table(self, entries: Sequence[Entry], note: str) -> None:
        table = Table(title=self.title)
        for column in self.columns:
            table.add_column(column, overflow="fold")
        for entry in entries:
            table.add_row(*(cell(value) for value in self.row(entry)))
        _console.print(table)
        _console.print(note, highlight=False, markup=False)

    def header(self) -> None:
        _console.print(" | ".join(self.columns), style="bold", highlight=False, markup=False)

    def line(self, entry: Entry) -> None:
        """One entry as it arrives (``--follow``: a table would show nothing until the end)."""
        text = " | ".join(printable("" if v is None else str(v)) for v in self.row(entry))
        _console.print(Text(text), highlight=False, soft_wrap=True)

    def json(self, entry: Entry) -> None:
        print(json_line(self.document(entry)), flush=True)


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """The options every read command shares."""

    since: str | None = None
    limit: int | None = None
    follow: bool = False
    until_idle: float | None = None
    output: OutputFormat = OutputFormat.table

    def __post_init__(self) -> None:
        idle_limit(self.follow, self.until_idle, None)


@dataclass(frozen=True)
class ReadCommand(Generic[Entry]):
    """One read command: which topic, as what operation, how a record becomes an entry,
    which entries are wanted, and how they look."""

    topic_id: str
    operation: str
    entry: Callable[[TopicRecord], Entry]
    view: View[Entry]
    noun: str

    def run(self, agency: str, wanted: Callable[[Entry], bool], options: ReadOptions) -> None:
        """Show the wanted entries up to the topic's end now (the last ``limit``), then
        new ones while following; ``error: ...`` and exit code 1 on failure."""
        try:
            since = parse_since(options.since, dt.datetime.now(dt.UTC)) if options.since else None
            runtime = Runtime.connect(agency)
            try:
                with TopicReader(runtime, self.topic_id, self.operation) as reader:
                    history = map(self.entry, reader.history(since=since))
                    self._show(reader, select(history, wanted, options.limit), wanted, options)
            finally:
                runtime.close()
        except BusError as exc:
            raise fail(exc) from exc

    def _show(
        self,
        reader: TopicReader,
        entries: list[Entry],
        wanted: Callable[[Entry], bool],
        options: ReadOptions,
    ) -> None:
        later: Iterable[Entry] = ()
        if options.follow or options.until_idle is not None:
            fresh = reader.follow(None if options.follow else options.until_idle)
            later = (entry for entry in map(self.entry, fresh) if wanted(entry))
        if options.output is OutputFormat.json:
            for entry in chain(entries, later):
                self.view.json(entry)
            if reader.refused:
                typer.secho(f"warning: {_refusals(reader.refused)}", fg="yellow", err=True)
        elif options.follow:
            self.view.header()
            for entry in chain(entries, later):
                self.view.line(entry)
        else:
            shown = [*entries, *later]
            note = f"{len(shown)} {self.noun}(s)"
            if reader.refused:
                note += f"; {_refusals(reader.refused)}"
            self.view.table(shown, note)


def select(
    entries: Iterable[Entry], wanted: Callable[[Entry], bool], limit: int | None
) -> list[Entry]:
    """The wanted entries, only the last ``limit`` of them when a limit is given."""
    kept: deque[Entry] = deque(maxlen=limit)
    kept.extend(entry for entry in entries if wanted(entry))
    return list(kept)


def _refusals(count: int) -> str:
    return f"{count} record(s) refused: their seal did not verify (see the audit log)"


# --- the options every read command shares ---------------------------------------------------
OperatorReader = Annotated[
    str, typer.Option("--as", help="The reading agency (bus or command-system role).")
]


def _agency_code(value: str | None) -> str | None:
    """``--agency``: an agency of the list, in any case; a clear error otherwise (a
    misspelt code would find nothing and say nothing)."""
    return None if value is None else normalise_agency_code(value, "--agency")


AgencyOnly = Annotated[
    str | None, typer.Option("--agency", help="Only this agency's.", callback=_agency_code)
]
Since = Annotated[
    str | None,
    typer.Option("--since", help="Only records from this time on: ISO 8601 (UTC if no zone) "
                 "or an age such as 30m, 2h, 7d."),
]  # fmt: skip
Limit = Annotated[
    int | None,
    typer.Option("--limit", min=1, max=MAX_LISTED, help="Show only the newest N wanted records."),
]
Follow = Annotated[bool, typer.Option("--follow", help="Keep showing new records as they come.")]
UntilIdle = Annotated[
    float | None,
    typer.Option("--until-idle", min=0.1, max=MAX_IDLE_S,
                 help="After the end, keep reading until nothing came for this many seconds."),
]  # fmt: skip
Format = Annotated[
    OutputFormat, typer.Option("--format", help="table, or json: one JSON object per line.")
]
