"""``zf801 replay``: read a range of catalog topics as an agency, for audit, and (with
``--verify``) check every record as the bus judged it on arrival (its Kafka timestamp):
seal against the trust history (a key revoked later does not void earlier records; one
revoked before the record arrived does), ``ce_time`` within its acceptance window,
envelope, schema, the writer's role, duplicate event ids, and the audit hash chains in
range; with ``--rematch``, that the hits delivered are the hits the matching rules
expect. Retention gaps are named. The report can be written as a sealed JSON document
(``--out``).

The range logic and the tally are pure (``ops.replay_check``), and so is the rematch
(``ops.rematch``; what it reads besides the range: ``ops.replay_rematch``); this module
reads Kafka through :class:`ops.cmd_inspect.TopicReader` (read rule checked, every read
audited) and has each record judged by :class:`ops.replay_judge.Judge` with the
runtime's verify stage, whose refusals are kept for the report: a replay never writes to
the dead-letter topic.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack, closing, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from consumers.runtime import Runtime
from ops.cmd_inspect import TopicReader
from ops.cmd_inspect_view import Format, OperatorReader, OutputFormat, View, fail
from ops.errors import OpsError
from ops.rematch import Rematch
from ops.rematch_result import RematchResult
from ops.replay_check import (
    RETENTION,
    STALLED,
    Bound,
    Break,
    Gap,
    PartitionCount,
    PartitionRange,
    ReplayInputError,
    ReplayTally,
    check_bounds,
    check_out_path,
    parse_bound,
    partition_range,
    replay_topics,
    report_document,
    start_offset,
)
from ops.replay_judge import Judge
from ops.replay_pool import VerdictPool
from ops.replay_rematch import (
    check_rematch_readers,
    foreign_readers,
    rematch_topic_ids,
    rematch_topics,
    show_rematch,
)
from ops.terminal import printable
from schemas.agencies import get_agency
from schemas.errors import BusError
from schemas.files import write_replacing
from schemas.matchkey import MatchKeyer
from schemas.settings import get_settings
from sign.seal import check_seal_path, seal_document, seal_path_for
from topics.catalog import Catalog, bus_catalog

__all__ = ["ReplayRequest", "replay", "run_replay"]

_DEFAULT_READER = "BUS-AUDIT"
_OPERATION = "replay"
_TRUST_WAIT_S = 30.0
_POOL_MINIMUM = 20_000
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
_errors = Console(stderr=True)
_console = Console()


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """What the operator asked for, checked."""

    reader: str
    topic_ids: tuple[str, ...]
    start: Bound | None
    end: Bound | None
    verify: bool
    rematch: bool = False
    alert_readers: tuple[str, ...] = ()
    """The courts whose alert topics the rematch reads, each as itself."""
    blocks_reader: str | None = None
    """The agency the rematch reads the transfer blocks as."""
    jobs: int = 1
    """Processes judging the records (``--jobs``); one: the replay's own."""


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} records/s")


