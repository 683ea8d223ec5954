"""``zf801 anomaly``: refusals before anything is reached (a non-bus ``escalate``, a
detection time in the future or too old), an acknowledgement given once however often it
is asked for, and escalations published under ids no other writer could spend first (the
anomalies topic is stood in for by the log the command would read)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from consumers.anomaly_log import AnomalyLog
from consumers.runtime import Runtime
from ops import cmd_anomaly
from ops.cli import app
from schemas.anomalies import ACKNOWLEDGEMENT, ESCALATION, NOTICE

runner = CliRunner()
POLICE, BORDER, COURT, BUS = "110000000000", "110000230000", "BJ01", "BUS-AUDIT"
H = dt.timedelta(hours=1)


class _Desk:
    """What the command publishes, recorded (nothing reaches a broker)."""

    def __init__(self) -> None:
        self.acknowledged: list[tuple[Any, ...]] = []
        self.escalated: list[tuple[Any, ...]] = []
        self.reported: list[dict[str, Any]] = []

    def report(self, **fields: Any) -> tuple[str, None]:
        self.reported.append(fields)
        return str(uuid.uuid4()), None

    def acknowledge(self, notice_id: str, reporter_role: str, *, note: object = None) -> None:
        self.acknowledged.append((notice_id, reporter_role, note))

    def escalate(self, *arguments: Any) -> None:
        self.escalated.append(arguments)


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal comes before the command connects: connecting fails the test."""

    def connect(*_: Any, **__: Any) -> Any:
        raise AssertionError("the command connected before refusing its input")

    monkeypatch.setattr(Runtime, "connect", connect)


@pytest.fixture
def topic(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[Any], _Desk, list[Any]]]:
    """The topic's records (as the fold takes them), the desk, and the audit records."""
    records: list[Any] = []
    desk, audited = _Desk(), []

    @contextmanager
    def acting(agency: str) -> Iterator[tuple[Any, _Desk]]:
        audit = SimpleNamespace(record=lambda **entry: audited.append(entry))
        catalog = SimpleNamespace(topic_name=lambda topic_id: f"zf801.bus.{topic_id}")
        yield SimpleNamespace(agency_code=agency, audit=audit, catalog=catalog), desk

    monkeypatch.setattr(cmd_anomaly, "_acting", acting)
    monkeypatch.setattr(cmd_anomaly, "read_anomalies", lambda _: AnomalyLog.of(records))
    yield records, desk, audited


def _notice(hours_ago: float, reporter: str = POLICE, role: str = "public-security") -> Any:
    detected = dt.datetime.now(dt.UTC) - hours_ago * H
    record = {"notice_id": str(uuid.uuid4()), "reporting_agency_code": reporter,
              "component": "旅馆业数据接口", "severity": "HIGH", "description": "推送中断",
              "detected_at": detected, "acknowledge_by": detected + 24 * H}  # fmt: skip
    return (NOTICE, record, role, reporter)


def _ack(notice: Any, agency: str, role: str, at: dt.datetime) -> Any:
    record = {"notice_id": notice[1]["notice_id"], "acknowledging_agency_code": agency,
              "acknowledged_at": at, "note": None}  # fmt: skip
    return (ACKNOWLEDGEMENT, record, role, agency)


def _escalation(notice: Any, agency: str, role: str) -> Any:
    record = {"notice_id": notice[1]["notice_id"], "notice_reported_by": POLICE,
              "escalating_agency_code": agency, "acknowledge_by": notice[1]["acknowledge_by"],
              "escalated_at": dt.datetime.now(dt.UTC)}  # fmt: skip
    return (ESCALATION, record, role, agency)


@pytest.mark.parametrize(
    ("agency", "says"),
    [
        (COURT, "BJ01 is a court agency; only a bus agency (BUS-MATCHER, BUS-ROUTER, BUS-AUDIT)"),
        ("SPC-COMMAND", "SPC-COMMAND is a command-system agency; only a bus agency"),
        (POLICE, "110000000000 is a public-security agency; only a bus agency"),
        ("NOBODY", "agency 'NOBODY' is not in the agency list; only a bus agency"),
    ],
)
@pytest.mark.usefixtures("no_broker")
def test_escalate_is_refused_to_an_agency_not_of_the_bus(agency: str, says: str) -> None:
    """A court's escalation counted for nothing but was accepted (exit 0)."""
    result = runner.invoke(app, ["anomaly", "escalate", "--as", agency])
    assert result.exit_code == 2, result.output
    text = " ".join(result.stderr.replace("│", " ").split())
    assert "Invalid value for '--as'" in text and says in text, text
    assert "[rule bus-escalates]" in text and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("detected_at", "says"),
    [
        ("2000-01-01T00:00:00Z", "--detected-at: 2000-01-01T00:00:00+00:00 is more than 30 days "
         "ago; an anomaly is notified within 24 hours of its detection [rule recent]"),
        ((dt.datetime.now(dt.UTC) - dt.timedelta(days=31)).isoformat(), "[rule recent]"),
        ("2099-01-01T00:00:00+08:00", "--detected-at: 2099-01-01T00:00:00+08:00 is in the future "
         "[rule past]"),
        ((dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)).isoformat(), "[rule past]"),
        ("yesterday", "--detected-at: 'yesterday' is not an ISO 8601 time [rule instant]"),
        ("2026-01-01T00:00:00", "--detected-at: give a timezone"),
    ],
    ids=["2000", "31-days-ago", "2099", "10-minutes-ahead", "not-a-time", "no-zone"],
)  # fmt: skip
@pytest.mark.usefixtures("no_broker")
def test_a_detection_time_out_of_bounds_is_a_usage_error(detected_at: str, says: str) -> None:
    """A notice "detected" 26 years ago was accepted, and overdue at once."""
    result = runner.invoke(app, ["anomaly", "report", "--as", POLICE, "--component", "db",
                                 "--severity", "LOW", "--description", "down",
                                 "--detected-at", detected_at])  # fmt: skip
    assert result.exit_code == 2, result.output
    text = " ".join(result.stderr.split())
    assert text.startswith("error: --detected-at: ") and says in text, text


