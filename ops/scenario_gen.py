"""Generates the demo scenario from a seed: one ``random.Random(seed)`` drives every
choice, so one seed and one base time always give the same scenario.

Besides hundreds of ordinary orders and thousands of sightings (most of them of people and
vehicles under no order), the scenario always holds the cases the bus must get right:

- a person under orders of two courts in two provinces: a hotel check-in hits both
  courts' locate-debtor orders, a border crossing also the exit restriction;
- released orders (a person, a vehicle) whose subjects are seen after the release;
- an order whose control period ends a few seconds into the run (the worker's expiry
  notice), seen during its period but reported after its end, and seen after its end;
- an order whose control period has not started, and a sighting before an order's start;
- a transfer and a mortgage registration attempt on seized vehicles (hit + blocked);
- an order no police unit acknowledges (overdue alert) and a few rejected ones;
- two forged sightings of a wanted person: one altered after signing, one signed by a
  key outside the trust anchors (no hit; dead letters).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from consumers.watchlist import OrderKind
from ops.scenario import (
    Forgery,
    Scenario,
    ScenarioOrder,
    ScenarioSighting,
    SpecialCases,
    Subject,
)
from ops.scenario_orders import OrderMaker
from ops.scenario_sightings import SightingMaker
from ops.scenario_values import (
    PROVINCE_PLACES,
    id_number,
    other_areas,
    person_name,
    pick_weighted,
)
from ops.scenario_values import plate_number as any_plate
from ops.scenario_values import vin as any_vin

__all__ = ["EXPIRY_DELAY", "MIN_ORDERS", "MIN_SIGHTINGS", "generate_scenario"]

EXPIRY_DELAY = dt.timedelta(seconds=8)
"""How far into the run the expiring order's control period ends."""
_PUBLISH_MARGIN = dt.timedelta(seconds=2)
_KIND_WEIGHTS = ((OrderKind.EXIT_RESTRICTION, 30), (OrderKind.VEHICLE_SEARCH, 35),
                 (OrderKind.LOCATE_DEBTOR, 35))  # fmt: skip
_HIT_RATE = 0.1  # share of ordinary sightings that meet a subject under an order
_REJECT_RATE = 0.03
_RECENT_S = 600  # ordinary sightings happened in the ten minutes before the run
MIN_ORDERS = 12
MIN_SIGHTINGS = 15


def generate_scenario(
    seed: int, *, orders: int = 300, sightings: int = 3000, base_time: dt.datetime
) -> Scenario:
    """The scenario of ``seed`` around ``base_time`` (when the courts issue the orders)."""
    if orders < MIN_ORDERS or sightings < MIN_SIGHTINGS:
        raise ValueError(
            f"a scenario needs at least {MIN_ORDERS} orders and {MIN_SIGHTINGS} sightings"
        )
    rng = random.Random(seed)  # noqa: S311 - reproducible on purpose, not a secret
    base = base_time.astimezone(dt.UTC).replace(microsecond=0)
    maker = OrderMaker(rng, base)
    seen = SightingMaker(rng)
    special, special_sightings = _special_cases(maker, seen, base)
    special_ids = {o.order_id for o in maker.orders}
    for _ in range(orders - len(maker.orders)):
        _ordinary_order(rng, maker, special_ids)
    ordinary = [o for o in maker.orders if o.order_id not in special_ids]
    count = sightings - len(special_sightings)
    ordinary_sightings = [
        _ordinary_sighting(rng, maker, seen, ordinary, base) for _ in range(count)
    ]
    all_sightings = special_sightings + ordinary_sightings
    rng.shuffle(all_sightings)
    rejected = {o.order_id for o in ordinary if rng.random() < _REJECT_RATE}
    if not rejected:
        rejected = {(ordinary or maker.orders)[0].order_id}
    acks = maker.acknowledgements(maker.orders, special.unacknowledged_order, rejected)
    releases = tuple(maker.release(maker_order(maker, o)) for o in special.released_orders)
    expired = maker_order(maker, special.expired_order)
    return Scenario(
        seed=seed,
        base_time=base,
        sightings_not_before=expired.end + _PUBLISH_MARGIN,
        orders=tuple(maker.orders),
        acknowledgements=tuple(acks),
        releases=releases,
        sightings=tuple(all_sightings),
        special=SpecialCases(**{**special.__dict__, "rejected_orders": tuple(sorted(rejected))}),
    )


