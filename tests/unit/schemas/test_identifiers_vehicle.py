"""Plate numbers (GA 36-2018) and VINs (ISO 3779 / GB 16735): table tests and properties
against reference generators written here."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from schemas.identifiers import (
    IdentifierError,
    PlateKind,
    normalise_plate_number,
    normalise_vin,
    parse_plate_number,
    vin_check_digit,
)

# ---- reference generators ----
PROVINCE_CHARS = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I, O
DIGITS = "0123456789"
ALNUM = DIGITS + LETTERS


def _txt(alphabet: str, n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=n, max_size=n)


ordinary = st.builds(
    lambda p, a, s: p + a + s,
    st.sampled_from(PROVINCE_CHARS),
    st.sampled_from(LETTERS),
    _txt(ALNUM, 5),
)
small_nev = st.builds(
    lambda p, a, df, x, s: p + a + df + x + s,
    st.sampled_from(PROVINCE_CHARS),
    st.sampled_from(LETTERS),
    st.sampled_from("DF"),
    st.sampled_from(ALNUM),
    _txt(DIGITS, 4),
)
large_nev = st.builds(
    lambda p, a, s, df: p + a + s + df,
    st.sampled_from(PROVINCE_CHARS),
    st.sampled_from(LETTERS),
    _txt(DIGITS, 5),
    st.sampled_from("DF"),
)
plates = st.one_of(ordinary, small_nev, large_nev)

# ISO 3779 transliteration, written out: letters count on from 1, skipping I, O, Q.
_TRANSLIT = {
    **dict(zip("ABCDEFGH", "12345678", strict=True)),
    **dict(zip("JKLMNPR", "1234579", strict=True)),
    **dict(zip("STUVWXYZ", "23456789", strict=True)),
    **{d: d for d in DIGITS},
}
_VIN_WEIGHTS = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]
VIN_CHARS = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"  # no I, O, Q


def ref_vin(sixteen: str) -> str:
    draft = sixteen[:8] + "0" + sixteen[8:]
    total = sum(int(_TRANSLIT[c]) * w for c, w in zip(draft, _VIN_WEIGHTS, strict=True))
    check = "X" if total % 11 == 10 else str(total % 11)
    return draft[:8] + check + draft[9:]


vins = _txt(VIN_CHARS, 16).map(ref_vin)


def _plate_rule(value: object) -> str:
    with pytest.raises(IdentifierError) as info:
        normalise_plate_number(value, "vehicle.plate_number")
    assert "vehicle.plate_number" in str(info.value)
    return info.value.rule


def _vin_rule(value: object) -> str:
    with pytest.raises(IdentifierError) as info:
        normalise_vin(value, "vehicle.vin")
    assert "vehicle.vin" in str(info.value)
    return info.value.rule


# ---- plates ----
@pytest.mark.parametrize(
    ("raw", "expected", "kind"),
    [
        ("京A12345", "京A12345", PlateKind.ORDINARY),
        ("京A·12345", "京A12345", PlateKind.ORDINARY),
        ("京 a 1234b", "京A1234B", PlateKind.ORDINARY),
        ("京Ａ１２３４５", "京A12345", PlateKind.ORDINARY),  # full-width
        ("京Ａ・１２３４５", "京A12345", PlateKind.ORDINARY),  # katakana middle dot
        ("京A-12345", "京A12345", PlateKind.ORDINARY),
        ("\u3000沪B•C1234 ", "沪BC1234", PlateKind.ORDINARY),
        ("京AD12345", "京AD12345", PlateKind.NEW_ENERGY_SMALL),
        ("粤BFA1234", "粤BFA1234", PlateKind.NEW_ENERGY_SMALL),
        ("粤B·DA1234", "粤BDA1234", PlateKind.NEW_ENERGY_SMALL),
        ("沪A12345D", "沪A12345D", PlateKind.NEW_ENERGY_LARGE),
        ("沪A12345f", "沪A12345F", PlateKind.NEW_ENERGY_LARGE),
        ("京A1234学", "京A1234学", PlateKind.SUFFIXED),
        ("京A·1234警", "京A1234警", PlateKind.SUFFIXED),
        ("冀B1234挂", "冀B1234挂", PlateKind.SUFFIXED),
        ("沪A1234领", "沪A1234领", PlateKind.SUFFIXED),
        ("粤Z·1234港", "粤Z1234港", PlateKind.SUFFIXED),
        ("粤Z1234澳", "粤Z1234澳", PlateKind.SUFFIXED),
        ("使123456", "使123456", PlateKind.EMBASSY),
    ],
)
def test_plate_accepts(raw: str, expected: str, kind: PlateKind) -> None:
    plate = parse_plate_number(raw)
    assert (plate.text, plate.kind, str(plate)) == (expected, kind, expected)
    assert normalise_plate_number(raw) == expected


def test_plate_province() -> None:
    assert parse_plate_number("粤B12345").province == "44"
    assert parse_plate_number("蒙A12345").province == "15"
    assert parse_plate_number("使123456").province is None


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("京A1234", "plate_number.length"),
        ("京A1234567", "plate_number.length"),
        ("A12345", "plate_number.length"),
        ("港A12345", "plate_number.province"),
        ("AA123456", "plate_number.province"),
        ("内A12345", "plate_number.province"),  # 内 is Inner Mongolia's case char, not plate
        ("京I12345", "plate_number.authority"),
        ("京O12345", "plate_number.authority"),
        ("京112345", "plate_number.authority"),
        ("京A1234O", "plate_number.format"),
        ("京AI2345", "plate_number.format"),
        ("京AA12345", "plate_number.format"),  # 6-char serial not starting D/F
        ("京AD1234A", "plate_number.format"),  # small NEV: last four digits
        ("京A1234AD", "plate_number.format"),  # large NEV: first five digits
        ("京A1234港", "plate_number.format"),  # 港 only on 粤Z
        ("粤B1234澳", "plate_number.format"),
        ("京A12345警", "plate_number.format"),
        ("使12345A", "plate_number.format"),
        (None, "plate_number.required"),
        ("", "plate_number.required"),
        (" · ", "plate_number.length"),
        (12345, "plate_number.type"),
        ("京" * 10_000, "plate_number.length"),
        ("京A\x0012345", "plate_number.characters"),
        ("京A12345\u202e", "plate_number.characters"),
        ("京A1234🚗", "plate_number.characters"),
        ("京A1234;", "plate_number.format"),
        ("京A$(ls)", "plate_number.format"),
        ("京A12345'--", "plate_number.format"),
        ("京A１２３４\u2460", "plate_number.characters"),  # circled digit
    ],
)
def test_plate_rejects(raw: object, rule: str) -> None:
    assert _plate_rule(raw) == rule


def test_plate_message_masks_the_plate() -> None:
    with pytest.raises(IdentifierError) as info:
        normalise_plate_number("京A1234O", "vehicle.plate_number")
    text = str(info.value)
    assert "京A***4O" in text and "京A1234O" not in text
    assert "[rule plate_number.format]" in text


@settings(max_examples=300, deadline=None)
@given(plates)
def test_every_reference_plate_is_accepted_and_idempotent(plate: str) -> None:
    assert normalise_plate_number(plate) == plate
    assert normalise_plate_number(normalise_plate_number(plate)) == plate


@settings(deadline=None)
@given(plates, st.sampled_from(["·", " ", "・", "-", "\u3000", ""]), st.booleans())
def test_separators_case_and_full_width_normalise_away(plate: str, sep: str, wide: bool) -> None:
    shown = plate[:2] + sep + plate[2:].lower()
    if wide:
        shown = "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c != " " else c for c in shown)
    assert normalise_plate_number(shown) == plate


@settings(max_examples=300, deadline=None)
@given(plates, st.integers(0, 7), st.data())
def test_single_corruptions_leaving_a_positions_alphabet_are_rejected(
    plate: str, pos: int, data: st.DataObject
) -> None:
    # Plates have no check character: a substitution that stays inside the position's
    # alphabet is just another valid plate and CANNOT be detected. A substitution with a
    # character no plate may have in that position (I, O, a non-province ideograph, a
    # symbol) is rejected.
    assume(pos < len(plate))
    if pos == 0:
        char = data.draw(st.sampled_from("中国人A1港台使"))
    else:
        char = data.draw(st.sampled_from("IO#中!"))
    with pytest.raises(IdentifierError):
        normalise_plate_number(plate[:pos] + char + plate[pos + 1 :])


# ---- VINs ----
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1M8GDM9AXKP042788", "1M8GDM9AXKP042788"),  # the ISO 3779 textbook example
        ("1m8gdm9axkp042788", "1M8GDM9AXKP042788"),
        (" 1M8GDM9AXKP042788\n", "1M8GDM9AXKP042788"),
        ("１Ｍ８ＧＤＭ９ＡＸＫＰ０４２７８８", "1M8GDM9AXKP042788"),
        ("11111111111111111", "11111111111111111"),
    ],
)
def test_vin_accepts(raw: str, expected: str) -> None:
    assert normalise_vin(raw) == expected


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("1M8GDM9A1KP042788", "vin.check_digit"),
        ("1M8GDM9AXKP04278", "vin.length"),
        ("1M8GDM9AXKP0427888", "vin.length"),
        ("1M8GDM9AXKP0427I8", "vin.format"),
        ("1M8GDM9AXKP0427O8", "vin.format"),
        ("QM8GDM9AXKP042788", "vin.format"),
        ("1M8GDM9AYKP042788", "vin.format"),  # check position must be 0-9 or X
        ("1M8GDM9AXKP04278;", "vin.format"),
        (None, "vin.required"),
        ("", "vin.required"),
        (17, "vin.type"),
        ("1" * 10_000, "vin.length"),
        ("1M8GDM9AXKP0427\x0088", "vin.characters"),
        ("\u202e1M8GDM9AXKP042788", "vin.characters"),
        ("1M8GDM9AXKP04278🚗", "vin.characters"),
        ("'; DROP TABLE v; --", "vin.length"),
    ],
)
def test_vin_rejects(raw: object, rule: str) -> None:
    assert _vin_rule(raw) == rule


def test_vin_message_masks_the_vin() -> None:
    with pytest.raises(IdentifierError) as info:
        normalise_vin("1M8GDM9A1KP042788", "vehicle.vin")
    text = str(info.value)
    assert "1M8**********2788" in text and "1M8GDM9A1KP042788" not in text
    assert "[rule vin.check_digit]" in text


@given(_txt(VIN_CHARS, 16))
def test_vin_check_digit_matches_reference(sixteen: str) -> None:
    vin = ref_vin(sixteen)
    assert vin_check_digit(vin) == vin[8]


@settings(max_examples=300, deadline=None)
@given(vins)
def test_every_reference_vin_is_accepted_and_idempotent(vin: str) -> None:
    assert normalise_vin(vin) == vin
    assert normalise_vin(vin.lower()) == vin
    assert normalise_vin(normalise_vin(vin)) == vin


@settings(max_examples=500, deadline=None)
@given(vins, st.integers(0, 16), st.sampled_from(VIN_CHARS + "IOQ-"))
def test_single_substitutions_in_a_vin(vin: str, pos: int, char: str) -> None:
    assume(vin[pos] != char)
    # Undetectable, and filtered out: outside position 9, a character with the SAME
    # transliterated value (A/J/1, B/K/S/2, ... share values): the weighted sum does not
    # change. Every other substitution is detected: all weights but position 9's are
    # non-zero mod 11 and values differ by at most 9; position 9 is compared literally.
    same_value = char in _TRANSLIT and _TRANSLIT[char] == _TRANSLIT[vin[pos]]
    assume(pos == 8 or not same_value)
    with pytest.raises(IdentifierError):
        normalise_vin(vin[:pos] + char + vin[pos + 1 :])
