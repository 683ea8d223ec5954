"""The poll loop of the bus's threaded (kafka-python) readers: a responder's queries and
sightings history, a court's alerts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from kafka import KafkaConsumer

__all__ = ["poll_batches"]

_POLL_MS = 200


def poll_batches(
    consumer: KafkaConsumer,
    stop: Callable[[], bool],
    *,
    until_idle_s: float | None = None,
    max_records: int = 500,
) -> Iterator[list[Any]]:
    """Each poll's records, in order, until ``stop()`` or, with ``until_idle_s``, until
    nothing has come for that long (counted from when the caller has handled the last
    batch). Closing the consumer is the caller's."""
    last_seen = time.monotonic()
    while not stop():
        batch = consumer.poll(timeout_ms=_POLL_MS, max_records=max_records)
        if batch:
            yield [message for messages in batch.values() for message in messages]
            last_seen = time.monotonic()
        elif until_idle_s is not None and time.monotonic() - last_seen >= until_idle_s:
            return
