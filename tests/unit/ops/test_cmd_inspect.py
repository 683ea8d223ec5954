"""The operator read commands' shared pieces: text from a topic reaches the terminal
escaped, JSON lines stay exact and parse, ``--since`` and ``--limit``."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ops.cmd_inspect import SinceInvalid, parse_since
from ops.cmd_inspect_view import View, cell, json_line, select, shorten, when

HOSTILE = "ok\x1b[2J\x1b[31mred\u202eevil\r\n[bold]x[/]"
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def test_a_cell_shows_control_characters_and_bidi_overrides_escaped_and_no_markup() -> None:
    text = cell(HOSTILE)
    assert text.plain == "ok\\x1b[2J\\x1b[31mred\\u202eevil\\x0d\\x0a[bold]x[/]"
    assert text.spans == []  # "[bold]" stayed text, not a style


def test_a_json_line_escapes_what_does_not_print_and_parses_back_to_the_exact_text() -> None:
    line = json_line({"detail": HOSTILE, "court": "京01", "tag": "\U000e0041"})
    assert "\x1b" not in line and "\u202e" not in line and "\n" not in line
    assert "\\u001b" in line and "\\u202e" in line and "\\udb40\\udc41" in line
    assert "京01" in line  # printable text is kept as it is
    assert json.loads(line) == {"detail": HOSTILE, "court": "京01", "tag": "\U000e0041"}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("30m", NOW - dt.timedelta(minutes=30)),
        ("2h", NOW - dt.timedelta(hours=2)),
        ("7d", NOW - dt.timedelta(days=7)),
        ("2026-02-28T08:00", dt.datetime(2026, 2, 28, 8, 0, tzinfo=dt.UTC)),
        ("2026-02-28T08:00+08:00", dt.datetime(2026, 2, 28, 0, 0, tzinfo=dt.UTC)),
    ],
)
def test_since_takes_an_age_or_a_time(given: str, expected: dt.datetime) -> None:
    assert parse_since(given, NOW) == expected


def test_since_refuses_anything_else() -> None:
    with pytest.raises(SinceInvalid, match="neither an ISO 8601 time"):
        parse_since("yesterday", NOW)


def test_since_refuses_an_age_beyond_the_calendar_and_non_ascii_digits() -> None:
    with pytest.raises(
        SinceInvalid, match=r"--from '99999999d': an age reaching before the year 1"
    ):
        parse_since("99999999d", NOW, "--from")
    with pytest.raises(SinceInvalid, match="neither an ISO 8601 time"):
        parse_since("\u0663d", NOW)  # ARABIC-INDIC DIGIT THREE


def test_select_keeps_the_last_n_wanted() -> None:
    assert select(range(10), lambda n: n % 2 == 0, 3) == [4, 6, 8]
    assert select(range(5), lambda n: True, None) == [0, 1, 2, 3, 4]


def test_shorten_and_when() -> None:
    assert shorten("abcdef", 4) == "abc…" and shorten("abc", 4) == "abc"
    assert when(dt.datetime(2026, 3, 1, 20, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))) == (
        "2026-03-01 12:00:00Z"
    )
    assert when(None) == "-"


def test_a_view_prints_hostile_text_escaped_in_a_table_and_a_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    view: View[str] = View("T", ("text",), lambda s: (s,), lambda s: {"text": s})
    view.table([HOSTILE], "1 entry")
    view.line(HOSTILE)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "\r" not in out
    assert out.count("\\x1b[2J") == 2 and out.count("\\u202eevil") == 2
    assert "[bold]x[/]" in out
