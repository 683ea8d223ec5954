"""Seals over a processor's own state: what opens, and every way a record is refused."""

from __future__ import annotations

import pytest

from sign.state_seal import PAYLOAD_OFFSET, StateIntegrityError, StateSealer

SEALER = StateSealer(b"k" * 32)


def test_a_sealed_record_opens_to_its_payload_and_time():
    raw = SEALER.seal("app/watchlist", b"key", b"payload", 1234)
    opened = SEALER.open("app/watchlist", b"key", raw)
    assert (opened.written_us, opened.payload) == (1234, b"payload")
    assert raw[PAYLOAD_OFFSET:] == b"payload" == StateSealer.payload_of(raw)
    assert StateSealer.written_us_of(raw) == 1234


@pytest.mark.parametrize(("store", "key", "mutate", "match"), [
    ("app/watchlist", b"other", lambda r: r, "seal does not match"),  # moved to another key
    ("app/tracking", b"key", lambda r: r, "seal does not match"),  # moved to another store
    ("app/watchlist", b"key", lambda r: r[:-1] + b"X", "seal does not match"),  # altered
    ("app/watchlist", b"key", lambda r: r[:10] + bytes([r[10] ^ 1]) + r[11:], "does not match"),
    ("app/watchlist", b"key", lambda r: b"\xde\xad" * 19, "not a sealed record"),  # junk
    ("app/watchlist", b"key", lambda r: None, "null record"),
])  # fmt: skip
def test_a_record_that_is_not_what_was_sealed_is_refused(store, key, mutate, match):
    raw = SEALER.seal("app/watchlist", b"key", b"payload", 1234)
    with pytest.raises(StateIntegrityError, match=match) as caught:
        SEALER.open(store, key, mutate(raw))
    assert caught.value.reason == "STATE_INTEGRITY"


def test_another_secret_opens_nothing():
    raw = SEALER.seal("s", b"k", b"p", 1)
    with pytest.raises(StateIntegrityError):
        StateSealer(b"x" * 32).open("s", b"k", raw)
    with pytest.raises(ValueError, match="32 bytes"):
        StateSealer(b"short")
