"""Anomaly notices and the 24-hour rule (MISSION §3): either side reports a system anomaly
(``AnomalyNotice``), the *other* side must acknowledge it (``AnomalyAcknowledgement``)
by its ``acknowledge_by`` (detected_at + 24 h), and a notice still unacknowledged then
is escalated by the bus (``AnomalyEscalation``) to the national command system and both
sides, once.

Pure state, no Kafka: :class:`AnomalyLog` folds the verified records of the
``anomalies`` topic, in order, into one :class:`AnomalyCase` per notice. The topic is
the state: an escalation is decided from what the topic holds (a notice, no valid
acknowledgement, no escalation *signed by the bus*, deadline passed), so a repeated run
escalates nothing twice: once the bus's escalation is on the topic the notice is
``ESCALATED`` and no run picks it again.

Who did what is the signer's, never a record's say: a record is applied only when the
agency it names as its sender (``reporting_agency_code``, ``acknowledging_agency_code``,
``escalating_agency_code``) is the agency that signed it, an escalation only when a bus
agency signed it, and an agency's acknowledgement is listed once (its first). Everything
else is counted in :attr:`AnomalyLog.ignored`, never shown.

Why an escalation's event id is random, not derived from the notice: the topic's readers
keep the first record of each event id and drop later ones as repeats (redeliveries,
copies), whoever signed them, and any agency that may write the topic can publish a
record under an id of its choosing with its own tooling. An id derived from the notice
(or from the notice and the bus agency) is known to every writer in advance, so a court
that publishes anything under it first makes the bus's escalation the dropped repeat:
the notice stays ``OVERDUE`` and is escalated again on every run. A random id is known to
no one before the bus publishes it, and a copy published afterwards comes after it on
the topic (one partition, keyed by notice id), so the copy is the one dropped. "Once per
notice" therefore rests on the fold above, which writers other than the bus cannot move,
not on the id.

Sides: the court side is the courts and the SPC's command system, the police side the
police roles; a notice of the bus (a processor) may be acknowledged by either side. An
acknowledgement by the reporter's own side does not count (it is listed, flagged).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from consumers.watchlist import derive_id
from schemas.anomalies import ACK_WINDOW, ACKNOWLEDGEMENT, ESCALATION, NOTICE, may_acknowledge

__all__ = ["AnomalyCase", "AnomalyLog", "AnomalyStatus", "escalation_id"]

_SENDER: Mapping[str, str] = {
    NOTICE: "reporting_agency_code",
    ACKNOWLEDGEMENT: "acknowledging_agency_code",
    ESCALATION: "escalating_agency_code",
}
"""The field in which each record names its sender (the publisher checks it on the way
out; the fold again on the way in, since a writer's own tooling skips the publisher)."""


class AnomalyStatus(StrEnum):
    OPEN = "OPEN"
    """Not acknowledged, still within the 24 hours."""
    ACKNOWLEDGED = "ACKNOWLEDGED"
    ACKNOWLEDGED_LATE = "ACKNOWLEDGED_LATE"
    """Acknowledged by the other side, after the deadline (after any escalation)."""
    OVERDUE = "OVERDUE"
    """Deadline passed, not acknowledged, not escalated yet."""
    ESCALATED = "ESCALATED"


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    agency: str
    """The agency that signed it (and names itself in ``acknowledging_agency_code``)."""
    at: dt.datetime
    note: str | None
    counts: bool
    """By the other side (see :func:`may_acknowledge`)."""


@dataclass(frozen=True, slots=True)
class AnomalyCase:
    """One notice and what followed it."""

    notice_id: str
    reported_by: str
    reporter_role: str
    component: str
    severity: str
    description: str
    detected_at: dt.datetime
    acknowledge_by: dt.datetime
    acknowledgements: tuple[Acknowledgement, ...] = ()
    escalated_at: dt.datetime | None = None

    def acknowledgement_by(self, agency: str) -> Acknowledgement | None:
        """``agency``'s acknowledgement of the notice, if it sent one."""
        return next((ack for ack in self.acknowledgements if ack.agency == agency), None)

    @property
    def acknowledged_at(self) -> dt.datetime | None:
        """When the other side first acknowledged it."""
        return next((ack.at for ack in self.acknowledgements if ack.counts), None)

    def status(self, now: dt.datetime) -> AnomalyStatus:
        acknowledged = self.acknowledged_at
        if acknowledged is not None:
            late = acknowledged > self.acknowledge_by
            return AnomalyStatus.ACKNOWLEDGED_LATE if late else AnomalyStatus.ACKNOWLEDGED
        if self.escalated_at is not None:
            return AnomalyStatus.ESCALATED
        return AnomalyStatus.OVERDUE if now > self.acknowledge_by else AnomalyStatus.OPEN


def escalation_id(notice_id: str) -> str:
    """A derived event id for a notice's escalation, kept for callers that still pass one
    (the demo). ``zf801 anomaly escalate`` does not use it: a derived id is known to every
    writer of the topic in advance, so a record of theirs under it would shadow the bus's
    escalation (see the module's docstring); the bus publishes under a random id."""
    return derive_id("anomaly-escalation", notice_id)


@dataclass
class AnomalyLog:
    """Every notice of the ``anomalies`` topic, folded from its verified records."""

    cases: dict[str, AnomalyCase] = field(default_factory=dict)
    orphans: int = 0
    """Acknowledgements and escalations of notices not (or not yet) read: not shown."""
    ignored: int = 0
    """Records not applied: a sender field naming another agency than the signer, an
    escalation not signed by the bus, an agency's second acknowledgement, a second
    escalation."""

    def apply(
        self, event_type: str, record: Mapping[str, Any], signer_role: str, signer: str
    ) -> None:
        """Fold one verified record: its type, decoded value, and its signer's role and
        agency code."""
        notice_id = str(record["notice_id"])
        if record.get(_SENDER.get(event_type, "")) != signer:
            self.ignored += 1  # says it is another agency's: not the signer's to say
            return
        if event_type == NOTICE:
            if notice_id not in self.cases:  # a repeated notice changes nothing
                self.cases[notice_id] = _case(notice_id, record, signer_role)
            return
        case = self.cases.get(notice_id)
        if case is None:
            self.orphans += 1
        elif event_type == ACKNOWLEDGEMENT and case.acknowledgement_by(signer) is None:
            ack = Acknowledgement(
                signer, record["acknowledged_at"], record.get("note"),
                may_acknowledge(case.reporter_role, signer_role),
            )  # fmt: skip
            self.cases[notice_id] = replace(case, acknowledgements=(*case.acknowledgements, ack))
        elif event_type == ESCALATION and signer_role == "bus" and case.escalated_at is None:
            self.cases[notice_id] = replace(case, escalated_at=record["escalated_at"])
        else:
            self.ignored += 1

    def overdue(self, now: dt.datetime) -> list[AnomalyCase]:
        """The notices to escalate now, in the order they were reported."""
        return [c for c in self.cases.values() if c.status(now) is AnomalyStatus.OVERDUE]

    @classmethod
    def of(cls, records: Iterable[tuple[str, Mapping[str, Any], str, str]]) -> AnomalyLog:
        """The log of ``records``: (event type, decoded value, signer's role, signer)."""
        log = cls()
        for event_type, record, role, signer in records:
            log.apply(event_type, record, role, signer)
        return log


def _case(notice_id: str, record: Mapping[str, Any], role: str) -> AnomalyCase:
    return AnomalyCase(
        notice_id=notice_id, reported_by=str(record["reporting_agency_code"]),
        reporter_role=role, component=str(record["component"]),
        severity=str(record["severity"]), description=str(record["description"]),
        detected_at=record["detected_at"],
        # the 24-hour rule, whatever a reporter wrote: never later than detected_at + 24 h
        acknowledge_by=min(record["acknowledge_by"], record["detected_at"] + ACK_WINDOW),
    )  # fmt: skip
