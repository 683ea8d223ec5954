"""The demo scenario: reproducible from its seed, every value valid at the edge, and an
expected outcome that holds each required case."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from functools import cache

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consumers.watchlist import (
    OrderKind,
    WatchEntry,
    active_order_from_record,
    derive_id,
    matching_orders,
    to_micros,
)
from ops.scenario import (
    DEAD_LETTER_REASONS,
    Expected,
    Forgery,
    Scenario,
    expected_outcome,
)
from ops.scenario_gen import MIN_ORDERS, MIN_SIGHTINGS, generate_scenario
from producers.publisher import OutgoingEvent, Publisher
from producers.routes import key_for, route_for
from schemas.agencies import load_agencies
from schemas.edge import normalise_event
from schemas.identifiers import (
    check_case_number_court,
    normalise_phone,
    parse_plate_number,
)
from sign.events import EventSigner

BASE = dt.datetime(2026, 6, 1, 2, 0, 0, tzinfo=dt.UTC)


@cache
def _scenario(seed: int, orders: int = 300, sightings: int = 3000) -> Scenario:
    return generate_scenario(seed, orders=orders, sightings=sightings, base_time=BASE)


@cache
def _expected(seed: int, orders: int = 300, sightings: int = 3000) -> Expected:
    return expected_outcome(_scenario(seed, orders, sightings))


SIZES = [(300, 3000), (30, 200), (MIN_ORDERS, MIN_SIGHTINGS)]


def test_same_seed_same_scenario_other_seed_other_scenario() -> None:
    first = generate_scenario(11, orders=50, sightings=300, base_time=BASE)
    again = generate_scenario(11, orders=50, sightings=300, base_time=BASE)
    other = generate_scenario(12, orders=50, sightings=300, base_time=BASE)
    assert first == again
    assert expected_outcome(first) == expected_outcome(again)
    assert {o.order_id for o in first.orders}.isdisjoint({o.order_id for o in other.orders})


def test_sizes_and_limits() -> None:
    scenario = _scenario(1)
    assert (len(scenario.orders), len(scenario.sightings)) == (300, 3000)
    assert len(scenario.courts) >= 6
    provinces = {o.record["province_code"] for o in scenario.orders}
    assert provinces == {"11", "31", "44"}
    assert set(Counter(o.kind for o in scenario.orders)) == set(OrderKind)
    kinds = Counter(s.operation for s in scenario.sightings if s.operation)
    assert {"ANNUAL_INSPECTION", "PATROL", "CHECKPOINT", "TRANSFER_REGISTRATION"} <= set(kinds)
    with pytest.raises(ValueError, match="at least"):
        generate_scenario(1, orders=MIN_ORDERS - 1, sightings=100, base_time=BASE)


def test_most_sightings_miss() -> None:
    scenario, expected = _scenario(1), _expected(1)
    hit_sightings = {hit.sighting_id for hit in expected.hits}
    assert 50 < len(hit_sightings) < len(scenario.sightings) // 4


@cache
def _publisher(agency: str) -> Publisher:
    return Publisher(EventSigner(Ed25519PrivateKey.generate(), agency))


@pytest.mark.parametrize(("orders", "sightings"), SIZES)
def test_every_event_passes_the_edge(orders: int, sightings: int) -> None:
    """Normalising changes nothing, and the publisher of the sending agency accepts each
    event: schema, identifier rules, routing and the catalog's write rule."""
    scenario = _scenario(3, orders, sightings)
    events = [
        *((o.court, o.schema_name, o.record, None) for o in scenario.orders),
        *((a.unit, a.schema_name, a.record, None) for a in scenario.acknowledgements),
        *((r.court, r.schema_name, r.record, r.subject.ref()) for r in scenario.releases),
        *((s.unit, s.schema_name, s.record, None) for s in scenario.sightings),
    ]
    for agency, schema, record, subject in events:
        assert normalise_event(schema, record) == record
        route = route_for(schema, record)
        event = OutgoingEvent(route.topic_id, schema, record, key_for(route, record, subject))
        _publisher(agency).prepare(event)


def test_identifiers_fit_their_court_and_documents_their_digest() -> None:
    scenario = _scenario(4)
    agencies = load_agencies()
    two_court = set(scenario.special.two_court_orders)
    for order in scenario.orders:
        court = agencies.get(order.court)
        assert court.province is not None
        check_case_number_court(order.record["case_number"], order.court)
        assert normalise_phone(order.record["handler"]["phone"]).startswith("1")
        subject = order.record["subject"]
        if order.kind is OrderKind.VEHICLE_SEARCH:
            assert parse_plate_number(subject["plate_number"]).province == court.province.code
            assert order.record["seizure_ruling_reference"].startswith(order.record["case_number"])
        elif order.order_id not in two_court:
            assert subject["id_number"][:2] == court.province.code
        for document, carried in zip(
            order.documents, order.record["sealed_documents"], strict=True
        ):
            assert carried["sha256"] == hashlib.sha256(document.body).digest()
            assert order.record["case_number"].encode() in document.body
    assert len({o.order_id for o in scenario.orders}) == len(scenario.orders)
    assert len({s.sighting_id for s in scenario.sightings}) == len(scenario.sightings)


