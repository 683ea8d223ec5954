"""Phone numbers: mobile and landline normal forms, prefixes, extensions, masking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.identifiers import IdentifierError, mask_phone, normalise_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13812345678", "13812345678"),
        ("138 1234 5678", "13812345678"),
        ("138-1234-5678", "13812345678"),
        ("+8613812345678", "13812345678"),
        ("+86 138 1234 5678", "13812345678"),
        ("0086-13812345678", "13812345678"),
        ("8613812345678", "13812345678"),
        ("１３８１２３４５６７８", "13812345678"),
        ("＋８６　１３８１２３４５６７８", "13812345678"),
        ("19912345678", "19912345678"),
        ("010-12345678", "010-12345678"),
        ("01012345678", "010-12345678"),
        ("(010) 6512 3456", "010-65123456"),
        ("0755-1234567", "0755-1234567"),
        ("0755-12345678", "0755-12345678"),
        ("020 8888 6666", "020-88886666"),
        ("+86 10 12345678", "010-12345678"),
        ("+86-755-1234567", "0755-1234567"),
        ("0086 (0)10 12345678", "010-12345678"),
        ("010-12345678-8001", "010-12345678-8001"),
        ("010-12345678转8001", "010-12345678-8001"),
        ("010-12345678 ext. 12", "010-12345678-12"),
        ("0755-1234567 x3", "0755-1234567-3"),
        ("0755-1234567-8", "0755-1234567-8"),  # a last hyphenated group is an extension
    ],
)
def test_phone_accepts(raw: str, expected: str) -> None:
    assert normalise_phone(raw, "order.handler_phone") == expected
    assert normalise_phone(expected) == expected


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("12812345678", "phone.format"),  # 12x is not a mobile prefix
        ("1381234567", "phone.format"),
        ("138123456789", "phone.format"),
        ("12345678", "phone.area_code"),
        ("6512345", "phone.area_code"),
        ("12368", "phone.format"),  # court service hotline: not a person's phone
        ("110", "phone.format"),
        ("4008123123", "phone.format"),
        ("010-0123456", "phone.format"),  # local number starting 0
        ("010-123456789", "phone.format"),
        ("13812345678转1", "phone.format"),
        ("+1 415 555 0100", "phone.format"),
        ("138abc45678", "phone.format"),
        ("138;12345678", "phone.format"),
        ("$(reboot)", "phone.format"),
        (None, "phone.required"),
        ("", "phone.required"),
        (13812345678, "phone.type"),
        ("1" * 10_000, "phone.length"),
        ("138\x0012345678", "phone.characters"),
        ("\u202e13812345678", "phone.characters"),
        ("13812345678📞", "phone.characters"),
    ],
)
def test_phone_rejects(raw: object, rule: str) -> None:
    with pytest.raises(IdentifierError) as info:
        normalise_phone(raw, "order.handler_phone")
    assert info.value.rule == rule
    assert str(info.value).startswith("order.handler_phone")


def test_phone_message_masks_the_number() -> None:
    with pytest.raises(IdentifierError) as info:
        normalise_phone("138123456789", "order.handler_phone")
    text = str(info.value)
    assert "138123456789" not in text
    assert "'138*****6789'" in text


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13812345678", "138****5678"),
        ("010-12345678", "010-****5678"),
        ("0755-1234567", "0755-***4567"),
        ("010-12345678-8001", "010-****5678-8001"),
    ],
)
def test_mask_phone(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


mobiles = st.builds(
    lambda second, rest: "1" + second + rest,
    st.sampled_from("3456789"),
    st.text("0123456789", min_size=9, max_size=9),
)


@settings(max_examples=200, deadline=None)
@given(mobiles, st.sampled_from(["", "+86", "+86 ", "0086", "0086-", "86"]), st.booleans())
def test_every_mobile_normalises_to_its_11_digits(mobile: str, prefix: str, grouped: bool) -> None:
    shown = f"{mobile[:3]} {mobile[3:7]} {mobile[7:]}" if grouped else mobile
    assert normalise_phone(prefix + shown) == mobile
    assert normalise_phone(normalise_phone(prefix + shown)) == mobile
