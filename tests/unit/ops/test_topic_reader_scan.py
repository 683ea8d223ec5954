"""``TopicReader.scan``, the read behind ``zf801 replay`` (aiokafka, ``ops.topic_scan``):
each partition from its first offset up to (not including) its stop, nothing of a
partition not asked for, an empty range not read at all; a partition that stops short of
its end, or a range past the end, is kept in ``stalled``, and offsets retention deleted
before they were read in ``deleted``: never passed in silence."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import OffsetOutOfRangeError
from kafka import TopicPartition as KafkaPartition

import ops.cmd_inspect as cmd_inspect
import ops.topic_scan as topic_scan
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
class Assigner:
    """The kafka-python reader ``TopicReader`` opens: only its assignment is used here."""

    topic: str
    partitions: tuple[int, ...]

    def assignment(self) -> set[KafkaPartition]:
        return {KafkaPartition(self.topic, p) for p in self.partitions}

    def close(self) -> None:
        return None


@dataclass
class FakeAioConsumer:
    """An aiokafka consumer of one topic whose partitions hold ``offsets`` (what can be
    fetched; a read-committed consumer skips what an open transaction holds) and keep
    offsets from ``log_start`` on (retention deleted the older)."""

    offsets: dict[int, list[int]]
    log_start: dict[int, int]
    options: dict[str, Any] = field(default_factory=dict)
    assigned: list[TopicPartition] = field(default_factory=list)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    paused: set[TopicPartition] = field(default_factory=set)
    stopped: bool = False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.stopped = True

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = list(partitions)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        asyncio.get_running_loop()  # aiokafka's does not work outside its loop
        self.positions[tp] = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def pause(self, *partitions: TopicPartition) -> None:
        asyncio.get_running_loop()  # aiokafka's makes a future
        self.paused.update(partitions)

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[Any, int]:
        return {tp: self.log_start[tp.partition] for tp in partitions}

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int = 0
    ) -> dict[TopicPartition, list[Message]]:
        """Two records a fetch from each partition asked, from its position."""
        batch: dict[TopicPartition, list[Message]] = {}
        for tp in partitions:
            assert tp not in self.paused
            held = self.offsets[tp.partition]
            position = self.positions[tp]
            if position < self.log_start[tp.partition] or position > (held[-1] + 1 if held else 0):
                raise OffsetOutOfRangeError({tp: position})
            ready = [o for o in held if o >= position][:2]
            if ready:
                batch[tp] = [Message(tp.topic, tp.partition, o) for o in ready]
                self.positions[tp] = ready[-1] + 1
        return batch


@dataclass
class Built:
    """The consumers the scans built, and each partition's first offset kept."""

    consumers: list[FakeAioConsumer] = field(default_factory=list)
    log_start: dict[int, int] = field(default_factory=lambda: {0: 0, 1: 0, 2: 0})


