"""The watchlist's key filter: never "no" for a key added, rarely "maybe" for another."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from consumers.key_filter import KeyFilter


@given(st.lists(st.binary(max_size=64), max_size=200), st.integers(min_value=0, max_value=10))
def test_every_key_added_answers_maybe(keys: list[bytes], expected: int) -> None:
    built = KeyFilter(expected)
    built.update(keys)
    assert all(key in built for key in keys)


def test_it_doubles_past_its_capacity_and_still_holds_every_key() -> None:
    built = KeyFilter()
    first = built.nbytes
    keys = [os.urandom(32) for _ in range(3 * (first * 8 // 32))]  # three times its room
    built.update(keys)
    assert built.nbytes == 4 * first
    assert all(key in built for key in keys)


def test_a_key_never_added_reads_a_database_about_once_in_32_times_or_less() -> None:
    keys = [os.urandom(32) for _ in range(100_000)]
    built = KeyFilter.of(keys, expected=len(keys))
    others = [os.urandom(32) for _ in range(100_000)]
    maybe = sum(key in built for key in others)
    assert maybe < len(others) / 25, maybe


def test_it_costs_a_few_bytes_a_key() -> None:
    """A set of the keys' hashes took about 69 bytes a key."""
    built = KeyFilter.of((os.urandom(32) for _ in range(200_000)), expected=200_000)
    assert built.nbytes / 200_000 <= 8
    grown = KeyFilter()
    grown.update(os.urandom(32) for _ in range(200_000))  # not sized ahead: doubled
    assert grown.nbytes / 200_000 <= 8


def test_an_empty_or_hostile_key_is_just_a_key() -> None:
    built = KeyFilter.of([b"", b"\x00" * 10_000, "京A12345".encode()])
    assert b"" in built and b"\x00" * 10_000 in built and "京A12345".encode() in built
