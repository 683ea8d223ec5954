"""``zf801 topics``: make the cluster's topics match the catalog, and show catalog vs cluster."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ops.errors import operator_message
from schemas.errors import BusError
from schemas.settings import get_settings
from topics.admin import ApplyResult, admin_client, apply, plan, read_cluster_state
from topics.catalog import Catalog, load_catalog
from topics.courts import court_codes, provinces, unit_codes
from topics.plan import ClusterState, DesiredTopic, ObservedTopic, Plan

__all__ = ["topics_app"]

topics_app = typer.Typer(
    help=(
        "The topic catalog (topics/topics.yaml) against the cluster. `apply` creates missing "
        "topics, adds partitions and repairs configs, and never deletes; `list` compares."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

_console = Console()
_errors = Console(stderr=True)
_EXIT_CONFLICTS = 2
_DAY_MS = 86_400_000

_Bootstrap = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        help=(
            "Kafka bootstrap servers (default: the operator's listener, ZF801_BOOTSTRAP_SERVERS "
            "or KAFKA_BOOTSTRAP_SERVERS; with ZF801_SECURITY=mtls ZF801_BUS_BOOTSTRAP_SERVERS)."
        ),
    ),
]
_Courts = Annotated[
    list[str] | None,
    typer.Option(
        "--court",
        help="Court code to create per-court topics for; repeatable "
        "(default: every court in the court list).",
    ),
]
_Provinces = Annotated[
    list[str] | None,
    typer.Option(
        "--province",
        help="Province (a province_rules key: GB/T 2260 code or national) to create "
        "per-province topics for; repeatable (default: every province of the agency list).",
    ),
]
_Units = Annotated[
    list[str] | None,
    typer.Option(
        "--unit",
        help="Police unit code (12 digits) to create per-unit topics for; repeatable "
        "(default: every police unit of the agency list).",
    ),
]
_CatalogPath = Annotated[
    Path | None, typer.Option("--catalog", help="Catalog file (default: topics/topics.yaml).")
]
_NamePrefix = Annotated[
    str | None,
    typer.Option(
        "--name-prefix",
        help="Prefix every topic name (tests sharing one cluster); default ZF801_TOPIC_PREFIX, "
        "as every other command uses.",
    ),
]


@dataclass(frozen=True)
class _Snapshot:
    catalog: Catalog
    courts: tuple[str, ...]
    cluster: ClusterState
    plan: Plan


def _fail(exc: BusError) -> typer.Exit:
    message = escape(operator_message(exc))
    _errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def _listed(given: list[str], known: tuple[str, ...] | None, option: str) -> tuple[str, ...]:
    """``given`` when the agency list (if there is one) names every code: a topic made for
    a code it does not know is kept for ever and readable by no agency of the list."""
    unknown = [code for code in given if known is not None and code not in known]
    if unknown:
        shown = ", ".join(repr(code[:40]) for code in unknown[:5])
        raise typer.BadParameter(
            f"{shown}: not in the agency list (schemas/data/agencies.yaml)", param_hint=option
        )
    return tuple(given)


def _courts(given: list[str] | None) -> tuple[str, ...]:
    if given:
        return _listed(given, court_codes(), "--court")
    codes = court_codes()
    if codes is None:
        _errors.print(
            "[yellow]warning:[/] no court list (schemas.agencies) yet: per-court topics are "
            "skipped; pass --court CODE to create them.",
            highlight=False,
        )
        return ()
    return codes


def _snapshot(
    bootstrap: str | None,
    courts: list[str] | None,
    path: Path | None,
    prefix: str | None,
    *,
    provinces_given: list[str] | None = None,
    units_given: list[str] | None = None,
) -> _Snapshot:
    try:
        catalog = load_catalog(path)
        prefix = get_settings().topic_prefix if prefix is None else prefix
        if prefix:
            catalog = catalog.with_name_prefix(prefix)
        codes = _courts(courts)
        keys = (  # default: every rules key
            _listed(provinces_given, provinces(), "--province")
            if provinces_given else tuple(provinces() or ())
        )  # fmt: skip
        units = (  # default: every police unit
            _listed(units_given, unit_codes(), "--unit")
            if units_given else tuple(unit_codes() or ())
        )  # fmt: skip
        wanted = {t.name for t in catalog.concrete_topics(codes, keys, units)}
        with admin_client(bootstrap) as admin:
            cluster = read_cluster_state(admin, lambda n: n in wanted or catalog.in_namespace(n))
    except BusError as exc:
        raise _fail(exc) from exc
    return _Snapshot(catalog, codes, cluster, plan(catalog, cluster, codes, keys, units))


@topics_app.command("apply")
def apply_command(
    *,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan; change nothing.")
    ] = False,
    bootstrap: _Bootstrap = None,
    court: _Courts = None,
    province: _Provinces = None,
    unit: _Units = None,
    catalog_path: _CatalogPath = None,
    name_prefix: _NamePrefix = None,
) -> None:
    """Make the cluster match the catalog: create, add partitions, alter configs; never delete.

    Exit code: 0 when the cluster matches, 1 on an error or a refused change, 2 when a
    conflict remains that apply does not repair (more partitions than the catalog says,
    or another replication factor).
    """
    snap = _snapshot(
        bootstrap, court, catalog_path, name_prefix, provinces_given=province, units_given=unit
    )
    _print_plan(snap.plan)
    if dry_run:
        _console.print("[bold]Dry run:[/] nothing was changed.")
    elif snap.plan.has_changes:
        try:
            with admin_client(bootstrap) as admin:
                result = apply(snap.plan, admin)
        except BusError as exc:
            raise _fail(exc) from exc
        _print_result(result)
        if result.failures:
            raise typer.Exit(code=1)
    else:
        _console.print(
            f"Nothing to change: the cluster matches the catalog ({len(snap.plan.desired)} topics)."
        )
    if snap.plan.conflicts:
        raise typer.Exit(code=_EXIT_CONFLICTS)


def _print_plan(p: Plan) -> None:
    table = Table(title=f"Topic plan ({p.broker_count} broker{'s' * (p.broker_count != 1)})")
    for column in ("action", "topic", "details"):
        table.add_column(column, overflow="fold")
    for t in p.creations:
        configs = ", ".join(f"{k}={v}" for k, v in t.configs.items())
        details = f"partitions {t.partitions}, RF {t.replication_factor}, {configs}"
        table.add_row("[green]create[/]", t.name, details)
    for inc in p.partition_increases:
        table.add_row("[cyan]add partitions[/]", inc.topic, f"{inc.current} → {inc.desired}")
    for alt in p.alterations:
        changes = ", ".join(f"{c.key}: {c.current} → {c.desired}" for c in alt.changes)
        table.add_row("[cyan]alter configs[/]", alt.topic, changes)
    for c in p.conflicts:
        details = f"{c.setting}: cluster {c.current}, catalog {c.desired}; {c.reason}"
        table.add_row("[red]conflict[/]", c.topic, details)
    for name in p.extras:
        table.add_row("[yellow]extra[/]", name, "not in the catalog: reported, not deleted")
    if table.row_count:
        _console.print(table)
    _console.print(
        f"{len(p.creations)} to create, {len(p.partition_increases)} to add partitions to, "
        f"{len(p.alterations)} to alter, {len(p.unchanged)} unchanged, "
        f"{len(p.conflicts)} conflict(s), {len(p.extras)} extra.",
        highlight=False,
    )
    _print_cappings(p)
    if p.partition_increases:
        _console.print(
            "[yellow]note:[/] added partitions move keys: new records of an existing key may go "
            "to another partition; co-partitioned topics must be raised together.",
            highlight=False,
        )


def _print_cappings(p: Plan) -> None:
    by_setting: dict[tuple[str, int, int], int] = {}
    for cap in p.cappings:
        key = (cap.setting, cap.catalog, cap.effective)
        by_setting[key] = by_setting.get(key, 0) + 1
    for (setting, catalog, effective), count in sorted(by_setting.items()):
        _console.print(
            f"[yellow]capped:[/] {setting} {catalog} → {effective} on {count} topic(s) "
            f"({p.broker_count} broker{'s' * (p.broker_count != 1)}).",
            highlight=False,
        )


def _print_result(result: ApplyResult) -> None:
    _console.print(
        f"Applied: created {len(result.created)}, added partitions to "
        f"{len(result.partitions_added)}, altered configs of {len(result.configs_altered)}.",
        highlight=False,
    )
    if result.created_elsewhere:
        names = ", ".join(result.created_elsewhere)
        _console.print(f"[yellow]already created by someone else:[/] {names}", highlight=False)
    for name, reason in result.failures:
        _errors.print(f"[bold red]refused:[/] {name}: {reason}", highlight=False)


@topics_app.command("list")
def list_command(
    *,
    bootstrap: _Bootstrap = None,
    court: _Courts = None,
    province: _Provinces = None,
    unit: _Units = None,
    catalog_path: _CatalogPath = None,
    name_prefix: _NamePrefix = None,
) -> None:
    """Catalog vs cluster per topic: exists, partitions, RF, cleanup, retention, drift."""
    snap = _snapshot(
        bootstrap, court, catalog_path, name_prefix, provinces_given=province, units_given=unit
    )
    table = Table(title="Topics: catalog vs cluster (catalog / cluster)")
    for column in ("id", "topic", "exists", "partitions", "RF", "cleanup", "retention", "drift"):
        table.add_column(column, overflow="fold")
    drift = _drift(snap.plan)
    for want in snap.plan.desired:
        table.add_row(*_row(want, snap.cluster.topics.get(want.name), drift))
    for name in snap.plan.extras:
        have = snap.cluster.topics[name]
        table.add_row(
            "-",
            name,
            "[yellow]extra[/]",
            str(have.partitions),
            str(have.replication_factor),
            have.configs.get("cleanup.policy", "?"),
            _retention(have.configs.get("retention.ms")),
            "[yellow]not in the catalog[/]",
        )
    _console.print(table)
    _print_cappings(snap.plan)


def _row(want: DesiredTopic, have: ObservedTopic | None, drift: dict[str, str]) -> list[str]:
    cleanup, retention = want.configs["cleanup.policy"], want.configs["retention.ms"]
    if have is None:
        observed: list[object | None] = [None] * 4
    else:
        observed = [
            have.partitions,
            have.replication_factor,
            have.configs.get("cleanup.policy"),
            _retention(have.configs.get("retention.ms")),
        ]
    wanted = [want.partitions, want.replication_factor, cleanup, _retention(retention)]
    pairs = [_pair(w, o) for w, o in zip(wanted, observed, strict=True)]
    exists = "[green]yes[/]" if have else "[red]no[/]"
    return [want.topic_id, want.name, exists, *pairs, drift.get(want.name, "[green]none[/]")]


def _drift(p: Plan) -> dict[str, str]:
    notes: dict[str, list[str]] = {}
    for t in p.creations:
        notes.setdefault(t.name, []).append("[red]missing[/]")
    for inc in p.partition_increases:
        notes.setdefault(inc.topic, []).append(f"partitions {inc.current}→{inc.desired}")
    for alt in p.alterations:
        notes.setdefault(alt.topic, []).extend(
            f"{c.key} {c.current}→{c.desired}" for c in alt.changes
        )
    for c in p.conflicts:
        notes.setdefault(c.topic, []).append(
            f"[red]conflict[/] {c.setting} {c.current}≠{c.desired}"
        )
    return {name: "; ".join(parts) for name, parts in notes.items()}


def _pair(catalog: object, cluster: object | None) -> str:
    if cluster is None:
        return f"{catalog} / -"
    return f"{catalog}" if str(catalog) == str(cluster) else f"{catalog} / [red]{cluster}[/]"


def _retention(ms: str | None) -> str:
    if ms is None:
        return "-"
    if ms == "-1":
        return "infinite"
    try:
        value = int(ms)
    except ValueError:
        return ms
    return f"{value // _DAY_MS}d" if value % _DAY_MS == 0 else f"{value} ms"
