"""The worker's order flow: the faust agents that take each order-lifecycle event from the
order ledger to the order's tracking, the watchlist, and the police.

- **Intake** (:mod:`consumers.intake_loop`, in batches, not here): each event of the
  three order topics, the police acknowledgements and the hit and encounter
  confirmations is verified once and moved to the ``order-ledger`` on the partition of
  its order id (:mod:`consumers.ledger`).
- **Ledger agent**: applies each order's events in order, where its ``order_tracking``
  entry lives (:mod:`consumers.order_book`): an order enters the watchlist, a verified
  release or the bus's own expiry notice takes it out, as one sealed update per match key
  of the subject (:mod:`consumers.watch_updates`). Every record the book accepted is then
  forwarded, unchanged, to the delivery topic of its kind for the issuing court's province
  (:mod:`consumers.delivery`); each acknowledgement is recorded and forwarded, as signed
  by the police unit, to the issuing court's alert topic.
- **Watchlist agent**: applies the updates to the ``watchlist`` table, in the partition
  of each key.

No record stops the flow: whatever cannot be applied is dead-lettered, audited and
skipped.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from consumers.addressing import ack_problem
from consumers.delivery import OrderDelivery
from consumers.ledger import HitMatched, Noticed, OrderLedger
from consumers.lookback import LookBackRequest
from consumers.order_book import Applied, OrderBook
from consumers.outgoing import Outgoing
from consumers.runtime import Runtime
from consumers.sealed_table import SealedTable
from consumers.watch_updates import WatchUpdates
from consumers.watchlist import WatchEntry
from consumers.worker_sends import WorkerSends
from schemas.envelope import KafkaRecord, to_micros
from schemas.errors import UnknownAgencyError
from schemas.event_types import ACKNOWLEDGEMENT, ENCOUNTER_CONFIRMATION, HIT_CONFIRMATION
from sign.state_seal import StateIntegrityError
from sign.verify_stage import ConsumedRecord, VerifiedEvent

__all__ = ["OrderFlow"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def _now_us() -> int:
    return to_micros(dt.datetime.now(dt.UTC))


class OrderFlow:
    """The order-lifecycle agents of one worker (see the module docstring)."""

    def __init__(
        self,
        runtime: Runtime,
        sends: WorkerSends,
        *,
        delivery: OrderDelivery,
        book: OrderBook,
        ledger: OrderLedger,
        watch_updates: WatchUpdates,
        watchlist: SealedTable,
        looks_back: bool,
    ) -> None:
        self._rt = runtime
        self._sends = sends
        self.book = book
        self.ledger = ledger
        self.watch_updates = watch_updates
        self.watchlist = watchlist
        self.delivery = delivery
        self._looks_back = looks_back
        self.lookbacks: list[LookBackRequest] = []
        """Orders entered or corrected since the last look-back ran."""

    # --- the ledger: each order's events, in order, where its tracking lives ----------------
    async def ledger_agent(self, stream: Any) -> None:
        async for event in stream.events():
            verified = self._opened(event.message, self.ledger.open, "order-ledger")
            if verified is None:
                continue
            if isinstance(verified, Noticed):
                for order_id in verified.order_ids:
                    self.book.noticed(order_id, verified.notice)
                await self._emit_watch_updates()  # a purge takes an expired order off
            elif isinstance(verified, HitMatched):
                self.book.hit_matched(verified.order_id, verified.clock)
            elif verified.envelope.type in (HIT_CONFIRMATION, ENCOUNTER_CONFIRMATION):
                self.book.confirm_hit(verified)
            elif verified.envelope.type == ACKNOWLEDGEMENT:
                await self._acknowledged(verified)
            else:
                await self._apply_order_event(verified)

    def _opened(self, message: Any, open_: Callable[[bytes | None, bytes | None], T], stage: str
                ) -> T | None:  # fmt: skip
        """A sealed record of the bus's own, opened; None (dead-lettered and audited) when
        it does not open: forged, altered, moved to another key, or not what it claims."""
        try:
            return open_(message.key, message.value)
        except (StateIntegrityError, ValueError) as exc:
            record = _Consumed.of(message).as_record()
            self._rt.refuse_record(record, "STATE_INTEGRITY", str(exc), stage=stage)
            return None

    async def _apply_order_event(self, verified: VerifiedEvent) -> None:
        try:
            applied = self.book.apply(verified)
        except Exception as exc:  # a bad record must not stop the watchlist
            log.exception("order record %s refused", verified.signature.event_id)
            self._rt.refuse(verified, "ORDER_REFUSED", f"{type(exc).__name__}: {exc}")
            self.book.drain_updates()
            self.book.drain_lookbacks()
            return
        await self._emit_watch_updates()  # before the police hear of the order
        if self._looks_back:
            self.lookbacks += [
                LookBackRequest(order, keys, applied_us // 1000)
                for order, keys, applied_us in self.book.drain_lookbacks()
            ]
        if applied is not None:
            await self._deliver(verified, applied)

    async def _emit_watch_updates(self) -> None:
        """The book's watchlist changes, each to the partition of its key."""
        now_us = _now_us()
        await self._sends.emit([
            self.watch_updates.outgoing(update, now_us) for update in self.book.drain_updates()
        ])  # fmt: skip

    async def _deliver(self, verified: VerifiedEvent, applied: Applied) -> None:
        """Forward an accepted intake record to the police units of its court's province,
        before its offset is committed: a redelivery forwards the same record again."""
        try:
            outgoing = self.delivery.forward(verified.record, applied.kind, applied.court)
        except UnknownAgencyError as exc:  # applied, but no provincial rule reaches it
            self._rt.refuse(verified, "UNDELIVERABLE", f"applied, not delivered: {exc}")
            return
        await self._sends.emit([outgoing])

    async def _acknowledged(self, verified: VerifiedEvent) -> None:
        """Record a police acknowledgement and forward it, as signed by the unit, to the
        issuing court."""
        try:
            forwarded = self._acknowledge(
                verified.signature.agency_code, verified.signature.role, verified.payload
            )
        except Exception as exc:  # never stop on one record
            forwarded = ("ACK_REFUSED", f"{type(exc).__name__}: {exc}")
        if isinstance(forwarded, tuple):
            self._rt.refuse(verified, *forwarded)
            return
        original = verified.record
        record = KafkaRecord(original.key, original.value or b"", original.headers)
        await self._sends.emit([Outgoing(forwarded, record)])

    def _acknowledge(
        self, unit: str, role: str, record: Mapping[str, Any]
    ) -> str | tuple[str, str]:
        """Record a police acknowledgement; the court's alert topic to forward it to, or
        why it is refused: the provincial rules (:func:`consumers.addressing.ack_problem`),
        and the order, when tracked, must be the acknowledged court's."""
        problem = ack_problem(unit, role, record)
        if problem is not None:
            return problem
        order_id, court = str(record["order_id"]), record["court_code"]
        track = self.book.track(order_id)
        # An acknowledgement can reach the ledger before its order (they come in on two
        # intake topics, read in one batch): one for an order not tracked yet is forwarded.
        if track is not None and track.court != court:
            return "AGENCY_MISMATCH", f"order {order_id} is not court {court}'s"
        if (
            track is not None
            and track.kind is not None
            and (track.kind.value != record["order_kind"])
        ):  # a unit of another role
            return "MISPLACED", (
                f"order {order_id} is a {track.kind} order, acknowledged as {record['order_kind']}"
            )
        self.book.acknowledge(order_id, record["status"])
        return self._rt.catalog.topic_name("alerts", court=court)

    # --- the watchlist: each change in its key's partition ----------------------------------
    async def watchlist_agent(self, stream: Any) -> None:
        """Apply the ledger's watchlist changes, each in its key's partition."""
        async for event in stream.events():
            update = self._opened(event.message, self.watch_updates.open, "watchlist-updates")
            if update is None:
                continue
            entry = WatchEntry.from_bytes(self.watchlist.payload(update.key))
            changed = update.applied_to(entry)
            if changed is not entry:
                self.watchlist.put(update.key, changed.to_bytes() if changed else b"", _now_us())


class _Consumed:
    """A faust message seen as a consumed record (faust timestamps are in seconds)."""

    __slots__ = ("headers", "key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, message: Any) -> None:
        self.topic = message.topic
        self.partition = message.partition
        self.offset = message.offset
        self.timestamp = int(message.timestamp * 1000)
        self.key = message.key
        self.value = message.value
        headers = message.headers or ()
        self.headers = list(headers.items() if isinstance(headers, Mapping) else headers)

    @classmethod
    def of(cls, message: Any) -> _Consumed:
        return cls(message)

    def as_record(self) -> ConsumedRecord:
        value = self.value if isinstance(self.value, bytes | None) else None
        return ConsumedRecord(
            self.topic, self.partition, self.offset, self.timestamp, self.key, value,
            tuple((name, header or b"") for name, header in self.headers),
        )  # fmt: skip
