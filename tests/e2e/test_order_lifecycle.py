"""The order lifecycle through a real worker (issue 15): action notices at the point of
sighting (a concealed order's never leaking), expiry warnings and renewal without a gap,
a renewal racing the expiry, late sightings, and the clocks surviving a worker killed
while they run.

One worker for the module: its warning window is 8 s for every kind, so an order whose
period ends within seconds is warned at once and a month-long one never is here.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest

from schemas.codec import default_codec
from schemas.headers import CE_ID, CE_SOURCE
from schemas.tls_layout import ADMIN_NAME
from tests.builders import Records
from tests.kafka_io import broker_refuses_agency
from tests.waiting import wait_for
from topics import clients
from topics.errors import AccessDenied

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COURT, STATION, SHANGHAI_POLICE = "BJ01", "110105000000", "310000000000"
BEIJING_POLICE = "110000000000"  # another unit of the station's province, named by its rule
LOCATE, HOTEL = "LocateDebtorOrder", "HotelCheckIn"
ACTIONS, DELIVERY = "action-notices", "order-delivery-locate-debtor"
_WARN_S = 8.0
_CONFIRM_S = 15.0


@pytest.fixture(scope="module")
def bus(bus_factory: Any) -> Iterator[Any]:
    bus = bus_factory(expiry_warning_s=_WARN_S, late_window_s=600.0, timer_interval_s=0.5,
                      hit_confirm_s={"LOCATE_DEBTOR": _CONFIRM_S})  # fmt: skip
    bus.start()
    yield bus


def _order(records: Records, case: int, *, ends_in_s: float | None = None, **fields: Any
           ) -> dict[str, Any]:  # fmt: skip
    end = None if ends_in_s is None else dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ends_in_s)
    order = records.person_order(COURT, f"（2026）京01执{case}号", records.id_number(), end=end)
    order.update(fields)
    return order


def _issue(bus: Any, *orders: dict[str, Any]) -> None:
    for order in orders:
        bus.publish(COURT, LOCATE, order)
    bus.wait_orders_consumed()


def _ending(bus: Any, records: Records, case: int, ends_in_s: float
            ) -> tuple[dict[str, Any], dt.datetime]:  # fmt: skip
    """An order issued and applied, whose period ends ``ends_in_s`` from now; its end."""
    order = _order(records, case, ends_in_s=ends_in_s)
    _issue(bus, order)
    return order, order["control_period_end"]


def _sighting(bus: Any, order: dict[str, Any], observed_at: dt.datetime | None = None
              ) -> dict[str, Any]:  # fmt: skip
    record = Records.hotel_check_in(STATION, order["subject"]["id_number"], observed_at)
    bus.publish(STATION, HOTEL, record)
    return record


def _alerts(bus: Any, kind: str, order: dict[str, Any]) -> list[Any]:
    return [a for a in bus.alerts(COURT, until_idle_s=2.0)
            if a.kind == kind and str(a.record["order_id"]) == order["order_id"]]  # fmt: skip


def _notices(bus: Any, agency: str = ADMIN_NAME) -> list[tuple[dict[str, Any], dict[str, bytes],
                                                                bytes]]:  # fmt: skip
    """Every action notice on the station's own topic, read by ``agency``: (decoded value,
    headers, raw value)."""
    out = []
    for message in bus.messages(ACTIONS, unit=STATION, idle_s=2.0, agency=agency):
        out.append((default_codec().decode(message.value)[1], dict(message.headers),
                    message.value))  # fmt: skip
    return out


def _hit_of(bus: Any, order: dict[str, Any]) -> Any:
    return wait_for(lambda: _alerts(bus, "Hit", order), timeout_s=60)[0]


def test_the_reporting_unit_is_told_what_to_do_and_a_concealed_order_stays_concealed(
    bus: Any, records: Records
) -> None:
    plain = _order(records, 1501)
    concealed = _order(records, 1502, concealed=True,
                       police_requirements="秘密查控：勿惊动，立即联系承办人")  # fmt: skip
    _issue(bus, plain, concealed)
    sightings = {o["order_id"]: _sighting(bus, o) for o in (plain, concealed)}
    hits = {o["order_id"]: _hit_of(bus, o) for o in (plain, concealed)}
    notices = wait_for(lambda: len(found := _notices(bus)) >= 2 and found, timeout_s=60)
    by_hit = {str(record["hit_id"]): (record, headers, raw) for record, headers, raw in notices}
    assert len(by_hit) == 2

    record, headers, _ = by_hit[str(hits[plain["order_id"]].record["hit_id"])]
    assert headers[CE_SOURCE] == b"zf801:agency/BUS-MATCHER"
    assert (record["action"], record["court_code"], str(record["order_id"])) == (
        "DETAIN", COURT, plain["order_id"],
    )  # fmt: skip
    assert record["reporting_unit_code"] == STATION
    assert str(record["sighting_id"]) == sightings[plain["order_id"]]["sighting_id"]
    assert record["handler"] == plain["handler"]
    assert [d["document_id"] for d in record["documents"]] == [
        d["document_id"] for d in plain["sealed_documents"]
    ]

    record, headers, raw = by_hit[str(hits[concealed["order_id"]].record["hit_id"])]
    assert (record["action"], record["concealed"], record["court_code"]) == (
        "CONTACT_COURT", True, COURT,
    )  # fmt: skip
    assert record["order_id"] is None and record["handler"] is None and record["documents"] == []
    secrets = [concealed["order_id"], concealed["case_number"], concealed["handler"]["name"],
               concealed["handler"]["phone"], concealed["police_requirements"],
               concealed["sealed_documents"][0]["document_id"]]  # fmt: skip
    for secret in secrets:
        assert secret.encode() not in raw, secret
        assert all(secret.encode() not in value for value in headers.values()), secret
    # The court hears everything of its concealed order.
    assert hits[concealed["order_id"]].record["case_number"] == concealed["case_number"]


def test_only_the_reporting_unit_reads_its_action_notices(bus: Any, records: Records) -> None:
    """A hit reported by the station: the station, connected as itself (mTLS), reads its
    notice; another unit of Beijing, named by the same provincial rule, is refused by the
    broker on the station's topic, as are a unit of another province and the court."""
    if bus.settings.security != "mtls":
        pytest.skip("the session's broker runs without mTLS: no ACLs to enforce")
    order = _order(records, 1503)
    _issue(bus, order)
    _sighting(bus, order)
    hit_id = str(_hit_of(bus, order).record["hit_id"])
    own = wait_for(lambda: [r for r, _, _ in _notices(bus, STATION) if str(r["hit_id"]) == hit_id],
                   timeout_s=60)  # fmt: skip
    assert [(r["reporting_unit_code"], r["action"]) for r in own] == [(STATION, "DETAIN")]

    station_topic = bus.catalog.topic_name(ACTIONS, unit=STATION)
    assert station_topic.endswith(f"police.action-notices.{STATION}")
    for stranger in (BEIJING_POLICE, SHANGHAI_POLICE, COURT):
        with pytest.raises(AccessDenied, match=f"agency {stranger}.*{station_topic}.*READ"):
            clients.kafka_reader(bus.settings, stranger, station_topic)
    # Past our library's check, the broker itself refuses the other Beijing unit: it names
    # the topic TOPIC_AUTHORIZATION_FAILED and hands over no record.
    assert broker_refuses_agency(bus.settings, BEIJING_POLICE, station_topic)
    # And the other unit's own topic carries nothing of the station's hit.
    theirs = bus.messages(ACTIONS, unit=BEIJING_POLICE, idle_s=1.0, agency=BEIJING_POLICE)
    assert all(hit_id.encode() not in m.value for m in theirs)


