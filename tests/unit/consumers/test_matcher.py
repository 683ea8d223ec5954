"""The matcher on signed sightings (real keys and signatures, in-memory sinks, no broker)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from dataclasses import replace
from typing import Any

import pytest
from kafka.partitioner.default import murmur2

from consumers.matcher import Matcher
from consumers.runtime import Runtime
from consumers.watchlist import ActiveOrder, OrderKind, WatchEntry, derive_id
from producers.publisher import Publisher
from producers.routes import outgoing_event
from schemas.codec import default_codec
from schemas.envelope import to_micros
from schemas.identifiers import vin_check_digit
from schemas.matchkey import MatchKeyer
from schemas.settings import Settings
from sign.keystore import KeyStore
from sign.verify_stage import (
    ConsumedRecord,
    MemoryAuditSink,
    MemoryDeadLetterSink,
    VerifyStage,
)
from tests.builders import Records
from topics.partitioning import partition_of

POLICE = "110000000000"
TRAFFIC = "110000110000"
PERSON = "11010519491231002X"
OTHER = "110105196001010017"
PLATE, VIN = "京A12345", "LSVAU218XN2183294"


Consumed = ConsumedRecord  # a consumed record, as the verify stage takes it


class Fixture:
    def __init__(self, keystore: KeyStore) -> None:
        self.settings = Settings(home=keystore.directory.parent)
        self.dead_letters, self.audit = MemoryDeadLetterSink(), MemoryAuditSink()
        self.runtime = Runtime.from_keystore(
            "BUS-MATCHER", self.dead_letters, self.audit, settings=self.settings,
            keystore=keystore,
        )  # fmt: skip
        self.keystore = keystore
        self.keyer = MatchKeyer()
        self.watch: dict[bytes, WatchEntry] = {}
        self.stage = self.runtime.verify_stage()
        self.matcher = Matcher(
            self.watch.get, self.stage, self.runtime.refuse, self.runtime.signer,
            self.runtime.catalog, keyer=self.keyer,
        )  # fmt: skip
        self.offset = 0

    def order(self, key: bytes, kind: OrderKind, court: str = "BJ01") -> ActiveOrder:
        now = to_micros(dt.datetime.now(dt.UTC))
        order = ActiveOrder(str(uuid.uuid4()), kind, court, "（2026）京01执1号", "王法官",
                            "13900139000", "通知承办人", now - 10**9, now + 10**9, now,
                            "（2026）京01执1号之一")  # fmt: skip
        self.watch[key] = self.watch.get(key, WatchEntry.empty()).with_order(order)
        return order

    def consumed(self, agency: str, schema: str, record: dict[str, Any]) -> Consumed:
        publisher = Publisher(self.keystore.signer_for(agency), catalog=self.runtime.catalog,
                              settings=self.settings)  # fmt: skip
        topic, signed = publisher.prepare(outgoing_event(schema, record))
        self.offset += 1
        return Consumed(topic, 0, self.offset, int(dt.datetime.now(dt.UTC).timestamp() * 1000),
                        signed.key, signed.value, tuple(signed.headers))  # fmt: skip


@pytest.fixture
def fx(keystore: KeyStore) -> Fixture:
    return Fixture(keystore)


_check_in = Records.hotel_check_in


def _encounter(kind: str, plate: str = PLATE, vin: str | None = VIN) -> dict[str, Any]:
    return Records.vehicle_encounter(TRAFFIC, plate, vin, kind)


HOTEL = "cn.zf801.sightings.v1.HotelCheckIn"
VEHICLE = "cn.zf801.sightings.v1.VehicleEncounter"


def test_a_miss_costs_no_verification(fx: Fixture) -> None:
    fx.order(fx.keyer.person(OTHER), OrderKind.LOCATE_DEBTOR)
    result = fx.matcher.process([fx.consumed(POLICE, HOTEL, _check_in(POLICE, PERSON))])
    assert (result.seen, result.candidates, result.hits, result.outgoing) == (1, 0, 0, [])
    assert fx.stage.accepted == 0


def test_a_subject_whose_orders_the_type_cannot_hit_is_not_verified(fx: Fixture) -> None:
    fx.order(fx.keyer.person(PERSON), OrderKind.EXIT_RESTRICTION)  # hits only at the border
    result = fx.matcher.process([fx.consumed(POLICE, HOTEL, _check_in(POLICE, PERSON))])
    assert (result.candidates, result.hits) == (0, 0)
    assert fx.stage.accepted == 0


def test_a_hit_is_signed_addressed_to_the_issuing_court_and_derived_from_its_inputs(
    fx: Fixture,
) -> None:
    order = fx.order(fx.keyer.person(PERSON), OrderKind.LOCATE_DEBTOR)
    sighting = _check_in(POLICE, PERSON)
    consumed = fx.consumed(POLICE, HOTEL, sighting)
    result = fx.matcher.process([consumed])
    assert result.hits == 1
    [out] = result.outgoing
    assert out.topic == "zf801.alerts.BJ01"
    assert out.record.key == order.order_id.encode()
    assert out.record.header("ce_id") == derive_id(order.order_id, sighting["sighting_id"]).encode()
    assert out.record.header("ce_source") == b"zf801:agency/BUS-MATCHER"
    _, hit = default_codec().decode(out.record.value)
    assert str(hit["order_id"]) == order.order_id
    assert hit["sighting"]["offset"] == consumed.offset
    assert hit["summary"]["reporting_unit_code"] == POLICE
    # The same sighting redelivered yields the same hit id: never a second alert.
    again = fx.matcher.process([consumed]).outgoing[0]
    assert again.record.header("ce_id") == out.record.header("ce_id")


def test_a_transfer_attempt_on_a_seized_vehicle_is_blocked_too(fx: Fixture) -> None:
    order = fx.order(fx.keyer.plate(PLATE), OrderKind.VEHICLE_SEARCH)
    result = fx.matcher.process(
        [fx.consumed(TRAFFIC, VEHICLE, _encounter("TRANSFER_REGISTRATION"))]
    )
    assert (result.hits, result.blocked) == (1, 1)
    topics = [item.topic for item in result.outgoing]
    assert topics == ["zf801.alerts.BJ01", "zf801.police.vehicle-blocks"]
    _, blocked = default_codec().decode(result.outgoing[1].record.value)
    assert (str(blocked["order_id"]), blocked["attempted_operation"]) == (
        order.order_id, "TRANSFER_REGISTRATION")  # fmt: skip
    patrol = fx.matcher.process([fx.consumed(TRAFFIC, VEHICLE, _encounter("PATROL"))])
    assert (patrol.hits, patrol.blocked) == (1, 0)


@pytest.mark.parametrize("where", ["value", "key", "signature"])
def test_a_tampered_candidate_is_dead_lettered_and_never_matched(fx: Fixture, where: str) -> None:
    fx.order(fx.keyer.person(PERSON), OrderKind.LOCATE_DEBTOR)
    consumed = fx.consumed(POLICE, HOTEL, _check_in(POLICE, PERSON))
    if where == "value":
        value = bytearray(consumed.value or b"")
        value[-1] ^= 1
        consumed = replace(consumed, value=bytes(value))
    elif where == "signature":
        headers = tuple(
            (n, v[:-4] + b"AAA=" if n == "ce_signature" else v) for n, v in consumed.headers
        )
        consumed = replace(consumed, headers=headers)
    else:
        fx.order(fx.keyer.person(OTHER), OrderKind.LOCATE_DEBTOR)
        consumed = replace(consumed, key=fx.keyer.person(OTHER))
    result = fx.matcher.process([consumed])
    assert (result.hits, result.rejected, result.outgoing) == (0, 1, [])
    assert len(fx.dead_letters.rejections) == 1
    assert len(fx.audit.rejections) == 1


def test_a_signed_sighting_keyed_by_another_subject_is_refused(fx: Fixture) -> None:
    """A unit that signs person B's check-in under person A's key gets no hit on A."""
    fx.order(fx.keyer.person(OTHER), OrderKind.LOCATE_DEBTOR)
    record = _check_in(POLICE, PERSON)
    publisher = Publisher(fx.keystore.signer_for(POLICE), catalog=fx.runtime.catalog,
                          settings=fx.settings)  # fmt: skip
    event = replace(outgoing_event(HOTEL, record), key=fx.keyer.person(OTHER))
    _, signed = publisher.prepare(event)
    consumed = Consumed("zf801.sightings.person", 0, 1, 0, signed.key, signed.value,
                        tuple(signed.headers))  # fmt: skip
    result = fx.matcher.process([consumed])
    assert (result.hits, result.rejected) == (0, 1)
    assert fx.dead_letters.rejections[0].reason == "KEY_MISMATCH"


def test_a_sighting_observed_days_after_it_was_reported_is_refused(fx: Fixture) -> None:
    """A genuine unit's sighting signed now but observed 10 days ahead (past the edge's
    rules, signed directly) was a live hit dated days ahead, with an action notice."""
    fx.order(fx.keyer.person(PERSON), OrderKind.LOCATE_DEBTOR)
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(days=10)
    record = _check_in(POLICE, PERSON, observed_at=ahead)
    signed = fx.keystore.signer_for(POLICE).signed_record(
        HOTEL, record, key=fx.keyer.person(PERSON)
    )
    consumed = Consumed("zf801.sightings.person", 0, 1, 0, signed.key, signed.value,
                        tuple(signed.headers))  # fmt: skip
    result = fx.matcher.process([consumed])
    assert (result.hits, result.rejected) == (0, 1)
    [refusal] = fx.dead_letters.rejections
    assert refusal.reason == "CLOCK_AHEAD" and "observed_at" in refusal.detail
    fresh = fx.matcher.process([fx.consumed(POLICE, HOTEL, _check_in(POLICE, PERSON))])
    assert fresh.hits == 1  # observed now: a hit as ever


@pytest.mark.parametrize(
    "headers", [(("ce_type", b"cn.zf801.sightings.v1.Nonsense"),), (), (("ce_id", b"junk"),)]
)
def test_what_is_no_sighting_on_a_watched_key_is_refused_and_dead_lettered(
    fx: Fixture, headers: tuple[tuple[str, bytes], ...]
) -> None:
    """Junk with no or an unknown ce_type under a watched subject's key was passed over
    silently, like a miss: now it is refused where it fails, and dead-lettered."""
    key = fx.keyer.person(PERSON)
    fx.order(key, OrderKind.LOCATE_DEBTOR)
    result = fx.matcher.process([Consumed("t", 0, 0, 0, key, b"\x00", headers)])
    assert (result.candidates, result.hits, result.rejected) == (0, 0, 1)
    assert len(fx.dead_letters.rejections) == 1


def test_a_sighting_of_a_kind_the_orders_do_not_look_for_is_a_plain_miss(fx: Fixture) -> None:
    """A hotel stay of a person under an exit restriction alone: no candidate, no refusal."""
    fx.order(fx.keyer.person(PERSON), OrderKind.EXIT_RESTRICTION)
    result = fx.matcher.process([fx.consumed(POLICE, HOTEL, _check_in(POLICE, PERSON))])
    assert (result.candidates, result.hits, result.rejected) == (0, 0, 0)
    assert fx.dead_letters.rejections == []


def test_a_vehicle_under_false_plates_is_found_by_its_vin(fx: Fixture) -> None:
    order = fx.order(fx.keyer.vin(VIN), OrderKind.VEHICLE_SEARCH)  # indexed under the VIN key
    fx.order(fx.keyer.plate(PLATE), OrderKind.VEHICLE_SEARCH)
    false_plate = _encounter("PATROL", plate="京B54321")
    result = fx.matcher.process([fx.consumed(TRAFFIC, VEHICLE, false_plate)])
    assert result.hits == 1
    _, hit = default_codec().decode(result.outgoing[0].record.value)
    assert str(hit["order_id"]) == order.order_id


def _other_vin() -> str:
    other_vin = VIN[:-1] + ("1" if VIN[-1] != "1" else "2")
    return other_vin[:8] + vin_check_digit(other_vin) + other_vin[9:]


def test_a_lookup_hint_rewritten_in_transit_breaks_the_signature(fx: Fixture) -> None:
    fx.order(fx.keyer.vin(VIN), OrderKind.VEHICLE_SEARCH)
    encounter = _encounter("PATROL", plate="京B54321", vin=_other_vin())
    consumed = fx.consumed(TRAFFIC, VEHICLE, encounter)
    hint = ("ce_altkeys", fx.keyer.vin(VIN).hex().encode())
    forged = replace(consumed, headers=(*(h for h in consumed.headers if h[0] != "ce_altkeys"),
                                        hint))  # fmt: skip
    result = fx.matcher.process([forged])
    assert (result.candidates, result.hits, result.rejected) == (1, 0, 1)
    assert fx.dead_letters.rejections[0].reason == "BAD_SIGNATURE"


def test_a_signed_lookup_hint_naming_another_vehicle_is_refused(fx: Fixture) -> None:
    """A unit that signs a hint (the VIN key of a watched vehicle) that is not the VIN of
    the vehicle its value names gets no hit."""
    fx.order(fx.keyer.vin(VIN), OrderKind.VEHICLE_SEARCH)
    encounter = _encounter("PATROL", plate="京B54321", vin=_other_vin())
    publisher = Publisher(fx.keystore.signer_for(TRAFFIC), catalog=fx.runtime.catalog,
                          settings=fx.settings)  # fmt: skip
    event = replace(outgoing_event(VEHICLE, encounter), alt_keys=(fx.keyer.vin(VIN),))
    topic, signed = publisher.prepare(event)
    consumed = Consumed(topic, 0, 1, 0, signed.key, signed.value, tuple(signed.headers))
    result = fx.matcher.process([consumed])
    assert (result.hits, result.rejected) == (0, 1)
    assert fx.dead_letters.rejections[0].reason == "KEY_MISMATCH"


def test_a_miss_without_hints_needs_no_header_scan(fx: Fixture) -> None:
    consumed = fx.consumed(TRAFFIC, VEHICLE, _encounter("PATROL", vin=None))
    assert all(name != "ce_altkeys" for name, _ in consumed.headers)
    assert fx.matcher.process([consumed]).candidates == 0


def _sampling(fx: Fixture, every: int) -> tuple[Matcher, VerifyStage]:
    """A matcher that verifies one miss in ``every`` with a stage of its own."""
    sample_stage = fx.runtime.verify_stage()
    matcher = Matcher(
        fx.watch.get, fx.stage, fx.runtime.refuse, fx.runtime.signer, fx.runtime.catalog,
        keyer=fx.keyer, verify_misses_every=every, sample_stage=sample_stage,
    )  # fmt: skip
    return matcher, sample_stage


def _forged(consumed: Consumed) -> Consumed:
    value = bytearray(consumed.value or b"")
    value[-1] ^= 1
    return replace(consumed, value=bytes(value))


def test_with_every_miss_sampled_a_forged_miss_is_dead_lettered_and_never_a_hit(
    fx: Fixture,
) -> None:
    fx.order(fx.keyer.person(OTHER), OrderKind.LOCATE_DEBTOR)
    matcher, sample_stage = _sampling(fx, 1)
    genuine = fx.consumed(POLICE, HOTEL, _check_in(POLICE, PERSON))
    forged = _forged(fx.consumed(POLICE, HOTEL, _check_in(POLICE, PERSON)))
    vehicle = fx.consumed(TRAFFIC, VEHICLE, _encounter("PATROL"))  # plate and VIN miss
    result = matcher.process([genuine, forged, vehicle])
    assert (result.seen, result.sampled, result.sample_rejected) == (3, 3, 1)
    assert (result.candidates, result.hits, result.rejected, result.outgoing) == (0, 0, 0, [])
    [dead] = fx.dead_letters.rejections
    assert (dead.reason, dead.record.offset, dead.record.value) == (
        "BAD_SIGNATURE", forged.offset, forged.value)  # fmt: skip
    assert [r.record.offset for r in fx.audit.rejections] == [forged.offset]
    assert sample_stage.accepted == 2
    assert fx.stage.accepted == 0


def test_with_sampling_off_no_miss_is_verified(fx: Fixture) -> None:
    matcher, sample_stage = _sampling(fx, 0)
    forged = [_forged(fx.consumed(POLICE, HOTEL, _check_in(POLICE, PERSON))) for _ in range(3)]
    for candidate in (matcher, fx.matcher):  # fx.matcher: the default is off
        result = candidate.process(forged)
        assert (result.seen, result.sampled, result.sample_rejected) == (3, 0, 0)
    assert (sample_stage.accepted, fx.stage.accepted, fx.dead_letters.rejections) == (0, 0, [])


def test_one_miss_in_three_is_sampled_counting_across_batches(fx: Fixture) -> None:
    matcher, _ = _sampling(fx, 3)
    forged = [_forged(fx.consumed(POLICE, HOTEL, _check_in(POLICE, PERSON))) for _ in range(9)]
    first, second = matcher.process(forged[:4]), matcher.process(forged[4:])
    assert (first.sampled, second.sampled) == (1, 2)
    assert (first.sample_rejected, second.sample_rejected) == (1, 2)
    sampled = [rejection.record.offset for rejection in fx.dead_letters.rejections]
    assert sampled == [forged[2].offset, forged[5].offset, forged[8].offset]


def test_a_hit_does_not_advance_the_miss_counter(fx: Fixture) -> None:
    fx.order(fx.keyer.person(PERSON), OrderKind.LOCATE_DEBTOR)
    matcher, _ = _sampling(fx, 2)
    hit = fx.consumed(POLICE, HOTEL, _check_in(POLICE, PERSON))
    miss = _forged(fx.consumed(POLICE, HOTEL, _check_in(POLICE, OTHER)))
    result = matcher.process([miss, hit, hit])
    assert (result.hits, result.sampled) == (2, 0)
    assert matcher.process([miss]).sampled == 1


def test_a_sampled_genuine_miss_has_no_effect_and_leaves_the_replay_guard_untouched(
    fx: Fixture,
) -> None:
    matcher, sample_stage = _sampling(fx, 1)
    genuine = fx.consumed(POLICE, HOTEL, _check_in(POLICE, PERSON))
    result = matcher.process([genuine])
    assert (result.sampled, result.sample_rejected, result.outgoing) == (1, 0, [])
    assert (sample_stage.accepted, len(sample_stage.replay_guard)) == (1, 1)
    assert (fx.stage.accepted, len(fx.stage.replay_guard)) == (0, 0)
    assert (fx.dead_letters.rejections, fx.audit.rejections) == ([], [])
    # Later watched, the same event is a first sighting to the stage of what is acted on.
    fx.order(fx.keyer.person(PERSON), OrderKind.LOCATE_DEBTOR)
    again = replace(genuine, offset=genuine.offset + 100)
    assert fx.matcher.process([again]).hits == 1
    assert (fx.stage.accepted, fx.stage.redeliveries) == (1, 0)


def test_sampling_needs_a_stage_of_its_own(fx: Fixture) -> None:
    parts = (fx.watch.get, fx.stage, fx.runtime.refuse, fx.runtime.signer, fx.runtime.catalog)
    with pytest.raises(ValueError, match="needs a sample_stage"):
        Matcher(*parts, verify_misses_every=10)
    with pytest.raises(ValueError, match="must not be the verify stage"):
        Matcher(*parts, verify_misses_every=10, sample_stage=fx.stage)
    with pytest.raises(ValueError, match=">= 0"):
        Matcher(*parts, verify_misses_every=-1, sample_stage=fx.runtime.verify_stage())


def test_sightings_off_their_keys_partition_are_counted_when_sampled(fx: Fixture) -> None:
    """A producer whose partitioner is not murmur2 of the key is detected: the matcher
    checks one sighting in ``check_routing_every`` and counts those off their partition."""
    matcher = Matcher(
        fx.watch.get, fx.stage, fx.runtime.refuse, fx.runtime.signer, fx.runtime.catalog,
        keyer=fx.keyer, check_routing_every=1,
    )  # fmt: skip
    spec = fx.runtime.catalog.get("sightings-person")
    good = fx.consumed(POLICE, HOTEL, _check_in(POLICE, PERSON))
    right = (murmur2(good.key) & 0x7FFFFFFF) % spec.partitions
    wrong = (right + 1) % spec.partitions
    sightings = [dataclasses.replace(good, partition=p) for p in (right, wrong, wrong)]
    result = matcher.process(sightings)
    assert (result.routing_checked, result.misrouted) == (3, 2)
    sampled = Matcher(
        fx.watch.get, fx.stage, fx.runtime.refuse, fx.runtime.signer, fx.runtime.catalog,
        keyer=fx.keyer, check_routing_every=64,
    )  # fmt: skip
    result = sampled.process([dataclasses.replace(good, partition=wrong)] * 128)
    assert (result.routing_checked, result.misrouted) == (2, 2)


# --- several workers: each key is looked up on the worker holding its partition ----------
class Worker:
    """One worker's matcher: its own watchlist partitions, verify stage and replay guard."""

    def __init__(self, fx: Fixture, held: set[int]) -> None:
        self.watch: dict[bytes, WatchEntry] = {}
        self.stage = fx.runtime.verify_stage()
        self.matcher = Matcher(
            self.watch.get, self.stage, fx.runtime.refuse, fx.runtime.signer,
            fx.runtime.catalog, keyer=fx.keyer,
        )  # fmt: skip
        self.matcher.hold(held)
        self.held = held


