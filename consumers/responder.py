"""The police side of the query flow: a responder takes the queries addressed to its unit,
verifies them, answers from its data source, and signs and publishes each answer to the
asking court's own results stream.

For each record of the query topic (every unit reads all of it, in a consumer group of
its own):

1. **Verify** (:class:`sign.verify_stage.VerifyStage`): signature, trust, envelope, schema,
   replay window; the signer must hold a role the catalog lets write queries (a court). What
   fails is dead-lettered and audited, and nothing is answered: the record is no court's.
2. **Addressed?** (:func:`schemas.queries.responders`): a query for another unit is passed
   over without a trace; every unit computes the same addressees as the court's client.
3. **Answered before?** A correlation id this unit answered (remembered across restarts,
   :class:`consumers.responder_state.ResponderState`) is not answered again: audited as a
   repeat, nothing sent.
4. **Permitted?** The signer is the court the query names; the query keeps the edge's rules
   (identifiers, the case number is the court's, ``deadline`` after ``requested_at``); its
   purpose (``subject_role``) is one its kind may be asked for; it was sent before its
   deadline; the court and the unit are within quota. A query that fails one of these gets
   a **signed refusal** naming the rule, sent to the signing court, and is dead-lettered
   and audited.
5. **Answer** from the data source: FOUND, or NOT_FOUND ("no record" is an answer). A query
   read after its deadline (the unit was down) is still answered; the court's client
   flags the answer late. Every answer is audited (who asked, about whom, what was given).

Answers of one poll are sent together and the producer flushed; then the answered
correlation ids are stored, and only then are the offsets committed. The answer's event id
is derived from the correlation id and the unit, so a court never shows one twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer

from consumers.polling import poll_batches
from consumers.query_answers import REFUSED, answer, refusal
from consumers.query_source import QuerySource
from consumers.responder_state import Answered, ResponderState
from consumers.runtime import Runtime
from producers.publisher import Publisher
from producers.routes import outgoing_event
from schemas.agencies import Agency, get_agency
from schemas.edge import normalise_event
from schemas.envelope import KafkaRecord, to_micros
from schemas.errors import BusError
from schemas.queries import QueryKind, kind_of_query, responders
from schemas.registry import default_registry
from sign.verify_stage import VerifiedEvent, VerifyStage
from topics.acls import group_prefix
from topics.clients import kafka_consumer

__all__ = ["RESULT_ID_NAMESPACE", "Reply", "Responder", "result_event_id"]

log = logging.getLogger(__name__)

_SESSION_TIMEOUT_MS = 10_000
_HEARTBEAT_MS = 3_000

RESULT_ID_NAMESPACE = uuid.UUID("5b0f6c55-2f7e-4a51-9d0c-1f8a6f0e2a11")
"""The namespace of answers' event ids: ``uuid5(ns, "<correlation id>/<unit>")``."""


def result_event_id(correlation_id: str, unit: str) -> str:
    """The event id of ``unit``'s answer to a query: the same however often it is made."""
    return str(uuid.uuid5(RESULT_ID_NAMESPACE, f"{correlation_id}/{unit}"))


class _Refused(Exception):  # noqa: N818 - a verdict, caught within this module
    """A query that may not be answered: the dead letter's reason code and the detail
    (which names the rule) that the signed refusal carries."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer about to be sent, and what to audit about it."""

    kind: QueryKind
    court: str
    record: dict[str, Any]
    subject: str

    @property
    def correlation_id(self) -> str:
        return str(self.record["correlation_id"])

    @property
    def status(self) -> str:
        return str(self.record["status"])


