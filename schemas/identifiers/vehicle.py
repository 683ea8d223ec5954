"""Plate numbers (号牌号码, GA 36-2018) and VINs (车辆识别代号, GB 16735 / ISO 3779).

Plates handled (normalised form has no separators, upper case):

- ordinary: province character + issuing-authority letter (A-Z but I, O) + 5 characters
  of 0-9 and A-Z but I, O, e.g. ``京A12345``;
- small new-energy: + 6 characters, the first D (pure electric) or F (other new-energy),
  the second a digit or letter, the last four digits, e.g. ``京AD12345``;
- large new-energy: + 5 digits and then D or F, e.g. ``京A12345D``;
- suffixed: + 4 characters and 学 (coach), 警 (police), 挂 (trailer), 领 (consulate),
  or 港/澳 (cross-border, issued only as 粤Z), e.g. ``粤Z1234港``;
- embassy: 使 + 6 digits (embassy code and serial), e.g. ``使123456``.

Military (军/WJ), civil-aviation and emergency plates are not issued by public-security
traffic management and are out of scope. Plates have no check character, so only a typo
that leaves a position's alphabet is detectable.

VIN: 17 characters of 0-9 and A-Z but I, O, Q; position 9 is the check digit (0-9 or X)
over the transliterated values with weights 8,7,6,5,4,3,2,10,0,9,8,7,6,5,4,3,2, MOD 11,
which GB 16735 makes mandatory for vehicles registered in China. python-stdnum (2.2)
has no VIN module, so the rule is implemented here and tested against a reference.

Both identify a natural person's vehicle, so values are masked in messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import NoReturn

from schemas.identifiers._text import SEPARATORS, Kind, fail, prepare, strip_chars
from schemas.regions import PLATE_PROVINCE_CHARS

__all__ = [
    "PlateKind",
    "PlateNumber",
    "normalise_plate_number",
    "normalise_vin",
    "parse_plate_number",
    "vin_check_digit",
]

_PLATE = Kind("plate number (号牌号码)", "plate_number", (2, 2))
_VIN = Kind("VIN (车辆识别代号)", "vin", (3, 4))

_L = "A-HJ-NP-Z"  # letters without I and O
_PROVINCE = "[" + "".join(PLATE_PROVINCE_CHARS) + "]"


class PlateKind(StrEnum):
    """The plate formats of GA 36-2018 that this validator knows."""

    ORDINARY = "ordinary"
    NEW_ENERGY_SMALL = "new-energy-small"
    NEW_ENERGY_LARGE = "new-energy-large"
    SUFFIXED = "suffixed"
    EMBASSY = "embassy"


_PLATE_FORMATS: tuple[tuple[PlateKind, re.Pattern[str]], ...] = (
    (PlateKind.ORDINARY, re.compile(f"{_PROVINCE}[{_L}][0-9{_L}]{{5}}")),
    (PlateKind.NEW_ENERGY_SMALL, re.compile(f"{_PROVINCE}[{_L}][DF][0-9{_L}][0-9]{{4}}")),
    (PlateKind.NEW_ENERGY_LARGE, re.compile(f"{_PROVINCE}[{_L}][0-9]{{5}}[DF]")),
    (PlateKind.SUFFIXED, re.compile(f"{_PROVINCE}[{_L}][0-9{_L}]{{4}}[学警挂领]")),
    (PlateKind.SUFFIXED, re.compile(f"粤Z[0-9{_L}]{{4}}[港澳]")),
    (PlateKind.EMBASSY, re.compile("使[0-9]{6}")),
)


@dataclass(frozen=True, slots=True)
class PlateNumber:
    """A normalised plate number and its format; ``province`` is the GB/T 2260 code of
    the issuing province (None for embassy plates)."""

    text: str
    kind: PlateKind
    province: str | None

    def __str__(self) -> str:
        return self.text


def parse_plate_number(value: object, field: str = "plate_number") -> PlateNumber:
    """The parsed plate for ``value`` (full-width forms, spaces, middle dots and dashes
    removed, upper case), or :class:`IdentifierError`.

    Rules: ``plate_number.length`` (7 or 8 characters), ``.province`` (first character),
    ``.authority`` (second character), ``.format`` (the rest), plus ``.required``,
    ``.type``, ``.characters``.
    """
    text = strip_chars(prepare(value, field, _PLATE), SEPARATORS).upper()
    for kind, pattern in _PLATE_FORMATS:
        if pattern.fullmatch(text):
            prov = PLATE_PROVINCE_CHARS.get(text[0])
            return PlateNumber(text, kind, prov.code if prov else None)
    _explain_plate(text, field)


def normalise_plate_number(value: object, field: str = "plate_number") -> str:
    """The normalised plate number text, e.g. ``京AD12345``; see :func:`parse_plate_number`."""
    return parse_plate_number(value, field).text


def _explain_plate(text: str, field: str) -> NoReturn:
    if len(text) not in (7, 8):
        reason = f"has {len(text)} characters without separators; plates have 7 or 8"
        fail(_PLATE, field, "length", reason, text)
    if text[0] != "使" and text[0] not in PLATE_PROVINCE_CHARS:
        reason = "must start with a province character (京津沪渝...) or 使"
        fail(_PLATE, field, "province", reason, text)
    if text[0] != "使" and not re.fullmatch(f"[{_L}]", text[1]):
        reason = "second character must be the issuing authority's letter A-Z without I, O"
        fail(_PLATE, field, "authority", reason, text)
    reason = (
        "serial must be 5 characters of 0-9 and A-Z without I, O; or 6 for a new-energy "
        "plate (D/F first for small, last for large vehicles); or 4 and 学/警/挂/领 (港/澳 "
        "only on 粤Z)"
    )
    fail(_PLATE, field, "format", reason, text)


_VIN_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_VIN_RE = re.compile("[0-9A-HJ-NPR-Z]{8}[0-9X][0-9A-HJ-NPR-Z]{8}")


def vin_check_digit(vin: str) -> str:
    """The ISO 3779 / GB 16735 check digit for a 17-character VIN (position 9 ignored)."""
    total = sum(_VIN_VALUES[ch] * w for ch, w in zip(vin, _VIN_WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def normalise_vin(value: object, field: str = "vin") -> str:
    """The 17-character VIN in upper case, or :class:`IdentifierError`.

    Rules: ``vin.length``, ``vin.format`` (no I, O, Q; check position 0-9 or X),
    ``vin.check_digit``, plus ``.required``, ``.type``, ``.characters``.
    """
    text = strip_chars(prepare(value, field, _VIN), SEPARATORS).upper()
    if len(text) != 17:
        fail(_VIN, field, "length", f"has {len(text)} characters; it must have 17", text)
    if not _VIN_RE.fullmatch(text):
        reason = "must be 0-9 and A-Z without I, O, Q, with 0-9 or X in position 9"
        fail(_VIN, field, "format", reason, text)
    if text[8] != vin_check_digit(text):
        fail(_VIN, field, "check_digit", "position 9 does not match the ISO 3779 check", text)
    return text
