"""``zf801 audit tail``: the newest audit records (each seal verified), with every break of
an agency's hash chain that shows within what was read marked.

An agency's audit records form hash chains (``sign.kafka_sinks.KafkaAuditSink``): each
record's ``sequence`` is one more than its predecessor's and its ``previous_hash`` is the
SHA-256 of the predecessor's value bytes; a process starts a new chain at sequence 0 with
32 zero bytes. :class:`ChainWatch` links the records it is given by those hashes; a record
whose predecessor it read with another sequence, or whose predecessor is missing while
the agency's chain was being read, is a break. Its limit: a chain of a second process of
the same agency whose start lies before what was read may be marked too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Annotated

import typer

from consumers.runtime import Runtime
from ops.audit_index import AuditIndex, AuditRow, SearchQuery, rows_of
from ops.cmd_inspect import TopicReader, TopicRecord, parse_since
from ops.cmd_inspect_view import (
    AgencyOnly,
    Follow,
    Format,
    OperatorReader,
    OutputFormat,
    View,
    fail,
    select,
    shorten,
    when,
)
from ops.errors import OpsError
from schemas.errors import BusError
from schemas.identifiers import normalise_text
from schemas.settings import MAX_LISTED

__all__ = [
    "AuditEntry",
    "ChainSummary",
    "ChainWatch",
    "audit_app",
    "audit_entry",
    "audit_filter",
    "chain_document",
    "chain_summaries",
    "complete_tail",
    "mark_breaks",
]

_ZERO_HASH = bytes(32)
_DETAIL_WIDTH = 60
_DEFAULT_READER = "BUS-AUDIT"

audit_app = typer.Typer(help="The audit log (every user operation, hash-chained per agency).",
                        no_args_is_help=True)  # fmt: skip


_RESULTS = ("SUCCESS", "FAILURE", "DENIED")


def _term(option: str, label: str, *, personal: bool = False) -> Callable[[str | None], str | None]:
    """The check of a free-text filter: present, at most 64 characters, no control or
    look-alike characters (rules ``audit.<label>.*``); a personal one is masked in errors."""

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        return normalise_text(value, option, label, f"audit.{label}", personal=personal)

    return check


def _result(value: str | None) -> str | None:
    if value is None:
        return None
    wanted = normalise_text(value, "--result", "result", "audit.result").upper()
    if wanted not in _RESULTS:
        raise OpsError(
            f"--result {wanted!r}: one of {', '.join(_RESULTS)} (any case) "
            "[rule audit.result.unknown]"
        )
    return wanted


UserOnly = Annotated[
    str | None, typer.Option("--user", help="Only this user's.", callback=_term("--user", "user"))
]
SubjectOnly = Annotated[
    str | None,
    typer.Option("--subject", help="Only records naming this ID number or credit code.",
                 callback=_term("--subject", "subject", personal=True)),
]  # fmt: skip
OperationOnly = Annotated[
    str | None,
    typer.Option("--operation", help="Only this operation (query.ask), or a prefix (alerts.).",
                 callback=_term("--operation", "operation")),
]  # fmt: skip
ResultOnly = Annotated[
    str | None,
    typer.Option("--result", help="Only SUCCESS, FAILURE or DENIED.", callback=_result),
]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One verified audit record, and what the chain check found (``chain_break``)."""

    event_id: str
    partition: int
    offset: int
    timestamp_ms: int
    digest: bytes
    """SHA-256 of the record's value bytes: the next record's ``previous_hash``."""
    sequence: int
    previous_hash: bytes
    occurred_at: datetime
    agency_code: str
    user: str
    role: str
    operation: str
    target: str
    result: str
    detail: str | None
    client_host: str
    chain_break: str | None = None
    writer: str | None = None
    """The agency that signed the record. The chain is the writer's: a command centre
    records each viewer's agency as ``agency_code``, in the one chain of its process."""

    @property
    def chain_agency(self) -> str:
        """Whose chain the record is in: its writer's (its own agency, unless a writer
        recorded what another agency did)."""
        return self.writer or self.agency_code


def audit_entry(record: TopicRecord) -> AuditEntry:
    value = record.record
    return AuditEntry(
        event_id=record.event_id,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp_ms,
        digest=hashlib.sha256(record.value).digest(),
        sequence=int(value["sequence"]),
        previous_hash=bytes(value["previous_hash"]),
        occurred_at=value["occurred_at"],
        agency_code=str(value["agency_code"]),
        user=str(value["user"]),
        role=str(value["role"]),
        operation=str(value["operation"]),
        target=str(value["target"]),
        result=str(value["result"]),
        detail=value.get("result_detail"),
        client_host=str(value["client"]["host"]),
        writer=record.signed_by,
    )


