"""``zf801 responder load``: fill a police unit's reference data store, the data its
responder answers P1-P5 queries from (:class:`consumers.query_source.SqliteQuerySource`),
from JSON lines or CSV files.

Every row is checked against the result schema it belongs to before it is stored; rows
are stored in batches of :data:`BATCH_ROWS`, one transaction each, while a progress bar
shows the rate.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any

import click
import typer
from rich.console import Console
from rich.progress import (
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from consumers.query_source import (
    ROW_KINDS,
    CheckedRow,
    QuerySourceError,
    SourceRowError,
    SqliteQuerySource,
    check_row,
)
from ops.publish_input import (
    MAX_LINE_BYTES,
    BadLine,
    InputAbandonedError,
    InputError,
    raw_lines,
    read_documents,
)
from ops.terminal import printable
from schemas.agencies import get_agency
from schemas.errors import BusError
from schemas.jsonmap import json_kind
from schemas.settings import get_settings

__all__ = ["BATCH_ROWS", "load", "parse_csv_row"]

BATCH_ROWS = 5000
"""Rows stored per transaction."""
FORMATS = ("jsonl", "csv")
_LIST_COLUMNS = frozenset({"former_names"})  # the one list field of the five row kinds
_LIST_SEPARATOR = "|"

_InputRow = tuple[int, str, dict[str, Any]]
"""An input row read: its line, its kind and its fields (not checked yet)."""


def parse_csv_row(header: Sequence[str], cells: Sequence[str]) -> dict[str, Any]:
    """A CSV record as a row: a dotted column name nests (``owner.kind`` is ``kind`` of
    ``owner``), a list column (``former_names``) is split at ``|``, an empty cell is null
    (an empty list column: no items). :class:`InputError` for a record whose cells do not
    match the header."""
    if len(cells) != len(header):
        raise InputError(f"{len(cells)} cells, but the header names {len(header)} columns")
    row: dict[str, Any] = {}
    for name, cell in zip(header, cells, strict=True):
        *parents, leaf = name.split(".")
        node = row
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise InputError(
                    f"column {name!r} nests under column {part!r}, which holds a value"
                )
        if leaf in node:
            raise InputError(f"column {name!r} is named twice")
        if leaf in _LIST_COLUMNS:
            node[leaf] = cell.split(_LIST_SEPARATOR) if cell else []
        else:
            node[leaf] = cell or None
    return row


class _CsvLines:
    """The text lines of a CSV stream for :mod:`csv`, each at most ``MAX_LINE_BYTES``: a
    longer one, or one that is not UTF-8, raises :class:`InputError` (its rest is skipped
    unread) and reading can go on with the next. ``number`` is the last line read."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._lines = raw_lines(stream)
        self.number = 0

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        self.number, raw = next(self._lines)
        if raw is None:
            raise InputError(f"longer than {MAX_LINE_BYTES} bytes: refused unread")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"not valid UTF-8 (byte {exc.start + 1} of the line)") from None
        return text.removeprefix("\ufeff") if self.number == 1 else text


def _csv_rows(stream: IO[bytes], kind: str) -> Iterator[_InputRow | BadLine]:
    """Each CSV record after the header as a row, or a :class:`BadLine`; a header that
    cannot name rows (a column named twice, a nesting clash) ends the file."""
    lines = _CsvLines(stream)
    records = csv.reader(lines, strict=True)
    header: list[str] | None = None
    while True:
        start = lines.number + 1
        try:
            cells = next(records)
            if cells and header is not None:
                yield start, kind, parse_csv_row(header, cells)
            elif cells:
                header = [name.strip() for name in cells]
                try:
                    parse_csv_row(header, [""] * len(header))
                except InputError as exc:
                    yield BadLine(start, f"header: {exc}")
                    return
        except StopIteration:
            return
        except (InputError, csv.Error) as exc:
            yield BadLine(lines.number, str(exc))


def _jsonl_rows(stream: IO[bytes], kind: str | None) -> Iterator[_InputRow | BadLine]:
    for number, document in read_documents(stream):
        if isinstance(document, BadLine):
            yield document
        elif not isinstance(document, dict):
            yield BadLine(number, f"expected a JSON object, got {json_kind(document)}")
        elif (row_kind := document.pop("kind", kind)) in ROW_KINDS:
            yield number, row_kind, document
        elif row_kind is None:
            reason = f'no "kind" (one of {", ".join(ROW_KINDS)}); --kind gives lines without one'
            yield BadLine(number, reason)
        else:
            reason = f'"kind" {str(row_kind)[:40]!r} is not one of {", ".join(ROW_KINDS)}'
            yield BadLine(number, reason)


# --- the command -------------------------------------------------------------------------
def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {printable(message)}", fg="red", err=True)
    return typer.Exit(code)


class _RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} rows/s")


@dataclass
class _Tally:
    """What a run stored (per kind) and refused."""

    stored: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROW_KINDS, 0))
    refused: int = 0


