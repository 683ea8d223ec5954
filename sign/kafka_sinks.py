"""Kafka sinks of the verify stage: signed DeadLetter and AuditRecord events.

Both sinks take the topic *name* (the caller resolves the catalog ids ``dead-letter`` and
``audit`` with ``topics``; ``sign`` sits below ``topics`` in the import graph) and a
producer with kafka-python's ``send(topic, key=, value=, headers=)`` returning a future.
Each write waits for the broker's acknowledgement: a rejection is rare, and the verify
stage must know it is recorded before the consumer may commit past it.

Ids are deterministic, derived from where the original was read, so a redelivered bad
record yields the same dead-letter id and a consumer of the dead-letter topic can dedupe.
The audit sink keeps the per-agency hash chain of the AuditRecord schema: ``sequence``
counts up, ``previous_hash`` is SHA-256 of the previous record's value bytes. Given a
claimed :class:`~sign.audit_chain.ChainSlot`, it continues the chain the slot's last
process left and records each new position before the record is sent, so chains continue
across runs and two processes never fork one (:mod:`sign.audit_chain`).
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, Protocol

from schemas.codec import Codec
from schemas.envelope import KafkaRecord
from sign.audit_chain import ChainSlot
from sign.events import EventSigner
from sign.verify_stage import Rejection

__all__ = [
    "AUDIT_SCHEMA",
    "DEAD_LETTER_SCHEMA",
    "ClientInfo",
    "KafkaAuditSink",
    "KafkaDeadLetterSink",
    "RecordProducer",
    "dead_letter_value",
]

DEAD_LETTER_SCHEMA = "cn.zf801.bus.v1.DeadLetter"
AUDIT_SCHEMA = "cn.zf801.bus.v1.AuditRecord"
_NAMESPACE = uuid.UUID("6b1f5f7e-2d0c-4d55-9b0e-7a5f0c3e8f01")  # for uuid5 ids of this module
_MAX_DETAIL = 2000
_MAX_HEADER_ITEMS = 64
_MAX_HEADER_NAME = 256
_MAX_HEADER_VALUE = 65536
_MAX_KEY = 65536
_MAX_VALUE = 8 * 1024 * 1024


class RecordProducer(Protocol):
    def send(
        self, topic: str, *, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """The AuditRecord's client: host, address and application of this process."""

    host: str
    address: str
    application: str

    @classmethod
    def of_this_process(cls) -> ClientInfo:
        host = socket.gethostname()[:255]
        try:
            address = socket.gethostbyname(host)
        except OSError:
            address = "127.0.0.1"
        try:
            version = metadata.version("zf801-bus")
        except metadata.PackageNotFoundError:
            version = "0"
        return cls(host=host, address=address, application=f"zf801-bus/{version}")


def _position(rejection: Rejection) -> str:
    record = rejection.record
    return f"{record.topic}/{record.partition}@{record.offset}"


def _detail(rejection: Rejection) -> str:
    return f"{rejection.reason} [{rejection.stage}]: {rejection.detail}"[:_MAX_DETAIL]


def dead_letter_value(rejection: Rejection) -> dict[str, Any]:
    """The DeadLetter record for a rejection (oversized originals are cut to the limits)."""
    record = rejection.record
    headers = [
        {"name": name[:_MAX_HEADER_NAME], "value": value[:_MAX_HEADER_VALUE]}
        for name, value in record.headers[:_MAX_HEADER_ITEMS]
    ]
    return {
        "reason": rejection.category,
        "detail": _detail(rejection),
        "failed_stage": rejection.failed_stage,
        "processor": rejection.verifier,
        "original": {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
        },
        "original_timestamp": (
            datetime.fromtimestamp(record.timestamp / 1000, UTC) if record.timestamp >= 0 else None
        ),
        "original_key": None if record.key is None else record.key[:_MAX_KEY],
        "original_value": (record.value or b"")[:_MAX_VALUE],
        "original_headers": headers,
        "dead_lettered_at": rejection.rejected_at,
    }


class _SignedSender:
    def __init__(
        self,
        producer: RecordProducer,
        topic: str,
        signer: EventSigner,
        timeout_s: float,
        codec: Codec | None,
    ) -> None:
        self._producer = producer
        self.topic = topic
        self._signer = signer
        self.timeout_s = timeout_s
        self._codec = codec

    def send(
        self,
        schema: str,
        value: dict[str, Any],
        event_id: uuid.UUID,
        when: datetime,
        *,
        wait: bool = True,
        before_send: Callable[[KafkaRecord], None] | None = None,
    ) -> tuple[KafkaRecord, Any]:
        """Sign and send one record: (the signed record, its future), the future already
        resolved when ``wait`` (a rejection raises here). ``before_send`` sees the signed
        record before it is sent."""
        signed = self._signer.signed_record(
            schema, value, key=str(event_id).encode("ascii"), event_id=event_id, time=when,
            codec=self._codec,
        )  # fmt: skip
        if before_send is not None:
            before_send(signed)
        future = self._producer.send(
            self.topic, key=signed.key, value=signed.value, headers=list(signed.headers)
        )
        if wait:
            future.get(timeout=self.timeout_s)
        return signed, future


