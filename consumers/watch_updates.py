"""The watchlist's changes, carried to the partition of each match key.

The ledger agent applies each order on the partition of its order id
(:mod:`consumers.order_flow`). An order is found by *every* match key of its subject (a
person's ID number; a vehicle's plate and VIN), and a sighting is read on the partition of
the key it carries, which neither the order id nor the order's record key need share (a
watched VIN seen under another plate). So the ledger agent does not write the watchlist
itself: for each key of an order it publishes one :class:`WatchUpdate` to the
``watchlist-updates`` topic, on that key's partition
(:func:`topics.partitioning.partition_of`), and the watchlist agent applies it to the
watchlist table there. The entry of every key therefore lives in the partition of that
key, whichever worker holds it, and a release takes the order out under every key.

Updates are sealed with the processor's state secret (:mod:`sign.state_seal`), bound
to their key; an update that does not open is refused (dead-lettered), never applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from consumers.outgoing import Outgoing
from consumers.watchlist import ActiveOrder, WatchEntry
from schemas.envelope import KafkaRecord
from sign.state_seal import StateSealer
from topics.partitioning import KeyPartitions

__all__ = ["WatchUpdate", "WatchUpdates"]


@dataclass(frozen=True, slots=True)
class WatchUpdate:
    """Enter ``order`` under ``key``, or take the order ``removed`` out from under it."""

    key: bytes
    order: ActiveOrder | None = None
    removed: str | None = None

    def __post_init__(self) -> None:
        if (self.order is None) == (self.removed is None):
            raise ValueError("a watch update enters an order or removes one")

    def applied_to(self, entry: WatchEntry) -> WatchEntry:
        if self.order is not None:
            return entry.with_order(self.order)
        assert self.removed is not None
        return entry.without(self.removed) if self.removed in entry.orders else entry

    def payload(self) -> bytes:
        body = ["add", self.order.to_json()] if self.order else ["remove", self.removed]
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_payload(cls, key: bytes, payload: bytes) -> WatchUpdate:
        """Raises ValueError (or KeyError/TypeError/IndexError) on a malformed body."""
        action, body = json.loads(payload)
        if action == "add":
            return cls(key, order=ActiveOrder.from_json(body))
        if action == "remove" and isinstance(body, str):
            return cls(key, removed=body)
        raise ValueError(f"unknown watch update {action!r}")


class WatchUpdates:
    """Seals updates into records for their key's partition, and opens them again."""

    def __init__(self, sealer: StateSealer, store_name: str, topic: str, partitions: int) -> None:
        self._sealer = sealer
        self._store = store_name
        self.topic = topic
        self._partition_of = KeyPartitions(partitions)

    def outgoing(self, update: WatchUpdate, now_us: int) -> Outgoing:
        value = self._sealer.seal(self._store, update.key, update.payload(), now_us)
        record = KafkaRecord(update.key, value, ())
        return Outgoing(self.topic, record, partition=self._partition_of(update.key))

    def open(self, key: bytes | None, raw: bytes | None) -> WatchUpdate:
        """The update in a consumed record. Raises
        :class:`sign.state_seal.StateIntegrityError` when the seal does not check, and
        ValueError when the sealed body is not an update."""
        sealed = self._sealer.open(self._store, key, raw)
        try:
            return WatchUpdate.from_payload(key or b"", sealed.payload)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"a sealed watch update that is not one: {exc}") from exc
