"""The checkpointer (``zf801 checkpointer``): every so often, a signed ``LogCheckpoint``
for each checkpointed topic partition that has new committed records since its last one
(:mod:`sign.checkpoint`), so the log can be checked from Kafka alone.

It starts from the checkpoint topic itself: each partition's chain continues from the
head and end offset of its last verified checkpoint, so chains continue across restarts.
A round reads each partition up to the end it has when the round starts (committed
records only, as a replay reads them), then writes one checkpoint per partition that
moved, each acknowledged by the brokers before the chain moves on: a crash between two
checkpoints leaves the next run to cover the same records again, never a hole.

Checkpointed are the catalog's topics that carry signed events, keep them by time (not
by compaction, which removes records by design) and that the bus may read; per-court,
per-province and per-unit topics (alerts, query results, deliveries, the sightings
history, action notices) are read by their own agencies and are not. Run one
checkpointer per deployment: a second one would write a second checkpoint of each range,
which the replay names as a fork when its head differs.
"""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from consumers.polling import batches_to_end
from consumers.runtime import Runtime
from consumers.watchlist import derive_id
from schemas.agencies import get_agency
from sign.acceptance import AcceptancePolicy
from sign.checkpoint import CHECKPOINT_SCHEMA, PartitionChain
from topics.catalog import Catalog
from topics.clients import kafka_producer
from topics.spec import CleanupPolicy

__all__ = ["Checkpointer", "checkpointed_topics"]

log = logging.getLogger(__name__)

_OPERATION = "checkpoint"
_STALL_S = 5.0
_SEND_TIMEOUT_S = 30.0


def checkpointed_topics(catalog: Catalog) -> list[str]:
    """The Kafka names the checkpointer covers (see the module docstring)."""
    return [
        spec.name
        for spec in catalog.topics
        if not spec.is_template
        and spec.value_schemas
        and spec.cleanup_policy is CleanupPolicy.DELETE
        and "bus" in spec.access.read
        and spec.id != "checkpoints"
    ]


class Checkpointer:
    """Writes the checkpoints of ``topics`` as ``runtime``'s bus agency."""

    def __init__(
        self,
        runtime: Runtime,
        topics: Sequence[str],
        producer: KafkaProducer,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._rt = runtime
        self._agency = get_agency(runtime.agency_code)
        self.topics = list(topics)
        self._producer = producer
        self._clock = clock
        self._topic = runtime.catalog.topic_name("checkpoints")
        self.chains: dict[tuple[str, int], PartitionChain] = {}
        self._consumer: KafkaConsumer | None = None
        self.written = 0

    @classmethod
    def for_bus(cls, runtime: Runtime, topics: Sequence[str] | None = None) -> Checkpointer:
        producer = kafka_producer(
            runtime.settings, runtime.agency_code, client_id="zf801-checkpointer"
        )
        return cls(runtime, topics or checkpointed_topics(runtime.catalog), producer)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self._producer.close()

    def load(self) -> int:
        """Each partition's last checkpoint from the checkpoint topic (each verified; a
        refused one is dead-lettered and audited as any refused record); returns how
        many were read."""
        consumer = self._rt.stream_reader(
            self._agency, [self._topic], f"{_OPERATION}.load", "zf801-checkpointer-load"
        )
        stage = self._rt.verify_stage(acceptance=AcceptancePolicy.history())
        read = 0
        try:
            for batch in batches_to_end(consumer, idle_s=_STALL_S):
                for message in batch:
                    verified = stage.check_record(message)
                    if verified is None:
                        continue
                    read += 1
                    value = verified.payload
                    where = (value["topic"], value["partition"])
                    known = self.chains.get(where)
                    if known is None or value["end_offset"] > known.start:
                        self.chains[where] = PartitionChain(
                            value["end_offset"], bytes(value["head"])
                        )
        finally:
            consumer.close()
        return read

    def _reader(self) -> KafkaConsumer:
        if self._consumer is None:
            start = {where: chain.start for where, chain in self.chains.items()}
            self._consumer = self._rt.stream_reader(
                self._agency, self.topics, f"{_OPERATION}.read", "zf801-checkpointer",
                start=start,
            )  # fmt: skip
            self._rt.audit.record(
                user=getpass.getuser(), role=str(self._agency.role),
                agency_code=self._agency.code, operation=f"{_OPERATION}.read",
                target=", ".join(self.topics), result="SUCCESS", detail=None,
            )  # fmt: skip
            assignment = sorted(self._consumer.assignment())
            for tp, first in self._consumer.beginning_offsets(assignment).items():
                self.chains.setdefault((tp.topic, tp.partition), PartitionChain(first))
        return self._consumer

    def round(self, stop: Callable[[], bool] = lambda: False) -> int:
        """Read every partition to the end it has now and checkpoint those that moved;
        returns the checkpoints written."""
        consumer = self._reader()
        assignment = sorted(consumer.assignment())
        self._skip_deleted(consumer, assignment)
        # an idle stop: e.g. a transaction left open; what was read is checkpointed
        for batch in batches_to_end(consumer, stop, idle_s=_STALL_S, max_records=2000):
            for message in batch:
                self.chains[(message.topic, message.partition)].add(message)
        written = 0
        for tp in assignment:
            chain = self.chains[(tp.topic, tp.partition)]
            if chain.records:
                self._write(tp, chain, consumer.position(tp))
                written += 1
        return written

    def _skip_deleted(self, consumer: KafkaConsumer, assignment: list[TopicPartition]) -> None:
        """A partition whose unread records retention deleted (the checkpointer was down
        longer than the topic keeps them) continues from its first kept record, from the
        same head: its next checkpoint does not start where the last ended, and a replay
        names it (CHECKPOINT_UNLINKED) instead of vouching for what nobody read."""
        for tp, first in consumer.beginning_offsets(assignment).items():
            chain = self.chains[(tp.topic, tp.partition)]
            if chain.records == 0 and first > chain.start:
                log.warning(
                    "%s[%d]: offsets %d-%d were deleted before they were checkpointed",
                    tp.topic, tp.partition, chain.start, first - 1,
                )  # fmt: skip
                self.chains[(tp.topic, tp.partition)] = PartitionChain(first, chain.previous_head)
                consumer.seek(tp, first)

    def _write(self, tp: TopicPartition, chain: PartitionChain, end: int) -> None:
        value: dict[str, Any] = chain.checkpoint_value(tp.topic, tp.partition, end)
        value["checkpoint_id"] = derive_id(
            "checkpoint", tp.topic, tp.partition, chain.start, end, chain.head.hex()
        )
        now = self._clock()
        value["written_at"] = now
        record = self._rt.signer.signed_record(
            CHECKPOINT_SCHEMA, value, key=f"{tp.topic}:{tp.partition}".encode(),
            event_id=value["checkpoint_id"], time=now, codec=self._rt.codec,
        )  # fmt: skip
        future = self._producer.send(
            self._topic, key=record.key, value=record.value, headers=list(record.headers)
        )
        future.get(timeout=_SEND_TIMEOUT_S)
        self.chains[(tp.topic, tp.partition)] = chain.next(end)
        self.written += 1
        log.info(
            "checkpoint %s[%d] %d-%d: %d record(s)",
            tp.topic, tp.partition, chain.start, end - 1, chain.records,
        )  # fmt: skip

    def run(self, stop: Callable[[], bool], interval_s: float) -> None:
        """Rounds every ``interval_s`` until ``stop()``; a round in hand is finished."""
        while not stop():
            self.round(stop)
            deadline = time.monotonic() + interval_s
            while not stop() and time.monotonic() < deadline:
                time.sleep(min(0.2, interval_s))
