"""``zf801 query`` and ``zf801 answers``: a court asks P1-P5 and reads the answers."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from consumers.query_client import (
    QueryClient,
    QueryOutcome,
    checked_court,
    correlation_id_of,
    prepared_query,
)
from ops.errors import OpsError
from ops.publish_input import BadLine, read_documents
from ops.terminal import json_line, printable
from schemas.queries import QUERY_KINDS, query_kind
from schemas.settings import MAX_IDLE_S, MAX_QUERY_WAIT_S, get_settings

__all__ = ["INCOMPLETE_EXIT", "answers", "query"]

_console = Console()

INCOMPLETE_EXIT = 3
"""The exit code when a query's deadline passed before every expected unit answered."""

_MAX_QUERIES = 1000
_KINDS = ", ".join(f"{kind.code} / {kind.name}" for kind in QUERY_KINDS)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


def query(
    kind: Annotated[str, typer.Argument(metavar="TYPE", help=f"The query kind: {_KINDS}.")],
    source: Annotated[
        str, typer.Argument(metavar="FILE|-", help="The query (one JSON object) or JSON lines.")
    ],
    court: Annotated[str, typer.Option("--as", help="The asking court (its key signs).")],
    wait: Annotated[
        float | None,
        typer.Option(
            "--wait",
            min=0.1,
            max=MAX_QUERY_WAIT_S,
            help="Seconds to wait: the deadline of a query that names none.",
        ),
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
) -> None:
    """Ask a query of the police side and wait for the answers.

    Each query is a JSON object in the bus's JSON mapping of the kind's query schema (see
    the README). ``correlation_id``, ``requesting_court_code``, ``requested_at`` and
    ``deadline`` are filled in where absent (the deadline: now plus ``--wait``, or
    ZF801_QUERY_WAIT_S). Every query is checked before any is sent; a bad one sends none.

    The command returns when every unit the query is addressed to has answered, or at the
    deadline. It shows who answered, who did not and who answered late, and the answers
    merged per subject. Exit code 0: complete; 3: a deadline passed with units missing
    (their answers can be read later with ``zf801 answers``); 1: an error."""
    chosen = query_kind(kind)
    documents = _documents(source)
    asking = checked_court(court).code
    now, wait_s = datetime.now(UTC), wait or get_settings().query_wait_s
    deadlines = [  # all checked before anything is reached: a bad one sends none
        prepared_query(chosen, document, court=asking, now=now, wait_s=wait_s)["deadline"]
        for document in documents
    ]
    if max(deadlines) > now + timedelta(seconds=wait_s + 1):
        typer.echo(
            f"waiting for answers until {max(deadlines).isoformat()}, the deadline the query "
            f"names (without one it waits --wait, {wait_s:g} s); once stopped, the answers "
            f"stay readable with `zf801 answers CORRELATION_ID --as {asking}`",
            err=True,
        )
    with QueryClient.connect(court) as client:
        outcomes = client.ask_all(chosen, documents, wait_s=wait)
    _show(outcomes, output)
    if not all(outcome.complete for outcome in outcomes):
        raise typer.Exit(INCOMPLETE_EXIT)


def answers(
    correlation_id: Annotated[str, typer.Argument(help="The correlation id of the query.")],
    court: Annotated[str, typer.Option("--as", help="The court that asked.")],
    idle: Annotated[
        float,
        typer.Option(
            "--until-idle", min=0.1, max=MAX_IDLE_S, help="Stop after this many idle seconds."
        ),
    ] = 2.0,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
) -> None:
    """Show every answer to a query this court sent earlier, late ones flagged (read back
    from the court's results stream; the query itself from the court's outbox). Exit code
    as for ``zf801 query``."""
    correlation_id = correlation_id_of(correlation_id)
    with QueryClient.connect(court) as client:
        outcome = client.answers(correlation_id, idle_s=idle)
    _show([outcome], output)
    if not outcome.complete:
        raise typer.Exit(INCOMPLETE_EXIT)


def _documents(source: str) -> list[Any]:
    """The queries of ``source`` (a file or ``-``), each a JSON object; an error names the
    line."""
    documents: list[Any] = []
    with _opened(source) as stream:
        for number, document in read_documents(stream):
            if isinstance(document, BadLine):
                raise OpsError(f"{source} line {number}: {document.error}")
            items = document if isinstance(document, list) else [document]
            for item in items:
                if not isinstance(item, dict):
                    raise OpsError(f"{source} line {number}: a query must be a JSON object")
                documents.append(item)
            if len(documents) > _MAX_QUERIES:
                raise OpsError(f"{source}: more than {_MAX_QUERIES} queries in one command")
    if not documents:
        raise OpsError(f"{source}: no query in the input")
    return documents


@contextlib.contextmanager
def _opened(source: str) -> Iterator[IO[bytes]]:
    if source == "-":
        yield sys.stdin.buffer
        return
    try:
        with Path(source).open("rb") as stream:
            yield stream
    except OSError as exc:
        raise OpsError(f"{source}: {exc.strerror or exc}") from exc


def _show(outcomes: list[QueryOutcome], output: OutputFormat) -> None:
    if output is OutputFormat.json:
        for outcome in outcomes:
            print(json_line(outcome.as_json()), flush=True)
        return
    for outcome in outcomes:
        _table(outcome)


def _table(outcome: QueryOutcome) -> None:
    subject = outcome.query.get("subject") or outcome.query.get("owner") or {}
    about = subject.get("id_number") or subject.get("organisation_code") or ""
    title = (
        f"{outcome.kind.code} {outcome.kind.title} · {printable(about)} · query "
        f"{outcome.correlation_id}: {outcome.status}, {outcome.completeness}"
    )
    table = Table(title=title, title_justify="left")
    for column in ("unit", "status", "late", "latency", "detail"):
        table.add_column(column)
    for unit in outcome.expected:
        answer = outcome.answers.get(unit)
        if answer is None:
            table.add_row(unit, Text("no answer", style="red"), "", "", "")
            continue
        latency = "" if answer.received_s is None else f"{answer.received_s * 1000:.0f} ms"
        detail = answer.document.get("refusal_reason") or _found(answer.document)
        status = Text(answer.status, style="green" if answer.status == "FOUND" else "")
        table.add_row(unit, status, "late" if answer.late else "", latency,
                      Text(printable(detail)))  # fmt: skip
    _console.print(table)
    for line in _merged_lines(outcome):
        _console.print(Text(printable(line)))


def _found(document: dict[str, Any] | Any) -> str:
    counts = [f"{len(document[name])} {name}" for name in ("crossings", "vehicles", "stays")
              if document.get(name)]  # fmt: skip
    if document.get("person"):
        counts.insert(0, "person")
    return ", ".join(counts)


def _merged_lines(outcome: QueryOutcome) -> Iterator[str]:
    """The merged answer, one line per item."""
    merged = outcome.merged()
    person = merged.get("person")
    if person:
        yield f"  person: {person.get('name')} {person.get('id_number')}"
        for document in person.get("documents") or ():
            yield (f"  document: {document['document_type']} {document['document_number']} "
                   f"valid until {document.get('valid_until')}")  # fmt: skip
        if person.get("address"):
            yield f"  address: {person['address']}"
    for crossing in merged.get("crossings") or ():
        yield (f"  crossing: {crossing['crossed_at']} {crossing['direction']} {crossing['port']} "
               f"{crossing.get('destination_country_or_region') or ''}")  # fmt: skip
    for vehicle in merged.get("vehicles") or ():
        yield (f"  vehicle: {vehicle['plate_number']} {vehicle['brand']} {vehicle['vin']} "
               f"owner {vehicle['owner']['name']}")  # fmt: skip
    for stay in merged.get("stays") or ():
        yield (f"  stay: {stay['checked_in_at']} – {stay.get('checked_out_at') or '…'} "
               f"{stay['hotel_name']}, {stay['hotel_address']}")  # fmt: skip
