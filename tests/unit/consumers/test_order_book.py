"""The order lifecycle rules (consumers.order_book): key checks, closure kept, releases
found by order id, closures by the wrong court (sign/REPLAY.md). Tables are in-memory
fakes with the SealedTable surface; the broker-level attacks are e2e tests."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest

from consumers.order_book import Applied, OrderBook
from consumers.tracking import PURGED, Closure
from consumers.watchlist import OrderKind, WatchEntry
from schemas.envelope import to_micros
from schemas.event_types import EXPIRY_NOTICE, RELEASE
from schemas.matchkey import MatchKeyer
from tests.builders import Records

LOCATE = "cn.zf801.orders.v1.LocateDebtorOrder"
VEHICLE = "cn.zf801.orders.v1.VehicleSearchOrder"
KEYER = MatchKeyer(b"test-secret-0123456789")


class _Table:
    def __init__(self) -> None:
        self.rows: dict[bytes, bytes] = {}

    def payload(self, key: bytes) -> bytes | None:
        return self.rows.get(key)

    def put(self, key: bytes, payload: bytes, now_us: int) -> None:
        if payload:
            self.rows[key] = payload
        else:
            self.rows.pop(key, None)


class _Fixture:
    def __init__(self, *, keep_expired: bool = False) -> None:
        self.refused: list[tuple[str, str]] = []
        self.scheduled: list[str] = []
        self.acks_watched: list[tuple[str, int]] = []
        self.purges: list[str] = []
        self.hits_watched: list[str] = []
        deadlines = SimpleNamespace(
            schedule=lambda order_id, end_us, kind=None: self.scheduled.append(order_id),
            watch_ack=lambda order_id, due_us: self.acks_watched.append((order_id, due_us)),
            watch_purge=lambda order_id, end_us: self.purges.append(order_id),
            watch_hit=lambda order_id, hit_id: self.hits_watched.append(hit_id),
        )
        self.watchlist: dict[bytes, WatchEntry] = {}
        self.book = OrderBook(
            _Table(), KEYER, deadlines,  # type: ignore[arg-type]
            lambda verified, reason, detail: self.refused.append((reason, detail)),
            ack_timeout_s=60, topic_kinds={"orders.locate": OrderKind.LOCATE_DEBTOR},
            keep_expired=keep_expired,
        )  # fmt: skip

    def apply(
        self, event_type: str, record: dict[str, Any], *, key: bytes,
        signer: str = "BJ01", role: str = "court", topic: str = "orders.x",
    ) -> Applied | None:  # fmt: skip
        verified = SimpleNamespace(
            envelope=SimpleNamespace(type=event_type), payload=record,
            record=SimpleNamespace(key=key, topic=topic),
            signature=SimpleNamespace(agency_code=signer, role=role),
        )  # fmt: skip
        applied = self.book.apply(verified)  # type: ignore[arg-type]
        for update in self.book.drain_updates():  # as the watchlist agent applies them
            entry = self.watchlist.get(update.key, WatchEntry.empty())
            self.watchlist[update.key] = update.applied_to(entry)
        return applied

    def orders_on(self, key: bytes) -> set[str]:
        return set(self.watchlist.get(key, WatchEntry.empty()).orders)


@pytest.fixture
def fx() -> _Fixture:
    return _Fixture()


@pytest.fixture
def records() -> Records:
    return Records(7)


def test_an_order_enters_under_its_subject_key_and_is_tracked(fx, records):
    person = records.id_number()
    order = records.person_order("BJ01", "（2026）京01执1号", person)
    fx.apply(LOCATE, order, key=KEYER.person(person))
    assert fx.orders_on(KEYER.person(person)) == {order["order_id"]}
    track = fx.book.track(order["order_id"])
    assert track.closed is None
    assert fx.scheduled == [order["order_id"]]
    assert fx.acks_watched == [(order["order_id"], track.deadline_us)]  # indexed, not scanned
    assert track.deadline_us == track.issued_at_us + 60_000_000


def test_an_order_keyed_by_another_subject_is_refused(fx, records):
    order = records.person_order("BJ01", "（2026）京01执2号", records.id_number())
    other = KEYER.person(records.id_number())
    fx.apply(LOCATE, order, key=other)
    assert fx.refused[0][0] == "KEY_MISMATCH"
    assert fx.orders_on(other) == set()


def test_an_order_signed_by_another_court_is_refused(fx, records):
    person = records.id_number()
    order = records.person_order("BJ01", "（2026）京01执3号", person)
    fx.apply(LOCATE, order, key=KEYER.person(person), signer="SH01")
    assert fx.refused[0][0] == "AGENCY_MISMATCH"


def test_a_released_order_never_returns(fx, records):
    person = records.id_number()
    key = KEYER.person(person)
    order = records.person_order("BJ01", "（2026）京01执4号", person)
    fx.apply(LOCATE, order, key=key)
    fx.apply(RELEASE, records.release(order, "LOCATE_DEBTOR"), key=key)
    assert fx.orders_on(key) == set()
    fx.apply(LOCATE, order, key=key)  # re-sent or replayed
    assert fx.refused[-1][0] == "ORDER_CLOSED"
    assert fx.orders_on(key) == set()


def test_a_release_with_a_wrong_key_still_releases_every_key(fx, records):
    plate, vin = records.plate(), records.vin()
    order = records.vehicle_order("BJ01", "（2026）京01执5号", plate, vin)
    keys = KEYER.vehicle(plate, vin)
    fx.apply(VEHICLE, order, key=keys[0])
    assert all(fx.orders_on(k) == {order["order_id"]} for k in keys)
    fx.apply(RELEASE, records.release(order, "VEHICLE_SEARCH"), key=b"\x00" * 32)
    assert all(fx.orders_on(k) == set() for k in keys)
    assert fx.book.track(order["order_id"]).closed is Closure.RELEASED


def test_a_release_before_its_order_keeps_the_order_out(fx, records):
    person = records.id_number()
    key = KEYER.person(person)
    order = records.person_order("BJ01", "（2026）京01执6号", person)
    fx.apply(RELEASE, records.release(order, "LOCATE_DEBTOR"), key=key)
    fx.apply(LOCATE, order, key=key)
    assert fx.refused[-1][0] == "ORDER_CLOSED"
    assert fx.orders_on(key) == set()


def test_a_closure_by_another_court_neither_releases_nor_blocks(fx, records):
    person = records.id_number()
    key = KEYER.person(person)
    order = records.person_order("BJ01", "（2026）京01执7号", person)
    hostile = {**records.release(order, "LOCATE_DEBTOR"), "releasing_court_code": "SH01"}
    fx.apply(RELEASE, hostile, key=key, signer="SH01")  # before the order: names none of BJ01's
    fx.apply(LOCATE, order, key=key)
    assert fx.orders_on(key) == {order["order_id"]}
    fx.apply(RELEASE, hostile, key=key, signer="SH01")  # after: refused
    assert fx.refused[-1][0] == "AGENCY_MISMATCH"
    assert fx.orders_on(key) == {order["order_id"]}


def test_expiry_closes_only_when_signed_by_the_bus(fx, records):
    person = records.id_number()
    key = KEYER.person(person)
    order = records.person_order("BJ01", "（2026）京01执8号", person)
    fx.apply(LOCATE, order, key=key)
    notice = _expiry(order)
    fx.apply(EXPIRY_NOTICE, notice, key=key, signer="BJ01", role="court")
    assert fx.refused[-1][0] == "ROLE_NOT_ALLOWED"
    assert fx.orders_on(key) == {order["order_id"]}
    fx.apply(EXPIRY_NOTICE, notice, key=key, signer="BUS-MATCHER", role="bus")
    assert fx.orders_on(key) == set()
    assert fx.book.track(order["order_id"]).closed is Closure.EXPIRED


def test_an_order_or_release_on_another_kinds_topic_is_refused(fx, records):
    """An exit restriction on the locate-debtor topic would reach another police role."""
    plate, vin = records.plate(), records.vin()
    order = records.vehicle_order("BJ01", "（2026）京01执9号", plate, vin)
    key = KEYER.vehicle(plate, vin)[0]
    fx.apply(VEHICLE, order, key=key, topic="orders.locate")
    assert fx.refused[-1][0] == "MISPLACED"
    assert fx.orders_on(key) == set()
    fx.apply(VEHICLE, order, key=key)
    fx.apply(RELEASE, records.release(order, "VEHICLE_SEARCH"), key=key, topic="orders.locate")
    assert fx.refused[-1][0] == "MISPLACED"
    assert fx.orders_on(key) == {order["order_id"]}


def test_a_release_naming_another_kind_than_its_order_is_refused(fx, records):
    """Released as a vehicle search, an exit restriction would be lifted on the bus while
    the release went to the traffic police, never to the border police holding it."""
    person = records.id_number()
    key = KEYER.person(person)
    order = records.person_order("BJ01", "（2026）京01执11号", person)
    fx.apply(LOCATE, order, key=key)
    assert fx.apply(RELEASE, records.release(order, "VEHICLE_SEARCH"), key=key) is None
    assert fx.refused[-1][0] == "MISPLACED"
    assert "is a LOCATE_DEBTOR order, released as VEHICLE_SEARCH" in fx.refused[-1][1]
    assert fx.orders_on(key) == {order["order_id"]}
    assert fx.book.track(order["order_id"]).closed is None
    release = fx.apply(RELEASE, records.release(order, "LOCATE_DEBTOR"), key=key)
    assert release == Applied(OrderKind.LOCATE_DEBTOR, "BJ01")
    assert fx.orders_on(key) == set()


def test_apply_says_what_it_accepted_so_that_only_that_is_delivered(fx, records):
    """Orders, releases (even repeated) and the bus's expiry notices are accepted, with the
    issuing court; anything refused is not (the worker delivers only what was accepted)."""
    person = records.id_number()
    key = KEYER.person(person)
    order = records.person_order("BJ01", "（2026）京01执10号", person)
    locate = Applied(OrderKind.LOCATE_DEBTOR, "BJ01")
    assert fx.apply(LOCATE, order, key=key) == locate
    assert fx.apply(LOCATE, order, key=KEYER.person(records.id_number())) is None  # KEY_MISMATCH
    release = records.release(order, "LOCATE_DEBTOR")
    assert fx.apply(RELEASE, {**release, "releasing_court_code": "SH01"}, key=key,
                    signer="SH01") is None  # fmt: skip
    assert fx.apply(RELEASE, release, key=key) == locate
    assert fx.apply(RELEASE, release, key=key) == locate  # a redelivery is delivered again
    assert fx.apply(LOCATE, order, key=key) is None  # ORDER_CLOSED
    assert fx.apply(VEHICLE, order, key=key, topic="orders.locate") is None  # MISPLACED
    other = records.person_order("SPC", "（2026）最高法执1号", person)
    notice = {"order_id": other["order_id"], "order_kind": "EXIT_RESTRICTION",
              "case_number": other["case_number"], "court_code": "SPC",
              "expired_at": dt.datetime.now(dt.UTC)}  # fmt: skip
    assert fx.apply(EXPIRY_NOTICE, notice, key=key, signer="BJ01") is None  # not the bus's
    assert fx.apply(EXPIRY_NOTICE, notice, key=key, signer="BUS-MATCHER", role="bus") == (
        Applied(OrderKind.EXIT_RESTRICTION, "SPC")
    )


def _expiry(order: dict[str, Any]) -> dict[str, Any]:
    """The bus's expiry notice of ``order``'s current period."""
    return {"order_id": order["order_id"], "order_kind": "LOCATE_DEBTOR",
            "case_number": order["case_number"], "court_code": order["enforcing_court_code"],
            "expired_at": order["control_period_end"]}  # fmt: skip


def test_a_renewal_applied_before_the_expiry_of_the_old_period_wins(fx, records):
    """The renewal races the expiry and is applied first: the notice of the old period is
    stale (not applied, so not delivered), the order stays for its new period, and the
    expiry of the new period closes it."""
    person = records.id_number()
    key = KEYER.person(person)
    order = records.person_order("BJ01", "（2026）京01执21号", person)
    renewal = {**order, "control_period_end": order["control_period_end"] + dt.timedelta(days=30)}
    fx.apply(LOCATE, order, key=key)
    fx.apply(LOCATE, renewal, key=key)
    track = fx.book.track(order["order_id"])
    assert (track.renewals, track.end_us) == (1, to_micros(renewal["control_period_end"]))
    stale = _expiry(order)
    assert fx.apply(EXPIRY_NOTICE, stale, key=key, signer="BUS-MATCHER", role="bus") is None
    assert fx.orders_on(key) == {order["order_id"]}
    assert fx.book.track(order["order_id"]).closed is None
    fx.apply(EXPIRY_NOTICE, _expiry(renewal), key=key, signer="BUS-MATCHER", role="bus")
    assert fx.book.track(order["order_id"]).closed is Closure.EXPIRED


def test_a_renewal_applied_after_the_expiry_is_refused(fx, records):
    """The expiry is applied first: the order is closed, and a closed order never returns
    (the court issues a new order)."""
    person = records.id_number()
    key = KEYER.person(person)
    order = records.person_order("BJ01", "（2026）京01执22号", person)
    renewal = {**order, "control_period_end": order["control_period_end"] + dt.timedelta(days=30)}
    fx.apply(LOCATE, order, key=key)
    fx.apply(EXPIRY_NOTICE, _expiry(order), key=key, signer="BUS-MATCHER", role="bus")
    assert fx.apply(LOCATE, renewal, key=key) is None
    assert fx.refused[-1][0] == "ORDER_CLOSED"
    assert fx.orders_on(key) == set()


def test_an_expired_order_stays_for_late_sightings_until_purged_or_released(records):
    fx = _Fixture(keep_expired=True)
    people = [records.id_number() for _ in range(2)]
    keys = [KEYER.person(person) for person in people]
    orders = [
        records.person_order("BJ01", f"（2026）京01执{23 + i}号", person)
        for i, person in enumerate(people)
    ]
    for order, key in zip(orders, keys, strict=True):
        fx.apply(LOCATE, order, key=key)
        fx.apply(EXPIRY_NOTICE, _expiry(order), key=key, signer="BUS-MATCHER", role="bus")
        assert fx.orders_on(key) == {order["order_id"]}  # for late sightings only
        assert fx.book.track(order["order_id"]).in_late_window
    assert fx.purges == [order["order_id"] for order in orders]
    fx.book.noticed(orders[0]["order_id"], PURGED)  # the late window ended
    fx.apply(RELEASE, records.release(orders[1], "LOCATE_DEBTOR"), key=keys[1])
    for update in fx.book.drain_updates():  # the purge's, as the watchlist agent applies them
        entry = fx.watchlist.get(update.key, WatchEntry.empty())
        fx.watchlist[update.key] = update.applied_to(entry)
    for order, key in zip(orders, keys, strict=True):
        assert fx.orders_on(key) == set()
        assert not fx.book.track(order["order_id"]).in_late_window


def test_new_and_corrected_orders_are_looked_back_for(fx, records):
    person = records.id_number()
    key = KEYER.person(person)
    order = records.person_order("BJ01", "（2026）京01执26号", person)
    fx.apply(LOCATE, order, key=key)
    corrected = {**order, "control_period_end": order["control_period_end"] + dt.timedelta(days=1)}
    fx.apply(LOCATE, corrected, key=key)
    looked = fx.book.drain_lookbacks()
    assert [(o.order_id, keys) for o, keys, _ in looked] == [(order["order_id"], (key,))] * 2
    assert looked[1][0].end_us == to_micros(corrected["control_period_end"])
    # the correction looks back from the first copy's application: the matcher judged the
    # sightings after it by the order then in force
    assert looked[0][2] == looked[1][2] == fx.book.track(order["order_id"]).applied_us > 0
    fx.apply(RELEASE, records.release(order, "LOCATE_DEBTOR"), key=key)
    fx.apply(LOCATE, order, key=key)  # refused: closed
    assert fx.book.drain_lookbacks() == []


def test_another_courts_order_under_a_taken_id_is_refused(fx, records):
    """SH01 reusing the id of BJ01's order took it over: BJ01's release was then refused
    and its hits went to SH01."""
    person, other = records.id_number(), records.id_number()
    order = records.person_order("BJ01", "（2026）京01执17号", person)
    fx.apply(LOCATE, order, key=KEYER.person(person))
    hijack = {**records.person_order("SH01", "（2026）沪01执17号", other),
              "order_id": order["order_id"]}  # fmt: skip
    assert fx.apply(LOCATE, hijack, key=KEYER.person(other), signer="SH01") is None
    assert fx.refused[-1][0] == "AGENCY_MISMATCH"
    assert fx.orders_on(KEYER.person(other)) == set()
    assert fx.book.track(order["order_id"]).court == "BJ01"
    release = records.release(order, "LOCATE_DEBTOR")
    assert fx.apply(RELEASE, release, key=KEYER.person(person)) is not None
    assert fx.orders_on(KEYER.person(person)) == set()


def test_a_corrected_subject_moves_the_order_and_its_release_removes_it(fx, records):
    """An order sent again with another subject (a corrected ID number) is found under the
    new subject only, and its release takes it off there (it hit the new subject after the
    release, and the old one until then)."""
    person, corrected = records.id_number(), records.id_number()
    order = records.person_order("BJ01", "（2026）京01执18号", person)
    fx.apply(LOCATE, order, key=KEYER.person(person))
    again = records.person_order("BJ01", "（2026）京01执18号", corrected)
    again["order_id"] = order["order_id"]
    assert fx.apply(LOCATE, again, key=KEYER.person(corrected)) is not None
    assert fx.orders_on(KEYER.person(person)) == set()
    assert fx.orders_on(KEYER.person(corrected)) == {order["order_id"]}
    assert fx.book.track(order["order_id"]).keys == (KEYER.person(corrected),)
    fx.apply(RELEASE, records.release(order, "LOCATE_DEBTOR"), key=KEYER.person(person))
    assert fx.orders_on(KEYER.person(corrected)) == set()
    assert fx.book.track(order["order_id"]).closed is Closure.RELEASED


def test_an_order_sent_again_as_another_kind_is_refused(fx, records):
    plate, vin = records.plate(), records.vin()
    order = records.vehicle_order("BJ01", "（2026）京01执19号", plate, vin)
    fx.apply(VEHICLE, order, key=KEYER.vehicle(plate, vin)[0])
    person = records.id_number()
    locate = {**records.person_order("BJ01", "（2026）京01执19号", person),
              "order_id": order["order_id"]}  # fmt: skip
    assert fx.apply(LOCATE, locate, key=KEYER.person(person)) is None
    assert fx.refused[-1][0] == "MISPLACED"
    assert fx.orders_on(KEYER.person(person)) == set()


def _flow(fx):
    from consumers.order_flow import OrderFlow  # noqa: PLC0415
    from topics.catalog import bus_catalog  # noqa: PLC0415

    runtime = SimpleNamespace(catalog=bus_catalog())
    return OrderFlow(runtime, None, delivery=None, book=fx.book, ledger=None,  # type: ignore[arg-type]
                     watch_updates=None, watchlist=None, looks_back=False)  # fmt: skip


def test_an_acknowledgement_of_another_kind_than_its_order_is_refused(fx, records):
    """A traffic unit acknowledging an exit restriction as a vehicle search is refused: its
    acknowledgement silenced the court's overdue alert. One for an order not tracked yet
    is forwarded (it can reach the ledger before its order)."""
    person = records.id_number()
    order = records.person_order("BJ01", "（2026）京01执20号", person)
    flow = _flow(fx)
    border, traffic = "110000230000", "110000110000"
    ack = records.acknowledgement(order, "EXIT_RESTRICTION", border)
    assert flow._acknowledge(border, "border-control", ack).endswith("alerts.BJ01")
    exit_order = "cn.zf801.orders.v1.ExitRestrictionOrder"
    fx.apply(exit_order, order, key=KEYER.person(person))
    assert flow._acknowledge(border, "border-control", ack).endswith("alerts.BJ01")
    faked = records.acknowledgement(order, "VEHICLE_SEARCH", traffic, "REJECTED")
    assert flow._acknowledge(traffic, "traffic-management", faked)[0] == "MISPLACED"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda o: o.update(police_requirements="pay\u202eevil"), "police_requirements"),
        (lambda o: o.update(case_number="（2026）沪01执1号"), "case_number"),
        (lambda o: o["subject"].update(name=" "), "subject.name"),
    ],
)
def test_an_order_signed_past_the_edges_rules_is_not_entered(fx, records, change, field):
    """A genuine court's key can sign an order that never passed the publisher's rules
    (Publisher.prepare(checked=True), or a signer used directly): it is refused here."""
    person = records.id_number()
    order = records.person_order("BJ01", "（2026）京01执21号", person)
    change(order)
    assert fx.apply(LOCATE, order, key=KEYER.person(person)) is None
    reason, detail = fx.refused[-1]
    assert reason == "EDGE_RULE" and field in detail
    assert fx.orders_on(KEYER.person(person)) == set()
    assert fx.book.track(order["order_id"]) is None
