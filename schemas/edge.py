"""Identifier normalisation at the edge, driven by the schemas themselves.

Each identifier field in ``schemas/avro`` carries a ``zf801.identifier`` property naming
its rule (``id_number``, ``plate_number``, ``case_number``, ...). :func:`normalise_event`
walks a record along its schema and replaces every such value by its normalised form, or
raises :class:`~schemas.errors.IdentifierError` naming the field path (e.g.
``subject.id_number``) and the rule. Publishers call it before encoding, so nothing with
a malformed identifier is ever published.

The same walk applies the text and time rules of :mod:`schemas.edge_rules` to every
string, timestamp and date field, and, on each record, three cross-field rules:

- ``case_number.court``: a record with a court field (:data:`COURT_FIELDS`) and a
  ``case_number`` carries a case number filed at that court, i.e. whose court
  abbreviation (法院代字, e.g. 京01) is the court's ``case_abbr`` in the agency list
  (the abbreviation is all a case number says about its court);
- ``province_code.court``: a record's ``province_code`` is the province of its court
  in the agency list; a court without a province (the SPC) may name any province;
- ``control_period.order``: ``control_period_end`` lies after ``control_period_start``;
  likewise ``deadline.order`` (a query's ``deadline`` after its ``requested_at``) and
  ``stays_period.order`` (``stays_until`` after ``stays_from``), ``check_out.order``
  (a hotel's ``expected_check_out`` after ``checked_in_at``) and ``acknowledge_by.order``
  (an anomaly notice's ``acknowledge_by`` after ``detected_at``); ``deadline.horizon``:
  a query's ``deadline`` at most 30 days after its ``requested_at``.

A document record's ``size_bytes`` lies from 0 to 1 TiB and, with its content inline,
is the content's length and ``sha256`` its digest (``size_bytes.range``,
``size_bytes.content``, ``sha256.content``); an ``amount_applied_for`` is more than 0
(``amount.range``). A person's ``birth_date`` and ``sex`` beside an ID number are
the ones it encodes (``birth_date.id_number``, ``sex.id_number``).

Every required text field (a plain ``string`` without an identifier rule) must hold more
than white space, rule ``text.blank``: a query's ``reason`` and ``legal_basis`` are its
justification in the audit trail, a name or an instruction left blank says nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

from schemas.agencies import load_agencies
from schemas.edge_rules import check_date, check_instant, check_text
from schemas.errors import ConfigurationError, IdentifierError, SchemaValidationError
from schemas.identifiers import (
    birth_date_of,
    check_case_number_court,
    normalise_agency_code,
    normalise_case_number,
    normalise_court_code,
    normalise_id_number,
    normalise_party_code,
    normalise_phone,
    normalise_plate_number,
    normalise_vin,
)
from schemas.jsonmap import json_kind
from schemas.regions import province
from schemas.registry import Registry, default_registry
from schemas.settings import MAX_QUERY_WAIT_S

__all__ = ["COURT_FIELDS", "IDENTIFIER_RULES", "normalise_event"]

_Normaliser = Callable[[object, str], str]


def _province(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise IdentifierError(field, "province_code.type", f"{field}: must be a string")
    try:
        return province(value.strip()).code
    except KeyError as exc:
        raise IdentifierError(
            field, "province_code.unknown", f"{field}: {value!r} is not a province code"
        ) from exc


def _country_or_region(value: object, field: str) -> str:
    """An ISO 3166-1 alpha-3 code (HKG, MAC and TWN for the regions), upper-cased."""
    text = value.strip().upper() if isinstance(value, str) else ""
    if not (len(text) == 3 and text.isascii() and text.isalpha()):
        raise IdentifierError(
            field,
            "country_or_region.format",
            f"{field}: must be an ISO 3166-1 alpha-3 code such as THA or HKG",
        )
    return text


IDENTIFIER_RULES: Mapping[str, _Normaliser] = {
    "id_number": normalise_id_number,
    "plate_number": normalise_plate_number,
    "vin": normalise_vin,
    "case_number": normalise_case_number,
    "phone": normalise_phone,
    "court_code": normalise_court_code,
    "agency_code": normalise_agency_code,
    "unit_code": normalise_agency_code,
    "organisation_code": normalise_party_code,
    "province_code": _province,
    "country_or_region": _country_or_region,
}
"""The normaliser of each ``zf801.identifier`` rule name used in the schemas."""

COURT_FIELDS = (
    "enforcing_court_code",
    "releasing_court_code",
    "requesting_court_code",
    "court_code",
)
"""The fields naming the court a record's ``case_number`` and ``province_code`` belong to."""


