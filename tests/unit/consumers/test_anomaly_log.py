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
POLICE, BORDER, BUS = "110000000000", "110000230000", "BUS-AUDIT"


def _notice(reporter: str = POLICE, detected: dt.datetime = T0, **extra: Any
            ) -> dict[str, Any]:  # fmt: skip
    return {"notice_id": str(uuid.uuid4()), "reporting_agency_code": reporter,
            "component": "旅馆业数据接口", "severity": "HIGH", "description": "推送中断",
            "detected_at": detected, "acknowledge_by": detected + 24 * H, **extra}  # fmt: skip


def _ack(notice: dict[str, Any], agency: str, at: dt.datetime) -> dict[str, Any]:
    return {"notice_id": notice["notice_id"], "acknowledging_agency_code": agency,
            "acknowledged_at": at, "note": None}  # fmt: skip


def _escalation(notice: dict[str, Any], at: dt.datetime, agency: str = BUS) -> dict[str, Any]:
    return {"notice_id": notice["notice_id"], "notice_reported_by": notice["reporting_agency_code"],
            "escalating_agency_code": agency, "acknowledge_by": notice["acknowledge_by"],
            "escalated_at": at}  # fmt: skip


def test_the_other_side_acknowledges_in_time() -> None:
    notice = _notice()
    log = AnomalyLog.of([(NOTICE, notice, "public-security", POLICE),
                         (ACKNOWLEDGEMENT, _ack(notice, "BJ01", T0 + H), "court",
                          "BJ01")])  # fmt: skip
    case = log.cases[notice["notice_id"]]
    assert case.status(T0 + 30 * H) is AnomalyStatus.ACKNOWLEDGED
    assert case.acknowledged_at == T0 + H
    assert log.overdue(T0 + 30 * H) == []


def test_an_acknowledgement_by_the_reporters_own_side_does_not_count() -> None:
    notice = _notice()
    log = AnomalyLog.of([(NOTICE, notice, "public-security", POLICE),
                         (ACKNOWLEDGEMENT, _ack(notice, BORDER, T0 + H),
                          "border-control", BORDER)])  # fmt: skip
    case = log.cases[notice["notice_id"]]
    assert case.acknowledgements[0].counts is False
    assert case.status(T0 + 2 * H) is AnomalyStatus.OPEN
    assert case.status(T0 + 25 * H) is AnomalyStatus.OVERDUE
    assert log.overdue(T0 + 25 * H) == [case]


def test_an_overdue_notice_is_escalated_once_and_a_late_acknowledgement_says_late() -> None:
    notice = _notice()
    log = AnomalyLog.of([(NOTICE, notice, "public-security", POLICE),
                         (ESCALATION, _escalation(notice, T0 + 25 * H), "bus", BUS)])  # fmt: skip
    case = log.cases[notice["notice_id"]]
    assert case.status(T0 + 26 * H) is AnomalyStatus.ESCALATED
    assert log.overdue(T0 + 26 * H) == []  # escalated: not again
    log.apply(ACKNOWLEDGEMENT, _ack(notice, "SPC-COMMAND", T0 + 27 * H), "command-system",
              "SPC-COMMAND")  # fmt: skip
    assert log.cases[notice["notice_id"]].status(T0 + 28 * H) is AnomalyStatus.ACKNOWLEDGED_LATE


def test_an_escalation_not_signed_by_the_bus_changes_nothing() -> None:
    notice = _notice()
    forged = {"notice_id": notice["notice_id"], "escalating_agency_code": "BJ01",
              "escalated_at": T0}  # fmt: skip
    log = AnomalyLog.of([(NOTICE, notice, "public-security", POLICE),
                         (ESCALATION, forged, "court", "BJ01")])  # fmt: skip
    assert log.cases[notice["notice_id"]].escalated_at is None
    assert log.ignored == 1


