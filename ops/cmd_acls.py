"""``zf801 acls``: the Kafka ACLs that the catalog's access rules and the agency list call
for (:mod:`topics.acls`), against the cluster's; ``apply`` adds what is missing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ops.errors import operator_message
from schemas.agencies import Agency, AgencyList, AgencyRole, load_agencies
from schemas.errors import BusError
from schemas.settings import MAX_IDLE_S, get_settings
from topics.acl_admin import AclApplyResult, apply_acls, read_acls
from topics.acls import (
    AclBinding,
    AclPlan,
    AclScope,
    Operation,
    Permission,
    access_matrix,
    acl_scope,
    desired_acls,
    plan_acls,
    principal_of,
)
from topics.admin import admin_client
from topics.catalog import Catalog, load_catalog
from topics.spec import COURT_PLACEHOLDER, PROVINCE_PLACEHOLDER, UNIT_PLACEHOLDER, TopicSpec

__all__ = ["acls_app"]

acls_app = typer.Typer(
    help=(
        "Kafka ACLs as code: every agency (principal `User:<code>`) gets exactly the topic, "
        "group and transactional-id grants that topics/topics.yaml and the agency list call "
        "for. `plan` compares with the cluster (`--matrix`: who reads and writes what), "
        "`apply` adds what is missing (`--prune` also removes extras), `list` shows each ACL. "
        "Only ACLs of listed agencies under the catalog's namespace are ever changed."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

_console = Console()
_errors = Console(stderr=True)
_EXIT_FAILURES = 2
_DETAIL_ROWS = 40  # above this, `plan` sums up per principal unless --details

_Bootstrap = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        help="Kafka bootstrap servers (default: ZF801_BOOTSTRAP_SERVERS, KAFKA_BOOTSTRAP_SERVERS).",
    ),
]
_Courts = Annotated[
    list[str] | None,
    typer.Option(
        "--court",
        help="Court code whose per-court topics get ACLs; repeatable "
        "(default: every court in the agency list).",
    ),
]
_CatalogPath = Annotated[
    Path | None, typer.Option("--catalog", help="Catalog file (default: topics/topics.yaml).")
]
_AgenciesPath = Annotated[
    Path | None,
    typer.Option("--agencies", help="Agency list (default: schemas/data/agencies.yaml)."),
]
_NamePrefix = Annotated[
    str | None,
    typer.Option(
        "--name-prefix",
        help="Prefix of every topic, group and processor id (default: ZF801_TOPIC_PREFIX).",
    ),
]


@dataclass(frozen=True)
class _Desired:
    catalog: Catalog
    agencies: AgencyList
    courts: tuple[str, ...]
    acls: frozenset[AclBinding]
    scope: AclScope


def _fail(exc: BusError) -> typer.Exit:
    message = escape(operator_message(exc))
    _errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


@contextmanager
def _admin(bootstrap: str | None) -> Iterator[Any]:
    """The one place this command gets its admin client (the operator's identity, on the
    operator's listener unless ``--bootstrap`` names other servers)."""
    with admin_client(bootstrap, "zf801-acls") as admin:
        yield admin


def _desired(
    courts: list[str] | None,
    catalog_path: Path | None,
    agencies_path: Path | None,
    name_prefix: str | None,
) -> _Desired:
    try:
        catalog = load_catalog(catalog_path)
        prefix = get_settings().topic_prefix if name_prefix is None else name_prefix
        if prefix:
            catalog = catalog.with_name_prefix(prefix)
        agencies = load_agencies(agencies_path)
        codes = tuple(courts) if courts else tuple(c.code for c in agencies.courts())
        acls = desired_acls(catalog, agencies, codes)
    except BusError as exc:
        raise _fail(exc) from exc
    return _Desired(catalog, agencies, codes, acls, acl_scope(catalog, agencies))


def _compare(want: _Desired, bootstrap: str | None) -> AclPlan:
    try:
        with _admin(bootstrap) as admin:
            existing = read_acls(admin)
    except BusError as exc:
        raise _fail(exc) from exc
    return plan_acls(want.acls, existing, want.scope)


@acls_app.command("plan")
def plan_command(
    *,
    matrix: Annotated[
        bool, typer.Option("--matrix", help="Also print who reads (R) and writes (W) each topic.")
    ] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Do not contact the cluster: desired ACLs only.")
    ] = False,
    details: Annotated[
        bool, typer.Option("--details", help="List every ACL to add, not a sum per principal.")
    ] = False,
    bootstrap: _Bootstrap = None,
    court: _Courts = None,
    catalog_path: _CatalogPath = None,
    agencies_path: _AgenciesPath = None,
    name_prefix: _NamePrefix = None,
) -> None:
    """Show what `apply` would add, what is extra, and grants that are not ours to change.

    Exit code: 0, or 1 on an error (no cluster, no authorizer). `--offline --matrix`
    needs no cluster: who may read and write each topic, from the catalog alone.
    """
    want = _desired(court, catalog_path, agencies_path, name_prefix)
    if matrix:
        _print_matrix(want)
    if offline:
        principals = len({acl.principal for acl in want.acls})
        _console.print(
            f"{len(want.acls)} ACLs desired for {principals} principals under namespace "
            f"{want.catalog.namespace!r} (not compared with the cluster: --offline).",
            highlight=False,
        )
        return
    _print_plan(want, _compare(want, bootstrap), prune=False, details=details)


