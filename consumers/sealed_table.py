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

Two stores apply the same rules. :class:`SealedRocksStore` (the worker's default) keeps
each partition in a RocksDB database on local disk (``rocksdict``) with the changelog
offset it holds, so a restarted worker reads only the changelog's tail, and memory holds
caches, not the table; :class:`SealedStore` keeps everything in memory and replays the
whole changelog. Refused records are counted and kept until the worker dead-letters them
(:meth:`SealedTable.drain_refused`). What a broker ACL must still
prevent is stated in ``sign/REPLAY.md``: compaction of the changelog can erase an entry
under a later record with the same key, which no reader can undo.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import faust
from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import Store as RocksStore
from rocksdict import WriteBatch

from consumers.deadlines import from_micros
from sign.state_seal import Sealed, StateIntegrityError, StateSealer
from sign.verify_stage import ConsumedRecord
from topics.partitioning import KeyPartitions

__all__ = ["ROCKSDB_OPTIONS", "SealedRocksStore", "SealedStore", "SealedTable", "StateRefusal"]

log = logging.getLogger(__name__)

# Two workers that write one key in turn may disagree on the time by this much.
_CLOCK_TOLERANCE_US = 5_000_000

ROCKSDB_OPTIONS = {
    "driver": "rocksdict",
    # per partition database: small write buffers and caches (18 partitions, two tables)
    "write_buffer_size": 4 << 20,
    "max_write_buffer_number": 2,
    "block_cache_size": 8 << 20,
    "block_cache_compressed_size": 0,
    "max_open_files": 256,
}
"""What each partition's RocksDB database is opened with."""

StateRefusal = tuple[ConsumedRecord, str]
"""A refused changelog record and why."""


class _Sealing:
    """The restore rules (see the module docstring) and the reads both stores share."""

    sealer: StateSealer
    store_name: str
    source_topic: str
    partition_of: KeyPartitions

    def _start_sealing(self) -> None:
        self.refused: list[StateRefusal] = []
        self.refused_total = 0
        self.restored = 0
        """Changelog records applied since the worker started (refused ones included)."""
        self._deleted_us: dict[Any, int] = {}

    def raw(self, key: bytes) -> bytes | None:
        """The sealed value held for ``key``."""
        raise NotImplementedError

    def lookup(self, key: bytes) -> bytes | None:
        """:meth:`raw`, for the matcher: where a miss must cost least."""
        return self.raw(key)

    def write(self, key: bytes, sealed: bytes) -> None:
        """Hold ``sealed`` (a sealed deletion: nothing) for ``key``, written live."""
        raise NotImplementedError

    def raw_items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, sealed value) of the partitions held."""
        raise NotImplementedError

    def count(self) -> int:
        """How many keys are held (an estimate where counting would read them all)."""
        raise NotImplementedError

    def _recovered(self) -> None:
        """A rebalance's restore has ended: say how much of the changelog it took."""
        self._deleted_us.clear()
        log.info(
            "table %s restored: %d changelog records read since the worker started, "
            "%d refused; %d keys held",
            self.store_name, self.restored, self.refused_total, self.count(),
        )  # fmt: skip

    def _admitted(self, message: Any, key: bytes, held: bytes | None) -> Sealed | None:
        """The changelog record, opened, when the rules let it in (``held``: what the
        store holds for its key now); None when it is refused."""
        self.restored += 1
        try:
            sealed = self.sealer.open(self.store_name, key, message.value)
        except StateIntegrityError as exc:
            self._refuse(message, exc.args[0])
            return None
        held_us = StateSealer.written_us_of(held) if held is not None else self._deleted_us.get(key)
        if held_us is not None and sealed.written_us + _CLOCK_TOLERANCE_US < held_us:
            self._refuse(
                message,
                f"{self.store_name}: an entry written at {_when(sealed.written_us)} after "
                f"one written at {_when(held_us)} (an old entry copied again)",
            )
            return None
        if sealed.payload:
            self._deleted_us.pop(key, None)
        else:
            self._deleted_us[key] = sealed.written_us
        return sealed

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


