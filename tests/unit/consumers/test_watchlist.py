"""The watchlist rules: which orders a sighting hits, activity windows, storage form."""

from __future__ import annotations

import datetime as dt

import pytest

from consumers.watchlist import (
    ActiveOrder,
    OrderKind,
    SightingType,
    WatchEntry,
    active_order_from_record,
    derive_id,
    expired_orders,
    kinds_matched_by,
    matching_orders,
    to_micros,
)

DAY = 86_400_000_000
NOW = 1_800_000_000_000_000


def _order(order_id: str, kind: OrderKind, *, start: int = NOW - DAY, end: int = NOW + DAY,
           court: str = "BJ01") -> ActiveOrder:  # fmt: skip
    return ActiveOrder(order_id, kind, court, "（2026）京01执1号", "王法官", "13900139000",
                       "通知承办人", start, end, NOW - DAY)  # fmt: skip


@pytest.mark.parametrize(
    ("sighting", "kinds"),
    [
        (SightingType.HOTEL_CHECK_IN, {OrderKind.LOCATE_DEBTOR}),
        (SightingType.PERSON_ENCOUNTER, {OrderKind.LOCATE_DEBTOR}),
        (SightingType.BORDER_CROSSING, {OrderKind.EXIT_RESTRICTION, OrderKind.LOCATE_DEBTOR}),
        (SightingType.VEHICLE_ENCOUNTER, {OrderKind.VEHICLE_SEARCH}),
        ("cn.zf801.sightings.v1.Unknown", set()),
        ("", set()),
    ],
)
def test_each_sighting_type_hits_only_its_order_kinds(sighting: str, kinds: set[OrderKind]) -> None:
    assert kinds_matched_by(sighting) == kinds


def test_one_subject_with_orders_of_two_courts_gets_a_hit_for_each() -> None:
    entry = (
        WatchEntry.empty()
        .with_order(_order("b", OrderKind.EXIT_RESTRICTION, court="BJ01"))
        .with_order(_order("a", OrderKind.LOCATE_DEBTOR, court="SH01"))
    )
    hits = matching_orders(entry, SightingType.BORDER_CROSSING, NOW, NOW)
    assert [(o.order_id, o.court_code) for o in hits] == [("a", "SH01"), ("b", "BJ01")]
    hotel = matching_orders(entry, SightingType.HOTEL_CHECK_IN, NOW, NOW)
    assert [o.order_id for o in hotel] == ["a"]


@pytest.mark.parametrize(
    ("observed", "now", "active"),
    [
        (NOW, NOW, True),
        (NOW - DAY, NOW, True),  # the start instant is inside the period
        (NOW - DAY - 1, NOW, False),  # observed before the period
        (NOW + DAY, NOW, False),  # observed at the end instant: the period is over
        (NOW + DAY - 1, NOW + DAY, False),  # observed in time, but the order has expired now
        (NOW, NOW + DAY - 1, True),
    ],
)
def test_an_order_matches_only_inside_its_control_period(observed: int, now: int,
                                                         active: bool) -> None:  # fmt: skip
    entry = WatchEntry.empty().with_order(_order("x", OrderKind.LOCATE_DEBTOR))
    assert bool(matching_orders(entry, SightingType.HOTEL_CHECK_IN, observed, now)) is active


def test_a_released_order_no_longer_matches_and_an_empty_entry_is_falsy() -> None:
    entry = WatchEntry.empty().with_order(_order("x", OrderKind.LOCATE_DEBTOR))
    released = entry.without("x")
    assert matching_orders(released, SightingType.HOTEL_CHECK_IN, NOW, NOW) == []
    assert not released
    assert entry.without("not-there") == entry


def test_storage_form_round_trips_and_is_compact_json() -> None:
    entry = (
        WatchEntry.empty()
        .with_order(_order("x", OrderKind.LOCATE_DEBTOR))
        .with_order(_order("y", OrderKind.VEHICLE_SEARCH))
    )
    raw = entry.to_bytes()
    assert WatchEntry.from_bytes(raw) == entry
    assert b" " not in raw.replace("执".encode(), b"")
    assert WatchEntry.from_bytes(None) == WatchEntry.empty()
    assert WatchEntry.from_bytes(b"") == WatchEntry.empty()


def test_expired_orders_are_listed_once_their_period_ends() -> None:
    ended = _order("old", OrderKind.LOCATE_DEBTOR, end=NOW)
    running = _order("new", OrderKind.LOCATE_DEBTOR)
    entries = [WatchEntry.empty().with_order(ended).with_order(running)]
    assert [o.order_id for o in expired_orders(entries, NOW)] == ["old"]
    assert expired_orders(entries, NOW - 1) == []


def test_derived_ids_are_deterministic_and_distinct() -> None:
    assert derive_id("order", "sighting") == derive_id("order", "sighting")
    assert derive_id("order", "sighting") != derive_id("sighting", "order")
    assert derive_id("a/b", "c") == derive_id("a", "b/c")  # parts are joined with "/"


def test_to_micros_takes_naive_datetimes_as_utc() -> None:
    aware = dt.datetime(2026, 11, 27, 5, 0, 0, 123456, tzinfo=dt.UTC)
    assert to_micros(aware) == to_micros(aware.replace(tzinfo=None))
    assert to_micros(dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) == 0


def test_an_order_record_is_summarised_with_its_period_in_micros() -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    record = {
        "order_id": "0b0a1f8e-0000-4000-8000-000000000001", "case_number": "（2026）京01执1号",
        "enforcing_court_code": "BJ01", "handler": {"name": "王法官", "phone": "13900139000"},
        "police_requirements": "扣押车辆", "control_period_start": start,
        "control_period_end": start + dt.timedelta(days=1), "issued_at": start,
        "seizure_ruling_reference": "（2026）京01执1号之一",
    }  # fmt: skip
    order = active_order_from_record("cn.zf801.orders.v1.VehicleSearchOrder", record)
    assert order.kind is OrderKind.VEHICLE_SEARCH
    assert order.end_us - order.start_us == DAY
    assert order.seizure_ruling_reference == "（2026）京01执1号之一"
    with pytest.raises(KeyError):
        active_order_from_record("cn.zf801.sightings.v1.HotelCheckIn", record)
