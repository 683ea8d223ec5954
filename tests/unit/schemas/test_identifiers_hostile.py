"""Every identifier rule against the same hostile inputs: each is refused with an
:class:`IdentifierError` whose message names the field and a rule of that identifier,
shows no raw control character, stays short, and never echoes a personal value."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from schemas.identifiers import (
    IdentifierError,
    normalise_agency_code,
    normalise_case_number,
    normalise_court_code,
    normalise_credit_code,
    normalise_id_number,
    normalise_organisation_code,
    normalise_phone,
    normalise_plate_number,
    normalise_uuid,
    normalise_vin,
)

Normaliser = Callable[[object, str], str]

# (normaliser, rule prefix, a valid value, personal data?)
RULES: list[tuple[Normaliser, str, str, bool]] = [
    (normalise_id_number, "id_number", "11010519491231002X", True),
    (normalise_credit_code, "credit_code", "91110000600037341L", False),
    (normalise_organisation_code, "organisation_code", "600037341", False),
    (normalise_plate_number, "plate_number", "京A12345", True),
    (normalise_vin, "vin", "1M8GDM9AXKP042788", True),
    (normalise_case_number, "case_number", "（2016）京01执123号", False),
    (normalise_phone, "phone", "13812345678", True),
    (normalise_court_code, "court_code", "BJ01", False),
    (normalise_agency_code, "agency_code", "110000230000", False),
    (normalise_uuid, "uuid", "5d6a1c2e-0b1a-4c6b-9e55-1b2c3d4e5f60", False),
]

HOSTILE: list[object] = [
    None,
    "",
    " \t\r\n ",
    0,
    3.14,
    ["11010519491231002X"],
    b"BJ01",
    "x" * 10_000,
    "\x00",
    "\x1b[31m",
    "\u202e",
    "\u200b",
    "\ufeff",
    "😀",
    "'; DROP TABLE subjects; --",
    "$(rm -rf /)",
    "`id`",
    "| cat /etc/passwd",
    "<script>alert(1)</script>",
    "%00%0a",
    "../../etc/passwd",
    "\ud800",  # lone surrogate
]


def _ids(rule: tuple[Normaliser, str, str, bool]) -> str:
    return rule[1]


@pytest.mark.parametrize("rule", RULES, ids=_ids)
def test_the_valid_example_passes(rule: tuple[Normaliser, str, str, bool]) -> None:
    normalise, _, valid, _ = rule
    assert normalise(valid, "f") == normalise(normalise(valid, "f"), "f")


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
@pytest.mark.parametrize("rule", RULES, ids=_ids)
def test_hostile_values_are_refused_cleanly(
    rule: tuple[Normaliser, str, str, bool], value: object
) -> None:
    normalise, prefix, _, _ = rule
    with pytest.raises(IdentifierError) as info:
        normalise(value, "event.subject.field")
    err = info.value
    text = str(err)
    assert err.field == "event.subject.field"
    assert err.rule.startswith(prefix + ".")
    assert text.startswith("event.subject.field")
    assert f"[rule {err.rule}]" in text
    assert len(text) < 400
    assert all(ch.isprintable() for ch in text), text


@pytest.mark.parametrize("rule", [r for r in RULES if r[3]], ids=_ids)
def test_personal_values_never_appear_whole_in_messages(
    rule: tuple[Normaliser, str, str, bool],
) -> None:
    normalise, _, valid, _ = rule
    # The valid value with a trailing disallowed symbol, and with one character changed
    # to break its rule: either way the message must not carry the value.
    for broken in (valid + "#", valid[:-1] + "#", valid + valid[-1]):
        with pytest.raises(IdentifierError) as info:
            normalise(broken, "subject.x")
        assert valid not in str(info.value)
        assert valid[2:-2] not in str(info.value)
        assert info.value.shown is None or "*" in info.value.shown
