"""The court's side of the query flow: ask P1-P5, wait for the answers, see who answered.

A :class:`QueryClient` speaks for one court (its identity from the key store). It signs
each query (a correlation id, the case number, the purpose as ``subject_role``, a
deadline), publishes it, and reads the court's own results stream until every expected
responder (:func:`schemas.queries.responders`) has answered or the deadline has passed.
The :class:`QueryOutcome` says which units answered, which did not, and which answered
late, and merges the answers per subject ("2 of 3 answered").

Every answer is verified before it is counted: its seal, its signer a police unit that
was asked, its ``answering_unit_code`` the signer, its court this court. A forged or
misaddressed answer is refused and audited, never shown. Results are read only from the
court's own stream; asking for another court's raises :class:`ResultsAccessDenied`
(checked against the catalog first, and enforced by the broker's ACLs).

Answers that arrive after the client returned are not lost: :meth:`QueryClient.answers`
reads them back from the stream later, each flagged late if it was given after the
deadline. The queries a court sent are kept in a small outbox under the settings' home
(``state/queries/<court>/<correlation id>.json``) so a later read knows whom it asked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer

from consumers.errors import ConsumerError, QueryRefused, ResultsAccessDenied
from consumers.polling import IdleWaitError, check_idle_s
from consumers.runtime import Runtime
from producers.publisher import Publisher
from producers.routes import check_sender, outgoing_event
from schemas.agencies import Agency, AgencyRole, get_agency
from schemas.edge import normalise_event
from schemas.envelope import format_time
from schemas.errors import BusError
from schemas.files import write_replacing
from schemas.jsonmap import from_json, json_kind, to_json
from schemas.queries import QueryKind, kind_of_result, query_kind, responders
from schemas.registry import default_registry
from schemas.settings import MAX_QUERY_WAIT_S
from sign.acceptance import AcceptancePolicy
from sign.verify_stage import VerifiedEvent

__all__ = [
    "Answer",
    "QueryClient",
    "QueryOutcome",
    "checked_court",
    "correlation_id_of",
    "prepared_query",
]

log = logging.getLogger(__name__)

_POLL_MS = 100


@dataclass(frozen=True, slots=True)
class Answer:
    """One verified answer of one unit."""

    unit: str
    status: str
    answered_at: dt.datetime
    late: bool
    """Given after the query's deadline."""
    received_s: float | None
    """Seconds from sending the query to reading this answer (None when read back later)."""
    event_id: str
    document: Mapping[str, Any]
    """The result in the bus's JSON mapping."""


@dataclass
class QueryOutcome:
    """A query and what came back for it."""

    kind: QueryKind
    correlation_id: str
    query: Mapping[str, Any]
    """The query as sent, in the JSON mapping."""
    expected: tuple[str, ...]
    deadline: dt.datetime
    answers: dict[str, Answer] = field(default_factory=dict)

    @property
    def answered(self) -> tuple[str, ...]:
        return tuple(unit for unit in self.expected if unit in self.answers)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(unit for unit in self.expected if unit not in self.answers)

    @property
    def late(self) -> tuple[str, ...]:
        return tuple(unit for unit in self.answered if self.answers[unit].late)

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def completeness(self) -> str:
        return f"{len(self.answered)} of {len(self.expected)} answered"

    @property
    def status(self) -> str:
        """FOUND when any unit found a record; NOT_FOUND when every answer says so;
        REFUSED when every answer is a refusal; PENDING when none came."""
        statuses = {answer.status for answer in self.answers.values()}
        if "FOUND" in statuses:
            return "FOUND"
        if not statuses:
            return "PENDING"
        return "NOT_FOUND" if "NOT_FOUND" in statuses else "REFUSED"

    def merged(self) -> dict[str, Any]:
        """The answers merged per subject, in the JSON mapping: the first person found
        (in the responders' order), every crossing, vehicle and stay once, in order."""
        found = [self.answers[u].document for u in self.answered
                 if self.answers[u].status == "FOUND"]  # fmt: skip
        merged: dict[str, Any] = {}
        if self.kind.code != "P4":
            merged["person"] = next((d["person"] for d in found if d.get("person")), None)
        if self.kind.code == "P3":
            merged["crossings"] = _union(found, "crossings", "crossed_at")
            phones = (d.get("registered_phone") for d in found)
            merged["registered_phone"] = next((p for p in phones if p), None)
        elif self.kind.code == "P4":
            merged["vehicles"] = _union(found, "vehicles", "vin")
        elif self.kind.code == "P5":
            merged["stays"] = _union(found, "stays", "checked_in_at")
        return merged

    def as_json(self) -> dict[str, Any]:
        """The outcome for ``--format json`` and integrators."""
        return {
            "kind": self.kind.code,
            "correlation_id": self.correlation_id,
            "status": self.status,
            "completeness": self.completeness,
            "expected": list(self.expected),
            "answered": list(self.answered),
            "missing": list(self.missing),
            "late": list(self.late),
            "deadline": format_time(self.deadline),
            "merged": self.merged(),
            "answers": [_answer_json(self.answers[unit]) for unit in self.answered],
        }


