"""Subject match keys: HMAC-SHA256 over the normalised identifier, domain-separated by
subject kind, the same for every spelling of one subject, unrelated across secrets."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.errors import ConfigurationError
from schemas.identifiers import IdentifierError
from schemas.matchkey import (
    MATCH_KEY_LENGTH,
    MatchKeyer,
    SubjectKind,
    match_key,
    match_key_hex,
    person_match_key,
    vehicle_match_keys,
    vehicle_record_key,
)
from schemas.settings import get_settings

SECRET = b"unit-test-match-key-secret-0123456789"
OTHER = b"another-secret-for-the-other-bus-000"
ID = "11010519491231002X"
PLATE = "京A12345"
VIN = "1M8GDM9AXKP042788"


def _reference(kind: bytes, identifier: str, secret: bytes = SECRET) -> bytes:
    message = b"zf801/v1/" + kind + b"\x00" + identifier.encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).digest()


def test_key_is_the_documented_hmac() -> None:
    keyer = MatchKeyer(SECRET)
    assert keyer.person(ID) == _reference(b"person", ID)
    assert keyer.plate(PLATE) == _reference(b"vehicle", PLATE)
    assert keyer.vin(VIN) == _reference(b"vehicle", VIN)
    assert match_key(SubjectKind.PERSON, ID, SECRET) == _reference(b"person", ID)
    assert len(keyer.person(ID)) == MATCH_KEY_LENGTH == 32


@pytest.mark.parametrize(
    "spelling",
    [
        "11010519491231002x",
        " 11010519491231002X ",
        "110105491231002",
        "１１０１０５４９１２３１００２",
    ],
)
def test_every_spelling_of_a_person_gets_one_key(spelling: str) -> None:
    assert MatchKeyer(SECRET).person(spelling) == MatchKeyer(SECRET).person(ID)


@pytest.mark.parametrize("spelling", ["京A·12345", "京a12345", "京Ａ １２３４５", "京A-12345"])
def test_every_spelling_of_a_plate_gets_one_key(spelling: str) -> None:
    assert MatchKeyer(SECRET).plate(spelling) == MatchKeyer(SECRET).plate(PLATE)


def test_vin_spellings_and_vehicle_keys() -> None:
    keyer = MatchKeyer(SECRET)
    assert keyer.vin(VIN.lower()) == keyer.vin(VIN)
    assert keyer.vehicle(PLATE, VIN) == [keyer.plate(PLATE), keyer.vin(VIN)]
    assert keyer.vehicle(None, VIN) == [keyer.vin(VIN)]
    assert keyer.vehicle(PLATE, None) == [keyer.plate(PLATE)]
    with pytest.raises(ValueError, match="plate number or a VIN"):
        keyer.vehicle(None, None)


def test_module_functions_use_the_settings_secret_by_default() -> None:
    secret = get_settings().match_key_secret.get_secret_value().encode()
    assert person_match_key(ID) == MatchKeyer(secret).person(ID) == MatchKeyer().person(ID)
    assert person_match_key(ID, secret=SECRET) == _reference(b"person", ID)
    assert vehicle_match_keys("京A·12345", VIN) == MatchKeyer(secret).vehicle(PLATE, VIN)
    assert vehicle_record_key(PLATE, VIN) == vehicle_match_keys(PLATE, None)[0]
    assert vehicle_record_key(None, VIN) == vehicle_match_keys(None, VIN)[0]


def test_match_key_tells_plate_from_vin_by_form() -> None:
    assert match_key(SubjectKind.VEHICLE, "京a·12345", SECRET) == MatchKeyer(SECRET).plate(PLATE)
    assert match_key(SubjectKind.VEHICLE, VIN.lower(), SECRET) == MatchKeyer(SECRET).vin(VIN)
    wide_vin = "".join(chr(ord(c) + 0xFEE0) for c in VIN)
    assert match_key(SubjectKind.VEHICLE, wide_vin, SECRET) == MatchKeyer(SECRET).vin(VIN)


def test_domain_separation_between_kinds() -> None:
    # The same bytes hashed as a person and as a vehicle give unrelated keys, and a raw
    # HMAC of the identifier (no prefix) matches neither.
    keyer = MatchKeyer(SECRET)
    same = "11111111111111111"  # 17 digits: a valid VIN
    vehicle_key = keyer.vin(same)
    person_key = _reference(b"person", same)
    assert vehicle_key != person_key
    assert vehicle_key != hmac.new(SECRET, same.encode(), hashlib.sha256).digest()
    assert keyer.person(ID) != _reference(b"vehicle", ID)
    # No shifting of bytes between the label and the identifier: the NUL separator.
    assert _reference(b"person", "x") != _reference(b"personx", "")


def test_key_depends_on_the_secret_and_reveals_nothing_plain() -> None:
    a, b = MatchKeyer(SECRET).person(ID), MatchKeyer(OTHER).person(ID)
    assert a != b
    assert ID.encode() not in a and b"110105" not in a
    assert ID not in match_key_hex(a)
    assert hashlib.sha256(ID.encode()).digest() != a  # not a plain (guessable) hash


def test_invalid_identifiers_raise_identifier_errors_naming_the_field() -> None:
    keyer = MatchKeyer(SECRET)
    with pytest.raises(IdentifierError) as info:
        keyer.person("110105194912310021", "sighting.subject.id_number")
    assert info.value.field == "sighting.subject.id_number"
    with pytest.raises(IdentifierError):
        keyer.vehicle("京I12345", VIN)
    with pytest.raises(IdentifierError):
        match_key(SubjectKind.VEHICLE, "", SECRET)


def test_secret_is_checked_and_hidden() -> None:
    with pytest.raises(ConfigurationError, match="at least 16 bytes"):
        MatchKeyer(b"short")
    assert "unit-test" not in repr(MatchKeyer(SECRET))


def test_hex_form() -> None:
    key = MatchKeyer(SECRET).person(ID)
    text = match_key_hex(key)
    assert text == key.hex() and len(text) == 64 and bytes.fromhex(text) == key
    with pytest.raises(ValueError, match="32 bytes"):
        match_key_hex(key[:31])


_ALNUM = "0123456789"


@settings(max_examples=200, deadline=None)
@given(st.text(_ALNUM, min_size=5, max_size=5), st.text(_ALNUM, min_size=5, max_size=5))
def test_distinct_plates_get_distinct_keys(a: str, b: str) -> None:
    keyer = MatchKeyer(SECRET)
    assert (keyer.plate("京A" + a) == keyer.plate("京A" + b)) == (a == b)