def _index(fx: Fixture, workers: list[Worker], order: ActiveOrder, keys: list[bytes]) -> None:
    """Enter ``order`` under each key on the worker holding the key's partition, as the
    watchlist agent does with the ledger agent's updates."""
    order = order.with_keys(keys)
    for key in keys:
        [holder] = [w for w in workers if partition_of(key, 6) in w.held]
        holder.watch[key] = holder.watch.get(key, WatchEntry.empty()).with_order(order)


def _run(workers: list[Worker], consumed: list[Consumed]) -> tuple[list[Any], int]:
    """Feed each record to the worker holding its partition, and every moved copy on to
    the worker holding its partition of the routed topic, until nothing moves. Returns
    the hits and the number of copies moved."""
    hits: list[Any] = []
    moved = 0
    pending = list(consumed)
    offsets = iter(range(10**6))
    while pending:
        record = pending.pop(0)
        [worker] = [w for w in workers if record.partition in w.held]
        result = worker.matcher.process([record])
        moved += result.rerouted
        for out in result.outgoing:
            if out.topic == "zf801.bus.sightings-routed":
                assert out.partition is not None
                pending.append(Consumed(out.topic, out.partition, next(offsets),
                                        record.timestamp, out.record.key, out.record.value,
                                        out.record.headers))  # fmt: skip
            elif out.record.header("ce_type") == b"cn.zf801.bus.v1.Hit":
                hits.append(default_codec().decode(out.record.value)[1])
    return hits, moved


