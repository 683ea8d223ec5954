"""The order intake, in batches: each order-lifecycle event verified once and moved to its
order id's ledger partition.

The courts' orders and releases, the police acknowledgements and the hit and encounter
confirmations arrive keyed by whatever their producers key them by. Each is verified
(signature, trust, replay: the costly part, once) and moved, as a sealed ledger entry, to
the ``order-ledger`` on the partition of its order id (:mod:`consumers.ledger`), where
the order flow's ledger agent applies it (:mod:`consumers.order_flow`).

Taken one at a time by faust agents, this hop cost about a millisecond of the event loop
per order in faust's machinery and in one-record produce requests. Here a batch of up to
5,000 records is read by the worker's own consumer (group ``<application>-intake``,
following faust's assignment like the matcher: :mod:`consumers.partition_loop`), and its
ledger entries and replay journal records go out together, a few produce requests per
batch.

At least once, as before: the batch's entries and journal records are acknowledged by
the brokers before its offsets are committed, so a worker killed in between redoes the
batch; its replay guards, restored from the journal, take the events again as
redeliveries, and the ledger applies an event it already applied as a no-op. An order and
its release share their intake partition, so they reach the ledger in that order too.

A group that never committed starts where the worker's faust group had got to on the
same partitions (the intake's agents of earlier versions), else at the beginning.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from consumers.ledger import OrderLedger
from consumers.outgoing import Outgoing
from consumers.partition_loop import PartitionLoop
from consumers.replay_journal import JournalRecord
from consumers.runtime import Runtime
from schemas.envelope import KafkaRecord, to_micros
from sign.verify_stage import VerifyStage
from topics.clients import aio_producer, committed_offsets

__all__ = ["IntakeCommitter", "IntakeLoop"]

log = logging.getLogger(__name__)


class IntakeCommitter:
    """Verifies one fetched batch, sends its ledger entries and journal records, and
    commits its offsets once they are acknowledged."""

    def __init__(
        self,
        runtime: Runtime,
        stages: Mapping[str, VerifyStage],
        ledger: OrderLedger,
        *,
        producer: AIOKafkaProducer,
        consumer: Any,
        journal: Callable[[VerifyStage], list[JournalRecord]],
    ) -> None:
        self._rt = runtime
        self._stages = stages
        self._ledger = ledger
        self._producer = producer
        self._consumer = consumer
        self._journal = journal
        self.committed: dict[Any, int] = {}
        self.moved = 0
        """Events moved to the ledger so far."""

    async def process(self, batch: dict[Any, list[Any]]) -> int:
        """The batch's events moved to the ledger; how many."""
        now_us = to_micros(dt.datetime.now(dt.UTC))
        entries: list[Outgoing] = []
        for messages in batch.values():
            for message in messages:
                stage = self._stages[message.topic]
                verified = stage.check_record(message)
                if verified is None:
                    continue  # dead-lettered and audited by the stage
                try:
                    entries.append(self._ledger.outgoing(verified, now_us))
                except KeyError:
                    self._rt.refuse(verified, "ORDER_REFUSED", "the event names no order_id")
        journal = [
            Outgoing(r.topic, KafkaRecord(r.key, r.value, ()), partition=r.partition)
            for stage in dict.fromkeys(self._stages.values())  # each stage once
            for r in self._journal(stage)
        ]
        producer = self._producer
        await asyncio.gather(*[await item.send(producer) for item in (*journal, *entries)])
        offsets = {tp: messages[-1].offset + 1 for tp, messages in batch.items()}
        await self._consumer.commit(offsets)
        self.committed.update(offsets)
        self.moved += len(entries)
        return len(entries)


class IntakeLoop(PartitionLoop):
    """Reads the intake partitions assigned to this worker and moves their events to the
    ledger (see the module docstring)."""

    def __init__(
        self,
        runtime: Runtime,
        app: Any,
        app_id: str,
        stages: Mapping[str, VerifyStage],
        ledger: OrderLedger,
        *,
        journal: Callable[[VerifyStage], list[JournalRecord]],
    ) -> None:
        """``stages``: per intake topic, the verify stage of its events."""
        catalog = runtime.catalog
        counts = {topic: catalog.resolve(topic).spec.partitions for topic in stages}
        super().__init__(
            app, "intake", tuple(stages), f"{app_id}-intake",
            partitions_of=counts, first_offsets=self._faust_offset,
        )  # fmt: skip
        self._rt = runtime
        self._app_id = app_id
        self._stages = stages
        self._ledger = ledger
        self._journal = journal
        self._faust_offsets: dict[tuple[str, int], int] | None = None

    async def run(self) -> None:
        consumer = await self.new_consumer(self._rt)
        producer = aio_producer(
            self._rt.settings, self._rt.agency_code, client_id=f"{self._app_id}-intake",
            linger_ms=2,
        )  # fmt: skip
        await consumer.start()
        await producer.start()
        committer = IntakeCommitter(
            self._rt, self._stages, self._ledger,
            producer=producer, consumer=consumer, journal=self._journal,
        )  # fmt: skip
        try:
            await self.batches(consumer, committer)
        finally:
            await producer.stop()
            await consumer.stop()

    async def _faust_offset(self, tp: TopicPartition) -> int | None:
        """Where the worker's faust group had got to on ``tp`` (read once)."""
        if self._faust_offsets is None:
            self._faust_offsets = await asyncio.to_thread(self._read_faust_offsets)
        return self._faust_offsets.get((tp.topic, tp.partition))

    def _read_faust_offsets(self) -> dict[tuple[str, int], int]:
        found = committed_offsets(
            self._rt.settings, self._rt.agency_code, self._app_id,
            client_id=f"{self._app_id}-intake",
        )  # fmt: skip
        topics = set(self.topics)
        return {
            place: offset
            for place, offset in found.items()
            if place[0] in topics and offset is not None and offset >= 0
        }
