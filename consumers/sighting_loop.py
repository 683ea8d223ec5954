"""The matcher's consume loop: sightings in, hits out, in one Kafka transaction per batch.

faust's per-event machinery costs far more than a dict lookup, and a sighting that
misses the watchlist (almost all of them) should cost little more than that. So the
sightings are read in batches by a plain aiokafka consumer inside the faust worker.
It follows faust's assignment: it reads exactly the sighting partitions whose numbers
match the watchlist partitions that faust gave this worker, and the same partitions of
``sightings-routed``, where other workers move the sightings whose keys' entries are
held here (:mod:`consumers.routing`); a sighting's keys held elsewhere are moved there
in the same transaction as its batch.

Each batch's hits, the replay journal records of the sightings it acted on, and the
batch's consumer offsets are committed in one transaction (``send_offsets_to_transaction``):
a worker killed mid-batch leaves an aborted transaction that readers at
``read_committed`` never see, and its successor (same transactional id, which fences
the dead one) redoes the batch. So no hit is lost, none is delivered twice, and a
sighting acted on is remembered exactly when its hits are.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from consumers.matcher import Matcher, MatchResult
from consumers.outgoing import Outgoing
from consumers.partition_loop import PartitionLoop
from consumers.replay_journal import JournalRecord
from consumers.runtime import Runtime
from sign.verify_stage import VerifyStage
from topics.clients import aio_producer

__all__ = ["BatchCommitter", "SightingLoop"]

log = logging.getLogger(__name__)


class BatchCommitter:
    """Matches one consumed batch and commits its output together with the batch's
    consumer offsets, in one transaction of ``producer`` (a transactional producer)."""

    def __init__(
        self,
        matcher: Matcher,
        producer: AIOKafkaProducer,
        group_id: str,
        journal: Callable[[], list[JournalRecord]] = list,
        *,
        on_hits: Callable[[list[int]], None] | None = None,
        after_commit: Callable[[list[Outgoing]], Awaitable[None]] | None = None,
    ) -> None:
        self._matcher = matcher
        self._on_hits = on_hits
        self._after_commit = after_commit
        self._producer = producer
        self._group_id = group_id
        self._journal = journal
        self.totals = MatchResult()
        self.committed: dict[Any, int] = {}
        """The offset committed last per partition (read back on every assignment)."""

    async def process(self, batch: dict[Any, list[Any]]) -> MatchResult:
        records = [message for messages in batch.values() for message in messages]
        result = self._matcher.process(records)
        offsets = {tp: messages[-1].offset + 1 for tp, messages in batch.items()}
        producer = self._producer
        async with producer.transaction():
            for item in result.outgoing:
                await item.send(producer)
            for entry in self._journal():
                await producer.send(
                    entry.topic, key=entry.key, value=entry.value, partition=entry.partition
                )
            await producer.send_offsets_to_transaction(offsets, self._group_id)
        if result.after_commit and self._after_commit is not None:
            await self._after_commit(result.after_commit)
        self.committed.update(offsets)
        self._add(result)
        if result.hit_timestamps_ms and self._on_hits is not None:
            self._on_hits(result.hit_timestamps_ms)
        return result

    def _add(self, result: MatchResult) -> None:
        totals = self.totals
        totals.seen += result.seen
        totals.candidates += result.candidates
        totals.hits += result.hits
        totals.unaddressed_notices += result.unaddressed_notices
        totals.blocked += result.blocked
        totals.rejected += result.rejected
        totals.sampled += result.sampled
        totals.sample_rejected += result.sample_rejected
        totals.routing_checked += result.routing_checked
        totals.misrouted += result.misrouted
        totals.rerouted += result.rerouted


class SightingLoop(PartitionLoop):
    """Reads the sightings partitions assigned to this worker and runs the matcher."""

    def __init__(
        self,
        runtime: Runtime,
        app: Any,
        app_id: str,
        matcher: Matcher,
        stage: VerifyStage,
        *,
        journal: Callable[[VerifyStage], list[JournalRecord]],
        on_hits: Callable[[list[int]], None],
        after_commit: Callable[[list[Outgoing]], Awaitable[None]],
    ) -> None:
        """``app``: the faust application whose assignment the loop follows (it reads
        nothing while that one rebalances or recovers); ``stage``: the sightings' verify
        stage, whose accepted events ``journal`` turns into replay journal records."""
        catalog = runtime.catalog
        topics = (
            catalog.topic_name("sightings-person"),
            catalog.topic_name("sightings-vehicle"),
            catalog.topic_name("sightings-routed"),
        )
        super().__init__(app, "matcher", topics, f"{app_id}-sightings")
        self._rt = runtime
        self._matcher = matcher
        self._stage = stage
        self._journal = journal
        self._on_hits = on_hits
        self._after_commit = after_commit
        self.transactional_id = f"{app_id}-matcher-{runtime.settings.worker_id}"
        self.committer: BatchCommitter | None = None

    def follow(self, partitions: set[int]) -> None:
        self._matcher.hold(partitions)
        super().follow(partitions)

    async def run(self) -> None:
        consumer = await self.new_consumer(self._rt, max_partition_fetch_bytes=4 * 1024 * 1024)
        producer = aio_producer(
            self._rt.settings,
            self._rt.agency_code,
            transactional_id=self.transactional_id,
            linger_ms=2,
            # Kafka 4's transaction verification (KIP-890) answers a produce that races
            # ahead of its AddPartitionsToTxn with a retriable NOT_ENOUGH_REPLICAS; retry
            # within milliseconds, not the default 100 ms, or every hit pays for the race.
            retry_backoff_ms=5,
            # A worker killed mid-transaction and not restarted under its id leaves the
            # transaction open; readers at read_committed wait for it until the broker
            # aborts it. A batch's transaction lasts milliseconds: 15 s, not 60.
            transaction_timeout_ms=15_000,
        )
        await consumer.start()
        await producer.start()
        stage = self._stage
        committer = BatchCommitter(
            self._matcher, producer, self.group_id, lambda: self._journal(stage),
            on_hits=self._on_hits, after_commit=self._after_commit,
        )  # fmt: skip
        try:
            await self.batches(consumer, committer)
        finally:
            await producer.stop()
            await consumer.stop()
