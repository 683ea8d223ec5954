"""What a processor publishes: a record it built and signed, and the topic it goes to."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.codec import Codec
from schemas.envelope import KafkaRecord, child_traceparent
from sign.events import EventSigner

__all__ = ["Outgoing", "OutgoingSigner"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A record and the Kafka topic it goes to; ``partition`` None lets the producer's
    partitioner place it by its key."""

    topic: str
    record: KafkaRecord
    partition: int | None = None

    async def send(self, producer: Any) -> Any:
        """Hand the record to an aiokafka ``producer``; the future of its acknowledgement."""
        record = self.record
        return await producer.send(
            self.topic, key=record.key, value=record.value, headers=list(record.headers),
            partition=self.partition,
        )  # fmt: skip


class OutgoingSigner:
    """Builds and signs a processor's own records (hits, blocks, notices, alerts).

    Their ids are derived from what caused them, so a redelivered input yields the same
    event; the values are built from verified inputs, so validation is skipped.
    """

    def __init__(self, signer: EventSigner, codec: Codec) -> None:
        self._signer = signer
        self._codec = codec

    def sign(
        self,
        topic: str,
        schema_name: str,
        record: Mapping[str, Any],
        *,
        key: bytes | None,
        event_id: str,
        now: dt.datetime,
        parent: str | None = None,
    ) -> Outgoing:
        """The signed record; ``parent`` is the causing event's traceparent."""
        signed = self._signer.signed_record(
            schema_name, record, key=key, event_id=event_id, time=now,
            traceparent=child_traceparent(parent) if parent else None,
            validate=False, codec=self._codec,
        )  # fmt: skip
        return Outgoing(topic, signed)
