"""Small Kafka chores the broker tests and benchmarks share: free local ports for a broker
of their own, every record of a topic read to its end as an agency, and whether the broker
refuses a consumer (or an agency's own connection) a topic."""

from __future__ import annotations

import socket
from contextlib import ExitStack
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from schemas.settings import Settings
from schemas.tls_layout import ADMIN_NAME
from topics.clients import kafka_consumer, kafka_reader

__all__ = ["broker_refuses_agency", "broker_refuses_read", "free_ports", "read_to_end"]


def free_ports(count: int) -> list[int]:
    """``count`` distinct local ports that were free a moment ago (all bound at once)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def read_to_end(
    settings: Settings, topic: str, agency: str = ADMIN_NAME, **overrides: Any
) -> list[Any]:
    """Every record of ``topic``, from the beginning to the end it has now, read with
    ``agency``'s own connection (the operator's by default)."""
    consumer = kafka_reader(settings, agency, topic, **overrides)
    try:
        partitions = list(consumer.assignment())
        ends = consumer.end_offsets(partitions)
        records: list[Any] = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def broker_refuses_read(consumer: KafkaConsumer, topic: str) -> bool:
    """Assign and poll ``topic``: kafka-python raises nothing and returns nothing, but the
    metadata the broker sent marks it TOPIC_AUTHORIZATION_FAILED."""
    consumer.assign([TopicPartition(topic, 0)])
    for _ in range(40):
        assert consumer.poll(timeout_ms=250) == {}
        if topic in consumer._client.cluster.unauthorized_topics:
            return True
    return False


def broker_refuses_agency(settings: Settings, agency: str, topic: str) -> bool:
    """:func:`broker_refuses_read` on ``agency``'s own connection: the broker's verdict,
    past our library's check of the catalog's read rule."""
    consumer = kafka_consumer(settings, agency, group_id=None, request_timeout_ms=5000)
    try:
        return broker_refuses_read(consumer, topic)
    finally:
        consumer.close()
