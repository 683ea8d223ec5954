"""Seals over a processor's own state records: table changelogs and the replay journal.

A processor's state lives in Kafka topics it writes itself, and is read back only when a
worker restarts or takes over a partition. Anyone who can write those topics could
otherwise plant a watchlist entry (a hit signed by the bus for an order no court
issued), drop one, or crash every restart with junk. So every state record the
processor writes is sealed, and a restore applies only records whose seal checks:

    "ZS1" | written_us (8 bytes, big-endian) | MAC (16 bytes) | payload

The MAC is HMAC-SHA256 (first 16 bytes) under the processor's state secret
(:meth:`sign.keystore.KeyStore.state_secret`) over the length-prefixed store name, the
record key, and the header and payload, so an entry can be neither forged, altered,
nor moved to another key or store. ``written_us`` orders the writes to one key: a
restore refuses an entry older than the one it already holds for that key (an old
genuine entry copied to the end of the changelog).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from sign.errors import SignError

__all__ = ["PAYLOAD_OFFSET", "Sealed", "StateIntegrityError", "StateSealer"]

_MAGIC = b"ZS1"
_TIME = 8
_MAC = 16
_HEADER = len(_MAGIC) + _TIME
PAYLOAD_OFFSET = _HEADER + _MAC
"""Where a sealed record's payload starts."""


class StateIntegrityError(SignError, ValueError):
    """A state record whose seal does not check (forged, altered, moved or junk)."""

    reason = "STATE_INTEGRITY"


@dataclass(frozen=True, slots=True)
class Sealed:
    written_us: int
    payload: bytes


class StateSealer:
    """Seals and opens the state records of one processor (see the module docstring)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("a state secret has at least 32 bytes")
        self._key = hmac.new(secret, b"zf801 state seal v1", hashlib.sha256).digest()

    def seal(self, store: str, key: bytes, payload: bytes, written_us: int) -> bytes:
        header = _MAGIC + written_us.to_bytes(_TIME, "big")
        return header + self._mac(store, key, header, payload) + payload

    def open(self, store: str, key: bytes | None, raw: bytes | None) -> Sealed:
        """The sealed payload, or :class:`StateIntegrityError` naming what is wrong."""
        if raw is None:
            raise StateIntegrityError(
                f"{store}: a null record; this processor never writes one (deletions are sealed)"
            )
        if key is None:
            raise StateIntegrityError(f"{store}: a record without a key")
        if len(raw) < _HEADER + _MAC or not raw.startswith(_MAGIC):
            raise StateIntegrityError(f"{store}: {len(raw)} bytes that are not a sealed record")
        header, mac, payload = raw[:_HEADER], raw[_HEADER : _HEADER + _MAC], raw[_HEADER + _MAC :]
        if not hmac.compare_digest(mac, self._mac(store, key, header, payload)):
            raise StateIntegrityError(
                f"{store}: the seal does not match (forged, altered, or moved from another key)"
            )
        return Sealed(int.from_bytes(header[len(_MAGIC) :], "big"), payload)

    @staticmethod
    def payload_of(raw: bytes) -> bytes:
        """The payload of a record this process sealed or already opened (no check)."""
        return raw[PAYLOAD_OFFSET:]

    @staticmethod
    def written_us_of(raw: bytes) -> int:
        return int.from_bytes(raw[len(_MAGIC) : _HEADER], "big")

    def _mac(self, store: str, key: bytes, header: bytes, payload: bytes) -> bytes:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in (store.encode("utf-8"), key, header):
            mac.update(len(part).to_bytes(4, "big"))
            mac.update(part)
        mac.update(payload)
        return mac.digest()[:_MAC]
