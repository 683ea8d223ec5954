"""``zf801 status``: the processors' groups and their lag per topic."""

from __future__ import annotations

import pytest
from kafka import TopicPartition
from kafka.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    GroupAuthorizationFailedError,
    NotCoordinatorError,
)

from ops import cmd_status
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
        "run1-zf801-matcher", "run1-zf801-matcher-intake", "run1-zf801-matcher-sightings",
        "run1-zf801-replayer",
    ]  # fmt: skip
    assert "run1-zf801-matcher-watchlist_updates-changelog" in groups[0].topics
    assert "run1-zf801-matcher-order_ledger-changelog" in groups[0].topics
    assert "run1-zf801.orders.vehicle-search" in groups[1].topics
    assert "run1-zf801.orders.acknowledgements" in groups[1].topics
    assert "run1-zf801.alerts.confirmations" in groups[1].topics
    assert groups[2].topics == (
        "run1-zf801.sightings.person",
        "run1-zf801.sightings.vehicle",
        "run1-zf801.bus.sightings-routed",
    )
    assert groups[3].topics == ()


def test_healthy_needs_brokers_every_topic_and_every_group_caught_up() -> None:
    caught_up = GroupStatus("g", {"a": 0})
    behind = GroupStatus("g", {"a": 0, "b": 3})
    assert Status(("b:1",), 5, (), (caught_up,)).healthy
    assert not Status(("b:1",), 5, (), (behind,)).healthy
    assert not Status(("b:1",), 4, ("x",), (caught_up,)).healthy
    assert not Status(("b:1",), 5, (), (caught_up,), workers=0).healthy  # nothing consumes
    assert Status(("b:1",), 5, (), (caught_up,), workers=2).healthy
    document = Status(("b:1",), 5, (), (behind,)).document()
    assert document["groups"] == [{"group": "g", "lag": {"a": 0, "b": 3}, "caught_up": False}]


class _Admin:
    """list_group_offsets raising each of ``errors`` in turn, then answering."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def list_group_offsets(self, groups: dict[str, None]) -> dict[str, dict[TopicPartition, int]]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {group: {TopicPartition("t", 0): 7} for group in groups}


def test_a_coordinator_that_moved_is_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cmd_status, "_COORDINATOR_PAUSE_S", 0)
    admin = _Admin(NotCoordinatorError(), CoordinatorLoadInProgressError())
    assert cmd_status._commits(admin, "g") == {TopicPartition("t", 0): 7}
    assert admin.calls == 3


def test_no_coordinator_at_all_is_no_commit_and_other_errors_are_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cmd_status, "_COORDINATOR_PAUSE_S", 0)
    assert cmd_status._commits(_Admin(CoordinatorNotAvailableError()), "g") == {}
    with pytest.raises(GroupAuthorizationFailedError):
        cmd_status._commits(_Admin(GroupAuthorizationFailedError()), "g")
    endless = _Admin(*[NotCoordinatorError() for _ in range(20)])
    with pytest.raises(NotCoordinatorError):
        cmd_status._commits(endless, "g")
    assert endless.calls == cmd_status._COORDINATOR_TRIES
