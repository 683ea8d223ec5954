"""The client factory against the real broker, as the session runs it (plaintext, or mTLS
with ACLs): the access check finds a topic's partitions, refuses a missing one and, under
mTLS, an agency no ACL names; every client kind it builds carries records, each agency on
the listener of its side."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

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
from topics.errors import AccessDenied, TopicMissing

if TYPE_CHECKING:
    from tests.integration.conftest import Grant

pytestmark = pytest.mark.integration

COURT, BORDER, MATCHER = "BJ01", "110000230000", "BUS-MATCHER"


def test_require_topics_gives_the_partitions_and_refuses_a_missing_topic(
    kafka_settings: Settings,
    make_topic: Callable[..., str],
    unique_name: Callable[..., str],
    grant: Grant,
) -> None:
    topic = make_topic(partitions=3)
    missing = unique_name("absent")
    # Granted the missing name too: without it the brokers would not even say it is missing.
    for name in (topic, missing):
        grant(COURT, name, "read")
    grant(BORDER, topic, "write")
    assert require_topics(kafka_settings, COURT, [topic]) == {topic: (0, 1, 2)}
    assert require_topics(kafka_settings, BORDER, [topic], "write") == {topic: (0, 1, 2)}
    with pytest.raises(TopicMissing, match=f"topic {missing} is not usable by agency {COURT}"):
        require_topics(kafka_settings, COURT, [topic, missing])


def test_require_topics_refuses_what_the_acls_do_not_give(
    kafka_settings: Settings, make_topic: Callable[..., str], grant: Grant
) -> None:
    if kafka_settings.security != "mtls":
        pytest.skip("without mTLS the broker authorises everything")
    topic = make_topic()
    with pytest.raises(AccessDenied, match=f"agency {COURT} may not read topic {topic}"):
        require_topics(kafka_settings, COURT, [topic])
    grant(COURT, topic, "read")
    assert require_topics(kafka_settings, COURT, [topic]) == {topic: (0,)}
    with pytest.raises(AccessDenied, match=f"agency {COURT} may not write topic {topic}"):
        require_topics(kafka_settings, COURT, [topic], "write")


def test_kafka_python_producer_and_reader_carry_a_record(
    kafka_settings: Settings, make_topic: Callable[..., str], grant: Grant
) -> None:
    topic = make_topic(partitions=2)
    grant(MATCHER, topic, "write")
    grant(COURT, topic, "read")
    producer = kafka_producer(kafka_settings, MATCHER)
    try:
        producer.send(topic, key=b"k", value=b"hit", partition=1).get(timeout=30)
    finally:
        producer.close()
    reader = kafka_reader(kafka_settings, COURT, topic)
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
    kafka_settings: Settings, make_topic: Callable[..., str], grant: Grant
) -> None:
    topic = make_topic()
    grant(BORDER, topic, "write")
    grant(MATCHER, topic, "read")

    async def round_trip() -> bytes | None:
        producer = aio_producer(kafka_settings, BORDER)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"notice")
        finally:
            await producer.stop()
        consumer = aio_consumer(kafka_settings, MATCHER, group_id=None,
                                auto_offset_reset="earliest")  # fmt: skip
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, 0)])
            message = await asyncio.wait_for(consumer.getone(), timeout=30)
            return message.value  # type: ignore[no-any-return]
        finally:
            await consumer.stop()

    assert asyncio.run(round_trip()) == b"notice"