def test_a_detection_time_within_the_bounds_is_reported(
    topic: tuple[list[Any], _Desk, list[Any]],
) -> None:
    _, desk, _ = topic
    detected = dt.datetime.now(dt.UTC) - dt.timedelta(days=29)
    result = runner.invoke(app, ["anomaly", "report", "--as", POLICE, "--component", "db",
                                 "--severity", "LOW", "--description", "down",
                                 "--detected-at", detected.isoformat()])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert desk.reported[0]["detected_at"] == detected


def test_a_second_acknowledgement_by_the_same_agency_publishes_nothing(
    topic: tuple[list[Any], _Desk, list[Any]],
) -> None:
    """``ack`` twice published two acknowledgements; the second now says when the
    first was, exits 0, publishes nothing, and is audited."""
    records, desk, audited = topic
    notice = _notice(hours_ago=2)
    notice_id = notice[1]["notice_id"]
    records.append(notice)
    first = runner.invoke(app, ["anomaly", "ack", notice_id, "--as", COURT])
    assert first.exit_code == 0, first.output
    assert f"acknowledged anomaly {notice_id} of {POLICE}" in first.stdout
    assert desk.acknowledged == [(notice_id, "public-security", None)]
    at = dt.datetime(2026, 11, 27, 7, 2, tzinfo=dt.UTC)
    records.append(_ack(notice, COURT, "court", at))  # what the first one published
    again = runner.invoke(app, ["anomaly", "ack", notice_id, "--as", COURT])
    assert again.exit_code == 0, again.output
    assert f"already acknowledged by {COURT} at 2026-11-27 07:02:00Z" in again.stdout
    assert len(desk.acknowledged) == 1
    assert audited[-1]["operation"] == "anomaly.ack"
    assert audited[-1]["detail"] == f"{notice_id} already acknowledged"


def test_an_own_side_acknowledgement_on_the_topic_does_not_make_the_next_one_a_repeat(
    topic: tuple[list[Any], _Desk, list[Any]],
) -> None:
    """One that does not count (the reporter's own side, by its own tooling) is not taken
    for the agency's acknowledgement: the desk is asked (and refuses it, by its rule)."""
    records, desk, _ = topic
    notice = _notice(hours_ago=2)
    records += [notice, _ack(notice, BORDER, "border-control", dt.datetime.now(dt.UTC))]
    runner.invoke(app, ["anomaly", "ack", notice[1]["notice_id"], "--as", BORDER])
    assert len(desk.acknowledged) == 1


def test_a_courts_escalation_first_does_not_stop_the_bus_escalating_once(
    topic: tuple[list[Any], _Desk, list[Any]],
) -> None:
    """With a court's escalation on the topic first, the bus escalates the notice
    (under a random id: no ``event_id`` passed), and once the bus's is there, not again."""
    records, desk, _ = topic
    notice = _notice(hours_ago=25)
    records += [notice, _escalation(notice, COURT, "court")]
    first = runner.invoke(app, ["anomaly", "escalate", "--as", BUS])
    assert first.exit_code == 0, first.output
    assert "escalated 1 overdue anomaly notice(s)" in first.stdout
    notice_id, reported_by, acknowledge_by = desk.escalated[0]
    assert (notice_id, reported_by, acknowledge_by) == (
        notice[1]["notice_id"], POLICE, notice[1]["acknowledge_by"]
    )  # fmt: skip
    records.append(_escalation(notice, BUS, "bus"))  # what that run published
    again = runner.invoke(app, ["anomaly", "escalate", "--as", BUS])
    assert "escalated 0 overdue anomaly notice(s)" in again.stdout, again.output
    assert len(desk.escalated) == 1
