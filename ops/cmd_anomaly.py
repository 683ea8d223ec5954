"""``zf801 anomaly report | ack | list | escalate``: system anomaly notices and the 24-hour
rule (MISSION §3). One side reports, the other acknowledges within 24 hours; the bus
escalates a notice left unacknowledged (:mod:`consumers.anomaly_log`)."""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from consumers.anomaly_log import AnomalyCase, AnomalyLog, AnomalyStatus
from consumers.runtime import Runtime
from ops.cmd_alerts import OutputFormat
from ops.cmd_inspect import TopicReader
from ops.cmd_inspect_view import Format, View, fail, when
from producers.anomalies import (
    SEVERITIES,
    AnomalyDesk,
    AnomalyInputInvalid,
    checked_detected_at,
    checked_text,
    notice_id_of,
    report_fields,
)
from producers.publisher import Publisher
from schemas.agencies import AgencyRole, get_agency, load_agencies
from schemas.errors import BusError, UnknownAgencyError

__all__ = ["anomaly_app", "read_anomalies"]

anomaly_app = typer.Typer(
    help="System anomaly notices: report one, acknowledge the other side's, list them "
    "with their 24-hour status, escalate the overdue (the bus).",
    no_args_is_help=True,
)
_TOPIC = "anomalies"

As = Annotated[str, typer.Option("--as", help="The agency acting (its key signs).")]


def _bus_agency(code: str) -> str:
    """``escalate --as``: a bus agency, checked before anything is reached. Only the bus
    escalates (README), and an escalation signed by anyone else counts for nothing."""
    role: AgencyRole | None
    try:
        role = get_agency(code).role
        what = f"{code} is a {role} agency"
    except UnknownAgencyError as exc:
        role, what = None, str(exc)
    if role is not AgencyRole.BUS:
        buses = ", ".join(a.code for a in load_agencies().with_role(AgencyRole.BUS))
        raise typer.BadParameter(
            f"{what}; only a bus agency ({buses}) escalates an overdue anomaly notice "
            "[rule bus-escalates]",
            param_hint="'--as'",
        )
    return code


def read_anomalies(runtime: Runtime) -> AnomalyLog:
    """Every notice on the anomalies topic, each record's seal verified (the read audited)."""
    with TopicReader(runtime, _TOPIC, "anomaly.read") as reader:
        records = reader.history()
    return AnomalyLog.of(
        (r.event_type, r.record, str(get_agency(r.signed_by).role), r.signed_by) for r in records
    )


@contextmanager
def _acting(agency: str) -> Iterator[tuple[Runtime, AnomalyDesk]]:
    """The agency's runtime and anomaly desk; errors end the command with one red line."""
    try:
        runtime = Runtime.connect(agency)
        try:
            with Publisher(runtime.signer, settings=runtime.settings) as publisher:
                yield runtime, AnomalyDesk(publisher)
        finally:
            runtime.close()
    except BusError as exc:
        raise fail(exc) from exc


def _audit(runtime: Runtime, operation: str, result: str, detail: str) -> None:
    agency = get_agency(runtime.agency_code)
    runtime.audit.record(
        user=getpass.getuser(), role=str(agency.role), agency_code=agency.code,
        operation=operation, target=runtime.catalog.topic_name(_TOPIC), result=result,
        detail=detail,
    )  # fmt: skip


def _detected_at(text: str | None, now: dt.datetime) -> dt.datetime | None:
    """``--detected-at``: an ISO 8601 time with its zone, neither in the future nor too
    long ago (:func:`producers.anomalies.checked_detected_at`)."""
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise AnomalyInputInvalid(
            f"--detected-at: {text[:40]!r} is not an ISO 8601 time [rule instant]"
        ) from None
    if moment.tzinfo is None:
        raise AnomalyInputInvalid("--detected-at: give a timezone, e.g. +08:00 [rule instant]")
    return checked_detected_at(moment, now, "--detected-at")


def _usage(exc: BusError) -> typer.Exit:
    """A bad option value: the same red line as :func:`fail`, with the usage exit code."""
    fail(exc)
    return typer.Exit(2)


@anomaly_app.command("report")
def report(
    *,
    agency: As,
    component: Annotated[str, typer.Option(help="The component that failed (at most 128).")],
    severity: Annotated[str, typer.Option(help=f"One of {', '.join(SEVERITIES)}.")],
    description: Annotated[str, typer.Option(help="What happened (at most 2000).")],
    detected_at: Annotated[
        str | None, typer.Option(help="When it was detected, ISO 8601 with zone (default now).")
    ] = None,
) -> None:
    """Report a system anomaly to the other side, which must acknowledge it in 24 hours."""
    now = dt.datetime.now(dt.UTC)
    try:  # the input first: a bad one is refused before anything is reached
        detected = _detected_at(detected_at, now)
    except BusError as exc:
        raise _usage(exc) from exc
    try:
        fields = report_fields(
            component=component, severity=severity, description=description,
            detected_at=detected, now=now,
        )  # fmt: skip
    except BusError as exc:
        raise fail(exc) from exc
    with _acting(agency) as (runtime, desk):
        notice_id, _ = desk.report(**fields)
        _audit(runtime, "anomaly.report", "SUCCESS", notice_id)
    typer.echo(f"reported anomaly {notice_id}: the other side must acknowledge it in 24 hours")


