"""The worker's tables on RocksDB (consumers.sealed_table.SealedRocksStore): the restore
rules of the in-memory store, the changelog offset each partition database keeps across
a restart, placement by key, and the key index in front of the matcher's reads. A real
faust table on real RocksDB files in a temporary folder; no broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import faust
import pytest

from consumers.sealed_table import SealedRocksStore, SealedTable
from sign.state_seal import StateSealer
from tests.unit.consumers.changelog_fakes import TP, ChangelogEvent, ChangelogMessage
from topics.partitioning import partition_of

SEALER = StateSealer(b"r" * 32)
APP = "zf801-matcher"
STORE = f"{APP}/watchlist"
PARTITIONS = 6
CHANGELOG = f"{APP}-watchlist-changelog"


def _open(datadir: Path, *, indexed: bool = True) -> SealedRocksStore:
    """A worker's watchlist store on ``datadir`` (a second call: the restarted worker)."""
    app = faust.App(APP, broker="kafka://127.0.0.1:1", store="rocksdb://", datadir=str(datadir))
    table = SealedTable(
        app, sealer=SEALER, name="watchlist", partitions=PARTITIONS,
        key_type=bytes, value_type=bytes, persistent=True, indexed=indexed,
    )  # fmt: skip
    store = table.sealed_store
    assert isinstance(store, SealedRocksStore)
    return store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SealedRocksStore]:
    yield _open(tmp_path)


def _restore(store: SealedRocksStore, *records: tuple[bytes, bytes | None], start: int = 0) -> None:
    batch = [
        ChangelogEvent(ChangelogMessage(key, value, partition_of(key, PARTITIONS), start + i))
        for i, (key, value) in enumerate(records)
    ]
    store.apply_changelog_batch(batch, lambda k: k, lambda v: v)


def _seal(key: bytes, payload: bytes, written_us: int) -> bytes:
    return SEALER.seal(STORE, key, payload, written_us)


def test_the_restore_rules_hold_on_rocksdb(store: SealedRocksStore) -> None:
    genuine = _seal(b"a", b"order", 10_000_000)
    _restore(
        store,
        (b"a", genuine),
        (b"x", b'{"forged": []}'),  # not sealed
        (b"a", None),  # a null: someone else's deletion
        (b"x", genuine),  # the genuine value moved to another key
        (b"a", _seal(b"a", b"order, old", 1_000_000)),  # an old entry copied again
        (b"b", _seal(b"b", b"B", 1)),
        (b"b", _seal(b"b", b"", 2)),  # a sealed deletion deletes
    )
    assert store.raw(b"a") == genuine and store.raw(b"x") is None and store.raw(b"b") is None
    reasons = " | ".join(detail for _, detail in store.refused)
    assert store.refused_total == 4, reasons
    assert "not a sealed record" in reasons and "null record" in reasons
    assert "seal does not match" in reasons and "copied again" in reasons
    assert store.restored == 7


def test_a_restarted_worker_holds_its_state_and_the_offset_to_read_on_from(
    tmp_path: Path,
) -> None:
    keys = [f"key-{i}".encode() for i in range(200)]
    first = _open(tmp_path)
    _restore(first, *[(key, _seal(key, b"entry " + key, 5)) for key in keys])
    held = {partition_of(key, PARTITIONS) for key in keys}
    offsets = {p: first.persisted_offset(TP(CHANGELOG, p)) for p in held}
    first._dbs.clear()  # the process ends; the files stay

    again = _open(tmp_path)
    for partition in held:  # faust opens the databases of the partitions assigned
        again._db_for_partition(partition)
    assert {p: again.persisted_offset(TP(CHANGELOG, p)) for p in held} == offsets
    assert max(offsets.values()) == len(keys) - 1  # only what comes after is read again
    assert all(again.raw(key) == _seal(key, b"entry " + key, 5) for key in keys)
    assert again.count() == len(keys)
    # the key index, from the files of the partitions held
    asyncio.run(again.on_recovery_completed({TP(CHANGELOG, p) for p in held}, set()))
    assert all(again.lookup(key) is not None for key in keys)


def test_live_writes_go_to_the_partition_of_the_key(store: SealedRocksStore) -> None:
    store.write(b"plate", _seal(b"plate", b"order", 1))
    partition = partition_of(b"plate", PARTITIONS)
    assert store._dbs[partition].get(b"plate") == _seal(b"plate", b"order", 1)
    assert all(db.get(b"plate") is None for p, db in store._dbs.items() if p != partition)
    store.write(b"plate", _seal(b"plate", b"", 2))  # a sealed deletion removes it
    assert store.raw(b"plate") is None


def test_a_miss_is_answered_by_the_key_index(store: SealedRocksStore) -> None:
    store.write(b"watched", _seal(b"watched", b"order", 1))
    reads: list[bytes] = []
    raw = store.raw
    store.raw = lambda key: reads.append(key) or raw(key)  # type: ignore[method-assign]
    assert store.lookup(b"unknown") is None and reads == []
    assert store.lookup(b"watched") == _seal(b"watched", b"order", 1)
    assert reads == [b"watched"]


def test_the_key_index_never_misses_what_the_store_holds(store: SealedRocksStore) -> None:
    _restore(store, (b"restored", _seal(b"restored", b"order", 1)))
    store.write(b"live", _seal(b"live", b"order", 2))
    store.write(b"gone", _seal(b"gone", b"order", 3))
    store.write(b"gone", _seal(b"gone", b"", 4))
    assert store.lookup(b"restored") and store.lookup(b"live") and not store.lookup(b"gone")
    every = {TP(CHANGELOG, p) for p in range(PARTITIONS)}
    asyncio.run(store.on_recovery_completed(every, set()))  # rebuilt: the deleted key leaves
    assert store.index is not None
    assert b"restored" in store.index and b"live" in store.index
    assert b"gone" not in store.index  # one slot in a million bits: not by chance


def test_only_the_partitions_held_are_listed_and_counted(store: SealedRocksStore) -> None:
    keys = [f"key-{i}".encode() for i in range(60)]
    for key in keys:
        store.write(key, _seal(key, b"order", 1))
    held = {0, 1}
    asyncio.run(store.on_recovery_completed({TP(CHANGELOG, p) for p in held}, set()))
    mine = {key for key in keys if partition_of(key, PARTITIONS) in held}
    assert {key for key, _ in store.raw_items()} == mine
    assert store.count() == len(mine)
    assert store.lookup(keys[0]) is not None or keys[0] not in mine


def test_faust_writes_and_reads_go_through_the_sealed_rules(store: SealedRocksStore) -> None:
    """faust's own paths (the store's ``[key] = value``, what ``table[key] = value`` calls)."""
    store[b"plate"] = _seal(b"plate", b"order", 7)
    assert store[b"plate"] == _seal(b"plate", b"order", 7) and b"plate" in store
    assert store.lookup(b"plate") is not None
    store[b"plate"] = _seal(b"plate", b"", 8)  # a sealed deletion
    assert b"plate" not in store and store.lookup(b"plate") is None