def _answer_json(answer: Answer) -> dict[str, Any]:
    return {
        "unit": answer.unit,
        "status": answer.status,
        "late": answer.late,
        "answered_at": format_time(answer.answered_at),
        "latency_s": answer.received_s,
        "refusal_reason": answer.document.get("refusal_reason"),
    }


def _union(documents: Iterable[Mapping[str, Any]], name: str, order: str) -> list[Any]:
    seen: dict[str, Any] = {}
    for document in documents:
        for item in document.get(name) or ():
            seen.setdefault(json.dumps(item, sort_keys=True, ensure_ascii=False), item)
    return sorted(seen.values(), key=lambda item: str(item.get(order)))


class QueryClient:
    """Asks queries for the court ``runtime`` speaks for, and reads their answers."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        publisher: Publisher | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.rt = runtime
        self.court = checked_court(runtime.agency_code)
        self.publisher = publisher or Publisher(
            runtime.signer, catalog=runtime.catalog, settings=runtime.settings
        )
        self.topic = runtime.catalog.topic_name("query-results", court=self.court.code)
        self._stage = runtime.verify_stage(acceptance=AcceptancePolicy.history())
        self._clock = clock
        self.outbox = runtime.settings.home / "state" / "queries" / self.court.code
        self._closed = False

    @classmethod
    def connect(cls, court: str) -> QueryClient:
        """A client for ``court``, its key from the key store (``ZF801_*`` settings)."""
        return cls(Runtime.connect(checked_court(court).code))

    def close(self) -> None:
        self._closed = True
        self.publisher.close()
        self.rt.close()

    def _require_open(self) -> None:
        """Nothing is asked or read through a closed client (its publisher would open a
        new producer and send, while its audit records could no longer be written)."""
        if self._closed:
            raise QueryRefused(f"the query client of court {self.court.code} is closed [rule open]")

    def __enter__(self) -> QueryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- asking ------------------------------------------------------------------------

    def prepare(
        self, kind: QueryKind | str, query: Mapping[str, Any], *, wait_s: float | None = None
    ) -> dict[str, Any]:
        """The query ``query`` (the JSON mapping) completed and checked, as a record:
        ``correlation_id`` (a new UUID), ``requesting_court_code`` (this court),
        ``requested_at`` (now) and ``deadline`` (now plus ``wait_s`` or the settings'
        ``query_wait_s``) are filled in where absent. Raises, naming the field and the
        rule, for a query that may not be sent (nothing is sent)."""
        wait = wait_s if wait_s is not None else self.rt.settings.query_wait_s
        return prepared_query(kind, query, court=self.court.code, now=self._clock(), wait_s=wait)

    def ask(
        self, kind: QueryKind | str, query: Mapping[str, Any], *, wait_s: float | None = None
    ) -> QueryOutcome:
        """Ask one query and wait for its answers (see :meth:`ask_all`)."""
        return self.ask_all(kind, [query], wait_s=wait_s)[0]

    async def ask_async(
        self, kind: QueryKind | str, query: Mapping[str, Any], *, wait_s: float | None = None
    ) -> QueryOutcome:
        """:meth:`ask` without blocking the event loop (it waits in a thread)."""
        return await asyncio.to_thread(self.ask, kind, query, wait_s=wait_s)

    def ask_all(
        self,
        kind: QueryKind | str,
        queries: Sequence[Mapping[str, Any]],
        *,
        wait_s: float | None = None,
    ) -> list[QueryOutcome]:
        """Check every query (one bad query sends none), sign and publish them, and wait
        until each has every expected answer or its deadline has passed."""
        self._require_open()
        kind = kind if isinstance(kind, QueryKind) else query_kind(kind)
        if not queries:
            raise QueryRefused("queries: none given; ask at least one [rule required]")
        records = [self.prepare(kind, query, wait_s=wait_s) for query in queries]
        ids = [str(record["correlation_id"]) for record in records]
        if len(set(ids)) != len(ids):
            raise QueryRefused("correlation_id: two queries share one [rule unique]")
        for correlation_id in ids:  # the responders answer an id once: a reuse is silence
            if (self.outbox / f"{correlation_id}.json").exists():
                raise QueryRefused(
                    f"correlation_id: {correlation_id} was already asked by court "
                    f"{self.court.code} (zf801 answers {correlation_id} shows its answers); "
                    "a new query takes a new id [rule unique]"
                )
        schema = default_registry().get(kind.query_schema)
        outcomes = {
            str(record["correlation_id"]): QueryOutcome(
                kind,
                str(record["correlation_id"]),
                to_json(schema, record),
                responders(kind, record),
                record["deadline"],
            )
            for record in records
        }
        reader = self._reader(from_end=True)
        try:
            sent = time.monotonic()
            self.publisher.publish_all(  # each record normalised and validated by prepare
                [outgoing_event(kind.query_schema, r) for r in records], checked=True
            )
            log.debug("%d %s queries published in %.3f s", len(records), kind.code,
                      time.monotonic() - sent)  # fmt: skip
            for outcome in outcomes.values():
                self._remember(outcome)
                self._audit("query.ask." + kind.code, outcome, "SUCCESS", "sent")
            self._collect(reader, outcomes, sent)
        finally:
            reader.close()
        for outcome in outcomes.values():
            detail = outcome.completeness + (f"; missing {', '.join(outcome.missing)}"
                                              if outcome.missing else "")  # fmt: skip
            self._audit("query.results.read", outcome, "SUCCESS", detail)
        return [outcomes[i] for i in ids]

    # -- reading answers ---------------------------------------------------------------

    def answers(self, correlation_id: str, *, idle_s: float = 2.0) -> QueryOutcome:
        """Every answer to a query this court sent earlier (from its outbox), read back
        from the start of the results stream; late answers flagged. ``idle_s``: how long
        the stream may be quiet before the read stops (more than 0, at most a day)."""
        try:
            check_idle_s(idle_s, "idle_s")  # NaN would wait for ever
        except IdleWaitError as exc:
            raise QueryRefused(str(exc)) from None
        self._require_open()
        outcome = self._recall(correlation_id)
        reader = self._reader(from_end=False)
        try:
            self._collect(reader, {outcome.correlation_id: outcome}, None, idle_s=idle_s)
        finally:
            reader.close()
        self._audit("query.results.read", outcome, "SUCCESS", outcome.completeness)
        return outcome

    def _reader(self, *, from_end: bool) -> KafkaConsumer:
        """The court's results stream, read as the court; access checked first."""
        role = str(self.court.role)
        if not self.rt.catalog.may_read(role, "query-results", self.court.code,
                                        reader_court=self.court.code):  # fmt: skip
            raise ResultsAccessDenied(f"agency {self.court.code} may not read {self.topic}")
        client_id = f"zf801-query-{self.court.code}"
        reader = self.rt.stream_reader(
            self.court, [self.topic], "query.results.read", client_id=client_id
        )
        if from_end:
            partitions = list(reader.assignment())
            reader.seek_to_end(*partitions)
            for partition in partitions:
                reader.position(partition)  # fix the position before the query is sent
        return reader

    def _collect(
        self,
        reader: KafkaConsumer,
        outcomes: dict[str, QueryOutcome],
        sent: float | None,
        *,
        idle_s: float | None = None,
    ) -> None:
        """Read answers until every outcome is complete and, live (``sent``), until the
        latest deadline; read back (``idle_s``), until the stream is idle."""
        until = max(outcome.deadline for outcome in outcomes.values())
        last_seen = time.monotonic()
        while True:
            batch = reader.poll(timeout_ms=_POLL_MS, max_records=500)
            for messages in batch.values():
                for message in messages:
                    self._take(message, outcomes, sent)
            if batch:
                last_seen = time.monotonic()
            if all(outcome.complete for outcome in outcomes.values()):
                return
            if sent is not None and self._clock() >= until:
                return
            if idle_s is not None and time.monotonic() - last_seen >= idle_s:
                return

    def _take(self, message: Any, outcomes: dict[str, QueryOutcome], sent: float | None) -> None:
        key = (message.key or b"").decode("utf-8", "replace")
        outcome = outcomes.get(key)
        if outcome is None:  # another query's answer: not ours to verify
            return
        verified = self._stage.check_record(message)
        if verified is None:  # refused: audited by the stage
            return
        problem = _answer_problem(outcome, self.court.code, verified)
        if problem is not None:
            self.rt.refuse(verified, *problem)
            return
        record = verified.payload
        unit = verified.signature.agency_code
        if unit in outcome.answers:
            return  # the same answer again (a redelivery): shown once
        outcome.answers[unit] = Answer(
            unit=unit,
            status=str(record["status"]),
            answered_at=record["answered_at"],
            late=record["answered_at"] > outcome.deadline,
            received_s=None if sent is None else round(time.monotonic() - sent, 6),
            event_id=verified.signature.event_id,
            document=to_json(verified.envelope.schema, record),
        )

    # -- the outbox and the audit log ----------------------------------------------------

    def _remember(self, outcome: QueryOutcome) -> None:
        self.outbox.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.outbox / f"{outcome.correlation_id}.json"
        document = json.dumps({
            "kind": outcome.kind.code, "query": outcome.query, "expected": list(outcome.expected),
        }, ensure_ascii=False)  # fmt: skip
        # the query names its subject: readable by this user alone
        write_replacing(path, document.encode(), "query outbox", mode=0o600, error=ConsumerError)

    def _recall(self, correlation_id: str) -> QueryOutcome:
        correlation_id = correlation_id_of(correlation_id)
        path = self.outbox / f"{correlation_id}.json"
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            kind = query_kind(saved["kind"])
            query = saved["query"]
            deadline = from_json(default_registry().get(kind.query_schema), query)["deadline"]
            return QueryOutcome(kind, correlation_id, query, tuple(saved["expected"]), deadline)
        except FileNotFoundError:
            raise QueryRefused(
                f"correlation_id: court {self.court.code} sent no query {correlation_id} "
                f"from this machine (no {path})"
            ) from None
        except (OSError, ValueError, KeyError, TypeError, BusError) as exc:
            raise QueryRefused(f"the outbox entry {path} is unreadable: {exc}") from exc

    def _audit(self, operation: str, outcome: QueryOutcome, result: str, detail: str) -> None:
        subject = outcome.query.get("subject") or outcome.query.get("owner") or {}
        about = subject.get("id_number") or subject.get("organisation_code") or "?"
        self.rt.audit.record(
            user=getpass.getuser(), role=str(self.court.role), agency_code=self.court.code,
            operation=operation,
            target=f"query {outcome.correlation_id} ({outcome.kind.code}) about {about}",
            result=result, detail=detail,
        )  # fmt: skip


