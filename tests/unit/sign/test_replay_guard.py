"""The replay guard: new, redelivery, replay, a horizon on the processor's clock (never
moved by an event's own time), the memory bound, and the journal it keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sign.errors import Replayed, TooOld
from sign.replay import ReplayGuard, ReplayVerdict, SeenEntry

T0 = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)


def _guard(
    window: timedelta = timedelta(hours=1), max_ids: int = 1000, **kw: object
) -> ReplayGuard:
    return ReplayGuard(window, max_ids, clock=lambda: T0, **kw)  # type: ignore[arg-type]


def test_new_then_redelivery_at_same_position():
    guard = _guard()
    assert guard.observe("e1", T0, "orders", 0, 10) is ReplayVerdict.NEW
    assert guard.observe("e1", T0, "orders", 0, 10) is ReplayVerdict.REDELIVERY
    assert len(guard) == 1


@pytest.mark.parametrize(("topic", "partition", "offset"), [
    ("orders", 0, 11), ("orders", 1, 10), ("other", 0, 10),
])  # fmt: skip
def test_same_id_elsewhere_is_a_replay(topic, partition, offset):
    guard = _guard()
    guard.observe("e1", T0, "orders", 0, 10)
    with pytest.raises(Replayed, match="first seen at orders/0@10"):
        guard.observe("e1", T0, topic, partition, offset)


def test_topic_scope_allows_a_forwarded_copy_on_another_topic():
    guard = _guard(scope="topic")
    guard.observe("e1", T0, "orders", 0, 10)
    assert guard.observe("e1", T0, "orders.border", 0, 3) is ReplayVerdict.NEW
    with pytest.raises(Replayed):
        guard.observe("e1", T0, "orders", 0, 12)


def test_an_event_from_the_future_moves_no_horizon():
    """The attack: one event stamped a year ahead made every later genuine event of its
    partition look old. The horizon follows the processor's clock, not event times."""
    guard = _guard()
    guard.observe("ahead", T0 + timedelta(days=365), "sightings", 0, 100)
    for i in range(6):
        assert guard.observe(f"genuine{i}", T0, "sightings", 0, 101 + i) is ReplayVerdict.NEW


def test_an_event_older_than_the_window_is_too_old():
    guard = _guard()
    with pytest.raises(TooOld, match="horizon"):
        guard.observe("old", T0 - timedelta(hours=2), "sightings", 0, 1)


def test_ids_expire_with_the_processor_clock():
    now = [T0]
    guard = ReplayGuard(timedelta(minutes=64), 10_000, clock=lambda: now[0])
    for i in range(60):
        guard.observe(f"e{i}", T0 + timedelta(seconds=i), "t", 0, i)
    now[0] = T0 + timedelta(hours=3)
    guard.observe("late", now[0], "t", 0, 100)
    assert len(guard) == 1
    assert guard.horizon is None  # age expiry, not the memory bound


def test_memory_bound_drops_oldest_bucket_and_raises_the_horizon():
    guard = _guard(timedelta(days=1))  # 60-second buckets
    for i in range(1500):
        guard.observe(f"e{i}", T0 - timedelta(hours=20) + timedelta(seconds=i), "t", 0, i)
    horizon = guard.horizon
    assert horizon is not None and len(guard) <= 1000 + 60
    with pytest.raises(TooOld):
        guard.observe("very-late", T0 - timedelta(hours=20), "t", 1, 0)


def test_out_of_order_times_within_the_window():
    guard = _guard()
    guard.observe("b", T0 - timedelta(minutes=1), "t", 0, 1)
    assert guard.observe("a", T0 - timedelta(minutes=30), "t", 0, 2) is ReplayVerdict.NEW
    with pytest.raises(Replayed):
        guard.observe("a", T0 - timedelta(minutes=30), "t", 0, 3)


def test_unknown_scope_is_refused():
    with pytest.raises(ValueError, match="scope"):
        ReplayGuard(timedelta(hours=1), 1000, scope="cluster")


def test_a_journaled_guard_lists_new_observations_once():
    guard = _guard(journal_scope="sightings")
    guard.observe("e1", T0, "s", 2, 7)
    guard.observe("e1", T0, "s", 2, 7)  # a redelivery is not journaled again
    (entry,) = guard.drain()
    assert (entry.scope, entry.topic, entry.partition, entry.offset) == ("sightings", "s", 2, 7)
    assert entry.event_time_us == int(T0.timestamp() * 1_000_000)
    assert guard.drain() == []
    assert _guard().observe("e2", T0, "s", 0, 1) is ReplayVerdict.NEW  # no journal: no list


def test_a_restored_guard_knows_a_copy_as_a_replay_and_the_original_as_a_redelivery():
    first = _guard(journal_scope="orders")
    first.observe("order-1", T0, "orders", 3, 40)
    (entry,) = first.drain()
    restarted = _guard(journal_scope="orders")
    assert restarted.restore(entry)
    assert not restarted.restore(entry)  # known already
    assert restarted.observe("order-1", T0, "orders", 3, 40) is ReplayVerdict.REDELIVERY
    with pytest.raises(Replayed):
        restarted.observe("order-1", T0, "orders", 3, 41)
    assert restarted.drain() == []


def test_restore_skips_entries_outside_the_window():
    old = SeenEntry("orders", b"\x01" * 12, int((T0 - timedelta(hours=2)).timestamp() * 1e6),
                    "orders", 0, 1)  # fmt: skip
    assert not _guard().restore(old)
