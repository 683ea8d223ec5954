"""A court sees, per removal of one of its listings, which list subscribers confirmed it
(a signed receipt each) and which are overdue.

The court reads the dishonest-debtor list (its own removals, verified) and its own
receipts topic (each receipt verified: signed by a list subscriber naming itself, for
this court). A subscriber is overdue for a removal when no receipt of it has come
``deadline`` after the removal. Every read is audited; a refused record is
dead-lettered (where the court may write) and audited, never counted.
"""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.debtor_subscriber import LIST_TOPIC_ID, RECEIPT, RECEIPTS_TOPIC_ID, REMOVAL
from consumers.polling import poll_batches
from consumers.runtime import Runtime
from schemas.agencies import AgencyList, AgencyRole, load_agencies
from sign.acceptance import AcceptancePolicy
from sign.verify_stage import VerifiedEvent

__all__ = ["RemovalStatus", "removal_statuses"]


@dataclass
class RemovalStatus:
    """One removal of the court's and what each subscriber did about it."""

    listing_id: str
    removal_event_id: str
    case_number: str
    removed_at: dt.datetime
    confirmed: dict[str, dt.datetime] = field(default_factory=dict)
    """subscriber code -> when the removal took effect in its mirror."""
    overdue: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)


def removal_statuses(
    runtime: Runtime,
    *,
    deadline: dt.timedelta,
    until_idle_s: float = 3.0,
    agencies: AgencyList | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> list[RemovalStatus]:
    """The court's removals (oldest first) with their receipts, read to the end of both
    topics (``until_idle_s`` of quiet)."""
    agencies = agencies or load_agencies()
    court = agencies.get_court(runtime.agency_code)
    subscribers = sorted(a.code for a in agencies.with_role(AgencyRole.LIST_SUBSCRIBER))
    removals: dict[str, RemovalStatus] = {}
    receipts: list[dict[str, Any]] = []
    stage = runtime.verify_stage(acceptance=AcceptancePolicy.history())
    topics = (runtime.catalog.topic_name(LIST_TOPIC_ID),
              runtime.catalog.topic_name(RECEIPTS_TOPIC_ID, court.code))  # fmt: skip
    consumer = runtime.stream_reader(court, topics, "debtors.receipts.read",
                                     client_id=f"zf801-receipts-{court.code.lower()}")  # fmt: skip
    runtime.audit.record(
        user=getpass.getuser(), role=str(court.role), agency_code=court.code,
        operation="debtors.receipts.read", target=", ".join(topics), result="SUCCESS",
        detail=None,
    )  # fmt: skip
    try:
        for messages in poll_batches(consumer, lambda: False, until_idle_s=until_idle_s):
            _take(runtime, stage.check_record, messages, court=court.code, removals=removals,
                  receipts=receipts)  # fmt: skip
    finally:
        consumer.close()
    for receipt in receipts:
        status = removals.get(receipt["removal_event_id"])
        if status is not None:
            status.confirmed.setdefault(receipt["subscriber_code"], receipt["applied_at"])
    moment = now()
    for status in removals.values():
        missing = [s for s in subscribers if s not in status.confirmed]
        late = moment - status.removed_at > deadline
        (status.overdue if late else status.waiting).extend(missing)
    return sorted(removals.values(), key=lambda s: s.removed_at)


def _take(
    runtime: Runtime,
    check: Callable[[Any], VerifiedEvent | None],
    messages: Sequence[Any],
    *,
    court: str,
    removals: dict[str, RemovalStatus],
    receipts: list[dict[str, Any]],
) -> None:
    for message in messages:
        verified = check(message)
        if verified is None:
            continue
        event_type, signer = verified.signature.event_type, verified.signature.agency_code
        record = verified.payload
        if event_type == REMOVAL and signer == court:
            event_id = verified.signature.event_id
            removals[event_id] = RemovalStatus(
                str(record["listing_id"]), event_id, record["case_number"], record["removed_at"]
            )
        elif event_type == RECEIPT:
            if record["subscriber_code"] != signer or record["enforcing_court_code"] != court:
                runtime.refuse(verified, "AGENCY_MISMATCH", (
                    f"subscriber_code: {record['subscriber_code']!r} (court "
                    f"{record['enforcing_court_code']!r}) is not the signer {signer} confirming "
                    f"a removal of {court} [rule receipt.sender]"))  # fmt: skip
                continue
            receipts.append(record)