def _order(entry: AuditEntry) -> tuple[int, int, int, int]:
    """Oldest first: the producer's timestamp (taken in chain order), then the sequence."""
    return (entry.timestamp_ms, entry.sequence, entry.partition, entry.offset)


class ChainWatch:
    """Links the audit records it is given, oldest first, into their writers' chains."""

    def __init__(self) -> None:
        self._open: dict[str, dict[bytes, AuditEntry]] = {}  # chain ends, by their digest
        self._followed: dict[str, set[bytes]] = {}  # digests some record already follows

    def check(self, entry: AuditEntry) -> AuditEntry:
        """``entry``, its ``chain_break`` set when it breaks its agency's chain."""
        ends = self._open.setdefault(entry.chain_agency, {})
        followed = self._followed.setdefault(entry.chain_agency, set())
        problem = self._problem(entry, ends, followed)
        followed.add(entry.previous_hash)
        ends[entry.digest] = entry
        return replace(entry, chain_break=problem)

    @staticmethod
    def _problem(
        entry: AuditEntry, ends: dict[bytes, AuditEntry], followed: set[bytes]
    ) -> str | None:
        if entry.sequence == 0:
            return None if entry.previous_hash == _ZERO_HASH else "sequence 0 has a previous hash"
        if entry.previous_hash == _ZERO_HASH:
            return f"sequence {entry.sequence} has no previous hash"
        predecessor = ends.pop(entry.previous_hash, None)
        if predecessor is not None:
            gap = predecessor.sequence != entry.sequence - 1
            return f"sequence gap: {entry.sequence} follows {predecessor.sequence}" if gap else None
        if entry.previous_hash in followed:
            return f"sequence {entry.sequence} follows a record another one already follows"
        if not ends:
            return None  # its predecessor is older than what was read
        last = max(ends.values(), key=_order)
        return (
            f"previous hash of sequence {entry.sequence} matches no record read "
            f"(the chain of {entry.chain_agency} read so far ends at sequence {last.sequence})"
        )


def mark_breaks(entries: Iterable[AuditEntry], watch: ChainWatch | None = None) -> list[AuditEntry]:
    """The entries oldest first, each break of its agency's chain marked."""
    watch = watch or ChainWatch()
    return [watch.check(entry) for entry in sorted(entries, key=_order)]


@dataclass(slots=True)
class ChainSummary:
    """One audit chain as found on the topic: the records linked by their hashes."""

    agency_code: str
    """The writer's agency: whose chain it is (:attr:`AuditEntry.chain_agency`)."""
    first: AuditEntry
    last: AuditEntry
    records: int = 1
    breaks: list[str] = field(default_factory=list)

    @property
    def head(self) -> str:
        """How the chain starts: its genesis, or a record whose predecessor is not on the
        topic (deleted by retention, or removed)."""
        if self.first.sequence == 0:
            return "genesis"
        return f"starts at sequence {self.first.sequence}: its predecessor is not on the topic"


def chain_summaries(entries: Iterable[AuditEntry]) -> list[ChainSummary]:
    """Every chain in ``entries`` (checked by :func:`mark_breaks`), oldest first. A record
    continues the chain whose last record it follows by hash; any other starts a chain of
    its own, and a break found at it (a gap, a fork, a hash out of place) is counted in
    the chain it sits in."""
    chains: list[ChainSummary] = []
    ending: dict[bytes, ChainSummary] = {}  # the chain whose last record has this digest
    for entry in mark_breaks(entries):
        chain = ending.pop(entry.previous_hash, None) if entry.sequence else None
        if chain is None:
            chain = ChainSummary(entry.chain_agency, entry, entry, records=0)
            chains.append(chain)
        chain.last = entry
        chain.records += 1
        if entry.chain_break:
            chain.breaks.append(f"sequence {entry.sequence} ({entry.partition}@{entry.offset}): "
                                f"{entry.chain_break}")  # fmt: skip
        ending[entry.digest] = chain
    return chains


def complete_tail(records: list[TopicRecord], per_partition: int) -> list[TopicRecord]:
    """The records read as the last ``per_partition`` of each partition, cut to the span
    every partition covers: from the latest first record of a partition read only in part,
    so no record of that span is missing from the chain check."""
    first: dict[int, int] = {}
    counts: dict[int, int] = {}
    for record in records:
        counts[record.partition] = counts.get(record.partition, 0) + 1
        first[record.partition] = min(first.get(record.partition, record.timestamp_ms),
                                      record.timestamp_ms)  # fmt: skip
    cut = max((first[p] for p, n in counts.items() if n >= per_partition), default=None)
    return records if cut is None else [r for r in records if r.timestamp_ms >= cut]


