"""Citizen ID numbers: table tests for every rule, what python-stdnum does and does not do
for us, and Hypothesis properties against a reference generator written here from the
textbook formula (GB 11643: weights 2^(17-i) mod 11, check chars "10X98765432")."""

from __future__ import annotations

import datetime as dt
import pickle

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric
from stdnum.iso7064 import mod_11_2

from schemas.errors import BusError
from schemas.identifiers import (
    IdentifierError,
    birth_date_of,
    china_today,
    id_number_check_char,
    mask_id_number,
    normalise_id_number,
)

TODAY = dt.date(2026, 11, 27)

# ---- reference generator (independent of the code under test) ----
_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
_CHECK = "10X98765432"
_PROVINCES = [
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36",
    "37", "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62",
    "63", "64", "65", "71", "81", "82", "83",
]  # fmt: skip


def ref_check(first17: str) -> str:
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def ref_id(area: str, born: dt.date, seq: int) -> str:
    body = f"{area}{born:%Y%m%d}{seq:03d}"
    return body + ref_check(body)


areas = st.builds(
    lambda p, rest: p + rest,
    st.sampled_from(_PROVINCES),
    st.text("0123456789", min_size=4, max_size=4),
)
births = st.dates(dt.date(1900, 1, 1), TODAY)
id_numbers = st.builds(ref_id, areas, births, st.integers(0, 999))

CLASSIC = "11010519491231002X"  # the GB 11643 textbook example (Beijing Chaoyang, 1949)


def _norm(value: object, field: str = "subject.id_number") -> str:
    return normalise_id_number(value, field, today=TODAY)


def _rule(value: object) -> str:
    with pytest.raises(IdentifierError) as info:
        _norm(value)
    return info.value.rule


# ---- table tests ----
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (CLASSIC, CLASSIC),
        ("11010519491231002x", CLASSIC),  # lower-case check character
        ("  11010519491231002X\n", CLASSIC),  # surrounding whitespace
        ("110105 19491231 002X", CLASSIC),  # grouped with spaces
        ("１１０１０５１９４９１２３１００２Ｘ", CLASSIC),  # full-width digits and X
        ("\u3000１１０１０５１９４９１２３１００２ｘ\u3000", CLASSIC),  # ideographic spaces
        ("110105491231002", CLASSIC),  # legacy 15 digits -> 18
        ("１１０１０５４９１２３１００２", CLASSIC),  # full-width legacy
        # Pudong (310115) was created in 1993: a number issued there to someone born in
        # 1950 carries the newer code and must be accepted.
        (ref_id("310115", dt.date(1950, 1, 1), 2), ref_id("310115", dt.date(1950, 1, 1), 2)),
        # Taiwan residents' residence permits use 830000 (not a GB/T 2260 code).
        (ref_id("830000", dt.date(1990, 5, 1), 11), ref_id("830000", dt.date(1990, 5, 1), 11)),
        (ref_id("810000", dt.date(1990, 5, 1), 11), ref_id("810000", dt.date(1990, 5, 1), 11)),
        (ref_id("110101", dt.date(1900, 1, 1), 1), ref_id("110101", dt.date(1900, 1, 1), 1)),
        (ref_id("110101", TODAY, 1), ref_id("110101", TODAY, 1)),  # born today
    ],
)
def test_accepts_and_normalises(raw: str, expected: str) -> None:
    assert _norm(raw) == expected


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("11010519491231002", "id_number.length"),  # 17
        ("11010519491231002X1", "id_number.length"),  # 19
        ("1101051949123", "id_number.length"),
        ("110105194912310021", "id_number.check_char"),  # X expected
        ("A1010519491231002X", "id_number.format"),
        ("1101051949123100X2", "id_number.format"),  # X not last
        ("11010519491231002-", "id_number.format"),
        ("11010549123100A", "id_number.format"),  # legacy with a letter
        (ref_id("000000", dt.date(1990, 1, 1), 1), "id_number.area_code"),
        (ref_id("990000", dt.date(1990, 1, 1), 1), "id_number.area_code"),
        (ref_id("840000", dt.date(1990, 1, 1), 1), "id_number.area_code"),
        (ref_id("110105", dt.date(1899, 12, 31), 1), "id_number.birth_date"),
        (ref_id("110105", TODAY + dt.timedelta(days=1), 1), "id_number.birth_date"),
        (ref_id("110105", dt.date(2099, 1, 1), 1), "id_number.birth_date"),
        ("11010519490230" + "002" + ref_check("11010519490230002"), "id_number.birth_date"),
        ("11010519491301" + "002" + ref_check("11010519491301002"), "id_number.birth_date"),
        ("11010519491200" + "002" + ref_check("11010519491200002"), "id_number.birth_date"),
        ("110105490230002", "id_number.birth_date"),  # legacy, 1949-02-30
        (None, "id_number.required"),
        ("", "id_number.required"),
        ("   \t\n", "id_number.required"),
        ("\u3000\u3000", "id_number.required"),
        (11010519491231002, "id_number.type"),
        (b"11010519491231002X", "id_number.type"),
        ("1" * 10_000, "id_number.length"),
        ("1101051949\x001231002X", "id_number.characters"),  # NUL
        ("\u202e11010519491231002X", "id_number.characters"),  # RTL override
        ("11010519491231\u200b002X", "id_number.characters"),  # zero-width space
        ("110105194912310\u00002X", "id_number.characters"),
        ("11010519491231002X😀", "id_number.characters"),
        ("𝟏𝟏𝟎𝟏𝟎𝟓𝟏𝟗𝟒𝟗𝟏𝟐𝟑𝟏𝟎𝟎𝟐X", "id_number.characters"),  # maths digits: no NFKC
        ("①①0105194912310０2X", "id_number.characters"),  # circled digits
        ("1101051949123100\n2X", "id_number.characters"),  # inner newline
        ("11010519491231002X'; DROP TABLE x;--", "id_number.length"),
        ("$(rm -rf /)", "id_number.length"),
        ("11010519491231002;", "id_number.format"),
        ("11010519491231002X\x00", "id_number.characters"),
    ],
)
def test_rejects_with_rule(raw: object, rule: str) -> None:
    assert _rule(raw) == rule


