"""The verify-before-act stage with in-memory sinks: accepted, refused, never raising."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

import sign.events as sign_events
from schemas.envelope import build_record
from schemas.event_types import EventFamily
from sign.acceptance import AcceptancePolicy, Rule, Window
from sign.replay import ReplayGuard
from sign.verify_stage import (
    MemoryAuditSink,
    MemoryDeadLetterSink,
    SinkError,
    VerifyStage,
)
from tests.unit.sign.conftest import NOW

TOPIC = "zf801.sightings.hotel"
KEY = bytes(range(32))


def _window(days: int) -> timedelta:
    """A replay window of ``days`` around the records' time (``NOW``): the stage judges an
    event's age by the wall clock, so the window grows by the time passed since ``NOW``
    (a fixed window made these tests fail a day after ``NOW``)."""
    return timedelta(days=days) + max(timedelta(0), datetime.now(UTC) - NOW)


@dataclass
class Consumed:
    """Shaped like a kafka-python ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list


@pytest.fixture
def sinks():
    return MemoryDeadLetterSink(), MemoryAuditSink()


@pytest.fixture
def stage(trust_set, issued, sinks):
    dead, audit = sinks
    return VerifyStage(
        trust_set.trust_store(),
        ReplayGuard(_window(days=7), 100_000),
        dead,
        audit,
        verifier_agency="BUS-matcher",
    )


@pytest.fixture
def sighting(issued, hotel_check_in, now):
    """A signed HotelCheckIn, as a producer would publish it."""

    def make(when=now, source="110105000000"):
        record = build_record(
            "HotelCheckIn", hotel_check_in(when), key=KEY, source=f"zf801:agency/{source}",
            time=when,
        )  # fmt: skip
        return issued[source].signer.sign_record(record)

    return make


def _consumed(record, offset=7, key=None, value=None, headers=None, timestamp=None):
    return Consumed(
        TOPIC,
        2,
        offset,
        timestamp if timestamp is not None else 1_795_755_600_000,
        record.key if key is None else key,
        record.value if value is None else value,
        list(record.headers if headers is None else headers),
    )


def test_good_record_is_verified_decoded_and_passed_to_the_effect(stage, sighting, sinks):
    record = sighting()
    seen = []
    assert stage.handle(_consumed(record), seen.append) is True
    (event,) = seen
    assert event.signature.agency_code == "110105000000"
    assert event.signature.role == "public-security"
    assert event.envelope.type == "cn.zf801.sightings.v1.HotelCheckIn"
    assert event.payload["hotel_name"] == "北京饭店"
    assert event.redelivery is False
    assert (event.record.topic, event.record.partition, event.record.offset) == (TOPIC, 2, 7)
    assert sinks[0].rejections == [] and sinks[1].rejections == []
    assert stage.accepted == 1


def _refused(stage, sinks, message):
    effects = []
    assert stage.handle(message, effects.append) is False
    assert effects == []  # the effect never ran
    (dead,), (audit,) = sinks[0].rejections, sinks[1].rejections
    assert dead is audit  # one rejection, recorded by both sinks
    return dead


def test_flipped_value_byte_is_dead_lettered_with_original_record(stage, sighting, sinks):
    record = sighting()
    value = bytearray(record.value)
    value[40] ^= 0x01
    rejection = _refused(stage, sinks, _consumed(record, value=bytes(value)))
    assert rejection.reason == "BAD_SIGNATURE"
    assert rejection.category == "SIGNATURE_INVALID"
    assert rejection.failed_stage == "VERIFY"
    assert rejection.record.value == bytes(value)
    assert rejection.record.headers == tuple(record.headers)
    assert (rejection.record.topic, rejection.record.offset) == (TOPIC, 7)
    assert rejection.verifier == "BUS-matcher"


def test_signature_header_missing_is_categorised_as_signature_missing(stage, sighting, sinks):
    record = sighting()
    headers = [(n, v) for n, v in record.headers if n != "ce_signature"]
    rejection = _refused(stage, sinks, _consumed(record, headers=headers))
    assert (rejection.reason, rejection.header) == ("MISSING_HEADER", "ce_signature")
    assert (rejection.category, rejection.failed_stage) == ("SIGNATURE_MISSING", "HEADERS")


def test_replayed_event_at_a_new_offset_is_refused(stage, sighting, sinks):
    record = sighting()
    assert stage.check_record(_consumed(record, offset=7)) is not None
    rejection = _refused(stage, sinks, _consumed(record, offset=99))
    assert rejection.reason == "REPLAYED"
    assert "again at" in rejection.detail


