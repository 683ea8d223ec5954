"""Expiry notices and overdue-acknowledgement alerts, from the worker's tables."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from consumers.deadlines import Deadlines
from consumers.outgoing import OutgoingSigner
from consumers.tracking import OrderTrack
from consumers.watchlist import ActiveOrder, OrderKind, WatchEntry, derive_id, to_micros
from schemas.codec import default_codec
from sign.keystore import KeyStore
from topics.catalog import default_catalog

NOW = dt.datetime(2026, 11, 27, 5, 0, tzinfo=dt.UTC)
KEY = b"k" * 32
TOPICS = {OrderKind.LOCATE_DEBTOR: "zf801.orders.locate-debtor"}


def _order(end: dt.datetime) -> ActiveOrder:
    return ActiveOrder("7d3c6f1e-0000-4000-8000-000000000001", OrderKind.LOCATE_DEBTOR, "BJ01",
                       "（2026）京01执1号", "王法官", "13900139000", "通知承办人",
                       to_micros(end) - 10**9, to_micros(end), to_micros(NOW))  # fmt: skip


def _deadlines(
    keystore: KeyStore,
    watch: dict[bytes, WatchEntry],
    tracking: dict[bytes, bytes] | None = None,
) -> Deadlines:
    signer = OutgoingSigner(keystore.signer_for("BUS-MATCHER"), default_codec())
    tracked = tracking if tracking is not None else {}

    def track(order_id: str) -> OrderTrack | None:
        raw = tracked.get(order_id.encode())
        return OrderTrack.from_bytes(raw) if raw else None

    return Deadlines(signer, default_catalog(), TOPICS,
                     lambda key: watch.get(key, WatchEntry.empty()), track)  # fmt: skip


def _state(status: str | None, deadline: dt.datetime, closed: str | None = None) -> bytes:
    return json.dumps({"kind": "LOCATE_DEBTOR", "court": "BJ01", "status": status,
                       "issued_at_us": to_micros(NOW) - 10**9, "closed": closed,
                       "deadline_us": to_micros(deadline), "keys": []}).encode()  # fmt: skip


def test_an_ended_order_gets_one_notice_to_each_side(keystore: KeyStore) -> None:
    order = _order(end=NOW - dt.timedelta(seconds=1))
    watch = {KEY: WatchEntry.empty().with_order(order)}
    deadlines = _deadlines(keystore, watch)
    deadlines.schedule(order, KEY)
    notices = deadlines.expiry_notices(NOW)
    assert [n.topic for n in notices] == ["zf801.orders.locate-debtor", "zf801.alerts.BJ01"]
    assert notices[0].record.key == KEY
    assert notices[1].record.header("ce_id") == derive_id("expiry", order.order_id,
                                                          "court").encode()  # fmt: skip
    _, record = default_codec().decode(notices[1].record.value)
    assert record["expired_at"] == NOW - dt.timedelta(seconds=1)
    deadlines.reschedule([(KEY, watch[KEY].to_bytes())])
    assert deadlines.expiry_notices(NOW) == []  # once per order, even after a reschedule


def test_a_running_or_released_order_gets_no_notice(keystore: KeyStore) -> None:
    running = _order(end=NOW + dt.timedelta(days=1))
    watch = {KEY: WatchEntry.empty().with_order(running)}
    deadlines = _deadlines(keystore, watch)
    deadlines.schedule(running, KEY)
    assert deadlines.expiry_notices(NOW) == []
    ended = _order(end=NOW - dt.timedelta(seconds=1))
    deadlines.schedule(ended, b"released-meanwhile")
    assert deadlines.expiry_notices(NOW) == []


def test_an_unacknowledged_order_past_its_deadline_raises_one_overdue_alert(
    keystore: KeyStore,
) -> None:
    late, acked, released, in_time = (str(uuid.uuid4()).encode() for _ in range(4))
    past, future = NOW - dt.timedelta(seconds=1), NOW + dt.timedelta(seconds=1)
    tracking = {
        late: _state(None, past),
        acked: _state("DEPLOYED", past),
        released: _state(None, past, closed="RELEASED"),
        in_time: _state(None, future),
    }
    deadlines = _deadlines(keystore, {}, tracking)
    deadlines.rewatch_acks(tracking.items())  # open and unacknowledged: late, in_time
    alerts = deadlines.overdue_alerts(NOW)
    assert [a.record.key for a in alerts] == [late]
    _, record = default_codec().decode(alerts[0].record.value)
    assert record["awaited_role"] == "PUBLIC_SECURITY"
    assert deadlines.overdue_alerts(NOW) == []
    assert deadlines.overdue_alerts(NOW + dt.timedelta(seconds=2))[0].record.key == in_time


def test_an_order_acknowledged_after_it_was_watched_raises_nothing(keystore: KeyStore) -> None:
    order_id = str(uuid.uuid4())
    tracking = {order_id.encode(): _state(None, NOW - dt.timedelta(seconds=1))}
    deadlines = _deadlines(keystore, {}, tracking)
    deadlines.watch_ack(order_id, to_micros(NOW) - 1)
    tracking[order_id.encode()] = _state("DEPLOYED", NOW - dt.timedelta(seconds=1))
    assert deadlines.overdue_alerts(NOW) == []


def test_a_tick_looks_only_at_what_is_due_among_100000_tracked_orders(
    keystore: KeyStore,
) -> None:
    """The work of a tick is the deadlines due, not the number of tracked orders."""
    tracking = {
        str(uuid.UUID(int=n)).encode(): _state(None, NOW + dt.timedelta(seconds=n))
        for n in range(1, 100_001)
    }
    deadlines = _deadlines(keystore, {}, tracking)
    deadlines.rewatch_acks(tracking.items())
    for second in range(5):  # five idle ticks before any deadline: nothing is looked at
        assert deadlines.overdue_alerts(NOW + dt.timedelta(seconds=second - 5)) == []
    assert deadlines.looked_up == 0
    alerts = deadlines.overdue_alerts(NOW + dt.timedelta(seconds=3))
    assert len(alerts) == 3 and deadlines.looked_up == 3
