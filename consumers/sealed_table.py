"""faust tables whose changelog records are sealed, and whose restore checks every seal.

The worker's tables (the watchlist, order tracking) are rebuilt from their changelog
topics when a worker starts or takes over a partition. faust would apply whatever is on
those topics. A :class:`SealedTable` stores only values sealed with the processor's
state secret (:mod:`sign.state_seal`), and its store applies a changelog record only if:

- the seal checks (a fabricated, altered or junk record is refused, so it never becomes
  a hit and never crashes a restart);
- it is not a null: this processor writes a deletion as a sealed empty value, so a null
  on the changelog was written by someone else and is refused instead of deleting;
- it is not older than what the restore already holds for that key (an old genuine entry
  copied to the end of the changelog), beyond a small tolerance for clocks of two
  workers that wrote the same key one after the other.

Refused records are counted and kept in :attr:`SealedStore.refused` until the worker
dead-letters them (:meth:`SealedTable.drain_refused`). What a broker ACL must still
prevent is stated in ``sign/REPLAY.md``: compaction of the changelog can erase an entry
under a later record with the same key, which no reader can undo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import faust
from faust.stores.memory import Store as MemoryStore

from schemas.envelope import from_micros
from sign.state_seal import StateIntegrityError, StateSealer
from sign.verify_stage import ConsumedRecord
from topics.partitioning import KeyPartitions

__all__ = ["SealedStore", "SealedTable", "StateRefusal"]

# Two workers that write one key in turn may disagree on the time by this much.
_CLOCK_TOLERANCE_US = 5_000_000

StateRefusal = tuple[ConsumedRecord, str]
"""A refused changelog record and why."""


class SealedStore(MemoryStore[bytes, bytes]):
    """An in-memory store holding sealed values (see the module docstring)."""

    sealer: StateSealer
    store_name: str
    partitions: int
    """The table's partition count: a key's partition is ``partition_of(key)`` (the
    ledger and the watchlist updates place every key so, and faust writes its changelog
    record in the partition of the event that wrote it)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.refused: list[StateRefusal] = []
        self.refused_total = 0
        self._deleted_us: dict[Any, int] = {}

    def __setitem__(self, key: Any, value: Any) -> None:
        if value is not None and not StateSealer.payload_of(value):
            self.data.pop(key, None)  # a sealed deletion: nothing to keep in memory
            return
        self.data[key] = value

    def apply_changelog_batch(
        self,
        batch: Iterable[Any],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        for event in batch:
            message = event.message
            key = to_key(event.key)
            raw = message.value
            try:
                sealed = self.sealer.open(self.store_name, key, raw)
            except StateIntegrityError as exc:
                self._refuse(message, exc.args[0])
                continue
            current = self.data.get(key)
            held_us = (
                StateSealer.written_us_of(current)
                if current is not None
                else self._deleted_us.get(key)
            )
            if held_us is not None and sealed.written_us + _CLOCK_TOLERANCE_US < held_us:
                self._refuse(
                    message,
                    f"{self.store_name}: an entry written at {_when(sealed.written_us)} after "
                    f"one written at {_when(held_us)} (an old entry copied again)",
                )
                continue
            if sealed.payload:
                self.data[key] = raw
                self._deleted_us.pop(key, None)
            else:
                self.data.pop(key, None)
                self._deleted_us[key] = sealed.written_us
            self._key_partition[key] = message.partition

    async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
        self._deleted_us.clear()
        self.drop_unheld({tp.partition for tp in active_tps})
        await super().on_recovery_completed(active_tps, standby_tps)

    def drop_unheld(self, held: set[int]) -> int:
        """Forget the entries of partitions this worker no longer holds; how many. Kept,
        an entry outlives the partition's move to another worker, and when the partition
        comes back the restore starts from that stale copy (faust's own pruning knows only
        the keys it restored, not those written here)."""
        if len(held) >= self.partitions:
            return 0
        partition_of = KeyPartitions(self.partitions)
        stale = [key for key in self.data if partition_of(key) not in held]
        for key in stale:
            del self.data[key]
        return len(stale)

    def _refuse(self, message: Any, detail: str) -> None:
        self.refused_total += 1
        if len(self.refused) < 10_000:  # dead-lettered in batches; never unbounded
            headers = message.headers or ()
            items = headers.items() if isinstance(headers, dict) else headers
            self.refused.append((
                ConsumedRecord(
                    message.topic, message.partition, message.offset,
                    int((message.timestamp or 0) * 1000), message.key,
                    message.value if isinstance(message.value, bytes | None) else None,
                    tuple((name, value or b"") for name, value in items),
                ),
                detail,
            ))  # fmt: skip


class SealedTable(faust.Table[bytes, bytes]):
    """A faust table of bytes keys and sealed bytes values."""

    def __init__(self, app: faust.App, *, sealer: StateSealer, name: str, **kwargs: Any) -> None:
        super().__init__(app, name=name, beacon=app.tables.beacon, **kwargs)
        self.sealer = sealer
        self.store_name = f"{app.conf.id}/{name}"  # seals bind to application and table
        app.tables.add(self)

    def _new_store(self) -> SealedStore:
        store = SealedStore(
            "memory://", self.app, self, table_name=self.name, key_type=self.key_type,
            key_serializer=self.key_serializer, value_serializer=self.value_serializer,
            value_type=self.value_type, loop=self.loop, options=self.options,
        )  # fmt: skip
        store.sealer = self.sealer
        store.store_name = self.store_name
        store.partitions = self.partitions or self.app.conf.topic_partitions
        return store

    def payload(self, key: bytes) -> bytes | None:
        """The payload held for ``key`` (None: no entry). No seal check: only sealed
        writes of this process and checked restores enter the store."""
        raw = self.data.data.get(key)
        return StateSealer.payload_of(raw) if raw else None

    def payload_items(self) -> list[tuple[bytes, bytes]]:
        """Every (key, payload) held."""
        return [(key, StateSealer.payload_of(raw)) for key, raw in self.data.data.items()]

    def put(self, key: bytes, payload: bytes, now_us: int) -> None:
        """Write ``payload`` (b"": delete) sealed; times per key only move forward."""
        current = self.data.data.get(key)
        written = now_us if current is None else max(now_us, StateSealer.written_us_of(current) + 1)
        self[key] = self.sealer.seal(self.store_name, key, payload, written)

    def drain_refused(self) -> list[StateRefusal]:
        store = self._sealed_store()
        refused, store.refused = store.refused, []
        return refused

    @property
    def refused_total(self) -> int:
        return self._sealed_store().refused_total

    def _sealed_store(self) -> SealedStore:
        store = self.data
        assert isinstance(store, SealedStore)
        return store


def _when(micros: int) -> str:
    return from_micros(micros).isoformat()