def _two_workers(fx: Fixture) -> list[Worker]:
    return [Worker(fx, {0, 1, 2}), Worker(fx, {3, 4, 5})]


def _watched_person(fx: Fixture) -> tuple[list[Worker], ActiveOrder, bytes, Consumed]:
    """Two workers, a locate-debtor order on PERSON indexed where its key is held, and
    a signed check-in of PERSON."""
    workers = _two_workers(fx)
    order = fx.order(b"unused", OrderKind.LOCATE_DEBTOR)
    key = fx.keyer.person(PERSON)
    _index(fx, workers, order, [key])
    return workers, order, key, fx.consumed(POLICE, HOTEL, _check_in(POLICE, PERSON))


def _placed(consumed: Consumed, partition: int | None = None) -> Consumed:
    """The record on the partition its key's murmur2 gives, or on ``partition``."""
    assert consumed.key is not None
    where = partition_of(consumed.key, 6) if partition is None else partition
    return replace(consumed, partition=where)


def _plate_on_other_half(fx: Fixture, vin_key: bytes) -> str:
    """A plate whose key's partition is held by the other worker than the VIN key's."""
    vin_half = partition_of(vin_key, 6) < 3
    for n in range(10000, 99999):
        plate = f"京B{n}"
        if (partition_of(fx.keyer.plate(plate), 6) < 3) != vin_half:
            return plate
    raise AssertionError("no plate found")


