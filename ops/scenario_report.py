"""The demo's verdict and report: what arrived against what the scenario expects, as rich
tables (orders, acknowledgements and hits per court, the special cases, dead letters, the
queries, timings), and the checks that decide the demo's exit code."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from consumers.watchlist import OrderKind
from ops.demo_play import Observed
from ops.demo_queries import QueryRun, summarise
from ops.scenario import Expected, ExpectedHit, Scenario
from schemas.agencies import get_agency, load_agencies
from schemas.event_types import EXPIRY_NOTICE, RELEASE
from schemas.queries import query_kind

__all__ = ["Check", "Verdict", "judge", "queries_table", "render"]

_SHOWN = 10
_KIND_COLUMNS = (
    (OrderKind.EXIT_RESTRICTION, "exit"),
    (OrderKind.VEHICLE_SEARCH, "vehicle"),
    (OrderKind.LOCATE_DEBTOR, "locate"),
)

_KIND_LABELS = dict(_KIND_COLUMNS)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    checks: tuple[Check, ...]
    missing_hits: tuple[ExpectedHit, ...]
    unexpected_hits: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def _ids(ids: Sequence[str] | set[str] | frozenset[str]) -> str:
    shown = sorted(ids)[:3]
    return ", ".join(shown) + (" ..." if len(ids) > len(shown) else "")


def judge(
    scenario: Scenario, expected: Expected, observed: Observed, queries: QueryRun | None = None
) -> Verdict:
    """Every check of the demo; the first one (exact hit set) is the one the brief names.
    With ``queries``, the query phase's checks too."""
    special = scenario.special
    arrived = set(observed.hits)
    missing = tuple(sorted((h for h in expected.hits if h.hit_id not in arrived),
                           key=lambda h: (h.court, h.hit_id)))  # fmt: skip
    unexpected = tuple(sorted(arrived - expected.hit_ids))
    by_id = {hit.hit_id: hit for hit in expected.hits}
    misrouted = [i for i, h in observed.hits.items() if i in by_id and h.court != by_id[i].court]
    hit_orders = {hit.order_id for hit in observed.hits.values()}
    hotel = special.two_court_sightings[0]
    two_courts = {h.court for h in observed.hits.values() if h.sighting_id == hotel}
    forged_ok = all(observed.dead_letters.get(s) == r for s, r in expected.dead_letters.items())
    forged_hits = {h.sighting_id for h in observed.hits.values()} & set(special.forged_sightings)
    blocked = f"{len(observed.blocked)} blocked, {len(expected.blocked)} expected"
    reasons = ", ".join(observed.dead_letters.get(s, "missing") for s in expected.dead_letters)
    expired = special.expired_order
    expired_ok = (
        {(h.sighting_id, h.late) for h in observed.hits.values() if h.order_id == expired}
        == {(h.sighting_id, h.late) for h in expected.hits if h.order_id == expired}
        and expected.expiry_notices <= observed.expiry_court
        and expected.expiry_notices <= observed.expiry_police
    )
    routed_ok = not misrouted and not observed.hits_elsewhere and not observed.refused_alerts
    undelivered, misdelivered = _delivery_problems(scenario, expected, observed)
    forwarded = sum(observed.acknowledgements.values())
    checks = (
        Check("hits are exactly the expected ones", not missing and not unexpected,
              f"{len(arrived)} arrived, {len(expected.hits)} expected, {len(missing)} missing, "
              f"{len(unexpected)} unexpected"),
        Check("each hit on its issuing court's own stream", routed_ok,
              f"{len(misrouted) + len(observed.hits_elsewhere)} misrouted, "
              f"{observed.refused_alerts} refused by the subscriber, "
              f"{observed.duplicates} duplicate(s) skipped"),
        Check("one check-in, two courts' orders: one hit per court", len(two_courts) == 2,
              f"courts hit: {', '.join(sorted(two_courts)) or 'none'}"),
        Check("release before the sighting: no hit", hit_orders.isdisjoint(special.released_orders),
              f"released: {_ids(special.released_orders)}"),
        Check("orders, releases, expiry notices: to their court's province's police only",
              not undelivered and not misdelivered,
              f"{len(observed.delivered)} delivered, {len(undelivered)} missing, "
              f"{len(misdelivered)} to another province"),
        Check("expired order: a late sighting only, flagged late; expiry notices", expired_ok,
              f"court notices {len(observed.expiry_court)}, "
              f"police notices {len(observed.expiry_police)}"),
        Check("transfer/mortgage on a seized vehicle: blocked",
              expected.blocked == observed.blocked and not observed.blocked_unverified,
              f"{blocked}, {observed.blocked_unverified} unverified"),
        Check("unacknowledged order: overdue alert", expected.overdue <= observed.overdue,
              f"overdue {_ids(observed.overdue) or 'none'}; expected {_ids(expected.overdue)}"),
        Check("acknowledgements forwarded to each court",
              observed.acknowledgements == expected.acknowledgements,
              f"{forwarded} forwarded, {sum(expected.acknowledgements.values())} sent"),
        Check("forged sightings: no hit, dead-lettered", forged_ok and not forged_hits, reasons),
    )  # fmt: skip
    return Verdict(checks + _query_checks(queries), missing, unexpected)


