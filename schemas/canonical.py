"""Avro Parsing Canonical Form and the CRC-64-AVRO fingerprint, per the Avro specification.

The canonical form follows Java's ``SchemaNormalization`` (the reference the other side of
the bus is likely to run): primitives are written by name even when they carry a logical
type, names are full names, only ``name``/``type``/``fields``/``symbols``/``items``/
``values``/``size`` are kept, in that order, and a named type is written in full only at its
first occurrence. The Python ``avro`` package 1.12 keeps ``{"type":"long"}`` for a primitive
with a logical type, so its fingerprints of such schemas differ from Java's and fastavro's;
the unit tests pin that difference.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["crc64_avro", "fingerprint_bytes", "parsing_canonical_form"]

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})

_EMPTY = 0xC15D213AA4D7A795


def _make_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_TABLE = _make_table()


def crc64_avro(data: bytes) -> int:
    """The 64-bit Rabin fingerprint the Avro spec calls CRC-64-AVRO, as an unsigned int."""
    fp = _EMPTY
    table = _TABLE
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def fingerprint_bytes(canonical_form: str) -> bytes:
    """The 8 fingerprint bytes as they appear on the wire (little-endian)."""
    return crc64_avro(canonical_form.encode("utf-8")).to_bytes(8, "little")


def _full_name(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _quote(text: str) -> str:
    # [STRINGS]: no escapes beyond what JSON requires; names and symbols are ASCII anyway.
    return json.dumps(text, ensure_ascii=False)


def _build(schema: Any, namespace: str | None, seen: set[str]) -> str:  # noqa: PLR0911
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return _quote(schema)
        return _quote(_full_name(schema, namespace))
    if isinstance(schema, list):
        return "[" + ",".join(_build(branch, namespace, seen) for branch in schema) + "]"
    if not isinstance(schema, Mapping):
        raise TypeError(f"not an Avro schema: {schema!r}")
    kind = schema["type"]
    if not isinstance(kind, str):
        return _build(kind, namespace, seen)
    if kind in _PRIMITIVES:
        return _quote(kind)
    if kind == "array":
        return '{"type":"array","items":' + _build(schema["items"], namespace, seen) + "}"
    if kind == "map":
        return '{"type":"map","values":' + _build(schema["values"], namespace, seen) + "}"
    if kind not in _NAMED:
        return _quote(_full_name(kind, namespace))
    return _build_named(schema, kind, namespace, seen)


def _build_named(
    schema: Mapping[str, Any], kind: str, namespace: str | None, seen: set[str]
) -> str:
    full = _full_name(schema["name"], schema.get("namespace", namespace))
    if full in seen:
        return _quote(full)
    seen.add(full)
    own_ns = full.rpartition(".")[0] or None
    head = '{"name":' + _quote(full) + ',"type":' + _quote(kind)
    if kind == "enum":
        return head + ',"symbols":[' + ",".join(_quote(s) for s in schema["symbols"]) + "]}"
    if kind == "fixed":
        return head + ',"size":' + str(int(schema["size"])) + "}"
    fields = ",".join(
        '{"name":' + _quote(field["name"]) + ',"type":' + _build(field["type"], own_ns, seen) + "}"
        for field in schema["fields"]
    )
    return head + ',"fields":[' + fields + "]}"


def parsing_canonical_form(schema: Any) -> str:
    """The Parsing Canonical Form of a schema given as parsed JSON (dict, list or str)."""
    return _build(schema, None, set())
