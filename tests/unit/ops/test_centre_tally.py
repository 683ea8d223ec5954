"""The command centre's figures from decoded records, without a broker: active orders by
kind, releases and expiry, acknowledgements pending and overdue, hits per minute and their
latency, queries and their latency, dead letters, per province and per court."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ops.centre.tally import Tally

NOW = datetime(2026, 11, 28, 12, 0, 30, tzinfo=UTC)
NS = "cn.zf801"


def _order(order_id: str, court: str, issued: datetime = NOW - timedelta(minutes=1),
           ends: datetime = NOW + timedelta(days=1)) -> dict[str, Any]:  # fmt: skip
    return {"order_id": order_id, "enforcing_court_code": court, "case_number": f"case-{order_id}",
            "issued_at": issued, "control_period_end": ends}  # fmt: skip


def _hit(order_id: str, court: str, seconds_ago: float, latency_ms: float) -> dict[str, Any]:
    matched = NOW - timedelta(seconds=seconds_ago)
    return {
        "order_id": order_id, "court_code": court, "case_number": f"case-{order_id}",
        "matched_at": matched,
        "summary": {"kind": "HOTEL_CHECK_IN", "place": "某酒店",
                    "observed_at": matched - timedelta(milliseconds=latency_ms)},
    }  # fmt: skip


def _tally() -> Tally:
    tally = Tally(ack_timeout=timedelta(minutes=5))
    see = tally.observe
    see(f"{NS}.orders.v1.ExitRestrictionOrder", _order("o1", "BJ01"))
    see(f"{NS}.orders.v1.VehicleSearchOrder", _order("o2", "BJ01", issued=NOW - timedelta(hours=1)))
    see(f"{NS}.orders.v1.LocateDebtorOrder", _order("o3", "GD01"))
    # o4's release is read before the order itself (another topic, another reader)
    see(f"{NS}.orders.v1.OrderRelease", {"order_id": "o4"})
    see(f"{NS}.orders.v1.ExitRestrictionOrder", _order("o4", "SH01"))
    see(f"{NS}.orders.v1.LocateDebtorOrder", _order("o5", "SH01", ends=NOW - timedelta(hours=1)))
    see(f"{NS}.orders.v1.OrderAcknowledgement", {"order_id": "o1", "status": "DEPLOYED"})
    see(f"{NS}.orders.v1.ExitRestrictionOrder", _order("o1", "BJ01"))  # a copy counts once
    see(f"{NS}.bus.v1.Hit", _hit("o1", "BJ01", 70, 120))
    see(f"{NS}.bus.v1.Hit", _hit("o3", "GD01", 10, 40))
    see(f"{NS}.bus.v1.Hit", _hit("o3", "GD01", 5, 40_000))
    see(f"{NS}.bus.v1.DeadLetter", {"reason": "SIGNATURE_INVALID"})
    see(f"{NS}.bus.v1.DeadLetter", {"reason": "SIGNATURE_INVALID"})
    see(f"{NS}.bus.v1.DeadLetter", {"reason": "SCHEMA_INVALID"})
    see(f"{NS}.query.v1.IdentityQuery", {"correlation_id": "q1", "requesting_court_code": "GD01",
                                         "requested_at": NOW - timedelta(seconds=3)})  # fmt: skip
    see(f"{NS}.police.v1.IdentityResult", {"correlation_id": "q1", "answered_at": NOW})
    see(f"{NS}.police.v1.IdentityResult", {"correlation_id": "q1", "answered_at": NOW})
    return tally


def test_the_national_figures() -> None:
    view = _tally().national(NOW)
    assert view["active"] == {
        "ExitRestrictionOrder": 1, "LocateDebtorOrder": 1, "VehicleSearchOrder": 1,
    }  # fmt: skip
    assert view["active_total"] == 3
    assert (view["pending"], view["overdue"]) == (2, 1)  # o2 waits an hour, o3 a minute
    assert view["hits_total"] == 3
    assert view["hit_latency"]["counts"] == [1, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    assert view["dead_letters"] == {"SCHEMA_INVALID": 1, "SIGNATURE_INVALID": 2}
    assert view["queries"]["asked"] == view["queries"]["answered"] == 1
    assert view["queries"]["latency"]["counts"][6] == 1  # 3 s: in the bucket up to 5000 ms
    minutes = dict(map(tuple, view["hits_per_minute"]))
    assert len(minutes) == 60
    assert minutes[int(NOW.timestamp()) // 60 * 60] == 2
    assert minutes[int(NOW.timestamp()) // 60 * 60 - 60] == 1


def test_provinces_are_ordered_by_backlog() -> None:
    rows = {row["province"]: row for row in _tally().national(NOW)["provinces"]}
    assert [row["province"] for row in _tally().national(NOW)["provinces"]][:2] == ["11", "44"]
    assert (rows["11"]["name"], rows["11"]["active"], rows["11"]["pending"]) == ("北京市", 2, 1)
    assert (rows["44"]["hits"], rows["44"]["queries"]) == (2, 1)
    assert rows["31"]["active"] == 0


def test_a_courts_view_holds_its_own_orders_and_alerts_only() -> None:
    tally = _tally()
    tally.observe(f"{NS}.orders.v1.OrderAckOverdue", {
        "order_id": "o2", "court_code": "BJ01", "awaited_role": "traffic-management",
        "detected_at": NOW,
    })  # fmt: skip
    beijing = tally.court("BJ01", NOW)
    assert [o["order_id"] for o in beijing["orders"]] == ["o1", "o2"]
    assert {o["order_id"]: o["acknowledged"] for o in beijing["orders"]} == {
        "o1": "DEPLOYED", "o2": "OVERDUE",
    }  # fmt: skip
    assert [a["kind"] for a in beijing["alerts"]] == ["OVERDUE", "HOTEL_CHECK_IN"]
    assert beijing["hits_total"] == 1
    shanghai = tally.court("SH01", NOW)
    assert {o["order_id"]: o["state"] for o in shanghai["orders"]} == {
        "o4": "RELEASED", "o5": "ENDED",
    }  # fmt: skip
    assert tally.court("GD03", NOW) == {
        "court": "GD03", "orders_total": 0, "active_total": 0, "orders": [], "hits_total": 0,
        "alerts": [],
    }  # fmt: skip


def test_an_order_the_processors_refused_is_not_counted_whichever_is_read_first() -> None:
    """A forged key or another court's name: the worker dead-letters the order, which the
    centre counted as active all the same."""
    tally = Tally(ack_timeout=timedelta(minutes=5))
    order, dead = f"{NS}.orders.v1.ExitRestrictionOrder", f"{NS}.bus.v1.DeadLetter"

    def refused(offset: int) -> dict[str, Any]:
        return {"reason": "KEY_MISMATCH",
                "original": {"topic": "orders", "partition": 0, "offset": offset}}  # fmt: skip

    tally.observe(order, _order("kept", "BJ01"), ("orders", 0, 1))
    tally.observe(order, _order("late", "BJ01"), ("orders", 0, 2))
    tally.observe(dead, refused(2))  # after its order
    tally.observe(dead, refused(3))  # before its order
    tally.observe(order, _order("early", "BJ01"), ("orders", 0, 3))
    assert set(tally.orders) == {"kept"}
    assert tally.national(NOW)["active"]["ExitRestrictionOrder"] == 1
    assert tally.dead_letters["KEY_MISMATCH"] == 2
