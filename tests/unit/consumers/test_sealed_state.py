"""Restoring sealed state: the table store's changelog filter and the replay journal's
record codec (pure logic; the broker-level attacks are in tests/e2e/test_hostile_writer.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from consumers.replay_journal import ReplayJournal
from consumers.sealed_table import SealedStore
from sign.replay import SeenEntry
from sign.state_seal import StateIntegrityError, StateSealer
from tests.unit.consumers.changelog_fakes import (
    TP,
    WATCHLIST_CHANGELOG,
    ChangelogEvent,
    ChangelogMessage,
)
from topics.partitioning import KeyPartitions

SEALER = StateSealer(b"s" * 32)
STORE = "zf801-matcher/watchlist"


def _store() -> SealedStore:
    store = SealedStore.__new__(SealedStore)  # no faust app: only the restore filter
    store.__post_init__()
    store.sealer, store.store_name, store.partitions = SEALER, STORE, 6
    return store


def _restore(store: SealedStore, *records: tuple[bytes, bytes | None]) -> None:
    batch = [
        ChangelogEvent(ChangelogMessage(key, value, offset=i))
        for i, (key, value) in enumerate(records)
    ]
    store.apply_changelog_batch(batch, lambda k: k, lambda v: v)


def test_sealed_entries_restore_and_a_sealed_deletion_deletes():
    store = _store()
    _restore(
        store,
        (b"a", SEALER.seal(STORE, b"a", b"A", 1)),
        (b"b", SEALER.seal(STORE, b"b", b"B", 1)),
        (b"b", SEALER.seal(STORE, b"b", b"", 2)),
    )
    assert {k: StateSealer.payload_of(v) for k, v in store.data.items()} == {b"a": b"A"}
    assert store.refused == []


def test_forged_null_junk_and_moved_records_are_refused_and_the_genuine_entry_kept():
    store = _store()
    genuine = SEALER.seal(STORE, b"a", b"order", 10)
    _restore(store, (b"a", genuine), (b"x", b'{"forged": []}'), (b"a", None),
             (b"j", b"\xde\xad" * 19), (b"x", genuine))  # fmt: skip
    assert store.data == {b"a": genuine}
    assert store.refused_total == 4
    assert [record.offset for record, _ in store.refused] == [1, 2, 3, 4]
    reasons = " | ".join(detail for _, detail in store.refused)
    assert "not a sealed record" in reasons and "null record" in reasons
    assert "seal does not match" in reasons  # the genuine value moved to key x


def test_an_old_genuine_entry_copied_after_a_newer_one_is_refused():
    store = _store()
    old = SEALER.seal(STORE, b"a", b"order active", 1_000_000)
    released = SEALER.seal(STORE, b"a", b"", 60_000_000)
    _restore(store, (b"a", old), (b"a", released), (b"a", old))
    assert b"a" not in store.data
    assert "copied again" in store.refused[0][1]


def test_entries_of_partitions_no_longer_held_are_forgotten():
    store = _store()
    keys = [f"key-{n}".encode() for n in range(60)]
    for key in keys:
        store[key] = SEALER.seal(STORE, key, b"entry", 1)
    held = {0, 1, 2}
    dropped = store.drop_unheld(held)
    place = KeyPartitions(6)
    assert set(store.data) == {key for key in keys if place(key) in held}
    assert dropped == len(keys) - len(store.data) > 0
    assert store.drop_unheld(set(range(6))) == 0  # every partition held: nothing to do


def test_a_partition_kept_through_a_rebalance_is_restored_from_what_it_holds():
    """The next restore of a partition held starts at the last record its entries include
    (read, or written here and acknowledged): a rebalance does not read this worker's own
    writes again, and so refuses none of them as old entries copied again."""
    store = _store()
    tp = TP(WATCHLIST_CHANGELOG, 0)
    assert store.persisted_offset(tp) is None  # nothing held: from the beginning
    old = SEALER.seal(STORE, b"a", b"A", 1_000_000)
    _restore(store, (b"a", old), (b"x", b"junk"))  # offsets 0 and 1, the junk refused
    assert store.persisted_offset(tp) == 1
    store.set_persisted_offset(tp, 7)  # a write acknowledged
    store.set_persisted_offset(tp, 5)  # an earlier acknowledgement arriving late
    assert store.persisted_offset(tp) == 7


def test_a_partition_forgotten_is_restored_from_the_beginning_when_it_comes_back():
    store = _store()
    key = next(
        f"key-{n}".encode() for n in range(100) if KeyPartitions(6)(f"key-{n}".encode()) == 3
    )
    tp = TP(WATCHLIST_CHANGELOG, 3)
    store[key] = SEALER.seal(STORE, key, b"entry", 1)
    store.set_persisted_offset(tp, 9)
    store.drop_unheld({0, 1, 2})
    assert key not in store.data and store.persisted_offset(tp) is None
    store.set_persisted_offset(tp, 10)  # the acknowledgement of a write sent before the move
    assert store.persisted_offset(tp) is None
    store.drop_unheld(set(range(6)))  # back, restored from its beginning
    store.set_persisted_offset(tp, 11)
    assert store.persisted_offset(tp) == 11


def test_journal_records_round_trip_and_refuse_tampering():
    journal = ReplayJournal("journal", 6, SEALER, "zf801-matcher")
    entry = SeenEntry("sightings", bytes(range(12)), 1_700_000_000_000_000,
                      "zf801.sightings.person", 8, 42)  # fmt: skip
    (record,) = journal.records([entry], dt.datetime.now(dt.UTC))
    assert (record.topic, record.partition, len(record.key)) == ("journal", 8 % 6, 16)
    assert journal.entry_of(record.key, record.value) == entry
    with pytest.raises(StateIntegrityError):
        journal.entry_of(record.key, record.value[:-1] + b"X")
    with pytest.raises(StateIntegrityError):
        journal.entry_of(b"\x00" * 16, record.value)
    with pytest.raises(StateIntegrityError):
        ReplayJournal("journal", 6, SEALER, "other-app").entry_of(record.key, record.value)