def test_error_is_a_bus_error_and_value_error() -> None:
    with pytest.raises(BusError):
        _norm("x")
    with pytest.raises(ValueError):
        _norm("x")


def test_message_names_field_rule_and_masks_the_number() -> None:
    bad = "110105194912310021"
    with pytest.raises(IdentifierError) as info:
        _norm(bad, "subject.id_number")
    err = info.value
    text = str(err)
    assert err.field == "subject.id_number"
    assert err.rule == "id_number.check_char"
    assert text.startswith("subject.id_number '1101**********0021'")
    assert "id_number.check_char" in text
    assert "MOD 11-2" in text
    assert bad not in text
    assert "19491231" not in text  # the birth date is personal data too
    assert bad not in repr(err.args) and bad not in str(vars(err))


def test_message_masks_future_birth_and_never_reveals_the_date() -> None:
    number = ref_id("110105", dt.date(2099, 3, 4), 5)
    with pytest.raises(IdentifierError) as info:
        _norm(number, "order.subject.id_number")
    assert "order.subject.id_number" in str(info.value)
    assert "20990304" not in str(info.value)
    assert "future" in str(info.value)


def test_hostile_characters_are_escaped_in_messages() -> None:
    with pytest.raises(IdentifierError) as info:
        _norm("1101051949123100\u202e2X")
    assert "\u202e" not in str(info.value)
    assert "U+202E" in str(info.value)


def test_oversized_input_is_described_not_echoed() -> None:
    with pytest.raises(IdentifierError) as info:
        _norm("9" * 10_000)
    assert "<10000 characters>" in str(info.value)
    assert len(str(info.value)) < 300


def test_default_today_is_china_today() -> None:
    tomorrow = china_today() + dt.timedelta(days=1)
    with pytest.raises(IdentifierError, match="future"):
        normalise_id_number(ref_id("110105", tomorrow, 1))
    assert normalise_id_number(ref_id("110105", china_today(), 1))


def test_helpers() -> None:
    assert mask_id_number(CLASSIC) == "1101**********002X"
    assert birth_date_of(CLASSIC) == dt.date(1949, 12, 31)
    assert id_number_check_char(CLASSIC[:17]) == "X"


