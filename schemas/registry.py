"""The schema registry: every ``.avsc`` under ``schemas/avro`` loaded once, with its Parsing
Canonical Form, CRC-64-AVRO fingerprint, fastavro-parsed form and compiled validator.

A value's writer schema is resolved from the 8 fingerprint bytes of its single-object
header, never guessed. Each ``.avsc`` file is self-contained (no cross-file references), so
an implementation in another language can use any one file as it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema

from schemas.canonical import fingerprint_bytes, parsing_canonical_form
from schemas.errors import SchemaLoadError, UnknownFingerprint, UnknownSchema
from schemas.validation import Validator, compile_validator

__all__ = [
    "MAGIC",
    "SCHEMA_DIR",
    "RegisteredSchema",
    "Registry",
    "default_registry",
    "load_schema",
]

MAGIC = b"\xc3\x01"
"""The two marker bytes of Avro single-object encoding."""

SCHEMA_DIR = Path(__file__).resolve().parent / "avro"
EXAMPLE_DIR = Path(__file__).resolve().parent / "examples"
"""One valid JSON example per event type (``examples/<family>/<Name>.json``), shipped for
``zf801 schemas example`` and used by the tests."""
"""The bus's contract: ``<family>/<RecordName>.avsc``, shipped with the package."""

_NAMESPACE = re.compile(r"^cn\.zf801\.(?P<family>[a-z]+)\.v(?P<version>[1-9][0-9]*)$")


@dataclass(frozen=True, slots=True, eq=False)
class RegisteredSchema:
    """One writer/reader schema, with everything the hot path needs precomputed."""

    name: str
    """Record name, e.g. ``ExitRestrictionOrder``."""
    full_name: str
    """Full name, e.g. ``cn.zf801.orders.v1.ExitRestrictionOrder``; equals ``ce_type``."""
    family: str
    version: int
    canonical_form: str
    fingerprint: bytes
    """The 8 CRC-64-AVRO bytes, little-endian, as on the wire."""
    parsed: dict[str, Any] = field(repr=False)
    """fastavro-parsed schema (pass to ``schemaless_writer``/``schemaless_reader``)."""
    raw: Mapping[str, Any] = field(repr=False)
    """The schema JSON as written in the ``.avsc`` file, custom properties included."""
    validator: Validator = field(repr=False)
    header: bytes = field(repr=False)
    """``C3 01`` + fingerprint: the first 10 bytes of every value this schema writes."""
    path: Path | None = None

    @property
    def fingerprint_int(self) -> int:
        """The fingerprint as an unsigned integer (Java's ``parsingFingerprint64`` as unsigned)."""
        return int.from_bytes(self.fingerprint, "little")

    def validate(self, record: Any) -> None:
        """Raise :class:`~schemas.errors.SchemaValidationError` if ``record`` breaks the schema."""
        self.validator(record)


def load_schema(raw: Mapping[str, Any], path: Path | None = None) -> RegisteredSchema:
    """Parse one schema's JSON into a :class:`RegisteredSchema` (no file access)."""
    where = str(path) if path else "<schema>"
    if not isinstance(raw, Mapping) or raw.get("type") != "record":
        raise SchemaLoadError(f"{where}: an event schema must be a JSON object of type record")
    name, namespace = raw.get("name"), raw.get("namespace")
    if not isinstance(name, str) or not isinstance(namespace, str) or "." in name:
        raise SchemaLoadError(f"{where}: needs a short 'name' and a 'namespace'")
    match = _NAMESPACE.match(namespace)
    if match is None:
        raise SchemaLoadError(
            f"{where}: namespace {namespace!r} is not cn.zf801.<family>.v<version>"
        )
    try:
        parsed = parse_schema(dict(raw), named_schemas={})
        canonical = parsing_canonical_form(raw)
        if not isinstance(parsed, dict):
            raise TypeError("a record schema parses to a JSON object")
    except Exception as exc:  # fastavro raises several unrelated types for a bad schema
        raise SchemaLoadError(f"{where}: not a valid Avro schema: {exc}") from exc
    problem = _union_default_problem(parsed)
    if problem:
        raise SchemaLoadError(f"{where}: {problem}")
    full_name = f"{namespace}.{name}"
    fingerprint = fingerprint_bytes(canonical)
    return RegisteredSchema(
        name=name,
        full_name=full_name,
        family=match["family"],
        version=int(match["version"]),
        canonical_form=canonical,
        fingerprint=fingerprint,
        parsed=parsed,
        raw=raw,
        validator=compile_validator(parsed, full_name),
        header=MAGIC + fingerprint,
        path=path,
    )


