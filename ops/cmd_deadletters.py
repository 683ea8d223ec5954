"""``zf801 deadletters``: the records a processor refused, read from the dead-letter topic
(each dead letter's own seal verified), with why, where and when."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import typer

from ops.cmd_inspect import TopicRecord
from ops.cmd_inspect_view import (
    Follow,
    Format,
    Limit,
    OperatorReader,
    OutputFormat,
    ReadCommand,
    ReadOptions,
    Since,
    UntilIdle,
    View,
    shorten,
    when,
)

__all__ = ["DeadLetterEntry", "ReasonFilter", "dead_letter_entry", "deadletters", "reason_filter"]

_DETAIL_WIDTH = 80
_DEFAULT_READER = "BUS-AUDIT"


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    """One verified dead letter."""

    event_id: str
    signed_by: str
    reason: str
    failed_stage: str
    processor: str
    original_topic: str
    original_partition: int
    original_offset: int
    original_timestamp: datetime | None
    dead_lettered_at: datetime
    detail: str
    original_value_bytes: int

    @property
    def precise_reason(self) -> str:
        """The precise reason code that leads the detail (``BAD_SIGNATURE [verify]: ...``)."""
        return self.detail.split(" ", 1)[0]

    @property
    def original(self) -> str:
        return f"{self.original_topic}/{self.original_partition}@{self.original_offset}"


def dead_letter_entry(record: TopicRecord) -> DeadLetterEntry:
    value: Mapping[str, Any] = record.record
    original = value["original"]
    return DeadLetterEntry(
        event_id=record.event_id,
        signed_by=record.signed_by,
        reason=str(value["reason"]),
        failed_stage=str(value["failed_stage"]),
        processor=str(value["processor"]),
        original_topic=str(original["topic"]),
        original_partition=int(original["partition"]),
        original_offset=int(original["offset"]),
        original_timestamp=value.get("original_timestamp"),
        dead_lettered_at=value["dead_lettered_at"],
        detail=str(value["detail"]),
        original_value_bytes=len(value.get("original_value") or b""),
    )


_REASON = re.compile(r"[A-Z][A-Z0-9_]{1,63}")


def _reason_code(value: str | None) -> str | None:
    """``--reason``: a reason code (letters, digits and ``_``), in any case."""
    if value is None:
        return None
    code = value.strip().upper()
    if not _REASON.fullmatch(code):
        raise typer.BadParameter(
            f"{value[:40]!r}{'…' if len(value) > 40 else ''} is not a reason code: letters, "
            "digits and _, such as SIGNATURE_INVALID (the dead letter's reason) or "
            "BAD_SIGNATURE (its precise code)"
        )
    return code


class ReasonFilter:
    """``--reason``: the DeadLetter reason (``SIGNATURE_INVALID``) or the precise code that
    leads the detail (``BAD_SIGNATURE``), in any case. It counts the reasons it was shown,
    so that a reason no dead letter has is answered with the ones they have (a misspelt
    reason would otherwise show an empty table and nothing more)."""

    def __init__(self, reason: str | None) -> None:
        self.wanted = reason.upper() if reason else None
        self.matched = 0
        self.seen: Counter[str] = Counter()

    def __call__(self, entry: DeadLetterEntry) -> bool:
        self.seen[entry.reason] += 1
        if self.wanted is None or self.wanted in {entry.reason, entry.precise_reason}:
            self.matched += 1
            return True
        return False

    def unmatched_note(self) -> str | None:
        """What to tell the reader when a reason was asked for and nothing had it."""
        if self.wanted is None or self.matched:
            return None
        if not self.seen:
            return f"no dead letter with reason {self.wanted}: no dead letter was read"
        present = ", ".join(f"{reason} ({n})" for reason, n in sorted(self.seen.items()))
        return f"no dead letter with reason {self.wanted}; the reasons read: {present}"


def reason_filter(reason: str | None) -> ReasonFilter:
    """The ``--reason`` filter (every dead letter when None)."""
    return ReasonFilter(reason)


def _row(entry: DeadLetterEntry) -> tuple[str, ...]:
    return (
        entry.reason,
        entry.failed_stage,
        entry.processor,
        entry.original,
        when(entry.original_timestamp),
        when(entry.dead_lettered_at),
        shorten(entry.detail, _DETAIL_WIDTH),
    )


def _document(entry: DeadLetterEntry) -> dict[str, object]:
    return {
        "id": entry.event_id,
        "signed_by": entry.signed_by,
        "reason": entry.reason,
        "failed_stage": entry.failed_stage,
        "processor": entry.processor,
        "original": {
            "topic": entry.original_topic,
            "partition": entry.original_partition,
            "offset": entry.original_offset,
        },
        "original_timestamp": None
        if entry.original_timestamp is None
        else entry.original_timestamp.isoformat(),
        "dead_lettered_at": entry.dead_lettered_at.isoformat(),
        "detail": entry.detail,
        "original_value_bytes": entry.original_value_bytes,
    }


_COLUMNS = ("reason", "stage", "processor", "original", "original time",
            "dead-lettered", "detail")  # fmt: skip
COMMAND = ReadCommand(
    topic_id="dead-letter",
    operation="deadletters.read",
    entry=dead_letter_entry,
    view=View(
        title="Dead letters",
        columns=_COLUMNS,
        row=_row,
        document=_document,
    ),
    noun="dead letter",
)


def deadletters(
    *,
    reader: OperatorReader = _DEFAULT_READER,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            callback=_reason_code,
            help="Only this reason (SIGNATURE_INVALID, or BAD_SIGNATURE).",
        ),
    ] = None,
    since: Since = None,
    limit: Limit = None,
    follow: Follow = False,
    until_idle: UntilIdle = None,
    output: Format = OutputFormat.table,
) -> None:
    """Show the dead letters: records a processor refused (reason, failed stage, processor,
    where the original was read and when, the detail). Each dead letter's seal is verified;
    the read is audited. Reads to the topic's end and stops, unless --follow or --until-idle.
    """
    options = ReadOptions(since, limit, follow, until_idle, output)
    wanted = reason_filter(reason)
    COMMAND.run(reader, wanted, options)
    note = wanted.unmatched_note()
    if note is not None:
        typer.secho(f"note: {note}", fg="yellow", err=True)
