"""The records the matcher builds from a verified sighting: the hit to the issuing court
(with the reference to its evidence and a summary of the encounter) and the "blocked"
answer to the police side."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from consumers.watchlist import ActiveOrder, SightingType, derive_id
from schemas.headers import TRACEPARENT
from sign.verify_stage import VerifiedEvent

__all__ = ["blocked_record", "evidence", "hit_id", "hit_record"]


def _header(headers: Iterable[tuple[str, bytes]], name: str) -> bytes | None:
    for header_name, value in headers:
        if header_name == name:
            return value
    return None


def evidence(
    verified: VerifiedEvent,
) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """What every hit of a verified sighting carries: the reference to the sighting (so the
    court can check the evidence chain), its summary, and its traceparent."""
    consumed, sighting = verified.record, verified.payload
    schema_name = verified.envelope.schema.full_name
    reference = {
        "event_id": verified.signature.event_id,
        "sighting_id": str(sighting["sighting_id"]),
        "sighting_type": schema_name,
        "value_sha256": hashlib.sha256(consumed.value or b"").digest(),
        "topic": consumed.topic,
        "partition": consumed.partition,
        "offset": consumed.offset,
    }
    summary = _summary(schema_name, sighting, verified.signature.agency_code)
    traceparent = _header(consumed.headers, TRACEPARENT)
    return reference, summary, traceparent.decode() if traceparent else None


def _summary(sighting_type: str, sighting: Mapping[str, Any], unit: str) -> dict[str, Any]:
    if sighting_type == SightingType.HOTEL_CHECK_IN:
        kind, place = "HOTEL_CHECK_IN", f"{sighting['hotel_name']}，{sighting['hotel_address']}"
    elif sighting_type == SightingType.BORDER_CROSSING:
        kind = "BORDER_EXIT" if sighting["direction"] == "OUT" else "BORDER_ENTRY"
        place = sighting["port"]
    else:
        kind, place = sighting["kind"], sighting["place"]
    return {
        "kind": kind,
        "place": place,
        "observed_at": sighting["observed_at"],
        "reporting_unit_code": unit,
    }


def hit_record(
    order: ActiveOrder,
    reference: Mapping[str, Any],
    summary: Mapping[str, Any],
    now: dt.datetime,
    *,
    late: bool = False,
    retroactive: bool = False,
) -> dict[str, Any]:
    return {
        "hit_id": hit_id(order.order_id, reference["sighting_id"]),
        "order_id": order.order_id,
        "order_kind": order.kind.value,
        "court_code": order.court_code,
        "case_number": order.case_number,
        "handler": {"name": order.handler_name, "phone": order.handler_phone},
        "action_required": order.action_required,
        "sighting": dict(reference),
        "summary": dict(summary),
        "matched_at": now,
        "late": late,
        "retroactive": retroactive,
    }


def blocked_record(
    order: ActiveOrder, sighting: Mapping[str, Any], now: dt.datetime
) -> dict[str, Any]:
    return {
        "vehicle": dict(sighting["vehicle"]),
        "attempted_operation": sighting["kind"],
        "order_id": order.order_id,
        "court_code": order.court_code,
        "seizure_ruling_reference": order.seizure_ruling_reference or "",
        "sighting_id": str(sighting["sighting_id"]),
        "reporting_unit_code": sighting["reporting_unit_code"],
        "blocked_at": now,
    }


def hit_id(order_id: str, sighting_id: object) -> str:
    """The id of the hit of ``order_id`` by a sighting: one per pair, however often the
    sighting is delivered."""
    return derive_id(order_id, sighting_id)