def _query_checks(run: QueryRun | None) -> tuple[Check, ...]:
    """The query phase against its plan: each subject found exactly where its records were
    put, nowhere else, and every expected responder answered."""
    if run is None:
        return ()
    asked = run.asked
    complete = [a for a in asked if a.complete]
    answers = sum(len(a.statuses) for a in asked)
    on_record = [a for a in asked if a.found_by]
    found_right = [a for a in on_record if a.complete and a.units("FOUND") == a.found_by]
    unknown = [a for a in asked if not a.found_by]
    not_found = [a for a in unknown if a.complete and a.units("NOT_FOUND") == set(a.statuses)]
    refused = sum(len(a.units("REFUSED")) for a in asked)
    return (
        Check("queries: every responder answered every query",
              len(asked) == run.planned and len(complete) == len(asked),
              f"{len(complete)} of {run.planned} queries complete, {answers} of "
              f"{sum(len(a.expected) for a in asked)} answers"),
        Check("queries: debtors on record FOUND by the units holding them",
              bool(on_record) and len(found_right) == len(on_record),
              f"{len(found_right)} of {len(on_record)} queries"),
        Check("queries: unknown subjects NOT_FOUND from every responder",
              bool(unknown) and len(not_found) == len(unknown),
              f"{len(not_found)} of {len(unknown)} queries"),
        Check("queries: no answer refused", refused == 0, f"{refused} refused"),
    )  # fmt: skip