def test_a_watched_vin_under_another_plate_is_found_when_another_worker_holds_it(
    fx: Fixture,
) -> None:
    workers = _two_workers(fx)
    order = fx.order(b"unused", OrderKind.VEHICLE_SEARCH)
    vin_key = fx.keyer.vin(VIN)
    _index(fx, workers, order, [fx.keyer.plate(PLATE), vin_key])
    false_plate = _plate_on_other_half(fx, vin_key)
    sighting = fx.consumed(TRAFFIC, VEHICLE, _encounter("PATROL", plate=false_plate))
    hits, moved = _run(workers, [_placed(sighting)])
    assert [str(hit["order_id"]) for hit in hits] == [order.order_id] and moved == 1
    assert hits[0]["sighting"]["offset"] == sighting.offset  # the original is the evidence


def test_a_sighting_carrying_two_keys_of_one_order_hits_it_once(fx: Fixture) -> None:
    workers = _two_workers(fx)
    order = fx.order(b"unused", OrderKind.VEHICLE_SEARCH)
    plate = _plate_on_other_half(fx, fx.keyer.vin(VIN))
    _index(fx, workers, order, [fx.keyer.plate(plate), fx.keyer.vin(VIN)])
    sighting = fx.consumed(TRAFFIC, VEHICLE, _encounter("PATROL", plate=plate))
    hits, moved = _run(workers, [_placed(sighting)])
    assert len(hits) == 1 and moved == 1  # the VIN key was looked up, the order skipped there
    one = Worker(fx, set(range(6)))  # one worker holding everything: nothing moves
    _index(fx, [one], order, [fx.keyer.plate(plate), fx.keyer.vin(VIN)])
    hits, moved = _run([one], [_placed(sighting)])
    assert len(hits) == 1 and moved == 0


