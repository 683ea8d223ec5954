"""Schema evolution: full compatibility (backward AND forward) by the Avro resolution rules.

The police side may run another language and upgrade on another day, so a new schema must
read old data (backward) and an old schema must read new data (forward). The rules follow
the Avro specification's "Schema Resolution": matching names (or reader aliases), fields
matched by name or reader alias and otherwise filled from the reader's default, enum symbols
unknown to the reader mapped to the reader's default, the numeric and string/bytes
promotions, fixed sizes, union branches. A change of logical type (or of a decimal's
precision or scale) is also refused: the bytes would still parse, with another meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastavro import parse_schema

__all__ = ["Incompatibility", "full_compatibility", "reader_incompatibilities"]

_PROMOTIONS = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
_NAMED = ("record", "error", "enum", "fixed")


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """One way in which one version cannot read the other."""

    schema: str
    direction: str
    """``backward`` (new schema reading old data) or ``forward`` (old reading new)."""
    path: str
    rule: str
    detail: str

    def __str__(self) -> str:
        where = self.path or "<record>"
        return f"{self.schema} {where}: {self.detail} [{self.direction}: {self.rule}]"


@dataclass(frozen=True, slots=True)
class _Side:
    named: Mapping[str, Any]

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema in self.named:
            return self.named[schema]
        if isinstance(schema, Mapping) and schema.get("type") in self.named:
            return self.named[schema["type"]]
        return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    return schema if isinstance(schema, str) else str(schema["type"])


def _logical(schema: Any) -> tuple[Any, ...]:
    if not isinstance(schema, Mapping) or "logicalType" not in schema:
        return ()
    return (schema["logicalType"], schema.get("precision"), schema.get("scale", 0))


def _full_aliases(schema: Mapping[str, Any]) -> set[str]:
    namespace = str(schema["name"]).rpartition(".")[0]
    return {
        a if "." in a or not namespace else f"{namespace}.{a}" for a in schema.get("aliases", ())
    }


def _describe(schema: Any) -> str:
    if isinstance(schema, list):
        return "[" + ", ".join(_describe(b) for b in schema) + "]"
    if isinstance(schema, Mapping):
        return str(schema.get("name") or schema["type"])
    return str(schema)


def _shape_fits(reader: Any, writer: Any) -> bool:
    r_kind, w_kind = _kind(reader), _kind(writer)
    return r_kind == w_kind or r_kind in _PROMOTIONS.get(w_kind, frozenset())


class _Checker:
    """Collects the reasons a reader schema cannot read every datum of a writer schema."""

    def __init__(self, reader: _Side, writer: _Side, direction: str, schema: str) -> None:
        self.reader, self.writer = reader, writer
        self.direction, self.schema = direction, schema
        self.issues: list[Incompatibility] = []
        self._visiting: set[tuple[str, str]] = set()

    def issue(self, path: str, rule: str, detail: str) -> None:
        self.issues.append(Incompatibility(self.schema, self.direction, path, rule, detail))

    def readable(self, reader: Any, writer: Any) -> bool:
        probe = _Checker(self.reader, self.writer, self.direction, self.schema)
        probe._visiting = set(self._visiting)
        probe.check(reader, writer, "")
        return not probe.issues

    def check(self, reader: Any, writer: Any, path: str) -> None:
        reader, writer = self.reader.resolve(reader), self.writer.resolve(writer)
        if isinstance(writer, list):
            for branch in writer:
                if isinstance(reader, list):
                    if not any(self.readable(r, branch) for r in reader):
                        self.issue(
                            path, "union_branch", f"no reader branch reads {_describe(branch)}"
                        )
                elif _shape_fits(reader, self.writer.resolve(branch)):
                    self.check(reader, branch, path)
                else:
                    self.issue(
                        path,
                        "union_branch",
                        f"{_describe(reader)} cannot read the writer's {_describe(branch)} branch",
                    )
            return
        if isinstance(reader, list):
            if not any(self.readable(r, writer) for r in reader):
                self.issue(path, "union_branch", f"no reader branch reads {_describe(writer)}")
            return
        self._check_same_shape(reader, writer, path)

    def _check_same_shape(self, reader: Any, writer: Any, path: str) -> None:
        r_kind, w_kind = _kind(reader), _kind(writer)
        if not _shape_fits(reader, writer):
            self.issue(path, "type_changed", f"{w_kind} cannot be read as {r_kind}")
            return
        if _logical(reader) != _logical(writer):
            self.issue(
                path,
                "logical_type_changed",
                f"logical type {_logical(writer) or 'none'} read as {_logical(reader) or 'none'}",
            )
            return
        if r_kind in _NAMED and not self._names_match(reader, writer, path):
            return
        if r_kind in ("record", "error"):
            self._record(reader, writer, path)
        elif r_kind == "enum":
            self._enum(reader, writer, path)
        elif r_kind == "fixed" and reader["size"] != writer["size"]:
            self.issue(
                path, "fixed_size_changed", f"size {writer['size']} read as {reader['size']}"
            )
        elif r_kind == "array":
            self.check(reader["items"], writer["items"], f"{path}[]")
        elif r_kind == "map":
            self.check(reader["values"], writer["values"], f"{path}{{}}")

    def _names_match(self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str) -> bool:
        if reader["name"] == writer["name"] or writer["name"] in _full_aliases(reader):
            return True
        self.issue(path, "name_changed", f"{writer['name']} read as {reader['name']} (no alias)")
        return False

    def _record(self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str) -> None:
        pair = (str(reader["name"]), str(writer["name"]))
        if pair in self._visiting:
            return
        self._visiting.add(pair)
        written = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            where = f"{path}.{field['name']}" if path else field["name"]
            names = [field["name"], *field.get("aliases", ())]
            source = next((written[n] for n in names if n in written), None)
            if source is not None:
                self.check(field["type"], source["type"], where)
            elif "default" not in field:
                rule = (
                    "field_added_without_default"
                    if self.direction == "backward"
                    else ("field_removed_without_default")
                )
                self.issue(where, rule, "the reader needs this field and has no default")
        self._visiting.discard(pair)

    def _enum(self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str) -> None:
        missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if missing and "default" not in reader:
            rule = "enum_symbol_removed" if self.direction == "backward" else "enum_symbol_added"
            self.issue(
                path,
                rule,
                f"symbol(s) {', '.join(missing)} unknown to the reader, which has no enum default",
            )


def _parsed(raw: Mapping[str, Any]) -> dict[str, Any]:
    parsed = parse_schema(dict(raw), named_schemas={})
    if not isinstance(parsed, dict):
        raise TypeError("a record schema parses to a JSON object")
    return parsed


def reader_incompatibilities(
    reader_raw: Mapping[str, Any], writer_raw: Mapping[str, Any], direction: str = "backward"
) -> list[Incompatibility]:
    """Why ``reader_raw`` cannot read every datum written with ``writer_raw`` (empty: it can)."""
    reader, writer = _parsed(reader_raw), _parsed(writer_raw)
    checker = _Checker(
        _Side(reader.get("__named_schemas", {})),
        _Side(writer.get("__named_schemas", {})),
        direction,
        str(reader["name"]),
    )
    checker.check(reader, writer, "")
    return checker.issues


def full_compatibility(
    old_raw: Mapping[str, Any], new_raw: Mapping[str, Any]
) -> list[Incompatibility]:
    """Issues that break full compatibility between two versions of a schema."""
    return [
        *reader_incompatibilities(new_raw, old_raw, "backward"),
        *reader_incompatibilities(old_raw, new_raw, "forward"),
    ]
