"""The order ledger and the watchlist updates: sealed records that only this processor
can write, placed on the partition of their order id or match key."""

from __future__ import annotations

import dataclasses
import json

import pytest

from consumers.ledger import NOTICED_PER_RECORD, Noticed, OrderLedger
from consumers.runtime import Runtime
from consumers.watch_updates import WatchUpdate, WatchUpdates
from consumers.watchlist import ActiveOrder, OrderKind, WatchEntry
from producers.publisher import Publisher
from producers.routes import outgoing_event
from schemas.codec import default_codec
from schemas.settings import Settings
from sign.keystore import KeyStore
from sign.state_seal import StateIntegrityError, StateSealer
from sign.verify_stage import MemoryAuditSink, MemoryDeadLetterSink, VerifiedEvent
from tests.builders import Records
from topics.partitioning import partition_of

SEALER = StateSealer(b"s" * 32)
LOCATE = "cn.zf801.orders.v1.LocateDebtorOrder"


def _verified_order(keystore: KeyStore) -> VerifiedEvent:
    settings = Settings(home=keystore.directory.parent)
    runtime = Runtime.from_keystore(
        "BUS-MATCHER", MemoryDeadLetterSink(), MemoryAuditSink(), settings=settings,
        keystore=keystore,
    )  # fmt: skip
    publisher = Publisher(keystore.signer_for("BJ01"), catalog=runtime.catalog, settings=settings)
    order = Records(3).person_order("BJ01", "（2026）京01执7号", "11010519491231002X")
    topic, signed = publisher.prepare(outgoing_event(LOCATE, order))
    verified = runtime.verify_stage().check(
        topic, 2, 41, 0, signed.key, signed.value, list(signed.headers)
    )
    assert verified is not None
    return verified


def _ledger() -> OrderLedger:
    return OrderLedger(SEALER, "zf801-matcher/order_ledger", "ledger", 6, default_codec())


def test_a_ledger_entry_opens_as_the_verified_event_on_its_order_ids_partition(
    keystore: KeyStore,
) -> None:
    verified = _verified_order(keystore)
    out = _ledger().outgoing(verified, 1)
    order_id = str(verified.payload["order_id"]).encode()
    assert out.record.key == order_id and out.partition == partition_of(order_id, 6)
    opened = _ledger().open(out.record.key, out.record.value)
    assert opened.record == verified.record  # the original, as consumed: topic, place, bytes
    assert opened.signature == verified.signature
    assert opened.payload == verified.payload and opened.envelope.type == LOCATE


def test_a_ledger_entry_altered_moved_or_sealed_by_another_processor_is_refused(
    keystore: KeyStore,
) -> None:
    out = _ledger().outgoing(_verified_order(keystore), 1)
    key, value = out.record.key, out.record.value
    assert key is not None and value is not None
    altered = value[:-1] + bytes([value[-1] ^ 1])
    other = OrderLedger(StateSealer(b"t" * 32), "zf801-matcher/order_ledger", "l", 6,
                        default_codec())  # fmt: skip
    for bad_key, bad_value in [
        (key, altered), (b"another-order", value), (key, None), (None, value), (key, b"junk"),
    ]:  # fmt: skip
        with pytest.raises(StateIntegrityError):
            _ledger().open(bad_key, bad_value)
    with pytest.raises(StateIntegrityError):
        other.open(key, value)


def test_a_sealed_entry_that_is_not_one_is_refused_naming_why() -> None:
    for payload in [b"[]", b"{}", b'{"record": [1], "signature": []}', b"\xff"]:
        raw = SEALER.seal("zf801-matcher/order_ledger", b"k", payload, 1)
        with pytest.raises(ValueError, match="not one"):
            _ledger().open(b"k", raw)


def test_a_ledger_entry_filed_under_another_order_id_is_refused(keystore: KeyStore) -> None:
    verified = _verified_order(keystore)
    out = _ledger().outgoing(verified, 1)
    assert out.record.value is not None
    payload = SEALER.open("zf801-matcher/order_ledger", out.record.key, out.record.value).payload
    refiled = SEALER.seal("zf801-matcher/order_ledger", b"another-order", payload, 1)
    with pytest.raises(ValueError, match="another order"):
        _ledger().open(b"another-order", refiled)