@pytest.mark.parametrize("offset", [1, 2, 3, 4, 5])
def test_a_sighting_placed_by_another_partitioner_is_moved_and_hits(
    fx: Fixture, offset: int
) -> None:
    """A producer that places sightings by CRC32 (or anything): never a missed hit."""
    workers, order, key, sighting = _watched_person(fx)
    elsewhere = (partition_of(key, 6) + offset) % 6
    hits, moved = _run(workers, [_placed(sighting, elsewhere)])
    assert [str(hit["order_id"]) for hit in hits] == [order.order_id]
    same_half = (elsewhere < 3) == (partition_of(key, 6) < 3)
    assert moved == (0 if same_half else 1)  # moved only when the other worker holds it


def test_a_moved_sighting_is_not_a_replay_of_its_original_after_a_rebalance(
    fx: Fixture,
) -> None:
    """The worker that read the original later holds the key too: the copy is verified
    at the original's place, so the replay guard sees one sighting, not a copy."""
    workers, order, key, sighting = _watched_person(fx)
    wrong = (partition_of(key, 6) + 3) % 6  # on the other worker's half
    [reader] = [w for w in workers if wrong in w.held]
    [copy] = reader.matcher.process([_placed(sighting, wrong)]).outgoing
    reader.matcher.hold(range(6))  # a rebalance: the reader now holds every partition
    reader.watch[key] = WatchEntry.empty().with_order(order.with_keys([key]))
    moved = Consumed(copy.topic, copy.partition or 0, 0, sighting.timestamp, copy.record.key,
                     copy.record.value, copy.record.headers)  # fmt: skip
    first = reader.matcher.process([moved])
    again = reader.matcher.process([moved])  # redelivered after a crash: the same hit id
    assert (first.hits, first.rejected, again.hits, again.rejected) == (1, 0, 1, 0)