def test_orders_of_two_courts_on_one_subject() -> None:
    scenario, expected = _scenario(5), _expected(5)
    orders = [scenario.order(i) for i in scenario.special.two_court_orders]
    assert len({o.subject for o in orders}) == 1
    assert len({o.court for o in orders}) == 2
    assert len({o.record["province_code"] for o in orders}) == 2
    hotel, border = (scenario.sighting(i) for i in scenario.special.two_court_sightings)
    hotel_hits = [h for h in expected.hits if h.sighting_id == hotel.sighting_id]
    assert len(hotel_hits) == 2 and len({h.court for h in hotel_hits}) == 2
    border_hits = [h for h in expected.hits if h.sighting_id == border.sighting_id]
    assert {h.order_id for h in border_hits} == set(scenario.special.two_court_orders)


@pytest.mark.parametrize(("orders", "sightings"), SIZES)
def test_expected_outcome_holds_every_special_case(orders: int, sightings: int) -> None:
    scenario = _scenario(6, orders, sightings)
    expected = _expected(6, orders, sightings)
    special = scenario.special
    hit_orders = {h.order_id for h in expected.hits}
    hit_sightings = {h.sighting_id for h in expected.hits}
    # Released, expired, not yet active, before the start, forged: no hit.
    assert hit_orders.isdisjoint(special.released_orders)
    assert hit_sightings.isdisjoint(special.released_sightings)
    assert special.expired_order not in hit_orders
    assert hit_sightings.isdisjoint(special.expired_sightings)
    assert special.not_yet_active_order not in hit_orders
    assert special.before_start_sighting not in hit_sightings
    assert hit_sightings.isdisjoint(special.forged_sightings)
    # ... yet the released and expired subjects are seen while their orders would match.
    expiring = scenario.order(special.expired_order)
    during = scenario.sighting(special.expired_sightings[0])
    assert expiring.start <= during.observed_at < expiring.end
    # Transfer and mortgage attempts on seized vehicles: a hit and a block each.
    for sighting_id in special.blocked_sightings:
        assert sighting_id in hit_sightings
        assert any(pair[1] == sighting_id for pair in expected.blocked)
    assert {scenario.sighting(i).operation for i in special.blocked_sightings} == {
        "TRANSFER_REGISTRATION",
        "MORTGAGE_REGISTRATION",
    }
    # The silent order still hits, and is the one overdue acknowledgement.
    assert special.unacknowledged_order in hit_orders
    assert expected.overdue == {special.unacknowledged_order}
    assert expected.expiry_notices == {special.expired_order}
    forged = [scenario.sighting(i) for i in special.forged_sightings]
    assert {s.forgery for s in forged} == set(Forgery)
    assert expected.dead_letters == {
        s.sighting_id: DEAD_LETTER_REASONS[s.forgery] for s in forged if s.forgery
    }
    tampered = next(s for s in forged if s.forgery is Forgery.TAMPERED_VALUE)
    assert tampered.tampered is not None and tampered.tampered != tampered.record
    statuses = Counter(
        status for (_, status), n in expected.acknowledgements.items() for _ in range(n)
    )
    assert statuses["REJECTED"] >= 1 and statuses["DEPLOYED"] > statuses["REJECTED"]
    rejected = [a for a in scenario.acknowledgements if a.status == "REJECTED"]
    assert all(a.record["reason"] for a in rejected)
    assert {a.order_id for a in rejected} <= set(special.rejected_orders)


def test_hit_ids_are_derived_from_order_and_sighting() -> None:
    for hit in _expected(7).hits:
        assert hit.hit_id == derive_id(hit.order_id, hit.sighting_id)


def test_the_watchlist_rules_agree_with_the_expected_hits() -> None:
    """The matcher's rules (consumers.watchlist), applied to the same facts, find exactly
    the hits the scenario expects: two independent readings of MISSION §2 agree."""
    scenario, expected = _scenario(8), _expected(8)
    released = {r.order_id for r in scenario.releases}
    entries: dict[str, WatchEntry] = {}
    for order in scenario.orders:
        if order.order_id in released:
            continue
        entry = entries.get(order.subject.identity, WatchEntry.empty())
        summary = active_order_from_record(order.schema_name, order.record)
        entries[order.subject.identity] = entry.with_order(summary)
    now = to_micros(scenario.sightings_not_before)
    found = set()
    for sighting in scenario.sightings:
        entry = entries.get(sighting.subject.identity)
        if sighting.forgery is not None or entry is None:
            continue
        observed = to_micros(sighting.observed_at)
        for order in matching_orders(entry, sighting.schema_name, observed, now):
            found.add(derive_id(order.order_id, sighting.sighting_id))
    assert found == expected.hit_ids


def test_with_a_late_window_the_sighting_during_the_expired_period_hits_late() -> None:
    """The expiring order's sighting observed during its period, published after its end,
    is a late hit when the worker keeps a late window; the one observed after the end
    never hits."""
    scenario = _scenario(6, 30, 200)
    special = scenario.special
    during, after = special.expired_sightings
    late = expected_outcome(scenario, dt.timedelta(hours=72))
    expired = {(h.sighting_id, h.late) for h in late.hits if h.order_id == special.expired_order}
    assert expired == {(during, True)}
    assert after not in {h.sighting_id for h in late.hits}
    assert {h for h in late.hits if not h.late} == set(_expected(6, 30, 200).hits)
    assert expected_outcome(scenario, dt.timedelta(seconds=1)).hits == _expected(6, 30, 200).hits
