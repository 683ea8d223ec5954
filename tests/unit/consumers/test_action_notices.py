"""Action notices at the point of sighting, concealed orders and late sightings, on the
matcher with real keys and signatures (no broker)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import pytest

from consumers.action_notices import ActionNotices, action_for
from consumers.matcher import Matcher
from consumers.outgoing import Outgoing, OutgoingSigner
from consumers.runtime import Runtime
from consumers.watchlist import ActiveOrder, OrderKind, WatchEntry, derive_id
from producers.publisher import Publisher
from producers.routes import outgoing_event
from schemas.agencies import AgencyList, load_agencies
from schemas.codec import default_codec
from schemas.envelope import KafkaRecord, to_micros
from schemas.matchkey import MatchKeyer
from schemas.settings import Settings
from sign.keystore import KeyStore
from sign.verify_stage import ConsumedRecord, MemoryAuditSink, MemoryDeadLetterSink
from tests.builders import Records

UNIT = "110000000000"  # Beijing public security: province 11's rule names it
PERSON = "11010519491231002X"
HOTEL = "cn.zf801.sightings.v1.HotelCheckIn"
_DOCUMENT = ("DETENTION_DECISION", "（2026）京01执1号之一", "ab" * 32, "拘留决定书")


class _Fixture:
    def __init__(self, keystore: KeyStore, agencies: AgencyList | None = None) -> None:
        self.settings = Settings(home=keystore.directory.parent)
        runtime = Runtime.from_keystore(
            "BUS-MATCHER", MemoryDeadLetterSink(), MemoryAuditSink(), settings=self.settings,
            keystore=keystore,
        )  # fmt: skip
        self.runtime, self.keystore, self.keyer = runtime, keystore, MatchKeyer()
        self.watch: dict[bytes, WatchEntry] = {}
        notices = ActionNotices(
            runtime.catalog, agencies or load_agencies(),
            OutgoingSigner(runtime.signer, default_codec()),
        )  # fmt: skip
        self.matcher = Matcher(
            self.watch.get, runtime.verify_stage(), runtime.refuse, runtime.signer,
            runtime.catalog, keyer=self.keyer, action_notices=notices,
            late_window_us=3600 * 10**6, clock_start=self._clock_start,
        )  # fmt: skip
        self.clocks: list[tuple[str, str, str]] = []

    def _clock_start(self, order: ActiveOrder, hit_id: str, unit: str, now: dt.datetime) -> Any:
        self.clocks.append((order.order_id, hit_id, unit))
        return Outgoing("ledger", KafkaRecord(b"k", b"v", ()))

    def order(self, *, concealed: bool = False, ended_s_ago: float | None = None) -> ActiveOrder:
        now = to_micros(dt.datetime.now(dt.UTC))
        end = now + 10**9 if ended_s_ago is None else now - int(ended_s_ago * 10**6)
        order = ActiveOrder(
            str(uuid.uuid4()), OrderKind.LOCATE_DEBTOR, "BJ01", "（2026）京01执1号", "王法官",
            "13900139000", "发现后立即控制并通知承办人", end - 10**10, end, now,
            concealed=concealed, documents=(_DOCUMENT,),
        )  # fmt: skip
        key = self.keyer.person(PERSON)
        self.watch[key] = self.watch.get(key, WatchEntry.empty()).with_order(order)
        return order

    def sighting(self, observed_at: dt.datetime | None = None) -> ConsumedRecord:
        record = Records.hotel_check_in(UNIT, PERSON)
        if observed_at is not None:
            record["observed_at"] = observed_at
        publisher = Publisher(self.keystore.signer_for(UNIT), catalog=self.runtime.catalog,
                              settings=self.settings)  # fmt: skip
        topic, signed = publisher.prepare(outgoing_event(HOTEL, record))
        return ConsumedRecord(topic, 0, 1, int(dt.datetime.now(dt.UTC).timestamp() * 1000),
                              signed.key, signed.value, tuple(signed.headers))  # fmt: skip


@pytest.fixture
def fx(keystore: KeyStore) -> _Fixture:
    return _Fixture(keystore)


def _decoded(value: bytes) -> dict[str, Any]:
    return default_codec().decode(value)[1]


def test_a_hit_tells_the_reporting_unit_what_to_do_on_its_own_side(fx: _Fixture) -> None:
    order = fx.order()
    result = fx.matcher.process([fx.sighting()])
    assert (result.hits, result.action_notices) == (1, 1)
    hit, notice = result.outgoing
    [clock] = result.after_commit
    assert clock.topic == "ledger"  # the hit's confirmation clock starts once it is sent
    assert notice.topic == f"zf801.police.action-notices.{UNIT}"  # the unit's own topic
    assert notice.record.key == UNIT.encode()
    assert notice.record.header("ce_source") == b"zf801:agency/BUS-MATCHER"
    record = _decoded(notice.record.value)
    hit_id = _decoded(hit.record.value)["hit_id"]
    assert str(record["hit_id"]) == str(hit_id)
    assert str(record["notice_id"]) == derive_id("action", hit_id)
    assert (record["action"], record["court_code"], str(record["order_id"])) == (
        "DETAIN", "BJ01", order.order_id,
    )  # fmt: skip
    assert record["handler"] == {"name": "王法官", "phone": "13900139000"}
    assert [(d["kind"], d["document_id"], d["sha256"].hex(), d["title"])
            for d in record["documents"]] == [_DOCUMENT]  # fmt: skip


def test_each_police_unit_of_the_list_has_its_own_notice_topic(fx: _Fixture) -> None:
    notices = ActionNotices(fx.runtime.catalog, load_agencies(), OutgoingSigner(
        fx.runtime.signer, default_codec()))  # fmt: skip
    units = [unit.code for unit in load_agencies().police_units()]
    assert notices.topics() == tuple(sorted(f"zf801.police.action-notices.{u}" for u in units))


def test_a_unit_outside_the_agency_list_gets_no_topic_and_the_court_still_hears(
    keystore: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    listed = load_agencies()
    without = AgencyList(
        {code: agency for code, agency in listed.agencies.items() if code != UNIT}, listed.rules
    )
    fx = _Fixture(keystore, without)
    fx.order()
    result = fx.matcher.process([fx.sighting()])
    assert (result.hits, result.action_notices, result.unaddressed_notices) == (1, 0, 1)
    [hit] = result.outgoing
    assert hit.topic == "zf801.alerts.BJ01"
    assert not any("action-notices" in o.topic for o in result.outgoing)
    assert f"reporting unit {UNIT!r} is not a police unit of the agency list" in caplog.text


def test_a_concealed_order_tells_the_unit_only_to_contact_the_court(fx: _Fixture) -> None:
    order = fx.order(concealed=True)
    result = fx.matcher.process([fx.sighting()])
    notice = _decoded(result.outgoing[1].record.value)
    assert notice["action"] == "CONTACT_COURT" and notice["concealed"] is True
    assert notice["court_code"] == "BJ01"
    for field in ("order_id", "case_number", "handler", "instructions"):
        assert notice[field] is None, field
    assert notice["documents"] == []
    raw = result.outgoing[1].record
    for secret in (order.order_id, order.case_number, order.handler_name, order.handler_phone,
                   order.action_required, _DOCUMENT[1]):  # fmt: skip
        assert secret.encode() not in raw.value, secret
        assert all(secret.encode() not in value for _, value in raw.headers), secret
    hit = _decoded(result.outgoing[0].record.value)  # the court still hears everything
    assert str(hit["order_id"]) == order.order_id and hit["late"] is False


def test_a_late_sighting_reaches_the_court_flagged_late_with_no_action_notice(
    fx: _Fixture,
) -> None:
    order = fx.order(ended_s_ago=60)
    observed = dt.datetime.fromtimestamp((order.end_us - 10**8) / 10**6, dt.UTC)
    result = fx.matcher.process([fx.sighting(observed_at=observed)])
    assert (result.hits, result.late, result.action_notices) == (1, 1, 0)
    [hit] = result.outgoing
    assert hit.topic == "zf801.alerts.BJ01" and _decoded(hit.record.value)["late"] is True


def test_a_sighting_observed_after_the_period_is_no_hit_at_all(fx: _Fixture) -> None:
    fx.order(ended_s_ago=60)
    result = fx.matcher.process([fx.sighting()])
    assert (result.hits, result.outgoing) == (0, [])


def test_a_sighting_processed_after_the_late_window_is_no_hit(fx: _Fixture) -> None:
    order = fx.order(ended_s_ago=3601)  # the window is an hour
    observed = dt.datetime.fromtimestamp((order.end_us - 10**8) / 10**6, dt.UTC)
    result = fx.matcher.process([fx.sighting(observed_at=observed)])
    assert (result.hits, result.outgoing) == (0, [])


@pytest.mark.parametrize(
    ("kind", "sighting", "impound", "action"),
    [
        (OrderKind.LOCATE_DEBTOR, {}, False, "DETAIN"),
        (OrderKind.VEHICLE_SEARCH, {}, True, "SEIZE_VEHICLE"),
        (OrderKind.VEHICLE_SEARCH, {}, False, "REPORT_ONLY"),
        (OrderKind.EXIT_RESTRICTION, {"direction": "OUT"}, False, "STOP_DEPARTURE"),
        (OrderKind.EXIT_RESTRICTION, {"direction": "IN"}, False, "REPORT_ONLY"),
    ],
)
def test_the_action_follows_the_order_and_the_sighting(
    kind: OrderKind, sighting: dict[str, Any], impound: bool, action: str
) -> None:
    order = ActiveOrder("o", kind, "BJ01", "c", "h", "p", "a", 0, 1, 0, impound_on_sight=impound)
    kind_of_sighting = "cn.zf801.sightings.v1.BorderCrossing" if sighting else HOTEL
    assert action_for(order, kind_of_sighting, sighting) == action
    concealed = dataclasses.replace(order, concealed=True)
    assert action_for(concealed, kind_of_sighting, sighting) == "CONTACT_COURT"


def test_the_order_details_survive_the_watchlist_encoding() -> None:
    order = ActiveOrder("o", OrderKind.VEHICLE_SEARCH, "BJ01", "c", "h", "p", "a", 0, 1, 0,
                        concealed=True, documents=(_DOCUMENT,), impound_on_sight=True)  # fmt: skip
    assert ActiveOrder.from_json(order.to_json()) == order
    old = order.to_json()[:12]  # an entry written before these fields existed
    assert ActiveOrder.from_json(old) == dataclasses.replace(
        order, concealed=False, documents=(), impound_on_sight=False
    )


def test_a_look_back_hits_as_if_the_order_had_existed_when_the_sighting_arrived(
    fx: _Fixture,
) -> None:
    """Retroactive hits: the same id as a live hit, flagged retroactive, no action notice;
    none for an order that was not active when the sighting arrived, or of a kind the
    sighting cannot hit."""
    order = fx.order()
    del fx.watch[fx.keyer.person(PERSON)]  # a new order: the sighting came before it
    consumed = fx.sighting()
    verified = fx.runtime.verify_stage().check(
        consumed.topic, consumed.partition, consumed.offset, consumed.timestamp,
        consumed.key, consumed.value, list(consumed.headers),
    )  # fmt: skip
    assert verified is not None
    later = dataclasses.replace(order, order_id=str(uuid.uuid4()), start_us=order.issued_at_us
                                + 10**9)  # fmt: skip
    border = dataclasses.replace(order, order_id=str(uuid.uuid4()),
                                 kind=OrderKind.EXIT_RESTRICTION)  # fmt: skip
    hits = fx.matcher.retroactive_hits(verified, [consumed.key], [later, order, border])
    assert [h.topic for h in hits] == ["zf801.alerts.BJ01"]
    record = _decoded(hits[0].record.value)
    assert str(record["order_id"]) == order.order_id
    assert record["retroactive"] is True and record["late"] is False
    assert str(record["hit_id"]) == derive_id(order.order_id, record["sighting"]["sighting_id"])
