"""Record validation against an Avro schema, compiled once per schema into closures.

Stricter than fastavro's own validation, and with errors that name the field path and the
rule: unknown fields are refused (a typo must not silently drop data), instants must be
timezone-aware, decimals must fit precision and scale, and the bus's size limits
(``zf801.maxLength`` in characters for strings and bytes for bytes, ``zf801.minItems`` /
``zf801.maxItems`` for arrays) are enforced. Identifier rules (``zf801.identifier``) are
applied by ``schemas.identifiers`` at the edge, not here.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from schemas.errors import SchemaValidationError

__all__ = ["MAX_ITEMS", "MAX_LENGTH", "MIN_ITEMS", "UUID_TEXT", "Validator", "compile_validator"]

MAX_LENGTH = "zf801.maxLength"
MAX_ITEMS = "zf801.maxItems"
MIN_ITEMS = "zf801.minItems"

Validator = Callable[[Any], None]
_Check = Callable[[Any], None]

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_MISSING = object()
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


class _InvalidError(Exception):
    """Raised inside compiled checks; path segments are added while it unwinds."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule
        self.reason = reason
        self.parts: list[str] = []


def _wrong_type(expected: str, value: object) -> _InvalidError:
    # Messages are built only on failure: validation runs on every public publish.
    return _InvalidError("type", f"expected {expected}, got {type(value).__name__}")


def _check_null(value: Any) -> None:
    if value is not None:
        raise _wrong_type("null", value)


def _check_boolean(value: Any) -> None:
    if type(value) is not bool:
        raise _wrong_type("a boolean", value)


def _check_int(value: Any) -> None:
    if type(value) is not int or not _INT_MIN <= value <= _INT_MAX:
        raise _wrong_type("a 32-bit int", value)


def _check_long(value: Any) -> None:
    if type(value) is not int or not _LONG_MIN <= value <= _LONG_MAX:
        raise _wrong_type("a 64-bit long", value)


def _check_float(value: Any) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _wrong_type("a number", value)


def _check_instant(value: Any) -> None:
    if not isinstance(value, dt.datetime):
        raise _wrong_type("a datetime", value)
    if value.tzinfo is None or value.utcoffset() is None:
        raise _InvalidError(
            "timezone", "instant must be timezone-aware (UTC), got a naive datetime"
        )


def _check_date(value: Any) -> None:
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise _wrong_type("a date", value)


UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def _check_uuid(value: Any) -> None:
    if isinstance(value, uuid.UUID):
        return
    if not isinstance(value, str):
        raise _wrong_type("a UUID", value)
    if UUID_TEXT.fullmatch(value) is None:
        raise _InvalidError("uuid", "expected a UUID in 8-4-4-4-12 hexadecimal form")


def _string_check(schema: Mapping[str, Any]) -> _Check:
    if schema.get("logicalType") == "uuid":
        return _check_uuid
    limit = schema.get(MAX_LENGTH)

    def check(value: Any) -> None:
        if not isinstance(value, str):
            raise _wrong_type("a string", value)
        if limit is not None and len(value) > limit:
            raise _InvalidError(MAX_LENGTH, f"{len(value)} characters, at most {limit} allowed")

    return check


def _decimal_check(schema: Mapping[str, Any]) -> _Check:
    precision, scale = int(schema["precision"]), int(schema.get("scale", 0))

    def check(value: Any) -> None:
        if not isinstance(value, decimal.Decimal):
            raise _wrong_type("a Decimal", value)
        if not value.is_finite():
            raise _InvalidError("decimal", "decimal must be finite")
        exponent = value.as_tuple().exponent
        if not isinstance(exponent, int) or exponent < -scale:
            raise _InvalidError("decimal", f"more than {scale} digits after the decimal point")
        if value.adjusted() + 1 + scale > precision:  # digits before the point, and after
            raise _InvalidError("decimal", f"more than {precision} significant digits")

    return check


def _bytes_check(schema: Mapping[str, Any]) -> _Check:
    if schema.get("logicalType") == "decimal":
        return _decimal_check(schema)
    limit = schema.get(MAX_LENGTH)

    def check(value: Any) -> None:
        if not isinstance(value, bytes | bytearray):
            raise _wrong_type("bytes", value)
        if limit is not None and len(value) > limit:
            raise _InvalidError(MAX_LENGTH, f"{len(value)} bytes, at most {limit} allowed")

    return check


def _primitive_check(kind: str, schema: Mapping[str, Any]) -> _Check:  # noqa: PLR0911
    logical = schema.get("logicalType")
    if kind == "null":
        return _check_null
    if kind == "boolean":
        return _check_boolean
    if kind == "int":
        return _check_date if logical == "date" else _check_int
    if kind == "long":
        timestamp = logical in ("timestamp-micros", "timestamp-millis")
        return _check_instant if timestamp else _check_long
    if kind in ("float", "double"):
        return _check_float
    if kind == "string":
        return _string_check(schema)
    return _bytes_check(schema)


