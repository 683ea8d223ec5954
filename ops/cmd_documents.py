"""``zf801 documents``: the bus forwards the documents orders cite to the police units the
orders are delivered to; a police unit fetches an order's case and documents."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from consumers.document_delivery import DocumentForwarder
from consumers.document_fetch import fetch_order_papers
from consumers.runtime import Runtime
from ops.cmd_notices import unit_option
from ops.errors import operator_message
from schemas.errors import BusError
from schemas.identifiers import normalise_uuid
from schemas.settings import MAX_IDLE_S

__all__ = ["documents_app"]

documents_app = typer.Typer(help="Sealed documents cited by orders.", no_args_is_help=True)
_console = Console()


@documents_app.command("forward")
def forward(
    agency: Annotated[str, typer.Option("--as", help="The bus processor identity.")] = "BUS-ROUTER",
    index: Annotated[
        Path | None, typer.Option("--index", help="The forwarder's SQLite index.")
    ] = None,
    until_idle: Annotated[
        float | None,
        typer.Option(
            "--until-idle", min=0.1, max=MAX_IDLE_S, help="Stop after this many idle seconds."
        ),
    ] = None,
) -> None:
    """Forward each judicial document an order cites, unchanged (still signed by the court),
    to the documents topic of the province the order is delivered to, once the document is
    there with the court and SHA-256 the order names; nothing else reaches the police."""
    stopped = False

    def _stop(*_: object) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        runtime = Runtime.connect(agency)
        path = index or runtime.settings.home / "documents" / f"{agency}.sqlite"
        forwarder = DocumentForwarder(runtime, path)
        forwarder.run(lambda: stopped, until_idle_s=until_idle)
        runtime.close()
    except BusError as exc:
        typer.secho(f"error: {operator_message(exc)}", fg="red", err=True)
        raise typer.Exit(1) from exc
    counts = forwarder.counts
    _console.print(
        f"documents {counts['documents']}, citations {counts['cited']}, forwarded "
        f"{counts['forwarded']}, not matching their citation {counts['mismatched']}"
    )


def _order_id(value: str) -> str:
    """ORDER_ID: a UUID (checked before anything is read or audited)."""
    return normalise_uuid(value, "ORDER_ID")


def _out_folder(value: Path) -> Path:
    """``--out``: a folder this user may write in, or one it may create (checked before
    anything is read, so a bad path costs no fetch)."""
    existing = next((p for p in (value, *value.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise typer.BadParameter(f"{existing} is not a folder", param_hint="'--out'")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise typer.BadParameter(f"{existing}: not writable by this user", param_hint="'--out'")
    return value


@documents_app.command("fetch")
def fetch(
    order_id: Annotated[
        str, typer.Argument(help="The order whose papers to fetch.", callback=_order_id)
    ],
    unit: Annotated[
        str,
        typer.Option(
            "--as", help="The police unit the order was delivered to.", callback=unit_option
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the documents.", callback=_out_folder)
    ] = Path("."),
) -> None:
    """Fetch, verify and save the sealed documents order ORDER_ID cites, and show its
    enforcement case. A document is saved only if the court signed it and its content has
    the SHA-256 the order cites; exit code 2 if a cited document is missing."""
    try:
        runtime = Runtime.connect(unit)
        papers = fetch_order_papers(runtime, order_id, out)
        runtime.close()
    except BusError as exc:
        typer.secho(f"error: {operator_message(exc)}", fg="red", err=True)
        raise typer.Exit(1) from exc
    case = papers.case
    status = f"case {case['enforcement_status']}" if case else "case not found"
    order = papers.order
    _console.print(
        f"order {order_id} of {order['enforcing_court_code']}, {order['case_number']}: {status}"
    )
    for document in papers.documents:  # the court's text, shown as text
        _console.print(escape(
            f"verified {document.kind} {document.title} (cited as {document.cited_as}, found "
            f"by its SHA-256 as document {document.document_id}): {document.path} "
            f"({document.size_bytes} bytes, sha256 {document.sha256})"
        ))  # fmt: skip
    for missing in papers.missing:
        _console.print(f"[red]missing[/] {escape(missing)}: not forwarded, or not the document "
                       "cited")  # fmt: skip
    if papers.missing:
        raise typer.Exit(2)
