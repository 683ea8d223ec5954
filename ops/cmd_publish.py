"""``zf801 publish``: upstream systems publish events from JSON, one document or JSON lines.

Every line is checked before anything is sent (JSON, text hygiene, the schema's JSON
mapping, identifier rules, the sending agency, routing, the catalog's write rule, the
codec), so a file with a bad line publishes nothing unless ``--skip-bad`` is given.
"""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any, cast

import click
import typer
from kafka import KafkaProducer

from ops.publish_input import BadLine, InputError, check_text, read_documents
from producers.errors import PublishError
from producers.publisher import OutgoingEvent, PublishedEvent, Publisher, kafka_producer
from producers.routes import SUBJECT_FIELD, outgoing_event, route_for
from schemas.agencies import Agency, get_agency
from schemas.codec import default_codec
from schemas.edge import normalise_event
from schemas.errors import BusError
from schemas.identifiers import normalise_id_number, normalise_plate_number, normalise_vin
from schemas.jsonmap import from_json
from schemas.registry import RegisteredSchema, default_registry
from schemas.settings import Settings, get_settings
from sign.events import EventSigner
from sign.kafka_sinks import KafkaAuditSink
from sign.keystore import KeyStore
from sign.verify_stage import AuditSink
from topics.catalog import bus_catalog

__all__ = ["CheckedEvent", "PublishHooks", "check_input", "publish"]

_RELEASE = "cn.zf801.orders.v1.OrderRelease"
# A broker that is down fails the command within 10 s, not after 30-60 s (issue 10).
_BOUNDED_WAITS: dict[str, Any] = {"bootstrap_timeout_ms": 8_000, "max_block_ms": 8_000}


@dataclass(frozen=True, slots=True)
class CheckedEvent:
    """An input line that passed every check, ready to publish."""

    line: int
    event: OutgoingEvent


@dataclass(frozen=True)
class PublishHooks:
    """What ``zf801 publish`` is built from; tests pass their own as the typer ``obj``."""

    settings: Callable[[], Settings] = get_settings
    publisher: Callable[[EventSigner, Settings], Publisher] = field(
        default=lambda signer, settings: Publisher(
            signer, settings=settings, producer=_producer_at_first_send(settings, signer)
        )
    )
    audit: Callable[[EventSigner, Settings], AuditSink] = field(
        default=lambda signer, settings: KafkaAuditSink(
            kafka_producer(settings, signer.agency_code, **_BOUNDED_WAITS),
            bus_catalog(settings).topic_name("audit"),
            signer,
        )
    )


class _ProducerAtFirstSend:
    """The publisher's producer, built (with bounded waits) when it is first used, so that
    checking the input never touches the broker."""

    def __init__(self, settings: Settings, agency_code: str) -> None:
        self._settings = settings
        self._agency_code = agency_code
        self._producer: KafkaProducer | None = None

    def __getattr__(self, name: str) -> Any:
        if self._producer is None:
            self._producer = kafka_producer(self._settings, self._agency_code, **_BOUNDED_WAITS)
        return getattr(self._producer, name)

    def close(self, *args: Any, **kwargs: Any) -> None:
        if self._producer is not None:
            self._producer.close(*args, **kwargs)


def _producer_at_first_send(settings: Settings, signer: EventSigner) -> KafkaProducer:
    return cast("KafkaProducer", _ProducerAtFirstSend(settings, signer.agency_code))


class _Operator:
    """Audits what the person running the command did, signed by the agency's key. The
    audit sink is built at the first record, so the input is checked before the broker
    is touched."""

    def __init__(self, sink: Callable[[], AuditSink], agency: Agency) -> None:
        self._make_sink = sink
        self._sink: AuditSink | None = None
        self._agency = agency

    def record(self, target: str, result: str, detail: str | None = None) -> None:
        if self._sink is None:
            self._sink = self._make_sink()
        self._sink.record(
            user=getpass.getuser(), role=str(self._agency.role), agency_code=self._agency.code,
            operation="event.publish", target=target, result=result, detail=detail,
        )  # fmt: skip


def _release_subject(document: dict[str, Any]) -> dict[str, str]:
    """The ``subject`` of an OrderRelease input (not part of the record), normalised."""
    subject = document.pop(SUBJECT_FIELD, None)
    if not isinstance(subject, Mapping):
        raise InputError(
            f"{SUBJECT_FIELD}: an OrderRelease needs the subject its order was issued for, "
            '{"id_number": ...} or {"plate_number": ..., "vin": ...} [rule required]'
        )
    kind = document.get("order_kind")
    if kind == "VEHICLE_SEARCH":
        if not subject.get("plate_number"):
            raise InputError(f"{SUBJECT_FIELD}.plate_number: a vehicle order's release needs it")
        plate = normalise_plate_number(subject["plate_number"], f"{SUBJECT_FIELD}.plate_number")
        out = {"plate_number": plate}
        if subject.get("vin") is not None:
            out["vin"] = normalise_vin(subject["vin"], f"{SUBJECT_FIELD}.vin")
        return out
    if not subject.get("id_number"):
        raise InputError(f"{SUBJECT_FIELD}.id_number: a person order's release needs it")
    return {"id_number": normalise_id_number(subject["id_number"], f"{SUBJECT_FIELD}.id_number")}


