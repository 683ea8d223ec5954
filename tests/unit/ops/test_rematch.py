"""The rematch of ``zf801 replay --rematch`` (ops.rematch): the bus's own rules run again
over orders, releases and sightings in arrival order, compared with the hits and blocks
delivered. Verified events are stand-ins with the fields the rules read."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from typing import Any

import pytest

from consumers.matcher import blocked_event_id, hit_id
from consumers.watchlist import OrderKind
from ops.rematch import Rematch, RematchTopics
from ops.rematch_result import (
    MISSING_BLOCK,
    MISSING_HIT,
    OUT_OF_RANGE,
    RACE,
    UNACCOUNTED_BLOCK,
    UNJUSTIFIED_HIT,
    Position,
)
from ops.replay_check import ReplayTally, report_document
from ops.replay_rematch import (
    REMATCH_TOPIC_IDS,
    RematchInputError,
    check_rematch_readers,
    rematch_topic_ids,
)
from schemas.event_types import BLOCKED, HIT, RELEASE
from schemas.headers import CE_ALTKEYS
from schemas.matchkey import MatchKeyer
from sign.verify_stage import ConsumedRecord
from tests.builders import Records

KEYER = MatchKeyer(b"test-secret-0123456789")
LOCATE = "cn.zf801.orders.v1.LocateDebtorOrder"
VEHICLE = "cn.zf801.orders.v1.VehicleSearchOrder"
HOTEL = "cn.zf801.sightings.v1.HotelCheckIn"
ENCOUNTER = "cn.zf801.sightings.v1.VehicleEncounter"
COURT, OTHER_COURT, POLICE, TRAFFIC = "BJ01", "SH01", "110105000000", "110000110000"
TOPICS = RematchTopics(
    orders={"orders.locate": OrderKind.LOCATE_DEBTOR, "orders.vehicle": OrderKind.VEHICLE_SEARCH},
    sightings=frozenset({"sightings.person", "sightings.vehicle"}),
    vehicle_sightings="sightings.vehicle",
    alerts={f"alerts.{COURT}": COURT},
    blocks="blocks",
)
T0 = 1_790_000_000_000  # arrival times, epoch milliseconds


class _Log:
    """Verified events on their topics, each at the next offset of its topic."""

    def __init__(self, late_window_s: float = 0.0, lookback_s: float = 0.0) -> None:
        self.rematch = Rematch(KEYER, TOPICS, late_window_s=late_window_s, lookback_s=lookback_s)
        self._offsets: dict[str, int] = {}

    def add(
        self, topic: str, event_type: str, payload: dict[str, Any], *, at_ms: int,
        key: bytes = b"", signer: str = COURT, role: str = "court",
        headers: tuple[tuple[str, bytes], ...] = (), event_id: str = "e",
    ) -> Position:  # fmt: skip
        offset = self._offsets.get(topic, 0)
        self._offsets[topic] = offset + 1
        record = ConsumedRecord(topic, 0, offset, at_ms, key, b"", headers)
        self.rematch.add(SimpleNamespace(  # type: ignore[arg-type]
            record=record, envelope=SimpleNamespace(type=event_type), payload=payload,
            signature=SimpleNamespace(agency_code=signer, role=role, event_id=event_id,
                                      event_time=dt.datetime.now(dt.UTC)),
        ))  # fmt: skip
        return Position(topic, 0, offset)

    def hit(
        self, order: dict[str, Any], sighting: dict[str, Any], where: Position, *, at_ms: int,
        court: str = COURT,
    ) -> Position:  # fmt: skip
        payload = {
            "hit_id": hit_id(order["order_id"], sighting["sighting_id"]),
            "order_id": order["order_id"],
            "sighting": {"sighting_id": sighting["sighting_id"], "topic": where.topic,
                         "partition": where.partition, "offset": where.offset},
        }  # fmt: skip
        return self.add(f"alerts.{court}", HIT, payload, at_ms=at_ms, signer="BUS-MATCHER",
                        role="bus", event_id=payload["hit_id"])  # fmt: skip


@pytest.fixture
def log() -> _Log:
    return _Log()


@pytest.fixture
def records() -> Records:
    return Records(11)


def _person_case(log: _Log, records: Records, *, order_ms: int, sighting_ms: int) -> tuple:
    person = records.id_number()
    order = records.person_order(COURT, "（2026）京01执7号", person)
    log.add("orders.locate", LOCATE, order, at_ms=order_ms, key=KEYER.person(person))
    sighting = records.hotel_check_in(POLICE, person)
    where = log.add("sightings.person", HOTEL, sighting, at_ms=sighting_ms,
                    key=KEYER.person(person), signer=POLICE, role="public-security")  # fmt: skip
    return order, sighting, where


def test_an_order_then_a_sighting_of_its_subject_expects_the_hit_that_was_delivered(log, records):
    order, sighting, where = _person_case(log, records, order_ms=T0, sighting_ms=T0 + 10_000)
    log.hit(order, sighting, where, at_ms=T0 + 10_050)
    result = log.rematch.result()
    assert (result.orders, result.sightings) == (1, 1)
    assert (result.expected_hits, result.delivered_hits) == (1, 1)
    assert result.differences == []


def test_a_released_order_expects_no_hit(log, records):
    person = records.id_number()
    order = records.person_order(COURT, "（2026）京01执8号", person)
    key = KEYER.person(person)
    log.add("orders.locate", LOCATE, order, at_ms=T0, key=key)
    log.add("orders.locate", RELEASE, records.release(order, "LOCATE_DEBTOR"),
            at_ms=T0 + 10_000, key=key)  # fmt: skip
    log.add("sightings.person", HOTEL, records.hotel_check_in(POLICE, person),
            at_ms=T0 + 20_000, key=key, signer=POLICE)  # fmt: skip
    result = log.rematch.result()
    assert (result.orders, result.releases, result.sightings) == (1, 1, 1)
    assert result.expected_hits == 0 and result.differences == []


def test_a_hit_delivered_with_no_order_is_unjustified_at_the_alerts_position(log, records):
    person = records.id_number()
    sighting = records.hotel_check_in(POLICE, person)
    where = log.add("sightings.person", HOTEL, sighting, at_ms=T0, key=KEYER.person(person),
                    signer=POLICE)  # fmt: skip
    forged_order = records.person_order(COURT, "（2026）京01执9号", person)
    alert = log.hit(forged_order, sighting, where, at_ms=T0 + 100)
    result = log.rematch.result()
    assert [(d.code, d.position, d.order_id) for d in result.breaks] == [
        (UNJUSTIFIED_HIT, alert, forged_order["order_id"])
    ]


def test_an_expected_hit_never_delivered_is_missing_at_the_sightings_position(log, records):
    order, sighting, where = _person_case(log, records, order_ms=T0, sighting_ms=T0 + 10_000)
    result = log.rematch.result()
    assert [(d.code, d.position, d.order_id, d.sighting_id) for d in result.breaks] == [
        (MISSING_HIT, where, order["order_id"], sighting["sighting_id"])
    ]


def test_a_sighting_arriving_just_after_its_order_is_a_race_note_not_a_break(log, records):
    _person_case(log, records, order_ms=T0, sighting_ms=T0 + 500)  # no hit delivered
    result = log.rematch.result()
    assert result.breaks == [] and [d.code for d in result.notes] == [RACE]


def test_a_hit_of_an_order_arriving_just_after_the_sighting_is_a_race_note(log, records):
    order, sighting, where = _person_case(log, records, order_ms=T0 + 800, sighting_ms=T0)
    log.hit(order, sighting, where, at_ms=T0 + 900)  # the worker saw the order first
    result = log.rematch.result()
    assert result.expected_hits == 0 and result.breaks == []
    assert [d.code for d in result.notes] == [RACE]


def test_a_hit_of_an_order_well_after_the_sighting_is_unjustified(log, records):
    order, sighting, where = _person_case(log, records, order_ms=T0 + 10_000, sighting_ms=T0)
    log.hit(order, sighting, where, at_ms=T0 + 10_100)
    assert [d.code for d in log.rematch.result().breaks] == [UNJUSTIFIED_HIT]


def _vehicle_case(log: _Log, records: Records, kind: str) -> tuple:
    """A vehicle under a search order, seen by its VIN under another plate."""
    plate, vin = records.plate(), records.vin()
    order = records.vehicle_order(COURT, "（2026）京01执10号", plate, vin)
    log.add("orders.vehicle", VEHICLE, order, at_ms=T0, key=KEYER.vehicle(plate, vin)[0])
    other_plate = records.plate("沪")
    plate_key, vin_key = KEYER.vehicle(other_plate, vin)
    sighting = records.vehicle_encounter(TRAFFIC, other_plate, vin, kind)
    where = log.add("sightings.vehicle", ENCOUNTER, sighting, at_ms=T0 + 10_000, key=plate_key,
                    signer=TRAFFIC, headers=((CE_ALTKEYS, vin_key.hex().encode()),))  # fmt: skip
    return order, sighting, where


def test_a_vin_seen_under_another_plate_expects_the_hit_and_its_transfer_block(log, records):
    order, sighting, where = _vehicle_case(log, records, "TRANSFER_REGISTRATION")
    log.hit(order, sighting, where, at_ms=T0 + 10_050)
    block = {"order_id": order["order_id"], "sighting_id": sighting["sighting_id"]}
    log.add("blocks", BLOCKED, block, at_ms=T0 + 10_050, signer="BUS-MATCHER", role="bus",
            event_id=blocked_event_id(order["order_id"], sighting["sighting_id"]))  # fmt: skip
    result = log.rematch.result()
    assert (result.expected_hits, result.expected_blocks, result.delivered_blocks) == (1, 1, 1)
    assert result.differences == []


def test_a_transfer_block_never_delivered_and_one_unexplained_are_breaks(log, records):
    order, sighting, where = _vehicle_case(log, records, "TRANSFER_REGISTRATION")
    log.hit(order, sighting, where, at_ms=T0 + 10_050)
    stray = {"order_id": "no-such-order", "sighting_id": sighting["sighting_id"]}
    log.add("blocks", BLOCKED, stray, at_ms=T0 + 10_060, signer="BUS-MATCHER", role="bus",
            event_id="stray")  # fmt: skip
    codes = sorted(d.code for d in log.rematch.result().breaks)
    assert codes == [MISSING_BLOCK, UNACCOUNTED_BLOCK]


def test_a_patrol_sighting_of_a_watched_vehicle_hits_without_a_block(log, records):
    order, sighting, where = _vehicle_case(log, records, "PATROL")
    log.hit(order, sighting, where, at_ms=T0 + 10_050)
    result = log.rematch.result()
    assert (result.expected_hits, result.expected_blocks) == (1, 0)
    assert result.differences == []


def test_hits_for_a_court_whose_alerts_were_not_read_are_unchecked_not_missing(log, records):
    person = records.id_number()
    order = records.person_order(OTHER_COURT, "（2026）沪01执1号", person)
    log.add("orders.locate", LOCATE, order, at_ms=T0, key=KEYER.person(person),
            signer=OTHER_COURT)  # fmt: skip
    log.add("sightings.person", HOTEL, records.hotel_check_in(POLICE, person),
            at_ms=T0 + 10_000, key=KEYER.person(person), signer=POLICE)  # fmt: skip
    result = log.rematch.result()
    assert (result.expected_hits, result.unchecked_hits, result.differences) == (0, 1, [])


def test_a_hit_of_a_sighting_outside_the_range_is_a_note_one_in_it_not(log, records):
    person = records.id_number()
    order = records.person_order(COURT, "（2026）京01执11号", person)
    sighting = records.hotel_check_in(POLICE, person)
    before = Position("sightings.person", 0, 3)
    log.hit(order, sighting, before, at_ms=T0)
    after = Position("sightings.person", 0, 20)
    log.hit(records.person_order(COURT, "（2026）京01执15号", person), sighting, after,
            at_ms=T0 + 1)  # fmt: skip
    inside = Position("sightings.person", 0, 12)  # in range, but no such sighting: forged
    forged = log.hit(order, records.hotel_check_in(POLICE, person), inside, at_ms=T0 + 2)
    result = log.rematch.result({("sightings.person", 0): (10, 20)}, bounded=True)
    assert [d.code for d in result.notes] == [OUT_OF_RANGE, OUT_OF_RANGE]
    assert [(d.code, d.position) for d in result.breaks] == [(UNJUSTIFIED_HIT, forged)]


def test_a_block_of_a_sighting_outside_a_bounded_range_is_a_note(log, records):
    block = {"order_id": "o1", "sighting_id": "s-before-the-range"}
    log.add("blocks", BLOCKED, block, at_ms=T0, signer="BUS-MATCHER", role="bus", event_id="b1")
    assert [d.code for d in log.rematch.result(bounded=True).notes] == [OUT_OF_RANGE]
    whole = _Log()
    whole.add("blocks", BLOCKED, block, at_ms=T0, signer="BUS-MATCHER", role="bus",
              event_id="b1")  # fmt: skip
    assert [d.code for d in whole.rematch.result().breaks] == [UNACCOUNTED_BLOCK]


def test_a_block_whose_sighting_retention_deleted_is_a_note_like_its_hit(log, records):
    """A replay of a whole topic whose first sightings were deleted: the hit of one of them
    is a note; its transfer block is one too, not a block that nothing explains."""
    person = records.id_number()
    order = records.person_order(COURT, "（2026）京01执16号", person)
    sighting = records.hotel_check_in(POLICE, person)
    log.hit(order, sighting, Position("sightings.person", 0, 3), at_ms=T0)
    block = {"order_id": order["order_id"], "sighting_id": sighting["sighting_id"]}
    log.add("blocks", BLOCKED, block, at_ms=T0, signer="BUS-MATCHER", role="bus", event_id="b2")
    result = log.rematch.result({("sightings.person", 0): (10, 20)})
    assert [d.code for d in result.notes] == [OUT_OF_RANGE, OUT_OF_RANGE]
    assert result.breaks == []


def test_a_sighting_whose_unit_is_not_its_signer_hits_nothing(log, records):
    person = records.id_number()
    order = records.person_order(COURT, "（2026）京01执12号", person)
    log.add("orders.locate", LOCATE, order, at_ms=T0, key=KEYER.person(person))
    log.add("sightings.person", HOTEL, records.hotel_check_in(POLICE, person),
            at_ms=T0 + 10_000, key=KEYER.person(person), signer=TRAFFIC)  # fmt: skip
    result = log.rematch.result()
    assert result.expected_hits == 0 and result.differences == []


def test_an_expired_order_hits_nothing_after_its_control_period(log, records):
    person = records.id_number()
    now = dt.datetime.fromtimestamp(T0 / 1000, dt.UTC)
    start, end = now - dt.timedelta(days=2), now + dt.timedelta(hours=1)
    order = records.person_order(COURT, "（2026）京01执13号", person, start=start, end=end)
    log.add("orders.locate", LOCATE, order, at_ms=T0, key=KEYER.person(person))
    sighting = records.hotel_check_in(POLICE, person, observed_at=now)  # observed in period
    log.add("sightings.person", HOTEL, sighting, at_ms=T0 + 2 * 3_600_000,
            key=KEYER.person(person), signer=POLICE)  # fmt: skip
    result = log.rematch.result()
    assert result.expected_hits == 0 and result.differences == []


# --- the report and the options --------------------------------------------------------------
def test_a_rematch_break_makes_the_report_unclean_and_a_note_does_not(log, records):
    _person_case(log, records, order_ms=T0, sighting_ms=T0 + 10_000)  # MISSING_HIT
    missing = log.rematch.result().document([COURT])
    race_log = _Log()
    _person_case(race_log, records, order_ms=T0, sighting_ms=T0 + 100)  # RACE
    raced = race_log.rematch.result().document([COURT])
    assert json.loads(json.dumps(missing)) == missing
    tally = ReplayTally()
    clean_at = dt.datetime.fromtimestamp(T0 / 1000, dt.UTC)
    reports = [
        report_document(
            reader="BUS-AUDIT",
            topic_ids=[],
            topics=[],
            start=None,
            end=None,
            verify=True,
            tally=tally,
            chains=[],
            started=clean_at,
            finished=clean_at,
            rematch=section,
        )
        for section in (missing, raced, None)
    ]
    assert [report["clean"] for report in reports] == [False, True, True]
    assert reports[0]["rematch"]["breaks"][0]["code"] == MISSING_HIT
    assert reports[1]["rematch"]["notes"][0]["code"] == RACE and "rematch" not in reports[2]


@pytest.mark.parametrize(
    ("rematch", "alerts", "blocks", "wanted"),
    [
        (False, ["BJ01"], None, "are for --rematch"),
        (False, [], TRAFFIC, "are for --rematch"),
        (True, [POLICE], None, f"--alerts-as {POLICE}: not a court"),
    ],
)
def test_rematch_readers_are_checked_before_anything_is_read(rematch, alerts, blocks, wanted):
    with pytest.raises(RematchInputError, match=wanted):
        check_rematch_readers(rematch, alerts, blocks)
    check_rematch_readers(True, [COURT, OTHER_COURT], TRAFFIC)


def test_the_rematch_adds_its_inputs_to_the_topics_asked_for():
    ids = rematch_topic_ids(["audit", "sightings-person"])
    assert ids[:2] == ("audit", "sightings-person")
    assert set(ids) == {"audit", *REMATCH_TOPIC_IDS} and len(ids) == len(set(ids))


def test_a_release_racing_the_sighting_makes_its_hit_a_race_note(log, records):
    person = records.id_number()
    order = records.person_order(COURT, "（2026）京01执14号", person)
    key = KEYER.person(person)
    log.add("orders.locate", LOCATE, order, at_ms=T0, key=key)
    log.add("orders.locate", RELEASE, records.release(order, "LOCATE_DEBTOR"),
            at_ms=T0 + 9_500, key=key)  # fmt: skip
    sighting = records.hotel_check_in(POLICE, person)
    where = log.add("sightings.person", HOTEL, sighting, at_ms=T0 + 10_000, key=key,
                    signer=POLICE)  # fmt: skip
    log.hit(order, sighting, where, at_ms=T0 + 10_100)  # the worker saw the sighting first
    result = log.rematch.result()
    assert result.expected_hits == 0 and result.breaks == []
    assert [(d.code, d.order_id) for d in result.notes] == [(RACE, order["order_id"])]


def test_with_a_late_window_a_late_sighting_is_expected_to_hit(records):
    """As the worker with ``late_window_s``: observed in the period, processed after its
    end, within the window."""
    log = _Log(late_window_s=3 * 3600.0)
    person = records.id_number()
    now = dt.datetime.fromtimestamp(T0 / 1000, dt.UTC)
    start, end = now - dt.timedelta(days=2), now + dt.timedelta(hours=1)
    order = records.person_order(COURT, "（2026）京01执14号", person, start=start, end=end)
    log.add("orders.locate", LOCATE, order, at_ms=T0, key=KEYER.person(person))
    sighting = records.hotel_check_in(POLICE, person, observed_at=now)
    log.add("sightings.person", HOTEL, sighting, at_ms=T0 + 2 * 3_600_000,
            key=KEYER.person(person), signer=POLICE)  # fmt: skip
    assert log.rematch.result().expected_hits == 1


def test_with_a_look_back_a_sighting_before_the_order_is_expected_to_hit(records):
    """As the worker's look-back: the order would have been active when the sighting
    arrived (an hour before it), within the window; none without a look-back."""
    for lookback_s, hits in ((3 * 3600.0, 1), (0.0, 0)):
        log = _Log(lookback_s=lookback_s)
        person = records.id_number()
        now = dt.datetime.fromtimestamp(T0 / 1000, dt.UTC)
        order = records.person_order(COURT, "（2026）京01执15号", person,
                                     start=now - dt.timedelta(days=2))  # fmt: skip
        sighting = records.hotel_check_in(POLICE, person, observed_at=now)
        log.add("sightings.person", HOTEL, sighting, at_ms=T0, key=KEYER.person(person),
                signer=POLICE)  # fmt: skip
        log.add("orders.locate", LOCATE, order, at_ms=T0 + 3_600_000, key=KEYER.person(person))
        assert log.rematch.result().expected_hits == hits
