"""``TopicReader.scan``, the read behind ``zf801 replay``: each partition from its first
offset up to (not including) its stop, nothing of a partition not asked for, and a
partition that stops short of its end is kept in ``stalled``, never passed in silence."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka import TopicPartition

import ops.cmd_inspect as cmd_inspect
from consumers.runtime import Runtime
from ops.cmd_inspect import TopicReader
from schemas.settings import Settings
from sign.verify_stage import MemoryAuditSink, MemoryDeadLetterSink

READER = "BUS-AUDIT"


@dataclass
class Message:
    topic: str
    partition: int
    offset: int


@dataclass
class FakeConsumer:
    """A consumer of one topic whose partitions hold ``offsets`` (what can be fetched)."""

    topic: str
    offsets: dict[int, list[int]]
    ends: dict[int, int]
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    paused: set[TopicPartition] = field(default_factory=set)

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(self.topic, p) for p in self.offsets}

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp.partition] for tp in partitions}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def position(self, tp: TopicPartition) -> int:
        return self.positions.get(tp, 0)

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused.difference_update(partitions)

    def poll(self, timeout_ms: int = 0, max_records: int = 500) -> dict[Any, list[Message]]:
        """Two records a poll from each partition not paused, from its position."""
        batch: dict[Any, list[Message]] = {}
        for tp in sorted(self.assignment() - self.paused):
            ready = [o for o in self.offsets[tp.partition] if o >= self.position(tp)][:2]
            if ready:
                batch[tp] = [Message(self.topic, tp.partition, o) for o in ready]
                self.positions[tp] = ready[-1] + 1
        return batch

    def close(self) -> None:
        return None


@pytest.fixture
def runtime(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    """A runtime whose reader of sightings-person gets the fake consumer."""
    runtime = Runtime.from_keystore(
        READER, MemoryDeadLetterSink(), MemoryAuditSink(), settings=settings
    )
    topic = runtime.catalog.topic_name("sightings-person")
    consumer = FakeConsumer(topic, {0: [0, 1, 2, 3, 4], 1: [0], 2: [0, 1]}, {0: 5, 1: 3, 2: 2})
    monkeypatch.setattr(cmd_inspect, "kafka_reader", lambda *args, **kwargs: consumer)
    monkeypatch.setattr(cmd_inspect, "_STALL_S", 0.05)
    return runtime


def test_scan_reads_each_asked_range_and_names_a_partition_that_stopped_short(
    runtime: Runtime,
) -> None:
    with TopicReader(runtime, "sightings-person", "replay.read") as topic:
        # Partition 1 ends at 3 but offsets 1 and 2 never come (an open transaction).
        read = [(m.partition, m.offset) for m in topic.scan({0: (1, 4), 1: (0, 3)})]
        assert sorted(read) == [(0, 1), (0, 2), (0, 3), (1, 0)]  # never partition 2
        assert topic.stalled == {1: (1, 3)}
        again = [(m.partition, m.offset) for m in topic.scan({2: (0, 2)})]
        assert again == [(2, 0), (2, 1)] and topic.stalled == {}
    audit = runtime.audit
    assert isinstance(audit, MemoryAuditSink)
    assert [op["operation"] for op in audit.operations] == ["replay.read"]