def _delivery_problems(
    scenario: Scenario, expected: Expected, observed: Observed
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(event type, order id) of what never reached the police of its court's province,
    and of what reached any other province's delivery topic."""
    agencies = load_agencies()
    province = {o.order_id: agencies.rule_province(o.court) for o in scenario.orders}
    wanted = {(o.schema_name, o.order_id) for o in scenario.orders}
    wanted |= {(r.schema_name, r.order_id) for r in scenario.releases}
    wanted |= {(EXPIRY_NOTICE, order_id) for order_id in expected.expiry_notices}
    undelivered = sorted(item for item in wanted if item not in observed.delivered)
    misdelivered = sorted(
        item for item, where in observed.delivered.items() if where != {province.get(item[1])}
    )
    return undelivered, misdelivered


def render(
    console: Console,
    *,
    scenario: Scenario,
    expected: Expected,
    observed: Observed,
    verdict: Verdict,
    timings: Sequence[tuple[str, float]],
    queries: QueryRun | None = None,
) -> None:
    console.print(_orders_table(scenario))
    console.print(_acks_table(scenario, expected, observed))
    console.print(_hits_table(scenario, expected, observed))
    console.print(_blocked_table(scenario, observed))
    console.print(_expiry_table(scenario, expected, observed))
    console.print(_delivery_table(observed))
    console.print(_dead_letters_table(observed))
    if queries is not None:
        console.print(queries_table(queries))
    console.print(_checks_table(verdict))
    _print_differences(console, verdict)
    console.print(_timings_table(timings))


def _court_name(code: str) -> str:
    return get_agency(code).name


def _orders_table(scenario: Scenario) -> Table:
    table = Table(
        title=f"Orders issued (seed {scenario.seed})",
        caption="exit restriction 限制出境, vehicle search 查找车辆, locate debtor 查找被执行人",
    )
    for column in ("court", "name", *(label for _, label in _KIND_COLUMNS), "released", "total"):
        table.add_column(column, justify="right" if column not in ("court", "name") else "left")
    counts = Counter((o.court, o.kind) for o in scenario.orders)
    released = Counter(r.court for r in scenario.releases)
    for court in sorted(scenario.courts):
        row = [counts[(court, kind)] for kind, _ in _KIND_COLUMNS]
        table.add_row(
            court, _court_name(court), *map(str, row), str(released[court]), str(sum(row))
        )
    table.add_row("all", "", *(str(sum(counts[(c, k)] for c in scenario.courts))
                               for k, _ in _KIND_COLUMNS),
                  str(len(scenario.releases)), str(len(scenario.orders)), style="bold")  # fmt: skip
    return table


def _acks_table(scenario: Scenario, expected: Expected, observed: Observed) -> Table:
    table = Table(title="Acknowledgements reaching each court (arrived / sent)")
    for column in ("court", "deployed", "rejected", "overdue alerts"):
        table.add_column(column, justify="left" if column == "court" else "right")
    for court in sorted(scenario.courts):
        overdue_expected = {o for o in expected.overdue if scenario.order(o).court == court}
        overdue_seen = {o for o in observed.overdue if scenario.court_of(o) == court}
        table.add_row(
            court,
            *(f"{observed.acknowledgements[(court, s)]} / {expected.acknowledgements[(court, s)]}"
              for s in ("DEPLOYED", "REJECTED")),
            f"{len(overdue_seen)} / {len(overdue_expected)}",
        )  # fmt: skip
    return table


def _hits_table(scenario: Scenario, expected: Expected, observed: Observed) -> Table:
    table = Table(title="Hits per court")
    for column in ("court", "expected", "arrived", "missing", "unexpected", "expiry notices"):
        table.add_column(column, justify="left" if column == "court" else "right")
    arrived = Counter(hit.court for hit in observed.hits.values())
    for court in sorted(scenario.courts):
        wanted = expected.hits_of(court)
        got = {i for i, h in observed.hits.items() if h.court == court}
        expiry = sum(1 for o in observed.expiry_court if scenario.court_of(o) == court)
        table.add_row(court, str(len(wanted)), str(arrived[court]), str(len(wanted - got)),
                      str(len(got - expected.hit_ids)), str(expiry))  # fmt: skip
    sightings = len(scenario.sightings)
    table.caption = (
        f"{sightings} sightings, {len({h.sighting_id for h in expected.hits})} of them on a "
        f"subject under an active order; {len(observed.blocked)} transfer(s) blocked"
    )
    return table


def _blocked_table(scenario: Scenario, observed: Observed) -> Table:
    table = Table(title="Blocked transfers (VehicleTransferBlocked to traffic management)")
    for column in ("court", "case", "attempted", "reported by"):
        table.add_column(column)
    orders = {o.order_id: o for o in scenario.orders}
    sightings = {s.sighting_id: s for s in scenario.sightings}
    for order_id, sighting_id in sorted(observed.blocked):
        order, sighting = orders.get(order_id), sightings.get(sighting_id)
        if order is None or sighting is None:
            table.add_row("?", order_id, sighting_id, "")
            continue
        table.add_row(order.court, str(order.record["case_number"]),
                      sighting.operation or "", sighting.unit)  # fmt: skip
    return table


def _expiry_table(scenario: Scenario, expected: Expected, observed: Observed) -> Table:
    table = Table(title="Control periods ended during the run (expiry notices)")
    for column in ("court", "case", "kind", "ended (UTC)", "court", "police"):
        table.add_column(column, no_wrap=True)
    for order_id in sorted(expected.expiry_notices | observed.expiry_court):
        order = next((o for o in scenario.orders if o.order_id == order_id), None)
        if order is None:
            continue
        table.add_row(order.court, str(order.record["case_number"]), _KIND_LABELS[order.kind],
                      f"{order.end:%m-%d %H:%M:%S}",
                      _yes(order_id in observed.expiry_court),
                      _yes(order_id in observed.expiry_police))  # fmt: skip
    return table


def _delivery_table(observed: Observed) -> Table:
    table = Table(
        title="Delivered to the police side (per province: only the units its rule names read)"
    )
    for column in ("province", "orders", "releases", "expiry notices"):
        table.add_column(column, justify="left" if column == "province" else "right")
    counts: Counter[tuple[str, str]] = Counter()
    for (event_type, _), provinces in observed.delivered.items():
        kind = {RELEASE: "release", EXPIRY_NOTICE: "expiry"}.get(event_type, "order")
        counts.update((province, kind) for province in provinces)
    for province in load_agencies().provinces():
        table.add_row(
            province, *(str(counts[(province, k)]) for k in ("order", "release", "expiry"))
        )
    return table


def _yes(flag: bool) -> str:
    return "[green]yes[/]" if flag else "[red]no[/]"


def _dead_letters_table(observed: Observed) -> Table:
    table = Table(title="Dead letters by reason")
    table.add_column("reason")
    table.add_column("count", justify="right")
    for reason, count in sorted(observed.dead_letter_reasons.items()):
        table.add_row(reason, str(count))
    if not observed.dead_letter_reasons:
        table.add_row("(none)", "0")
    return table


def queries_table(run: QueryRun) -> Table:
    """Per kind: queries, how many complete, the answers by status, and answer latency."""
    table = Table(
        title="Queries (courts ask, police responders answer from their reference data)",
        caption=f"{len(run.units)} responders, {run.rows} reference rows; answers counted "
        "per responder; latency from sending to reading an answer",
    )
    for column in ("kind", "queries", "complete", "answers", "found", "not found", "refused",
                   "p50 ms", "p99 ms"):  # fmt: skip
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind in summarise(run.asked):
        table.add_row(
            f"{kind.kind} {query_kind(kind.kind).name}", str(kind.queries),
            f"{kind.complete} of {kind.queries}", f"{kind.answers} of {kind.expected_answers}",
            str(kind.found), str(kind.not_found), str(kind.refused),
            _ms(kind.p50_s), _ms(kind.p99_s),
        )  # fmt: skip
    return table


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def _checks_table(verdict: Verdict) -> Table:
    table = Table(title="Checks")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for check in verdict.checks:
        mark = "[green]PASS[/]" if check.passed else "[bold red]FAIL[/]"
        table.add_row(check.name, mark, check.detail)
    return table


def _print_differences(console: Console, verdict: Verdict) -> None:
    for hit in verdict.missing_hits[:_SHOWN]:
        console.print(
            f"[red]missing hit[/] {hit.hit_id} court {hit.court} order {hit.order_id} "
            f"sighting {hit.sighting_id}",
            highlight=False,
        )
    for hit_id in verdict.unexpected_hits[:_SHOWN]:
        console.print(f"[red]unexpected hit[/] {hit_id}", highlight=False)
    more = len(verdict.missing_hits) + len(verdict.unexpected_hits) - 2 * _SHOWN
    if more > 0:
        console.print(f"... and {more} more")


def _timings_table(timings: Sequence[tuple[str, float]]) -> Table:
    table = Table(title="Timing")
    table.add_column("phase")
    table.add_column("seconds", justify="right")
    for phase, seconds in timings:
        table.add_row(phase, f"{seconds:.1f}")
    table.add_row("total", f"{sum(s for _, s in timings):.1f}", style="bold")
    return table