class SealedStore(_Sealing, MemoryStore[bytes, bytes]):
    """An in-memory store holding sealed values (see the module docstring)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._start_sealing()

    def raw(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def lookup(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def write(self, key: bytes, sealed: bytes) -> None:
        if StateSealer.payload_of(sealed):
            self.data[key] = sealed
            # dropped when its partition leaves (faust remembers only restored keys)
            self._key_partition[key] = self.partition_of(key)
        else:  # a sealed deletion: nothing to keep in memory
            self.data.pop(key, None)
            self._key_partition.pop(key, None)

    def raw_items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self.data.items()))

    def count(self) -> int:
        return len(self.data)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.write(key, value)

    async def on_rebalance(
        self, assigned: Any, revoked: Any, newly_assigned: Any, generation_id: int = 0
    ) -> None:
        """Drop the entries of partitions no longer held. Another worker writes them now;
        were one to come back, it is restored from the changelog, where an entry kept
        from before would look newer than the restore's first records and refuse them."""
        held = {tp.partition for tp in assigned if tp.topic == self.source_topic}
        gone = [key for key, partition in self._key_partition.items() if partition not in held]
        for key in gone:
            self.data.pop(key, None)
            del self._key_partition[key]
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    def apply_changelog_batch(
        self,
        batch: Iterable[Any],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        data = self.data
        for event in batch:
            message = event.message
            key = to_key(event.key)
            sealed = self._admitted(message, key, data.get(key))
            if sealed is None:
                continue
            if sealed.payload:
                data[key] = message.value
                self._key_partition[key] = message.partition
            else:
                data.pop(key, None)
                self._key_partition.pop(key, None)

    async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        self._recovered()


class SealedRocksStore(_Sealing, RocksStore):
    """Sealed values in one RocksDB database per partition, on local disk, each with the
    changelog offset it holds (faust's store, with the restore rules of this module and
    reads and writes placed by the key's partition, never by faust's current event).

    ``index`` (watchlist only) holds a 64-bit fingerprint of every key held, so a miss,
    the matcher's common case, costs a set lookup and no database read. It may hold more
    than the store (keys deleted or moved away since it was built, each costing a read
    when looked up), never less: every write adds to it, and it is rebuilt from the
    databases when a rebalance completes."""

    def __init__(self, *args: Any, indexed: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start_sealing()
        self.index: set[int] | None = set() if indexed else None

    def raw(self, key: bytes) -> bytes | None:
        db = self._dbs.get(self.partition_of(key))
        return db.get(key) if db is not None else None

    def lookup(self, key: bytes) -> bytes | None:
        """:meth:`raw` behind the key index."""
        index = self.index
        if index is not None and hash(key) not in index:
            return None
        return self.raw(key)

    def write(self, key: bytes, sealed: bytes) -> None:
        db = self._db_for_partition(self.partition_of(key))
        if StateSealer.payload_of(sealed):
            db.put(key, sealed)
            if self.index is not None:
                self.index.add(hash(key))
        else:
            db.delete(key)

    def raw_items(self) -> Iterator[tuple[bytes, bytes]]:
        for db in list(self._dbs.values()):
            yield from self._visible_items(db)

    def count(self) -> int:
        return sum(
            (db.property_int_value("rocksdb.estimate-num-keys") or 0)
            - (db.get(self.offset_key) is not None)  # the changelog offset it holds
            for db in self._dbs.values()
        )

    # faust's own paths (Table.__getitem__ and friends), placed by key too
    def _set(self, key: bytes, value: bytes | None) -> None:
        self.write(key, value or b"")

    def _get(self, key: bytes) -> bytes | None:
        return self.raw(key)

    def _del(self, key: bytes) -> None:
        db = self._dbs.get(self.partition_of(key))
        if db is not None:
            db.delete(key)

    def _contains(self, key: bytes) -> bool:
        return self.raw(key) is not None

    def apply_changelog_batch(
        self,
        batch: Iterable[Any],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        writes: dict[int, WriteBatch] = {}
        pending: dict[bytes, bytes | None] = {}  # this batch's writes, not in the db yet
        offsets: dict[Any, int] = {}
        index = self.index
        for event in batch:
            message = event.message
            offsets[message.tp] = max(offsets.get(message.tp, -1), message.offset)
            key = to_key(event.key)
            if key in pending:
                held = pending[key]
            else:
                held = self._db_for_partition(message.partition).get(key)
            sealed = self._admitted(message, key, held)
            if sealed is None:
                continue
            write = writes.get(message.partition)
            if write is None:
                write = writes[message.partition] = WriteBatch(raw_mode=True)
            if sealed.payload:
                write.put(key, message.value)
                pending[key] = message.value
                if index is not None:
                    index.add(hash(key))
            else:
                write.delete(key)
                pending[key] = None
        for partition, write in writes.items():
            self._db_for_partition(partition).write(write)
        for tp, offset in offsets.items():  # refused records too: not read again
            self.set_persisted_offset(tp, offset)

    async def on_rebalance(
        self, assigned: Any, revoked: Any, newly_assigned: Any, generation_id: int = 0
    ) -> None:
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        if self.index is not None:  # what the databases opened now already hold
            self.index.update(hash(key) for key, _ in self.raw_items())

    async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
        if self.index is not None:  # trimmed to the partitions held
            self.index = {hash(key) for key, _ in self.raw_items()}
        await super().on_recovery_completed(active_tps, standby_tps)
        self._recovered()


class SealedTable(faust.Table[bytes, bytes]):
    """A faust table of bytes keys and sealed bytes values.

    Each key's entry lives in the changelog partition the bus computes for the key
    (:func:`topics.partitioning.partition_of`), the partition of the ledger entry or
    watchlist update that writes it: a write never depends on which event faust thinks is
    current, so a batch of events can be applied at once.

    ``persistent``: RocksDB on local disk (:class:`SealedRocksStore`), else memory
    (:class:`SealedStore`). ``indexed``: keep a key index in front of RocksDB."""

    def __init__(
        self,
        app: faust.App,
        *,
        sealer: StateSealer,
        name: str,
        partitions: int,
        source_topic: str,
        persistent: bool = True,
        indexed: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, name=name, beacon=app.tables.beacon, partitions=partitions, **kwargs)
        self.source_topic = source_topic
        self.sealer = sealer
        self.store_name = f"{app.conf.id}/{name}"  # seals bind to application and table
        self.persistent = persistent
        self.indexed = indexed
        self._partition_of = KeyPartitions(partitions)
        app.tables.add(self)

    def _new_store(self) -> SealedStore | SealedRocksStore:
        common: dict[str, Any] = {
            "table_name": self.name, "key_type": self.key_type,
            "key_serializer": self.key_serializer, "value_serializer": self.value_serializer,
            "value_type": self.value_type, "loop": self.loop,
        }  # fmt: skip
        store: SealedStore | SealedRocksStore
        if self.persistent:
            store = SealedRocksStore(
                "rocksdb://", self.app, self, options=dict(ROCKSDB_OPTIONS),
                indexed=self.indexed, **common,
            )  # fmt: skip
        else:
            store = SealedStore("memory://", self.app, self, options=self.options, **common)
        store.sealer = self.sealer
        store.store_name = self.store_name
        store.source_topic = self.source_topic
        store.partition_of = self._partition_of
        return store

    def payload(self, key: bytes) -> bytes | None:
        """The payload held for ``key`` (None: no entry). No seal check: only sealed
        writes of this process and checked restores enter the store."""
        raw = self.sealed_store.raw(key)
        return StateSealer.payload_of(raw) if raw else None

    def payload_items(self) -> list[tuple[bytes, bytes]]:
        """Every (key, payload) held."""
        return [(key, StateSealer.payload_of(raw)) for key, raw in self.sealed_store.raw_items()]

    def put(self, key: bytes, payload: bytes, now_us: int) -> None:
        """Write ``payload`` (b"": delete) sealed, to the store and to the changelog
        partition of ``key``; times per key only move forward."""
        store = self.sealed_store
        current = store.raw(key)
        written = now_us if current is None else max(now_us, StateSealer.written_us_of(current) + 1)
        sealed = self.sealer.seal(self.store_name, key, payload, written)
        store.write(key, sealed)
        self.send_changelog(self._partition_of(key), key, sealed)

    def drain_refused(self) -> list[StateRefusal]:
        store = self.sealed_store
        refused, store.refused = store.refused, []
        return refused

    @property
    def refused_total(self) -> int:
        return self.sealed_store.refused_total

    @property
    def sealed_store(self) -> SealedStore | SealedRocksStore:
        store = self.data
        assert isinstance(store, SealedStore | SealedRocksStore)
        return store


def _when(micros: int) -> str:
    return from_micros(micros).isoformat()
