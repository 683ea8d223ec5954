"""``zf801 anomaly report | ack | list | escalate`` as operators of both sides run them,
against the real broker: the 24-hour rule end to end, an acknowledgement by the wrong
side refused, an overdue notice escalated once and then acknowledged late, and bad input
refused with the field and the rule named before anything is published."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from ops.deployment import zf801_command
from producers.anomalies import AnomalyDesk

pytestmark = [pytest.mark.e2e]

POLICE, BORDER, COURT, COMMAND, BUS = (
    "110000000000",
    "110000230000",
    "BJ01",
    "SPC-COMMAND",
    "BUS-AUDIT",
)


@pytest.fixture(scope="module")
def bus(bus_factory: Any) -> Iterator[Any]:
    yield bus_factory()


def _run(bus: Any, *arguments: str) -> subprocess.CompletedProcess[str]:
    """The command's run on a wide terminal, its output's whitespace made single spaces
    (rich wraps long lines at the terminal's width, 80 columns without one)."""
    done = subprocess.run(
        zf801_command("anomaly", *arguments), env={**bus.worker_env(), "COLUMNS": "300"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return subprocess.CompletedProcess(
        done.args, done.returncode, " ".join(done.stdout.split()), " ".join(done.stderr.split())
    )


def _count(bus: Any) -> int:
    return len(bus.messages("anomalies", idle_s=1.5))


def _status(bus: Any, notice_id: str) -> str:
    listing = _run(bus, "list", "--as", COMMAND, "--format", "json")
    assert listing.returncode == 0, listing.stderr
    found = re.search(rf'"notice_id": "{notice_id}".*?"status": "([A-Z_]+)"', listing.stdout)
    assert found, listing.stdout
    return found.group(1)


def test_a_police_notice_acknowledged_by_the_court_side_in_time(bus: Any) -> None:
    reported = _run(bus, "report", "--as", POLICE, "--component", "旅馆业数据接口",
                    "--severity", "HIGH", "--description", "推送中断约40分钟")  # fmt: skip
    assert reported.returncode == 0, reported.stderr
    found = re.search(r"reported anomaly ([0-9a-f-]{36})", reported.stdout)
    assert found, reported.stdout
    notice_id = found.group(1)
    assert _status(bus, notice_id) == "OPEN"
    before = _count(bus)
    own_side = _run(bus, "ack", notice_id, "--as", BORDER)
    assert own_side.returncode == 1
    assert "[rule other-side]" in own_side.stderr, own_side.stderr
    assert _count(bus) == before  # nothing published
    acked = _run(bus, "ack", notice_id, "--as", COURT, "--note", "已收到，联系人 张伟")
    assert acked.returncode == 0, acked.stderr
    assert f"acknowledged anomaly {notice_id} of {POLICE}" in acked.stdout
    assert "late" not in acked.stdout
    assert _status(bus, notice_id) == "ACKNOWLEDGED"
    table = _run(bus, "list", "--as", POLICE)
    assert notice_id in table.stdout and "ACKNOWLEDGED" in table.stdout, table.stdout


def test_an_overdue_notice_is_escalated_once_and_acknowledged_late(bus: Any) -> None:
    desk = AnomalyDesk(bus.publisher(COURT))
    notice_id, _ = desk.report(
        component="执行案件推送服务", severity="MEDIUM", description="证书过期，推送失败",
        detected_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=25),
    )  # fmt: skip
    assert _status(bus, notice_id) == "OVERDUE"
    first = _run(bus, "escalate", "--as", BUS)
    assert first.returncode == 0, first.stderr
    assert re.search(r"escalated [1-9]\d* overdue", first.stdout), first.stdout
    assert _status(bus, notice_id) == "ESCALATED"
    again = _run(bus, "escalate", "--as", BUS)
    assert "escalated 0 overdue" in again.stdout, again.stdout
    escalations = [
        rec for rec, _, kind in bus.read_topic("anomalies", idle_s=1.5)
        if kind == "AnomalyEscalation" and str(rec["notice_id"]) == notice_id
    ]  # fmt: skip
    assert len(escalations) == 1 and escalations[0]["escalating_agency_code"] == BUS
    late = _run(bus, "ack", notice_id, "--as", POLICE)
    assert late.returncode == 0, late.stderr
    assert "late (due" in late.stdout, late.stdout
    assert _status(bus, notice_id) == "ACKNOWLEDGED_LATE"


_BAD_REPORTS = [
    (("--component", "x" * 129, "--severity", "LOW", "--description", "d"),
     "component: 129 characters, at most 128 allowed [rule max-length]"),
    (("--component", "c", "--severity", "LOW", "--description", "\x1b[2J清屏"),
     "description: contains the control or format character U+001B [rule printable]"),
    (("--component", "c", "--severity", "URGENT", "--description", "d"),
     "severity: 'URGENT' is not one of LOW, MEDIUM, HIGH, CRITICAL [rule enum]"),
    (("--component", "c", "--severity", "LOW", "--description", "d",
      "--detected-at", "yesterday"), "--detected-at: 'yesterday' is not an ISO 8601"),
    (("--component", "c", "--severity", "LOW", "--description", "d",
      "--detected-at", "2026-01-01T00:00:00"), "--detected-at: give a timezone"),
    (("--component", "c", "--severity", "LOW"), "Missing option '--description'"),
]  # fmt: skip
"""Malformed, hostile, oversized and missing input: (arguments, what the error says)."""


def test_bad_input_is_refused_naming_the_field_and_nothing_is_published(bus: Any) -> None:
    before = _count(bus)
    for arguments, message in _BAD_REPORTS:
        done = _run(bus, "report", "--as", POLICE, *arguments)
        assert done.returncode in (1, 2), arguments
        assert message in done.stderr, done.stderr
    assert _count(bus) == before


def test_acknowledging_an_unknown_or_malformed_notice_is_refused(bus: Any) -> None:
    unknown = _run(bus, "ack", "2b2f6484-0f0a-5dfa-88e4-d14a0051988a", "--as", COURT)
    assert unknown.returncode == 1 and "[rule known-notice]" in unknown.stderr, unknown.stderr
    malformed = _run(bus, "ack", "'; DROP TABLE", "--as", COURT)
    assert malformed.returncode == 1 and "NOTICE_ID:" in malformed.stderr, malformed.stderr
    assert "[rule uuid]" in malformed.stderr