def test_a_route_header_on_a_sightings_topic_is_ignored_and_dropped_when_moved(
    fx: Fixture,
) -> None:
    workers, _, key, sighting = _watched_person(fx)
    forged = ("zf801_route", b"zf801.sightings.person/0/0/0")
    wrong = (partition_of(key, 6) + 3) % 6
    hostile = replace(sighting, partition=wrong, headers=(*sighting.headers, forged))
    [reader] = [w for w in workers if wrong in w.held]
    [copy] = reader.matcher.process([hostile]).outgoing
    routes = [value for name, value in copy.record.headers if name == "zf801_route"]
    assert routes == [f"zf801.sightings.person/{wrong}/{sighting.offset}/0".encode()]


@pytest.mark.parametrize(
    "route",
    [
        None,
        b"",
        b"garbage",
        b"zf801.sightings.person/0/0/",
        b"zf801.sightings.person/0/0/99",
        b"zf801.sightings.person/-1/0/0",
        b"zf801.alerts.BJ01/0/0/0",
        b"\xff\xfe/0/0/0",
    ],
)
def test_a_moved_sighting_without_a_sound_route_is_refused(
    fx: Fixture, route: bytes | None
) -> None:
    key = fx.keyer.person(PERSON)
    order = fx.order(key, OrderKind.LOCATE_DEBTOR)
    fx.watch[key] = WatchEntry.empty().with_order(order.with_keys([key]))
    sighting = fx.consumed(POLICE, HOTEL, _check_in(POLICE, PERSON))
    headers = tuple(h for h in sighting.headers if h[0] != "zf801_route")
    if route is not None:
        headers = (*headers, ("zf801_route", route))
    moved = replace(sighting, topic="zf801.bus.sightings-routed", headers=headers)
    result = fx.matcher.process([moved])
    assert (result.hits, result.rejected, result.outgoing) == (0, 1, [])
