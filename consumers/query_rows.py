"""Rows of a police unit's reference data (:mod:`consumers.query_source`), checked before
they are stored: each kind of row is a fragment of one P1-P5 result schema, and is checked
in its place in a throwaway result record, through the JSON mapping, the edge rules
(identifiers normalised, text and time rules) and the schema (required fields, enums,
lengths), so a responder never answers with a value the bus would refuse.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from consumers.errors import ConsumerError
from schemas.agencies import load_agencies
from schemas.edge import IDENTIFIER_RULES, normalise_event
from schemas.errors import BusError, IdentifierError, SchemaValidationError
from schemas.identifiers import birth_date_of, normalise_id_number
from schemas.jsonmap import from_json, json_kind, to_json
from schemas.registry import default_registry

__all__ = [
    "ROW_KINDS",
    "CheckedRow",
    "SourceRowError",
    "check_row",
    "max_items",
    "micros",
    "sighting_row",
]

ROW_KINDS = ("person", "document", "crossing", "vehicle", "hotel_stay")
"""What a reference store holds; each kind is a fragment of one result schema."""


class SourceRowError(ConsumerError, ValueError):
    """A row breaks the result schema it belongs to: ``field`` is the row's field
    (``owner.id_number``), ``rule`` the rule (``id_number.check_char``, ``required``)."""

    def __init__(self, kind: str, field: str, rule: str, reason: str) -> None:
        self.kind = kind
        self.field = field
        self.rule = rule
        self.reason = reason
        super().__init__(f"{kind} row: {field or '<row>'}: {reason} [rule {rule}]")

    def __reduce__(self) -> tuple[type[SourceRowError], tuple[str, str, str, str]]:
        return (type(self), (self.kind, self.field, self.rule, self.reason))


_NS = "cn.zf801.police.v1."
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _traveller(subject: Mapping[str, Any]) -> dict[str, Any]:
    """Stands for the person around a document or crossing row (only the row is checked):
    born on the date the subject's ID number encodes, which the edge rules hold a person
    to (a number they refuse is refused by its own rule)."""
    given = subject.get("id_number")
    born = "2000-01-01"
    if isinstance(given, str):
        born = birth_date_of(normalise_id_number(given, "id_number")).isoformat()
    return {"name": "-", "sex": "UNKNOWN", "birth_date": born, **subject}


# The wrapper around a fragment, as it prefixes a field path: dropped from errors.
_WRAPPER = re.compile(r"^(?:person\.documents\[0\]|crossings\[0\]|stays\[0\]|vehicles\[0\]|person)")

_Wrap = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _Shape:
    schema: str
    place: tuple[str, ...]
    """Where the fragment sits in a result record (an array's first item for a list)."""
    subject: tuple[str, ...]
    """Row fields outside the fragment."""
    wrap: _Wrap
    """(subject fields, fragment) -> the result record's own fields around them."""


_SHAPES: Mapping[str, _Shape] = {
    "person": _Shape(_NS + "IdentityResult", ("person",), ("registered_phone",),
                     lambda s, f: {"person": f}),
    "document": _Shape(_NS + "ExitEntryDocumentResult", ("person", "documents"), ("id_number",),
                       lambda s, f: {"person": {**_traveller(s), "documents": [f]}}),
    "crossing": _Shape(_NS + "BorderCrossingResult", ("crossings",), ("id_number",),
                       lambda s, f: {"person": {**_traveller(s), "documents": []},
                                     "crossings": [f]}),
    "vehicle": _Shape(_NS + "VehicleRegistrationResult", ("vehicles",), (),
                      lambda s, f: {"vehicles": [f]}),
    "hotel_stay": _Shape(_NS + "HotelStayResult", ("stays",), ("id_number", "name"),
                         lambda s, f: {"person": {"name": "-", **s}, "stays": [f]}),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class CheckedRow:
    """A row that passed :func:`check_row`: its kind and its table's column values (the
    normalised fragment as JSON text last)."""

    kind: str
    columns: tuple[Any, ...]


def _branch(node: Any) -> Any:
    return next(b for b in node if b != "null") if isinstance(node, list) else node


def _field(record: Mapping[str, Any], name: str) -> Any:
    return _branch(next(f["type"] for f in record["fields"] if f["name"] == name))


@cache
def _fragment_schema(kind: str) -> tuple[Mapping[str, Any], int | None]:
    """The fragment's record schema (as written) and the most items its array takes."""
    shape = _SHAPES[kind]
    node: Any = default_registry().get(shape.schema).raw
    for name in shape.place:
        node = _field(node, name)
    if node.get("type") == "array":
        return node["items"], node.get("zf801.maxItems")
    return node, None


def _with_defaults(record: Mapping[str, Any], value: Any) -> Any:
    """``value`` with each omitted field that has a default set to it (nested records too),
    so that what is stored, and answered, is complete."""
    if not isinstance(value, Mapping):
        return value
    out = dict(value)
    for field in record["fields"]:
        name, kind = field["name"], _branch(field["type"])
        if name not in out and "default" in field:
            out[name] = copy.deepcopy(field["default"])
        elif name in out and isinstance(kind, Mapping) and kind.get("type") == "record":
            out[name] = _with_defaults(kind, out[name])
    return out


@lru_cache(maxsize=1)
def _envelope() -> dict[str, Any]:
    """The fields around a fragment (Python form, valid as they are): any court and unit
    of the agency list will do."""
    agencies = load_agencies()
    return {
        "correlation_id": "00000000-0000-0000-0000-000000000000",
        "requesting_court_code": agencies.courts()[0].code,
        "answering_unit_code": agencies.police_units()[0].code,
        "status": "FOUND",
        "refusal_reason": None,
        "answered_at": _EPOCH,
    }


def _refused(kind: str, path: str, rule: str, reason: str) -> SourceRowError:
    field = _WRAPPER.sub("", path).removeprefix(".")
    return SourceRowError(kind, field, rule, reason.replace(path, field or "<row>"))


def _at(record: Mapping[str, Any], place: tuple[str, ...]) -> Any:
    node: Any = record
    for name in place:
        node = node[name]
    return node[0] if isinstance(node, list) else node


def micros(instant: dt.datetime) -> int:
    """An aware instant as microseconds since the epoch, as the store keys times."""
    return (instant - _EPOCH) // _MICROSECOND


def max_items(kind: str) -> int | None:
    """The most items of ``kind`` a result holds (its array's ``zf801.maxItems``)."""
    return _fragment_schema(kind)[1]


def sighting_row(kind: str, sighting: Mapping[str, Any]) -> dict[str, Any]:
    """A row of ``kind`` from a police report in the JSON mapping (a ``HotelCheckIn`` for a
    ``hotel_stay``, a ``BorderCrossing`` for a ``crossing``): the fields the result's item
    shares with it by name, and the subject's (ID number, a guest's name) from its
    ``person``. What the report does not say takes the item's default (a stay's check-out:
    an expected check-out is not one). Not checked yet: :func:`check_row` does that."""
    shape = _SHAPES[kind]
    fragment, _ = _fragment_schema(kind)
    person = sighting.get("person")
    row = {f["name"]: sighting[f["name"]] for f in fragment["fields"] if f["name"] in sighting}
    if isinstance(person, Mapping):
        row.update({name: person[name] for name in shape.subject if name in person})
    return row


def check_row(kind: str, row: Mapping[str, Any]) -> CheckedRow:
    """``row`` of ``kind`` (one of :data:`ROW_KINDS`, in the JSON mapping) checked and
    normalised, ready to store; :class:`SourceRowError` names the field and the rule.

    The row is checked as part of a result record: the fragment in its place in a
    throwaway result, through the JSON mapping, the edge rules and the schema."""
    shape = _SHAPES.get(kind) if isinstance(kind, str) else None
    if shape is None:
        reason = f"unknown kind {kind!r}; one of {', '.join(ROW_KINDS)}"
        raise SourceRowError(str(kind)[:40], "kind", "kind.unknown", reason)
    if not isinstance(row, Mapping):
        raise SourceRowError(kind, "", "type", f"expected an object, got {json_kind(row)}")
    fragment_schema, _ = _fragment_schema(kind)
    subject = {name: row[name] for name in shape.subject if name in row}
    fragment = _with_defaults(fragment_schema, {k: v for k, v in row.items() if k not in subject})
    schema = default_registry().get(shape.schema)
    try:
        wrapped = normalise_event(
            schema.full_name, from_json(schema, shape.wrap(subject, fragment))
        )
        schema.validate({**_envelope(), **wrapped})
        held = _subject(wrapped, subject)
    except SchemaValidationError as exc:
        raise _refused(kind, exc.path, exc.rule, exc.reason) from None
    except IdentifierError as exc:
        raise _refused(kind, exc.field, exc.rule, exc.reason) from None
    except (BusError, ValueError, TypeError, KeyError) as exc:  # a hostile shape
        raise SourceRowError(kind, "", "shape", f"cannot be checked: {exc}") from None
    text = json.dumps(_at(to_json(schema, wrapped), shape.place), ensure_ascii=False)
    return CheckedRow(kind, (*_COLUMNS[kind](_at(wrapped, shape.place), held), text))


def _subject(record: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The row's fields outside its fragment, normalised (a name only if one was given)."""
    person = record.get("person") or {}
    phone = given.get("registered_phone")
    if phone is not None:
        phone = IDENTIFIER_RULES["phone"](phone, "registered_phone")
    return {
        "id_number": person.get("id_number"),
        "name": person.get("name") if "name" in given else None,
        "registered_phone": phone,
    }


_Columns = Callable[[dict[str, Any], dict[str, Any]], tuple[Any, ...]]
_COLUMNS: Mapping[str, _Columns] = {
    "person": lambda f, s: (f["id_number"], f["name"], s["registered_phone"]),
    "document": lambda f, s: (f["document_type"], f["document_number"], s["id_number"]),
    "crossing": lambda f, s: (s["id_number"], micros(f["crossed_at"]), f["direction"]),
    "vehicle": lambda f, s: (f["vin"], f["plate_number"], f["owner"]["id_number"],
                             f["owner"]["organisation_code"]),
    "hotel_stay": lambda f, s: (s["id_number"], micros(f["checked_in_at"]), f["hotel_name"],
                                s["name"]),
}  # fmt: skip
"""The key columns of each kind's table, from the normalised fragment and the row's
normalised fields around it (the subject's ID number, a guest's name, a registered phone)."""
