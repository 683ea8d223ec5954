"""How the worker's parts send what they make: two ways, one per kind of guarantee.

- :meth:`WorkerSends.emit` goes through faust's producer without waiting for each
  acknowledgement. faust flushes that producer before it commits the offsets of the
  events that caused the sends, so a worker that dies first redoes those events (at
  least once, and every effect sent this way is idempotent); a send that fails stops the
  worker, which then resumes from its last commit. This is what lets the ledger and
  watchlist agents run at the broker's pace rather than one round trip per record.
- :meth:`WorkerSends.publish` goes through a producer of its own and returns once every
  record is acknowledged: for what a timer or a committed batch sends, outside any
  agent's offsets (notices, retroactive hits, the ledger records that remember them).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaProducer

from consumers.outgoing import Outgoing
from schemas.settings import Settings
from topics.clients import aio_producer

__all__ = ["WorkerSends"]

log = logging.getLogger(__name__)


class WorkerSends:
    """The worker's two ways to send."""

    def __init__(self, app: Any, settings: Settings, agency: str, app_id: str) -> None:
        self._app = app
        self._settings = settings
        self._agency = agency
        self._client_id = f"{app_id}-notices"
        self._producer: AIOKafkaProducer | None = None
        self._crashing: asyncio.Future[Any] | None = None

    async def _own_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            self._producer = aio_producer(self._settings, self._agency, client_id=self._client_id)
            await self._producer.start()
        return self._producer

    async def publish(self, outgoing: list[Outgoing]) -> None:
        """Send ``outgoing`` and return once every record is acknowledged."""
        if not outgoing:
            return
        producer = await self._own_producer()
        await asyncio.gather(*[await item.send(producer) for item in outgoing])

    async def emit(self, outgoing: list[Outgoing]) -> None:
        """Send ``outgoing`` through faust's producer, flushed before the offsets of the
        event being processed are committed (see the module docstring)."""
        producer = self._app.producer
        for item in outgoing:
            future = await producer.send(
                item.topic, item.record.key, item.record.value, item.partition, None,
                list(item.record.headers),
            )  # fmt: skip
            future.add_done_callback(self._on_emitted)

    def _on_emitted(self, future: Any) -> None:
        if future.cancelled() or future.exception() is None:
            return
        exc = future.exception()
        log.error("a send failed: %r; the worker stops and resumes from its last commit", exc)
        self._crashing = asyncio.ensure_future(self._app.crash(exc))

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
