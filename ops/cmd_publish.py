"""``zf801 publish``: upstream systems publish events from JSON, one document or JSON lines.

Lines are checked as they are read (:mod:`ops.publish_run`). By default a file with a bad
line publishes nothing: the checked events wait on a disk spool until the last line has
been read. With ``--skip-bad`` the good lines are sent as they come, so the command also
serves an endless stream. Either way memory stays bounded, and the output says exactly
which lines the broker acknowledged.
"""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any

import click
import typer
from kafka.errors import KafkaError

from ops.errors import operator_message
from ops.publish_input import BadLine, InputAbandonedError
from ops.publish_run import (
    UNACKNOWLEDGED,
    CheckedEvent,
    EventIds,
    LineChecker,
    Outcome,
    PriorRun,
    Sender,
    Spool,
)
from ops.terminal import printable
from producers.publisher import Publisher
from producers.routes import route_for
from schemas.agencies import Agency, get_agency
from schemas.errors import BusError
from schemas.queries import kind_of_query
from schemas.registry import RegisteredSchema, default_registry
from schemas.settings import MAX_IDLE_S, Settings, get_settings
from sign.audit_chain import claim_chain
from sign.events import EventSigner
from sign.kafka_sinks import KafkaAuditSink
from sign.keystore import KeyStore
from sign.verify_stage import AuditSink
from topics.catalog import bus_catalog

__all__ = ["CheckedEvent", "PublishHooks", "check_input", "publish"]

_DEFAULT_TIMEOUT_S = 30.0
# Acknowledged events named by one audit record: each takes "partition@offset=event-id "
# (at most 50 characters); the record's detail holds 2,000.
_PER_AUDIT_RECORD = 40
# After sending stopped: how long the audit of the unacknowledged lines, and the close, may
# wait on a broker that has just failed.
_LAST_AUDIT_S = 2.0


def _default_workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0))))


