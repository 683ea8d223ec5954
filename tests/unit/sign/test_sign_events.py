"""Signing and verifying events: the good path and every tamper path (pure, no broker)."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from sign.ca import new_key
from sign.errors import SignatureRejected, SignError
from sign.events import (
    COVERED_HEADERS,
    HEADER_LIMITS,
    SIGNATURE_HEADERS,
    EventSigner,
    EventVerifier,
    canonical_bytes,
)
from sign.identity import key_id_of
from sign.trust import Revocation, TrustStore
from sign.trustset import TrustSet

KEY = bytes(range(32))
VALUE = b"\xc3\x01" + bytes(8) + b"avro body"


def _flip(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def _replace(headers, name, value):
    return [(n, value if n == name else v) for n, v in headers]


def _reason(verifier, key, value, headers, **kwargs) -> str:
    with pytest.raises(SignatureRejected) as caught:
        verifier.verify(key, value, headers, **kwargs)
    assert isinstance(caught.value, ValueError)
    return caught.value.reason


@pytest.fixture
def store(trust_set, issued) -> TrustStore:
    return trust_set.trust_store()


@pytest.fixture
def verifier(store) -> EventVerifier:
    return EventVerifier(store)


@pytest.fixture
def signed(issued, make_headers):
    return issued["BJ01"].signer.sign(KEY, VALUE, make_headers())


def test_good_event_verifies_and_says_who_signed(verifier, signed, issued, now):
    result = verifier.verify(KEY, VALUE, signed)
    assert result.agency_code == "BJ01"
    assert result.role == "court"
    assert result.key_id == issued["BJ01"].signer.key_id
    assert result.event_time == now
    assert result.event_type == "cn.zf801.orders.v1.ExitRestrictionOrder"
    assert [n for n, _ in signed[-3:]] == list(SIGNATURE_HEADERS)


def test_police_and_bus_identities_verify(verifier, issued, make_headers):
    for code, role in (("110000230000", "border-control"), ("BUS-matcher", "bus")):
        headers = issued[code].signer.sign(None, VALUE, make_headers(source=code))
        assert verifier.verify(None, VALUE, headers).role == role


@pytest.mark.parametrize("index", [0, 5, len(VALUE) - 1])
def test_flipped_byte_in_value_is_refused(verifier, signed, index):
    assert _reason(verifier, KEY, _flip(VALUE, index), signed) == "BAD_SIGNATURE"


def test_flipped_byte_in_key_is_refused(verifier, signed):
    assert _reason(verifier, _flip(KEY, 31), VALUE, signed) == "BAD_SIGNATURE"


def test_null_key_and_empty_key_are_different_events(verifier, issued, make_headers):
    headers = issued["BJ01"].signer.sign(None, VALUE, make_headers())
    assert verifier.verify(None, VALUE, headers).agency_code == "BJ01"
    assert _reason(verifier, b"", VALUE, headers) == "BAD_SIGNATURE"


def test_tombstone_value_is_signed_and_differs_from_empty(verifier, issued, make_headers):
    headers = issued["BJ01"].signer.sign(KEY, None, make_headers())
    assert verifier.verify(KEY, None, headers).agency_code == "BJ01"
    assert _reason(verifier, KEY, b"", headers) == "BAD_SIGNATURE"


@pytest.mark.parametrize("name", COVERED_HEADERS)
def test_flipped_byte_in_each_covered_header_is_refused(verifier, signed, name):
    original = dict(signed)[name]
    tampered = _replace(signed, name, _flip(original, len(original) - 1))
    assert _reason(verifier, KEY, VALUE, tampered) == "BAD_SIGNATURE"


def test_uncovered_header_may_change(verifier, signed):
    tampered = _replace(signed, "traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")
    assert verifier.verify(KEY, VALUE, tampered).agency_code == "BJ01"


def test_flipped_byte_in_signature_is_refused(verifier, signed):
    raw = base64.b64decode(dict(signed)["ce_signature"])
    tampered = _replace(signed, "ce_signature", base64.b64encode(_flip(raw, 10)))
    assert _reason(verifier, KEY, VALUE, tampered) == "BAD_SIGNATURE"


def test_signature_header_that_is_not_base64_of_64_bytes_is_refused(verifier, signed):
    for bad in (b"!!!not-base64!!!", base64.b64encode(bytes(63))):
        assert _reason(verifier, KEY, VALUE, _replace(signed, "ce_signature", bad)) == (
            "BAD_SIGNATURE"
        )


def test_signature_moved_to_another_event_is_refused(verifier, issued, make_headers):
    signer = issued["BJ01"].signer
    first = signer.sign(KEY, VALUE, make_headers())
    second = signer.sign(KEY, VALUE, make_headers())  # same body, another ce_id
    moved = [(n, v) for n, v in second if n not in SIGNATURE_HEADERS]
    moved += [(n, v) for n, v in first if n in SIGNATURE_HEADERS]
    assert _reason(verifier, KEY, VALUE, moved) == "BAD_SIGNATURE"


def test_key_id_swapped_for_another_known_key_is_refused(verifier, signed, issued):
    other = issued["SH02"].signer.key_id.encode()
    assert _reason(verifier, KEY, VALUE, _replace(signed, "ce_sigkeyid", other)) == (
        "BAD_SIGNATURE"
    )


def test_unknown_key_id_is_refused(verifier, signed):
    assert _reason(verifier, KEY, VALUE, _replace(signed, "ce_sigkeyid", b"0" * 32)) == (
        "UNKNOWN_KEY"
    )


def test_malformed_key_id_is_refused(verifier, signed):
    assert _reason(verifier, KEY, VALUE, _replace(signed, "ce_sigkeyid", b"../../etc")) == (
        "MALFORMED_HEADER"
    )


def test_valid_signature_by_key_not_chained_to_anchors_is_refused(store, make_headers, now):
    rogue = TrustSet.create(now - timedelta(days=1))  # same names, other keys
    key, cert = rogue.issue("BJ01", "forged court", "court", now=now, lifetime=timedelta(days=9))
    store.add_certificate(cert)  # e.g. published on the trust topic by an intruder
    headers = EventSigner(key, "BJ01").sign(KEY, VALUE, make_headers())
    assert _reason(EventVerifier(store), KEY, VALUE, headers) == "UNTRUSTED_CHAIN"


def test_police_ca_cannot_certify_a_court(store, trust_set, make_headers, now):
    issuer = trust_set.issuers["police"]
    key = new_key()
    cert = issuer.issue_agency(
        "BJ09", "a court", "court", public_key=key.public_key(), now=now, lifetime=timedelta(1)
    )
    store.add_certificate(cert)
    headers = EventSigner(key, "BJ09").sign(KEY, VALUE, make_headers(source="BJ09"))
    assert _reason(EventVerifier(store), KEY, VALUE, headers) == "UNTRUSTED_CHAIN"


def test_certificate_agency_differs_from_source(verifier, issued, make_headers):
    # BJ01's key, with a signer told it speaks for SH02: the certificate says BJ01.
    signer = EventSigner(issued["BJ01"].key, "SH02")
    headers = signer.sign(KEY, VALUE, make_headers(source="SH02"))
    assert _reason(verifier, KEY, VALUE, headers) == "AGENCY_MISMATCH"


def test_source_that_is_not_an_agency_uri_is_a_mismatch(verifier, issued, make_headers):
    signer = EventSigner(issued["BJ01"].key, "BJ01")
    signer._source = b"https://example.org/BJ01"  # a producer bug the signer would refuse
    headers = signer.sign(KEY, VALUE, _replace(make_headers(), "ce_source", signer._source))
    assert _reason(verifier, KEY, VALUE, headers) == "AGENCY_MISMATCH"


def test_signer_refuses_a_source_that_is_not_its_agency(issued, make_headers):
    with pytest.raises(SignError, match="ce_source"):
        issued["BJ01"].signer.sign(KEY, VALUE, make_headers(source="SH02"))


def test_event_after_certificate_expiry_is_refused(verifier, issued, make_headers):
    not_after = issued["BJ01"].certificate.not_valid_after_utc
    headers = issued["BJ01"].signer.sign(KEY, VALUE, make_headers(when=not_after + timedelta(1)))
    assert _reason(verifier, KEY, VALUE, headers) == "CERT_EXPIRED"


def test_event_before_certificate_validity_is_refused(verifier, issued, make_headers):
    not_before = issued["BJ01"].certificate.not_valid_before_utc
    when = not_before - timedelta(seconds=1)
    headers = issued["BJ01"].signer.sign(KEY, VALUE, make_headers(when=when))
    assert _reason(verifier, KEY, VALUE, headers) == "CERT_NOT_YET_VALID"


def test_revocation_refuses_events_at_or_after_its_time_only(store, issued, make_headers, now):
    signer = issued["BJ01"].signer
    store.add_revocation(Revocation(signer.key_id, now, "key-compromise", now))
    verifier = EventVerifier(store)
    before = signer.sign(KEY, VALUE, make_headers(when=now - timedelta(microseconds=1)))
    assert verifier.verify(KEY, VALUE, before).agency_code == "BJ01"
    at = signer.sign(KEY, VALUE, make_headers(when=now))
    assert _reason(verifier, KEY, VALUE, at) == "KEY_REVOKED"
    after = signer.sign(KEY, VALUE, make_headers(when=now + timedelta(hours=1)))
    assert _reason(verifier, KEY, VALUE, after) == "KEY_REVOKED"


def test_earliest_revocation_wins(store, issued, now):
    key_id = issued["BJ01"].signer.key_id
    store.add_revocation(Revocation(key_id, now, "superseded", now))
    store.add_revocation(Revocation(key_id, now + timedelta(days=1), "superseded", now))
    earlier = Revocation(key_id, now - timedelta(days=1), "key-compromise", now)
    assert store.add_revocation(earlier) == earlier
    assert store.revocation_for(key_id) == earlier


def test_revoked_issuing_ca_revokes_what_it_issued(store, trust_set, issued, make_headers, now):
    ca_key_id = key_id_of(trust_set.issuers["court"].private_key.public_key())
    store.add_revocation(Revocation(ca_key_id, now, "ca-compromise", now))
    headers = issued["BJ01"].signer.sign(KEY, VALUE, make_headers(when=now))
    assert _reason(EventVerifier(store), KEY, VALUE, headers) == "KEY_REVOKED"


@pytest.mark.parametrize("name", SIGNATURE_HEADERS + COVERED_HEADERS)
def test_missing_header_is_refused(verifier, signed, name):
    headers = [(n, v) for n, v in signed if n != name]
    assert _reason(verifier, KEY, VALUE, headers) == "MISSING_HEADER"


@pytest.mark.parametrize("name", (*SIGNATURE_HEADERS, "ce_source", "ce_time"))
def test_duplicated_header_is_refused(verifier, signed, name):
    headers = [*signed, (name, dict(signed)[name])]
    assert _reason(verifier, KEY, VALUE, headers) == "DUPLICATE_HEADER"


def test_unknown_algorithm_is_refused(verifier, signed):
    for name in (b"rsa-sha256", b"ED25519", b"none", b""):
        assert _reason(verifier, KEY, VALUE, _replace(signed, "ce_sigalg", name)) == (
            "UNKNOWN_ALGORITHM"
        )


class _NoCrypto(TrustStore):
    def public_key(self, key_id):
        raise AssertionError("crypto reached for an oversized header")


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("ce_signature", 129),
        ("ce_sigkeyid", 65),
        ("ce_type", 257),
        ("traceparent", 1025),
        ("x-" + "n" * 70, 0),  # an oversized header name
    ],
)
def test_oversized_header_is_refused_before_any_crypto(signed, name, size):
    headers = [*signed, (name, b"")] if size == 0 else _replace(signed, name, b"A" * size)
    assert _reason(EventVerifier(_NoCrypto()), KEY, VALUE, headers) == "OVERSIZED_HEADER"


def test_too_many_headers_are_refused(signed):
    headers = [*signed, *((f"x-{i}", b"") for i in range(32))]
    assert _reason(EventVerifier(_NoCrypto()), KEY, VALUE, headers) == "OVERSIZED_HEADER"


def test_malformed_event_time_is_refused(verifier, issued, make_headers):
    headers = _replace(make_headers(), "ce_time", b"2026-11-27 05:00")  # no offset
    signed = issued["BJ01"].signer.sign(KEY, VALUE, headers)
    assert _reason(verifier, KEY, VALUE, signed) == "MALFORMED_HEADER"


def test_role_not_allowed_on_topic(verifier, signed):
    assert verifier.verify(KEY, VALUE, signed, allowed_roles={"court"}).role == "court"
    assert _reason(verifier, KEY, VALUE, signed, allowed_roles={"bus"}) == "ROLE_NOT_ALLOWED"


def test_signer_refuses_records_missing_headers_or_already_signed(issued, make_headers, signed):
    signer = issued["BJ01"].signer
    with pytest.raises(SignError, match="missing"):
        signer.sign(KEY, VALUE, make_headers()[1:])
    with pytest.raises(SignError, match="already"):
        signer.sign(KEY, VALUE, signed)


def test_canonical_bytes_are_length_prefixed_and_cannot_be_spliced():
    one = canonical_bytes([b"ab", b"c"], b"k", b"v")
    two = canonical_bytes([b"a", b"bc"], b"k", b"v")
    assert one != two
    assert one == (
        b"ZF801-EVENT-SIG-V2\n\x00\x00\x00\x02ab\x00\x00\x00\x01c\x00\x00\x00\x01k\x00\x00\x00\x01v"
    )
    assert canonical_bytes([], None, None) == b"ZF801-EVENT-SIG-V2\n" + b"\xff" * 8


def test_canonical_bytes_tell_an_absent_field_from_an_empty_one():
    absent = canonical_bytes([b"x", None], b"k", b"v")
    assert absent == b"ZF801-EVENT-SIG-V2\n\x00\x00\x00\x01x\xff\xff\xff\xff" + (
        b"\x00\x00\x00\x01k\x00\x00\x00\x01v"
    )
    assert canonical_bytes([b"x", b""], b"k", b"v") != absent


ALTKEYS = b"9e95e9b04332a2d1158c4d89d34a703d9fbea830b24b14266ea518adba183a1d"


@pytest.fixture
def signed_with_altkeys(issued, make_headers):
    return issued["BJ01"].signer.sign(KEY, VALUE, [*make_headers(), ("ce_altkeys", ALTKEYS)])


def test_altkeys_are_covered_and_an_event_carrying_them_verifies(verifier, signed_with_altkeys):
    assert verifier.verify(KEY, VALUE, signed_with_altkeys).agency_code == "BJ01"
    assert dict(signed_with_altkeys)["ce_altkeys"] == ALTKEYS


def test_stripped_altkeys_are_refused(verifier, signed_with_altkeys):
    headers = [(n, v) for n, v in signed_with_altkeys if n != "ce_altkeys"]
    assert _reason(verifier, KEY, VALUE, headers) == "BAD_SIGNATURE"


@pytest.mark.parametrize(
    "altered",
    [
        _flip(ALTKEYS, len(ALTKEYS) - 1),
        ALTKEYS + b"," + ALTKEYS,  # a second key appended
        b"",  # emptied: present and empty is not absent
    ],
    ids=["flipped", "appended", "emptied"],
)
def test_altered_altkeys_are_refused(verifier, signed_with_altkeys, altered):
    headers = _replace(signed_with_altkeys, "ce_altkeys", altered)
    assert _reason(verifier, KEY, VALUE, headers) == "BAD_SIGNATURE"


def test_altkeys_added_to_an_event_signed_without_them_are_refused(verifier, signed):
    headers = [*signed, ("ce_altkeys", ALTKEYS)]
    assert _reason(verifier, KEY, VALUE, headers) == "BAD_SIGNATURE"


def test_duplicated_altkeys_are_refused_by_verifier_and_signer(
    verifier, signed_with_altkeys, issued, make_headers
):
    headers = [*signed_with_altkeys, ("ce_altkeys", ALTKEYS)]
    assert _reason(verifier, KEY, VALUE, headers) == "DUPLICATE_HEADER"
    twice = [*make_headers(), ("ce_altkeys", ALTKEYS), ("ce_altkeys", b"00" * 32)]
    with pytest.raises(SignError, match="more than once"):
        issued["BJ01"].signer.sign(KEY, VALUE, twice)


def test_oversized_altkeys_are_refused_before_any_crypto(signed_with_altkeys):
    headers = _replace(signed_with_altkeys, "ce_altkeys", b"a" * (HEADER_LIMITS["ce_altkeys"] + 1))
    assert _reason(EventVerifier(_NoCrypto()), KEY, VALUE, headers) == "OVERSIZED_HEADER"
