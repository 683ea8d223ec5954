"""The 24-hour rule of anomaly notices, as state folded from the anomalies topic."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from consumers.anomaly_log import AnomalyLog, AnomalyStatus, escalation_id
from schemas.anomalies import ACKNOWLEDGEMENT, ESCALATION, NOTICE, may_acknowledge

T0 = dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def _notice(reporter: str = "110000000000", detected: dt.datetime = T0, **extra: Any
            ) -> dict[str, Any]:  # fmt: skip
    return {"notice_id": str(uuid.uuid4()), "reporting_agency_code": reporter,
            "component": "旅馆业数据接口", "severity": "HIGH", "description": "推送中断",
            "detected_at": detected, "acknowledge_by": detected + 24 * H, **extra}  # fmt: skip


def _ack(notice: dict[str, Any], agency: str, at: dt.datetime) -> dict[str, Any]:
    return {"notice_id": notice["notice_id"], "acknowledging_agency_code": agency,
            "acknowledged_at": at, "note": None}  # fmt: skip


def test_the_other_side_acknowledges_in_time() -> None:
    notice = _notice()
    log = AnomalyLog.of([(NOTICE, notice, "public-security"),
                         (ACKNOWLEDGEMENT, _ack(notice, "BJ01", T0 + H), "court")])  # fmt: skip
    case = log.cases[notice["notice_id"]]
    assert case.status(T0 + 30 * H) is AnomalyStatus.ACKNOWLEDGED
    assert case.acknowledged_at == T0 + H
    assert log.overdue(T0 + 30 * H) == []


def test_an_acknowledgement_by_the_reporters_own_side_does_not_count() -> None:
    notice = _notice()
    log = AnomalyLog.of([(NOTICE, notice, "public-security"),
                         (ACKNOWLEDGEMENT, _ack(notice, "110000230000", T0 + H),
                          "border-control")])  # fmt: skip
    case = log.cases[notice["notice_id"]]
    assert case.acknowledgements[0].counts is False
    assert case.status(T0 + 2 * H) is AnomalyStatus.OPEN
    assert case.status(T0 + 25 * H) is AnomalyStatus.OVERDUE
    assert log.overdue(T0 + 25 * H) == [case]


def test_an_overdue_notice_is_escalated_once_and_a_late_acknowledgement_says_late() -> None:
    notice = _notice()
    escalation = {"notice_id": notice["notice_id"], "notice_reported_by": "110000000000",
                  "escalating_agency_code": "BUS-AUDIT", "acknowledge_by": T0 + 24 * H,
                  "escalated_at": T0 + 25 * H}  # fmt: skip
    log = AnomalyLog.of([(NOTICE, notice, "public-security"), (ESCALATION, escalation, "bus")])
    case = log.cases[notice["notice_id"]]
    assert case.status(T0 + 26 * H) is AnomalyStatus.ESCALATED
    assert log.overdue(T0 + 26 * H) == []  # escalated: not again
    log.apply(ACKNOWLEDGEMENT, _ack(notice, "SPC-COMMAND", T0 + 27 * H), "command-system")
    assert log.cases[notice["notice_id"]].status(T0 + 28 * H) is AnomalyStatus.ACKNOWLEDGED_LATE


def test_an_escalation_not_signed_by_the_bus_changes_nothing() -> None:
    notice = _notice()
    forged = {"notice_id": notice["notice_id"], "escalated_at": T0}
    log = AnomalyLog.of([(NOTICE, notice, "public-security"), (ESCALATION, forged, "court")])
    assert log.cases[notice["notice_id"]].escalated_at is None


def test_a_reporter_cannot_buy_time_beyond_24_hours() -> None:
    notice = _notice(acknowledge_by=T0 + 240 * H)
    log = AnomalyLog.of([(NOTICE, notice, "court")])
    assert log.cases[notice["notice_id"]].acknowledge_by == T0 + 24 * H


def test_records_of_an_unknown_notice_are_counted_not_shown() -> None:
    notice = _notice()
    log = AnomalyLog.of([(ACKNOWLEDGEMENT, _ack(notice, "BJ01", T0), "court")])
    assert (log.cases, log.orphans) == ({}, 1)


def test_escalation_ids_are_derived_from_the_notice() -> None:
    notice_id = str(uuid.uuid4())
    assert escalation_id(notice_id) == escalation_id(notice_id) != escalation_id(str(uuid.uuid4()))


@pytest.mark.parametrize(
    ("reporter", "acknowledger", "allowed"),
    [
        ("court", "public-security", True),
        ("court", "command-system", False),
        ("public-security", "court", True),
        ("public-security", "command-system", True),
        ("border-control", "traffic-management", False),
        ("bus", "court", True),
        ("bus", "border-control", True),
        ("court", "bus", False),
        ("court", "list-subscriber", False),
    ],
)
def test_only_the_other_side_acknowledges(reporter: str, acknowledger: str, allowed: bool) -> None:
    assert may_acknowledge(reporter, acknowledger) is allowed