@lru_cache(maxsize=4)
def _named_types(registry: Registry) -> dict[str, Any]:
    named: dict[str, Any] = {}

    def collect(node: Any, namespace: str) -> None:
        if isinstance(node, list):
            for branch in node:
                collect(branch, namespace)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind in ("record", "enum", "fixed"):
                namespace = node.get("namespace", namespace)
                name = node["name"]
                named[name if "." in name else f"{namespace}.{name}"] = node
                for item in node.get("fields", ()):
                    collect(item["type"], namespace)
            elif kind == "array":
                collect(node["items"], namespace)
            elif kind == "map":
                collect(node["values"], namespace)

    for schema in registry:
        collect(dict(schema.raw), schema.full_name.rsplit(".", 1)[0])
    return named


class _Walker:
    def __init__(self, named: Mapping[str, Any], now: dt.datetime) -> None:
        self._named = named
        self._now = now

    def walk(self, node: Any, value: Any, path: str) -> Any:
        if isinstance(node, str):
            resolved = self._named.get(node)
            if resolved is None:
                return self._plain(node, {}, value, path)
            return self.walk(resolved, value, path)
        if isinstance(node, list):
            return self._union(node, value, path)
        if isinstance(node, dict):
            return self._typed(node, value, path)
        return value

    def _typed(self, node: Mapping[str, Any], value: Any, path: str) -> Any:
        kind = node.get("type")
        rule = node.get("zf801.identifier")
        if rule is not None and isinstance(value, str):
            normaliser = IDENTIFIER_RULES.get(rule)
            if normaliser is None:
                raise ConfigurationError(f"schema field {path}: unknown identifier rule {rule!r}")
            return normaliser(value, path)
        if kind == "record" and isinstance(value, Mapping):
            out = dict(value)
            for item in node["fields"]:
                name = item["name"]
                if name in out:
                    if _is_text(item["type"]) and isinstance(out[name], str):
                        _check_not_blank(out[name], _join(path, name))
                    out[name] = self.walk(item["type"], out[name], _join(path, name))
            _check_record(out, path)
            return out
        if kind == "array" and isinstance(value, list):
            return [self.walk(node["items"], item, f"{path}[{i}]") for i, item in enumerate(value)]
        if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind in self._named):
            return self.walk(kind, value, path)
        return self._plain(kind, node, value, path)

    def _plain(self, kind: Any, node: Mapping[str, Any], value: Any, path: str) -> Any:
        """A primitive value under the text and time rules (wrong types are left to the
        schema validation, which names them)."""
        logical = node.get("logicalType")
        if kind == "string" and isinstance(value, str) and logical != "uuid":
            return check_text(value, path)
        if kind == "long" and logical in _TIMESTAMPS and isinstance(value, dt.datetime):
            return check_instant(value, path, self._now)
        if kind == "int" and logical == "date" and type(value) is dt.date:
            return check_date(value, path)
        return value

    def _union(self, branches: list[Any], value: Any, path: str) -> Any:
        if value is None:
            return None
        for branch in branches:
            if branch == "null":
                continue
            resolved = self._named.get(branch, branch) if isinstance(branch, str) else branch
            if _shape_fits(resolved, value):
                return self.walk(resolved, value, path)
        return value


_TIMESTAMPS = ("timestamp-micros", "timestamp-millis")
MAX_QUERY_WAIT = dt.timedelta(seconds=MAX_QUERY_WAIT_S)


def _check_record(record: Mapping[str, Any], path: str) -> None:
    """The cross-field rules of the module docstring, on one normalised record."""
    court_code = next(
        (record[name] for name in COURT_FIELDS if isinstance(record.get(name), str)), None
    )
    case_number = record.get("case_number")
    if court_code is not None and isinstance(case_number, str):
        check_case_number_court(case_number, court_code, _join(path, "case_number"))
    province_code = record.get("province_code")
    if court_code is not None and isinstance(province_code, str):
        court = load_agencies().get_court(court_code)
        if court.province is not None and province_code != court.province.code:
            field = _join(path, "province_code")
            reason = (
                f"{province_code} is not the province of court {court.code} "
                f"({court.province.code} {court.province.name})"
            )
            raise IdentifierError(field, "province_code.court", reason)
    for first, then, rule, reason in _ORDERED_TIMES:
        start, end = record.get(first), record.get(then)
        if isinstance(start, dt.datetime) and isinstance(end, dt.datetime) and end <= start:
            raise IdentifierError(_join(path, then), rule, reason)
    _check_document(record, path)
    _check_person(record, path)
    amount = record.get("amount_applied_for")
    if isinstance(amount, Decimal) and amount.is_finite() and not amount > 0:
        reason = f"{amount}: an amount applied for is more than 0"
        raise IdentifierError(_join(path, "amount_applied_for"), "amount.range", reason)
    asked, deadline = record.get("requested_at"), record.get("deadline")
    if (
        isinstance(asked, dt.datetime) and isinstance(deadline, dt.datetime)
        and deadline - asked > MAX_QUERY_WAIT
    ):  # fmt: skip
        reason = (
            f"{deadline.isoformat()} is more than {MAX_QUERY_WAIT.days} days after the query "
            "was made (the longest a query waits for its answers)"
        )
        raise IdentifierError(_join(path, "deadline"), "deadline.horizon", reason)