def _publisher(signer: EventSigner, settings: Settings, timeout_s: float) -> Publisher:
    # The producer gives up on a record when the command does (kafka-python's own default
    # is two minutes), so a close never waits on records nobody will report.
    delivery_ms = int(timeout_s * 1000)
    options = {
        "delivery_timeout_ms": delivery_ms,
        "request_timeout_ms": max(1000, delivery_ms // 2),
    }
    return Publisher(signer, settings=settings, producer_options=options, send_timeout_s=timeout_s)


def _audit_sink(signer: EventSigner, settings: Settings, publisher: Publisher) -> AuditSink:
    """Audit records go through the publisher's own producer: one connection, batched."""
    topic = bus_catalog(settings).topic_name("audit")
    chain = claim_chain(settings, signer.agency_code)  # held until the command exits
    return KafkaAuditSink(publisher.producer, topic, signer, chain=chain)


@dataclass(frozen=True)
class PublishHooks:
    """What ``zf801 publish`` is built from; tests pass their own as the typer ``obj``."""

    settings: Callable[[], Settings] = get_settings
    publisher: Callable[[EventSigner, Settings, float], Publisher] = _publisher
    audit: Callable[[EventSigner, Settings, Publisher], AuditSink] = field(default=_audit_sink)


class _Operator:
    """Audits what the person running the command did, signed by the agency's key. Records
    are queued and sent together by :meth:`flush`, which returns once the broker has
    acknowledged them; the sink is built at the first flush, so the input is checked
    before the broker is touched."""

    def __init__(self, sink: Callable[[], AuditSink], agency: Agency) -> None:
        self._make_sink = sink
        self._sink: AuditSink | None = None
        self._agency = agency
        self._queued: list[tuple[str, str, str | None]] = []

    def record(self, target: str, result: str, detail: str | None = None) -> None:
        self._queued.append((target, result, detail))

    def published(self, events: list[tuple[CheckedEvent, Any]]) -> None:
        """Audit acknowledged events and wait until the broker has the audit records: one
        record per run of up to :data:`_PER_AUDIT_RECORD` events on one topic, naming each
        event's partition, offset and id (its target names the topic, the count and the input
        lines), so the audit costs a fraction of the publication and stays complete."""
        by_topic: dict[str, list[tuple[CheckedEvent, Any]]] = {}
        for event, metadata in events:
            by_topic.setdefault(metadata.topic, []).append((event, metadata))
        for topic, placed in by_topic.items():
            for start in range(0, len(placed), _PER_AUDIT_RECORD):
                chunk = placed[start : start + _PER_AUDIT_RECORD]
                detail = " ".join(f"{m.partition}@{m.offset}={e.event_id}" for e, m in chunk)
                lines = f"lines {chunk[0][0].line}-{chunk[-1][0].line}"
                self.record(f"{topic} {len(chunk)} event(s), {lines}", "SUCCESS", detail)
        self.flush()

    def flush(self, timeout_s: float | None = None) -> None:
        if not self._queued:
            return
        if self._sink is None:
            self._sink = self._make_sink()
        user, role, queued = getpass.getuser(), str(self._agency.role), self._queued
        self._queued = []
        for target, result, detail in queued:
            self._sink.record(
                user=user, role=role, agency_code=self._agency.code, operation="event.publish",
                target=target, result=result, detail=detail, wait=False,
            )  # fmt: skip
        self._sink.settle(timeout_s)


def check_input(
    publisher: Publisher, schema: RegisteredSchema, stream: IO[bytes]
) -> tuple[list[CheckedEvent], list[BadLine]]:
    """Check every line (nothing is sent): the events ready to publish, the bad lines."""
    good: list[CheckedEvent] = []
    bad: list[BadLine] = []
    checker = LineChecker(publisher, schema, EventIds(publisher.agency.code))
    for item in checker.lines(stream):
        (bad if isinstance(item, BadLine) else good).append(item)  # type: ignore[arg-type]
    return good, bad


# --- the command -------------------------------------------------------------------------
def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(code)


def _schema(event_type: str) -> RegisteredSchema:
    registry = default_registry()
    try:
        schema = registry.get(event_type.strip())
        route_for(schema.full_name, {"order_kind": "EXIT_RESTRICTION"})
    except BusError as exc:
        publishable = sorted(s.name for s in registry if _publishable(s.full_name))
        raise _fail(f"{exc}; agencies publish: {', '.join(publishable)}", 2) from exc
    kind = kind_of_query(schema.full_name)
    if kind is not None:  # its deadline and purpose checks, and the outbox answers read
        raise _fail(
            f"{schema.name}: a query is asked with `zf801 query {kind.name} --as COURT FILE`, "
            "which checks its deadline and purpose and keeps what `zf801 answers` reads back",
            2,
        )
    return schema


def _publishable(full_name: str) -> bool:
    try:
        route_for(full_name, {"order_kind": "EXIT_RESTRICTION"})
    except BusError:
        return False
    return True


def _signer(settings: Settings, agency_code: str) -> EventSigner:
    store = KeyStore.from_settings(settings)
    if not store.exists():
        raise _fail(f"the key store {store.directory} is not initialised: run `zf801 keys init`")
    try:
        return store.signer_for(agency_code)
    except BusError as exc:
        raise _fail(f"no signing key for {agency_code}: {exc}") from exc


def _check_role(publisher: Publisher, schema: RegisteredSchema) -> None:
    topic_id = route_for(schema.full_name, {"order_kind": "EXIT_RESTRICTION"}).topic_id
    role = str(publisher.agency.role)
    writers = publisher.catalog.get(topic_id).access.write
    if not publisher.catalog.may_write(role, topic_id):
        raise _fail(
            f"agency {publisher.agency.code} (role {role}) may not publish {schema.name}: "
            f"topic {topic_id!r} is written by {', '.join(writers)}"
        )


def _open(source: str) -> contextlib.AbstractContextManager[IO[bytes]]:
    if source == "-":
        return contextlib.nullcontext(click.get_binary_stream("stdin"))
    try:
        return Path(source).open("rb")
    except OSError as exc:
        raise _fail(f"cannot read {source}: {exc.strerror or exc}") from exc


@dataclass
class _Run:
    """The tally of one command run, and where reading stopped early (if it did)."""

    bad: int = 0
    skipped: int = 0
    stopped: str | None = None


def _row(event: CheckedEvent, topic: str, partition: object, offset: object) -> None:
    typer.echo(f"{event.event_id}\t{topic}\t{partition}\t{offset}\t{event.line}")


def _good_lines(
    lines: Iterator[CheckedEvent | BadLine],
    run: _Run,
    operator: _Operator,
    schema: RegisteredSchema,
    max_bad: int,
) -> Iterator[CheckedEvent]:
    """The checked events; each bad line is reported (and queued for audit) as it is met.
    Reading stops at ``max_bad`` bad lines, or where the input cannot be read on."""
    try:
        for item in lines:
            if isinstance(item, CheckedEvent):
                yield item
                continue
            run.bad += 1
            typer.secho(f"line {item.line}: {printable(item.error)}", fg="red", err=True)
            operator.record(f"{schema.full_name} line {item.line}", "FAILURE", item.error)
            if run.bad >= max_bad:
                run.stopped = f"{max_bad} bad lines: the rest of the input is not read"
                return
    except InputAbandonedError as exc:
        run.bad += 1
        run.stopped = str(exc)
        typer.secho(printable(str(exc)), fg="red", err=True)
        operator.record(f"{schema.full_name} line {exc.line}", "FAILURE", str(exc))


def _unacknowledged(outcome: Outcome, operator: _Operator, schema: RegisteredSchema) -> None:
    """Rows for the lines the broker did not acknowledge, with the ids they were sent
    under, and (if the broker still takes them) their audit records."""
    for event in sorted(outcome.unacknowledged, key=lambda e: e.line):
        _row(event, UNACKNOWLEDGED, "-", "-")
        detail = f"event {event.event_id}: {outcome.failure}"
        operator.record(f"{schema.full_name} line {event.line}", "FAILURE", detail)
    with contextlib.suppress(KafkaError, BusError):  # a broker that failed rarely takes them
        operator.flush(timeout_s=_LAST_AUDIT_S)


def publish(  # noqa: PLR0917 - a typer command: its options are its parameters
    ctx: typer.Context,
    event_type: Annotated[
        str,
        typer.Argument(
            metavar="TYPE",
            help="Event type: schema name (ExitRestrictionOrder) or full name "
            "(cn.zf801.orders.v1.ExitRestrictionOrder).",
        ),
    ],
    agency_code: Annotated[
        str,
        typer.Option(
            "--as", help="Publishing agency code (court or police unit); signs with its key."
        ),
    ],
    source: Annotated[
        str, typer.Argument(metavar="[FILE|-]", help="JSON lines or one JSON document; - is stdin.")
    ] = "-",
    skip_bad: Annotated[
        bool,
        typer.Option(
            "--skip-bad",
            help="Publish the good lines as they are read, even if some are bad (exit 1 still).",
        ),
    ] = False,
    id_from: Annotated[
        str | None,
        typer.Option(
            "--id-from",
            metavar="FIELD",
            help="Take each event id from this record field (dotted for nested, e.g. "
            "sighting_id): a UUID as is, any other value as a UUID derived from it, so "
            "publishing the same line twice yields the same event id.",
        ),
    ] = None,
    skip_acknowledged: Annotated[
        Path | None,
        typer.Option(
            "--skip-acknowledged",
            metavar="REPORT",
            help="The output of an earlier run on the same input: skip the lines it shows "
            "acknowledged and resend the UNACKNOWLEDGED ones under the same event ids.",
        ),
    ] = None,
    max_bad: Annotated[
        int, typer.Option("--max-bad", min=1, help="Stop reading after this many bad lines.")
    ] = 1000,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Processes that check and sign lines (default: one per core, at most 4).",
        ),
    ] = None,
    timeout_s: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=1.0,
            max=MAX_IDLE_S,
            help="Seconds to wait for the broker to acknowledge events before giving up.",
        ),
    ] = _DEFAULT_TIMEOUT_S,
) -> None:
    """Validate, sign and publish events given as JSON (the mapping of `zf801 schemas`;
    `zf801 schemas example TYPE` prints a template).

    Each line is one event (JSON lines), or the input is one JSON document. Lines are
    checked as they are read; a bad line is reported with its number, the field and the
    rule. Unless --skip-bad is given, NOTHING is published when any line is bad (the
    checked events wait on a temporary file, not in memory). An OrderRelease takes an
    extra top-level "subject" ({"id_number"} or {"plate_number", "vin"}): the subject the
    order was issued for, which keys the release. Any line may carry a top-level "ce_id"
    (a UUID) as its event id.

    Prints one row per input line the broker acknowledged, once its audit record is
    acknowledged too: event id, topic, partition, offset, input line. If the broker stops
    acknowledging, the lines sent but not acknowledged are printed with the topic
    UNACKNOWLEDGED and the event id they were sent under, reading stops, and the command
    exits 1: give the output to --skip-acknowledged to send the rest safely.

    Exit 0 when every line was published, 1 when any line was bad or publishing failed,
    2 for an unknown TYPE. In production mode (ZF801_MODE, the default) it refuses to run
    while ZF801_MATCH_KEY_SECRET or ZF801_KEY_PASSPHRASE holds its demo value or is shorter
    than 16 characters.
    """
    hooks = ctx.obj if isinstance(ctx.obj, PublishHooks) else PublishHooks()
    settings = hooks.settings()
    try:
        settings.require_real_secrets("zf801 publish")
        prior = PriorRun() if skip_acknowledged is None else PriorRun.read(skip_acknowledged)
    except BusError as exc:
        raise _fail(str(exc)) from exc
    schema = _schema(event_type)
    try:
        get_agency(agency_code)
    except BusError as exc:
        raise _fail(f"--as: {exc}") from exc
    signer = _signer(settings, agency_code)
    publisher = hooks.publisher(signer, settings, timeout_s)
    operator = _Operator(lambda: hooks.audit(signer, settings, publisher), publisher.agency)
    ids = EventIds(agency_code, tuple(id_from.split(".")) if id_from else (), prior)
    run = _Run(skipped=len(prior.acknowledged))
    try:
        try:
            _check_role(publisher, schema)
        except typer.Exit:
            operator.record(schema.full_name, "DENIED", "the agency's role may not write it")
            operator.flush()
            raise
        with _open(source) as stream:
            checker = LineChecker(publisher, schema, ids)
            lines = checker.lines(stream, prior.acknowledged, workers or _default_workers())
            good = _good_lines(lines, run, operator, schema, max_bad)
            outcome = _send(
                publisher, operator, schema, good, run, skip_bad=skip_bad, timeout_s=timeout_s
            )
    except (BusError, KafkaError) as exc:  # the audit of refusals could not be written
        raise _fail(operator_message(exc)) from exc
    finally:
        publisher.close(timeout_s=_LAST_AUDIT_S)
    _summary(outcome, run)


