"""The replay guard: new, redelivery, replay, horizon, memory bound."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sign.errors import Replayed
from sign.replay import ReplayGuard, ReplayVerdict

T0 = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)


def test_new_then_redelivery_at_same_position():
    guard = ReplayGuard(timedelta(hours=1), 1000)
    assert guard.observe("e1", T0, "orders", 0, 10) is ReplayVerdict.NEW
    assert guard.observe("e1", T0, "orders", 0, 10) is ReplayVerdict.REDELIVERY
    assert len(guard) == 1


@pytest.mark.parametrize(
    ("topic", "partition", "offset"), [("orders", 0, 11), ("orders", 1, 10), ("other", 0, 10)]
)
def test_same_id_elsewhere_is_a_replay(topic, partition, offset):
    guard = ReplayGuard(timedelta(hours=1), 1000)
    guard.observe("e1", T0, "orders", 0, 10)
    with pytest.raises(Replayed, match="first seen at orders/0@10"):
        guard.observe("e1", T0, topic, partition, offset)


def test_topic_scope_allows_a_forwarded_copy_on_another_topic():
    guard = ReplayGuard(timedelta(hours=1), 1000, scope="topic")
    guard.observe("e1", T0, "orders", 0, 10)
    assert guard.observe("e1", T0, "orders.border", 0, 3) is ReplayVerdict.NEW
    with pytest.raises(Replayed):
        guard.observe("e1", T0, "orders", 0, 12)


def test_event_older_than_the_window_of_its_partition_is_refused():
    guard = ReplayGuard(timedelta(hours=1), 1000)
    guard.observe("new", T0 + timedelta(hours=3), "sightings", 0, 100)
    with pytest.raises(Replayed, match="older than the replay horizon"):
        guard.observe("old", T0, "sightings", 0, 101)
    # Another partition has its own progress: a lagging partition is not penalised.
    assert guard.observe("old", T0, "sightings", 1, 5) is ReplayVerdict.NEW


def test_ids_expire_with_the_window():
    guard = ReplayGuard(timedelta(minutes=64), 10_000)
    for i in range(10):
        guard.observe(f"e{i}", T0 + timedelta(minutes=i), "t", 0, i)
    guard.observe("late", T0 + timedelta(hours=3), "t", 0, 100)
    assert len(guard) == 1
    assert guard.horizon is None  # age expiry, not the memory bound


def test_memory_bound_drops_oldest_bucket_and_raises_the_horizon():
    guard = ReplayGuard(timedelta(days=1), 1000)  # 60-second buckets
    for i in range(1500):
        guard.observe(f"e{i}", T0 + timedelta(seconds=i), "t", 0, i)
    assert len(guard) <= 1000 + 60  # at most one bucket over the bound
    horizon = guard.horizon
    assert horizon is not None and horizon > T0
    with pytest.raises(Replayed, match="horizon"):
        guard.observe("very-late", T0, "t", 1, 0)


def test_out_of_order_times_within_the_window():
    guard = ReplayGuard(timedelta(hours=1), 1000)
    guard.observe("b", T0 + timedelta(minutes=30), "t", 0, 1)
    assert guard.observe("a", T0, "t", 0, 2) is ReplayVerdict.NEW
    with pytest.raises(Replayed):
        guard.observe("a", T0, "t", 0, 3)


def test_scope_must_be_known():
    with pytest.raises(ValueError, match="scope"):
        ReplayGuard(timedelta(hours=1), 1000, scope="cluster")
