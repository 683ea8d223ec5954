"""``zf801 status``: is the bus healthy? The brokers answer, the catalog's topics exist,
each processor's consumer group has consumed its topics to the end (lag 0), and a worker
is running (a member of the worker's group: with none, nothing consumes what arrives next,
however caught up the commits look)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from kafka import TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import CoordinatorNotAvailableError, KafkaError
from rich.console import Console
from rich.table import Table

from ops.cmd_inspect_view import Format, OutputFormat, cell, fail, json_line
from ops.deployment import (
    LEDGER_TOPIC_IDS,
    ORDER_TOPIC_IDS,
    ROUTED_TOPIC_IDS,
    SIGHTING_TOPIC_IDS,
    WATCHLIST_TOPIC_IDS,
)
from schemas.errors import BusError
from schemas.settings import MAX_IDLE_S, Settings, get_settings
from topics.admin import plan, read_cluster_state
from topics.catalog import Catalog, bus_catalog
from topics.clients import kafka_admin
from topics.courts import court_codes, provinces, unit_codes
from topics.errors import BrokerUnreachable

__all__ = ["GroupStatus", "ProcessorGroup", "Status", "lag_by_topic", "processor_groups", "status"]

_console = Console()
_progress = Console(stderr=True)
_POLL_S = 1.0
_COORDINATOR_TRIES = 10
_COORDINATOR_PAUSE_S = 0.5


@dataclass(frozen=True, slots=True)
class ProcessorGroup:
    """A consumer group of a bus processor and the catalog topics it consumes."""

    group: str
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GroupStatus:
    group: str
    lag: Mapping[str, int]
    """Records not yet consumed, per topic (a partition never committed counts from its
    start: the processors read from the earliest offset)."""

    @property
    def caught_up(self) -> bool:
        return all(lag == 0 for lag in self.lag.values())


@dataclass(frozen=True, slots=True)
class Status:
    brokers: tuple[str, ...]
    topics_present: int
    topics_missing: tuple[str, ...]
    groups: tuple[GroupStatus, ...]
    workers: int | None = None
    """Workers running: members of the worker's group (None: the brokers did not say)."""

    @property
    def caught_up(self) -> bool:
        return all(group.caught_up for group in self.groups)

    @property
    def healthy(self) -> bool:
        return (
            bool(self.brokers) and not self.topics_missing and self.caught_up
            and self.workers != 0
        )  # fmt: skip

    def document(self) -> dict[str, Any]:
        return {
            "brokers": list(self.brokers),
            "topics": {"present": self.topics_present, "missing": list(self.topics_missing)},
            "groups": [
                {"group": g.group, "lag": dict(g.lag), "caught_up": g.caught_up}
                for g in self.groups
            ],
            "caught_up": self.caught_up,
            "workers": self.workers,
            "healthy": self.healthy,
        }


def processor_groups(catalog: Catalog, found: Iterable[str] = ()) -> tuple[ProcessorGroup, ...]:
    """The worker's groups (its faust application, named for the application of the
    matcher's changelogs, its intake loop and its sightings loop), then any other group
    ``found`` on the cluster under the catalog's namespace or the application's name
    (topics: those it committed)."""
    changelog = catalog.get("watchlist-changelog").changelog_of
    assert changelog is not None  # the catalog's changelog entries name their application
    app = changelog.application
    names = catalog.topic_name
    known = (
        ProcessorGroup(app, tuple(names(t) for t in (*LEDGER_TOPIC_IDS, *WATCHLIST_TOPIC_IDS))),
        ProcessorGroup(
            f"{app}-intake",
            tuple(
                names(t)
                for t in (
                    *ORDER_TOPIC_IDS,
                    "order-acknowledgements",
                    "hit-confirmations",
                    "encounter-confirmations",
                )
            ),
        ),
        ProcessorGroup(
            f"{app}-sightings", tuple(names(t) for t in (*SIGHTING_TOPIC_IDS, *ROUTED_TOPIC_IDS))
        ),
    )
    listed = {group.group for group in known}
    others = sorted(
        group
        for group in set(found) - listed
        if group.startswith((app, f"{catalog.namespace}.", f"{catalog.namespace}-"))
    )
    return (*known, *(ProcessorGroup(group, ()) for group in others))


def lag_by_topic(
    partitions: Iterable[TopicPartition],
    ends: Mapping[TopicPartition, int],
    starts: Mapping[TopicPartition, int],
    committed: Mapping[TopicPartition, int],
) -> dict[str, int]:
    """Per topic, how many records of ``partitions`` lie beyond the group's commits."""
    lag: dict[str, int] = {}
    for tp in partitions:
        position = committed.get(tp, starts.get(tp, 0))
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, ends.get(tp, 0) - position)
    return lag


def read_status(settings: Settings) -> Status:
    """One look at the cluster, as the operator."""
    catalog = bus_catalog(settings)
    try:
        admin = kafka_admin(settings, client_id="zf801-status")
    except KafkaError as exc:
        raise BrokerUnreachable(f"cannot reach the Kafka brokers: {exc!r}") from exc
    try:
        brokers = tuple(
            f"{b.get('host')}:{b.get('port')} (node {b.get('broker_id', b.get('node_id'))})"
            for b in admin.describe_cluster()["brokers"]
            if not b.get("is_fenced")
        )
        courts, keys, units = court_codes() or (), provinces() or (), unit_codes() or ()
        wanted = {t.name for t in catalog.concrete_topics(courts, keys, units)}
        state = read_cluster_state(admin, lambda n: n in wanted)
        topic_plan = plan(catalog, state, courts, keys, units)
        missing = tuple(t.name for t in topic_plan.creations)
        found = [str(g["group_id"]) for g in admin.list_groups()]
        worker_groups = processor_groups(catalog, found)
        groups = tuple(_group_status(admin, group, state.topics.keys()) for group in worker_groups)
        workers = _members(admin, worker_groups[0].group)
    finally:
        admin.close()
    return Status(brokers, len(topic_plan.desired) - len(missing), missing, groups, workers)


