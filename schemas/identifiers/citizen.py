"""Citizen ID numbers (公民身份号码, GB 11643): 18 characters, ISO 7064 MOD 11-2 check
character, and conversion of legacy 15-digit numbers.

python-stdnum is used for the check character (``stdnum.iso7064.mod_11_2``) but not for
``stdnum.cn.ric.validate``, which (in 2.2) accepts birth dates in the future and before
1900, and rejects an area code that did not exist in the holder's birth year. Real numbers
carry the area code in force when the number was issued, which can be newer than the
birth date (e.g. Pudong, 310115, created 1993), so only the province-level part of the
area code is checked here. The tests pin each of these stdnum behaviours.
"""

from __future__ import annotations

import datetime as dt
import re

from stdnum.iso7064 import mod_11_2

from schemas.identifiers._text import Kind, fail, mask, prepare
from schemas.regions import ID_NUMBER_AREA_PREFIXES

__all__ = [
    "EARLIEST_BIRTH_DATE",
    "birth_date_of",
    "china_today",
    "id_number_check_char",
    "mask_id_number",
    "normalise_id_number",
]

EARLIEST_BIRTH_DATE = dt.date(1900, 1, 1)
_CHINA_TIME = dt.timezone(dt.timedelta(hours=8))
_ID = Kind("citizen ID number (公民身份号码)", "id_number", (4, 4))
_ID18 = re.compile(r"[0-9]{17}[0-9X]")
_ID15 = re.compile(r"[0-9]{15}")


def china_today() -> dt.date:
    """Today's date in China Standard Time (UTC+8), the calendar the numbers are in."""
    return dt.datetime.now(_CHINA_TIME).date()


def id_number_check_char(first17: str) -> str:
    """The MOD 11-2 check character ('0'-'9' or 'X') for the first 17 digits."""
    return str(mod_11_2.calc_check_digit(first17))


def mask_id_number(id_number: str) -> str:
    """A normalised ID number masked for display: ``1101**********123X``."""
    return mask(id_number, 4, 4)


def birth_date_of(id_number: str) -> dt.date:
    """The birth date embedded in a normalised 18-character ID number."""
    return dt.date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def normalise_id_number(
    value: object, field: str = "id_number", *, today: dt.date | None = None
) -> str:
    """The 18-character ID number (upper-case X) for ``value``, or :class:`IdentifierError`.

    Accepts full-width digits and spaces (NFKC), spaces inside the number, surrounding
    whitespace, a lower-case check character, and legacy 15-digit numbers (converted by
    inserting "19" before the two-digit birth year and computing the check character).
    Rules: ``id_number.length``, ``.format``, ``.check_char``, ``.area_code`` (province-
    level prefix only), ``.birth_date`` (a real date, from 1900-01-01, not after ``today``,
    which defaults to today in China), plus the common ``.required``, ``.type``,
    ``.characters``.
    """
    text = prepare(value, field, _ID).replace(" ", "").upper()
    if len(text) == 15:
        if not _ID15.fullmatch(text):
            fail(_ID, field, "format", "a 15-digit legacy number has digits only", text)
        body = text[:6] + "19" + text[6:]
        text = body + id_number_check_char(body)
    if len(text) != 18:
        reason = f"has {len(text)} characters; it must have 18 (or 15 for a legacy number)"
        fail(_ID, field, "length", reason, text)
    if not _ID18.fullmatch(text):
        reason = "must be 17 digits followed by a digit or X"
        fail(_ID, field, "format", reason, text)
    if text[17] != id_number_check_char(text[:17]):
        fail(_ID, field, "check_char", "check character does not match ISO 7064 MOD 11-2", text)
    if text[:2] not in ID_NUMBER_AREA_PREFIXES:
        reason = "area code does not start with a province-level code (GB/T 2260)"
        fail(_ID, field, "area_code", reason, text)
    _check_birth_date(text, field, today or china_today())
    return text


def _check_birth_date(text: str, field: str, today: dt.date) -> None:
    try:
        born = birth_date_of(text)
    except ValueError:
        fail(_ID, field, "birth_date", "embedded birth date is not a real calendar date", text)
    if born < EARLIEST_BIRTH_DATE:
        fail(_ID, field, "birth_date", "embedded birth date is before 1900-01-01", text)
    if born > today:
        fail(_ID, field, "birth_date", "embedded birth date is in the future", text)
