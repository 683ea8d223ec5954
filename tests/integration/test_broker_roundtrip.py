"""A record produced with acks=all and idempotence comes back whole from the real broker
(through the admin's clients of ``topics.clients``: the test's topic is its own)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

if TYPE_CHECKING:
    from tests.conftest import KafkaClients

pytestmark = pytest.mark.integration

_COUNT = 200
_READ_LIMIT_S = 30.0


# (partition, key, value, headers)
Record = tuple[int, bytes, bytes, list[tuple[str, bytes]]]


def _read(consumer: KafkaConsumer, count: int) -> list[Record]:
    """Poll until ``count`` records arrived or the limit passed (poll blocks; no sleeps)."""
    got: list[Record] = []
    deadline = time.monotonic() + _READ_LIMIT_S
    while len(got) < count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=1000).values():
            got += [(r.partition, r.key, r.value, list(r.headers)) for r in records]
    return got


def test_idempotent_acks_all_records_round_trip_in_order(
    kafka_clients: KafkaClients,
    make_topic: Callable[..., str],
    unique_name: Callable[..., str],
) -> None:
    topic = make_topic(partitions=3)
    producer = kafka_clients.producer()  # acks=all and idempotence are the factory's defaults
    sent: list[Record] = []
    try:
        for i in range(_COUNT):
            key = f"subject-{i % 7}".encode()
            value = f"event {i} \u5f3a\u5236\u6267\u884c".encode()
            headers = [("ce_id", f"id-{i}".encode()), ("ce_specversion", b"1.0")]
            meta = producer.send(topic, key=key, value=value, headers=headers).get(timeout=30)
            sent.append((meta.partition, key, value, headers))
    finally:
        producer.close()

    consumer = kafka_clients.consumer(
        topic,
        group_id=unique_name("g"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        received = _read(consumer, _COUNT)
        end_offsets = consumer.end_offsets([TopicPartition(topic, p) for p in range(3)])
    finally:
        consumer.close()

    assert len(received) == _COUNT
    # Per partition, order is kept; across partitions, same key -> same partition.
    for partition in range(3):
        assert [r for r in received if r[0] == partition] == [s for s in sent if s[0] == partition]
    assert sum(end_offsets.values()) == _COUNT  # idempotence: no duplicate was written
    keys_by_partition = {(r[1], r[0]) for r in received}
    assert len({key for key, _ in keys_by_partition}) == len(keys_by_partition) == 7
