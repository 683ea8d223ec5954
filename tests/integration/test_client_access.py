"""The client factory against the real broker (plaintext): the access check finds a topic's
partitions and refuses a missing one, and every client kind it builds carries records."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka import TopicPartition

from schemas.settings import Settings
from topics.clients import (
    aio_consumer,
    aio_producer,
    kafka_producer,
    kafka_reader,
    require_topics,
)
from topics.errors import TopicMissing

pytestmark = pytest.mark.integration


def test_require_topics_gives_the_partitions_and_refuses_a_missing_topic(
    bootstrap_servers: str, make_topic: Callable[..., str], unique_name: Callable[..., str]
) -> None:
    settings = Settings(bootstrap_servers=bootstrap_servers)
    topic = make_topic(partitions=3)
    assert require_topics(settings, "BJ01", [topic]) == {topic: (0, 1, 2)}
    assert require_topics(settings, "110000230000", [topic], "write") == {topic: (0, 1, 2)}
    missing = unique_name("absent")
    with pytest.raises(TopicMissing, match=f"topic {missing} is not usable by agency BJ01"):
        require_topics(settings, "BJ01", [topic, missing])


def test_kafka_python_producer_and_reader_carry_a_record(
    bootstrap_servers: str, make_topic: Callable[..., str]
) -> None:
    settings = Settings(bootstrap_servers=bootstrap_servers)
    topic = make_topic(partitions=2)
    producer = kafka_producer(settings, "BUS-MATCHER")
    try:
        producer.send(topic, key=b"k", value=b"hit", partition=1).get(timeout=30)
    finally:
        producer.close()
    reader = kafka_reader(settings, "BJ01", topic, isolation_level="read_committed")
    try:
        assert sorted(tp.partition for tp in reader.assignment()) == [0, 1]
        batch = reader.poll(timeout_ms=10_000)
        while not batch:
            batch = reader.poll(timeout_ms=10_000)
        [(key, value)] = [(m.key, m.value) for messages in batch.values() for m in messages]
        assert (key, value) == (b"k", b"hit")
    finally:
        reader.close()


def test_aiokafka_producer_and_consumer_carry_a_record(
    bootstrap_servers: str, make_topic: Callable[..., str]
) -> None:
    settings = Settings(bootstrap_servers=bootstrap_servers)
    topic = make_topic()

    async def round_trip() -> bytes | None:
        producer = aio_producer(settings, "BUS-MATCHER")
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"notice")
        finally:
            await producer.stop()
        consumer = aio_consumer(settings, "BUS-MATCHER", group_id=None,
                                auto_offset_reset="earliest")  # fmt: skip
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, 0)])
            message = await asyncio.wait_for(consumer.getone(), timeout=30)
            return message.value  # type: ignore[no-any-return]
        finally:
            await consumer.stop()

    assert asyncio.run(round_trip()) == b"notice"