def _is_text(node: Any) -> bool:
    """A required (not optional) string field without an identifier rule or UUID type."""
    if node == "string":
        return True
    return (
        isinstance(node, Mapping) and node.get("type") == "string"
        and "zf801.identifier" not in node and node.get("logicalType") != "uuid"
    )  # fmt: skip


def _check_not_blank(value: str, path: str) -> None:
    if not value.strip():
        what = "empty" if not value else "only white space"
        reason = f"is {what}; a required text field must say something"
        raise IdentifierError(path, "text.blank", reason)


def _check_person(record: Mapping[str, Any], path: str) -> None:
    """A person's ``birth_date`` and ``sex``, where given beside a (normalised) 18-digit
    ``id_number``, are the ones the number encodes: its 7th to 14th digits, and the parity
    of its 17th (odd: male). Rules ``birth_date.id_number`` and ``sex.id_number``."""
    id_number = record.get("id_number")
    if not isinstance(id_number, str) or len(id_number) != 18:
        return
    born, sex = record.get("birth_date"), record.get("sex")
    if type(born) is dt.date and born != birth_date_of(id_number):
        reason = f"{born.isoformat()} is not the birth date the ID number encodes"
        raise IdentifierError(_join(path, "birth_date"), "birth_date.id_number", reason)
    encoded = "MALE" if int(id_number[16]) % 2 else "FEMALE"
    if sex in ("MALE", "FEMALE") and sex != encoded:
        reason = f"{sex}, but the ID number's 17th digit says {encoded}"
        raise IdentifierError(_join(path, "sex"), "sex.id_number", reason)


MAX_DOCUMENT_BYTES = 1 << 40
"""The largest document a record may describe (1 TiB; one carried inline is far smaller)."""


def _check_document(record: Mapping[str, Any], path: str) -> None:
    """A document's size and digest say what it is: ``size_bytes`` from 0 to
    :data:`MAX_DOCUMENT_BYTES`, and when the content travels inline, its length and its
    SHA-256 (rules ``size_bytes.range``, ``size_bytes.content``, ``sha256.content``)."""
    size, digest, content = record.get("size_bytes"), record.get("sha256"), record.get("content")
    if not isinstance(size, int):
        return
    if not 0 <= size <= MAX_DOCUMENT_BYTES:
        reason = f"{size}: a document's size is from 0 to {MAX_DOCUMENT_BYTES} bytes"
        raise IdentifierError(_join(path, "size_bytes"), "size_bytes.range", reason)
    if not isinstance(content, bytes):
        return
    if len(content) != size:
        reason = f"{size}, but the content carried is {len(content)} bytes"
        raise IdentifierError(_join(path, "size_bytes"), "size_bytes.content", reason)
    if isinstance(digest, bytes) and hashlib.sha256(content).digest() != digest:
        reason = f"{digest.hex()} is not the SHA-256 of the content carried"
        raise IdentifierError(_join(path, "sha256"), "sha256.content", reason)


_ORDERED_TIMES = (
    ("control_period_start", "control_period_end", "control_period.order",
     "the control period must end after it starts"),
    ("requested_at", "deadline", "deadline.order",
     "a query's deadline must come after the time it was made"),
    ("stays_from", "stays_until", "stays_period.order",
     "the period of stays asked for must end after it starts"),
    ("checked_in_at", "expected_check_out", "check_out.order",
     "the expected check-out must come after the check-in"),
    ("checked_in_at", "checked_out_at", "check_out.order",
     "a check-out must come after the check-in"),
    ("detected_at", "acknowledge_by", "acknowledge_by.order",
     "a notice must be acknowledged after the anomaly was detected"),
)  # fmt: skip


def _shape_fits(node: Any, value: Any) -> bool:
    kind = node.get("type") if isinstance(node, dict) else node
    if kind == "record":
        return isinstance(value, Mapping)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    return True


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def normalise_event(
    schema_name: str,
    record: Mapping[str, Any],
    registry: Registry | None = None,
    *,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """A copy of ``record`` with every identifier field normalised and the text, time and
    cross-field rules applied (see module docstring); ``now`` defaults to the clock."""
    registry = registry or default_registry()
    schema = registry.get(schema_name)
    if not isinstance(record, Mapping):
        raise SchemaValidationError(
            schema.full_name, "", "type", f"expected a record (a mapping), got {json_kind(record)}"
        )
    if now is not None and (not isinstance(now, dt.datetime) or now.utcoffset() is None):
        raise ValueError("now: a timezone-aware datetime is needed [rule time.zone]")
    walker = _Walker(_named_types(registry), now or dt.datetime.now(dt.UTC))
    result = walker.walk(dict(schema.raw), record, "")
    return dict(result)