def test_the_court_is_warned_and_renews_without_a_gap(bus: Any, records: Records) -> None:
    order, end = _ending(bus, records, 1503, _WARN_S + 12)
    [warning] = wait_for(lambda: _alerts(bus, "OrderExpiryWarning", order), timeout_s=40)
    assert warning.record["period_end"] == end
    renewed_end = end + dt.timedelta(days=30)
    _issue(bus, {**order, "control_period_end": renewed_end})
    assert dt.datetime.now(dt.UTC) < end, "the renewal came too late for this test's point"
    wait_for(lambda: dt.datetime.now(dt.UTC) > end + dt.timedelta(seconds=3), timeout_s=40)
    assert _alerts(bus, "OrderExpiryNotice", order) == []
    delivered = [rec for rec, _, kind in bus.read_topic(DELIVERY, province="11", idle_s=2.0)
                 if str(rec["order_id"]) == order["order_id"]]  # fmt: skip
    assert [rec["control_period_end"] for rec in delivered] == [end, renewed_end]
    _sighting(bus, order)  # after the first period's end: the renewed order hits
    assert _hit_of(bus, order).record["late"] is False


def test_a_renewal_racing_the_expiry_is_either_applied_or_refused_never_half(
    bus: Any, records: Records
) -> None:
    order, end = _ending(bus, records, 1504, 6)
    wait_for(lambda: dt.datetime.now(dt.UTC) >= end - dt.timedelta(seconds=0.3),
             timeout_s=30, interval_s=0.05)  # fmt: skip
    bus.publish(COURT, LOCATE, {**order, "control_period_end": end + dt.timedelta(days=1)})
    bus.wait_orders_consumed()
    wait_for(lambda: dt.datetime.now(dt.UTC) > end + dt.timedelta(seconds=2), timeout_s=30)
    bus.wait_orders_consumed()
    delivered = {kind for rec, _, kind in bus.read_topic(DELIVERY, province="11", idle_s=2.0)
                 if str(rec["order_id"]) == order["order_id"]}  # fmt: skip
    refused = [
        rec for rec, _, _ in bus.read_topic("dead-letter", idle_s=2.0)
        if rec["detail"].startswith("ORDER_CLOSED") and order["order_id"] in rec["detail"]
    ]  # fmt: skip
    _sighting(bus, order)
    if "OrderExpiryNotice" in delivered:  # the expiry was applied first
        assert refused, "an expired order's renewal must be refused, and said so"
        time.sleep(3)  # a hit, if one were wrongly made, would be there by now
        assert _alerts(bus, "Hit", order) == []
    else:  # the renewal was applied first: the order runs on, no expiry reached the police
        assert not refused
        assert _hit_of(bus, order).record["late"] is False


