"""Expiry notices and overdue-acknowledgement alerts, from the worker's tables."""

from __future__ import annotations

import datetime as dt
import json
import tracemalloc
import uuid
from typing import Any

from consumers.deadlines import (
    EXPIRY,
    OVERDUE,
    PURGED,
    WARNING,
    Deadlines,
    DueIndex,
    period_notice,
)
from consumers.outgoing import OutgoingSigner
from consumers.tracking import OrderTrack, tracked
from consumers.watchlist import OrderKind, derive_id
from schemas.codec import default_codec
from schemas.envelope import to_micros
from sign.keystore import KeyStore
from topics.catalog import default_catalog

NOW = dt.datetime(2026, 11, 27, 5, 0, tzinfo=dt.UTC)
KEY = b"k" * 32
TOPICS = {OrderKind.LOCATE_DEBTOR: "zf801.orders.locate-debtor"}


ORDER_ID = "7d3c6f1e-0000-4000-8000-000000000001"


def _deadlines(keystore: KeyStore, tracking: dict[bytes, bytes], **options: Any) -> Deadlines:
    signer = OutgoingSigner(keystore.signer_for("BUS-MATCHER"), default_codec())

    def track(order_id: str) -> OrderTrack | None:
        raw = tracking.get(order_id.encode())
        return OrderTrack.from_bytes(raw) if raw else None

    return Deadlines(signer, default_catalog(), TOPICS, track, **options)


def _state(
    status: str | None,
    deadline: dt.datetime,
    closed: str | None = None,
    end: dt.datetime | None = None,
) -> bytes:
    return json.dumps({"kind": "LOCATE_DEBTOR", "court": "BJ01", "status": status,
                       "issued_at_us": to_micros(NOW) - 10**9, "closed": closed,
                       "deadline_us": to_micros(deadline), "keys": [KEY.hex()],
                       "end_us": to_micros(end or NOW + dt.timedelta(days=30)),
                       "case_number": "（2026）京01执1号"}).encode()  # fmt: skip


def test_an_ended_order_gets_one_notice_to_each_side(keystore: KeyStore) -> None:
    end = NOW - dt.timedelta(seconds=1)
    tracking = {ORDER_ID.encode(): _state("DEPLOYED", NOW, end=end)}
    deadlines = _deadlines(keystore, tracking)
    deadlines.schedule(ORDER_ID, to_micros(end))
    notices = deadlines.expiry_notices(NOW)
    assert [n.topic for n in notices] == ["zf801.orders.locate-debtor", "zf801.alerts.BJ01"]
    assert notices[0].record.key == KEY  # the order's record key: after it, on its partition
    assert notices[1].record.header("ce_id") == derive_id("expiry", ORDER_ID,
                                                          "court").encode()  # fmt: skip
    _, record = default_codec().decode(notices[1].record.value)
    assert record["expired_at"] == end
    assert record["case_number"] == "（2026）京01执1号"
    deadlines.rewatch(tracked(tracking.items()))
    assert deadlines.expiry_notices(NOW) == []  # once per order, even after a rewatch


def test_a_running_released_or_renewed_order_gets_no_notice(keystore: KeyStore) -> None:
    ended = NOW - dt.timedelta(seconds=1)
    running, released, renewed = (str(uuid.uuid4()) for _ in range(3))
    tracking = {
        running.encode(): _state(None, NOW, end=NOW + dt.timedelta(days=1)),
        released.encode(): _state(None, NOW, closed="RELEASED", end=ended),
        renewed.encode(): _state(None, NOW, end=NOW + dt.timedelta(days=1)),
    }
    deadlines = _deadlines(keystore, tracking)
    deadlines.rewatch(tracked(tracking.items()))
    deadlines.schedule(released, to_micros(ended))
    deadlines.schedule(renewed, to_micros(ended))  # watched under its first period
    assert deadlines.expiry_notices(NOW) == []
    later = NOW + dt.timedelta(days=1, seconds=1)
    assert {n.record.key for n in deadlines.expiry_notices(later)} >= {renewed.encode()}


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
    deadlines = _deadlines(keystore, tracking)
    deadlines.rewatch(tracked(tracking.items()))  # open and unacknowledged: late, in_time
    alerts = deadlines.overdue_alerts(NOW)
    assert [a.record.key for a in alerts] == [late]
    _, record = default_codec().decode(alerts[0].record.value)
    assert record["awaited_role"] == "PUBLIC_SECURITY"
    assert deadlines.overdue_alerts(NOW) == []
    assert deadlines.overdue_alerts(NOW + dt.timedelta(seconds=2))[0].record.key == in_time


