"""``zf801 publish``: what an upstream system feeds it, good and bad, with an in-memory
producer behind the real Publisher (no broker)."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ops.cli import app
from ops.cmd_publish import PublishHooks, check_input
from ops.publish_input import MAX_LINE_BYTES
from producers.publisher import Publisher
from schemas.codec import decode
from schemas.matchkey import person_match_key
from schemas.registry import default_registry
from schemas.settings import Settings
from sign.events import EventSigner
from sign.keystore import KeyStore
from sign.verify_stage import EventVerifier, MemoryAuditSink
from tests.unit.ops.publish_fakes import (
    Invoke,
    MemoryProducer,
    example_event,
    exit_order,
    json_lines,
    runner,
)


# --- the good path ---------------------------------------------------------------------------
def test_publishes_json_lines_and_prints_ids_topics_offsets(
    invoke: Invoke, producer: MemoryProducer, settings: Settings
) -> None:
    result = invoke(
        ["ExitRestrictionOrder", "--as", "BJ01"], json_lines(exit_order(1), exit_order(2))
    )
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        ("zf801.orders.exit-restriction", "0", "0", "1"),
        ("zf801.orders.exit-restriction", "0", "1", "2"),
    ]
    assert "published 2 event(s); 0 bad line(s)" in result.stderr
    verifier = EventVerifier(KeyStore.from_settings(settings).trust_store())
    for (event_id, *_), (_topic, key, value, headers) in zip(rows, producer.sent, strict=True):
        signature = verifier.verify(key, value, headers)
        assert (signature.event_id, signature.agency_code) == (event_id, "BJ01")
        assert key == person_match_key("110105198003121238", secret=settings_secret(settings))
        schema, record = decode(value)
        assert (
            schema.name == "ExitRestrictionOrder" and record["case_number"] == "（2016）京01执123号"
        )


def settings_secret(settings: Settings) -> bytes:
    return settings.match_key_secret.get_secret_value().encode()


def test_short_and_full_type_names_and_a_pretty_printed_document(
    invoke: Invoke, producer: MemoryProducer
) -> None:
    pretty = json.dumps(exit_order(), ensure_ascii=False, indent=2)
    result = invoke(["cn.zf801.orders.v1.ExitRestrictionOrder", "--as", "BJ01", "-"], pretty)
    assert result.exit_code == 0, result.output
    assert len(producer.sent) == 1 and result.stdout.count("\n") == 1


def test_reads_a_file(invoke: Invoke, producer: MemoryProducer, tmp_path: Path) -> None:
    path = tmp_path / "checkins.jsonl"
    path.write_text(json_lines(example_event("sightings", "HotelCheckIn")), encoding="utf-8")
    result = invoke(["HotelCheckIn", "--as", "110105000000", str(path)])
    assert result.exit_code == 0, result.output
    assert producer.sent[0][0] == "zf801.sightings.person"


def test_release_is_keyed_by_its_subject_which_is_not_in_the_record(
    invoke: Invoke, producer: MemoryProducer, settings: Settings
) -> None:
    release = example_event("orders", "OrderRelease")
    release["subject"] = {"id_number": "110105198003121238"}
    result = invoke(["OrderRelease", "--as", "BJ01"], json_lines(release))
    assert result.exit_code == 0, result.output
    topic, key, value, _ = producer.sent[0]
    assert topic == "zf801.orders.exit-restriction"
    assert key == person_match_key("110105198003121238", secret=settings_secret(settings))
    assert "subject" not in decode(value)[1]


# --- bad lines ---------------------------------------------------------------------------------
def _bad_run(invoke: Invoke, producer: MemoryProducer, text: str | bytes, *args: str) -> Any:
    result = invoke(list(args or ("ExitRestrictionOrder", "--as", "BJ01")), text)
    assert result.exit_code == 1, result.output
    assert producer.sent == []
    assert "nothing published" in result.stderr
    return result


def test_bad_json_names_the_line(invoke: Invoke, producer: MemoryProducer) -> None:
    text = json_lines(exit_order(1)) + '{"order_id": \n' + json_lines(exit_order(3))
    result = _bad_run(invoke, producer, text)
    assert "line 2: not valid JSON" in result.stderr
    assert "line 1" not in result.stderr and "line 3" not in result.stderr


def test_missing_field_names_field_and_rule(invoke: Invoke, producer: MemoryProducer) -> None:
    order = exit_order()
    del order["handler"]
    result = _bad_run(invoke, producer, json_lines(exit_order(1), order))
    assert "line 2:" in result.stderr and "handler" in result.stderr
    assert "[rule required]" in result.stderr


def test_bad_id_number_is_masked_and_names_the_rule(
    invoke: Invoke, producer: MemoryProducer
) -> None:
    order = exit_order()
    order["subject"]["id_number"] = "110105198003121239"
    result = _bad_run(invoke, producer, json_lines(order))
    assert "line 1: subject.id_number" in result.stderr
    assert "rule id_number.check_char" in result.stderr
    assert "110105198003121239" not in result.output


def test_oversized_line_is_refused_unread(invoke: Invoke, producer: MemoryProducer) -> None:
    big = json.dumps({"order_id": "x" * (MAX_LINE_BYTES + 10)})
    result = _bad_run(
        invoke, producer, json_lines(exit_order(1)) + big + "\n" + json_lines(exit_order(3))
    )
    assert f"line 2: longer than {MAX_LINE_BYTES} bytes" in result.stderr
    assert "line 3" not in result.stderr


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"order_id": NaN}', "order_id: NaN is not a JSON number [rule json.number]"),
        ('{"a": {"b": [1, -Infinity]}}', "a.b[1]: -Infinity is not a JSON number"),
        ('{"size_bytes": 1e400}', "size_bytes: 1e400 is beyond the range of a number [rule"),
        ('{"order_id": "a", "order_id": "b"}', "key 'order_id' appears twice"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"order_id": 1' + "0" * 5000 + "}", "order_id: a number of 5,001 digits [rule json"),
        ("[1, 2]", "expected a JSON object, got array"),
        ('"just a string"', "expected a JSON object, got string"),
    ],
)
def test_hostile_json(invoke: Invoke, producer: MemoryProducer, line: str, expected: str) -> None:
    result = _bad_run(invoke, producer, line + "\n")
    assert "line 1: " in result.stderr and expected in result.stderr


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("\ud800王", "lone surrogate U+D800"),
        ("王\u0000建国", "control character U+0000"),
        ("\u202e国建王", "control character U+202E"),
        ("王" * 65, "[rule zf801.maxLength]"),
    ],
)
def test_hostile_text_values(
    invoke: Invoke, producer: MemoryProducer, name: str, rule: str
) -> None:
    order = exit_order()
    order["subject"]["name"] = name
    text = json.dumps(order)  # ASCII escapes: the surrogate survives as \ud800
    result = _bad_run(invoke, producer, text + "\n")
    assert "subject.name" in result.stderr and rule in result.stderr


def test_invalid_utf8_and_a_byte_order_mark(invoke: Invoke, producer: MemoryProducer) -> None:
    result = _bad_run(
        invoke, producer, b"\xef\xbb\xbf" + json_lines(exit_order()).encode() + b"\xff{}\n"
    )
    assert "line 2: not valid UTF-8" in result.stderr and "line 1" not in result.stderr


def test_unknown_fields_and_wrong_types(invoke: Invoke, producer: MemoryProducer) -> None:
    extra = exit_order(1) | {"admin": True}
    typed = exit_order(2) | {"control_period_end": 1234}
    result = _bad_run(invoke, producer, json_lines(extra, typed))
    assert "line 1:" in result.stderr and "[rule unknown_field]" in result.stderr
    assert "line 2:" in result.stderr and "control_period_end" in result.stderr


def test_release_without_subject(invoke: Invoke, producer: MemoryProducer) -> None:
    release = example_event("orders", "OrderRelease")
    result = _bad_run(invoke, producer, json_lines(release), "OrderRelease", "--as", "BJ01")
    assert "line 1: subject: an OrderRelease needs the subject" in result.stderr


def test_empty_input(invoke: Invoke, producer: MemoryProducer) -> None:
    result = invoke(["ExitRestrictionOrder", "--as", "BJ01"], "\n\n")
    assert result.exit_code == 1 and "no events in the input" in result.stderr


# --- type, agency, key store ---------------------------------------------------------------
def test_unknown_type_lists_what_agencies_publish(invoke: Invoke) -> None:
    result = invoke(["ExitRestriction", "--as", "BJ01"], json_lines(exit_order()))
    assert result.exit_code == 2
    assert "ExitRestriction" in result.stderr and "HotelCheckIn" in result.stderr
    bus_only = invoke(["Hit", "--as", "BJ01"], "{}\n")
    assert bus_only.exit_code == 2 and "not published by agencies" in bus_only.stderr


def test_agency_whose_role_may_not_write_the_topic(
    invoke: Invoke, producer: MemoryProducer
) -> None:
    checkin = json_lines(example_event("sightings", "HotelCheckIn"))
    result = invoke(["HotelCheckIn", "--as", "BJ01"], checkin)
    assert result.exit_code == 1 and producer.sent == []
    assert "BJ01 (role court) may not publish HotelCheckIn" in result.stderr
    vehicle = json_lines(example_event("sightings", "VehicleEncounter"))
    border = invoke(["VehicleEncounter", "--as", "110000230000"], vehicle)
    assert border.exit_code == 1 and "role border-control" in border.stderr


def test_wrong_as(invoke: Invoke, producer: MemoryProducer) -> None:
    unknown = invoke(["ExitRestrictionOrder", "--as", "XX99"], json_lines(exit_order()))
    assert unknown.exit_code == 1 and "--as: agency 'XX99' is not in the agency list" in (
        unknown.stderr
    )
    other_court = _bad_run(
        invoke, producer, json_lines(exit_order()), "ExitRestrictionOrder", "--as", "SH01"
    )
    assert "enforcing_court_code: 'BJ01' is not the publishing agency SH01" in other_court.stderr
    checkin = example_event("sightings", "HotelCheckIn")
    other_unit = _bad_run(
        invoke, producer, json_lines(checkin), "HotelCheckIn", "--as", "110000000000"
    )
    assert "reporting_unit_code" in other_unit.stderr


def test_key_store_not_initialised(tmp_path: Path, producer: MemoryProducer) -> None:
    settings = Settings(keys_path=tmp_path / "none")
    hooks = PublishHooks(settings=lambda: settings, audit=lambda signer, s, p: MemoryAuditSink())
    result = runner.invoke(
        app,
        ["publish", "ExitRestrictionOrder", "--as", "BJ01"],
        input=json_lines(exit_order()),
        obj=hooks,
    )
    assert result.exit_code == 1 and "run `zf801 keys init`" in result.stderr


# --- --skip-bad ----------------------------------------------------------------------------------
def test_skip_bad_publishes_the_good_lines_and_still_fails(
    invoke: Invoke, producer: MemoryProducer
) -> None:
    bad = copy.deepcopy(exit_order(2))
    bad["handler"]["phone"] = "12345"
    text = json_lines(exit_order(1), bad, exit_order(3))
    result = invoke(["ExitRestrictionOrder", "--as", "BJ01", "--skip-bad"], text)
    assert result.exit_code == 1
    assert [line.split("\t")[-1] for line in result.stdout.splitlines()] == ["1", "3"]
    assert len(producer.sent) == 2
    assert "line 2: handler.phone" in result.stderr
    assert "published 2 event(s); 1 bad line(s) skipped" in result.stderr
    sent_ids = [str(decode(value)[1]["order_id"]) for _, _, value, _ in producer.sent]
    assert sent_ids == [exit_order(1)["order_id"], exit_order(3)["order_id"]]


def test_skip_bad_with_only_good_lines_exits_zero(invoke: Invoke, producer: MemoryProducer) -> None:
    result = invoke(
        ["ExitRestrictionOrder", "--as", "BJ01", "--skip-bad"], json_lines(exit_order())
    )
    assert result.exit_code == 0 and len(producer.sent) == 1


# --- hostile shapes ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("type_name", "agency", "field", "value"),
    [
        ("VehicleEncounter", "110000110000", "vehicle", "京A12345"),
        ("VehicleSearchOrder", "BJ01", "subject", None),
        ("OrderAcknowledgement", "110000110000", "status", {"DEPLOYED": True}),
        ("BorderCrossing", "110000230000", "direction", ["OUT"]),
        ("HotelCheckIn", "110105000000", "person", [1, 2]),
    ],
)
def test_wrong_shapes_are_bad_lines_not_crashes(
    invoke: Invoke, producer: MemoryProducer, type_name: str, agency: str, field: str, value: object
) -> None:
    family = (
        "sightings"
        if type_name in {"VehicleEncounter", "BorderCrossing", "HotelCheckIn"}
        else "orders"
    )
    document = example_event(family, type_name) | {field: value}
    result = _bad_run(invoke, producer, json_lines(document), type_name, "--as", agency)
    assert "line 1: " in result.stderr
    assert "Traceback" not in result.output


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_mutation_of_a_good_event_is_published_or_named_never_a_crash(
    data: st.DataObject,
) -> None:
    name, family, agency = data.draw(st.sampled_from(_MUTATED))
    document = example_event(family, name)
    for key in data.draw(st.lists(st.sampled_from(sorted(document)), max_size=3, unique=True)):
        document[key] = data.draw(_JSON_VALUES)
    good, bad = check_input(
        _signing_publisher(agency),
        default_registry().get(name),
        io.BytesIO(json_lines(document).encode()),
    )
    assert len(good) + len(bad) == 1
    assert all(line.line == 1 and line.error for line in bad)


_MUTATED = [
    ("ExitRestrictionOrder", "orders", "BJ01"),
    ("VehicleSearchOrder", "orders", "BJ01"),
    ("OrderAcknowledgement", "orders", "110000110000"),
    ("HotelCheckIn", "sightings", "110105000000"),
    ("VehicleEncounter", "sightings", "110000110000"),
    ("BorderCrossing", "sightings", "110000230000"),
]


def _signing_publisher(agency: str) -> Publisher:
    return Publisher(EventSigner(Ed25519PrivateKey.generate(), agency), producer=MemoryProducer())


def test_every_publication_and_every_refusal_is_audited(
    invoke: Invoke, producer: MemoryProducer, audit: MemoryAuditSink
) -> None:
    good = invoke(["ExitRestrictionOrder", "--as", "BJ01"], json_lines(exit_order(), exit_order()))
    assert good.exit_code == 0, good.stderr
    (published,) = [op for op in audit.operations if op["result"] == "SUCCESS"]
    assert published["operation"] == "event.publish"
    assert (published["agency_code"], published["role"]) == ("BJ01", "court")
    assert published["target"] == "zf801.orders.exit-restriction 2 event(s), lines 1-2"
    ids = [row.split("\t")[0] for row in good.stdout.splitlines()]
    assert published["detail"] == f"0@0={ids[0]} 0@1={ids[1]}"  # partition@offset=event id
    audit.operations.clear()
    bad = invoke(
        ["ExitRestrictionOrder", "--as", "BJ01"], json_lines(exit_order(), {"nonsense": 1})
    )
    assert bad.exit_code == 1
    assert [(op["result"], op["target"]) for op in audit.operations] == [
        ("FAILURE", "cn.zf801.orders.v1.ExitRestrictionOrder line 2")
    ]
    audit.operations.clear()
    denied = invoke(["ExitRestrictionOrder", "--as", "110000000000"], json_lines(exit_order()))
    assert denied.exit_code == 1
    assert [op["result"] for op in audit.operations] == ["DENIED"]
