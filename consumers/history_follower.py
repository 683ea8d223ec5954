"""A police responder follows its province's sightings history, so that every hotel
check-in and border crossing the police side reports is in the history its P5 and P3
answers are made from.

The bus forwards each ``HotelCheckIn`` and ``BorderCrossing``, unchanged, to the history
topic of the reporting unit's province (:mod:`consumers.sighting_history`). A unit reads
the topics of the provinces whose rule names it (the brokers' ACLs allow it no other),
from where its store says it stopped, and for each record:

1. **Verify** (:meth:`consumers.runtime.Runtime.verify_stage`): signature, trust, envelope
   and schema, as every consumer does. A history is read whole: no acceptance window, and
   a copy read twice is no replay, since the store keeps each event id once.
2. **In its place?** The topic carries its type; its signer is a police unit of the
   topic's province (a unit's report belongs to its own province's history) and the unit
   the report names. Else it is refused: dead-lettered and audited, the rule named.
3. **Kept?** A unit keeps the reports its role answers from: public security the hotel
   stays (P5), border control the crossings (P3). It passes over the others.
4. **Stored** as the loader stores a row (:func:`consumers.query_rows.check_row`: a report
   that breaks the result's rules is refused), under its event id, in one transaction with
   the offsets after the batch (:class:`consumers.query_source.HistoryStore`): a follower
   restarted, or killed, resumes after the last batch stored, losing and repeating none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from kafka import KafkaConsumer

from consumers.polling import poll_batches
from consumers.query_rows import CheckedRow, SourceRowError, check_row, sighting_row
from consumers.query_source import HistoryStore
from consumers.runtime import Runtime
from consumers.sighting_history import HISTORY_TOPIC_ID
from consumers.watchlist import SightingType
from schemas.agencies import NATIONAL, AgencyList, load_agencies
from schemas.errors import BusError, UnknownAgencyError
from schemas.jsonmap import to_json
from schemas.queries import query_kind
from sign.acceptance import AcceptancePolicy
from sign.verify_stage import VerifiedEvent

__all__ = ["HISTORY_ROWS", "SightingFollower"]

log = logging.getLogger(__name__)

HISTORY_ROWS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        SightingType.HOTEL_CHECK_IN: ("hotel_stay", "P5"),
        SightingType.BORDER_CROSSING: ("crossing", "P3"),
    }
)
"""A report the history carries -> the row kind it becomes and the query kind answered
from it (whose role keeps it)."""

_STAGE = "sightings-history"


class SightingFollower:
    """Keeps the sightings history of the police unit ``runtime`` speaks for in ``store``."""

    def __init__(
        self, runtime: Runtime, store: HistoryStore, *, agencies: AgencyList | None = None
    ) -> None:
        self.rt = runtime
        self.store = store
        self.agencies = agencies or load_agencies()
        self.unit = self.agencies.get(runtime.agency_code)
        catalog, role = runtime.catalog, str(self.unit.role)
        self._spec = catalog.get(HISTORY_TOPIC_ID)
        served = self.agencies.provinces_served_by(self.unit.code)
        # A report goes to its unit's province; no police unit is of "national".
        provinces = sorted(p for p in served - {NATIONAL} if catalog.may_read(
            role, HISTORY_TOPIC_ID, province=p, reader_provinces=served))  # fmt: skip
        if not self.unit.is_police or not provinces:
            readers = ", ".join(sorted(self._spec.access.read))
            raise BusError(
                f"agency {self.unit.code} (role {role}) follows no sightings history: it is "
                f"read by {readers} units, for the provinces whose rule names them"
            )
        self.topics: Mapping[str, str] = MappingProxyType(
            {self._spec.name_for(province=p): p for p in provinces}
        )
        """The history topics followed -> the province of each."""
        self._keeps = {
            event_type: row_kind
            for event_type, (row_kind, answers) in HISTORY_ROWS.items()
            if query_kind(answers).role is self.unit.role
        }
        self._stage = runtime.verify_stage(
            roles_by_topic=False, acceptance=AcceptancePolicy.history(), skew_checked=False
        )
        self.counts: dict[str, int] = dict.fromkeys(
            ("read", "stored", "repeated", "passed", "refused"), 0
        )

    def consumer(self) -> KafkaConsumer:
        """The unit's reader of its history topics, at the offsets its store holds (the
        start of a partition it never read); no consumer group, the store keeps the place.
        The brokers' refusal is audited as DENIED and raised."""
        return self.rt.stream_reader(
            self.unit, tuple(self.topics), "sightings.history.read",
            client_id=f"zf801-history-{self.unit.code}", start=self.store.history_offsets(),
        )  # fmt: skip

    def run(
        self, stop: Callable[[], bool] = lambda: False, *, until_idle_s: float | None = None
    ) -> None:
        """Keep the history until ``stop()`` (or, with ``until_idle_s``, until nothing has
        come for that long). A failure to store raises: the batch is read again on restart."""
        consumer = self.consumer()
        log.info("responder %s follows %s", self.unit.code, ", ".join(self.topics))
        try:
            for messages in poll_batches(consumer, stop, until_idle_s=until_idle_s):
                self.store_batch(messages)
        finally:
            consumer.close()

    def store_batch(self, messages: Sequence[Any]) -> int:
        """Verify and check one poll's records, then store the rows kept and the offsets
        after the records in one transaction. Returns the number of rows stored."""
        rows: list[tuple[str, CheckedRow]] = []
        offsets: dict[tuple[str, int], int] = {}
        for message in messages:
            offsets[(message.topic, message.partition)] = message.offset + 1
            row = self._row(message)
            if row is not None:
                rows.append(row)
        stored = self.store.add_history(rows, offsets)
        self.counts["read"] += len(messages)
        self.counts["stored"] += stored
        self.counts["repeated"] += len(rows) - stored
        return stored

    def _row(self, message: Any) -> tuple[str, CheckedRow] | None:
        """The event id and checked row of a record this unit keeps; None for a record
        refused (dead-lettered and audited) or passed over."""
        verified = self._stage.check_record(message)
        if verified is None:
            self.counts["refused"] += 1
            return None
        problem = self._problem(verified)
        if problem is not None:
            self._refuse(verified, *problem)
            return None
        kind = self._keeps.get(verified.signature.event_type)
        if kind is None:
            self.counts["passed"] += 1
            return None
        report = to_json(verified.envelope.schema, verified.payload)
        try:
            row = check_row(kind, sighting_row(kind, report))
        except SourceRowError as exc:
            self._refuse(verified, "SCHEMA_VALIDATION", str(exc))
            return None
        return verified.signature.event_id, row

    def _problem(self, verified: VerifiedEvent) -> tuple[str, str] | None:
        """Why a verified record is not in its place (reason code and the rule), or None."""
        event_type, signer = verified.signature.event_type, verified.signature.agency_code
        topic = verified.record.topic
        if not self._spec.allows_schema(event_type):
            return "MISPLACED", (
                f"ce_type: {event_type} is not a report the sightings history carries "
                "[rule value-schemas]"
            )
        province = self.topics.get(topic)
        if province is None or self._police_province(signer) != province:
            return "MISPLACED", (
                f"ce_source: {signer} is no police unit of province {province}, whose "
                f"history {topic} holds [rule history.province]"
            )
        reporter = verified.payload.get("reporting_unit_code")
        if reporter != signer:
            return "AGENCY_MISMATCH", (
                f"reporting_unit_code: {reporter!r} is not the signing unit {signer} "
                "[rule reporter]"
            )
        return None

    def _police_province(self, code: str) -> str | None:
        """The province of police unit ``code``; None for any other agency."""
        try:
            agency = self.agencies.get(code)
        except UnknownAgencyError:
            return None
        return agency.province.code if agency.is_police and agency.province else None

    def _refuse(self, verified: VerifiedEvent, reason: str, detail: str) -> None:
        self.counts["refused"] += 1
        self.rt.refuse_record(verified.record, reason, detail, stage=_STAGE)