def test_an_order_acknowledged_after_it_was_watched_raises_nothing(keystore: KeyStore) -> None:
    order_id = str(uuid.uuid4())
    tracking = {order_id.encode(): _state(None, NOW - dt.timedelta(seconds=1))}
    deadlines = _deadlines(keystore, tracking)
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
    deadlines = _deadlines(keystore, tracking)
    deadlines.rewatch(tracked(tracking.items()))
    for second in range(5):  # five idle ticks before any deadline: nothing is looked at
        assert deadlines.due(NOW + dt.timedelta(seconds=second - 5)) == []
    assert deadlines.looked_up == 0 and deadlines.ticks == 5
    alerts = deadlines.due(NOW + dt.timedelta(seconds=3))
    assert len(alerts) == 3 and deadlines.looked_up == 3 and deadlines.ticks == 6


def test_a_notice_recorded_as_sent_is_not_sent_again_after_a_restart(keystore: KeyStore) -> None:
    past = NOW - dt.timedelta(seconds=1)
    tracking = {ORDER_ID.encode(): _state(None, past, end=past)}
    deadlines = _deadlines(keystore, tracking)
    deadlines.rewatch(tracked(tracking.items()))
    assert len(deadlines.overdue_alerts(NOW)) == 1 and len(deadlines.expiry_notices(NOW)) == 2
    assert deadlines.drain_noticed() == [(ORDER_ID, OVERDUE), (ORDER_ID, EXPIRY)]
    track = OrderTrack.from_bytes(tracking[ORDER_ID.encode()])
    tracking[ORDER_ID.encode()] = track.with_notice(OVERDUE).with_notice(EXPIRY).to_bytes()
    restarted = _deadlines(keystore, tracking)  # a new process: nothing in memory
    restarted.rewatch(tracked(tracking.items()))
    assert restarted.overdue_alerts(NOW) == [] and restarted.expiry_notices(NOW) == []
    restarted.watch_ack(ORDER_ID, to_micros(past))  # even if indexed again
    restarted.schedule(ORDER_ID, to_micros(past))
    assert restarted.overdue_alerts(NOW) == [] and restarted.expiry_notices(NOW) == []
    assert restarted.drain_noticed() == []


def test_a_rewatch_in_parts_lets_other_work_run_and_keeps_what_was_scheduled_meanwhile(
    keystore: KeyStore,
) -> None:
    """The worker rebuilds the clocks of a large table between other work: it gets
    control back after each ``every`` entries, and an order scheduled between two parts
    is watched once the rebuild ends, as are all the others."""
    end = NOW - dt.timedelta(seconds=1)
    ids = [str(uuid.UUID(int=n + 1)) for n in range(26)]
    tracking = {order_id.encode(): _state("DEPLOYED", NOW, end=end) for order_id in ids[:25]}
    deadlines = _deadlines(keystore, tracking)
    parts = deadlines.rewatching(list(tracked(tracking.items())), every=10)
    assert next(parts) == 10
    tracking[ids[25].encode()] = _state("DEPLOYED", NOW, end=end)  # the ledger, meanwhile
    deadlines.schedule(ids[25], to_micros(end))
    assert list(parts) == [20]
    notices = deadlines.expiry_notices(NOW)
    assert len(notices) == 2 * 26  # one to the police and one to the court, per order


_DAY_US = 24 * 3600 * 10**6


