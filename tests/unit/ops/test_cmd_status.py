"""``zf801 status``: the processors' groups and their lag per topic."""

from __future__ import annotations

from kafka import TopicPartition

from ops.cmd_status import GroupStatus, Status, lag_by_topic, processor_groups
from topics.catalog import default_catalog


def test_lag_counts_from_the_commit_or_from_the_start_when_never_committed() -> None:
    a0, a1, b0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)
    ends = {a0: 10, a1: 5, b0: 7}
    starts = {a0: 0, a1: 2, b0: 7}
    assert lag_by_topic([a0, a1, b0], ends, starts, {a0: 4}) == {"a": 9, "b": 0}
    assert lag_by_topic([a0, a1, b0], ends, starts, {a0: 10, a1: 5}) == {"a": 0, "b": 0}


def test_the_worker_groups_come_first_then_other_groups_of_the_namespace() -> None:
    catalog = default_catalog().with_name_prefix("run1-")
    groups = processor_groups(catalog, ["run1-zf801-matcher", "run1-zf801-replayer", "other"])
    assert [g.group for g in groups] == [
        "run1-zf801-matcher", "run1-zf801-matcher-sightings", "run1-zf801-replayer"
    ]  # fmt: skip
    assert "run1-zf801.orders.vehicle-search" in groups[0].topics
    assert "run1-zf801.orders.acknowledgements" in groups[0].topics
    assert "run1-zf801-matcher-watchlist_updates-changelog" in groups[0].topics
    assert "run1-zf801-matcher-order_ledger-changelog" in groups[0].topics
    assert groups[1].topics == (
        "run1-zf801.sightings.person",
        "run1-zf801.sightings.vehicle",
        "run1-zf801.bus.sightings-routed",
    )
    assert groups[2].topics == ()


def test_healthy_needs_brokers_every_topic_and_every_group_caught_up() -> None:
    caught_up = GroupStatus("g", {"a": 0})
    behind = GroupStatus("g", {"a": 0, "b": 3})
    assert Status(("b:1",), 5, (), (caught_up,)).healthy
    assert not Status(("b:1",), 5, (), (behind,)).healthy
    assert not Status(("b:1",), 4, ("x",), (caught_up,)).healthy
    document = Status(("b:1",), 5, (), (behind,)).document()
    assert document["groups"] == [{"group": "g", "lag": {"a": 0, "b": 3}, "caught_up": False}]
