"""Case numbers (案号) in the format of the SPC's 2015 rules on case numbers (in force
since 2016-01-01): ``（year）court-abbreviation kind sequence 号``, e.g. ``（2016）京01执123号``.

- year: 1949 to the current year (China time);
- court abbreviation (法院代字): ``最高法`` for the SPC, a high court's character (the
  province's, but 内 for Inner Mongolia and 黔 for Guizhou; 军 military, 兵 the XPCC
  branch), optionally followed by 2 (intermediate) or 4 (basic, special) digits;
- kind (类型代字): one of :data:`CASE_KINDS`, at least every enforcement kind;
- sequence: 1-99999 (leading zeros are dropped).

Full-width and half-width brackets are accepted; the normalised form uses full-width
（）, no spaces. Older formats (e.g. ``(2014)朝执字第123号``) and criminal review cases
(刑核, 8-digit random sequence) are not accepted. Case numbers are public court
identifiers, so they are shown unmasked in messages.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from schemas.identifiers._text import Kind, fail, prepare
from schemas.identifiers.citizen import china_today
from schemas.regions import CASE_ABBR_CHARS

__all__ = [
    "CASE_KINDS",
    "ENFORCEMENT_KINDS",
    "MAX_CASE_SEQ",
    "CaseNumber",
    "normalise_case_number",
    "parse_case_number",
]

ENFORCEMENT_KINDS: Mapping[str, str] = MappingProxyType(
    {
        "执": "first enforcement (首次执行)",
        "执恢": "resumed enforcement (恢复执行)",
        "执保": "enforcement of property preservation (财产保全执行)",
        "执异": "enforcement objection (执行异议)",
        "执复": "enforcement reconsideration (执行复议)",
        "执监": "enforcement supervision (执行监督)",
        "执协": "enforcement coordination (执行协调)",
        "执请": "enforcement referral (执行请示)",
        "执他": "other enforcement (其他执行)",
    }
)
CASE_KINDS: Mapping[str, str] = MappingProxyType(
    {
        **ENFORCEMENT_KINDS,
        "民初": "civil first instance (民事一审)",
        "民终": "civil second instance (民事二审)",
        "民申": "civil retrial application (民事申请再审审查)",
        "民再": "civil retrial (民事再审)",
        "民特": "civil special procedure (民事特别程序)",
        "民督": "payment order (申请支付令审查)",
        "财保": "non-litigation property preservation (非诉财产保全审查)",
        "破": "bankruptcy (破产)",
        "刑初": "criminal first instance (刑事一审)",
        "刑终": "criminal second instance (刑事二审)",
        "刑更": "criminal sentence change (刑罚与执行变更)",
        "行初": "administrative first instance (行政一审)",
        "行终": "administrative second instance (行政二审)",
        "行审": "review of an administrative enforcement application (非诉行政行为申请执行审查)",
        "司惩": "judicial sanction (司法制裁审查), e.g. a detention decision",
        "司惩复": "judicial sanction reconsideration (司法制裁复议)",
    }
)
MAX_CASE_SEQ = 99999
FIRST_CASE_YEAR = 1949

_CASE = Kind("case number (案号)", "case_number", None)
_COURT_CHARS = "".join(CASE_ABBR_CHARS) + "军兵"
_CASE_RE = re.compile(
    r"\((?P<year>[0-9]{4})\)"
    rf"(?P<court>最高法|[{_COURT_CHARS}](?:[0-9]{{4}}|[0-9]{{2}})?)"
    r"(?P<kind>[\u4e00-\u9fff]{1,3}?)"
    r"(?P<seq>[0-9]{1,6})号"
)


@dataclass(frozen=True, slots=True)
class CaseNumber:
    """A parsed case number; ``str()`` gives the normalised form."""

    year: int
    court_abbr: str
    kind: str
    seq: int

    def __str__(self) -> str:
        return f"（{self.year}）{self.court_abbr}{self.kind}{self.seq}号"

    @property
    def is_enforcement(self) -> bool:
        """Whether the kind is an enforcement kind (执…)."""
        return self.kind in ENFORCEMENT_KINDS


def parse_case_number(
    value: object, field: str = "case_number", *, today: dt.date | None = None
) -> CaseNumber:
    """The parsed case number for ``value``, or :class:`IdentifierError`.

    Rules: ``case_number.format``, ``.year``, ``.kind``, ``.seq``, plus ``.required``,
    ``.type``, ``.characters``. (A court abbreviation outside the pattern fails
    ``.format``; whether it belongs to a given court is checked by
    :func:`schemas.identifiers.check_case_number_court`.)
    """
    text = prepare(value, field, _CASE).replace(" ", "")
    match = _CASE_RE.fullmatch(text)
    if match is None:
        reason = (
            "must read （year）court-abbreviation kind sequence 号, e.g. （2016）京01执123号, "
            "with a court abbreviation 最高法 or a high court's character and 0, 2 or 4 digits"
        )
        fail(_CASE, field, "format", reason, text)
    year, seq, kind = int(match["year"]), int(match["seq"]), match["kind"]
    current = (today or china_today()).year
    if not FIRST_CASE_YEAR <= year <= current:
        reason = f"year must be from {FIRST_CASE_YEAR} to {current}"
        fail(_CASE, field, "year", reason, text)
    if kind not in CASE_KINDS:
        reason = f"kind {kind!r} is not a known case kind (e.g. 执, 执恢, 执保, 执异, 民初)"
        fail(_CASE, field, "kind", reason, text)
    if not 1 <= seq <= MAX_CASE_SEQ:
        fail(_CASE, field, "seq", f"sequence must be from 1 to {MAX_CASE_SEQ}", text)
    return CaseNumber(year, match["court"], kind, seq)


def normalise_case_number(
    value: object, field: str = "case_number", *, today: dt.date | None = None
) -> str:
    """The normalised case number, e.g. ``（2016）京01执123号``; see :func:`parse_case_number`."""
    return str(parse_case_number(value, field, today=today))
