"""Expiry notices and overdue-acknowledgement alerts, from the worker's tables."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from consumers.deadlines import Deadlines
from consumers.outgoing import OutgoingSigner
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


def _deadlines(keystore: KeyStore, watch: dict[bytes, WatchEntry]) -> Deadlines:
    signer = OutgoingSigner(keystore.signer_for("BUS-MATCHER"), default_codec())
    return Deadlines(signer, default_catalog(), TOPICS,
                     lambda key: watch.get(key, WatchEntry.empty()))  # fmt: skip


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
    deadlines = _deadlines(keystore, {})

    def state(status: str | None, deadline: dt.datetime) -> bytes:
        return json.dumps({"kind": "LOCATE_DEBTOR", "court": "BJ01", "status": status,
                           "issued_at_us": to_micros(NOW) - 10**9,
                           "deadline_us": to_micros(deadline), "keys": []}).encode()  # fmt: skip

    late, acked, in_time = (str(uuid.uuid4()).encode() for _ in range(3))
    tracking = [
        (late, state(None, NOW - dt.timedelta(seconds=1))),
        (acked, state("DEPLOYED", NOW - dt.timedelta(seconds=1))),
        (in_time, state(None, NOW + dt.timedelta(seconds=1))),
    ]
    alerts = deadlines.overdue_alerts(tracking, NOW)
    assert [a.record.key for a in alerts] == [late]
    _, record = default_codec().decode(alerts[0].record.value)
    assert record["awaited_role"] == "PUBLIC_SECURITY"
    assert deadlines.overdue_alerts(tracking, NOW) == []
