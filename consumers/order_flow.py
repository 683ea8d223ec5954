"""The order flow of ``zf801 worker``: intake -> ledger -> watchlist.

Three stages, each fed by a faust agent. Each takes the records it is given (the worker
gives one at a time) and sends what they caused in one go, through faust's producer,
without awaiting each send: faust flushes that producer before it commits the offsets
of the records handled, so a worker that dies first handles them again, and every
effect here is idempotent.

- :meth:`OrderFlow.to_ledger` (the order intake and the police acknowledgements):
  verify each record once, journal what was accepted, and move it as a sealed entry to
  the ``order-ledger`` partition of its order id (:mod:`consumers.ledger`).
- :meth:`OrderFlow.apply_ledger`: apply each order's events in order, where its
  tracking lives (:mod:`consumers.order_book`); the watchlist changes go out as one
  sealed update per match key (:mod:`consumers.watch_updates`), each accepted intake
  record is forwarded to its court's province (:mod:`consumers.delivery`), each
  acknowledgement to its court.
- :meth:`OrderFlow.apply_updates`: apply the updates to the watchlist, each in its
  key's partition.

Each record is judged on its own: one that cannot be acted on is dead-lettered and
audited, and the others go on.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from consumers.addressing import ack_problem
from consumers.delivery import OrderDelivery
from consumers.ledger import Noticed, OrderLedger
from consumers.order_book import OrderBook
from consumers.outgoing import Outgoing
from consumers.runtime import Runtime
from consumers.sealed_table import SealedTable
from consumers.watch_updates import WatchUpdates
from consumers.watchlist import WatchEntry, to_micros
from schemas.envelope import KafkaRecord
from schemas.errors import UnknownAgencyError
from schemas.event_types import ACKNOWLEDGEMENT
from sign.state_seal import StateIntegrityError
from sign.verify_stage import ConsumedRecord, VerifiedEvent, VerifyStage

__all__ = ["Consumed", "OrderFlow"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Emit = Callable[[list[Outgoing]], Awaitable[None]]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class OrderFlow:
    """The three stages of the order flow (see the module docstring)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        book: OrderBook,
        ledger: OrderLedger,
        watch_updates: WatchUpdates,
        watchlist: SealedTable,
        delivery: OrderDelivery,
        journal: Callable[[VerifyStage], list[Outgoing]],
        emit: Emit,
    ) -> None:
        self.rt = runtime
        self.book = book
        self.ledger = ledger
        self.watch_updates = watch_updates
        self.watchlist = watchlist
        self.delivery = delivery
        self._journal = journal
        self._emit = emit

    # --- intake: verified, journaled, moved to the ledger ------------------------------
    async def to_ledger(self, messages: Iterable[Any], stage: VerifyStage) -> None:
        """Verify each record, then move it to the ledger partition of its order id."""
        entries: list[Outgoing] = []
        now_us = to_micros(_now())
        for message in messages:
            verified = stage.check_record(Consumed(message))
            if verified is None:
                continue
            try:
                entries.append(self.ledger.outgoing(verified, now_us))
            except KeyError:
                self.rt.refuse(verified, "ORDER_REFUSED", "the event names no order_id")
        # the journal of what was accepted goes with its effect, flushed before the commit
        await self._emit([*self._journal(stage), *entries])

    # --- the ledger: each order's events in order, where its tracking lives -------------
    async def apply_ledger(self, messages: Iterable[Any]) -> None:
        out: list[Outgoing] = []
        for message in messages:
            verified = self._opened(message, self.ledger.open, "order-ledger")
            if verified is None:
                continue
            if isinstance(verified, Noticed):
                self.book.noticed(verified.order_id, verified.notice)
            elif verified.envelope.type == ACKNOWLEDGEMENT:
                out.extend(self._acknowledged(verified))
            else:
                out.extend(self._apply_order_event(verified))
        await self._emit(out)

    def _apply_order_event(self, verified: VerifiedEvent) -> list[Outgoing]:
        """The order book's verdict: the watchlist updates of each match key, then (so
        the police hear of an order once it can hit) the record for the province."""
        try:
            applied = self.book.apply(verified)
        except Exception as exc:  # a bad record must not stop the watchlist
            log.exception("order record %s refused", verified.signature.event_id)
            self.rt.refuse(verified, "ORDER_REFUSED", f"{type(exc).__name__}: {exc}")
            self.book.drain_updates()
            return []
        now_us = to_micros(_now())
        out = [self.watch_updates.outgoing(u, now_us) for u in self.book.drain_updates()]
        if applied is None:
            return out
        try:
            out.append(self.delivery.forward(verified.record, applied.kind, applied.court))
        except UnknownAgencyError as exc:  # applied, but no provincial rule reaches it
            self.rt.refuse(verified, "UNDELIVERABLE", f"applied, not delivered: {exc}")
        return out

    def _acknowledged(self, verified: VerifiedEvent) -> list[Outgoing]:
        """Record a police acknowledgement and forward it, as signed by the unit, to the
        issuing court."""
        try:
            forwarded = self._acknowledge(
                verified.signature.agency_code, verified.signature.role, verified.payload
            )
        except Exception as exc:  # never stop on one record
            forwarded = ("ACK_REFUSED", f"{type(exc).__name__}: {exc}")
        if isinstance(forwarded, tuple):
            self.rt.refuse(verified, *forwarded)
            return []
        original = verified.record
        return [Outgoing(forwarded, KafkaRecord(original.key, original.value or b"",
                                                original.headers))]  # fmt: skip

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
        if track is not None and track.court != court:
            return "AGENCY_MISMATCH", f"order {order_id} is not court {court}'s"
        self.book.acknowledge(order_id, record["status"])
        return self.rt.catalog.topic_name("alerts", court=court)

    # --- the watchlist: each key's changes, in its partition ----------------------------
    async def apply_updates(self, messages: Iterable[Any]) -> None:
        now_us = to_micros(_now())
        for message in messages:
            update = self._opened(message, self.watch_updates.open, "watchlist-updates")
            if update is None:
                continue
            entry = WatchEntry.from_bytes(self.watchlist.payload(update.key))
            changed = update.applied_to(entry)
            if changed is not entry:
                self.watchlist.put(update.key, changed.to_bytes() if changed else b"", now_us)

    def _opened(
        self, message: Any, open_: Callable[[bytes | None, bytes | None], T], stage: str
    ) -> T | None:
        """A sealed record of the bus's own, opened; None (dead-lettered and audited) when
        it does not open: forged, altered, moved to another key, or not what it claims."""
        try:
            return open_(message.key, message.value)
        except (StateIntegrityError, ValueError) as exc:
            self.rt.refuse_record(Consumed(message).as_record(), "STATE_INTEGRITY", str(exc),
                                  stage=stage)  # fmt: skip
            return None


class Consumed:
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

    def as_record(self) -> ConsumedRecord:
        value = self.value if isinstance(self.value, bytes | None) else None
        return ConsumedRecord(
            self.topic, self.partition, self.offset, self.timestamp, self.key, value,
            tuple((name, header or b"") for name, header in self.headers),
        )  # fmt: skip