def maker_order(maker: OrderMaker, order_id: str) -> ScenarioOrder:
    return next(o for o in maker.orders if o.order_id == order_id)


def _ordinary_order(rng: random.Random, maker: OrderMaker, special: set[str]) -> ScenarioOrder:
    kind = pick_weighted(rng, _KIND_WEIGHTS)
    court = maker.court()
    if kind is not OrderKind.VEHICLE_SEARCH and rng.random() < 0.1:
        # The same debtor often carries both person orders of one case's court.
        people = [
            o.subject
            for o in maker.orders
            if o.court == court.code and not o.subject.is_vehicle and o.order_id not in special
        ]
        if people:
            return maker.order(kind, court, rng.choice(people))
    return maker.order(kind, court)


def _ordinary_sighting(
    rng: random.Random,
    maker: OrderMaker,
    seen: SightingMaker,
    targets: list[ScenarioOrder],
    base: dt.datetime,
) -> ScenarioSighting:
    observed = base - dt.timedelta(microseconds=rng.randrange(_RECENT_S * 1_000_000))
    if targets and rng.random() < _HIT_RATE:
        order = rng.choice(targets)
        home = order.record["province_code"]
        province = home if rng.random() < 0.75 else rng.choice(list(PROVINCE_PLACES))
        return seen.any_of(order.subject, str(province), observed)
    return seen.any_of(_stranger(rng, maker), rng.choice(list(PROVINCE_PLACES)), observed)


def _stranger(rng: random.Random, maker: OrderMaker) -> Subject:
    """Someone, or some vehicle, under no order of the scenario."""
    while True:
        if rng.random() < 0.7:
            areas = rng.choice([*(p.areas for p in PROVINCE_PLACES.values()), other_areas()])
            number, female = id_number(rng, areas)
            subject = Subject(person_name(rng, female), id_number=number)
        else:
            prefixes = rng.choice([None, *(p.plate_prefixes for p in PROVINCE_PLACES.values())])
            subject = Subject(
                person_name(rng), plate_number=any_plate(rng, prefixes), vin=any_vin(rng)
            )
        if subject.identity not in maker.identities:
            return subject


_Case = tuple[dict[str, Any], list[ScenarioSighting]]
_TRANSFER = "TRANSFER_REGISTRATION"
_MORTGAGE = "MORTGAGE_REGISTRATION"


def _ids(items: list[ScenarioOrder] | list[ScenarioSighting]) -> tuple[str, ...]:
    return tuple(i.order_id if isinstance(i, ScenarioOrder) else i.sighting_id for i in items)


def _two_courts(maker: OrderMaker, seen: SightingMaker, recent: dt.datetime) -> _Case:
    """A person wanted by a Beijing court and a Guangdong court."""
    beijing, guangdong = maker.court("11"), maker.court("44")
    person = maker.person("11")
    orders = [maker.order(OrderKind.LOCATE_DEBTOR, beijing, person),
              maker.order(OrderKind.LOCATE_DEBTOR, guangdong, person),
              maker.order(OrderKind.EXIT_RESTRICTION, guangdong, person)]  # fmt: skip
    sightings = [seen.hotel(person, "11", recent), seen.border(person, "44", recent)]
    return {"two_court_orders": _ids(orders), "two_court_sightings": _ids(sightings)}, sightings


