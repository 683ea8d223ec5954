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

Two stores apply the same rules (``ZF801_WORKER_STORE``). :class:`SealedStore` keeps
everything in memory and replays the whole changelog when a worker starts.
:class:`SealedRocksStore` keeps each partition in a RocksDB database on the worker's disk
(``rocksdict``, faust's own RocksDB store) with the changelog offset it holds, so a
restarted worker reads only the changelog's tail. Refused records are counted and kept
until the worker dead-letters them (:meth:`SealedTable.drain_refused`). What a broker ACL
must still prevent is stated in ``sign/REPLAY.md``: compaction of the changelog can erase
an entry under a later record with the same key, which no reader can undo.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import faust
from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import Store as RocksStore
from faust.streams import current_event

from consumers.key_filter import KeyFilter
from schemas.envelope import from_micros
from sign.state_seal import Sealed, StateIntegrityError, StateSealer
from sign.verify_stage import ConsumedRecord
from topics.partitioning import KeyPartitions

__all__ = ["ROCKSDB_OPTIONS", "SealedRocksStore", "SealedStore", "SealedTable", "StateRefusal"]

log = logging.getLogger(__name__)

# Two workers that write one key in turn may disagree on the time by this much.
_CLOCK_TOLERANCE_US = 5_000_000

ROCKSDB_OPTIONS = {
    "driver": "rocksdict",
    # one database per partition and table: small write buffers and caches each
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
    """The restore rules (see the module docstring), shared by both stores."""

    sealer: StateSealer
    store_name: str
    partitions: int
    """The table's partition count: a key's partition is ``partition_of(key)`` (the
    ledger and the watchlist updates place every key so, and faust writes its changelog
    record, and a RocksDB store its database entry, in the partition of the event that
    wrote it: the same)."""

    def _start_sealing(self) -> None:
        self.refused: list[StateRefusal] = []
        self.refused_total = 0
        self.restored = 0
        """Changelog records read since the worker started (refused ones included)."""
        self._deleted_us: dict[Any, int] = {}

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

    def _recovered(self, held: int) -> None:
        """A rebalance's restore has ended: say how much of the changelog it took."""
        self._deleted_us.clear()
        log.info(
            "table %s restored: %d changelog records read since the worker started, "
            "%d refused; %d keys held",
            self.store_name, self.restored, self.refused_total, held,
        )  # fmt: skip

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
        self._held_to: dict[int, int] = {}
        """Per changelog partition held, the offset of the last record the entries held
        include (read in a restore, or written here and acknowledged): the next restore of
        the partition starts there, as faust's RocksDB store does with the offset it keeps.
        Without it faust restarted the restore of a partition kept through a rebalance
        where its last restore ended, so every rebalance read this worker's own writes
        again and refused the older of them as old entries copied again."""
        self._dropped: set[int] = set()
        """Partitions whose entries were forgotten: a late acknowledgement of a write to
        one of them must not make a later restore skip what it no longer holds."""

    def persisted_offset(self, tp: Any) -> int | None:
        return self._held_to.get(tp.partition)

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        """faust's acknowledgement of a changelog record written here."""
        partition = tp.partition
        if partition not in self._dropped and offset > self._held_to.get(partition, -1):
            self._held_to[partition] = offset

    def raw(self, key: bytes) -> bytes | None:
        """The sealed value held for ``key``."""
        return self.data.get(key)

    def raw_items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, sealed value) held."""
        return iter(list(self.data.items()))

    def count(self) -> int:
        """How many keys are held."""
        return len(self.data)

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
        data, held_to = self.data, self._held_to
        for event in batch:
            message = event.message
            held_to[message.partition] = message.offset  # refused records too: read
            key = to_key(event.key)
            sealed = self._admitted(message, key, data.get(key))
            if sealed is None:
                continue
            if sealed.payload:
                data[key] = message.value
            else:
                data.pop(key, None)
            self._key_partition[key] = message.partition

    async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
        self.drop_unheld({tp.partition for tp in active_tps})
        await super().on_recovery_completed(active_tps, standby_tps)
        self._recovered(len(self.data))

    def drop_unheld(self, held: set[int]) -> int:
        """Forget the entries of partitions this worker no longer holds; how many. Kept,
        an entry outlives the partition's move to another worker, and when the partition
        comes back the restore starts from that stale copy (faust's own pruning knows only
        the keys it restored, not those written here)."""
        self._dropped = set(range(self.partitions)) - held
        for partition in self._dropped:
            self._held_to.pop(partition, None)
        if not self._dropped:
            return 0
        partition_of = KeyPartitions(self.partitions)
        stale = [key for key in self.data if partition_of(key) not in held]
        for key in stale:
            del self.data[key]
        return len(stale)


def discard_if_recreated(path: Path, changelog_id: str) -> bool:
    """Remove the partition database at ``path`` if it was built from another topic than
    the changelog of id ``changelog_id`` (KIP-516 topic ids): True if removed.

    A changelog deleted and created again under its name (a reset, an operator's mistake)
    starts its offsets at 0 again; a database kept from the old one holds an offset and
    entries that belong to no record of the new one, so faust would either stop on the
    offset being past the end or, once the new topic has grown past it, keep the old
    entries as if they were current. The id each database was built from is kept in a file
    beside it; a database from before such files is kept, and its file written."""
    marker = path.with_name(path.name + ".changelog-id")
    held = marker.read_text(encoding="ascii").strip() if marker.exists() else None
    removed = False
    if held is not None and held != changelog_id and path.exists():
        log.warning(
            "%s: built from changelog %s, which is now %s (deleted and created again): "
            "removed, the partition is restored from the changelog", path, held, changelog_id,
        )  # fmt: skip
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        removed = True
    if held != changelog_id:
        path.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(changelog_id, encoding="ascii")
    return removed


class SealedRocksStore(_Sealing, RocksStore):
    """Sealed values in one RocksDB database per partition on local disk, each with the
    changelog offset it holds (faust's RocksDB store, with this module's restore rules).

    A database is exactly its partition of the changelog up to that offset, so a
    partition that moves away and comes back is brought up to date by the records after
    it, and a restarted worker reads only the tail.

    ``indexed`` (the watchlist): a key filter held in memory (:mod:`consumers.key_filter`,
    a few bytes a key) answers most of the matcher's misses, its common case, without a
    database read. It may answer "maybe" for more than the store holds (keys deleted or
    moved away since it was built, and about one in 32 others, each costing one read when
    looked up), never "no" for a key held: every write adds to it, and it is built again
    from the databases when a restore completes."""

    def __init__(
        self, *args: Any, indexed: bool = False, changelog_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._start_sealing()
        self.index: KeyFilter | None = KeyFilter() if indexed else None
        self._held: set[int] | None = None  # None: every database open (before a restore)
        self._partition_of: Callable[[bytes], int] | None = None
        self.changelog_id = changelog_id

    def _open_for_partition(self, partition: int) -> Any:
        if self.changelog_id is not None:
            discard_if_recreated(self.partition_path(partition), self.changelog_id)
        return super()._open_for_partition(partition)

    def _db_of(self, key: bytes) -> Any:
        return self._dbs.get(self._key_partition_of(key))

    def raw(self, key: bytes) -> bytes | None:
        """The sealed value held for ``key``."""
        db = self._db_of(key)
        return db.get(key) if db is not None else None

    def lookup(self, key: bytes) -> bytes | None:
        """:meth:`raw` behind the key index: a miss reads no database."""
        index = self.index
        if index is not None:  # KeyFilter.__contains__, inline: this is the matcher's miss
            slot = hash(key) & index.mask
            if not index.bits[slot >> 3] >> (slot & 7) & 1:
                return None
        return self.raw(key)

    def raw_items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, sealed value) of the partitions this worker is active for."""
        for partition, db in list(self._dbs.items()):
            if self._held is None or partition in self._held:
                yield from self._visible_items(db)

    def count(self) -> int:
        """How many keys are held: RocksDB's estimate, not a scan."""
        return sum(
            (db.property_int_value("rocksdb.estimate-num-keys") or 0)
            - (db.get(self.offset_key) is not None)  # the changelog offset it holds
            for partition, db in list(self._dbs.items())
            if self._held is None or partition in self._held
        )

    def write(self, key: bytes, sealed: bytes) -> None:
        """Hold ``sealed`` (a sealed deletion: nothing) for ``key``, in the database of
        the key's partition."""
        partition = self._key_partition_of(key)
        if StateSealer.payload_of(sealed):
            self._db_for_partition(partition).put(key, sealed)
            if self.index is not None:
                self.index.add(key)
        else:
            db = self._dbs.get(partition)
            if db is not None:
                db.delete(key)

    def _key_partition_of(self, key: bytes) -> int:
        if self._partition_of is None:
            self._partition_of = KeyPartitions(self.partitions)
        return self._partition_of(key)

    # faust's paths (Table.__setitem__ and friends)
    def _set(self, key: bytes, value: bytes | None) -> None:
        event = current_event()
        if event is not None and event.message.partition != self._key_partition_of(key):
            # faust sent the changelog record to the event's partition: a restore would
            # put the entry where no read looks for it
            log.error(
                "table %s: key written from partition %d, not its own %d",
                self.store_name, event.message.partition, self._key_partition_of(key),
            )  # fmt: skip
        self.write(key, value or b"")

    def _get(self, key: bytes) -> bytes | None:
        return self.raw(key)

    def _del(self, key: bytes) -> None:
        self.write(key, b"")

    def _contains(self, key: bytes) -> bool:
        return self.raw(key) is not None

    def apply_changelog_batch(
        self,
        batch: Iterable[Any],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        from rocksdict import WriteBatch  # noqa: PLC0415 - only with this store

        writes: dict[int, Any] = {}
        pending: dict[bytes, bytes | None] = {}  # this batch's writes, not in a database yet
        offsets: dict[Any, int] = {}
        index = self.index
        for event in batch:
            message = event.message
            offsets[message.tp] = max(offsets.get(message.tp, -1), message.offset)
            key = to_key(event.key)
            held = (
                pending[key]
                if key in pending
                else self._db_for_partition(message.partition).get(key)
            )
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
                    index.add(key)
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
            for partition in {tp.partition for tp in newly_assigned}:
                db = self._dbs.get(partition)
                if db is not None:
                    self.index.update(key for key, _ in self._visible_items(db))

    async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
        self._held = {tp.partition for tp in active_tps}
        if self.index is not None:  # trimmed to the partitions held
            self.index = KeyFilter.of((key for key, _ in self.raw_items()), self.count())
        await super().on_recovery_completed(active_tps, standby_tps)
        self._recovered(self.count())


class SealedTable(faust.Table[bytes, bytes]):
    """A faust table of bytes keys and sealed bytes values.

    ``persistent``: RocksDB on local disk (:class:`SealedRocksStore`), else memory
    (:class:`SealedStore`). ``indexed``: keep a key index in front of RocksDB."""

    def __init__(
        self,
        app: faust.App,
        *,
        sealer: StateSealer,
        name: str,
        persistent: bool = False,
        indexed: bool = False,
        **kwargs: Any,
    ) -> None:
        self.persistent = persistent
        self.indexed = indexed
        self.changelog_id: str | None = None
        """The changelog's topic id (persistent only): a database built from another topic
        of its name is discarded (:func:`discard_if_recreated`)."""
        super().__init__(app, name=name, beacon=app.tables.beacon, **kwargs)
        self.sealer = sealer
        self.store_name = f"{app.conf.id}/{name}"  # seals bind to application and table
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
                indexed=self.indexed, changelog_id=self.changelog_id, **common,
            )  # fmt: skip
        else:
            store = SealedStore("memory://", self.app, self, options=self.options, **common)
        store.sealer = self.sealer
        store.store_name = self.store_name
        store.partitions = self.partitions or self.app.conf.topic_partitions
        return store

    @property
    def sealed_store(self) -> SealedStore | SealedRocksStore:
        store = self.data
        assert isinstance(store, SealedStore | SealedRocksStore)
        return store

    def lookup_raw(self) -> Callable[[bytes], bytes | None]:
        """The matcher's read of a sealed value: a dict lookup in memory, the key index
        and then the database on disk."""
        store = self.sealed_store
        return store.data.get if isinstance(store, SealedStore) else store.lookup

    def payload(self, key: bytes) -> bytes | None:
        """The payload held for ``key`` (None: no entry). No seal check: only sealed
        writes of this process and checked restores enter the store."""
        raw = self.sealed_store.raw(key)
        return StateSealer.payload_of(raw) if raw else None

    def iter_payloads(self) -> Generator[tuple[bytes, bytes]]:
        """Every (key, payload) held, read as it goes (RocksDB: from an iterator)."""
        for key, raw in self.sealed_store.raw_items():
            yield key, StateSealer.payload_of(raw)

    def count(self) -> int:
        """How many keys are held (RocksDB: an estimate)."""
        return self.sealed_store.count()

    def put(self, key: bytes, payload: bytes, now_us: int) -> None:
        """Write ``payload`` (b"": delete) sealed; times per key only move forward."""
        current = self.sealed_store.raw(key)
        written = now_us if current is None else max(now_us, StateSealer.written_us_of(current) + 1)
        self[key] = self.sealer.seal(self.store_name, key, payload, written)

    def drain_refused(self) -> list[StateRefusal]:
        store = self.sealed_store
        refused, store.refused = store.refused, []
        return refused

    @property
    def refused_total(self) -> int:
        return self.sealed_store.refused_total


def _when(micros: int) -> str:
    return from_micros(micros).isoformat()