def _members(admin: Any, group: str) -> int | None:
    """How many consumers are members of ``group`` now (None: the brokers did not say)."""
    try:
        found = admin.describe_groups([group]).get(group) or {}
    except KafkaError:
        return None
    if found.get("error") and not found.get("members"):
        return 0 if "GroupIdNotFound" in str(found["error"]) else None
    return len(found.get("members") or ())


def _commits(admin: Any, group: str) -> dict[TopicPartition, Any]:
    """The group's committed offsets; none when no coordinator is available at all (no
    group has committed on this cluster yet). A coordinator that moved or is still loading
    (a retriable error, e.g. on a broker just started) is asked again for a few seconds."""
    for attempt in range(1, _COORDINATOR_TRIES + 1):
        try:
            commits: dict[TopicPartition, Any] = admin.list_group_offsets({group: None}).get(
                group, {}
            )
        except CoordinatorNotAvailableError:
            return {}
        except KafkaError as exc:
            if not exc.retriable or attempt == _COORDINATOR_TRIES:
                raise
            time.sleep(_COORDINATOR_PAUSE_S)
        else:
            return commits
    return {}


def _group_status(admin: Any, group: ProcessorGroup, present: Iterable[str]) -> GroupStatus:
    if group.topics and not set(group.topics) & set(present):
        return GroupStatus(group.group, {})  # its topics are missing: reported as such
    commits = _commits(admin, group.group)
    committed = {tp: meta.offset for tp, meta in commits.items() if meta.offset >= 0}
    topics = set(group.topics or {tp.topic for tp in committed}) & set(present)
    described = admin.describe_topics(sorted(topics)) if topics else []
    partitions = [
        TopicPartition(t["name"], p["partition_index"]) for t in described for p in t["partitions"]
    ]
    if not partitions:
        return GroupStatus(group.group, {})
    ends = _offsets(admin, partitions, OffsetSpec.LATEST)
    starts = _offsets(admin, partitions, OffsetSpec.EARLIEST)
    return GroupStatus(group.group, lag_by_topic(partitions, ends, starts, committed))


def _offsets(admin: Any, partitions: list[TopicPartition], spec: Any) -> dict[TopicPartition, int]:
    found = admin.list_partition_offsets(dict.fromkeys(partitions, spec))
    return {tp: int(answer.offset) for tp, answer in found.items()}


def _show(report: Status) -> None:
    _console.print(f"brokers: {', '.join(report.brokers) or 'none'}", highlight=False)
    total = report.topics_present + len(report.topics_missing)
    _console.print(f"topics: {report.topics_present} of {total} catalog topics present",
                   highlight=False)  # fmt: skip
    for name in report.topics_missing:
        _console.print(f"  missing: {name}", highlight=False, markup=False)
    table = Table(title="Processor consumer groups")
    for column in ("group", "topic", "lag", "caught up"):
        table.add_column(column)
    for group in report.groups:
        for topic, lag in sorted(group.lag.items()) or [("-", 0)]:
            table.add_row(cell(group.group), cell(topic), str(lag),
                          "yes" if lag == 0 else "[red]no[/]")  # fmt: skip
    _console.print(table)
    if report.workers == 0:
        _console.print("[red]no worker is running[/]: nothing consumes what arrives next")
    elif report.workers is not None:
        _console.print(f"workers running: {report.workers}", highlight=False)
    verdict = "[green]healthy[/]" if report.healthy else "[red]not healthy[/]"
    _console.print(f"{verdict}: caught up {'yes' if report.caught_up else 'no'}")


def status(
    *,
    wait: Annotated[
        bool, typer.Option("--wait", help="Poll until every group's lag is 0.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=0.1, max=MAX_IDLE_S, help="With --wait: give up after seconds."
        ),
    ] = 120.0,
    output: Format = OutputFormat.table,
) -> None:
    """The bus's health: the brokers that answer, the catalog's topics present or missing,
    and each processor's consumer groups with their lag per topic, and how many workers
    run. Exit code 0 when healthy (every topic present, every group caught up, a worker
    running), 1 when not; with --wait, it waits for the groups to catch up (1 when they
    have not within --timeout), then answers as without."""
    settings = get_settings()
    try:
        report = read_status(settings)
        if wait and not report.caught_up:
            deadline = time.monotonic() + timeout
            with _progress.status("waiting for every consumer group to catch up..."):
                while not report.caught_up and time.monotonic() < deadline:
                    time.sleep(_POLL_S)  # polling the groups' commits, as an operator would
                    report = read_status(settings)
    except (BusError, KafkaError) as exc:
        raise fail(exc) from exc
    if output is OutputFormat.json:
        print(json_line(report.document()), flush=True)
    else:
        _show(report)
    if not report.healthy:
        raise typer.Exit(1)