def _released(maker: OrderMaker, seen: SightingMaker, recent: dt.datetime) -> _Case:
    """Released before the sightings are published (both seen before the release time)."""
    orders = [maker.order(OrderKind.LOCATE_DEBTOR, maker.court("31")),
              maker.order(OrderKind.VEHICLE_SEARCH, maker.court("44"))]  # fmt: skip
    sightings = [seen.hotel(orders[0].subject, "31", recent),
                 seen.vehicle(orders[1].subject, "44", recent, _TRANSFER)]  # fmt: skip
    return {"released_orders": _ids(orders), "released_sightings": _ids(sightings)}, sightings


def _out_of_period(maker: OrderMaker, seen: SightingMaker, base: dt.datetime) -> _Case:
    """An order ending a few seconds into the run (seen during its period and after its
    end), one not started yet, and a sighting from before an order's start."""
    recent = base - dt.timedelta(minutes=3)
    expiring = maker.order(OrderKind.EXIT_RESTRICTION, maker.court("11"),
                           start=base - dt.timedelta(days=20), end=base + EXPIRY_DELAY)  # fmt: skip
    after_end = expiring.end + dt.timedelta(seconds=1)
    expired = [seen.border(expiring.subject, "11", base - dt.timedelta(hours=1)),
               seen.border(expiring.subject, "11", after_end)]  # fmt: skip
    future = maker.order(OrderKind.LOCATE_DEBTOR, maker.court("31"),
                         start=base + dt.timedelta(days=3))  # fmt: skip
    later = maker.order(OrderKind.LOCATE_DEBTOR, maker.court("44"),
                        start=base - dt.timedelta(days=1))  # fmt: skip
    early = seen.hotel(later.subject, "44", base - dt.timedelta(days=2))
    sightings = [*expired, seen.hotel(future.subject, "31", recent), early,
                 seen.encounter(later.subject, "44", recent)]  # fmt: skip
    fields = {"expired_order": expiring.order_id, "expired_sightings": _ids(expired),
              "not_yet_active_order": future.order_id,
              "before_start_sighting": early.sighting_id}  # fmt: skip
    return fields, sightings


def _seized(maker: OrderMaker, seen: SightingMaker, recent: dt.datetime) -> _Case:
    """Transfer and mortgage registration attempts on seized vehicles."""
    orders = [maker.order(OrderKind.VEHICLE_SEARCH, maker.court(p)) for p in ("11", "31")]
    sightings = [seen.vehicle(orders[0].subject, "11", recent, _TRANSFER),
                 seen.vehicle(orders[1].subject, "31", recent, _MORTGAGE)]  # fmt: skip
    return {"blocked_sightings": _ids(sightings)}, sightings


def _silent_and_forged(maker: OrderMaker, seen: SightingMaker, recent: dt.datetime) -> _Case:
    """An order no unit acknowledges (it still hits); a wanted person with one genuine
    check-in and two forged sightings."""
    silent = maker.order(OrderKind.LOCATE_DEBTOR, maker.court("44"))
    wanted = maker.order(OrderKind.LOCATE_DEBTOR, maker.court("11"))
    forged = [seen.hotel(wanted.subject, "11", recent, Forgery.TAMPERED_VALUE),
              seen.encounter(wanted.subject, "11", recent, Forgery.UNTRUSTED_KEY)]  # fmt: skip
    sightings = [seen.encounter(silent.subject, "44", recent),
                 seen.hotel(wanted.subject, "11", recent), *forged]  # fmt: skip
    fields = {"unacknowledged_order": silent.order_id, "forged_sightings": _ids(forged)}
    return fields, sightings


def _special_cases(
    maker: OrderMaker, seen: SightingMaker, base: dt.datetime
) -> tuple[SpecialCases, list[ScenarioSighting]]:
    recent = base - dt.timedelta(minutes=3)
    fields: dict[str, Any] = {"rejected_orders": ()}
    sightings: list[ScenarioSighting] = []
    for case_fields, case_sightings in (
        _two_courts(maker, seen, recent),
        _released(maker, seen, recent),
        _out_of_period(maker, seen, base),
        _seized(maker, seen, recent),
        _silent_and_forged(maker, seen, recent),
    ):
        fields.update(case_fields)
        sightings += case_sightings
    return SpecialCases(**fields), sightings
