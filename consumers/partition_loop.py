"""A batch loop inside the faust worker that follows faust's assignment.

faust's per-event machinery costs far more than the work of a record that only needs a
lookup or a verification, so the worker reads its busiest inputs in batches with a plain
aiokafka consumer of their own group. Such a loop reads exactly the partitions whose
numbers match the watchlist partitions faust gave this worker (every topic of the
matcher's co-partition group has the same count), stops fetching while faust rebalances
or restores its tables, and, when faust revokes partitions, returns from
:meth:`PartitionLoop.pause` only once the batch in flight is committed: the worker that
gets those partitions next starts after it.

What a batch does, and how it commits, is its committer's
(:class:`consumers.sighting_loop.BatchCommitter`, :class:`consumers.intake_loop.IntakeCommitter`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers.commit_guard import faust_settling
from consumers.runtime import Runtime
from topics.clients import aio_consumer, require_topics

__all__ = ["Committer", "PartitionLoop"]

log = logging.getLogger(__name__)

_BATCH_RECORDS = 5000
_POLL_MS = 100
_IDLE_COMMIT_S = 1.0


class Committer(Protocol):
    committed: dict[Any, int]
    """The offset committed last per partition (read back on every assignment)."""

    async def process(self, batch: dict[Any, list[Any]]) -> object:
        """Act on one fetched batch and commit its offsets."""
        ...


class PartitionLoop:
    """Reads ``topics`` in batches, at the partition numbers faust assigned this worker."""

    def __init__(
        self,
        app: Any,
        name: str,
        topics: tuple[str, ...],
        group_id: str,
        *,
        partitions_of: Mapping[str, int] | None = None,
        first_offsets: Any = None,
    ) -> None:
        """``app``: the faust application whose assignment is followed; ``name``: the
        loop's, for the log; ``partitions_of``: a topic's partition count when it has
        fewer than the watchlist (its partitions beyond are nobody's: refused);
        ``first_offsets``: an async callable giving where a partition the group never
        committed starts (None: its beginning)."""
        self._app = app
        self.name = name
        self.topics = topics
        self.group_id = group_id
        self._partitions_of = dict(partitions_of or {})
        self._first_offsets = first_offsets
        self._partitions: set[int] | None = None
        self._changed = asyncio.Event()
        self._paused = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._consumer: AIOKafkaConsumer | None = None
        self.committer: Any = None

    async def new_consumer(self, runtime: Runtime, **options: Any) -> AIOKafkaConsumer:
        """The loop's consumer (its group, offsets committed by the loop alone), not yet
        started. Assigned a topic it may not read, it would poll nothing, silently: the
        topics are checked first, and the error, raised in a faust task, stops the worker."""
        settings, agency = runtime.settings, runtime.agency_code
        await asyncio.to_thread(require_topics, settings, agency, self.topics)
        return aio_consumer(
            settings, agency, group_id=self.group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", **options,
        )  # fmt: skip

    def follow(self, partitions: set[int]) -> None:
        """Called on every faust assignment with the watchlist partitions this worker
        holds: read these partition numbers from now on."""
        self._partitions = set(partitions)
        self._paused = False
        self._changed.set()

    async def pause(self) -> None:
        """Called when faust revokes partitions: fetch nothing more until the next
        assignment, and return once the batch in flight (if any) is committed. faust
        waits for this before the group is rebalanced, so the worker that gets these
        partitions next reads offsets that include this worker's last batch."""
        self._paused = True
        await self._idle.wait()
        log.info("%s paused: partitions revoked", self.name)

    def lag(self) -> list[tuple[str, int]]:
        """Per input topic, records beyond this worker's last commit (from the high
        watermarks its fetches saw; read at scrape time, not on the loop)."""
        consumer, committer = self._consumer, self.committer
        if consumer is None or committer is None:
            return []
        lag: dict[str, int] = {}
        for tp, offset in list(committer.committed.items()):
            high = consumer.highwater(tp)
            if high is not None:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - offset)
        return sorted(lag.items())

    async def batches(self, consumer: AIOKafkaConsumer, committer: Committer) -> None:
        """Run until cancelled: each batch fetched is ``committer``'s to act on."""
        self._consumer, self.committer = consumer, committer
        app = self._app
        idle_since: float | None = None
        while True:
            if self._paused or self._partitions is None or faust_settling(app):
                await asyncio.sleep(_POLL_MS / 1000)
                continue
            if self._changed.is_set():
                # then look again: a revocation or a newer assignment can come while the
                # committed offsets are read, and nothing is fetched for an old one
                self._changed.clear()
                await self._reassign(consumer, committer)
                continue
            self._idle.clear()  # pause() waits for what follows, commits included
            try:
                batch = await consumer.getmany(timeout_ms=_POLL_MS, max_records=_BATCH_RECORDS)
                if batch:
                    await committer.process(batch)
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > _IDLE_COMMIT_S:
                    await self._commit_skipped(consumer, committer)
                    idle_since = None
            finally:
                self._idle.set()

    async def _commit_skipped(self, consumer: AIOKafkaConsumer, committer: Committer) -> None:
        """Once idle, commit the positions past records no batch returned: the commit
        markers of transactional topics and aborted records. A batch commits the offset
        after its last record only, so without this the group would look one record
        behind on every partition written in transactions."""
        skipped = {}
        for tp in consumer.assignment():
            position = await consumer.position(tp)
            if position > committer.committed.get(tp, -1):
                skipped[tp] = position
        if skipped:
            await consumer.commit(skipped)
            committer.committed.update(skipped)

    async def _reassign(self, consumer: AIOKafkaConsumer, committer: Committer) -> None:
        partitions = sorted(self._partitions or ())
        assignment = [
            TopicPartition(t, p)
            for t in self.topics
            for p in partitions
            if p < self._partitions_of.get(t, p + 1)
        ]
        consumer.assign(assignment)
        committer.committed.clear()
        # Both asked once for all partitions: each offset reset waits for the consumer's
        # next fetch round (its long-poll, about 500 ms), so sought one partition at a
        # time the 18 partitions of a worker kept the loop from reading for 9 s after
        # every assignment, at start and after every rebalance.
        found = await asyncio.gather(*(consumer.committed(tp) for tp in assignment))
        from_start = []
        for tp, group_offset in zip(assignment, found, strict=True):
            committed = group_offset
            if committed is None and self._first_offsets is not None:
                committed = await self._first_offsets(tp)
            if committed is None:
                from_start.append(tp)
            else:
                consumer.seek(tp, committed)
                committer.committed[tp] = committed
        if from_start:
            await consumer.seek_to_beginning(*from_start)
        log.info(
            "%s follows partitions %s from offsets %s",
            self.name,
            partitions,
            dict(
                sorted(
                    (f"{tp.topic}[{tp.partition}]", offset)
                    for tp, offset in committer.committed.items()
                )
            ),
        )