def prepared_query(
    kind: QueryKind | str,
    query: Mapping[str, Any],
    *,
    court: str,
    now: dt.datetime,
    wait_s: float,
) -> dict[str, Any]:
    """``query`` (the JSON mapping) of ``court`` completed and checked, as a record (see
    :meth:`QueryClient.prepare`); needs no broker, so a command checks its queries before
    it connects. Raises, naming the field and the rule, for a query that may not be sent."""
    kind = kind if isinstance(kind, QueryKind) else query_kind(kind)
    if not isinstance(query, Mapping):
        raise QueryRefused(f"a {kind.code} query must be a JSON object, not {json_kind(query)}")
    _check_wait(wait_s)
    document = {
        "correlation_id": str(uuid.uuid4()),
        "requesting_court_code": court,
        "requested_at": format_time(now),
        "deadline": format_time(now + dt.timedelta(seconds=wait_s)),
        **query,
    }
    check_sender(kind.query_schema, document, court)  # before the rules that follow from it
    schema = default_registry().get(kind.query_schema)
    record: dict[str, Any] = normalise_event(
        kind.query_schema, from_json(schema, document), now=now
    )
    schema.validate(record)
    # one id, one spelling: an upper-case copy of an id already asked passed the check
    record["correlation_id"] = correlation_id_of(str(record["correlation_id"]))
    if record["deadline"] <= now:
        raise QueryRefused(
            f"deadline: {record['deadline'].isoformat()} has passed [rule deadline.expired]"
        )
    problem = kind.purpose_problem(record["subject_role"])
    if problem is not None:
        raise QueryRefused(problem)
    return record


