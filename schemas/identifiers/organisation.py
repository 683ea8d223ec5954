"""Unified social credit codes (统一社会信用代码, GB 32100-2015) and organisation codes
(组织机构代码, GB 11714-1997).

Credit code: 18 characters over the 31-character alphabet ``0-9 A-H J-N P-R T U W-Y``
(no I, O, Z, S, V). Position 1 is the registration authority (1-9 and the letters A, N, Y
published so far), position 2 the entity category (1-9), positions 3-8 the administrative
division (digits), 9-17 the entity's organisation code, 18 the check character (MOD 31,
weights 3^i mod 31). ``stdnum.cn.uscc.calc_check_digit`` computes that check correctly
and is used; ``stdnum.cn.uscc.validate`` is not, because (in 2.2) it demands digits in
positions 1-8 and so rejects real codes of authority N (agricultural collectives) and A.
The organisation code embedded in positions 9-17 is not re-checked: the credit code's
own check already detects every single-character error, and a second check would only
add a way to reject real codes registered before the organisation-code system.

Organisation code: 8 characters (digits or upper-case letters) and a check character
(0-9 or X; weights 3,7,9,10,5,8,4,2, MOD 11), usually written ``XXXXXXXX-X``; the
normalised form has no hyphen. Neither identifies a natural person, so values are shown
unmasked in messages.
"""

from __future__ import annotations

import re
import unicodedata

from stdnum.cn import uscc

from schemas.identifiers._text import (
    MAX_INPUT_CHARS,
    SEPARATORS,
    Kind,
    fail,
    prepare,
    strip_chars,
)

__all__ = [
    "CREDIT_CODE_ALPHABET",
    "credit_code_check_char",
    "normalise_credit_code",
    "normalise_organisation_code",
    "normalise_party_code",
    "organisation_code_check_char",
]

CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT = Kind("unified social credit code (统一社会信用代码)", "credit_code", None)
_ORG = Kind("organisation code (组织机构代码)", "organisation_code", None)
_CREDIT_RE = re.compile(r"[1-9ANY][1-9][0-9]{6}[0-9A-HJ-NP-RTUW-Y]{10}")
_ORG_RE = re.compile(r"[0-9A-Z]{8}[0-9X]")
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def credit_code_check_char(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters of a credit code."""
    return str(uscc.calc_check_digit(first17))


def organisation_code_check_char(first8: str) -> str:
    """The GB 11714 check character ('0'-'9' or 'X') for the 8-character body."""
    total = sum(int(ch, 36) * w for ch, w in zip(first8, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def normalise_credit_code(value: object, field: str = "credit_code") -> str:
    """The 18-character credit code (upper case, no separators), or an error.

    Rules: ``credit_code.length``, ``.format`` (alphabet and the structure of positions
    1-8), ``.check_char``, plus ``.required``, ``.type``, ``.characters``.
    """
    text = strip_chars(prepare(value, field, _CREDIT), SEPARATORS).upper()
    if len(text) != 18:
        fail(_CREDIT, field, "length", f"has {len(text)} characters; it must have 18", text)
    if not _CREDIT_RE.fullmatch(text):
        reason = (
            "must be an authority code (1-9, A, N, Y), a category digit 1-9, six digits, "
            "then ten characters of 0-9 A-Z without I, O, Z, S, V"
        )
        fail(_CREDIT, field, "format", reason, text)
    if text[17] != credit_code_check_char(text[:17]):
        fail(_CREDIT, field, "check_char", "check character does not match GB 32100", text)
    return text


def normalise_organisation_code(value: object, field: str = "organisation_code") -> str:
    """The 9-character organisation code (upper case, no hyphen), or an error.

    Rules: ``organisation_code.length``, ``.format``, ``.check_char``, plus the common
    ``.required``, ``.type``, ``.characters``.
    """
    text = strip_chars(prepare(value, field, _ORG), SEPARATORS).upper()
    if len(text) != 9:
        fail(_ORG, field, "length", f"has {len(text)} characters; it must have 9", text)
    if not _ORG_RE.fullmatch(text):
        reason = "must be 8 digits or letters A-Z followed by a check character 0-9 or X"
        fail(_ORG, field, "format", reason, text)
    if text[8] != organisation_code_check_char(text[:8]):
        fail(_ORG, field, "check_char", "check character does not match GB 11714", text)
    return text


def normalise_party_code(value: object, field: str = "organisation_code") -> str:
    """An 18-character unified social credit code, or a 9-character organisation code.

    An organisation code is customarily written ``XXXXXXXX-X``: separators do not count
    towards the length, and a value written with a hyphen that is not 18 characters
    long without separators is judged by the organisation-code rule.
    """
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and len(text) <= MAX_INPUT_CHARS:
        folded = unicodedata.normalize("NFKC", text)
        compact = strip_chars(folded, SEPARATORS)
        if len(compact) <= 9 or ("-" in folded and len(compact) != 18):
            return normalise_organisation_code(text, field)
    if isinstance(text, str) and len(text) > 9:
        return normalise_credit_code(text, field)
    return normalise_organisation_code(text, field)