@acls_app.command("apply")
def apply_command(
    *,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan; change nothing.")
    ] = False,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune", help="Also delete extras: our agencies' ACLs that are not desired."
        ),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=0.1,
            max=MAX_IDLE_S,
            help="Seconds to wait for the cluster to show changes.",
        ),
    ] = 30.0,
    details: Annotated[bool, typer.Option("--details", help="List every ACL to add.")] = False,
    bootstrap: _Bootstrap = None,
    court: _Courts = None,
    catalog_path: _CatalogPath = None,
    agencies_path: _AgenciesPath = None,
    name_prefix: _NamePrefix = None,
) -> None:
    """Add the missing ACLs (--prune: also delete extras); wait until the cluster shows them.

    Exit code: 0 when the cluster has every desired ACL, 1 on an error (no cluster, no
    authorizer), 2 when the cluster refused a change or did not show it in time.
    """
    want = _desired(court, catalog_path, agencies_path, name_prefix)
    plan = _compare(want, bootstrap)
    _print_plan(want, plan, prune=prune, details=details)
    if dry_run:
        _console.print("[bold]Dry run:[/] nothing was changed.")
        return
    if not plan.has_changes(prune):
        _console.print(f"Nothing to change: the cluster has all {len(want.acls)} desired ACLs.")
        return
    try:
        with _admin(bootstrap) as admin:
            result = apply_acls(admin, plan, prune, timeout_s=timeout)
    except BusError as exc:
        raise _fail(exc) from exc
    _print_result(result)
    if result.failures:
        raise typer.Exit(code=_EXIT_FAILURES)


@acls_app.command("list")
def list_command(
    bootstrap: _Bootstrap = None,
    court: _Courts = None,
    catalog_path: _CatalogPath = None,
    agencies_path: _AgenciesPath = None,
    name_prefix: _NamePrefix = None,
) -> None:
    """Every desired ACL and every ACL that bears on the bus, with its state in the cluster.

    States: present, missing, extra (an agency's ACL under the namespace that is not
    desired) or unmanaged (a grant this command never changes: review it by hand).
    """
    want = _desired(court, catalog_path, agencies_path, name_prefix)
    plan = _compare(want, bootstrap)
    table = Table(title=f"ACLs under {want.catalog.namespace!r}: desired vs cluster")
    for column in ("state", "principal", "resource", "operations"):
        table.add_column(column, overflow="fold")
    states = (
        ("[green]present[/]", plan.unchanged),
        ("[red]missing[/]", plan.add),
        ("[yellow]extra[/]", plan.extra),
        ("[magenta]unmanaged[/]", plan.unmanaged),
    )
    for state, acls in states:
        for principal, resource, operations in _grouped(acls):
            table.add_row(state, principal, resource, operations)
    _console.print(table)
    _print_summary(plan)


def _grouped(acls: Iterable[AclBinding]) -> list[tuple[str, str, str]]:
    """(principal, resource, operations): one row per principal and resource."""
    rank = {op: index for index, op in enumerate(Operation)}  # READ, WRITE before DESCRIBE
    operations: dict[tuple[str, str], list[AclBinding]] = defaultdict(list)
    for acl in sorted(acls, key=lambda a: (a.principal, a.resource, rank[a.operation])):
        operations[(acl.principal, acl.resource)].append(acl)
    return [(p, r, ", ".join(map(_operation, acls))) for (p, r), acls in operations.items()]


def _operation(acl: AclBinding) -> str:
    deny = "DENY " if acl.permission is Permission.DENY else ""
    host = "" if acl.host == "*" else f" from {acl.host}"
    return f"{deny}{acl.operation}{host}"


def _print_plan(want: _Desired, plan: AclPlan, *, prune: bool, details: bool) -> None:
    table = Table(title=f"ACL plan (namespace {want.catalog.namespace!r})")
    for column in ("action", "principal", "resource", "operations"):
        table.add_column(column, overflow="fold")
    adds = _grouped(plan.add)
    if details or len(adds) <= _DETAIL_ROWS:
        for row in adds:
            table.add_row("[green]add[/]", *row)
    else:
        _print_per_principal(want, plan)
    extra = "[red]delete[/]" if prune else "[yellow]extra[/]"
    for row in _grouped(plan.extra):
        table.add_row(extra, *row)
    for row in _grouped(plan.unmanaged):
        table.add_row("[magenta]unmanaged[/]", *row)
    if table.row_count:
        _console.print(table)
    _print_summary(plan)
    if plan.extra and not prune:
        _console.print(
            f"[yellow]note:[/] {len(plan.extra)} extra ACL(s) of our agencies are left in "
            "place; `zf801 acls apply --prune` deletes them.",
            highlight=False,
        )
    if plan.unmanaged:
        _console.print(
            "[magenta]note:[/] unmanaged ACLs reach the bus from outside what this command "
            "manages (another principal, a wildcard, a covering prefix, a cluster-wide "
            "grant): review them by hand; they are never changed here.",
            highlight=False,
        )