class _Compiler:
    """Turns a fastavro-parsed schema into nested check closures; named types compile once."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self._named = named
        self._compiled: dict[str, _Check] = {}

    def compile(self, schema: Any) -> _Check:  # noqa: PLR0911
        if isinstance(schema, str):
            if schema in self._named:
                return self._named_ref(schema)
            return _primitive_check(schema, {})
        if isinstance(schema, list):
            return self._union(schema)
        kind = schema["type"]
        if kind in ("record", "error", "enum", "fixed"):
            return self._named_ref(schema["name"], schema)
        if kind == "array":
            return self._array(schema)
        if kind == "map":
            return self._map(schema)
        if isinstance(kind, str) and kind in self._named:
            return self._named_ref(kind)
        return _primitive_check(kind, schema)

    def _named_ref(self, name: str, schema: Mapping[str, Any] | None = None) -> _Check:
        if name in self._compiled:
            return self._compiled[name]
        target: list[_Check] = []

        def forward(value: Any) -> None:
            target[0](value)

        # Registered before compiling, so that a recursive type refers to itself.
        self._compiled[name] = forward
        definition = schema if schema is not None else self._named[name]
        kind = definition["type"]
        if kind == "enum":
            check = self._enum(definition)
        elif kind == "fixed":
            check = self._fixed(definition)
        else:
            check = self._record(definition)
        target.append(check)
        self._compiled[name] = check
        return check

    def _enum(self, schema: Mapping[str, Any]) -> _Check:
        symbols = frozenset(schema["symbols"])
        short = schema["name"].rpartition(".")[2]

        def check(value: Any) -> None:
            if not isinstance(value, str) or value not in symbols:
                shown = repr(value)[:40] if isinstance(value, str) else type(value).__name__
                raise _InvalidError("symbol", f"{shown} is not a symbol of {short}")

        return check

    def _fixed(self, schema: Mapping[str, Any]) -> _Check:
        size = int(schema["size"])

        def check(value: Any) -> None:
            if not isinstance(value, bytes | bytearray):
                raise _InvalidError("fixed", f"expected {size} bytes, got {type(value).__name__}")
            if len(value) != size:
                raise _InvalidError("fixed", f"expected exactly {size} bytes, got {len(value)}")

        return check

    def _array(self, schema: Mapping[str, Any]) -> _Check:
        item = self.compile(schema["items"])
        low, high = schema.get(MIN_ITEMS), schema.get(MAX_ITEMS)

        def check(value: Any) -> None:
            if not isinstance(value, list | tuple):
                raise _wrong_type("a list", value)
            if high is not None and len(value) > high:
                raise _InvalidError(MAX_ITEMS, f"{len(value)} items, at most {high} allowed")
            if low is not None and len(value) < low:
                raise _InvalidError(MIN_ITEMS, f"{len(value)} items, at least {low} required")
            for index, element in enumerate(value):
                try:
                    item(element)
                except _InvalidError as exc:
                    exc.parts.append(f"[{index}]")
                    raise

        return check

    def _map(self, schema: Mapping[str, Any]) -> _Check:
        values = self.compile(schema["values"])

        def check(value: Any) -> None:
            if not isinstance(value, Mapping):
                raise _wrong_type("a map", value)
            for key, element in value.items():
                if not isinstance(key, str):
                    raise _InvalidError("type", "map keys must be strings")
                try:
                    values(element)
                except _InvalidError as exc:
                    exc.parts.append(f"[{key!r}]")
                    raise

        return check

    def _union(self, branches: list[Any]) -> _Check:
        checks = [self.compile(branch) for branch in branches]
        nullable = "null" in branches
        others = [c for b, c in zip(branches, checks, strict=True) if b != "null"]
        if nullable and len(others) == 1:
            (only,) = others

            def nullable_check(value: Any) -> None:
                if value is not None:
                    only(value)

            return nullable_check

        def check(value: Any) -> None:
            for branch_check in checks:
                try:
                    branch_check(value)
                except _InvalidError:
                    continue
                return
            name = type(value).__name__
            raise _InvalidError("union", f"{name} matches no branch of the union")

        return check

    def _record(self, schema: Mapping[str, Any]) -> _Check:
        fields = [
            (field["name"], self.compile(field["type"]), "default" in field)
            for field in schema["fields"]
        ]
        known = frozenset(name for name, _, _ in fields)
        short = schema["name"].rpartition(".")[2]

        def check(value: Any) -> None:
            if type(value) is not dict and not isinstance(value, Mapping):
                raise _wrong_type(f"a {short} record (mapping)", value)
            for name, field_check, has_default in fields:
                item = value.get(name, _MISSING)
                if item is _MISSING:
                    if has_default:
                        continue
                    exc = _InvalidError("required", "required field is missing")
                    exc.parts.append(name)
                    raise exc
                try:
                    field_check(item)
                except _InvalidError as exc:
                    exc.parts.append(name)
                    raise
            if not known.issuperset(value):
                unknown = sorted(str(k) for k in value if k not in known)
                raise _InvalidError("unknown_field", f"unknown field(s) {', '.join(unknown)}")

        return check


def _join(parts: list[str]) -> str:
    path = ""
    for part in reversed(parts):
        path += part if part.startswith("[") or not path else "." + part
    return path


def compile_validator(parsed: Mapping[str, Any], schema_name: str) -> Validator:
    """A function that raises :class:`SchemaValidationError` for a record that breaks
    ``parsed`` (a fastavro-parsed record schema)."""
    named = parsed.get("__named_schemas", {})
    check = _Compiler(named).compile(parsed)

    def validate(record: Any) -> None:
        try:
            check(record)
        except _InvalidError as exc:
            raise SchemaValidationError(
                schema_name, _join(exc.parts), exc.rule, exc.reason
            ) from None

    return validate
