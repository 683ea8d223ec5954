"""Action at the point of sighting: on a hit, the police unit that reported the sighting is
told what to do, on its own side, signed by the bus.

What to do follows from the order's kind and the sighting: a debtor under a detention
decision is detained; a vehicle under a search order is seized (reported only when the
court did not ask for it to be impounded on sight); a person under an exit restriction
is stopped at the border port on departure (reported only on entry). The notice names
the court and case handler to call and the sealed documents the order cites, so the
officer can fetch and verify them (:mod:`consumers.document_delivery`).

A **concealed** order (a flag the court sets) tells the frontline nothing but to contact
the issuing court: action ``CONTACT_COURT`` and the court's code; no order id, case,
handler, instructions or documents. Built from the bus's own watchlist entry, never
from the police side's input, so nothing of a concealed order can leak through it.

The notice goes to the reporting unit's own ``action-notices`` topic (one per police unit
of the agency list, named for its code), keyed by the unit's code. Read-scope
``own-unit``: the broker lets that unit alone read it, so no other unit of its province
learns what it is told. A reporting unit that is not a police unit of the agency list
has no topic, and none is made on the fly (a topic name taken from a sighting's field
would let any signer open topics): its notice is not sent, the hit still reaches the
court, and the matcher counts and logs the notice as unaddressed
(:attr:`consumers.matcher.MatchResult.unaddressed_notices`). Only hits cost this work: a
miss never reaches here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from consumers.outgoing import Outgoing, OutgoingSigner
from consumers.watchlist import ActiveOrder, OrderKind, SightingType, derive_id
from schemas.agencies import AgencyList
from topics.catalog import Catalog

__all__ = ["ACTION_NOTICE", "ACTION_TOPIC_ID", "ActionNotices", "action_for"]

ACTION_NOTICE = "cn.zf801.bus.v1.ActionNotice"
ACTION_TOPIC_ID = "action-notices"


def action_for(order: ActiveOrder, sighting_type: str, sighting: Mapping[str, Any]) -> str:
    """What the reporting unit is to do (the ``Action`` symbol of the notice)."""
    if order.concealed:
        return "CONTACT_COURT"
    if order.kind is OrderKind.LOCATE_DEBTOR:
        return "DETAIN"
    if order.kind is OrderKind.VEHICLE_SEARCH:
        return "SEIZE_VEHICLE" if order.impound_on_sight else "REPORT_ONLY"
    departing = sighting_type == SightingType.BORDER_CROSSING and sighting["direction"] == "OUT"
    return "STOP_DEPARTURE" if departing else "REPORT_ONLY"


class ActionNotices:
    """Builds the signed action notice of a hit for its reporting unit."""

    def __init__(self, catalog: Catalog, agencies: AgencyList, outgoing: OutgoingSigner) -> None:
        spec = catalog.get(ACTION_TOPIC_ID)
        self._topics: dict[str, str] = {
            unit.code: spec.name_for(unit=unit.code) for unit in agencies.police_units()
        }
        self._outgoing = outgoing

    def topics(self) -> tuple[str, ...]:
        return tuple(sorted(self._topics.values()))

    def notice(
        self,
        order: ActiveOrder,
        hit_id: str,
        sighting_type: str,
        sighting: Mapping[str, Any],
        now: dt.datetime,
        *,
        parent: str | None = None,
    ) -> Outgoing | None:
        """The notice to the unit that reported ``sighting``, on that unit's own topic; None
        when the unit has none (not a police unit of the agency list)."""
        unit = str(sighting["reporting_unit_code"])
        topic = self._topics.get(unit)
        if topic is None:
            return None
        record = notice_record(order, hit_id, sighting_type, sighting, now)
        return self._outgoing.sign(
            topic, ACTION_NOTICE, record, key=unit.encode(), now=now,
            event_id=record["notice_id"], parent=parent,
        )  # fmt: skip


def notice_record(
    order: ActiveOrder,
    hit_id: str,
    sighting_type: str,
    sighting: Mapping[str, Any],
    now: dt.datetime,
) -> dict[str, Any]:
    """The ActionNotice value; a concealed order's carries the court's code only."""
    record: dict[str, Any] = {
        "notice_id": derive_id("action", hit_id),
        "hit_id": hit_id,
        "reporting_unit_code": str(sighting["reporting_unit_code"]),
        "sighting_id": str(sighting["sighting_id"]),
        "action": action_for(order, sighting_type, sighting),
        "concealed": order.concealed,
        "court_code": order.court_code,
        "order_id": None,
        "case_number": None,
        "handler": None,
        "instructions": None,
        "documents": [],
        "observed_at": sighting["observed_at"],
        "issued_at": now,
    }
    if not order.concealed:
        record.update(
            order_id=order.order_id,
            case_number=order.case_number,
            handler={"name": order.handler_name, "phone": order.handler_phone},
            instructions=order.action_required,
            documents=[
                {"kind": kind, "document_id": doc_id, "sha256": bytes.fromhex(digest),
                 "title": title}
                for kind, doc_id, digest, title in order.documents
            ],
        )  # fmt: skip
    return record