def test_a_courts_escalation_first_does_not_stop_the_buss_own() -> None:
    """A court escalating before the bus left the notice OVERDUE for ever (the bus's
    escalation, under the same derived id, was dropped as a repeat). The court's record
    counts for nothing, and the bus's, under its own random id, escalates the notice."""
    notice = _notice()
    log = AnomalyLog.of([(NOTICE, notice, "public-security", POLICE),
                         (ESCALATION, _escalation(notice, T0 + 25 * H, "BJ01"), "court", "BJ01")
                         ])  # fmt: skip
    assert log.overdue(T0 + 26 * H) == [log.cases[notice["notice_id"]]]
    log.apply(ESCALATION, _escalation(notice, T0 + 26 * H), "bus", BUS)
    assert log.cases[notice["notice_id"]].status(T0 + 27 * H) is AnomalyStatus.ESCALATED
    assert log.cases[notice["notice_id"]].escalated_at == T0 + 26 * H
    assert log.overdue(T0 + 27 * H) == []


def test_a_record_naming_another_sender_than_its_signer_is_ignored() -> None:
    """Who acknowledged or escalated is the signer's: a court's record that says the bus
    escalated, or that another court acknowledged, is not applied."""
    notice = _notice()
    log = AnomalyLog.of([
        (NOTICE, notice, "public-security", POLICE),
        (ESCALATION, _escalation(notice, T0 + 25 * H), "court", "BJ01"),
        (ESCALATION, _escalation(notice, T0 + 25 * H), "bus", "BUS-MATCHER"),
        (ACKNOWLEDGEMENT, _ack(notice, "SPC-COMMAND", T0 + H), "court", "BJ01"),
        (NOTICE, _notice(reporter=POLICE), "court", "BJ01"),
    ])  # fmt: skip
    case = log.cases[notice["notice_id"]]
    assert (case.escalated_at, case.acknowledgements, log.ignored) == (None, (), 4)
    assert list(log.cases) == [notice["notice_id"]]


def test_an_agency_is_listed_once_however_often_it_acknowledged() -> None:
    notice = _notice()
    log = AnomalyLog.of([(NOTICE, notice, "public-security", POLICE),
                         (ACKNOWLEDGEMENT, _ack(notice, "BJ01", T0 + H), "court", "BJ01"),
                         (ACKNOWLEDGEMENT, _ack(notice, "BJ01", T0 + 2 * H), "court", "BJ01"),
                         (ACKNOWLEDGEMENT, _ack(notice, "SPC-COMMAND", T0 + 3 * H),
                          "command-system", "SPC-COMMAND")])  # fmt: skip
    case = log.cases[notice["notice_id"]]
    assert [(a.agency, a.at) for a in case.acknowledgements] == [
        ("BJ01", T0 + H), ("SPC-COMMAND", T0 + 3 * H)
    ]  # fmt: skip
    assert case.acknowledgement_by("BJ01") == case.acknowledgements[0]
    assert case.acknowledgement_by("BJ02") is None
    assert log.ignored == 1


def test_a_second_escalation_by_the_bus_changes_nothing() -> None:
    notice = _notice()
    log = AnomalyLog.of([(NOTICE, notice, "public-security", POLICE),
                         (ESCALATION, _escalation(notice, T0 + 25 * H), "bus", BUS),
                         (ESCALATION, _escalation(notice, T0 + 26 * H), "bus", BUS)])  # fmt: skip
    assert log.cases[notice["notice_id"]].escalated_at == T0 + 25 * H


def test_a_reporter_cannot_buy_time_beyond_24_hours() -> None:
    notice = _notice(reporter="BJ01", acknowledge_by=T0 + 240 * H)
    log = AnomalyLog.of([(NOTICE, notice, "court", "BJ01")])
    assert log.cases[notice["notice_id"]].acknowledge_by == T0 + 24 * H


def test_records_of_an_unknown_notice_are_counted_not_shown() -> None:
    notice = _notice()
    log = AnomalyLog.of([(ACKNOWLEDGEMENT, _ack(notice, "BJ01", T0), "court", "BJ01")])
    assert (log.cases, log.orphans) == ({}, 1)


def test_derived_escalation_ids_are_derived_from_the_notice() -> None:
    """Kept for the demo; ``zf801 anomaly escalate`` publishes under random ids."""
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