def _check_wait(wait_s: object) -> None:
    """A query's wait: a number of seconds, more than 0 and at most 30 days."""
    if isinstance(wait_s, bool) or not isinstance(wait_s, int | float):
        raise QueryRefused(f"wait_s: expected a number of seconds, got {json_kind(wait_s)} "
                           "[rule wait.type]")  # fmt: skip
    if not 0 < wait_s <= MAX_QUERY_WAIT_S:  # NaN fails this too
        raise QueryRefused(
            f"wait_s: {wait_s!r} is not more than 0 and at most {MAX_QUERY_WAIT_S} s (30 days) "
            "[rule wait.range]"
        )


def checked_court(code: str) -> Agency:
    """The court ``code`` names; raises for an unknown agency or one that is no court."""
    agency = get_agency(code)
    if agency.role is not AgencyRole.COURT:
        raise QueryRefused(
            f"agency {agency.code} (role {agency.role}) is no court: only courts ask queries"
        )
    return agency


def correlation_id_of(text: str) -> str:
    """``text`` as a correlation id (a UUID, in its canonical form); raises naming it."""
    try:
        return str(uuid.UUID(text))
    except (ValueError, TypeError, AttributeError):
        raise QueryRefused(f"correlation_id: {text!r} is not a UUID") from None


def _answer_problem(
    outcome: QueryOutcome, court: str, verified: VerifiedEvent
) -> tuple[str, str] | None:
    """Why a verified record on the court's results stream is not an answer to
    ``outcome``'s query (reason code, detail), or None."""
    record = verified.payload
    signer = verified.signature.agency_code
    kind = kind_of_result(verified.signature.event_type)
    if kind is None or kind != outcome.kind:
        what = verified.signature.event_type
        return "MISPLACED", f"{what} does not answer a {outcome.kind.code} query"
    if str(record["correlation_id"]) != outcome.correlation_id:
        return "MISPLACED", "the record's key and its correlation_id name different queries"
    if record["requesting_court_code"] != court:
        return "MISADDRESSED", f"an answer for court {record['requesting_court_code']}, not {court}"
    if record["answering_unit_code"] != signer:
        return "AGENCY_MISMATCH", (
            f"answering_unit_code {record['answering_unit_code']} is not the signer {signer}"
        )
    if signer not in outcome.expected:
        return "MISADDRESSED", f"unit {signer} was not asked this query"
    return None