def test_redelivery_at_the_same_offset_passes_marked(stage, sighting, sinks):
    record = sighting()
    assert stage.check_record(_consumed(record)).redelivery is False
    again = stage.check_record(_consumed(record))
    assert again is not None and again.redelivery is True
    assert sinks[0].rejections == []


def test_refused_record_does_not_poison_the_replay_guard(stage, sighting, sinks):
    record = sighting()
    forged = [(n, base64.b64encode(bytes(64)) if n == "ce_signature" else v)
              for n, v in record.headers]  # fmt: skip
    assert stage.check_record(_consumed(record, offset=1, headers=forged)) is None
    assert stage.check_record(_consumed(record, offset=2)) is not None


def test_signed_type_that_is_not_the_value_schema_is_refused(stage, issued, hotel_check_in, sinks):
    record = build_record("HotelCheckIn", hotel_check_in(), key=KEY,
                          source="zf801:agency/110105000000")  # fmt: skip
    headers = [(n, b"cn.zf801.sightings.v1.BorderCrossing" if n == "ce_type" else v)
               for n, v in record.headers]  # fmt: skip
    signed = issued["110105000000"].signer.sign(record.key, record.value, headers)
    rejection = _refused(stage, sinks, _consumed(record, headers=signed))
    assert (rejection.reason, rejection.category) == ("TYPE_MISMATCH", "TYPE_MISMATCH")


def test_signed_garbage_value_is_refused_as_undecodable(stage, issued, hotel_check_in, sinks):
    record = build_record("HotelCheckIn", hotel_check_in(), key=KEY,
                          source="zf801:agency/110105000000")  # fmt: skip
    garbage = b"\x00\x01not avro"
    signed = issued["110105000000"].signer.sign(record.key, garbage, record.headers)
    rejection = _refused(stage, sinks, _consumed(record, value=garbage, headers=signed))
    assert (rejection.reason, rejection.failed_stage) == ("BAD_MAGIC", "DECODE")


def test_writer_roles_per_topic(trust_set, sighting, sinks):
    stage = VerifyStage(
        trust_set.trust_store(), ReplayGuard(_window(days=1), 10_000), *sinks,
        verifier_agency="BUS-matcher", writer_roles={TOPIC: {"border-control"}},
    )  # fmt: skip
    rejection = _refused(stage, sinks, _consumed(sighting()))
    assert (rejection.reason, rejection.category) == ("ROLE_NOT_ALLOWED", "NOT_AUTHORISED")
    assert rejection.failed_stage == "AUTHORISE"


def test_clock_skew_between_ce_time_and_record_timestamp(trust_set, sighting, sinks, now):
    stage = VerifyStage(
        trust_set.trust_store(), ReplayGuard(_window(days=1), 10_000), *sinks,
        verifier_agency="BUS-matcher", max_skew=timedelta(minutes=5),
    )  # fmt: skip
    on_time = int(now.timestamp() * 1000)
    verified = stage.check_record(_consumed(sighting(), timestamp=on_time + 60_000))
    assert verified is not None, [(r.reason, r.detail) for r in sinks[0].rejections]
    late = _consumed(sighting(), offset=8, timestamp=on_time + 3_600_000)
    assert _refused(stage, sinks, late).reason == "TIME_SKEW"


