"""``zf801 blocks``: the police side's blocked answers, the VehicleTransferBlocked records
the matcher writes when a seized vehicle's transfer or mortgage registration is attempted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import typer

from ops.cmd_inspect import TopicRecord
from ops.cmd_inspect_view import (
    Follow,
    Format,
    Limit,
    OutputFormat,
    ReadCommand,
    ReadOptions,
    Since,
    UntilIdle,
    View,
    when,
)
from schemas.identifiers import normalise_court_code, normalise_plate_number

__all__ = ["BlockEntry", "block_entry", "block_filter", "blocks"]


@dataclass(frozen=True, slots=True)
class BlockEntry:
    """One verified VehicleTransferBlocked answer."""

    event_id: str
    signed_by: str
    plate_number: str
    vin: str | None
    order_id: str
    court_code: str
    seizure_ruling_reference: str
    attempted_operation: str
    """The kind of the vehicle sighting that was blocked (transfer or mortgage)."""
    sighting_id: str | None
    reporting_unit_code: str | None
    blocked_at: datetime


def block_entry(record: TopicRecord) -> BlockEntry:
    value = record.record
    vehicle = value["vehicle"]
    return BlockEntry(
        event_id=record.event_id,
        signed_by=record.signed_by,
        plate_number=str(vehicle["plate_number"]),
        vin=vehicle.get("vin"),
        order_id=str(value["order_id"]),
        court_code=str(value["court_code"]),
        seizure_ruling_reference=str(value["seizure_ruling_reference"]),
        attempted_operation=str(value["attempted_operation"]),
        sighting_id=None if value.get("sighting_id") is None else str(value["sighting_id"]),
        reporting_unit_code=value.get("reporting_unit_code"),
        blocked_at=value["blocked_at"],
    )


def block_filter(plate: str | None, court: str | None) -> Callable[[BlockEntry], bool]:
    """``--plate`` and ``--court``: exact, as the records carry them."""

    def matches(entry: BlockEntry) -> bool:
        return (plate is None or entry.plate_number == plate) and (
            court is None or entry.court_code == court
        )

    return matches


def _row(entry: BlockEntry) -> tuple[str, ...]:
    return (
        entry.plate_number,
        entry.vin or "-",
        entry.order_id,
        entry.court_code,
        entry.seizure_ruling_reference,
        when(entry.blocked_at),
        entry.attempted_operation,
        entry.reporting_unit_code or "-",
    )


def _document(entry: BlockEntry) -> dict[str, object]:
    return {
        "id": entry.event_id,
        "signed_by": entry.signed_by,
        "plate_number": entry.plate_number,
        "vin": entry.vin,
        "order_id": entry.order_id,
        "court_code": entry.court_code,
        "seizure_ruling_reference": entry.seizure_ruling_reference,
        "blocked_at": entry.blocked_at.isoformat(),
        "attempted_operation": entry.attempted_operation,
        "sighting_id": entry.sighting_id,
        "reporting_unit_code": entry.reporting_unit_code,
    }


_COLUMNS = ("plate", "VIN", "order", "court", "case (seizure ruling)", "blocked at",
            "sighting kind", "reported by")  # fmt: skip
COMMAND = ReadCommand(
    topic_id="vehicle-blocks",
    operation="blocks.read",
    entry=block_entry,
    view=View(
        title="Blocked vehicle registrations",
        columns=_COLUMNS,
        row=_row,
        document=_document,
    ),
    noun="blocked registration",
)


def _plate(value: str | None) -> str | None:
    """``--plate`` as the records carry it (normalised: 京a·12345 is 京A12345), or refused."""
    return None if value is None else normalise_plate_number(value, "--plate")


def _court(value: str | None) -> str | None:
    return None if value is None else normalise_court_code(value, "--court")


def blocks(
    *,
    reader: Annotated[
        str, typer.Option("--as", help="The reading agency (a traffic-management unit).")
    ],
    plate: Annotated[
        str | None, typer.Option("--plate", help="Only this plate.", callback=_plate)
    ] = None,
    court: Annotated[
        str | None, typer.Option("--court", help="Only this court's.", callback=_court)
    ] = None,
    since: Since = None,
    limit: Limit = None,
    follow: Follow = False,
    until_idle: UntilIdle = None,
    output: Format = OutputFormat.table,
) -> None:
    """Show the blocked answers to the police side: a transfer or mortgage registration of
    a vehicle seized by a court's order was refused (plate, VIN, order, court, seizure
    ruling, when, which registration). Each record's seal is verified; the read is audited.
    """
    options = ReadOptions(since, limit, follow, until_idle, output)
    COMMAND.run(reader, block_filter(plate, court), options)
