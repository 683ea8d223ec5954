"""The CloudEvents envelope: build then parse, and every missing, duplicated, malformed or
oversized header refused with an error naming it."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import encode
from schemas.envelope import (
    Envelope,
    KafkaRecord,
    agency_of,
    agency_source,
    build_record,
    child_traceparent,
    format_time,
    from_micros,
    new_traceparent,
    parse_record,
    parse_time,
    to_micros,
)
from schemas.errors import (
    BadMagic,
    EnvelopeError,
    HeaderDuplicated,
    HeaderMalformed,
    HeaderMissing,
    HeaderTooLarge,
    SchemaValidationError,
    TrailingBytes,
    TruncatedPayload,
    TypeMismatch,
    UnknownFingerprint,
)
from schemas.headers import (
    CE_ID,
    CE_SIGALG,
    CE_SIGKEYID,
    CE_SIGNATURE,
    CE_SOURCE,
    CE_SPECVERSION,
    CE_TIME,
    CE_TYPE,
    CONTENT_TYPE,
    ENVELOPE_HEADERS,
    MAX_HEADERS,
    TRACEPARENT,
)
from schemas.jsonmap import from_json
from schemas.registry import EXAMPLE_DIR, default_registry

EXAMPLES = EXAMPLE_DIR
SOURCE = "zf801:agency/110105000000"
KEY = bytes(range(32))
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def example(name: str) -> dict[str, Any]:
    schema = default_registry().get(name)
    document = json.loads((EXAMPLES / schema.family / f"{name}.json").read_text("utf-8"))
    record = from_json(schema, document)
    assert isinstance(record, dict)
    return record


@pytest.fixture
def built() -> KafkaRecord:
    return build_record(
        "HotelCheckIn",
        example("HotelCheckIn"),
        key=KEY,
        source=SOURCE,
        event_id="6d1c3b1e-2f49-4c2e-9d11-0a5b7c3e8f21",
        time=dt.datetime(2026, 4, 8, 21, 2, 12, 5, tzinfo=dt.timezone(dt.timedelta(hours=8))),
        traceparent=TRACE,
    )


def test_build_writes_the_binary_mode_headers(built: KafkaRecord) -> None:
    assert built.key == KEY
    assert built.value == encode("HotelCheckIn", example("HotelCheckIn"))
    assert built.headers == (
        (CE_SPECVERSION, b"1.0"),
        (CE_ID, b"6d1c3b1e-2f49-4c2e-9d11-0a5b7c3e8f21"),
        (CE_SOURCE, SOURCE.encode()),
        (CE_TYPE, b"cn.zf801.sightings.v1.HotelCheckIn"),
        (CE_TIME, b"2026-04-08T13:02:12.000005Z"),
        (CONTENT_TYPE, b"application/avro"),
        (TRACEPARENT, TRACE.encode()),
    )


def test_build_generates_id_time_and_trace() -> None:
    before = dt.datetime.now(dt.UTC)
    record = build_record(
        "HitConfirmation", example("HitConfirmation"), key=None, source="zf801:agency/GD03"
    )
    envelope = parse_record(record.key, record.value, record.headers)
    assert uuid.UUID(envelope.id).version == 4
    assert before <= envelope.time <= dt.datetime.now(dt.UTC)
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", envelope.traceparent)
    assert envelope.key is None


def test_parse_gives_back_attributes_and_lazily_the_record(built: KafkaRecord) -> None:
    envelope = parse_record(built.key, built.value, list(built.headers))
    assert isinstance(envelope, Envelope)
    assert envelope.id == "6d1c3b1e-2f49-4c2e-9d11-0a5b7c3e8f21"
    assert envelope.source == SOURCE and envelope.agency == "110105000000"
    assert envelope.type == envelope.schema.full_name == "cn.zf801.sightings.v1.HotelCheckIn"
    assert envelope.time == dt.datetime(2026, 4, 8, 13, 2, 12, 5, tzinfo=dt.UTC)
    assert envelope.traceparent == TRACE
    assert envelope.headers == built.headers
    assert "record" not in envelope.__dict__  # not decoded yet
    record = envelope.record
    assert record["person"]["name"] == "陈志强"
    assert envelope.record is record
    assert str(envelope.decode()["sighting_id"]) == str(example("HotelCheckIn")["sighting_id"])


def test_signature_headers_are_extensions(built: KafkaRecord) -> None:
    signed = built.with_headers(
        (CE_SIGALG, b"ed25519"), (CE_SIGKEYID, b"110105000000-2026-01"), (CE_SIGNATURE, b"QUJD")
    )
    assert signed.header(CE_SIGALG) == b"ed25519" and built.header(CE_SIGALG) is None
    envelope = parse_record(signed.key, signed.value, signed.headers)
    assert envelope.extensions == {
        CE_SIGALG: "ed25519",
        CE_SIGKEYID: "110105000000-2026-01",
        CE_SIGNATURE: "QUJD",
    }
    assert envelope.header(CE_SIGNATURE) == b"QUJD"


def _replace(record: KafkaRecord, name: str, value: bytes | None) -> list[tuple[str, bytes | None]]:
    return [(n, value if n == name else v) for n, v in record.headers]


@pytest.mark.parametrize("name", ENVELOPE_HEADERS)
def test_each_missing_header_is_named(built: KafkaRecord, name: str) -> None:
    headers = [(n, v) for n, v in built.headers if n != name]
    with pytest.raises(HeaderMissing) as caught:
        parse_record(built.key, built.value, headers)
    assert caught.value.header == name
    assert name in str(caught.value)


@pytest.mark.parametrize("name", [*ENVELOPE_HEADERS, CE_SIGNATURE])
def test_each_duplicated_header_is_named(built: KafkaRecord, name: str) -> None:
    headers = [*built.headers, (CE_SIGNATURE, b"QUJD"), (name, b"again")]
    with pytest.raises(HeaderDuplicated) as caught:
        parse_record(built.key, built.value, headers)
    assert caught.value.header == name


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (CE_SPECVERSION, b"0.3"),
        (CE_ID, b"not-a-uuid"),
        (CE_ID, b"6D1C3B1E-2F49-4C2E-9D11-0A5B7C3E8F21"),
        (CE_SOURCE, b"court/BJ01"),
        (CE_SOURCE, b"zf801:agency/"),
        (CE_SOURCE, b"zf801:agency/BJ01/../GD03"),
        (CE_TYPE, b"HotelCheckIn"),
        (CE_TIME, b"2026-04-08T13:02:12Z"),
        (CE_TIME, b"2026-04-08T21:02:12.000005+08:00"),
        (CE_TIME, b"2026-02-30T13:02:12.000005Z"),
        (CONTENT_TYPE, b"application/json"),
        (TRACEPARENT, b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),
        (TRACEPARENT, b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        (TRACEPARENT, b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
        (TRACEPARENT, b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        (CE_SOURCE, b"zf801:agency/\xff\xfe"),
        (CE_ID, None),
    ],
)
def test_each_malformed_header_is_named(built: KafkaRecord, name: str, value: bytes | None) -> None:
    with pytest.raises(HeaderMalformed) as caught:
        parse_record(built.key, built.value, _replace(built, name, value))
    assert caught.value.header == name
    assert isinstance(caught.value, EnvelopeError) and isinstance(caught.value, ValueError)


def test_bad_extension_attribute_name(built: KafkaRecord) -> None:
    with pytest.raises(HeaderMalformed, match="ce_Sig!"):
        parse_record(built.key, built.value, [*built.headers, ("ce_Sig!", b"x")])


def test_header_size_limits(built: KafkaRecord) -> None:
    with pytest.raises(HeaderTooLarge, match=CE_SIGNATURE):
        parse_record(built.key, built.value, [*built.headers, (CE_SIGNATURE, b"A" * 1025)])
    with pytest.raises(HeaderTooLarge, match="name too long"):
        parse_record(built.key, built.value, [*built.headers, ("x" * 65, b"")])
    many = [*built.headers, *[(f"x-{i}", b"") for i in range(MAX_HEADERS)]]
    with pytest.raises(HeaderTooLarge, match=f"more than {MAX_HEADERS}"):
        parse_record(built.key, built.value, many)


def test_type_must_be_the_writer_schema(built: KafkaRecord) -> None:
    headers = _replace(built, CE_TYPE, b"cn.zf801.sightings.v1.BorderCrossing")
    with pytest.raises(TypeMismatch, match=r"written as cn\.zf801\.sightings\.v1\.HotelCheckIn"):
        parse_record(built.key, built.value, headers)


def test_value_errors_surface_at_parse_or_at_decode(built: KafkaRecord) -> None:
    with pytest.raises(BadMagic):
        parse_record(built.key, b"{}" + built.value, built.headers)
    with pytest.raises(UnknownFingerprint):
        parse_record(built.key, built.value[:2] + bytes(8) + built.value[10:], built.headers)
    with pytest.raises(TruncatedPayload):
        parse_record(built.key, None, built.headers)
    envelope = parse_record(built.key, built.value + b"\x00", built.headers)
    with pytest.raises(TrailingBytes):
        _ = envelope.record
    envelope = parse_record(built.key, built.value[:-3], built.headers)
    with pytest.raises(TruncatedPayload):
        _ = envelope.record


def test_build_refuses_bad_input() -> None:
    record = example("HitConfirmation")
    with pytest.raises(TypeError, match="bytes or None"):
        build_record("HitConfirmation", record, key="k", source=SOURCE)  # type: ignore[arg-type]
    with pytest.raises(HeaderMalformed, match=CE_SOURCE):
        build_record("HitConfirmation", record, key=None, source="GD03")
    with pytest.raises(HeaderMalformed, match=CE_TIME):
        build_record(
            "HitConfirmation", record, key=None, source=SOURCE, time=dt.datetime(2026, 1, 1)
        )
    with pytest.raises(HeaderMalformed, match=TRACEPARENT):
        build_record("HitConfirmation", record, key=None, source=SOURCE, traceparent="00-xyz")
    with pytest.raises(HeaderMalformed, match=CE_ID):
        build_record("HitConfirmation", record, key=None, source=SOURCE, event_id="123")
    with pytest.raises(SchemaValidationError, match="confirmed_by"):
        build_record(
            "HitConfirmation", {**record, "confirmed_by": "黄" * 65}, key=None, source=SOURCE
        )


def test_build_without_validation_is_for_trusted_records() -> None:
    record = {**example("HitConfirmation"), "confirmed_by": "黄" * 65}
    built = build_record("HitConfirmation", record, key=None, source=SOURCE, validate=False)
    assert parse_record(None, built.value, built.headers).record["confirmed_by"] == "黄" * 65


def test_agency_source_round_trip() -> None:
    assert agency_source("BUS-MATCHER") == "zf801:agency/BUS-MATCHER"
    assert agency_of("zf801:agency/SPC-COMMAND") == "SPC-COMMAND"
    with pytest.raises(HeaderMalformed):
        agency_source("BJ 01")


def test_child_traceparent_keeps_the_trace() -> None:
    parent = new_traceparent()
    child = child_traceparent(parent)
    assert child[:36] == parent[:36] and child[-3:] == parent[-3:]
    assert child[36:52] != parent[36:52]


@given(
    st.datetimes(
        min_value=dt.datetime(2, 1, 1),
        timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=8))]),
    )
)
def test_time_format_round_trips(instant: dt.datetime) -> None:
    text = format_time(instant)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
    assert parse_time(text) == instant


def test_time_before_year_1000_keeps_four_digits() -> None:
    assert format_time(dt.datetime(999, 1, 2, tzinfo=dt.UTC)) == "0999-01-02T00:00:00.000000Z"


@given(st.datetimes(timezones=st.just(dt.UTC)))
def test_epoch_micros_round_trip_exactly(instant: dt.datetime) -> None:
    assert from_micros(to_micros(instant)) == instant


def test_epoch_micros_are_exact_where_a_float_is_not() -> None:
    # A float timestamp has about 16 significant digits: far from the epoch it loses the
    # last microsecond, so a stored instant would come back one microsecond early.
    instant = dt.datetime(2286, 1, 1, 0, 0, 0, 999_999, tzinfo=dt.UTC)
    assert int(instant.timestamp() * 1_000_000) % 1_000_000 != 999_999
    assert to_micros(instant) % 1_000_000 == 999_999
    assert to_micros(instant.replace(tzinfo=None)) == to_micros(instant)
