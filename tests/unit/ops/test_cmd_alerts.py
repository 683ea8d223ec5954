"""How zf801 alerts shows a court's alerts: a table when reading to the end, one line per
alert as it arrives when following."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from consumers.alerts import Alert
from ops.cmd_alerts import alerts_view
from ops.stream_view import ReadSummary, follow, table


def _alert(kind: str, record: dict[str, object], signed_by: str = "BUS-MATCHER") -> Alert:
    return Alert(event_id="e", event_type=f"cn.zf801.bus.v1.{kind}", signed_by=signed_by,
                 offset=0, record=record, document={})  # fmt: skip


HIT = _alert("Hit", {"order_id": "o-1", "case_number": "（2026）京01执1号",
                     "summary": {"kind": "HOTEL_CHECK_IN", "place": "如家酒店"}})  # fmt: skip
ACK = _alert(
    "OrderAcknowledgement",
    {"order_id": "o-2", "status": "REJECTED", "reason": "证件不全"},
    signed_by="110000000000",
)
VIEW = alerts_view("BJ01")


def test_follow_prints_each_alert_before_the_stream_ends(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def stream() -> Iterator[Alert]:
        yield HIT
        assert "o-1" in capsys.readouterr().out  # shown before the next alert arrives
        yield ACK

    assert follow(VIEW, stream()) == 2
    assert "o-2" in capsys.readouterr().out


def test_table_lists_every_alert_with_its_detail(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one row per alert, nothing folded
    table(VIEW, [HIT, ACK], ReadSummary(2))
    out = capsys.readouterr().out
    assert "Alerts of court BJ01" in out
    assert "HOTEL_CHECK_IN 如家酒店" in out and "REJECTED: 证件不全" in out
    assert "2 alert(s)" in out


@pytest.mark.parametrize("show", ["table", "follow"])
def test_hostile_text_in_an_alert_is_shown_escaped_never_as_markup(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, show: str
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    place = "[red]如家\x1b[2J酒店\u202e[/red]"
    hostile = _alert("Hit", {"order_id": "o-3", "case_number": "（2026）京01执3号",
                             "summary": {"kind": "HOTEL_CHECK_IN", "place": place}})  # fmt: skip
    if show == "table":
        table(VIEW, [hostile], ReadSummary(1))
    else:
        follow(VIEW, iter([hostile]))
    out = capsys.readouterr().out
    assert "[red]如家\\x1b[2J酒店\\u202e[/red]" in out
    assert "\x1b[2J" not in out and "\u202e" not in out