def test_a_late_sighting_reaches_the_court_flagged_late_with_no_action_notice(
    bus: Any, records: Records
) -> None:
    order, end = _ending(bus, records, 1505, 3)
    wait_for(lambda: _alerts(bus, "OrderExpiryNotice", order), timeout_s=40)
    bus.wait_orders_consumed()  # the expiry is applied: the order is in its late window
    _sighting(bus, order, observed_at=end - dt.timedelta(seconds=1))  # reported after an outage
    hit = _hit_of(bus, order)
    assert hit.record["late"] is True
    assert str(hit.record["hit_id"]) not in {str(rec["hit_id"]) for rec, _, _ in _notices(bus)}


def test_a_new_order_looks_back_across_a_release_and_hits_only_itself(
    bus: Any, records: Records
) -> None:
    """A subject's first order is released; the subject then checks in (no hit: released);
    a second order follows: its look-back finds the check-in (retroactive, no action notice),
    and the released order gets nothing."""
    released = _order(records, 1507)
    _issue(bus, released)
    person = {"id_number": released["subject"]["id_number"]}
    bus.publish(COURT, "OrderRelease", records.release(released, "LOCATE_DEBTOR"), person)
    bus.wait_orders_consumed()
    check_in = _sighting(bus, released)
    _sighting(bus, released, observed_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    second = _order(records, 1508)
    second["subject"] = released["subject"]
    _issue(bus, second)
    hit = _hit_of(bus, second)
    assert hit.record["retroactive"] is True and hit.record["late"] is False
    assert str(hit.record["sighting"]["sighting_id"]) == check_in["sighting_id"]
    time.sleep(2)  # a second hit (the check-in before the start), if wrongly made, is there
    assert [str(a.record["sighting"]["sighting_id"]) for a in _alerts(bus, "Hit", second)] == [
        check_in["sighting_id"]
    ]
    assert _alerts(bus, "Hit", released) == []
    assert str(hit.record["hit_id"]) not in {str(r["hit_id"]) for r, _, _ in _notices(bus)}


def test_the_clocks_survive_a_worker_killed_while_they_run_and_fire_once(
    bus: Any, records: Records
) -> None:
    order = _order(records, 1506, ends_in_s=_WARN_S + 25)
    _issue(bus, order)
    bus.kill()  # both clocks running: the warning in ~25 s, the expiry in ~33 s
    bus.start()
    wait_for(lambda: _alerts(bus, "OrderExpiryNotice", order), timeout_s=90)
    raw = [message for message in bus.messages("alerts", COURT, idle_s=2.0)
           if order["order_id"].encode() == message.key]  # fmt: skip
    kinds = [default_codec().decode(m.value)[0].name for m in raw]
    assert sorted(kinds) == ["OrderExpiryNotice", "OrderExpiryWarning"]
    assert len({dict(m.headers)[CE_ID] for m in raw}) == 2


def test_hit_clocks_escalate_the_side_that_did_not_confirm_once_across_a_restart(
    bus: Any, records: Records
) -> None:
    """Both sides confirm one hit in time; only the court the other. The other is
    escalated once at its limit to the court and its higher court, and once at twice the
    limit to the command system, with the worker killed and restarted in between."""
    confirmed, unconfirmed = _order(records, 1509), _order(records, 1510)
    _issue(bus, confirmed, unconfirmed)
    hits = {}
    for order in (confirmed, unconfirmed):
        _sighting(bus, order)
        hits[order["order_id"]] = str(_hit_of(bus, order).record["hit_id"])
    for order in (confirmed, unconfirmed):
        bus.publish(COURT, "HitConfirmation", {
            "hit_id": hits[order["order_id"]], "court_code": COURT, "confirmed_by": "王法官",
            "confirmed_at": dt.datetime.now(dt.UTC), "note": None, "order_id": order["order_id"],
        })  # fmt: skip
    bus.publish(STATION, "EncounterConfirmation", {
        "hit_id": hits[confirmed["order_id"]], "order_id": confirmed["order_id"],
        "reporting_unit_code": STATION, "action_taken": "DETAINED",
        "confirmed_at": dt.datetime.now(dt.UTC), "note": "已控制",
    })  # fmt: skip
    [level1] = wait_for(lambda: _alerts(bus, "HitUnconfirmed", unconfirmed), timeout_s=60)
    assert (level1.record["level"], level1.record["awaiting"]) == (1, ["POLICE"])
    higher = [a for a in bus.alerts("BJ", until_idle_s=2.0) if a.kind == "HitUnconfirmed"
              and str(a.record["order_id"]) == unconfirmed["order_id"]]  # fmt: skip
    assert [a.record["addressed_to"] for a in higher] == ["BJ"]
    bus.kill()  # the second level's clock runs on across the restart
    bus.start()

    def level2() -> list[dict[str, Any]]:
        return [rec for rec, _, _ in bus.read_topic("escalations", idle_s=1.5)
                if str(rec["hit_id"]) == hits[unconfirmed["order_id"]]]  # fmt: skip

    [command] = wait_for(level2, timeout_s=90)
    assert (command["level"], command["addressed_to"], command["province_code"]) == (
        2, "SPC-COMMAND", "11",
    )  # fmt: skip
    raw = [m for m in bus.messages("alerts", COURT, idle_s=2.0)
           if m.key == unconfirmed["order_id"].encode()
           and default_codec().decode(m.value)[0].name == "HitUnconfirmed"]  # fmt: skip
    assert len(raw) == 1  # the first level once, though the worker restarted
    assert _alerts(bus, "HitUnconfirmed", confirmed) == []