class _Loader:
    """Checks rows and stores them in batches; reports (or, without ``skip_bad``, stops
    at) each refused row."""

    def __init__(self, store: SqliteQuerySource, progress: Progress, *, skip_bad: bool) -> None:
        self._store = store
        self._progress = progress
        self._task = progress.add_task("loading", total=None)
        self._skip_bad = skip_bad
        self._batch: list[CheckedRow] = []
        self.tally = _Tally()

    def load(self, name: str, rows: Iterator[_InputRow | BadLine]) -> None:
        self._progress.update(self._task, description=f"loading {printable(name)}")
        try:
            for item in rows:
                if isinstance(item, BadLine):
                    self._refuse(name, item.line, item.error)
                    continue
                line, kind, row = item
                try:
                    self._batch.append(check_row(kind, row))
                except SourceRowError as exc:
                    self._refuse(name, line, str(exc))
                    continue
                if len(self._batch) >= BATCH_ROWS:
                    self.flush()
        except InputAbandonedError as exc:  # the rest of this input cannot be read
            self._refuse(name, exc.line, str(exc).removeprefix(f"line {exc.line}: "))
        self.flush()

    def flush(self) -> None:
        """Store the rows checked since the last batch, in one transaction."""
        if not self._batch:
            return
        self._store.add_checked(self._batch)
        for row in self._batch:
            self.tally.stored[row.kind] += 1
        self._progress.advance(self._task, len(self._batch))
        self._batch = []

    def _refuse(self, name: str, line: int, error: str) -> None:
        self.tally.refused += 1
        where = f"{name}:{line}: {error}"
        if not self._skip_bad:
            stored = sum(self.tally.stored.values())
            raise _fail(
                f"{where}; the {len(self._batch)} row(s) checked since the last batch are "
                f"not stored, the {stored} stored before stay (--skip-bad loads the rest)"
            )
        typer.secho(f"refused {printable(where)}", fg="red", err=True)


def _open(source: Path) -> contextlib.AbstractContextManager[IO[bytes]]:
    if str(source) == "-":
        return contextlib.nullcontext(click.get_binary_stream("stdin"))
    try:
        return source.open("rb")
    except OSError as exc:
        raise _fail(f"cannot read {source}: {exc.strerror or exc}") from exc


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f} rows"),
        _RowsPerSecond(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )


def _check_options(unit: str, kind: str | None, fmt: str | None, files: list[Path]) -> None:
    try:
        agency = get_agency(unit)
    except BusError as exc:
        raise _fail(f"--as: {exc}", 2) from exc
    if not agency.is_police:
        raise _fail(f"--as: {unit} is a {agency.role} agency, not a police unit", 2)
    if kind is not None and kind not in ROW_KINDS:
        raise _fail(f"--kind: {kind!r} is not one of {', '.join(ROW_KINDS)}", 2)
    if fmt is not None and fmt not in FORMATS:
        raise _fail(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}", 2)
    if kind is None and any(_format_of(path, fmt) == "csv" for path in files):
        raise _fail("--kind is needed for CSV: every row of a CSV file is of one kind", 2)


def _format_of(path: Path, fmt: str | None) -> str:
    return fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")


def load(  # noqa: PLR0917 - a typer command: its options are its parameters
    unit: Annotated[
        str,
        typer.Option(
            "--as", metavar="UNIT", help="The police unit (code) whose reference data is loaded."
        ),
    ],
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE", help="JSON lines or CSV files; - is stdin.")
    ],
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            metavar="KIND",
            help='Kind of every row of a CSV file, and of JSON lines without a "kind": '
            "person, document, crossing, vehicle or hotel_stay.",
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="jsonl or csv (default: csv for a .csv file, else jsonl).",
        ),
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            metavar="PATH",
            help="The store (default: ZF801_HOME/responder/UNIT.sqlite; made if missing).",
        ),
    ] = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Report each bad row and load the others.")
    ] = False,
) -> None:
    """Load reference data (identities, exit-entry documents, border crossings, vehicles,
    hotel stays) into a police unit's store, from which its responder answers queries.

    JSON lines: one row per line, `{"kind": "hotel_stay", ...}`, the fields of the result
    record's item in the JSON mapping of `zf801 schemas` (a `person`, `document`,
    `crossing` or `hotel_stay` row also carries the subject's `id_number`; a `hotel_stay`
    may carry the guest's `name`, a `person` its `registered_phone`). CSV: a header of
    column names, nested fields dotted (`owner.kind`), `former_names` separated by `|`,
    an empty cell null; every row of the `--kind` given. A line may hold at most 1 MiB.

    Each row is checked (identifiers, text, times, lengths, required fields) before it is
    stored; a row held under the same key (an ID number, a VIN, a stay's check-in) is
    replaced. Rows are stored in batches of 5,000, one transaction each. Without
    --skip-bad the first bad row stops the load with its file, line and reason: the rows
    of its batch are not stored, the batches before it stay. With --skip-bad each bad row
    is reported and the others are loaded.

    Exit 0 when rows were stored (with --skip-bad: even if some were refused, whose count
    the summary gives), 1 when a row was bad (without --skip-bad) or nothing was stored,
    2 for a wrong option.
    """
    _check_options(unit, kind, fmt, files)
    path = db or SqliteQuerySource.default_path(get_settings(), unit)
    try:
        store = SqliteQuerySource(path)
    except QuerySourceError as exc:
        raise _fail(str(exc)) from exc
    try:
        with _progress() as progress:
            loader = _Loader(store, progress, skip_bad=skip_bad)
            for source in files:
                with _open(source) as stream:
                    if _format_of(source, fmt) == "csv":
                        rows = _csv_rows(stream, kind or "")
                    else:
                        rows = _jsonl_rows(stream, kind)
                    loader.load("stdin" if str(source) == "-" else str(source), rows)
        held = store.counts()
    finally:
        store.close()
    _summary(loader.tally, path, held)


def _summary(tally: _Tally, path: Path, held: dict[str, int]) -> None:
    stored = sum(tally.stored.values())
    per_kind = ", ".join(f"{kind} {count}" for kind, count in tally.stored.items() if count)
    now = ", ".join(f"{kind} {count}" for kind, count in held.items())
    typer.echo(
        f"stored {stored} row(s) in {printable(str(path))}"
        + (f" ({per_kind})" if per_kind else "")
        + f"; {tally.refused} refused; the store holds {now}",
        err=True,
    )
    if not stored:
        raise _fail("no rows stored" if tally.refused else "no rows in the input")
