"""``zf801 schemas``: the Avro contract for integrators: list the schemas and their
fingerprints, encode JSON to single-object bytes, decode bytes to JSON, and check that the
schemas stay fully compatible with a git ref."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from schemas.codec import Codec
from schemas.errors import BusError
from schemas.history import CheckReport, check_against_ref
from schemas.jsonmap import from_json, to_json
from schemas.registry import SCHEMA_DIR, Registry, default_registry

__all__ = ["schemas_app"]

schemas_app = typer.Typer(
    help=(
        "The Avro schemas of every bus event (schemas/avro/<family>/<Name>.avsc). JSON mapping"
        " for encode/decode: timestamps as RFC 3339 strings with a zone, dates as ISO"
        " YYYY-MM-DD, decimal amounts as strings, bytes as base64, SHA-256 digests (fixed) as"
        " hex, optional fields as value or null."
    ),
    no_args_is_help=True,
)

_console = Console()
_errors = Console(stderr=True)
_EXIT_INCOMPATIBLE = 1
_EXIT_ERROR = 2

_Dir = Annotated[
    Path | None,
    typer.Option("--dir", help="Schema folder (default: the schemas/avro shipped with the bus)."),
]
_Hex = Annotated[bool, typer.Option("--hex", help="Bytes as hex text instead of raw bytes.")]


def _registry(folder: Path | None) -> Registry:
    return default_registry() if folder is None else Registry.from_directory(folder)


def _fail(exc: BusError, code: int = 1) -> typer.Exit:
    _errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(code=code)


@schemas_app.command("list")
def list_schemas(
    folder: _Dir = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Every schema: full name, version and CRC-64-AVRO fingerprint (the 8 wire bytes, hex)."""
    try:
        registry = _registry(folder)
    except BusError as exc:
        raise _fail(exc) from exc
    if as_json:
        for schema in registry:
            row = {
                "name": schema.full_name,
                "version": schema.version,
                "fingerprint": schema.fingerprint.hex(),
            }
            sys.stdout.write(json.dumps(row) + "\n")
        return
    table = Table(title=f"{len(registry)} schemas (fingerprint: the 8 wire bytes, hex)")
    table.add_column("name", no_wrap=True)
    table.add_column("version", no_wrap=True)
    table.add_column("fingerprint", no_wrap=True)
    for schema in registry:
        table.add_row(schema.full_name, f"v{schema.version}", schema.fingerprint.hex())
    _console.print(table)


def _read_stdin_bytes(as_hex: bool) -> bytes:
    data = sys.stdin.buffer.read()
    if not as_hex:
        return data
    try:
        return bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError) as exc:
        _errors.print(f"[bold red]error:[/] stdin is not hex: {escape(str(exc))}", highlight=False)
        raise typer.Exit(code=1) from exc


@schemas_app.command("encode")
def encode_command(
    name: Annotated[str, typer.Argument(help="Record name (HotelCheckIn) or full name.")],
    as_hex: _Hex = False,
    folder: _Dir = None,
) -> None:
    """Read one JSON record on stdin, validate it, write single-object bytes on stdout."""
    try:
        codec = Codec(_registry(folder))
        schema = codec.schema(name)
        document: Any = json.loads(sys.stdin.buffer.read())
        value = codec.encode(schema.full_name, from_json(schema, document))
    except json.JSONDecodeError as exc:
        _errors.print(f"[bold red]error:[/] stdin is not JSON: {escape(str(exc))}", highlight=False)
        raise typer.Exit(code=1) from exc
    except BusError as exc:
        raise _fail(exc) from exc
    if as_hex:
        sys.stdout.write(value.hex() + "\n")
    else:
        sys.stdout.buffer.write(value)
        sys.stdout.buffer.flush()


@schemas_app.command("decode")
def decode_command(
    as_hex: _Hex = False,
    reader: Annotated[
        str | None,
        typer.Option("--reader", help="Read into this schema's current version (evolution)."),
    ] = None,
    with_type: Annotated[
        bool,
        typer.Option("--with-type", help='Wrap as {"type", "fingerprint", "record"}.'),
    ] = False,
    folder: _Dir = None,
) -> None:
    """Read single-object bytes on stdin, write the record as JSON on stdout."""
    value = _read_stdin_bytes(as_hex)
    try:
        codec = Codec(_registry(folder))
        writer, record = codec.decode(value, reader)
        shaped = codec.schema(reader) if reader else writer
    except BusError as exc:
        raise _fail(exc) from exc
    document = to_json(shaped, record)
    if with_type:
        document = {
            "type": writer.full_name,
            "fingerprint": writer.fingerprint.hex(),
            "record": document,
        }
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")


def _print_report(report: CheckReport) -> None:
    summary = (
        f"against {report.ref}: {len(report.changed)} changed, {len(report.added)} added,"
        f" {len(report.removed)} removed, {len(report.unchanged)} unchanged"
    )
    _console.print(summary, highlight=False)
    for name in report.removed:
        _console.print(
            f"[red]removed[/] {escape(name)}: a schema may not be deleted", highlight=False
        )
    # One line per issue rather than a table: CI logs keep every word, grep finds the rule.
    for issue in report.issues:
        _console.print(
            f"[red]incompatible[/] {escape(str(issue))}", highlight=False, soft_wrap=True
        )


@schemas_app.command("check")
def check_command(
    ref: Annotated[str, typer.Option("--ref", help="Git ref to compare with.")] = "HEAD",
    folder: _Dir = None,
) -> None:
    """Fail (exit 1) if a schema changed since REF in a way that breaks full compatibility
    (new readers of old data, or old readers of new data), or was deleted."""
    try:
        report = check_against_ref(ref, folder or SCHEMA_DIR)
    except BusError as exc:
        raise _fail(exc, _EXIT_ERROR) from exc
    _print_report(report)
    if not report.ok:
        raise typer.Exit(code=_EXIT_INCOMPATIBLE)
    _console.print("[green]fully compatible[/]")
