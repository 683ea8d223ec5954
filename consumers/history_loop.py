"""``zf801 history-forwarder``: sightings to their province's history, off the matcher.

:class:`consumers.sighting_history.SightingHistory` decides, from a record's headers alone,
which history topic a sighting read from ``sightings-person`` goes to. This loop does the
forwarding in a process and a consumer group of its own (``<application>-sightings-history``),
so that it never delays a hit nor shares the worker's event loop: forwarding every hotel
check-in doubles what is produced, and inside the matcher's transaction each hit waited
for its whole batch of copies (``make bench``: the matcher with the copies in its
transaction ran at 0.10 of the plain loop, against 0.55 without).

Delivery is at least once: each batch's copies are acknowledged by the brokers
(``acks=all``, idempotent producer) before the batch's offsets are committed, so a worker
killed in between forwards that batch again when its partitions are read next. A copy
forwarded twice is the same signed record (same ``ce_id``): a responder keeps each report
once under its event id (:mod:`consumers.history_follower`), so a repeat changes nothing.
Several forwarders share the partitions as one group.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, IllegalStateError

from consumers.outgoing import Outgoing
from consumers.runtime import Runtime
from consumers.sighting_history import SightingHistory
from schemas.agencies import load_agencies
from topics.acls import processor_application
from topics.clients import aio_consumer, aio_producer, require_topics

__all__ = ["HistoryForwarder", "commit_held"]

log = logging.getLogger(__name__)

_POLL_MS = 500
_BATCH_RECORDS = 2000


class HistoryForwarder:
    """Forwards each record of ``source_topic`` that ``forward`` gives a copy of."""

    @classmethod
    def for_bus(cls, runtime: Runtime) -> HistoryForwarder:
        """The bus's forwarder: ``sightings-person`` to the history topic of each reporting
        unit's province, in the processors' group ``<application>-sightings-history``."""
        history = SightingHistory(runtime.catalog, load_agencies())
        group = f"{processor_application(runtime.catalog)}-sightings-history"
        return cls(runtime, history.source_topic, history.forward, history.topics(), group)

    def __init__(
        self,
        runtime: Runtime,
        source_topic: str,
        forward: Callable[[Any], Outgoing | None],
        targets: tuple[str, ...],
        group_id: str,
    ) -> None:
        self._rt = runtime
        self._source = source_topic
        self._forward = forward
        self._targets = targets
        self.group_id = group_id
        self.read = 0
        """Records read from the source topic so far."""
        self.forwarded = 0
        """Copies acknowledged by the brokers so far."""

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Forward until ``stop`` is set (the batch in hand is finished and committed)."""
        stop = stop or asyncio.Event()
        settings, agency = self._rt.settings, self._rt.agency_code
        # Refused a topic it must write, the loop would fail on its first batch: ask first
        # (aio_consumer asks the same about the topic it reads).
        await asyncio.to_thread(require_topics, settings, agency, self._targets, "write")
        consumer = aio_consumer(
            settings, agency, self._source, group_id=self.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
        )  # fmt: skip
        producer = aio_producer(settings, agency, linger_ms=20)
        await consumer.start()
        await producer.start()
        log.info("sightings history: forwarding from %s (group %s)", self._source, self.group_id)
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=_POLL_MS, max_records=_BATCH_RECORDS)
                if not batch:
                    continue
                await self.forward_batch(producer, [m for ms in batch.values() for m in ms])
                await commit_held(consumer, {tp: ms[-1].offset + 1 for tp, ms in batch.items()})
        finally:
            await producer.stop()
            await consumer.stop()

    async def forward_batch(self, producer: AIOKafkaProducer, records: list[Any]) -> int:
        """Send the copies of ``records`` and wait until the brokers have them all (a send
        that fails raises here, before the batch's offsets are committed)."""
        sent = []
        for message in records:
            copy = self._forward(message)
            if copy is None:
                continue
            key, value, headers = copy.record.key, copy.record.value, list(copy.record.headers)
            sent.append(
                await producer.send(copy.topic, value, key, copy.partition, headers=headers)
            )
        if sent:
            await asyncio.gather(*sent)
        self.read += len(records)
        self.forwarded += len(sent)
        return len(sent)


async def commit_held(consumer: AIOKafkaConsumer, offsets: dict[Any, int]) -> None:
    """Commit the offsets after a forwarded batch for the partitions still held. A
    partition the group moved meanwhile (a forwarder joined or left) is not committed: its
    next holder forwards those records again, and the responders keep each once."""
    held = consumer.assignment()
    kept = {tp: offset for tp, offset in offsets.items() if tp in held}
    if len(kept) < len(offsets):
        log.info(
            "sightings history: %d partition(s) moved before their commit", len(offsets) - len(kept)
        )
    if not kept:
        return
    try:
        await consumer.commit(kept)
    except (CommitFailedError, IllegalStateError) as exc:  # the group rebalanced meanwhile
        log.info("sightings history: commit after a rebalance refused (%s); forwarded again", exc)
