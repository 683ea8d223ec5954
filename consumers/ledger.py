"""The order ledger: every verified order-lifecycle event, at the partition of its order id.

Orders, releases and expiry notices arrive on the order topics, keyed by the subject's
match key; acknowledgements on their own topic, keyed by order id but placed by whatever
partitioner the police system uses. An order's tracking (acknowledgement, deadlines,
closure) must be written from one stream partitioned by order id, or two workers would
each hold a part of it. So the intake (:mod:`consumers.intake_loop`) verifies each event
(signature, trust, replay: the costly part, once) and moves it, as a sealed
:class:`LedgerEntry`, to the ``order-ledger`` topic on the partition of its order id,
computed by the bus (:func:`topics.partitioning.partition_of`). The ledger agent, alone,
applies them to the order-tracking table, in order per order: an order and its release
share their intake partition, so they reach the ledger in that order too.

An entry carries the original record exactly as consumed (so what the police side is
sent is the court's own signed record, and a dead letter names the original's place)
and what its signature proved; it is sealed with the processor's state secret and bound
to its order id, so only this processor's entries are applied. Opening one decodes the
value again (microseconds), never re-checks the signature (a tenth of a millisecond).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from consumers.hit_clocks import HitClock
from consumers.outgoing import Outgoing
from schemas.codec import Codec
from schemas.envelope import KafkaRecord, parse_record
from sign.events import VerifiedSignature
from sign.state_seal import StateSealer
from sign.verify_stage import ConsumedRecord, VerifiedEvent
from topics.partitioning import KeyPartitions

__all__ = ["NOTICED_PER_RECORD", "HitMatched", "Noticed", "OrderLedger"]

NOTICED_PER_RECORD = 200
"""Orders named by one notice record at most (about 8 KB of order ids): the ledger agent
applies a record's orders in one go, and a few milliseconds of the event loop is enough."""


@dataclass(frozen=True, slots=True)
class Noticed:
    """A ledger entry of the bus's own: ``notice`` (``overdue``, ``expiry``, ``looked-back``)
    was sent for each of the orders, and must not be sent again after a restart. One entry
    carries the orders of one partition that one tick or look-back noticed alike."""

    order_ids: tuple[str, ...]
    notice: str


@dataclass(frozen=True, slots=True)
class HitMatched:
    """A ledger entry of the bus's own: the matcher made a hit of the order, whose
    confirmation clock starts (sent once the hit's transaction is committed)."""

    order_id: str
    clock: HitClock