def test_the_court_is_warned_once_per_period_and_again_after_a_renewal(keystore: KeyStore) -> None:
    """Warned ``warn_before`` ahead of the end; a renewal (a new end) is a new period with
    its own warning and expiry, under ids of their own."""
    end = NOW + dt.timedelta(days=2)
    tracking = {ORDER_ID.encode(): _state("DEPLOYED", NOW, end=end)}
    deadlines = _deadlines(
        keystore, tracking, warn_before_us={OrderKind.LOCATE_DEBTOR: 3 * _DAY_US}
    )
    deadlines.rewatch(tracked(tracking.items()))
    warnings = deadlines.expiry_warnings(NOW)
    assert [w.topic for w in warnings] == ["zf801.alerts.BJ01"]
    _, record = default_codec().decode(warnings[0].record.value)
    assert record["period_end"] == end and record["warned_at"] == NOW
    assert deadlines.expiry_warnings(NOW) == []
    assert deadlines.drain_noticed() == [(ORDER_ID, WARNING)]
    track = OrderTrack.from_bytes(tracking[ORDER_ID.encode()]).with_notice(WARNING)
    new_end = end + dt.timedelta(days=30)
    renewed = track.renewed(to_micros(new_end), track.case_number, track.keys)
    tracking[ORDER_ID.encode()] = renewed.to_bytes()
    deadlines.schedule(ORDER_ID, to_micros(new_end), OrderKind.LOCATE_DEBTOR)
    assert deadlines.expiry_notices(end + dt.timedelta(seconds=1)) == []  # renewed: no gap
    later = new_end - dt.timedelta(days=2)
    renewed_warning = deadlines.expiry_warnings(later)
    assert len(renewed_warning) == 1
    assert renewed_warning[0].record.header("ce_id") != warnings[0].record.header("ce_id")
    notices = deadlines.expiry_notices(new_end)
    assert len(notices) == 2
    assert notices[1].record.header("ce_id") == derive_id("expiry", ORDER_ID, "court", 1).encode()
    assert deadlines.drain_noticed() == [
        (ORDER_ID, period_notice(WARNING, 1)), (ORDER_ID, period_notice(EXPIRY, 1)),
    ]  # fmt: skip


def test_an_expired_order_is_purged_once_its_late_window_ends(keystore: KeyStore) -> None:
    end = NOW - dt.timedelta(hours=1)
    tracking = {ORDER_ID.encode(): _state("DEPLOYED", NOW, closed="EXPIRED", end=end)}
    deadlines = _deadlines(keystore, tracking, late_window_us=2 * 3600 * 10**6)
    deadlines.rewatch(tracked(tracking.items()))  # after a restart: from the tracking state
    deadlines.purges(NOW)
    assert deadlines.drain_noticed() == []
    deadlines.purges(NOW + dt.timedelta(hours=1))
    assert deadlines.drain_noticed() == [(ORDER_ID, PURGED)]


def test_the_due_index_pops_in_due_order_and_gives_every_id_back_as_it_was() -> None:
    """Canonical UUIDs are held as their 128 bits; any other id (upper case, braces, a
    plain name, a hostile one) is named through the side table; both come back as given."""
    ids = [
        ORDER_ID, "7D3C6F1E-0000-4000-8000-000000000002", "{7d3c6f1e-0000-4000-8000-00000000}",
        "order 42", "../../etc/passwd\n", "",
    ]  # fmt: skip
    index = DueIndex()
    for due, order_id in zip([50, 10, 40, 20, 30, 60], ids, strict=True):
        index.push(due, order_id)
    index.push(-5, "before 1970")  # due now, not an error
    assert index.pop_due(0) == "before 1970" and len(index) == 6
    assert index.pop_due(9) is None
    popped = [index.pop_due(100) for _ in range(6)]
    assert popped == [ids[1], ids[3], ids[4], ids[2], ids[0], ids[5]]
    assert index.pop_due(10**18) is None and len(index) == 0


def test_a_bulk_loaded_due_index_is_ordered_after_heapify() -> None:
    index = DueIndex()
    for n in range(1000, 0, -1):
        index.append(n, str(uuid.UUID(int=n)))
    index.heapify()
    assert [index.pop_due(10**6) for _ in range(3)] == [str(uuid.UUID(int=n)) for n in (1, 2, 3)]


def test_a_watched_clock_costs_under_70_bytes() -> None:
    """What the index is for: a million orders with several clocks each. A pair of an int
    and a 36-character str took about 180 bytes."""
    ids = [str(uuid.uuid4()) for _ in range(20_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        index = DueIndex()
        for n, order_id in enumerate(ids):
            index.push(to_micros(NOW) + n, order_id)
        per_clock = (tracemalloc.get_traced_memory()[0] - before) / len(ids)
    finally:
        tracemalloc.stop()
    assert per_clock < 70, per_clock