def audit_filter(
    agency: str | None, operation: str | None, result: str | None
) -> Callable[[AuditEntry], bool]:
    """``--agency``, ``--operation`` (exact, or a prefix ending in ``.``: ``alerts.``) and
    ``--result`` (any case)."""
    wanted_result = result.upper() if result else None

    def matches(entry: AuditEntry) -> bool:
        if agency is not None and entry.agency_code != agency:
            return False
        if wanted_result is not None and entry.result != wanted_result:
            return False
        if operation is None:
            return True
        if operation.endswith("."):
            return entry.operation.startswith(operation)
        return entry.operation == operation

    return matches


def _row(entry: AuditEntry) -> tuple[str, ...]:
    return (
        when(entry.occurred_at),
        entry.agency_code,
        entry.user,
        entry.role,
        entry.operation,
        entry.target,
        entry.result,
        shorten(entry.detail or "", _DETAIL_WIDTH),
        entry.client_host,
        f"{entry.sequence}" + (f" BREAK: {entry.chain_break}" if entry.chain_break else ""),
    )


def _document(entry: AuditEntry) -> Mapping[str, object]:
    return {
        "id": entry.event_id,
        "occurred_at": entry.occurred_at.isoformat(),
        "agency_code": entry.agency_code,
        "user": entry.user,
        "role": entry.role,
        "operation": entry.operation,
        "target": entry.target,
        "result": entry.result,
        "detail": entry.detail,
        "client_host": entry.client_host,
        "sequence": entry.sequence,
        "previous_hash": entry.previous_hash.hex(),
        "chain_break": entry.chain_break,
    }


_COLUMNS = ("time", "agency", "user", "role", "operation", "target", "result", "detail",
            "client host", "chain")  # fmt: skip
VIEW = View(title="Audit log", columns=_COLUMNS, row=_row, document=_document)


@audit_app.command("tail")
def tail(
    *,
    reader: OperatorReader = _DEFAULT_READER,
    count: Annotated[
        int, typer.Option("-n", "--lines", min=1, max=MAX_LISTED, help="How many records.")
    ] = 20,
    agency: AgencyOnly = None,
    operation: OperationOnly = None,
    result: ResultOnly = None,
    follow: Follow = False,
    output: Format = OutputFormat.table,
) -> None:
    """Show the last N audit records, newest last: time, agency, user, role, operation,
    target, result, detail, client host, and the chain sequence, marked BREAK where an
    agency's hash chain breaks within what was read. Each record's seal is verified; the
    read is itself audited."""
    wanted = audit_filter(agency, operation, result)
    filtered = agency is not None or operation is not None or result is not None
    try:
        runtime = Runtime.connect(reader)
        try:
            with TopicReader(runtime, "audit", "audit.read") as topic:
                # Unfiltered, the newest N overall are among the newest N of each partition.
                if filtered:
                    history = topic.history()
                else:
                    history = complete_tail(topic.history(tail=count), count)
                watch = ChainWatch()
                entries = select(mark_breaks(map(audit_entry, history), watch), wanted, count)
                later = (watch.check(audit_entry(record)) for record in topic.follow())
                _show(entries, (e for e in later if wanted(e)) if follow else (), output, follow)
        finally:
            runtime.close()
    except BusError as exc:
        raise fail(exc) from exc


def _show(
    entries: list[AuditEntry], later: Iterable[AuditEntry], output: OutputFormat, follow: bool
) -> None:
    if output is OutputFormat.json:
        for entry in chain(entries, later):
            VIEW.json(entry)
    elif follow:
        VIEW.header()
        for entry in chain(entries, later):
            VIEW.line(entry)
    else:
        breaks = sum(entry.chain_break is not None for entry in entries)
        VIEW.table(entries, f"{len(entries)} audit record(s), {breaks} chain break(s) shown")


def _search_row(row: AuditRow) -> tuple[str, ...]:
    return (
        when(row.occurred_at),
        row.agency,
        row.user,
        row.role,
        row.operation,
        row.target,
        row.result,
        shorten(row.detail or "", _DETAIL_WIDTH),
        f"{row.client_host} {row.client_address} {row.client_application}",
    )


SEARCH_VIEW = View(
    title="Who saw what",
    columns=(
        "time",
        "agency",
        "user",
        "role",
        "operation",
        "target",
        "result",
        "detail",
        "client (host, address, application)",
    ),
    row=_search_row,
    document=AuditRow.document,
)