def test_error_pickles() -> None:
    with pytest.raises(IdentifierError) as info:
        _norm("110105194912310021", "f")
    again = pickle.loads(pickle.dumps(info.value))
    assert (again.field, again.rule, str(again)) == ("f", info.value.rule, str(info.value))


# ---- what python-stdnum does (and why we wrap it) ----
def test_stdnum_check_char_agrees_with_textbook_and_uppercases_x() -> None:
    assert ric.validate("11010519491231002x") == CLASSIC
    assert mod_11_2.calc_check_digit(CLASSIC[:17]) == "X"
    assert ric.calc_check_digit(CLASSIC) == "X"


def test_stdnum_accepts_future_and_pre_1900_births_so_we_check_them() -> None:
    future = ref_id("110105", dt.date(2099, 12, 31), 2)
    old = ref_id("110105", dt.date(1800, 12, 31), 2)
    assert ric.validate(future) == future
    assert ric.validate(old) == old
    assert _rule(future) == "id_number.birth_date"
    assert _rule(old) == "id_number.birth_date"


def test_stdnum_rejects_area_codes_newer_than_the_birth_so_we_do_not_use_it() -> None:
    # 310115 (Pudong New Area) exists from 1993; Changping District 110114 from 1999.
    for number in (
        ref_id("310115", dt.date(1950, 1, 1), 2),
        ref_id("110114", dt.date(1960, 1, 1), 2),
    ):
        with pytest.raises(stdnum_errors.InvalidComponent):
            ric.validate(number)
        assert _norm(number) == number


def test_stdnum_does_not_know_residence_permit_codes_nor_legacy_numbers() -> None:
    permit = ref_id("830000", dt.date(1990, 1, 1), 2)
    with pytest.raises(stdnum_errors.InvalidComponent):
        ric.validate(permit)
    with pytest.raises(stdnum_errors.InvalidLength):
        ric.validate("110105491231002")
    assert _norm(permit) == permit


@given(st.text("0123456789", min_size=17, max_size=17))
def test_stdnum_mod_11_2_matches_textbook(first17: str) -> None:
    assert mod_11_2.calc_check_digit(first17) == ref_check(first17)
    assert id_number_check_char(first17) == ref_check(first17)


# ---- properties ----
@settings(max_examples=300, deadline=None)
@given(id_numbers)
def test_every_reference_number_is_accepted_and_idempotent(number: str) -> None:
    assert _norm(number) == number
    assert _norm(_norm(number)) == number
    assert _norm(number.lower()) == number


@settings(deadline=None)
@given(id_numbers, st.data())
def test_full_width_and_spacing_normalise_to_the_same_number(
    number: str, data: st.DataObject
) -> None:
    wide = "".join(chr(ord(c) + 0xFEE0) if data.draw(st.booleans()) else c for c in number)
    padded = data.draw(st.sampled_from([" ", "\u3000", "\t", ""])) + wide + " "
    assert _norm(padded) == number


@settings(deadline=None)
@given(areas, st.dates(dt.date(1900, 1, 1), dt.date(1999, 12, 31)), st.integers(0, 999))
def test_legacy_15_digit_numbers_convert_to_their_18_digit_form(
    area: str, born: dt.date, seq: int
) -> None:
    legacy = f"{area}{born:%y%m%d}{seq:03d}"
    assert _norm(legacy) == ref_id(area, born, seq)


@settings(max_examples=500, deadline=None)
@given(id_numbers, st.integers(0, 17), st.sampled_from("0123456789X"))
def test_any_single_substitution_is_rejected(number: str, pos: int, char: str) -> None:
    # MOD 11-2 detects EVERY single-character substitution: each weight 2^k mod 11 is
    # non-zero and 11 is prime, so changing one value changes the sum mod 11. No filter.
    assume(number[pos] != char)
    corrupted = number[:pos] + char + number[pos + 1 :]
    with pytest.raises(IdentifierError):
        _norm(corrupted)


@settings(max_examples=300, deadline=None)
@given(id_numbers, st.integers(0, 16))
def test_any_adjacent_transposition_is_rejected(number: str, pos: int) -> None:
    # Adjacent weights differ mod 11 (ratio 2), so swapping two different values is seen.
    assume(number[pos] != number[pos + 1])
    swapped = number[:pos] + number[pos + 1] + number[pos] + number[pos + 2 :]
    with pytest.raises(IdentifierError):
        _norm(swapped)
