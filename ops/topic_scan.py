"""Exact offset ranges of one topic's partitions, read with aiokafka (its compiled record
parser costs about a quarter of kafka-python's a record): the read behind
:meth:`ops.cmd_inspect.TopicReader.scan`, driven from synchronous code on a private event
loop. A partition that stops short of its stop (e.g. a transaction left open) is kept in
:attr:`RangeScan.stalled`; offsets that retention deleted while the range was read are
kept in :attr:`RangeScan.deleted` and the reading goes on from what is kept. Neither is
ever passed over in silence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError

from schemas.settings import Settings
from topics.clients import aio_consumer
from topics.errors import BrokerUnreachable

__all__ = ["RangeScan"]

_POLL_MS = 200
_MAX_RECORDS = 2000
_STALL_S = 5.0  # stop waiting for a partition whose position stopped moving


class RangeScan:
    """Reads ``(first, stop)`` offsets (stop exclusive) of some partitions of ``topic`` as
    ``agency``, read-committed, without a group; the caller has checked the read rule and
    audited the read."""

    def __init__(self, settings: Settings, agency: str, topic: str, client_id: str) -> None:
        self._settings = settings
        self._agency = agency
        self._topic = topic
        self._client_id = client_id
        self.stalled: dict[int, tuple[int, int]] = {}
        """The partitions given up on (no progress for a while): ``(position, stop)``."""
        self.deleted: dict[int, tuple[int, int]] = {}
        """Offsets ``(first, stop)`` of a partition that retention deleted before they
        were read."""

    def records(self, ranges: Mapping[int, tuple[int, int]]) -> Iterator[Any]:
        """Every consumed record of the ranges, in offset order within a partition."""
        self.stalled, self.deleted = {}, {}
        stops = {TopicPartition(self._topic, p): stop for p, (_, stop) in ranges.items()}
        stops = {tp: stop for tp, stop in stops.items() if ranges[tp.partition][0] < stop}
        if not stops:
            return
        loop = asyncio.new_event_loop()
        try:
            consumer = loop.run_until_complete(self._start(stops, ranges))
        except BaseException:
            loop.close()
            raise
        try:
            yield from self._read(loop, consumer, stops)
        finally:
            loop.run_until_complete(consumer.stop())
            loop.close()

    async def _start(
        self, stops: Mapping[TopicPartition, int], ranges: Mapping[int, tuple[int, int]]
    ) -> AIOKafkaConsumer:
        consumer = aio_consumer(
            self._settings, self._agency, group_id=None, enable_auto_commit=False,
            auto_offset_reset="none",
            client_id=self._client_id, max_poll_records=_MAX_RECORDS,
        )  # fmt: skip
        try:
            await consumer.start()
        except KafkaError as exc:
            await consumer.stop()
            raise BrokerUnreachable(
                f"agency {self._agency} could not start reading {self._topic}: {exc!r}"
            ) from exc
        consumer.assign(list(stops))
        for tp in stops:
            consumer.seek(tp, ranges[tp.partition][0])
        return consumer

    def _read(
        self,
        loop: asyncio.AbstractEventLoop,
        consumer: AIOKafkaConsumer,
        stops: Mapping[TopicPartition, int],
    ) -> Iterator[Any]:
        positions = loop.run_until_complete(_positions(consumer, stops))
        progress = time.monotonic()
        while open_ := [tp for tp, stop in stops.items()
                        if positions[tp] < stop and tp.partition not in self.stalled]:  # fmt: skip
            polled, moved = loop.run_until_complete(self._fetch(consumer, stops, open_))
            for tp, messages in polled.items():
                yield from (m for m in messages if m.offset < stops[tp])
            if polled or any(moved[tp] != positions[tp] for tp in open_):
                progress = time.monotonic()
            elif time.monotonic() - progress > _STALL_S:
                # e.g. a transaction left open: the caller reports what was not read
                self.stalled.update((tp.partition, (positions[tp], stops[tp])) for tp in open_)
                return
            positions.update(moved)

    async def _fetch(
        self,
        consumer: AIOKafkaConsumer,
        stops: Mapping[TopicPartition, int],
        open_: list[TopicPartition],
    ) -> tuple[dict[TopicPartition, list[Any]], dict[TopicPartition, int]]:
        """One fetch of the partitions still open (the others paused), and their
        positions after it."""
        consumer.pause(*[tp for tp in stops if tp not in open_])
        try:
            polled = await consumer.getmany(*open_, timeout_ms=_POLL_MS, max_records=_MAX_RECORDS)
        except OffsetOutOfRangeError as exc:
            await self._skip_deleted(consumer, exc, stops)
            polled = {}
        return polled, await _positions(consumer, open_)

    async def _skip_deleted(
        self,
        consumer: AIOKafkaConsumer,
        exc: OffsetOutOfRangeError,
        stops: Mapping[TopicPartition, int],
    ) -> None:
        """Retention deleted offsets not yet read: named in :attr:`deleted`, and the
        partition read on from its first kept offset. An offset past the partition's end
        is not readable at all: the partition is given up (:attr:`stalled`)."""
        lost: Mapping[TopicPartition, int] = exc.args[0] if exc.args else {}
        kept = await consumer.beginning_offsets(list(lost))
        for tp, position in lost.items():
            start = min(kept[tp], stops[tp])
            if start <= position:  # past the end, not deleted
                self.stalled[tp.partition] = (position, stops[tp])
                continue
            first, _ = self.deleted.get(tp.partition, (position, start))
            self.deleted[tp.partition] = (first, start)
            consumer.seek(tp, start)


async def _positions(
    consumer: AIOKafkaConsumer, partitions: Mapping[TopicPartition, int] | list[TopicPartition]
) -> dict[TopicPartition, int]:
    return {tp: await consumer.position(tp) for tp in partitions}