def _print_per_principal(want: _Desired, plan: AclPlan) -> None:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for index, acls in enumerate((plan.add, plan.extra, plan.unchanged)):
        for acl in acls:
            counts[acl.principal][index] += 1
    roles = {principal_of(a): str(a.role) for a in want.agencies.agencies.values()}
    table = Table(title="ACLs per principal (--details lists each)")
    for column in ("principal", "role", "to add", "extra", "present"):
        table.add_column(column)
    for principal in sorted(counts):
        add, extra, present = counts[principal]
        table.add_row(principal, roles.get(principal, "?"), str(add), str(extra), str(present))
    _console.print(table)


def _print_summary(plan: AclPlan) -> None:
    _console.print(
        f"{len(plan.add)} to add, {len(plan.extra)} extra, {len(plan.unchanged)} present, "
        f"{len(plan.unmanaged)} unmanaged.",
        highlight=False,
    )


def _print_result(result: AclApplyResult) -> None:
    _console.print(
        f"Applied: created {len(result.created)}, deleted {len(result.deleted)} "
        f"(shown by the cluster), {len(result.failures)} failure(s).",
        highlight=False,
    )
    for acl, reason in result.failures:
        _errors.print(f"[bold red]failed:[/] {acl}: {reason}", highlight=False, soft_wrap=True)


def _print_matrix(want: _Desired) -> None:
    """Topics down, agencies across; agencies with the same access share a column, and a
    per-court or per-unit template is one row (``R (own)``: its own topic only)."""
    access = {a: _access_of(want, a) for a in want.agencies.agencies.values()}
    columns: dict[tuple[str, frozenset[tuple[str, str]]], list[str]] = defaultdict(list)
    for agency_role in AgencyRole:
        for agency in want.agencies.with_role(agency_role):
            columns[(str(agency_role), frozenset(access[agency].items()))].append(agency.code)
    labels = [label for spec in want.catalog.topics for label in _labels(want, spec)]
    rows = [label for label in dict.fromkeys(labels) if any(label in a for a in access.values())]
    table = Table(title="Access matrix (R read, W write)")
    table.add_column("topic", overflow="fold")
    for (role, _), codes in columns.items():
        whole = len(codes) == len(want.agencies.with_role(AgencyRole(role)))
        members = f"×{len(codes)}" if whole else "\n".join(codes)
        header = role.replace("-", "-\n")  # fold role names at the hyphen
        table.add_column(f"{header}\n{members}", justify="center")
    for label in rows:
        table.add_row(label, *(dict(marks).get(label, "·") for _, marks in columns))
    _console.print(table)
    _console.print(
        f"On a {COURT_PLACEHOLDER} or {UNIT_PLACEHOLDER} row, R (own) is the agency's own "
        f"court's or unit's topic only; on a {PROVINCE_PLACEHOLDER} row, R (rule) is the topics "
        "of the provinces whose rule names the unit; any other mark applies to every court's, "
        "province's or unit's topic.",
        highlight=False,
    )


def _expanded(want: _Desired, spec: TopicSpec) -> dict[str, str]:
    """Court code, province or unit code -> Kafka name, for a templated entry."""
    if spec.per_court:
        return {c: spec.name_for(c) for c in want.courts}
    if spec.per_unit:
        return {u.code: spec.name_for(unit=u.code) for u in want.agencies.police_units()}
    return {p: spec.name_for(province=p) for p in want.agencies.provinces()}


def _labels(want: _Desired, spec: TopicSpec) -> list[str]:
    if not spec.is_template:
        return [spec.name]
    return [spec.name, *_expanded(want, spec).values()]


def _access_of(want: _Desired, agency: Agency) -> dict[str, str]:
    """Matrix row label -> mark for one agency, templates collapsed when uniform."""
    marks = access_matrix(want.acls).get(principal_of(agency), {})
    result = {t.name: marks[t.name] for t in want.catalog.concrete_topics(()) if t.name in marks}
    for spec in (s for s in want.catalog.topics if s.is_template):
        names = _expanded(want, spec)
        present = {v: marks[name] for v, name in names.items() if name in marks}
        if spec.per_court:
            own, label = {agency.code} if agency.role is AgencyRole.COURT else set(), "own"
        elif spec.per_unit:
            own, label = {agency.code} if agency.is_police else set(), "own"
        else:
            own, label = set(want.agencies.provinces_served_by(agency.code)), "rule"
        if present and set(present) == own and len(set(present.values())) == 1:
            result[spec.name] = f"{next(iter(present.values()))} ({label})"
        elif len(present) == len(names) and len(set(present.values())) == 1:
            result[spec.name] = next(iter(present.values()))
        else:
            result.update((names[v], mark) for v, mark in present.items())
    return result
