"""Hit confirmation clocks: limits per kind and province, who hears of an unconfirmed hit,
escalations once per level (also after a restart), and who may confirm."""

from __future__ import annotations

import datetime as dt
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from consumers.deadlines import Deadlines
from consumers.hit_clocks import COURT, POLICE, HitClock, HitPolicy, escalation_mark, higher_court
from consumers.order_book import OrderBook
from consumers.outgoing import OutgoingSigner
from consumers.tracking import OrderTrack
from consumers.watchlist import OrderKind
from schemas.agencies import load_agencies
from schemas.codec import default_codec
from schemas.envelope import to_micros
from schemas.event_types import ENCOUNTER_CONFIRMATION, HIT_CONFIRMATION
from schemas.matchkey import MatchKeyer
from sign.keystore import KeyStore
from topics.catalog import default_catalog

NOW = dt.datetime(2026, 11, 27, 5, 0, tzinfo=dt.UTC)
S = 1_000_000
ORDER_ID, HIT_ID, UNIT = str(uuid.uuid4()), str(uuid.uuid4()), "110105000000"


def test_limits_default_by_kind_and_a_province_sets_its_own() -> None:
    policy = HitPolicy(load_agencies(), {"44/LOCATE_DEBTOR": 300, "VEHICLE_SEARCH": 1800})
    assert policy.limit_us(OrderKind.LOCATE_DEBTOR, "BJ01") == 600 * S  # urgent default
    assert policy.limit_us(OrderKind.EXIT_RESTRICTION, "GD03") == 600 * S
    assert policy.limit_us(OrderKind.LOCATE_DEBTOR, "GD03") == 300 * S  # Guangdong's rule
    assert policy.limit_us(OrderKind.VEHICLE_SEARCH, "SH01") == 1800 * S


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"DRONE": 60}, "key 'DRONE': must be KIND or PROVINCE/KIND"),
        ({"99/LOCATE_DEBTOR": 60}, "key '99/LOCATE_DEBTOR'"),
        ({"LOCATE_DEBTOR": 0}, "'LOCATE_DEBTOR': 0 must be > 0"),
    ],
)
def test_a_bad_limit_is_refused_naming_the_key(limits: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HitPolicy(load_agencies(), limits)


def test_the_higher_court_follows_the_court_codes_up_to_the_spc() -> None:
    agencies = load_agencies()
    assert [higher_court(c, agencies) for c in ("BJ0105", "BJ01", "BJ", "GD0304", "SPC")] == [
        "BJ01", "BJ", "SPC", "GD03", None,
    ]  # fmt: skip
    policy = HitPolicy(agencies, {})
    assert policy.addressees("BJ0105", 1) == ["BJ0105", "BJ01"]
    assert policy.addressees("BJ0105", 2) == ["SPC-COMMAND"]


def _track(clock: HitClock) -> OrderTrack:
    """An open order with one hit clock, as read back from the tracking table."""
    track = OrderTrack(OrderKind.LOCATE_DEBTOR, "BJ01", 0, 0, (b"k" * 32,), status="DEPLOYED",
                       end_us=to_micros(NOW) + 10**12, clocks=(clock,))  # fmt: skip
    return OrderTrack.from_bytes(track.to_bytes())


def test_an_unconfirmed_hit_escalates_to_the_courts_then_the_command_once_each(
    keystore: KeyStore,
) -> None:
    clock = HitClock(HIT_ID, UNIT, to_micros(NOW)).confirmed(COURT, to_micros(NOW) + S)
    tracking = {ORDER_ID: _track(clock)}
    policy = HitPolicy(load_agencies(), {"LOCATE_DEBTOR": 60})
    deadlines = Deadlines(OutgoingSigner(keystore.signer_for("BUS-MATCHER"), default_codec()),
                          default_catalog(), {}, tracking.get, hit_policy=policy)  # fmt: skip
    deadlines.rewatch(tracking.items())
    assert deadlines.hit_escalations(NOW + dt.timedelta(seconds=59)) == []
    first = deadlines.hit_escalations(NOW + dt.timedelta(seconds=61))
    assert [o.topic for o in first] == ["zf801.alerts.BJ01", "zf801.alerts.BJ"]
    record = default_codec().decode(first[1].record.value)[1]
    assert (record["addressed_to"], record["level"], record["awaiting"]) == ("BJ", 1, [POLICE])
    assert deadlines.hit_escalations(NOW + dt.timedelta(seconds=61)) == []
    assert deadlines.drain_noticed() == [(ORDER_ID, escalation_mark(HIT_ID, 1))]
    # a restart after the first level was recorded: only the second is still to come
    tracking[ORDER_ID] = tracking[ORDER_ID].with_notice(escalation_mark(HIT_ID, 1))
    restarted = Deadlines(OutgoingSigner(keystore.signer_for("BUS-MATCHER"), default_codec()),
                          default_catalog(), {}, tracking.get, hit_policy=policy)  # fmt: skip
    restarted.rewatch(tracking.items())
    second = restarted.hit_escalations(NOW + dt.timedelta(seconds=121))
    assert [o.topic for o in second] == ["zf801.bus.escalations"]
    assert restarted.hit_escalations(NOW + dt.timedelta(hours=1)) == []


def test_a_hit_confirmed_by_both_sides_never_escalates(keystore: KeyStore) -> None:
    clock = HitClock(HIT_ID, UNIT, to_micros(NOW)).confirmed(COURT, 1).confirmed(POLICE, 2)
    tracking = {ORDER_ID: _track(clock)}
    deadlines = Deadlines(OutgoingSigner(keystore.signer_for("BUS-MATCHER"), default_codec()),
                          default_catalog(), {}, tracking.get,
                          hit_policy=HitPolicy(load_agencies(), {}))  # fmt: skip
    deadlines.watch_hit(ORDER_ID, HIT_ID)
    assert deadlines.hit_escalations(NOW + dt.timedelta(days=1)) == []


class _Table(dict[bytes, bytes]):
    def payload(self, key: bytes) -> bytes | None:
        return self.get(key)

    def put(self, key: bytes, payload: bytes, now_us: int) -> None:
        self[key] = payload


def _confirmation(kind: str, signer: str, **record: Any) -> Any:
    return SimpleNamespace(
        envelope=SimpleNamespace(type=kind), signature=SimpleNamespace(agency_code=signer),
        payload={"order_id": ORDER_ID, "hit_id": HIT_ID, **record},
    )  # fmt: skip


def test_only_the_orders_court_and_the_reporting_unit_confirm() -> None:
    refused: list[tuple[str, str]] = []
    watched: list[str] = []
    table = _Table()
    book = OrderBook(table, MatchKeyer(),
                     SimpleNamespace(watch_hit=lambda o, h: watched.append(h)),  # type: ignore[arg-type]
                     lambda v, reason, detail: refused.append((reason, detail)),
                     ack_timeout_s=60)  # fmt: skip
    track = _track(HitClock("other", UNIT, 0))
    book.set_track(ORDER_ID, OrderTrack.from_bytes(track.to_bytes()).with_clock(
        HitClock(HIT_ID, UNIT, to_micros(NOW))))  # fmt: skip
    book.hit_matched(ORDER_ID, HitClock(HIT_ID, UNIT, 0))  # started already: nothing changes
    assert watched == []
    assert not book.confirm_hit(_confirmation(HIT_CONFIRMATION, "SH01"))  # type: ignore[arg-type]
    assert not book.confirm_hit(_confirmation(ENCOUNTER_CONFIRMATION, "110000000000"))  # type: ignore[arg-type]
    assert [reason for reason, _ in refused] == ["AGENCY_MISMATCH"] * 2
    assert book.confirm_hit(_confirmation(HIT_CONFIRMATION, "BJ01"))  # type: ignore[arg-type]
    assert book.confirm_hit(_confirmation(ENCOUNTER_CONFIRMATION, UNIT))  # type: ignore[arg-type]
    clock = book.track(ORDER_ID).clock(HIT_ID)  # type: ignore[union-attr]
    assert clock is not None and clock.awaiting == []
    assert not book.confirm_hit(_confirmation(HIT_CONFIRMATION, "BJ01", order_id=None))  # type: ignore[arg-type]
    assert refused[-1] == ("UNKNOWN_HIT", "order_id: required (the hit's order_id) [rule required]")
