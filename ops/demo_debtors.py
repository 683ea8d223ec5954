"""The demo's dishonest-debtor list phase: a court lists a debtor, every list subscriber's
mirror has the listing, the court removes it, every mirror lets the debtor go and sends
its signed receipt, and the court sees who confirmed (:mod:`consumers.debtor_subscriber`,
:mod:`consumers.removal_receipts`)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rich.table import Table

from consumers.debtor_mirror import DebtorMirror
from consumers.debtor_subscriber import LISTING, REMOVAL, DebtorSubscriber
from consumers.removal_receipts import removal_statuses
from consumers.runtime import Runtime
from ops.deployment import Deployment
from producers.publisher import Publisher
from producers.routes import outgoing_event
from schemas.agencies import AgencyRole, load_agencies

__all__ = ["DebtorRun", "debtor_table", "play_debtor_list"]

_COURT = "BJ01"
_CASE = "（2026）京01执801号"
_IDLE_S = 2.0


@dataclass
class DebtorRun:
    """What the phase saw: per subscriber, listed after the listing, after the removal."""

    listing_id: str
    listed: dict[str, bool] = field(default_factory=dict)
    listed_after_removal: dict[str, bool] = field(default_factory=dict)
    confirmed: list[str] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        subscribers = set(self.listed)
        return (
            bool(subscribers)
            and all(self.listed.values())
            and not any(self.listed_after_removal.values())
            and set(self.confirmed) == subscribers
            and not self.overdue
        )


def _listing(id_number: str) -> dict[str, Any]:
    return {
        "listing_id": str(uuid.uuid4()),
        "case_number": _CASE,
        "filing_date": dt.date(2026, 1, 5),
        "enforcing_court_code": _COURT,
        "debtor": {"kind": "NATURAL_PERSON", "name": "赵六", "id_number": id_number,
                   "organisation_code": None},
        "enforcement_status": "IN_PROGRESS",
        "amount_applied_for": Decimal("380000.00"),
        "dishonest_conduct": ["REFUSES_DESPITE_ABILITY"],
        "published_at": dt.datetime.now(dt.UTC),
    }  # fmt: skip


def _catch_up(bus: Deployment, code: str, id_number: str) -> bool:
    """Run subscriber ``code`` until the list is idle; whether the debtor is listed."""
    runtime = Runtime.connect(code, bus.settings)
    path = bus.settings.home / "demo" / bus.settings.topic_prefix / "subscribers" / f"{code}.sqlite"
    try:
        with DebtorMirror(path, create=True) as mirror:
            follower = DebtorSubscriber(runtime, mirror)
            follower.open_mirror()
            follower.run(until_idle_s=_IDLE_S)
            follower.close()
            return mirror.is_listed(id_number)
    finally:
        runtime.close()


def play_debtor_list(bus: Deployment, id_number: str) -> DebtorRun:
    """List the debtor with ``id_number``, let every subscriber catch up, remove the listing,
    let them catch up again, and read the court's receipts."""
    subscribers = [a.code for a in load_agencies().with_role(AgencyRole.LIST_SUBSCRIBER)]
    listing = _listing(id_number)
    run = DebtorRun(listing["listing_id"])
    with Publisher(bus.keystore.signer_for(_COURT), catalog=bus.catalog,
                   settings=bus.settings) as court:  # fmt: skip
        court.publish(outgoing_event(LISTING, listing))
        run.listed = {code: _catch_up(bus, code, id_number) for code in subscribers}
        removal = {key: listing[key] for key in ("listing_id", "case_number",
                                                 "enforcing_court_code", "debtor")}  # fmt: skip
        removal.update(reason="PERFORMED", removed_at=dt.datetime.now(dt.UTC))
        court.publish(outgoing_event(REMOVAL, removal))
    run.listed_after_removal = {code: _catch_up(bus, code, id_number) for code in subscribers}
    runtime = Runtime.connect(_COURT, bus.settings)
    try:
        statuses = removal_statuses(runtime, deadline=dt.timedelta(minutes=5),
                                    until_idle_s=_IDLE_S)  # fmt: skip
    finally:
        runtime.close()
    for status in statuses:
        if status.listing_id == run.listing_id:
            run.confirmed = sorted(status.confirmed)
            run.overdue = list(status.overdue)
    return run


def debtor_table(run: DebtorRun) -> Table:
    table = Table(title=f"dishonest-debtor list: listing {run.listing_id} of {_COURT}")
    for column in ("subscriber", "listed", "after removal", "receipt"):
        table.add_column(column)
    for code, listed in run.listed.items():
        table.add_row(
            code,
            "yes" if listed else "NO",
            "still listed" if run.listed_after_removal.get(code) else "not listed",
            "confirmed" if code in run.confirmed else "overdue" if code in run.overdue else "-",
        )
    return table