def _union_default_problem(parsed: Mapping[str, Any]) -> str | None:
    """A union field's default must match the union's first branch (the Avro spec; Java's
    parser refuses the schema otherwise, fastavro does not check)."""
    for type_name, definition in parsed.get("__named_schemas", {}).items():
        for member in definition.get("fields", ()):
            if not isinstance(member["type"], list) or "default" not in member:
                continue
            first_is_null = member["type"][0] == "null"
            if first_is_null != (member["default"] is None):
                return (
                    f"{type_name}.{member['name']}: the default must match the first branch"
                    " of the union (put null first for a null default)"
                )
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaLoadError(f"{path}: cannot read schema: {exc}") from exc


class Registry:
    """Current schemas by name, and every known writer schema by fingerprint."""

    def __init__(self, schemas: Iterable[RegisteredSchema] = ()) -> None:
        self.by_name: dict[str, RegisteredSchema] = {}
        """Current schema by full name and (when unambiguous) by record name."""
        self.by_header: dict[bytes, RegisteredSchema] = {}
        """Every known writer schema by its 10-byte single-object header."""
        self._current: dict[str, RegisteredSchema] = {}
        self._ambiguous: set[str] = set()
        self._type_owner: dict[str, str] = {}
        for schema in schemas:
            self.add(schema)

    @classmethod
    def from_directory(cls, root: Path = SCHEMA_DIR) -> Registry:
        """Load every ``<family>/<Name>.avsc`` under ``root``; the layout is checked."""
        registry = cls()
        paths = sorted(root.glob("*/*.avsc"))
        if not paths:
            raise SchemaLoadError(f"{root}: no <family>/<Name>.avsc files found")
        for path in paths:
            schema = load_schema(_read_json(path), path)
            if (schema.family, schema.name) != (path.parent.name, path.stem):
                raise SchemaLoadError(
                    f"{path}: holds {schema.full_name}; expected"
                    f" {path.parent.name}/{schema.name}.avsc"
                )
            registry.add(schema)
        return registry

    def add(self, schema: RegisteredSchema) -> None:
        """Add a current schema: resolvable by name and by fingerprint."""
        if schema.full_name in self._current:
            raise SchemaLoadError(f"{schema.full_name} is defined twice")
        self._claim_named_types(schema)
        self._current[schema.full_name] = schema
        self.by_name[schema.full_name] = schema
        if schema.name in self.by_name or schema.name in self._ambiguous:
            self._ambiguous.add(schema.name)
            self.by_name.pop(schema.name, None)
        else:
            self.by_name[schema.name] = schema
        self.by_header[schema.header] = schema

    def register_writer(self, raw: Mapping[str, Any], path: Path | None = None) -> RegisteredSchema:
        """Make another version of a schema (older, or the other side's newer one) resolvable
        by fingerprint, so its values decode (into a current reader schema if asked)."""
        schema = load_schema(raw, path)
        self.by_header.setdefault(schema.header, schema)
        return self.by_header[schema.header]

    def _claim_named_types(self, schema: RegisteredSchema) -> None:
        # Full names of nested types must be unique across files, so that a Java build that
        # compiles all files with one parser does not hit a redefinition.
        owner = str(schema.path) if schema.path else schema.full_name
        for type_name in schema.parsed.get("__named_schemas", {}):
            previous = self._type_owner.setdefault(type_name, owner)
            if previous != owner:
                raise SchemaLoadError(f"{owner}: type {type_name} is also defined in {previous}")

    def get(self, name: str) -> RegisteredSchema:
        """The current schema of a record name or full name."""
        try:
            return self.by_name[name]
        except KeyError:
            if name in self._ambiguous:
                raise UnknownSchema(f"{name} (ambiguous: use the full name)") from None
            raise UnknownSchema(name) from None

    def by_fingerprint(self, fingerprint: bytes) -> RegisteredSchema:
        """The writer schema with these 8 fingerprint bytes."""
        try:
            return self.by_header[MAGIC + fingerprint]
        except KeyError:
            raise UnknownFingerprint(bytes(fingerprint)) from None

    def __iter__(self) -> Iterator[RegisteredSchema]:
        return iter(sorted(self._current.values(), key=lambda s: s.full_name))

    def __len__(self) -> int:
        return len(self._current)

    def __contains__(self, name: object) -> bool:
        return name in self.by_name


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The registry of the schemas shipped in ``schemas/avro``, loaded once per process."""
    return Registry.from_directory(SCHEMA_DIR)
