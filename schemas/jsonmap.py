"""The JSON mapping of bus records, for integrators and the CLI (``zf801 schemas encode``,
``zf801 publish``). It is plain JSON, not Avro's JSON encoding:

- ``timestamp-micros`` / ``timestamp-millis``: RFC 3339 string with a zone,
  e.g. ``"2026-11-27T05:00:00.123456Z"`` (output is always UTC with microseconds, ``Z``);
- ``date``: ISO 8601 ``"2026-11-27"``;
- ``decimal`` (amounts in yuan): a string, e.g. ``"1250000.00"`` (never a float);
- ``uuid``: the 36-character string;
- ``bytes`` (photos, documents, original values): standard base64 with padding;
- ``fixed`` (SHA-256 digests): lower-case hex, as ``sha256sum`` prints it;
- enums: the symbol; optional fields: the value or ``null`` (no union wrapper); an omitted
  optional field takes its default.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import uuid
from collections.abc import Mapping
from typing import Any

from schemas.errors import SchemaValidationError
from schemas.registry import RegisteredSchema

__all__ = ["field_path", "from_json", "json_kind", "to_json"]

# bool before int: True is an int to Python, a boolean to JSON
_JSON_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "boolean"), ((int, float, decimal.Decimal), "number"), (str, "string"),
    (list, "array"), (Mapping, "object"),
)  # fmt: skip


def json_kind(value: object) -> str:
    """What a parsed JSON value is, in JSON's words (for messages to whoever sent it):
    object, array, string, number, boolean or null."""
    if value is None:
        return "null"
    return next(
        (name for kind, name in _JSON_KINDS if isinstance(value, kind)), type(value).__name__
    )


_TIMESTAMPS = ("timestamp-micros", "timestamp-millis")


class _BadJsonError(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


def field_path(path: str, part: str) -> str:
    """``part`` (a field name, or ``[i]``) under ``path``: ``a.b[1]``."""
    return f"{path}{part}" if part.startswith("[") or not path else f"{path}.{part}"


def _named(schema: Any, named: Mapping[str, Any]) -> Any:
    if isinstance(schema, str) and schema in named:
        return named[schema]
    if isinstance(schema, Mapping) and schema.get("type") in named:
        return named[schema["type"]]
    return schema


def _parse_instant(text: str, path: str) -> dt.datetime:
    try:
        instant = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise _BadJsonError(
            path, "expected an RFC 3339 timestamp, e.g. 2026-11-27T05:00:00Z"
        ) from exc
    if instant.tzinfo is None:
        raise _BadJsonError(path, "timestamp needs a zone (Z or +08:00)")
    return instant


def _scalar_in(kind: str, logical: Any, value: Any, path: str) -> Any:  # noqa: PLR0911
    if logical == "decimal" and type(value) is int:
        return decimal.Decimal(value)
    if not isinstance(value, str):
        return value  # left to validation, which names the expected type
    try:
        if logical in _TIMESTAMPS:
            return _parse_instant(value, path)
        if logical == "date":
            return dt.date.fromisoformat(value)
        if logical == "decimal":
            return decimal.Decimal(value)
        if kind == "bytes":
            return base64.b64decode(value, validate=True)
    except (ValueError, decimal.InvalidOperation, binascii.Error) as exc:
        raise _BadJsonError(path, f"cannot read {logical or kind} from JSON: {exc}") from exc
    return value


def _in(schema: Any, value: Any, path: str, named: Mapping[str, Any]) -> Any:  # noqa: PLR0911
    schema = _named(schema, named)
    if isinstance(schema, list):
        if value is None:
            return None
        branches = [branch for branch in schema if branch != "null"]
        if len(branches) == 1:  # an optional field: its one type says what went wrong
            return _in(branches[0], value, path, named)
        for branch in branches:
            try:
                return _in(branch, value, path, named)
            except _BadJsonError:
                continue
        return value
    kind = schema if isinstance(schema, str) else schema["type"]
    if kind == "record" and isinstance(value, Mapping):
        fields = {field["name"]: field["type"] for field in schema["fields"]}
        return {
            key: _in(fields[key], item, field_path(path, key), named) if key in fields else item
            for key, item in value.items()
        }
    if kind == "array" and isinstance(value, list):
        return [
            _in(schema["items"], v, field_path(path, f"[{i}]"), named) for i, v in enumerate(value)
        ]
    if kind == "map" and isinstance(value, Mapping):
        return {
            k: _in(schema["values"], v, field_path(path, f"[{k!r}]"), named)
            for k, v in value.items()
        }
    if kind == "fixed" and isinstance(value, str):
        try:
            return bytes.fromhex(value)
        except ValueError as exc:
            raise _BadJsonError(path, "expected lower-case hex") from exc
    logical = schema.get("logicalType") if isinstance(schema, Mapping) else None
    if kind in ("long", "int", "bytes"):
        return _scalar_in(kind, logical, value, path)
    return value


def from_json(schema: RegisteredSchema, document: Any) -> Any:
    """Turn a parsed JSON document into a record for ``schema`` (to be validated next)."""
    if schema.parsed.get("type") == "record" and not isinstance(document, Mapping):
        raise SchemaValidationError(
            schema.full_name, "", "type", f"expected a JSON object, got {json_kind(document)}"
        )
    try:
        return _in(schema.parsed, document, "", schema.parsed.get("__named_schemas", {}))
    except _BadJsonError as exc:
        raise SchemaValidationError(schema.full_name, exc.path, "json", exc.reason) from None


def _out(value: Any, schema: Any, named: Mapping[str, Any]) -> Any:  # noqa: PLR0911
    if isinstance(value, dt.datetime):
        utc = value.astimezone(dt.UTC).replace(tzinfo=None)
        return utc.isoformat(timespec="microseconds") + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray):
        schema = _named(schema, named)
        if isinstance(schema, list):
            schema = next(b for b in (_named(x, named) for x in schema) if b != "null")
        if isinstance(schema, Mapping) and schema.get("type") == "fixed":
            return bytes(value).hex()
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {k: _out(v, _field_type(schema, k, named), named) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_out(v, _items_type(schema, named), named) for v in value]
    return value


def _resolve(schema: Any, named: Mapping[str, Any], kind: str) -> Any:
    schema = _named(schema, named)
    if isinstance(schema, list):
        for branch in (_named(b, named) for b in schema):
            if isinstance(branch, Mapping) and branch.get("type") == kind:
                return branch
        return None
    return schema if isinstance(schema, Mapping) and schema.get("type") == kind else None


def _field_type(schema: Any, name: str, named: Mapping[str, Any]) -> Any:
    record = _resolve(schema, named, "record")
    if record is not None:
        for field in record["fields"]:
            if field["name"] == name:
                return field["type"]
    mapping = _resolve(schema, named, "map")
    return mapping["values"] if mapping is not None else None


def _items_type(schema: Any, named: Mapping[str, Any]) -> Any:
    array = _resolve(schema, named, "array")
    return array["items"] if array is not None else None


def to_json(schema: RegisteredSchema, record: Mapping[str, Any]) -> Any:
    """A JSON-serialisable form of a decoded record, in the mapping described above."""
    return _out(record, schema.parsed, schema.parsed.get("__named_schemas", {}))
