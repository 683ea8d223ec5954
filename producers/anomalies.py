"""Anomaly notices from upstream: a side reports a system anomaly, the other side
acknowledges it, and the bus escalates one left unacknowledged past its 24 hours
(:mod:`consumers.anomaly_log` keeps the state; ``zf801 anomaly`` is the operator's way).

Every input is checked here, before anything is signed or sent, with an error that names
the field and the rule (:class:`AnomalyInputInvalid`): free text must be text, not empty,
within its length, free of control and bidirectional-override characters (which would
make a log line or a terminal show something else than what was sent); times must be
timezone-aware and not in the future, and a detection time not older than
:data:`MAX_DETECTION_AGE`; a notice id must be a UUID. The record then goes
through the publisher's own schema checks and signing (:class:`~producers.publisher.Publisher`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from producers.errors import NotAllowed, require_type
from producers.events import PublishedEvent
from producers.publisher import Publisher
from producers.routes import outgoing_event
from schemas.anomalies import ACK_WINDOW, ACKNOWLEDGEMENT, ESCALATION, NOTICE, may_acknowledge
from schemas.edge_rules import EARLIEST_INSTANT
from schemas.errors import BusError
from schemas.jsonmap import json_kind

__all__ = [
    "MAX_DETECTION_AGE",
    "SEVERITIES",
    "AnomalyDesk",
    "AnomalyInputInvalid",
    "checked_detected_at",
    "checked_text",
    "notice_id_of",
    "report_fields",
]

SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
_LIMITS = {"component": 128, "description": 2000, "note": 2000}
_FUTURE_SKEW = dt.timedelta(minutes=5)
MAX_DETECTION_AGE = dt.timedelta(days=30)
"""How long ago an anomaly reported now may have been detected. The rule is to notify
within 24 hours of detection, so a report days late is already a breach the notice
should still record (it is overdue at once and escalated), and a month leaves room for a
notice held back by a long outage of its own; a detection older than that is far more
likely a mistyped date (2000 for 2026, a day for a month) than a report, and would only
open a notice that is overdue the moment it is read."""


class AnomalyInputInvalid(BusError, ValueError):  # noqa: N818 - reads as a verdict
    """An anomaly input broke a rule; the message names the field and the rule."""


def checked_text(field: str, value: object) -> str:
    """``value`` as the text of ``field`` (component, description, note): text, not empty,
    within its length, no control or format characters; the rule named otherwise."""
    if not isinstance(value, str):
        raise AnomalyInputInvalid(f"{field}: must be text, got {json_kind(value)} [rule text]")
    text = value.strip()
    if not text:
        raise AnomalyInputInvalid(f"{field}: must not be empty [rule required]")
    limit = _LIMITS[field]
    if len(text) > limit:
        raise AnomalyInputInvalid(
            f"{field}: {len(text)} characters, at most {limit} allowed [rule max-length]"
        )
    for char in text:
        category = unicodedata.category(char)
        if (category == "Cc" and char not in "\n\t") or category == "Cf":
            raise AnomalyInputInvalid(
                f"{field}: contains the control or format character U+{ord(char):04X} "
                "[rule printable]"
            )
    return text


def _instant(field: str, value: object, now: dt.datetime) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise AnomalyInputInvalid(f"{field}: must be a timezone-aware time [rule instant]")
    if value > now + _FUTURE_SKEW:
        raise AnomalyInputInvalid(f"{field}: {value.isoformat()} is in the future [rule past]")
    if value < EARLIEST_INSTANT:  # the edge's time rule, checked before any broker is reached
        raise AnomalyInputInvalid(
            f"{field}: {value.isoformat()} is before {EARLIEST_INSTANT.date().isoformat()} "
            "[rule time.too_early]"
        )
    return value.astimezone(dt.UTC)


def checked_detected_at(value: object, now: dt.datetime, field: str = "detected_at") -> dt.datetime:
    """``value`` as a notice's detection time, named ``field`` in a refusal: a timezone-aware
    time, not after ``now`` (beyond a few minutes' clock skew), not before 1990 and not
    more than :data:`MAX_DETECTION_AGE` before ``now``."""
    moment = _instant(field, value, now)
    if moment < now - MAX_DETECTION_AGE:
        raise AnomalyInputInvalid(
            f"{field}: {moment.isoformat()} is more than {MAX_DETECTION_AGE.days} days ago; "
            "an anomaly is notified within 24 hours of its detection [rule recent]"
        )
    return moment


def report_fields(
    *,
    component: object,
    severity: object,
    description: object,
    detected_at: object,
    now: dt.datetime,
) -> dict[str, Any]:
    """The checked fields of an anomaly report (each refusal names the field and the rule),
    for a caller that checks its input before it connects anywhere."""
    if severity not in SEVERITIES:
        raise AnomalyInputInvalid(
            f"severity: {str(severity)[:32]!r} is not one of {', '.join(SEVERITIES)} [rule enum]"
        )
    return {
        "component": checked_text("component", component), "severity": severity,
        "description": checked_text("description", description),
        "detected_at": now if detected_at is None else checked_detected_at(detected_at, now),
    }  # fmt: skip


def notice_id_of(value: object, field: str = "notice_id") -> str:
    """A notice id as given (text or UUID), checked: a UUID, in its canonical form."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str) or len(value) > 64:
        raise AnomalyInputInvalid(f"{field}: must be a UUID [rule uuid]")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise AnomalyInputInvalid(f"{field}: {value[:64]!r} is not a UUID [rule uuid]") from None


class AnomalyDesk:
    """What one agency publishes about anomalies, through its publisher (its signer)."""

    def __init__(
        self,
        publisher: Publisher,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        require_type(publisher, Publisher, "publisher", "a Publisher")
        self.publisher = publisher
        self._clock = clock

    @property
    def agency(self) -> str:
        return self.publisher.agency.code

    def report(
        self,
        *,
        component: object,
        severity: object,
        description: object,
        detected_at: object = None,
    ) -> tuple[str, PublishedEvent]:
        """Report an anomaly; the new notice's id and what the broker acknowledged."""
        fields = report_fields(
            component=component, severity=severity, description=description,
            detected_at=detected_at, now=self._clock(),
        )  # fmt: skip
        notice_id = str(uuid.uuid4())
        record = {
            "notice_id": notice_id, "reporting_agency_code": self.agency, **fields,
            "acknowledge_by": fields["detected_at"] + ACK_WINDOW,
        }  # fmt: skip
        return notice_id, self._publish(NOTICE, record)

    def acknowledge(
        self, notice_id: object, reporter_role: str, *, note: object = None
    ) -> PublishedEvent:
        """Acknowledge a notice reported by an agency of ``reporter_role`` (from the
        anomaly log): only the other side may."""
        checked = notice_id_of(notice_id)
        role = str(self.publisher.agency.role)
        if not may_acknowledge(reporter_role, role):
            raise NotAllowed(
                f"notice_id {checked}: reported by the {reporter_role} side; a {role} agency "
                "may not acknowledge it (the other side acknowledges) [rule other-side]"
            )
        record = {
            "notice_id": checked, "acknowledging_agency_code": self.agency,
            "acknowledged_at": self._clock(),
            "note": None if note is None else checked_text("note", note),
        }  # fmt: skip
        return self._publish(ACKNOWLEDGEMENT, record)

    def escalate(
        self,
        notice_id: str,
        reported_by: str,
        acknowledge_by: dt.datetime,
        event_id: str | None = None,
    ) -> PublishedEvent:
        """The bus's escalation of an overdue notice, under a fresh random event id unless
        ``event_id`` is given (why random: :mod:`consumers.anomaly_log`)."""
        record = {
            "notice_id": notice_id_of(notice_id), "notice_reported_by": reported_by,
            "escalating_agency_code": self.agency, "acknowledge_by": acknowledge_by,
            "escalated_at": self._clock(),
        }  # fmt: skip
        return self._publish(ESCALATION, record, event_id)

    def _publish(
        self, schema: str, record: Mapping[str, Any], event_id: str | None = None
    ) -> PublishedEvent:
        event = outgoing_event(schema, record)
        if event_id is not None:
            event = dataclasses.replace(event, event_id=event_id)
        return self.publisher.publish(event)
