"""The watchlist's key filter: which keys may be in the databases, in a few bytes a key.

The matcher's common case is a miss, and a miss must not read RocksDB. A set of the keys'
hashes answered that at about 69 bytes a key (a Python int and its set slot): 690 MB at
ten million keys, more than the rest of a worker. A filter may answer "maybe" for a key
that is not there (one database read, which finds nothing) but never "no" for one that
is, so one bit per hash slot is enough: a key's bit is its hash's low bits. Sized at 32
bits or more per key, at most about one miss in 32 reads a database.

It only grows: a key deleted or moved to another worker keeps its bit (a later miss on it
costs one read) until the filter is built again from what the databases hold, which the
table does when a rebalance's restore completes. Past its capacity it doubles by copying
itself into both halves (a key's bit under the wider mask is at its old place or one
width further, so every key held still answers "maybe"); the new keys then spread over
twice the room.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["KeyFilter"]

_BITS_PER_KEY = 32
_MIN_BITS = 1 << 20  # 128 KiB


class KeyFilter:
    """A one-hash bit filter over bytes keys (see the module docstring)."""

    __slots__ = ("_capacity", "added", "bits", "mask")

    def __init__(self, expected: int = 0) -> None:
        width = _MIN_BITS
        while width < expected * _BITS_PER_KEY:
            width <<= 1
        self.bits = bytearray(width >> 3)
        self.mask = width - 1
        """A key's slot is ``hash(key) & mask``; its bit is ``bits[slot >> 3] >> (slot & 7) & 1``
        (read inline by the matcher's lookup, which saves a call per sighting)."""
        self._capacity = width // _BITS_PER_KEY
        self.added = 0
        """Keys added since it was built (with repeats): what decides when it doubles."""

    @classmethod
    def of(cls, keys: Iterable[bytes], expected: int = 0) -> KeyFilter:
        """A filter holding ``keys``, sized for ``expected`` of them."""
        built = cls(expected)
        built.update(keys)
        return built

    @property
    def nbytes(self) -> int:
        return len(self.bits)

    def __contains__(self, key: bytes) -> bool:
        slot = hash(key) & self.mask
        return bool(self.bits[slot >> 3] >> (slot & 7) & 1)

    def add(self, key: bytes) -> None:
        slot = hash(key) & self.mask
        self.bits[slot >> 3] |= 1 << (slot & 7)
        self.added += 1
        if self.added > self._capacity:
            self._double()

    def update(self, keys: Iterable[bytes]) -> None:
        for key in keys:
            self.add(key)

    def _double(self) -> None:
        self.bits = self.bits * 2
        self.mask = (self.mask << 1) | 1
        self._capacity <<= 1