def test_unexpected_error_is_dead_lettered_not_raised(stage, sighting, sinks, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(stage.verifier, "verify_received", explode)
    rejection = _refused(stage, sinks, _consumed(sighting()))
    assert (rejection.reason, rejection.category) == ("VERIFY_ERROR", "PROCESSING_FAILED")
    assert "boom" in rejection.detail


def test_a_failing_sink_stops_the_loop(trust_set, sighting):
    class Broken:
        def write(self, rejection):
            raise OSError("broker unreachable")

    stage = VerifyStage(
        trust_set.trust_store(), ReplayGuard(_window(days=1), 10_000), Broken(),
        MemoryAuditSink(), verifier_agency="BUS-matcher",
    )  # fmt: skip
    record = sighting()
    with pytest.raises(SinkError, match="broker unreachable"):
        stage.check_record(_consumed(record, value=record.value[:-1]))


def test_counters(stage, sighting):
    record = sighting()
    stage.check_record(_consumed(record))
    stage.check_record(_consumed(record))
    stage.check_record(_consumed(record, offset=8))
    assert (stage.accepted, stage.redeliveries, stage.rejected["REPLAYED"]) == (2, 1, 1)


# --- the acceptance window (sign/REPLAY.md) ---------------------------------------------


def _windowed_stage(trust_set, now, *, window_past=timedelta(hours=72)):
    dead, audit = MemoryDeadLetterSink(), MemoryAuditSink()
    policy = AcceptancePolicy({
        EventFamily.SIGHTING: Rule(Window(window_past, timedelta(seconds=300)), True),
        EventFamily.OTHER: Rule(Window(window_past, timedelta(seconds=300)), True),
    })  # fmt: skip
    stage = VerifyStage(
        trust_set.trust_store(), ReplayGuard(timedelta(days=4), 10_000, clock=lambda: now),
        dead, audit, verifier_agency="BUS-MATCHER", acceptance=policy, clock=lambda: now,
    )  # fmt: skip
    return stage, dead


def test_the_stage_refuses_a_sighting_from_the_future_and_records_nothing(
    trust_set, issued, sighting, now
):
    stage, dead = _windowed_stage(trust_set, now)
    ahead = sighting(when=now + timedelta(days=365))
    assert stage.check_record(_consumed(ahead)) is None
    assert dead.rejections[0].reason == "CLOCK_AHEAD"
    assert dead.rejections[0].category == "OUTSIDE_WINDOW"
    assert len(stage.replay_guard) == 0
    genuine = sighting(when=now)
    assert stage.check_record(_consumed(genuine, offset=8)) is not None


def test_the_stage_refuses_a_sighting_older_than_its_window(trust_set, issued, sighting, now):
    stage, dead = _windowed_stage(trust_set, now, window_past=timedelta(hours=1))
    assert stage.check_record(_consumed(sighting(when=now - timedelta(hours=2)))) is None
    assert dead.rejections[0].reason == "TOO_OLD"


def test_a_record_s_headers_are_read_once_for_the_seal_and_the_envelope(
    stage, sighting, sinks, monkeypatch
):
    passes = []
    read = sign_events.read_headers

    def counted(*args, **kwargs):
        passes.append(args)
        return read(*args, **kwargs)

    monkeypatch.setattr(sign_events, "read_headers", counted)
    assert stage.check_record(_consumed(sighting())) is not None
    assert len(passes) == 1


def test_a_tampered_header_reads_as_a_bad_signature_before_its_form(stage, sighting, sinks):
    """The one pass keeps the envelope's fault for later: a covered header altered into
    bytes that are not UTF-8 is still refused by the seal first."""
    record = sighting()
    headers = [(n, b"\xff" + v[1:] if n == "ce_type" else v) for n, v in record.headers]
    rejection = _refused(stage, sinks, _consumed(record, headers=headers))
    assert rejection.reason == "BAD_SIGNATURE"


def test_the_envelope_s_fault_found_in_the_one_pass_is_raised_once_the_seal_holds(
    stage, sighting, sinks
):
    """An uncovered header that is not UTF-8 passes the seal, then the envelope refuses
    it, naming it, as when it read the headers itself."""
    record = sighting()
    headers = [(n, b"\xff\xfe" if n == "traceparent" else v) for n, v in record.headers]
    rejection = _refused(stage, sinks, _consumed(record, headers=headers))
    assert (rejection.reason, rejection.header) == ("MALFORMED_HEADER", "traceparent")


def test_a_second_signature_header_is_the_seal_s_refusal_even_after_an_envelope_fault(
    stage, sighting, sinks
):
    record = sighting()
    signature = dict(record.headers)["ce_signature"]
    headers = [(n, b"\xff\xfe" if n == "traceparent" else v) for n, v in record.headers]
    rejection = _refused(
        stage, sinks, _consumed(record, headers=[*headers, ("ce_signature", signature)])
    )
    assert (rejection.reason, rejection.header) == ("DUPLICATE_HEADER", "ce_signature")
    assert rejection.category == "HEADER_DUPLICATED"


@pytest.mark.parametrize(
    ("reason", "category"),
    [("EDGE_RULE", "SCHEMA_VALIDATION"), ("KEY_MISMATCH", "NOT_AUTHORISED"),
     ("UNKNOWN_HIT", "NOT_AUTHORISED"), ("MISPLACED", "NOT_AUTHORISED"),
     ("CLOCK_AHEAD", "OUTSIDE_WINDOW"), ("ORDER_CLOSED", "OTHER")],
)  # fmt: skip
def test_refusals_after_verification_have_a_dead_letter_category(reason, category):
    from sign.verify_stage import dead_letter_category  # noqa: PLC0415

    assert dead_letter_category(reason, None) == category