@pytest.fixture
def built(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Built:
    """Each scan's aiokafka consumer, built by the fake ``aio_consumer``: partitions 0..2
    hold offsets 0-4, 0 and 0-1 (partition 1's offsets 1 and 2 never come: an open
    transaction), kept from ``log_start`` on."""
    runtime_topic = Runtime.from_keystore(
        READER, MemoryDeadLetterSink(), MemoryAuditSink(), settings=settings
    ).catalog.topic_name("sightings-person")
    built = Built()

    def aio_consumer(*args: Any, **options: Any) -> FakeAioConsumer:
        consumer = FakeAioConsumer({0: [0, 1, 2, 3, 4], 1: [0], 2: [0, 1]}, built.log_start,
                                   options)  # fmt: skip
        built.consumers.append(consumer)
        return consumer

    monkeypatch.setattr(topic_scan, "aio_consumer", aio_consumer)
    monkeypatch.setattr(topic_scan, "_STALL_S", 0.05)
    monkeypatch.setattr(cmd_inspect, "kafka_reader",
                        lambda *args, **kwargs: Assigner(runtime_topic, (0, 1, 2)))  # fmt: skip
    return built


@pytest.fixture
def runtime(settings: Settings) -> Runtime:
    return Runtime.from_keystore(
        READER, MemoryDeadLetterSink(), MemoryAuditSink(), settings=settings
    )


def test_scan_reads_each_asked_range_and_names_a_partition_that_stopped_short(
    runtime: Runtime, built: Built
) -> None:
    with TopicReader(runtime, "sightings-person", "replay.read") as topic:
        read = [(m.partition, m.offset) for m in topic.scan({0: (1, 4), 1: (0, 3)})]
        assert sorted(read) == [(0, 1), (0, 2), (0, 3), (1, 0)]  # never partition 2
        assert topic.stalled == {1: (1, 3)} and topic.deleted == {}
        again = [(m.partition, m.offset) for m in topic.scan({2: (0, 2)})]
        assert again == [(2, 0), (2, 1)] and topic.stalled == {}
    first = built.consumers[0]
    assert {tp.partition for tp in first.assigned} == {0, 1} and first.stopped
    assert first.options["auto_offset_reset"] == "none"  # never a silent jump
    assert first.options["group_id"] is None
    audit = runtime.audit
    assert isinstance(audit, MemoryAuditSink)
    assert [op["operation"] for op in audit.operations] == ["replay.read"]


def test_an_empty_range_reads_nothing(runtime: Runtime, built: Built) -> None:
    with TopicReader(runtime, "sightings-person", "replay.read") as topic:
        assert list(topic.scan({0: (3, 3), 2: (2, 2)})) == []
        assert topic.stalled == {} and topic.deleted == {}
    assert built.consumers == []  # not even a connection


def test_a_range_past_the_end_is_stalled_not_passed(runtime: Runtime, built: Built) -> None:
    with TopicReader(runtime, "sightings-person", "replay.read") as topic:
        assert list(topic.scan({0: (7, 9)})) == []
        assert topic.stalled == {0: (7, 9)} and topic.deleted == {}
        read = [m.offset for m in topic.scan({0: (3, 9)})]
        assert read == [3, 4] and topic.stalled == {0: (5, 9)}


def test_offsets_deleted_by_retention_during_the_scan_are_named(
    runtime: Runtime, built: Built
) -> None:
    built.log_start[0] = 3
    with TopicReader(runtime, "sightings-person", "replay.read") as topic:
        read = [m.offset for m in topic.scan({0: (1, 5)})]
        assert read == [3, 4]
        assert topic.deleted == {0: (1, 3)} and topic.stalled == {}
        assert list(topic.scan({0: (0, 2)})) == []  # all of it deleted
        assert topic.deleted == {0: (0, 2)}


def test_a_copy_is_shown_once_and_another_writers_record_under_its_id_is_not_a_copy(
    runtime: Runtime, built: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile writer that publishes first under an id it can derive (an escalation's,
    a notice's) must not make the genuine record look like a repeat of its own."""
    from types import SimpleNamespace  # noqa: PLC0415

    from schemas.registry import default_registry  # noqa: PLC0415

    schema = default_registry().get("cn.zf801.bus.v1.AnomalyEscalation")

    def verified(signer: str) -> Any:
        signature = SimpleNamespace(agency_code=signer, event_id="same-id", event_type="t")
        return SimpleNamespace(signature=signature, payload={}, envelope=SimpleNamespace(
            schema=schema))  # fmt: skip

    monkeypatch.setattr(cmd_inspect, "to_json", lambda schema, payload: {})
    with TopicReader(runtime, "sightings-person", "replay.read") as topic:
        signers = iter(["BJ01", "BUS-AUDIT", "BUS-AUDIT"])
        monkeypatch.setattr(topic._stage, "check_record", lambda message: verified(next(signers)))
        message = SimpleNamespace(partition=0, offset=0, timestamp=0, value=b"")
        accepted = [topic._accept(message) for _ in range(3)]
    assert [r.signed_by if r else None for r in accepted] == ["BJ01", "BUS-AUDIT", None]


def test_a_moment_before_1970_asks_kafka_from_its_first_timestamp(
    runtime: Runtime, built: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka's client refuses a negative target time ('unexpected ValueError' reached
    replay --from 0001-01-01 and deadletters --since 1900-01-01)."""
    import datetime as dt  # noqa: PLC0415

    asked: list[int] = []

    class Times:
        def offsets_for_times(self, wanted: dict[Any, int]) -> dict[Any, Any]:
            asked.extend(wanted.values())
            return {}

    with TopicReader(runtime, "sightings-person", "replay.read") as topic:
        monkeypatch.setattr(topic, "_consumer_", Times)
        assert topic.offsets_at(dt.datetime(1900, 1, 1, tzinfo=dt.UTC)) == dict.fromkeys((0, 1, 2))
    assert asked and set(asked) == {0}