@audit_app.command("search")
def search(
    *,
    reader: OperatorReader = _DEFAULT_READER,
    agency: AgencyOnly = None,
    user: UserOnly = None,
    subject: SubjectOnly = None,
    operation: OperationOnly = None,
    result: ResultOnly = None,
    since: Annotated[
        str | None, typer.Option("--from", help="From this time (ISO 8601) or age (30m, 7d).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--to", help="Before this time (ISO 8601) or age.")
    ] = None,
    limit: Annotated[
        int, typer.Option("-n", "--limit", min=1, max=MAX_LISTED, help="At most this many.")
    ] = 100,
    index_path: Annotated[
        Path | None,
        typer.Option("--index", help="The index file (default: ZF801_HOME/state/audit/)."),
    ] = None,
    output: Format = OutputFormat.table,
) -> None:
    """Who queried, published, read alerts or was refused, about whom, from which client:
    the matching audit records, oldest first (the newest N). The audit topic is indexed
    first from where the last search stopped (each seal verified); records deleted by
    retention before they were indexed are reported. The search is itself audited."""
    now = datetime.now(UTC)
    try:
        query = SearchQuery(
            agency=agency, user=user, subject=subject, operation=operation, result=result,
            since=parse_since(since, now, "--from") if since else None,
            until=parse_since(until, now, "--to") if until else None, limit=limit,
        )  # fmt: skip
        if query.since is not None and query.until is not None and query.since > query.until:
            raise OpsError(f"--from {since} is after --to {until}: --from <= --to")
        runtime = Runtime.connect(reader)
        try:
            with TopicReader(runtime, "audit", "audit.search") as topic:
                path = (
                    index_path
                    or runtime.settings.home / "state" / "audit" / f"{topic.topic}.sqlite"
                )
                with AuditIndex(path, topic.topic, make_folders=index_path is None) as index:
                    gaps = index.gaps(topic.beginnings())
                    records = topic.history(start=index.positions())
                    index.add(rows_of(records), topic.read_to)
                    rows = index.search(query)
                    indexed = index.count()
        finally:
            runtime.close()
    except BusError as exc:
        raise fail(exc) from exc
    for gap in gaps:
        typer.secho(f"warning: {gap}", fg="yellow", err=True)
    if output is OutputFormat.json:
        for row in rows:
            SEARCH_VIEW.json(row)
    else:
        SEARCH_VIEW.table(rows, f"{len(rows)} record(s) of {indexed} indexed")


def _chain_row(chain: ChainSummary) -> tuple[str, ...]:
    return (
        chain.agency_code,
        f"{chain.first.sequence}-{chain.last.sequence}",
        str(chain.records),
        f"{when(chain.first.occurred_at)} .. {when(chain.last.occurred_at)}",
        chain.first.client_host,
        chain.head,
        "; ".join(chain.breaks) or "-",
    )


def chain_document(chain: ChainSummary) -> Mapping[str, object]:
    return {
        "agency_code": chain.agency_code,
        "first_sequence": chain.first.sequence,
        "last_sequence": chain.last.sequence,
        "records": chain.records,
        "first_at": chain.first.occurred_at.isoformat(),
        "last_at": chain.last.occurred_at.isoformat(),
        "client_host": chain.first.client_host,
        "head": chain.head,
        "last_hash": chain.last.digest.hex(),
        "breaks": chain.breaks,
    }


CHAINS_VIEW = View(
    title="Audit chains",
    columns=("agency", "sequences", "records", "from .. to", "client host", "head", "breaks"),
    row=_chain_row,
    document=chain_document,
)


@audit_app.command("chains")
def chains(
    *,
    reader: OperatorReader = _DEFAULT_READER,
    agency: AgencyOnly = None,
    output: Format = OutputFormat.table,
) -> None:
    """Check every audit hash chain on the topic from its start: one row per chain (an
    agency's process slot, see sign/audit_chain.py) with its sequences, time span, how it
    starts, and every break (a missing record, a fork, a reordered or altered record).
    Exit code 2 when any chain is broken. Each seal is verified; the read is audited. A
    chain cut at its end cannot be seen from the records alone."""
    try:
        runtime = Runtime.connect(reader)
        try:
            with TopicReader(runtime, "audit", "audit.chains") as topic:
                entries = [audit_entry(record) for record in topic.history()]
        finally:
            runtime.close()
    except BusError as exc:
        raise fail(exc) from exc
    found = [c for c in chain_summaries(entries) if agency is None or c.agency_code == agency]
    broken = sum(bool(chain.breaks) for chain in found)
    if output is OutputFormat.json:
        for chain in found:
            CHAINS_VIEW.json(chain)
    else:
        CHAINS_VIEW.table(found, f"{len(found)} chain(s), {broken} broken")
    if broken:
        raise typer.Exit(2)