@anomaly_app.command("ack")
def ack(
    notice_id: Annotated[str, typer.Argument(help="The notice to acknowledge.")],
    *,
    agency: As,
    note: Annotated[
        str | None, typer.Option(help="A note, e.g. the contact (at most 2000).")
    ] = None,
) -> None:
    """Acknowledge the other side's anomaly notice (once: again says when it was)."""
    try:  # the input first: a bad one is refused before anything is reached
        checked = notice_id_of(notice_id, "NOTICE_ID")
        if note is not None:
            note = checked_text("note", note)
    except BusError as exc:
        raise fail(exc) from exc
    with _acting(agency) as (runtime, desk):
        case = read_anomalies(runtime).cases.get(checked)
        if case is None:
            raise AnomalyInputInvalid(
                f"NOTICE_ID: no notice {checked} on the anomalies topic [rule known-notice]"
            )
        earlier = case.acknowledgement_by(runtime.agency_code)
        if earlier is not None and earlier.counts:  # once: a second one tells nothing new
            _audit(runtime, "anomaly.ack", "SUCCESS", f"{checked} already acknowledged")
            typer.echo(f"anomaly {checked}: already acknowledged by {earlier.agency} at "
                       f"{when(earlier.at)}")  # fmt: skip
            return
        desk.acknowledge(checked, case.reporter_role, note=note)
        late = dt.datetime.now(dt.UTC) > case.acknowledge_by
        _audit(runtime, "anomaly.ack", "SUCCESS", checked + (" late" if late else ""))
    lateness = f", late (due {when(case.acknowledge_by)})" if late else ""
    typer.echo(f"acknowledged anomaly {checked} of {case.reported_by}{lateness}")


@anomaly_app.command("list")
def list_(
    *,
    agency: As,
    status: Annotated[
        list[AnomalyStatus] | None, typer.Option(help="Only these statuses (repeatable).")
    ] = None,
    output: Format = OutputFormat.table,
) -> None:
    """Every anomaly notice with its status under the 24-hour rule."""
    with _acting(agency) as (runtime, _):
        log = read_anomalies(runtime)
    now = dt.datetime.now(dt.UTC)
    cases = [c for c in log.cases.values() if not status or c.status(now) in status]
    view = _view(now)
    if output is OutputFormat.json:
        for case in cases:
            view.json(case)
    else:
        view.table(cases, f"{len(cases)} anomaly notice(s)")


@anomaly_app.command("escalate")
def escalate(
    *,
    agency: Annotated[
        str, typer.Option("--as", callback=_bus_agency, help="The bus agency (its key signs).")
    ],
) -> None:
    """Escalate every notice past its 24 hours with no acknowledgement by the other side
    (a bus agency; once per notice, however often it runs: a notice the bus escalated is
    ESCALATED on the topic, and no run picks it again)."""
    with _acting(agency) as (runtime, desk):
        overdue = read_anomalies(runtime).overdue(dt.datetime.now(dt.UTC))
        for case in overdue:  # each under a random event id (see consumers.anomaly_log)
            desk.escalate(case.notice_id, case.reported_by, case.acknowledge_by)
            _audit(runtime, "anomaly.escalate", "SUCCESS", case.notice_id)
    typer.echo(f"escalated {len(overdue)} overdue anomaly notice(s)")


def _view(now: dt.datetime) -> View[AnomalyCase]:
    def row(case: AnomalyCase) -> tuple[object, ...]:
        acks = ", ".join(
            a.agency + ("" if a.counts else " (own side)") for a in case.acknowledgements
        )
        return (
            case.notice_id, case.reported_by, case.severity, case.component,
            when(case.detected_at), when(case.acknowledge_by), case.status(now).value,
            acks or "-",
        )  # fmt: skip

    def document(case: AnomalyCase) -> dict[str, object]:
        return {
            "notice_id": case.notice_id, "reported_by": case.reported_by,
            "severity": case.severity, "component": case.component,
            "description": case.description, "detected_at": case.detected_at.isoformat(),
            "acknowledge_by": case.acknowledge_by.isoformat(),
            "status": case.status(now).value,
            "acknowledged_at": None if case.acknowledged_at is None
            else case.acknowledged_at.isoformat(),
            "acknowledged_by": [a.agency for a in case.acknowledgements if a.counts],
            "escalated_at": None if case.escalated_at is None else case.escalated_at.isoformat(),
        }  # fmt: skip

    columns = ("notice", "reported by", "severity", "component", "detected", "ack by",
               "status", "acknowledged by")  # fmt: skip
    return View("Anomaly notices", columns, row, document)
