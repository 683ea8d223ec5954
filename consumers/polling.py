"""The poll loop of the bus's threaded (kafka-python) readers: a responder's queries and
sightings history, a court's alerts, a list subscriber, the checkpointer; and the reading
of what a topic holds now (:func:`batches_to_end`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from kafka import KafkaConsumer

from consumers.errors import ConsumerError
from schemas.jsonmap import json_kind
from schemas.settings import MAX_IDLE_S

__all__ = ["IdleWaitError", "batches_to_end", "check_idle_s", "poll_batches"]

_POLL_MS = 200


class IdleWaitError(ConsumerError, ValueError):
    """An idle wait that is no number of seconds a read can end after."""


def check_idle_s(value: object, field: str = "until_idle_s") -> float:
    """``value`` as an idle wait: a number of seconds, more than 0 and at most a day (NaN
    and infinity never end a read); raises :class:`IdleWaitError` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IdleWaitError(
            f"{field}: expected a number of seconds, got {json_kind(value)} [rule idle.type]"
        )
    if not 0 < value <= MAX_IDLE_S:  # NaN fails this too
        raise IdleWaitError(
            f"{field}: {value!r} is not more than 0 and at most {MAX_IDLE_S:g} s [rule idle.range]"
        )
    return float(value)


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
    if until_idle_s is not None:
        check_idle_s(until_idle_s)
    last_seen = time.monotonic()
    while not stop():
        batch = consumer.poll(timeout_ms=_POLL_MS, max_records=max_records)
        if batch:
            yield [message for messages in batch.values() for message in messages]
            last_seen = time.monotonic()
        elif until_idle_s is not None and time.monotonic() - last_seen >= until_idle_s:
            return


def batches_to_end(
    consumer: KafkaConsumer,
    stop: Callable[[], bool] = lambda: False,
    *,
    idle_s: float,
    max_records: int = 500,
) -> Iterator[list[Any]]:
    """:func:`poll_batches` up to the end offsets the consumer's partitions have now, or
    until ``stop()``, or until nothing has come for ``idle_s`` (a partition held short of
    its end, e.g. behind an open transaction)."""
    assignment = sorted(consumer.assignment())
    ends = consumer.end_offsets(assignment)

    def done() -> bool:
        return stop() or all(consumer.position(tp) >= ends[tp] for tp in assignment)

    yield from poll_batches(consumer, done, until_idle_s=idle_s, max_records=max_records)