class OrderLedger:
    """Seals verified events into ledger records for their order id's partition, and
    opens them again as verified events."""

    def __init__(
        self, sealer: StateSealer, store_name: str, topic: str, partitions: int, codec: Codec
    ) -> None:
        self._sealer = sealer
        self._store = store_name
        self.topic = topic
        self._partition_of = KeyPartitions(partitions)
        self._codec = codec

    def outgoing(self, verified: VerifiedEvent, now_us: int) -> Outgoing:
        """The ledger record of ``verified``. Raises KeyError when the event names no
        order id (no schema of the order topics lacks one)."""
        order_id = str(verified.payload["order_id"]).encode()
        record, signature = verified.record, verified.signature
        body = {
            "record": [
                record.topic, record.partition, record.offset, record.timestamp,
                _b64(record.key), _b64(record.value),
                [[name, _b64(value)] for name, value in record.headers],
            ],
            "signature": [
                signature.event_id, signature.event_type, signature.event_time.isoformat(),
                signature.agency_code, signature.role, signature.key_id,
            ],
        }  # fmt: skip
        payload = json.dumps(body, separators=(",", ":")).encode()
        value = self._sealer.seal(self._store, order_id, payload, now_us)
        return Outgoing(
            self.topic, KafkaRecord(order_id, value, ()), partition=self._partition_of(order_id)
        )

    def notices(self, noticed: Iterable[tuple[str, str]], now_us: int) -> list[Outgoing]:
        """The ledger records saying that each (order id, notice) was sent: one per notice
        and order-id partition, keyed by its first order id, of at most
        ``NOTICED_PER_RECORD`` orders (a look-back of thousands of orders is a few records
        for the ledger agent, not one per order)."""
        grouped: dict[tuple[str, int], list[str]] = {}
        for order_id, notice in noticed:
            partition = self._partition_of(order_id.encode())
            grouped.setdefault((notice, partition), []).append(order_id)
        out = []
        for (notice, partition), order_ids in grouped.items():
            for start in range(0, len(order_ids), NOTICED_PER_RECORD):
                part = order_ids[start : start + NOTICED_PER_RECORD]
                key = part[0].encode()
                payload = json.dumps({"noticed": notice, "orders": part}).encode()
                value = self._sealer.seal(self._store, key, payload, now_us)
                out.append(Outgoing(self.topic, KafkaRecord(key, value, ()), partition=partition))
        return out

    def hit_matched(self, order_id: str, clock: HitClock, now_us: int) -> Outgoing:
        """The ledger record starting the confirmation clock of a hit of the order."""
        key = order_id.encode()
        payload = json.dumps({"hit": clock.to_json()}).encode()
        value = self._sealer.seal(self._store, key, payload, now_us)
        return Outgoing(self.topic, KafkaRecord(key, value, ()), partition=self._partition_of(key))

    def open(self, key: bytes | None, raw: bytes | None) -> VerifiedEvent | Noticed | HitMatched:
        """The verified event (or :class:`Noticed`) of a consumed ledger record. Raises
        :class:`sign.state_seal.StateIntegrityError` when the seal does not check, and
        ValueError when the sealed body is not an entry or its record does not decode."""
        sealed = self._sealer.open(self._store, key, raw)
        try:
            body = json.loads(sealed.payload)
            if isinstance(body, dict) and set(body) == {"noticed"}:  # one order, as filed once
                return Noticed(((key or b"").decode(),), str(body["noticed"]))
            if isinstance(body, dict) and set(body) == {"noticed", "orders"}:
                return self._noticed(key or b"", body)
            if isinstance(body, dict) and set(body) == {"hit"}:
                return HitMatched((key or b"").decode(), HitClock.from_json(body["hit"]))
            topic, partition, offset, timestamp, rkey, value, headers = body["record"]
            event_id, event_type, event_time, agency, role, key_id = body["signature"]
            record = ConsumedRecord(
                str(topic), int(partition), int(offset), int(timestamp), _bytes(rkey),
                _bytes(value), tuple((str(name), _bytes(v) or b"") for name, v in headers),
            )  # fmt: skip
            signature = VerifiedSignature(
                str(event_id), str(event_type), dt.datetime.fromisoformat(event_time),
                str(agency), str(role), str(key_id),
            )  # fmt: skip
            envelope = parse_record(record.key, record.value, record.headers, codec=self._codec)
        except Exception as exc:  # whatever it is, the entry is not applied
            raise ValueError(f"a sealed ledger entry that is not one: {exc!r}") from exc
        if str(envelope.record.get("order_id")).encode() != key:
            raise ValueError(f"a ledger entry filed under {key!r} for another order")
        return VerifiedEvent(record, signature, envelope, envelope.record, redelivery=False)

    def _noticed(self, key: bytes, body: dict[str, Any]) -> Noticed:
        """A notice of several orders: each must be filed where its key is, or the ledger
        agent holding this partition would write tracking it does not hold."""
        order_ids = body["orders"]
        if not isinstance(order_ids, list) or not order_ids or order_ids[0] != key.decode():
            raise ValueError("a notice entry whose orders do not start with its key")
        partition = self._partition_of(key)
        if any(
            not isinstance(order_id, str) or self._partition_of(order_id.encode()) != partition
            for order_id in order_ids
        ):
            raise ValueError("a notice entry naming an order of another partition")
        return Noticed(tuple(order_ids), str(body["noticed"]))


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _bytes(text: Any) -> bytes | None:
    return None if text is None else base64.b64decode(text, validate=True)