class KafkaDeadLetterSink:
    """Writes each rejection as a signed DeadLetter event and waits for the ack."""

    def __init__(
        self,
        producer: RecordProducer,
        topic: str,
        signer: EventSigner,
        *,
        timeout_s: float = 10.0,
        codec: Codec | None = None,
    ) -> None:
        self._sender = _SignedSender(producer, topic, signer, timeout_s, codec)

    def write(self, rejection: Rejection) -> None:
        event_id = uuid.uuid5(_NAMESPACE, "dead-letter " + _position(rejection))
        self._sender.send(
            DEAD_LETTER_SCHEMA, dead_letter_value(rejection), event_id, rejection.rejected_at
        )


class KafkaAuditSink:
    """Writes each rejection as a signed, hash-chained AuditRecord (result FAILURE/DENIED)."""

    def __init__(
        self,
        producer: RecordProducer,
        topic: str,
        signer: EventSigner,
        *,
        client: ClientInfo | None = None,
        timeout_s: float = 10.0,
        codec: Codec | None = None,
        chain: ChainSlot | None = None,
    ) -> None:
        """``chain``: the claimed slot whose position this sink continues and keeps
        (:mod:`sign.audit_chain`); without one, a new chain starts at sequence 0."""
        self._sender = _SignedSender(producer, topic, signer, timeout_s, codec)
        self._client = client or ClientInfo.of_this_process()
        self._lock = threading.Lock()
        self._pending: list[Any] = []
        self._chain = chain
        self.sequence, self.previous_hash = chain.load() if chain else (0, bytes(32))

    def resume(self, sequence: int, previous_hash: bytes) -> None:
        """Continue a chain whose last record had ``sequence - 1`` and hashed to this."""
        with self._lock:
            self.sequence, self.previous_hash = sequence, previous_hash

    def write(self, rejection: Rejection) -> None:
        """Audit a refused record (``event.verify``, FAILURE or DENIED). Its id is derived
        from the chain position and the record's place, so a redelivery dedupes."""
        event_id = uuid.uuid5(
            _NAMESPACE, f"audit {rejection.verifier} {self.sequence} {_position(rejection)}"
        )
        self.record(
            user=rejection.verifier,
            role="processor",
            agency_code=rejection.verifier,
            operation="event.verify",
            target=_position(rejection),
            result="DENIED" if rejection.reason == "ROLE_NOT_ALLOWED" else "FAILURE",
            detail=_detail(rejection),
            at=rejection.rejected_at,
            event_id=event_id,
        )

    def record(
        self,
        *,
        user: str,
        role: str,
        agency_code: str,
        operation: str,
        target: str,
        result: str,
        detail: str | None,
        at: datetime | None = None,
        event_id: uuid.UUID | None = None,
        wait: bool = True,
    ) -> None:
        """Audit any operation (who, in which role and agency, did what to which target,
        with what result, from which client), next in this sink's hash chain. With
        ``wait=False`` the record is only sent (batched with others): :meth:`settle`
        returns once every such record is acknowledged, or raises."""
        when = at or datetime.now(UTC)
        record_id = event_id or uuid.uuid4()
        with self._lock:
            value = {
                "record_id": str(record_id),
                "sequence": self.sequence,
                "previous_hash": self.previous_hash,
                "user": user[:64],
                "role": role[:64],
                "agency_code": agency_code,
                "operation": operation[:64],
                "target": target[:256],
                "result": result,
                "result_detail": None if detail is None else detail[:_MAX_DETAIL],
                "client": {
                    "host": self._client.host,
                    "address": self._client.address,
                    "application": self._client.application,
                },
                "occurred_at": when,
            }
            _, future = self._sender.send(
                AUDIT_SCHEMA, value, record_id, when, wait=wait, before_send=self._advance
            )
            if not wait:
                self._pending.append(future)

    def _advance(self, signed: KafkaRecord) -> None:
        """Move the chain past ``signed`` before it is sent (write-ahead: a send that
        fails leaves a gap in the chain, never two records after one predecessor)."""
        self.previous_hash = hashlib.sha256(signed.value or b"").digest()
        self.sequence += 1
        if self._chain is not None:
            self._chain.save(self.sequence, self.previous_hash)

    def settle(self, timeout_s: float | None = None) -> None:
        """Wait until every record sent with ``wait=False`` is acknowledged (the chain is
        complete on the topic up to here); raises the first failure."""
        with self._lock:
            pending, self._pending = self._pending, []
        deadline = time.monotonic() + (self._sender.timeout_s if timeout_s is None else timeout_s)
        for future in pending:
            future.get(timeout=max(0.0, deadline - time.monotonic()))