def _progress(enabled: bool) -> Progress | None:
    if not enabled:
        return None
    return Progress(
        TextColumn("replay"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
        TimeRemainingColumn(), console=_errors, transient=True,
    )  # fmt: skip


def _offset(
    reader: TopicReader, partitions: Iterable[int], bound: Bound | None, *, first: bool
) -> dict[int, int | None]:
    """The offset each partition's range starts at (``first``) or stops before."""
    if bound is None:
        return dict.fromkeys(partitions)
    if isinstance(bound, int):
        return dict.fromkeys(partitions, bound if first else bound + 1)
    return dict(reader.offsets_at(bound))


def _ranges(
    reader: TopicReader, request: ReplayRequest, *, to_end: bool = False
) -> list[PartitionRange]:
    """Each partition's range; ``to_end``: up to the end now, whatever ``--to`` says."""
    starts, ends = reader.beginnings(), reader.ends()
    wanted_first = _offset(reader, ends, request.start, first=True)
    wanted_stop = _offset(reader, ends, None if to_end else request.end, first=False)
    ranges = []
    for partition in sorted(ends):
        first, stop = wanted_first[partition], wanted_stop[partition]
        if isinstance(request.start, dt.datetime):
            first = start_offset(first, starts[partition], ends[partition])
        ranges.append(
            partition_range(
                reader.topic, partition, starts[partition], ends[partition], first, stop
            )
        )
    return ranges


def _trust_complete(runtime: Runtime) -> None:
    follower = runtime.trust_follower
    if follower is None or not follower.wait_caught_up(_TRUST_WAIT_S):
        raise OpsError(
            "the trust topic was not read to its end: records cannot be judged against "
            "the whole trust history"
        )


def run_replay(
    runtime: Runtime,
    request: ReplayRequest,
    progress: Progress | None = None,
    *,
    foreign: Sequence[TopicReader] = (),
    rematch: Rematch | None = None,
) -> tuple[ReplayTally, list[Mapping[str, object]], RematchResult | None]:
    """Read and judge the range (with ``foreign``: the delivered hits and blocks, read as
    other agencies, judged alike, up to their end so that a hit of a sighting before
    ``--to`` delivered after it is found); returns the tally, the audit chains in range
    and the rematch's result."""
    readers = [TopicReader(runtime, topic_id, f"{_OPERATION}.read")
               for topic_id in request.topic_ids]  # fmt: skip
    readers += foreign
    if request.verify:
        _trust_complete(runtime)
    judge = Judge(runtime, ReplayTally(verify=request.verify), rematch)
    stalled: dict[tuple[str, int], int] = {}
    with ExitStack() as stack:
        # Every read is audited as it opens, before any range is fixed: all in range.
        if request.verify and runtime.catalog.may_read(_role(runtime), "checkpoints"):
            checkpoints = TopicReader(runtime, "checkpoints", f"{_OPERATION}.read")
            judge.read_checkpoints(stack.enter_context(checkpoints))
        entered = [stack.enter_context(reader) for reader in readers]
        opened = [(reader, _ranges(reader, request, to_end=reader in foreign))
                  for reader in entered]  # fmt: skip
        for _, ranges in opened:
            judge.tally.expect(ranges)
        total = sum(scope.size for _, ranges in opened for scope in ranges)
        task = progress.add_task("replay", total=total) if progress is not None else None
        pool = _pool(runtime, request, judge.tally, total, rematch)
        if pool is not None:
            stack.callback(pool.close)
            judge.pool = pool
        for reader, ranges in opened:
            judge.ranges.update(((s.topic, s.partition), (s.first, s.stop)) for s in ranges)
            if judge.checkpoints is not None:
                for scope in ranges:
                    judge.checkpoints.expect(scope.topic, scope.partition, scope.first, scope.stop)
            judge.read_orders_before(reader, ranges)
            wanted = {scope.partition: (scope.first, scope.stop) for scope in ranges if scope.size}
            for message in reader.scan(wanted):
                if progress is not None and task is not None:
                    progress.advance(task)
                judge.judge(message)
            if pool is not None:
                pool.drain()
            judge.tally.gaps.extend(
                Gap(reader.topic, partition, position, stop - 1, STALLED)
                for partition, (position, stop) in sorted(reader.stalled.items())
            )
            judge.tally.gaps.extend(
                Gap(reader.topic, partition, first, stop - 1, RETENTION)
                for partition, (first, stop) in sorted(reader.deleted.items())
            )
            stalled.update(((reader.topic, p), at) for p, (at, _) in reader.stalled.items())
            judge.read_chain_starts(reader, ranges)
    if judge.checkpoints is not None:
        judge.checkpoints.finish(stalled)
        judge.tally.add_checkpoints(judge.checkpoints)
    bounded = request.start is not None or request.end is not None
    matched = rematch.result(judge.ranges, bounded=bounded) if rematch is not None else None
    return judge.tally, judge.chains(), matched


def _pool(
    runtime: Runtime, request: ReplayRequest, tally: ReplayTally, total: int,
    rematch: Rematch | None,
) -> VerdictPool | None:  # fmt: skip
    """A pool of ``--jobs`` processes when it pays (a verified range of at least
    ``_POOL_MINIMUM`` records: each process takes about a second to start) and no rematch
    runs (it needs every verified record whole, in this process)."""
    if request.jobs <= 1 or not request.verify or rematch is not None or total < _POOL_MINIMUM:
        return None
    return VerdictPool(runtime, tally, request.jobs)


def _role(runtime: Runtime) -> str:
    return str(get_agency(runtime.agency_code).role)


def _audit_outcome(
    runtime: Runtime, request: ReplayRequest, tally: ReplayTally, matched: RematchResult | None
) -> None:
    """The replay itself, as one audit record after the per-topic reads."""
    reader = get_agency(request.reader)
    detail = (f"{tally.records} record(s), {len(tally.breaks)} break(s), "
              f"{len(tally.chain_breaks)} chain break(s), {len(tally.gaps)} gap(s)")  # fmt: skip
    if matched is not None:
        detail += f", {len(matched.breaks)} rematch break(s)"
    clean = tally.clean and (matched is None or not matched.breaks)
    runtime.audit.record(
        user=getpass.getuser(), role=str(reader.role), agency_code=reader.code,
        operation=_OPERATION, target=",".join(map(runtime.catalog.topic_name, request.topic_ids)),
        result="SUCCESS" if clean else "FAILURE", detail=detail,
    )  # fmt: skip


def _check_report_paths(out: Path) -> None:
    """``--out`` and the seal beside it, before anything is read or written: the seal's
    name must hold nothing a seal cannot replace (a folder, a device). Links at either
    name are replaced when written, never followed."""
    check_out_path(out)
    check_seal_path(seal_path_for(out), f"--out {out}: its seal", ReplayInputError)


def _write_report(runtime: Runtime, out: Path, document: Mapping[str, object]) -> Path:
    """The report at ``out`` and its seal beside it, each written to a new file renamed
    over the name (a symbolic link there is replaced, not written through); an old seal
    of an old report at that name is replaced with the report."""
    keystore = runtime.keystore
    assert keystore is not None  # Runtime.connect keeps its key store
    key_id = keystore.current_key_id(runtime.agency_code)  # no key: no report, unsealed
    check_seal_path(seal_path_for(out), f"--out {out}: its seal", ReplayInputError)
    data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    write_replacing(out, data, "--out", error=ReplayInputError)
    return seal_document(out, keystore.private_key(key_id), keystore.chain_of(key_id),
                         runtime.agency_code, dt.datetime.now(dt.UTC), replace=True)  # fmt: skip


def _count_row(count: PartitionCount) -> tuple[str, ...]:
    verified = str(count.verified) if count.judged else "-"
    return (count.topic, str(count.partition), f"{count.first}..{count.stop - 1}",
            str(count.records), verified, str(count.breaks))  # fmt: skip


def _count_document(count: PartitionCount) -> Mapping[str, object]:
    return count.document()


SUMMARY_VIEW = View(
    title="Replay",
    columns=("topic", "partition", "offsets", "records", "verified", "breaks"),
    row=_count_row,
    document=_count_document,
)
BREAKS_VIEW = View(
    title="Breaks",
    columns=("topic", "partition", "offset", "reason", "detail"),
    row=lambda b: (b.topic, str(b.partition), str(b.offset), b.reason, b.detail),
    document=Break.document,
)


def _show(
    tally: ReplayTally,
    document: Mapping[str, Any],
    output: OutputFormat,
    matched: RematchResult | None = None,
) -> None:
    if output is OutputFormat.json:
        print(json.dumps(document, ensure_ascii=False), flush=True)
        return
    gapped = {(gap.topic, gap.partition) for gap in tally.gaps}
    counts = sorted(
        (c for c in tally.counts.values() if c.records or (c.topic, c.partition) in gapped),
        key=lambda c: (c.topic, c.partition),
    )
    empty = len(tally.counts) - len(counts)
    SUMMARY_VIEW.table(counts, f"{tally.records} record(s), {len(tally.breaks)} break(s), "
                       f"{len(tally.gaps)} gap(s); {empty} partition(s) with no record "
                       "in range not shown")  # fmt: skip
    if not tally.records and not tally.gaps:
        typer.secho("note: the range holds no record on any partition: nothing was checked "
                    "(a clean result over nothing)", fg="yellow", err=True)  # fmt: skip
    if tally.breaks:
        BREAKS_VIEW.table(sorted(tally.breaks, key=lambda b: (b.topic, b.partition, b.offset)),
                          "each break: topic, partition, offset, reason code")  # fmt: skip
    for gap in tally.gaps:
        typer.secho(f"gap: {printable(gap.describe())}", fg="yellow")
    for text in tally.chain_breaks:
        typer.secho(f"audit chain break: {printable(text)}", fg="red")
    if tally.checkpoints is not None:
        found = tally.checkpoints
        typer.echo(f"log checkpoints: {found['checkpoints']} read, {found['matched']} matched "
                   f"their records, {found['failed']} failed, {found['outside_range']} "
                   "outside the range")  # fmt: skip
    if matched is not None:
        show_rematch(matched, document["rematch"])


def _request(
    catalog: Catalog, reader: str, topics: Sequence[str] | None,
    *, start: str | None, end: str | None, verify: bool, rematch: bool = False,
    alert_readers: Sequence[str] = (), blocks_reader: str | None = None, jobs: int = 1,
) -> ReplayRequest:  # fmt: skip
    first = parse_bound(start, "--from") if start is not None else None
    last = parse_bound(end, "--to") if end is not None else None
    check_bounds(first, last)
    check_rematch_readers(rematch, alert_readers, blocks_reader)
    role = str(get_agency(reader).role)
    ids = tuple(replay_topics(catalog, role, topics))
    if rematch:
        ids = rematch_topic_ids(ids)
    return ReplayRequest(reader, ids, first, last, verify or rematch, rematch,
                         tuple(alert_readers), blocks_reader, jobs)  # fmt: skip


def _rematch(runtime: Runtime, request: ReplayRequest) -> Rematch | None:
    """The rematch, keyed as the matcher keys (the bus's match-key secret)."""
    if not request.rematch:
        return None
    secret = runtime.settings.match_key_secret.get_secret_value().encode()
    topics = rematch_topics(
        runtime.catalog, request.alert_readers, request.blocks_reader is not None
    )
    settings = runtime.settings
    return Rematch(MatchKeyer(secret), topics, late_window_s=settings.late_window_s,
                   lookback_s=settings.lookback_s)  # fmt: skip


def replay(
    *,
    reader: OperatorReader = _DEFAULT_READER,
    topics: Annotated[
        list[str] | None,
        typer.Option(
            "--topics",
            help="A catalog topic id (repeat the option for more); "
            "default: every topic the reader may read.",
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="First record: an ISO 8601 time with zone, or an offset "
            "(every partition). Default: the topic's start.",
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Last record: before this ISO 8601 time, or up to and "
            "including this offset. Default: the end now.",
        ),
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="Check each record as the bus judged it on arrival.")
    ] = False,
    rematch: Annotated[
        bool,
        typer.Option(
            "--rematch",
            help="Run the matching rules again over the orders, releases, expiry notices "
            "and sightings (read too), and compare with the hits delivered to the courts "
            "of --alerts-as. Implies --verify.",
        ),
    ] = False,
    alert_readers: Annotated[
        list[str] | None,
        typer.Option(
            "--alerts-as",
            help="A court whose alert topic the rematch reads, as that court (its identity "
            "must be held here); repeat for more. Other courts' hits are unchecked.",
        ),
    ] = None,
    blocks_reader: Annotated[
        str | None,
        typer.Option(
            "--blocks-as",
            help="A traffic-management unit as which the rematch reads the transfer blocks "
            "(default: blocks not compared).",
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            min=1,
            max=256,
            help="Processes checking the records with --verify (default: one per core); "
            f"used from {_POOL_MINIMUM:,} records in range, and never with --rematch.",
        ),
    ] = _CORES,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the JSON report here, sealed beside it.")
    ] = None,
    output: Format = OutputFormat.table,
) -> None:
    """Replay a range of topics for audit: records per topic and partition, and with
    --verify every break named by topic, partition, offset and reason code (seal against
    the trust history at the record's time and at its arrival, ce_time within its
    acceptance window on arrival, envelope, schema, writer role, duplicate event id, audit
    hash chains). Offsets that retention deleted inside the range are reported as gaps.
    With --rematch, every delivered hit is justified by the rules and no expected hit is
    missing (an UNJUSTIFIED_HIT or MISSING_HIT is a break). Exit 0 when clean, 2 on any
    break or gap, 1 on bad input (nothing written). The replay is audited."""
    started = dt.datetime.now(dt.UTC)
    try:
        request = _request(
            bus_catalog(get_settings()), reader, topics, start=start, end=end, verify=verify,
            rematch=rematch, alert_readers=alert_readers or (), blocks_reader=blocks_reader,
            jobs=jobs,
        )  # fmt: skip
        if out is not None:
            _check_report_paths(out)
        with (
            closing(Runtime.connect(reader)) as runtime,
            foreign_readers(
                f"{_OPERATION}.read", request.alert_readers, request.blocks_reader
            ) as foreign,
        ):
            terminal = _errors.is_terminal and _console.is_terminal
            terminal = terminal and output is OutputFormat.table
            progress = _progress(terminal)
            with progress if progress is not None else nullcontext():
                tally, chains, matched = run_replay(
                    runtime, request, progress, foreign=foreign, rematch=_rematch(runtime, request)
                )
            _audit_outcome(runtime, request, tally, matched)
            document = report_document(
                reader=reader, topic_ids=request.topic_ids,
                topics=[runtime.catalog.topic_name(t) for t in request.topic_ids]
                + [reader.topic for reader in foreign],
                start=request.start, end=request.end, verify=request.verify, tally=tally,
                chains=chains, started=started, finished=dt.datetime.now(dt.UTC),
                rematch=None if matched is None else matched.document(request.alert_readers),
            )  # fmt: skip
            seal = _write_report(runtime, out, document) if out is not None else None
    except BusError as exc:
        raise fail(exc) from exc
    _show(tally, document, output, matched)
    if seal is not None and output is OutputFormat.table:
        typer.echo(f"report: {out} (sealed: {seal})")
    if not document["clean"]:
        raise typer.Exit(2)
