"""A list subscriber follows the dishonest-debtor list into its mirror and confirms each
removal with a signed receipt to the court that removed the listing.

For each record of the compacted list topic (keyed by the debtor's match key):

1. **Verify** (:meth:`consumers.runtime.Runtime.verify_stage`): signature, trust, a court
   as signer, envelope and schema. The list is read whole: no acceptance window, and a
   record read twice changes nothing (the mirror keeps the latest per debtor).
2. **Check** what the mirror is about to act on, or refuse it (dead letter and audit, the
   field and the rule named; nothing reaches the mirror):
   - every identifier again, as the edge checks it (``debtor.id_number`` check digit,
     ``debtor.organisation_code`` check character, the case number's court, ...);
   - the signer is the enforcing court (``enforcing_court_code``) [rule sender];
   - the record key is the match key of the debtor it names [rule key.subject];
   - a listing once removed never returns [rule listing.removed];
   - a removal removes the debtor's current listing [rule removal.listing], of the court
     that listed it [rule removal.court]. A removal whose listing is not in the mirror is
     refused if it is younger than the topic's ``min.compaction.lag.ms`` (its listing must
     still be on the topic before it); an older one may follow a listing compaction
     dropped: it changes nothing and is confirmed.
3. **Apply** a poll's changes and the offsets after them in one SQLite transaction
   (:class:`consumers.debtor_mirror.DebtorMirror`), the receipts of the removals queued
   in it; then **send** the queued receipts, signed, and mark them sent.

A mirror that last caught up longer ago than the topic's ``delete.retention.ms`` may have
missed a tombstone that compaction has since dropped: it is rebuilt from the topic's start
(:meth:`DebtorSubscriber.open_mirror` says so), as is a mirror file that is missing.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer

from consumers.debtor_mirror import DebtorMirror, MirrorListing, MirrorRemoval, PendingReceipt
from consumers.polling import batches_to_end, poll_batches
from consumers.runtime import Runtime
from producers.events import OutgoingEvent
from producers.publisher import Publisher
from producers.routes import outgoing_event
from schemas.agencies import Agency, AgencyRole, get_agency
from schemas.edge import normalise_event
from schemas.errors import BusError, IdentifierError
from schemas.matchkey import MatchKeyer
from sign.acceptance import AcceptancePolicy
from sign.verify_stage import VerifiedEvent

__all__ = [
    "LISTING",
    "LIST_TOPIC_ID",
    "RECEIPT",
    "RECEIPTS_TOPIC_ID",
    "REMOVAL",
    "DebtorSubscriber",
    "MirrorState",
    "list_subscriber",
    "receipt_event_id",
]

log = logging.getLogger(__name__)

LIST_TOPIC_ID = "dishonest-debtors"
RECEIPTS_TOPIC_ID = "removal-receipts"
LISTING = "cn.zf801.court.v1.DishonestDebtorListing"
REMOVAL = "cn.zf801.court.v1.DishonestDebtorRemoval"
RECEIPT = "cn.zf801.court.v1.RemovalReceipt"
_STAGE = "debtor-list"
_CATCH_UP_IDLE_S = 30.0
"""Quiet that ends the reading of what the list held at start (a partition stuck short
of its end, e.g. behind an open transaction)."""
_RECEIPT_NAMESPACE = uuid.UUID("6f1c2a8e-4b1d-5d7e-9a0c-3e5f7b9d1c2a")


def receipt_event_id(removal_event_id: str, subscriber: str) -> str:
    """The receipt's event id, derived from the removal and the subscriber: a receipt sent
    again after a crash carries the same id."""
    return str(uuid.uuid5(_RECEIPT_NAMESPACE, f"{removal_event_id}/{subscriber}"))


@dataclass(frozen=True, slots=True)
class MirrorState:
    """How the mirror was found when the subscriber opened it."""

    rebuilt: bool
    reason: str


class _RefusedError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def list_subscriber(code: str) -> Agency:
    """The agency of ``code`` if it is a list subscriber (only those keep a mirror), else
    a :class:`BusError` naming its role."""
    agency = get_agency(code)
    if agency.role is not AgencyRole.LIST_SUBSCRIBER:
        raise BusError(
            f"agency {agency.code} (role {agency.role}) subscribes to no list: "
            f"only {AgencyRole.LIST_SUBSCRIBER} agencies keep a mirror"
        )
    return agency


class DebtorSubscriber:
    """Keeps the mirror of the list subscriber ``runtime`` speaks for."""

    def __init__(
        self,
        runtime: Runtime,
        mirror: DebtorMirror,
        *,
        publisher: Publisher | None = None,
        keyer: MatchKeyer | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.rt = runtime
        self.mirror = mirror
        self.agency = list_subscriber(runtime.agency_code)
        self._spec = runtime.catalog.get(LIST_TOPIC_ID)
        self.topic = self._spec.name_for()
        self._keyer = keyer or MatchKeyer()
        self._clock = clock
        self._stage = runtime.verify_stage(acceptance=AcceptancePolicy.history())
        self._publisher = publisher or Publisher(
            runtime.signer, catalog=runtime.catalog, settings=runtime.settings
        )
        self.counts: dict[str, int] = dict.fromkeys(
            ("read", "listed", "removed", "refused", "receipts"), 0
        )

    # --- the mirror's age ------------------------------------------------------------
    def open_mirror(self) -> MirrorState:
        """Judge the mirror before reading: a new file is built from the topic's start;
        one that caught up longer ago than the topic keeps tombstones is rebuilt."""
        if self.mirror.created:
            return MirrorState(True, f"mirror {self.mirror.path} not found: building it from "
                               f"the start of {self.topic}")  # fmt: skip
        last = self.mirror.caught_up_at()
        keep_ms = self._spec.delete_retention_ms
        if last is not None and keep_ms is not None:
            age = self._clock() - last
            if age > dt.timedelta(milliseconds=keep_ms):
                self.mirror.reset()
                return MirrorState(True, (
                    f"mirror {self.mirror.path} last caught up {last.isoformat()}, longer ago "
                    f"than {self.topic} keeps tombstones (delete.retention.ms {keep_ms}): "
                    "rebuilt from the start of the topic"))  # fmt: skip
        return MirrorState(False, f"mirror {self.mirror.path} resumes at its offsets")

    # --- reading -----------------------------------------------------------------------
    def consumer(self) -> KafkaConsumer:
        """The subscriber's reader of the list, at the mirror's offsets (no group)."""
        return self.rt.stream_reader(
            self.agency, (self.topic,), "debtors.subscribe",
            client_id=f"zf801-debtors-{self.agency.code.lower()}", start=self.mirror.offsets(),
        )  # fmt: skip

    def run(
        self,
        stop: Callable[[], bool] = lambda: False,
        *,
        until_idle_s: float | None = None,
        on_batch: Callable[[Sequence[Any]], None] | None = None,
        consumer: KafkaConsumer | None = None,
    ) -> None:
        """Follow the list until ``stop()`` (or ``until_idle_s`` of quiet). Receipts left
        unsent by an earlier run are sent first."""
        consumer = consumer or self.consumer()
        self.send_receipts()
        try:
            # What the list holds now is read first, however slow the first fetch (a
            # loaded machine, a TLS handshake): only then does quiet end an --until-idle run.
            for batches in (
                batches_to_end(consumer, stop, idle_s=_CATCH_UP_IDLE_S),
                poll_batches(consumer, stop, until_idle_s=until_idle_s),
            ):
                for messages in batches:
                    self.apply_batch(messages)
                    if on_batch is not None:
                        on_batch(messages)
            self.mirror.touch(self._clock())
        finally:
            consumer.close()

    def apply_batch(self, messages: Sequence[Any]) -> None:
        """Check one poll's records, apply them and their offsets in one transaction, then
        send the receipts of the removals applied."""
        changes: list[MirrorListing | MirrorRemoval] = []
        offsets: dict[tuple[str, int], int] = {}
        view = _BatchView(self.mirror)
        for message in messages:
            offsets[(message.topic, message.partition)] = message.offset + 1
            change = self._change(message, view)
            if change is not None:
                changes.append(change)
                view.note(change)
        listed, removed = self.mirror.apply(changes, offsets, now=self._clock())
        self.counts["read"] += len(messages)
        self.counts["listed"] += listed
        self.counts["removed"] += removed
        if removed:
            self.send_receipts()

    def _change(self, message: Any, view: _BatchView) -> MirrorListing | MirrorRemoval | None:
        verified = self._stage.check_record(message)
        if verified is None:
            self.counts["refused"] += 1
            return None
        try:
            return self._checked(verified, view)
        except _RefusedError as refused:
            self.counts["refused"] += 1
            self.rt.refuse_record(verified.record, refused.reason, refused.detail, stage=_STAGE)
            return None

    def _checked(self, verified: VerifiedEvent, view: _BatchView) -> MirrorListing | MirrorRemoval:
        event_type = verified.signature.event_type
        try:
            record = normalise_event(event_type, verified.payload)
        except IdentifierError as exc:
            raise _RefusedError("SCHEMA_VALIDATION", str(exc)) from exc
        signer = verified.signature.agency_code
        court = record["enforcing_court_code"]
        if court != signer:
            raise _RefusedError("AGENCY_MISMATCH", (
                f"enforcing_court_code: {court!r} is not the signing court {signer} "
                "[rule sender]"))  # fmt: skip
        key = self._key_of(record["debtor"])
        if key != verified.record.key:
            raise _RefusedError("KEY_MISMATCH", (
                "key: the record key is not the match key of the debtor it names "
                "[rule key.subject]"))  # fmt: skip
        listing_id = str(record["listing_id"])
        event_id = verified.signature.event_id
        if event_type == LISTING:
            removed_by = view.removed_by(listing_id)
            if removed_by is not None:
                raise _RefusedError("REPLAY", (
                    f"listing_id: {listing_id} was removed by {removed_by}; a removed "
                    "listing never returns [rule listing.removed]"))  # fmt: skip
            value = verified.record.value or b""
            return MirrorListing(key, listing_id, court, event_id, value)
        self._check_removal(verified, view, key, listing_id, signer)
        return MirrorRemoval(key, listing_id, court, event_id, record["removed_at"])

    def _check_removal(
        self, verified: VerifiedEvent, view: _BatchView, key: bytes, listing_id: str, signer: str
    ) -> None:
        current = view.listing_of(key)
        if current is None:
            lag_ms = self._spec.min_compaction_lag_ms or 0
            age_ms = self._clock().timestamp() * 1000 - verified.record.timestamp
            if view.removed_by(listing_id) is None and age_ms < lag_ms:
                raise _RefusedError("UNKNOWN_LISTING", (
                    f"listing_id: {listing_id} is no listing of this debtor on the list "
                    "(a removal must follow its listing) [rule removal.listing]"))  # fmt: skip
            return
        current_id, listed_by = current
        if current_id != listing_id:
            raise _RefusedError("UNKNOWN_LISTING", (
                f"listing_id: {listing_id} is not the debtor's current listing "
                f"{current_id} [rule removal.listing]"))  # fmt: skip
        if listed_by != signer:
            raise _RefusedError("AGENCY_MISMATCH", (
                f"ce_source: {signer} may not remove listing {listing_id}, listed by "
                f"{listed_by}; only the listing court removes it [rule removal.court]"
            ))  # fmt: skip

    def _key_of(self, debtor: Any) -> bytes:
        if debtor.get("id_number"):
            return self._keyer.person(debtor["id_number"], "debtor.id_number")
        if debtor.get("organisation_code"):
            return self._keyer.organisation(debtor["organisation_code"], "debtor.organisation_code")
        raise _RefusedError(
            "SCHEMA_VALIDATION",
            "debtor: names neither id_number nor organisation_code [rule debtor.identifier]",
        )

    # --- receipts ----------------------------------------------------------------------
    def send_receipts(self) -> int:
        """Sign and send every queued receipt; mark them sent once the broker has them."""
        pending = self.mirror.pending_receipts()
        if not pending:
            return 0
        self._publisher.publish_all([self._receipt(p) for p in pending])
        self.mirror.mark_sent(p.removal_event_id for p in pending)
        self.counts["receipts"] += len(pending)
        return len(pending)

    def _receipt(self, pending: PendingReceipt) -> OutgoingEvent:
        record = {
            "listing_id": pending.listing_id,
            "removal_event_id": pending.removal_event_id,
            "enforcing_court_code": pending.court,
            "subscriber_code": self.agency.code,
            "removed_at": pending.removed_at,
            "applied_at": pending.applied_at,
        }
        event = outgoing_event(RECEIPT, record)
        return OutgoingEvent(
            event.topic_id, event.schema_name, event.record, event.key, court=event.court,
            event_id=receipt_event_id(pending.removal_event_id, self.agency.code),
        )  # fmt: skip

    def close(self) -> None:
        self._publisher.close()


class _BatchView:
    """The mirror as it will be once the batch's earlier changes are applied."""

    def __init__(self, mirror: DebtorMirror) -> None:
        self._mirror = mirror
        self._listings: dict[bytes, tuple[str, str] | None] = {}
        self._removed: dict[str, str] = {}

    def note(self, change: MirrorListing | MirrorRemoval) -> None:
        if isinstance(change, MirrorListing):
            self._listings[change.match_key] = (change.listing_id, change.court)
        else:
            self._listings[change.match_key] = None
            self._removed[change.listing_id] = change.court

    def listing_of(self, key: bytes) -> tuple[str, str] | None:
        if key in self._listings:
            return self._listings[key]
        return self._mirror.listing_of(key)

    def removed_by(self, listing_id: str) -> str | None:
        return self._removed.get(listing_id) or self._mirror.removed_by(listing_id)
