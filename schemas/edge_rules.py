"""The edge's plausibility rules for plain text and time, in one place.

Text rule: a *short text* field (a name, a title, a port, a document number: every
string field without an identifier rule that is not free text) refuses any character of
Unicode category Cc (controls, CR and LF included), Cf (format: U+200B ZERO WIDTH SPACE,
U+FEFF BOM, bidi overrides), Zl (U+2028), Zp (U+2029), Co (private use), Cs (surrogates)
and Cn (unassigned). A *free-text* field (:data:`FREE_TEXT_FIELDS`: reasons,
requirements, notes, details, addresses) may also hold LF and TAB, and nothing else of
those categories. Rule id ``text.characters``.

Time rule: every timestamp lies from :data:`EARLIEST_INSTANT` (1990-01-01 UTC) to now
plus its field's horizon in :data:`TIME_HORIZONS` (5 minutes unless listed: an issuance
or an observation cannot lie in the future beyond clock skew; scheduled ends may lie
years ahead). Rule ids ``time.too_early``, ``time.too_late``. A date of birth lies from
1900-01-01 to today (China time), rule ``date.birth_date``; a case's filing date and a
document's issue date from 1949-10-01 to today, rule ``date.court``.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType

from schemas.errors import IdentifierError
from schemas.identifiers import EARLIEST_BIRTH_DATE, china_today

__all__ = [
    "CLOCK_SKEW",
    "EARLIEST_INSTANT",
    "FREE_TEXT_FIELDS",
    "TIME_HORIZONS",
    "check_date",
    "check_instant",
    "check_text",
]

FREE_TEXT_FIELDS: frozenset[str] = frozenset(
    {
        "action_required",
        "address",
        "conduct_detail",
        "description",
        "detail",
        "hotel_address",
        "household_registration_place",
        "legal_basis",
        "note",
        "obligation",
        "police_requirements",
        "reason",
        "reason_detail",
        "refusal_reason",
        "result_detail",
    }
)
"""String fields (by name) that hold free text and may contain LF and TAB."""

_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})
_FREE_TEXT_ALLOWED = frozenset("\n\t")

EARLIEST_INSTANT = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
EARLIEST_COURT_DATE = dt.date(1949, 10, 1)
COURT_DATES: frozenset[str] = frozenset({"filing_date", "issued_on"})
"""Date fields (by name) that a court set in the past: a case's filing, a document's issue."""
CLOCK_SKEW = dt.timedelta(minutes=5)
_TEN_YEARS = dt.timedelta(days=3653)
TIME_HORIZONS: Mapping[str, dt.timedelta] = MappingProxyType(
    {
        "control_period_start": _TEN_YEARS,
        "control_period_end": _TEN_YEARS,
        "deadline": _TEN_YEARS,
        "acknowledge_by": _TEN_YEARS,
        "expected_check_out": _TEN_YEARS,
        "stays_until": _TEN_YEARS,
        "not_after": dt.timedelta(days=30 * 366),
    }
)
"""How far past now a timestamp field (by name) may lie; every other one: CLOCK_SKEW."""


def _field_name(path: str) -> str:
    return path.rsplit(".", 1)[-1].split("[", 1)[0]


def check_text(value: str, path: str) -> str:
    """``value`` if it keeps the text rule of its field (see module docstring)."""
    if value.isascii() and value.isprintable():
        return value
    free = _field_name(path) in FREE_TEXT_FIELDS
    for ch in value:
        if free and ch in _FREE_TEXT_ALLOWED:
            continue
        category = unicodedata.category(ch)
        if category in _REFUSED_CATEGORIES:
            name = unicodedata.name(ch, "unnamed")
            kind = "free-text" if free else "short text"
            reason = (
                f"contains U+{ord(ch):04X} ({name}, category {category}), which a {kind} "
                "field may not contain" + ("" if free else " (only free text may hold LF, TAB)")
            )
            raise IdentifierError(path, "text.characters", reason)
    return value


def check_instant(value: dt.datetime, path: str, now: dt.datetime) -> dt.datetime:
    """``value`` if it lies in its field's plausible range (see module docstring)."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value  # the schema validation refuses naive instants, naming the rule
    if value < EARLIEST_INSTANT:
        reason = f"{value.isoformat()} is before {EARLIEST_INSTANT.date().isoformat()}"
        raise IdentifierError(path, "time.too_early", reason)
    horizon = TIME_HORIZONS.get(_field_name(path), CLOCK_SKEW)
    if value > now + horizon:
        reason = f"{value.isoformat()} is more than {_describe(horizon)} after now"
        raise IdentifierError(path, "time.too_late", reason)
    return value


def check_date(value: dt.date, path: str) -> dt.date:
    """``value`` if a date of birth lies from 1900-01-01 to today, and a court's date (a
    case's filing, a document's issue: :data:`COURT_DATES`) from 1949-10-01 to today;
    other dates as given."""
    name = _field_name(path)
    if name == "birth_date" and not EARLIEST_BIRTH_DATE <= value <= china_today():
        reason = f"a date of birth must be from {EARLIEST_BIRTH_DATE.isoformat()} to today"
        raise IdentifierError(path, "date.birth_date", reason)
    if name in COURT_DATES and not EARLIEST_COURT_DATE <= value <= china_today():
        reason = (
            f"{value.isoformat()}: a court's {name.replace('_', ' ')} lies from "
            f"{EARLIEST_COURT_DATE.isoformat()} to today (China time)"
        )
        raise IdentifierError(path, "date.court", reason)
    return value


def _describe(horizon: dt.timedelta) -> str:
    if horizon >= dt.timedelta(days=365):
        return f"{round(horizon.days / 365.25)} years"
    return f"{int(horizon.total_seconds() // 60)} minutes"
