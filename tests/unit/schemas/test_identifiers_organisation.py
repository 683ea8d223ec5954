"""Unified social credit codes (GB 32100) and organisation codes (GB 11714): table tests,
python-stdnum's behaviour, and properties against reference generators written here."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from stdnum import exceptions as stdnum_errors
from stdnum.cn import uscc

from schemas.identifiers import (
    IdentifierError,
    credit_code_check_char,
    normalise_credit_code,
    normalise_organisation_code,
    organisation_code_check_char,
)

# ---- reference generators ----
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 characters: no I, O, Z, S, V
_USCC_WEIGHTS = [pow(3, i, 31) for i in range(17)]


def ref_uscc_check(first17: str) -> str:
    total = sum(ALPHABET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return ALPHABET[-total % 31]


def ref_uscc(first17: str) -> str:
    return first17 + ref_uscc_check(first17)


_ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]
_VALUES = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}


def ref_org_check(body: str) -> str:
    c = 11 - sum(_VALUES[ch] * w for ch, w in zip(body, _ORG_WEIGHTS, strict=True)) % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


credit_codes = st.builds(
    lambda a, b, region, rest: ref_uscc(a + b + region + rest),
    st.sampled_from("123456789ANY"),
    st.sampled_from("123456789"),
    st.text("0123456789", min_size=6, max_size=6),
    st.text(ALPHABET, min_size=9, max_size=9),
)
org_bodies = st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=8, max_size=8)
org_codes = org_bodies.map(lambda b: b + ref_org_check(b))


def _credit_rule(value: object) -> str:
    with pytest.raises(IdentifierError) as info:
        normalise_credit_code(value, "party.credit_code")
    assert "party.credit_code" in str(info.value)
    return info.value.rule


def _org_rule(value: object) -> str:
    with pytest.raises(IdentifierError) as info:
        normalise_organisation_code(value, "party.organisation_code")
    assert "party.organisation_code" in str(info.value)
    return info.value.rule


# ---- credit codes ----
AGRICULTURAL = ref_uscc("N2110105MA0000001")  # authority N (农业): a letter in position 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("91110000600037341L", "91110000600037341L"),  # python-stdnum's documented example
        ("91110000600037341l", "91110000600037341L"),
        (" 9 1 110000 600037341L ", "91110000600037341L"),
        ("911100-00600037341L", "91110000600037341L"),
        ("９１１１００００６０００３７３４１Ｌ", "91110000600037341L"),
        ("91350100M000100Y43", "91350100M000100Y43"),
        (AGRICULTURAL, AGRICULTURAL),
    ],
)
def test_credit_code_accepts(raw: str, expected: str) -> None:
    assert normalise_credit_code(raw) == expected


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("91110000600037341", "credit_code.length"),
        ("91110000600037341LL", "credit_code.length"),
        ("91110000600037341M", "credit_code.check_char"),
        ("01110000600037341L", "credit_code.format"),  # authority 0
        ("B1110000600037341L", "credit_code.format"),  # unpublished authority
        ("90110000600037341L", "credit_code.format"),  # category 0
        ("9111000060003734IL", "credit_code.format"),  # I not in the alphabet
        ("91110000600037341O", "credit_code.format"),
        ("9111000S600037341L", "credit_code.format"),  # region must be digits
        (None, "credit_code.required"),
        ("", "credit_code.required"),
        (91110000600037341, "credit_code.type"),
        ("9" * 10_000, "credit_code.length"),
        ("91110000\x00600037341L", "credit_code.characters"),
        ("\u202e91110000600037341L", "credit_code.characters"),
        ("91110000600037341L🏢", "credit_code.characters"),
        ("9111000060003734;L", "credit_code.format"),
        ("' OR 1=1 --", "credit_code.length"),
    ],
)
def test_credit_code_rejects(raw: object, rule: str) -> None:
    assert _credit_rule(raw) == rule


def test_credit_code_message_shows_the_public_code_and_rule() -> None:
    with pytest.raises(IdentifierError) as info:
        normalise_credit_code("91110000600037341M", "party.credit_code")
    text = str(info.value)
    assert "'91110000600037341M'" in text  # an organisation's code is not personal data
    assert "[rule credit_code.check_char]" in text and "GB 32100" in text


def test_stdnum_uscc_check_is_right_but_validate_rejects_letter_authorities() -> None:
    assert uscc.calc_check_digit("91110000600037341") == "L"
    assert uscc.validate("91110000600037341l") == "91110000600037341L"
    with pytest.raises(stdnum_errors.InvalidFormat):
        uscc.validate(AGRICULTURAL)
    assert normalise_credit_code(AGRICULTURAL) == AGRICULTURAL


@given(st.text(ALPHABET, min_size=17, max_size=17))
def test_stdnum_uscc_check_matches_reference(first17: str) -> None:
    assert uscc.calc_check_digit(first17) == ref_uscc_check(first17)
    assert credit_code_check_char(first17) == ref_uscc_check(first17)


@settings(max_examples=300, deadline=None)
@given(credit_codes)
def test_every_reference_credit_code_is_accepted_and_idempotent(code: str) -> None:
    assert normalise_credit_code(code) == code
    assert normalise_credit_code(normalise_credit_code(code)) == code
    assert normalise_credit_code(code.lower()) == code


@settings(max_examples=500, deadline=None)
@given(credit_codes, st.integers(0, 17), st.sampled_from(ALPHABET + "IOZSV"))
def test_any_single_substitution_in_a_credit_code_is_rejected(
    code: str, pos: int, char: str
) -> None:
    # GB 32100 detects every single substitution within the alphabet: weights 3^i mod 31
    # are non-zero and 31 is prime; I, O, Z, S, V fail the alphabet. No filter.
    assume(code[pos] != char)
    with pytest.raises(IdentifierError):
        normalise_credit_code(code[:pos] + char + code[pos + 1 :])


# ---- organisation codes ----
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12345678-8", "123456788"),  # textbook example
        ("123456788", "123456788"),
        ("60003734-1", "600037341"),  # embedded in 91110000600037341L
        ("m000100y-4", "M000100Y4"),  # embedded in 91350100M000100Y43
        ("１２３４５６７８－８", "123456788"),
        (" 12345678 - 8 ", "123456788"),
    ],
)
def test_organisation_code_accepts(raw: str, expected: str) -> None:
    assert normalise_organisation_code(raw) == expected


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("12345678-9", "organisation_code.check_char"),
        ("12345678", "organisation_code.length"),
        ("12345678-88", "organisation_code.length"),
        ("1234567#-8", "organisation_code.format"),
        ("12345678-A", "organisation_code.format"),
        (None, "organisation_code.required"),
        ("-", "organisation_code.length"),
        ("1" * 10_000, "organisation_code.length"),
        ("12345678\x00-8", "organisation_code.characters"),
        ("12345678-8\u202e", "organisation_code.characters"),
    ],
)
def test_organisation_code_rejects(raw: object, rule: str) -> None:
    assert _org_rule(raw) == rule


@settings(max_examples=300, deadline=None)
@given(org_bodies)
def test_organisation_check_matches_reference(body: str) -> None:
    assert organisation_code_check_char(body) == ref_org_check(body)


@settings(max_examples=300, deadline=None)
@given(org_codes)
def test_every_reference_organisation_code_is_accepted_and_idempotent(code: str) -> None:
    assert normalise_organisation_code(code) == code
    assert normalise_organisation_code(f"{code[:8]}-{code[8]}") == code
    assert normalise_organisation_code(normalise_organisation_code(code)) == code


@settings(max_examples=500, deadline=None)
@given(org_codes, st.integers(0, 8), st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
def test_single_substitutions_in_an_organisation_code(code: str, pos: int, char: str) -> None:
    assume(code[pos] != char)
    corrupted = code[:pos] + char + code[pos + 1 :]
    # GB 11714 sums values 0-35 MOD 11: replacing a body character by one whose value
    # differs by a multiple of 11 (0/B/M/X, 1/C/N/Y, ...) leaves the sum unchanged and
    # CANNOT be detected; those are filtered out. Everything else is rejected.
    assume(pos == 8 or (_VALUES[char] - _VALUES[code[pos]]) % 11 != 0)
    with pytest.raises(IdentifierError):
        normalise_organisation_code(corrupted)