def _order() -> ActiveOrder:
    order = ActiveOrder("o-1", OrderKind.VEHICLE_SEARCH, "BJ01", "（2026）京01执1号", "王法官",
                        "13900139000", "扣押", 0, 10**18, 0)  # fmt: skip
    return order.with_keys([b"p" * 32, b"v" * 32])


def test_watch_updates_enter_and_remove_an_order_on_their_keys_partition() -> None:
    updates = WatchUpdates(SEALER, "zf801-matcher/watchlist_updates", "updates", 6)
    entry = WatchEntry.empty()
    for update in (WatchUpdate(b"v" * 32, order=_order()), WatchUpdate(b"v" * 32, removed="o-1")):
        out = updates.outgoing(update, 5)
        assert out.partition == partition_of(b"v" * 32, 6)
        opened = updates.open(out.record.key, out.record.value)
        assert opened == update
        entry = opened.applied_to(entry)
        if update.order is not None:
            assert entry.orders["o-1"].indexed_under(b"p" * 16)
    assert not entry
    assert WatchUpdate(b"k", removed="absent").applied_to(entry) is entry


def test_a_watch_update_is_bound_to_its_key_and_must_be_one() -> None:
    updates = WatchUpdates(SEALER, "zf801-matcher/watchlist_updates", "updates", 6)
    out = updates.outgoing(WatchUpdate(b"v" * 32, order=_order()), 5)
    with pytest.raises(StateIntegrityError):
        updates.open(b"p" * 32, out.record.value)  # moved to the plate key
    for payload in [b'["drop", "o-1"]', b'["remove", 3]', b"[]", b"null"]:
        raw = SEALER.seal("zf801-matcher/watchlist_updates", b"k", payload, 1)
        with pytest.raises(ValueError, match="not one"):
            updates.open(b"k", raw)
    with pytest.raises(ValueError, match="enters an order or removes one"):
        dataclasses.replace(WatchUpdate(b"k", removed="x"), order=_order())


def test_notices_sent_are_filed_one_record_per_notice_and_order_id_partition() -> None:
    ledger = _ledger()
    order_ids = [f"o-{n}" for n in range(40)]
    noticed = [(o, "looked-back") for o in order_ids] + [("o-1", "overdue")]
    out = ledger.notices(noticed, 7)
    opened = [ledger.open(o.record.key, o.record.value) for o in out]
    assert all(isinstance(n, Noticed) for n in opened)
    for record, notice in zip(out, opened, strict=True):
        assert isinstance(notice, Noticed)
        assert {partition_of(o.encode(), 6) for o in notice.order_ids} == {record.partition}
        assert record.record.key == notice.order_ids[0].encode()
    looked = sorted(o for n in opened if n.notice == "looked-back" for o in n.order_ids)
    assert looked == sorted(order_ids)
    assert [n.order_ids for n in opened if n.notice == "overdue"] == [("o-1",)]
    assert len(out) <= 7  # at most one per partition and notice, not one per order


def test_a_notice_record_is_cut_at_its_cap_and_keeps_every_order() -> None:
    ledger = _ledger()
    same_partition = [o for o in (f"o-{n}" for n in range(20_000))
                      if partition_of(o.encode(), 6) == 0][: NOTICED_PER_RECORD + 5]  # fmt: skip
    out = ledger.notices([(o, "expiry") for o in same_partition], 7)
    opened = [ledger.open(o.record.key, o.record.value) for o in out]
    assert [len(n.order_ids) for n in opened] == [NOTICED_PER_RECORD, 5]  # type: ignore[union-attr]


def test_a_notice_of_one_order_as_filed_before_still_opens() -> None:
    raw = SEALER.seal("zf801-matcher/order_ledger", b"o-1", b'{"noticed": "overdue"}', 1)
    assert _ledger().open(b"o-1", raw) == Noticed(("o-1",), "overdue")


def test_a_notice_naming_an_order_of_another_partition_is_refused() -> None:
    ledger = _ledger()
    here = partition_of(b"o-1", 6)
    elsewhere = next(o for o in (f"x-{n}" for n in range(100))
                     if partition_of(o.encode(), 6) != here)  # fmt: skip
    for orders in (["o-1", elsewhere], [elsewhere, "o-1"], [], "o-1", ["o-1", 5]):
        payload = json.dumps({"noticed": "overdue", "orders": orders}).encode()
        raw = SEALER.seal("zf801-matcher/order_ledger", b"o-1", payload, 1)
        with pytest.raises(ValueError):
            ledger.open(b"o-1", raw)
