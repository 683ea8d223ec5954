"""``zf801 schemas``: the Avro contract for integrators: list the schemas and their
fingerprints, print a valid example of an event, encode JSON to single-object bytes, decode
bytes to JSON, and check that the schemas stay fully compatible with a git ref."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ops.publish_input import MAX_LINE_BYTES, BadLine, read_documents
from schemas.codec import Codec
from schemas.edge_rules import TIME_HORIZONS
from schemas.errors import BusError
from schemas.event_types import ORDERS, RELEASE
from schemas.history import CheckReport, check_against_ref
from schemas.jsonmap import from_json, to_json
from schemas.registry import EXAMPLE_DIR, SCHEMA_DIR, RegisteredSchema, Registry, default_registry

__all__ = ["example_document", "schemas_app"]

schemas_app = typer.Typer(
    help=(
        "The Avro schemas of every bus event (`schemas/avro/<family>/<Name>.avsc`). JSON mapping"
        " for encode/decode: timestamps as RFC 3339 strings with a zone, dates as ISO"
        " YYYY-MM-DD, decimal amounts as strings, bytes as base64, SHA-256 digests (fixed) as"
        " hex, optional fields as value or null."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
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

_SUBJECT = "subject"
"""The extra top-level input field of an OrderRelease (``producers.routes.SUBJECT_FIELD``)."""


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


def _stdin_error(message: str) -> typer.Exit:
    _errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def _read_stdin(limit: int) -> bytes:
    """All of stdin, at most ``limit`` bytes: a pipe or a device has no size to check
    first, so at most ``limit`` + 1 bytes are read and more than ``limit`` is refused
    (``/dev/zero`` ends the command at once instead of filling memory)."""
    try:
        data = sys.stdin.buffer.read(limit + 1)
    except OSError as exc:
        raise _stdin_error(f"stdin cannot be read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise _stdin_error(f"stdin: longer than {limit} bytes: refused")
    return data


def _read_stdin_document() -> Any:
    """The one JSON document on stdin (at most :data:`MAX_LINE_BYTES`), read as ``zf801
    publish`` reads its input: strict JSON (no NaN, no duplicate keys, bounded nesting),
    one line or pretty-printed; exit 1 naming the line and the rule otherwise."""
    documents = read_documents(io.BytesIO(_read_stdin(MAX_LINE_BYTES)))
    found = list(itertools.islice(documents, 2))
    if not found:
        raise _stdin_error("stdin: no JSON document")
    (line, document), *more = found
    if isinstance(document, BadLine):
        raise _stdin_error(f"stdin line {line}: {document.error}")
    if more:
        raise _stdin_error(f"stdin line {more[0][0]}: a second JSON document; encode takes one")
    return document


def _read_stdin_bytes(as_hex: bool) -> bytes:
    # no bus event comes near 1 MiB, encoded or as JSON; as hex text, each byte takes
    # two digits and may be followed by a space or a line end (xxd -p, od)
    data = _read_stdin(3 * MAX_LINE_BYTES if as_hex else MAX_LINE_BYTES)
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
        document = _read_stdin_document()
        value = codec.encode(schema.full_name, from_json(schema, document))
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


class ExampleFormat(StrEnum):
    json = "json"
    jsonl = "jsonl"


def _instants(value: Any, name: str = "") -> list[tuple[str, dt.datetime]]:
    """(field name, instant) of every timestamp in a record, nested ones included."""
    if isinstance(value, dt.datetime):
        return [(name, value)]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _instants(item, key)]
    if isinstance(value, list):
        return [found for item in value for found in _instants(item, name)]
    return []


def _shifted(value: Any, by: dt.timedelta) -> Any:
    if isinstance(value, dt.datetime):
        return value + by
    if isinstance(value, dict):
        return {key: _shifted(item, by) for key, item in value.items()}
    if isinstance(value, list):
        return [_shifted(item, by) for item in value]
    return value


def _release_subject(release: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The subject of the example order a release example releases (same order kind)."""
    words = str(release["order_kind"]).split("_")
    order_name = "".join(word.capitalize() for word in words) + "Order"
    if f"cn.zf801.orders.v1.{order_name}" not in ORDERS:
        raise BusError(f"order_kind {release['order_kind']!r}: no order schema {order_name}")
    order = json.loads((folder / "orders" / f"{order_name}.json").read_text("utf-8"))
    subject = order[_SUBJECT]
    if "id_number" in subject:
        return {"id_number": subject["id_number"]}
    return {"plate_number": subject["plate_number"], "vin": subject["vin"]}


def example_document(
    schema: RegisteredSchema, now: dt.datetime | None = None, folder: Path = EXAMPLE_DIR
) -> dict[str, Any]:
    """The example of ``schema`` as ``zf801 publish`` takes it, its times moved by whole
    days so that the latest observation or issuance lies within the day before ``now``
    (scheduled times, e.g. a control period's end, move with it; dates stay: a date of
    birth is part of the ID number). An OrderRelease gets the ``subject`` of its order."""
    path = folder / schema.family / f"{schema.name}.json"
    try:
        document = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise BusError(f"no example of {schema.full_name} ({path}): {exc.strerror}") from exc
    record = from_json(schema, document)
    observed = [when for name, when in _instants(record) if name not in TIME_HORIZONS]
    now = now or dt.datetime.now(dt.UTC)
    days = (now - max(observed)) // dt.timedelta(days=1) if observed else 0
    example: dict[str, Any] = to_json(schema, _shifted(record, dt.timedelta(days=days)))
    if schema.full_name == RELEASE:
        example[_SUBJECT] = _release_subject(example, folder)
    return example


@schemas_app.command("example")
def example_command(
    name: Annotated[str, typer.Argument(help="Record name (HotelCheckIn) or full name.")],
    output: Annotated[
        ExampleFormat,
        typer.Option("--format", help="json: indented; jsonl: one line, to pipe into publish."),
    ] = ExampleFormat.json,
    folder: _Dir = None,
) -> None:
    """Print a valid example of an event in the JSON mapping that `zf801 publish` takes,
    with realistic identifiers (check digits, a case number of the court, the court's
    province) and times of the last day.

    Edit it and publish it: `zf801 schemas example HotelCheckIn --format jsonl > in.jsonl`,
    then `zf801 publish HotelCheckIn --as 110105000000 in.jsonl`. An OrderRelease carries
    the extra top-level "subject" its order was issued for."""
    try:
        schema = _registry(folder).get(name.strip())
        document = example_document(schema)
    except BusError as exc:
        raise _fail(exc) from exc
    indent = 2 if output is ExampleFormat.json else None
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=indent) + "\n")


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
