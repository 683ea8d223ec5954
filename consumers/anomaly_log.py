"""Anomaly notices and the 24-hour rule (MISSION §3): either side reports a system anomaly
(``AnomalyNotice``), the *other* side must acknowledge it (``AnomalyAcknowledgement``)
by its ``acknowledge_by`` (detected_at + 24 h), and a notice still unacknowledged then
is escalated by the bus (``AnomalyEscalation``) to the national command system and both
sides, once.

Pure state, no Kafka: :class:`AnomalyLog` folds the verified records of the
``anomalies`` topic, in order, into one :class:`AnomalyCase` per notice. The topic is
the state: an escalation is decided from what the topic holds (a notice, no valid
acknowledgement, no escalation, deadline passed), and its id is derived from the notice
id, so a repeated run escalates nothing twice.

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
    """The event id of a notice's escalation: one per notice, however often it is run."""
    return derive_id("anomaly-escalation", notice_id)


@dataclass
class AnomalyLog:
    """Every notice of the ``anomalies`` topic, folded from its verified records."""

    cases: dict[str, AnomalyCase] = field(default_factory=dict)
    orphans: int = 0
    """Acknowledgements and escalations of notices not (or not yet) read: not shown."""

    def apply(self, event_type: str, record: Mapping[str, Any], signer_role: str) -> None:
        """Fold one verified record (its type, decoded value and signer's role)."""
        notice_id = str(record["notice_id"])
        if event_type == NOTICE:
            if notice_id not in self.cases:  # a repeated notice changes nothing
                self.cases[notice_id] = _case(notice_id, record, signer_role)
            return
        case = self.cases.get(notice_id)
        if case is None:
            self.orphans += 1
        elif event_type == ACKNOWLEDGEMENT:
            ack = Acknowledgement(
                str(record["acknowledging_agency_code"]), record["acknowledged_at"],
                record.get("note"), may_acknowledge(case.reporter_role, signer_role),
            )  # fmt: skip
            self.cases[notice_id] = replace(case, acknowledgements=(*case.acknowledgements, ack))
        elif event_type == ESCALATION and signer_role == "bus" and case.escalated_at is None:
            self.cases[notice_id] = replace(case, escalated_at=record["escalated_at"])

    def overdue(self, now: dt.datetime) -> list[AnomalyCase]:
        """The notices to escalate now, in the order they were reported."""
        return [c for c in self.cases.values() if c.status(now) is AnomalyStatus.OVERDUE]

    @classmethod
    def of(cls, records: Iterable[tuple[str, Mapping[str, Any], str]]) -> AnomalyLog:
        log = cls()
        for event_type, record, role in records:
            log.apply(event_type, record, role)
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