def _send(
    publisher: Publisher,
    operator: _Operator,
    schema: RegisteredSchema,
    good: Iterator[CheckedEvent],
    run: _Run,
    *,
    skip_bad: bool,
    timeout_s: float,
) -> Outcome:
    sender = Sender(
        publisher,
        audit=operator.published,
        row=_row,
        timeout_s=timeout_s,
    )
    if skip_bad:
        outcome = sender.send_all(good)
    else:
        spool = Spool()
        try:
            for event in good:
                if not run.bad:  # once a line is bad nothing is sent: stop keeping them
                    spool.add(event)
            if run.bad:
                operator.flush()
                raise _fail(
                    f"{run.bad} bad line(s): nothing published (--skip-bad publishes the rest)"
                    + (f"; {run.stopped}" if run.stopped else "")
                )
            outcome = sender.send_all(spool)
        finally:
            spool.close()
    operator.flush()
    if outcome.unacknowledged:
        _unacknowledged(outcome, operator, schema)
    return outcome


def _summary(outcome: Outcome, run: _Run) -> None:
    skipped = f"; {run.skipped} line(s) skipped as acknowledged before" if run.skipped else ""
    if outcome.failure is not None:
        raise _fail(
            f"{printable(outcome.failure)}; {outcome.acknowledged} line(s) acknowledged, "
            f"{len(outcome.unacknowledged)} sent but not acknowledged (rows marked "
            f"{UNACKNOWLEDGED}), the rest not read{skipped}: rerun with --skip-acknowledged "
            "and this output to send the rest safely"
        )
    if not outcome.acknowledged and not run.bad and not run.skipped:
        raise _fail("no events in the input")
    typer.echo(
        f"published {outcome.acknowledged} event(s); {run.bad} bad line(s) skipped{skipped}"
        + (f"; {run.stopped}" if run.stopped else ""),
        err=True,
    )
    if run.bad:
        raise typer.Exit(1)