class Responder:
    """Answers the queries addressed to the unit ``runtime`` speaks for, from ``source``."""

    def __init__(
        self,
        runtime: Runtime,
        source: QuerySource,
        state: ResponderState | None = None,
        *,
        publisher: Publisher | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.rt = runtime
        self.unit: Agency = get_agency(runtime.agency_code)
        if not self.unit.is_police:
            raise BusError(
                f"agency {self.unit.code} (role {self.unit.role}) is no police unit: only "
                "police units answer queries"
            )
        self.source = source
        self._source_checked = bool(getattr(source, "rows_checked", False))
        self.state = state or ResponderState.for_unit(runtime.settings, self.unit)
        self.state.load(to_micros(clock()))
        self.publisher = publisher or Publisher(
            runtime.signer, catalog=runtime.catalog, settings=runtime.settings
        )
        self.topic = runtime.catalog.topic_name("query-requests")
        self.group_id = f"{group_prefix(runtime.catalog, self.unit)}responder"
        self.stage: VerifyStage = runtime.verify_stage()
        self._clock = clock
        self._user = getpass.getuser()
        self._batch: set[tuple[str, str]] = set()
        self.counts: dict[str, int] = {"answered": 0, "refused": 0, "repeated": 0}

    # -- one query ---------------------------------------------------------------------

    def decide(self, verified: VerifiedEvent) -> Reply | None:
        """The reply to one verified query, or None when none is owed (not addressed to
        this unit, or answered before)."""
        kind = kind_of_query(verified.signature.event_type)
        if kind is None:
            self.rt.refuse(verified, "MISPLACED", f"{verified.signature.event_type} is no query")
            return None
        query = verified.payload
        if self.unit.code not in responders(kind, query):
            return None
        correlation_id = str(query["correlation_id"])
        court = verified.signature.agency_code
        subject = _subject_of(query)
        if (court, correlation_id) in self._batch or self.state.answered(court, correlation_id):
            self.counts["repeated"] += 1
            repeated = "a query with this correlation id was answered before: not again"
            self._audit(kind, correlation_id, court, subject, result="FAILURE", detail=repeated)
            return None
        self._batch.add((court, correlation_id))
        now = self._clock()
        try:
            normalised = self._admit(kind, query, verified, court, now)
        except _Refused as refused:
            self.counts["refused"] += 1
            self.rt.refuse(verified, refused.reason, refused.detail)
            record = refusal(kind, query, court=court, unit=self.unit.code, now=now,
                             reason=refused.detail)  # fmt: skip
            return Reply(kind, court, record, subject)
        self.state.take(court, to_micros(now))
        self.counts["answered"] += 1
        return Reply(kind, court, answer(kind, normalised, self.source, self.unit.code, now),
                     subject)  # fmt: skip

    def _admit(
        self,
        kind: QueryKind,
        query: dict[str, Any],
        verified: VerifiedEvent,
        court: str,
        now: dt.datetime,
    ) -> dict[str, Any]:
        """The query normalised by the edge's rules, once it may be answered; raises
        :class:`_Refused` with the reason code and the rule it breaks."""
        if query["requesting_court_code"] != court:
            raise _Refused("AGENCY_MISMATCH", (
                f"requesting_court_code: {query['requesting_court_code']!r} is not the "
                f"signing court {court} [rule sender]"
            ))  # fmt: skip
        try:
            normalised = normalise_event(kind.query_schema, query, now=now)
        except BusError as exc:
            raise _Refused("QUERY_REFUSED", str(exc)) from None
        problem = kind.purpose_problem(normalised["subject_role"])
        if problem is not None:
            raise _Refused("QUERY_REFUSED", problem)
        if normalised["deadline"] <= verified.signature.event_time:
            raise _Refused("QUERY_REFUSED", (
                f"deadline: {normalised['deadline'].isoformat()} had passed when the query "
                f"was sent ({verified.signature.event_time.isoformat()}) [rule deadline.expired]"
            ))  # fmt: skip
        over = self.state.over_quota(court, to_micros(now))
        if over is not None:
            raise _Refused("QUERY_REFUSED", f"{over} [rule quota]")
        return normalised

    def _audit(
        self, kind: QueryKind, correlation_id: str, court: str, subject: str, *, result: str,
        detail: str,
    ) -> None:  # fmt: skip
        self.rt.audit.record(
            user=self._user, role=str(self.unit.role), agency_code=self.unit.code,
            operation=f"query.answer.{kind.code}",
            target=f"query {correlation_id} of court {court} about {subject}",
            result=result, detail=detail, wait=False,
        )  # fmt: skip

    # -- the loop ----------------------------------------------------------------------

    def consumer(self) -> KafkaConsumer:
        """The unit's consumer of the query topic (its own group, offsets committed by
        :meth:`run`; a new group starts at the oldest query kept). A second process of the
        same unit waits as a standby; one killed hands over within the session timeout."""
        consumer = kafka_consumer(
            self.rt.settings, self.unit.code, self.topic,
            group_id=self.group_id, enable_auto_commit=False, auto_offset_reset="earliest",
            client_id=f"zf801-responder-{self.unit.code}",
            session_timeout_ms=_SESSION_TIMEOUT_MS, heartbeat_interval_ms=_HEARTBEAT_MS,
        )  # fmt: skip
        # The topic's partitions must be in the client's metadata before it joins: a
        # group leader that assigns without them assigns nothing, and (kafka-python) only
        # notices at its next metadata refresh, answering nothing until then.
        consumer.partitions_for_topic(self.topic)
        return consumer

    def run(
        self,
        stop: Callable[[], bool] = lambda: False,
        *,
        until_idle_s: float | None = None,
        consumer: KafkaConsumer | None = None,
    ) -> None:
        """Answer queries until ``stop()`` (or, with ``until_idle_s``, until none has come
        for that long). A failure to send raises: nothing of that poll is committed, so
        its queries are read again on restart."""
        consumer = consumer or self.consumer()
        log.info("responder %s follows %s (group %s)", self.unit.code, self.topic, self.group_id)
        try:
            for messages in poll_batches(consumer, stop, until_idle_s=until_idle_s):
                self.answer_batch(messages)
                consumer.commit()
        finally:
            consumer.close()

    def answer_batch(self, messages: list[Any]) -> list[Reply]:
        """Verify, decide and answer one poll's records; return once every answer and
        audit record is acknowledged and the answers are stored."""
        self._batch.clear()
        replies: list[Reply] = []
        for message in messages:
            verified = self.stage.check_record(message)
            if verified is not None:
                reply = self.decide(verified)
                if reply is not None:
                    replies.append(reply)
        signed = [self._signed(reply) for reply in replies]
        replies = [reply for reply, _ in signed]
        self.publisher.send_prepared(prepared for _, prepared in signed)
        self.publisher.flush()
        for reply in replies:
            refused = reply.status == REFUSED
            self._audit(
                reply.kind, reply.correlation_id, reply.court, reply.subject,
                result="DENIED" if refused else "SUCCESS",
                detail=str(reply.record["refusal_reason"]) if refused else reply.status,
            )  # fmt: skip
        self.rt.audit.settle()
        self.state.record(
            Answered(reply.correlation_id, reply.court, reply.status,
                     to_micros(reply.record["answered_at"]))
            for reply in replies
        )  # fmt: skip
        return replies

    def _signed(self, reply: Reply) -> tuple[Reply, tuple[str, KafkaRecord]]:
        """``reply`` signed; or, when the data source gave what the bus may not carry (a
        province's own adapter returning a malformed value), a signed refusal saying so:
        the court hears why, and the responder goes on with the next query."""
        try:
            return reply, self._prepare(reply)
        except BusError as exc:
            log.error("answer to query %s not sendable: %s", reply.correlation_id, exc)
            detail = f"this unit's record could not be sent: {exc} [rule answer.invalid]"
            record = refusal(reply.kind, reply.record, court=reply.court, unit=self.unit.code,
                             now=self._clock(), reason=detail)  # fmt: skip
            refused = Reply(reply.kind, reply.court, record, reply.subject)
            return refused, self._prepare(refused)

    def _prepare(self, reply: Reply) -> tuple[str, KafkaRecord]:
        """The signed answer. Its content comes from a data source whose rows passed the
        edge rules when stored (``rows_checked``) and from this unit, so only the schema is
        checked again; an answer from any other source goes through the edge rules too."""
        event = outgoing_event(reply.kind.result_schema, reply.record)
        event = dataclasses.replace(
            event, event_id=result_event_id(reply.correlation_id, self.unit.code)
        )
        if not self._source_checked:
            return self.publisher.prepare(event)
        default_registry().get(reply.kind.result_schema).validate(reply.record)
        return self.publisher.prepare(event, checked=True)

    def close(self) -> None:
        self.publisher.close()
        self.state.close()


def _subject_of(query: dict[str, Any]) -> str:
    """Whom a query is about, for the audit log (ID number, credit code or plate)."""
    subject = query.get("subject") or query.get("owner") or {}
    parts = [subject.get("id_number"), subject.get("organisation_code"), query.get("plate_number")]
    return " ".join(str(part) for part in parts if part) or "?"
