"""The answer a police unit gives to one verified query, from its data source
(:class:`consumers.query_source.QuerySource`): FOUND with what is on record, NOT_FOUND
("no record" is an answer, never silence), or REFUSED with the reason.

Answers are built in the bus's JSON mapping (as the data source returns its fragments)
and turned into a record of the kind's result schema by :func:`schemas.jsonmap.from_json`;
the publisher validates it against the schema when it signs it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from consumers.query_source import QuerySource
from schemas.envelope import format_time
from schemas.jsonmap import from_json
from schemas.queries import QueryKind
from schemas.registry import default_registry

__all__ = ["FOUND", "NOT_FOUND", "REFUSED", "answer", "refusal"]

FOUND, NOT_FOUND, REFUSED = "FOUND", "NOT_FOUND", "REFUSED"

_EMPTY: Mapping[str, Mapping[str, Any]] = {
    "P1": {"person": None},
    "P2": {"person": None},
    "P3": {"person": None, "crossings": [], "registered_phone": None},
    "P4": {"vehicles": []},
    "P5": {"person": None, "stays": []},
}
"""Each kind's answer fields when nothing is given (not found, or refused)."""


def answer(
    kind: QueryKind,
    query: Mapping[str, Any],
    source: QuerySource,
    unit: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """The result record answering ``query`` (a verified, normalised record of ``kind``)."""
    found = _look_up(kind, query, source)
    status = FOUND if any(value not in (None, []) for value in found.values()) else NOT_FOUND
    return _result(kind, query, unit, now, status, None, {**_EMPTY[kind.code], **found})


def refusal(
    kind: QueryKind,
    query: Mapping[str, Any],
    *,
    court: str,
    unit: str,
    now: dt.datetime,
    reason: str,
) -> dict[str, Any]:
    """A signed refusal: status REFUSED, the reason, nothing else. ``court`` is the court the
    refusal goes to (the query's signer)."""
    addressed = {**query, "requesting_court_code": court}
    return _result(kind, addressed, unit, now, REFUSED, reason[:2000], dict(_EMPTY[kind.code]))


def _look_up(kind: QueryKind, query: Mapping[str, Any], source: QuerySource) -> dict[str, Any]:
    if kind.code == "P4":
        # The owner's vehicles, narrowed to the plate when one is given: a plate never
        # widens the answer to a vehicle of someone else (its owner's identity with it).
        owner = query.get("owner") or {}
        owned = source.vehicles(
            owner_id_number=owner.get("id_number"),
            owner_organisation_code=owner.get("organisation_code"),
        )
        plate = query.get("plate_number")
        return {"vehicles": [v for v in owned if plate is None or v["plate_number"] == plate]}
    id_number = query["subject"]["id_number"]
    if kind.code == "P1":
        return {"person": source.identity(id_number)}
    if kind.code == "P2":
        return {"person": source.traveller(id_number)}
    if kind.code == "P3":
        return {
            "person": source.traveller(id_number),
            "crossings": source.crossings(id_number),
            "registered_phone": source.registered_phone(id_number),
        }
    stays = source.hotel_stays(id_number, query.get("stays_from"), query.get("stays_until"))
    return {"person": source.person_ref(id_number) if stays else None, "stays": stays}


def _result(  # noqa: PLR0917 - one private builder for the two public ones
    kind: QueryKind,
    query: Mapping[str, Any],
    unit: str,
    now: dt.datetime,
    status: str,
    reason: str | None,
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    document = {
        "correlation_id": str(query["correlation_id"]),
        "requesting_court_code": query["requesting_court_code"],
        "answering_unit_code": unit,
        "status": status,
        "refusal_reason": reason,
        "answered_at": format_time(now),
        **fields,
    }
    record: dict[str, Any] = from_json(default_registry().get(kind.result_schema), document)
    return record