def _outgoing(schema: RegisteredSchema, document: Any) -> OutgoingEvent:
    if not isinstance(document, dict):
        raise InputError(f"expected a JSON object, got {type(document).__name__}")
    check_text(document, "")
    subject = _release_subject(document) if schema.full_name == _RELEASE else None
    record = normalise_event(schema.full_name, from_json(schema, document))
    default_codec().validate(schema.full_name, record)  # the record's shape, before keying it
    return outgoing_event(schema.full_name, record, subject)


def check_input(
    publisher: Publisher, schema: RegisteredSchema, stream: IO[bytes]
) -> tuple[list[CheckedEvent], list[BadLine]]:
    """Check every line (nothing is sent): the events ready to publish, the bad lines."""
    good: list[CheckedEvent] = []
    bad: list[BadLine] = []
    for number, document in read_documents(stream):
        if isinstance(document, BadLine):
            bad.append(document)
            continue
        try:
            event = _outgoing(schema, document)
            publisher.prepare(event)
        except (BusError, ValueError) as exc:  # every edge error names field and rule
            bad.append(BadLine(number, str(exc)))
        except Exception as exc:  # a checker tripped on a hostile shape: still this line's fault
            bad.append(BadLine(number, f"cannot be checked ({type(exc).__name__}: {exc})"))
        else:
            good.append(CheckedEvent(number, event))
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


def _report(bad: list[BadLine], published: list[tuple[int, PublishedEvent]]) -> None:
    for line in bad:
        typer.secho(f"line {line.line}: {line.error}", fg="red", err=True)
    for number, event in published:
        typer.echo(f"{event.event_id}\t{event.topic}\t{event.partition}\t{event.offset}\t{number}")


def publish(
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
            "--skip-bad", help="Publish the good lines even if some are bad (exit 1 still)."
        ),
    ] = False,
) -> None:
    """Validate, sign and publish events given as JSON (the mapping of `zf801 schemas`).

    Each line is one event (JSON lines), or the input is one JSON document. Every line is
    checked before anything is sent; bad lines are listed with their numbers, the field
    and the rule, and then NOTHING is published unless --skip-bad is given. An
    OrderRelease takes an extra top-level "subject" ({"id_number"} or {"plate_number",
    "vin"}): the subject the order was issued for, which keys the release.

    Prints one line per published event: event id, topic, partition, offset, input line.
    Exit 0 when every line was published, 1 when any line was bad or publishing failed,
    2 for an unknown TYPE. In production mode (ZF801_MODE, the default) it refuses to run
    while ZF801_MATCH_KEY_SECRET or ZF801_KEY_PASSPHRASE holds its demo value or is shorter
    than 16 characters.
    """
    hooks = ctx.obj if isinstance(ctx.obj, PublishHooks) else PublishHooks()
    settings = hooks.settings()
    try:
        settings.require_real_secrets("zf801 publish")
    except BusError as exc:
        raise _fail(str(exc)) from exc
    schema = _schema(event_type)
    try:
        get_agency(agency_code)
    except BusError as exc:
        raise _fail(f"--as: {exc}") from exc
    signer = _signer(settings, agency_code)
    publisher = hooks.publisher(signer, settings)
    operator = _Operator(lambda: hooks.audit(signer, settings), publisher.agency)
    try:
        try:
            _check_role(publisher, schema)
        except typer.Exit:
            operator.record(schema.full_name, "DENIED", "the agency's role may not write it")
            raise
        with _open(source) as stream:
            good, bad = check_input(publisher, schema, stream)
        _report(bad, [])  # before the audit or the publication can meet a broker that is down
        for line in bad:
            operator.record(f"{schema.full_name} line {line.line}", "FAILURE", line.error)
        if bad and not skip_bad:
            raise _fail(
                f"{len(bad)} bad line(s): nothing published (--skip-bad publishes the rest)"
            )
        if not good and not bad:
            raise _fail("no events in the input")
        try:
            results = publisher.publish_all([checked.event for checked in good])
        except PublishError as exc:
            operator.record(schema.full_name, "FAILURE", str(exc))
            raise _fail(str(exc)) from exc
        for result in results:
            operator.record(
                f"{result.topic}/{result.partition}@{result.offset} {result.event_id}", "SUCCESS"
            )
        _report([], list(zip((c.line for c in good), results, strict=True)))
    finally:
        publisher.close()
    typer.echo(f"published {len(good)} event(s); {len(bad)} bad line(s) skipped", err=True)
    if bad:
        raise typer.Exit(1)
