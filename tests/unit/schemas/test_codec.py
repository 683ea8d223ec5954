"""The single-object codec: fingerprints, round trips, validation errors naming the field and
rule, distinct decode errors, evolution through a reader schema, and the registry."""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from avro.schema import _crc_64_fingerprint
from fastavro import schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.canonical import crc64_avro, fingerprint_bytes, parsing_canonical_form
from schemas.codec import (
    HEADER_SIZE,
    Codec,
    decode,
    encode,
    encode_trusted,
    validate,
    writer_schema,
)
from schemas.errors import (
    BadMagic,
    BusError,
    CodecError,
    MalformedPayload,
    SchemaLoadError,
    SchemaResolutionError,
    SchemaValidationError,
    TrailingBytes,
    TruncatedPayload,
    UnknownFingerprint,
    UnknownSchema,
)
from schemas.jsonmap import from_json
from schemas.registry import EXAMPLE_DIR, SCHEMA_DIR, Registry, default_registry, load_schema

REGISTRY = default_registry()
EXAMPLES = EXAMPLE_DIR
UTC = dt.UTC


def example(name: str) -> dict[str, Any]:
    schema = REGISTRY.get(name)
    document = json.loads((EXAMPLES / schema.family / f"{name}.json").read_text("utf-8"))
    record = from_json(schema, document)
    assert isinstance(record, dict)
    return record


# Test vectors of the Avro project (share/test/data/schema-tests.txt), checked there
# against Java's implementation; fingerprints are Java longs.
SPEC_VECTORS = [
    ('"null"', '"null"', 7195948357588979594),
    ('{"type":"boolean"}', '"boolean"', -6970731678124411036),
    ('"int"', '"int"', 8247732601305521295),
    ('{"type":"long"}', '"long"', -3434872931120570953),
    ('"string"', '"string"', -8142146995180207161),
    ("[ ]", "[]", -1241056759729112623),
    ('[ "int" , {"type":"boolean"} ]', '["int","boolean"]', 5392556393470105090),
    (
        '{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}',
        '{"name":"x.y.foo","type":"record","fields":[]}',
        5916914534497305771,
    ),
    (
        '{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}',
        '{"name":"a.b.foo","type":"record","fields":[]}',
        -4616218487480524110,
    ),
    (
        '{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":"true"},'
        ' {"order":"descending","name":"f2","doc":"Hello","type":"int"}],'
        ' "type":"record", "name":"foo"}',
        '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},'
        '{"name":"f2","type":"int"}]}',
        -4860222112080293046,
    ),
    (
        '{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar",'
        ' "symbols":["A1", "A2"]}',
        '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}',
        -4448647247586288245,
    ),
    (
        '{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}',
        '{"name":"x.y.z.foo","type":"fixed","size":32}',
        -3064184465700546786,
    ),
    (
        '{ "items":{"type":"null"}, "type":"array"}',
        '{"type":"array","items":"null"}',
        -589620603366471059,
    ),
    (
        '{ "values":"string", "type":"map"}',
        '{"type":"map","values":"string"}',
        -8732877298790414990,
    ),
    (
        '{"name":"PigValue","type":"record",'
        ' "fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}',
        '{"name":"PigValue","type":"record","fields":[{"name":"value","type":'
        '["null","int","long","PigValue"]}]}',
        -1759257747318642341,
    ),
]


@pytest.mark.parametrize(("schema", "canonical", "fingerprint"), SPEC_VECTORS)
def test_canonical_form_and_fingerprint_match_the_spec_vectors(
    schema: str, canonical: str, fingerprint: int
) -> None:
    assert parsing_canonical_form(json.loads(schema)) == canonical
    assert fingerprint_bytes(canonical) == (fingerprint % 2**64).to_bytes(8, "little")


def test_logical_types_are_stripped_like_java() -> None:
    schema = {"type": "long", "logicalType": "timestamp-micros"}
    assert parsing_canonical_form(schema) == '"long"'


@given(st.binary(max_size=300))
def test_crc64_matches_the_reference_implementation(data: bytes) -> None:
    assert crc64_avro(data).to_bytes(8, "little") == _crc_64_fingerprint(data)


def test_single_object_header() -> None:
    value = encode("HitConfirmation", example("HitConfirmation"))
    schema = REGISTRY.get("HitConfirmation")
    assert value[:2] == b"\xc3\x01"
    assert (
        value[2:HEADER_SIZE] == schema.fingerprint == schema.fingerprint_int.to_bytes(8, "little")
    )
    assert writer_schema(value) is schema


def test_full_and_short_names_resolve_to_the_same_schema() -> None:
    full = "cn.zf801.orders.v1.ExitRestrictionOrder"
    assert REGISTRY.get("ExitRestrictionOrder") is REGISTRY.get(full)
    record = example("ExitRestrictionOrder")
    assert encode(full, record) == encode("ExitRestrictionOrder", record)


def test_unknown_schema_name() -> None:
    with pytest.raises(UnknownSchema, match="'NoSuchEvent'"):
        encode("NoSuchEvent", {})


# ---- validation: the error names the field path and the rule ---------------------------


def _invalid(name: str, edit: Any) -> SchemaValidationError:
    record = copy.deepcopy(example(name))
    edit(record)
    with pytest.raises(SchemaValidationError) as caught:
        encode(name, record)
    assert isinstance(caught.value, BusError)
    assert isinstance(caught.value, ValueError)
    return caught.value


@pytest.mark.parametrize(
    ("name", "edit", "path", "rule"),
    [
        (
            "ExitRestrictionOrder",
            lambda r: r["subject"].pop("id_number"),
            "subject.id_number",
            "required",
        ),
        ("ExitRestrictionOrder", lambda r: r.update(subjekt={}), "", "unknown_field"),
        (
            "ExitRestrictionOrder",
            lambda r: r["handler"].update(name="赵" * 65),
            "handler.name",
            "zf801.maxLength",
        ),
        (
            "ExitRestrictionOrder",
            lambda r: r.update(police_requirements="要" * 2001),
            "police_requirements",
            "zf801.maxLength",
        ),
        (
            "ExitRestrictionOrder",
            lambda r: r["sealed_documents"][1].update(sha256=b"\0" * 31),
            "sealed_documents[1].sha256",
            "fixed",
        ),
        (
            "ExitRestrictionOrder",
            lambda r: r["sealed_documents"][0].update(kind="WARRANT"),
            "sealed_documents[0].kind",
            "symbol",
        ),
        (
            "ExitRestrictionOrder",
            lambda r: r.update(sealed_documents=[]),
            "sealed_documents",
            "zf801.minItems",
        ),
        (
            "ExitRestrictionOrder",
            lambda r: r.update(sealed_documents=r["sealed_documents"] * 9),
            "sealed_documents",
            "zf801.maxItems",
        ),
        (
            "ExitRestrictionOrder",
            lambda r: r.update(issued_at=dt.datetime(2026, 3, 2, 1, 30)),
            "issued_at",
            "timezone",
        ),
        (
            "ExitRestrictionOrder",
            lambda r: r.update(issued_at="2026-03-02T01:30:00Z"),
            "issued_at",
            "type",
        ),
        ("ExitRestrictionOrder", lambda r: r.update(order_id="not-a-uuid"), "order_id", "uuid"),
        ("ExitRestrictionOrder", lambda r: r.update(subject=None), "subject", "type"),
        (
            "EnforcementCase",
            lambda r: r.update(amount_applied_for=decimal.Decimal("12.345")),
            "amount_applied_for",
            "decimal",
        ),
        (
            "EnforcementCase",
            lambda r: r.update(amount_applied_for=decimal.Decimal("1e17")),
            "amount_applied_for",
            "decimal",
        ),
        (
            "EnforcementCase",
            lambda r: r.update(amount_applied_for=decimal.Decimal("NaN")),
            "amount_applied_for",
            "decimal",
        ),
        (
            "EnforcementCase",  # beyond what Decimal's context can quantize
            lambda r: r.update(amount_applied_for=decimal.Decimal("9" * 41)),
            "amount_applied_for",
            "decimal",
        ),
        (
            "EnforcementCase",
            lambda r: r.update(amount_applied_for=1258000.0),
            "amount_applied_for",
            "type",
        ),
        (
            "EnforcementCase",
            lambda r: r.update(filing_date=dt.datetime(2016, 3, 14, tzinfo=UTC)),
            "filing_date",
            "type",
        ),
        ("EnforcementCase", lambda r: r["debtors"][1].update(name=42), "debtors[1].name", "type"),
        (
            "IdentityResult",
            lambda r: r["person"].update(photo=b"\xff" * (512 * 1024 + 1)),
            "person.photo",
            "zf801.maxLength",
        ),
        (
            "IdentityResult",
            lambda r: r["person"].update(former_names=["王"] * 17),
            "person.former_names",
            "zf801.maxItems",
        ),
        (
            "DeadLetter",
            lambda r: r["original"].update(partition=2**31),
            "original.partition",
            "type",
        ),
        (
            "DeadLetter",
            lambda r: r["original_headers"][0].update(value="text"),
            "original_headers[0].value",
            "type",
        ),
        ("VehicleSearchOrder", lambda r: r.update(impound_on_sight=1), "impound_on_sight", "type"),
    ],
)
def test_validation_error_names_path_and_rule(name: str, edit: Any, path: str, rule: str) -> None:
    error = _invalid(name, edit)
    assert (error.path, error.rule) == (path, rule)
    assert path in str(error) and rule in str(error)


def test_validation_messages_do_not_echo_personal_data() -> None:
    error = _invalid("ExitRestrictionOrder", lambda r: r["subject"].update(name="王建国" * 30))
    assert "王建国" not in str(error)


def test_optional_fields_may_be_omitted_and_take_their_defaults() -> None:
    record = example("HitConfirmation")
    del record["note"]
    _, decoded = decode(encode("HitConfirmation", record))
    assert decoded["note"] is None


def test_encode_trusted_skips_the_size_limits_but_not_the_types() -> None:
    record = example("HitConfirmation")
    record["confirmed_by"] = "黄" * 100
    with pytest.raises(SchemaValidationError):
        encode("HitConfirmation", record)
    assert decode(encode_trusted("HitConfirmation", record))[1]["confirmed_by"] == "黄" * 100
    record = {**example("HitConfirmation"), "confirmed_at": "yesterday"}
    with pytest.raises(SchemaValidationError, match="confirmed_at"):
        encode_trusted("HitConfirmation", record)


def test_validate_alone() -> None:
    validate("Hit", example("Hit"))
    with pytest.raises(SchemaValidationError, match=r"summary\.kind"):
        validate("Hit", {**example("Hit"), "summary": {**example("Hit")["summary"], "kind": "X"}})


# ---- decode errors ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["HitConfirmation", "Hit", "BorderCrossingResult"])
def test_truncation_at_every_length(name: str) -> None:
    value = encode(name, example(name))
    for length in range(len(value)):
        with pytest.raises(TruncatedPayload):
            decode(value[:length])


def test_wrong_magic() -> None:
    value = encode("HitConfirmation", example("HitConfirmation"))
    for bad in (b"\x00" + value[1:], b"\xc3\x02" + value[2:], b'{"hit_id": 1}'):
        with pytest.raises(BadMagic, match="c3 01"):
            decode(bad)


def test_trailing_bytes() -> None:
    value = encode("HitConfirmation", example("HitConfirmation"))
    with pytest.raises(TrailingBytes, match="1 byte"):
        decode(value + b"\x00")
    with pytest.raises(TrailingBytes):
        decode(value + value)


def test_unknown_fingerprint() -> None:
    value = encode("HitConfirmation", example("HitConfirmation"))
    forged = value[:2] + bytes(8) + value[HEADER_SIZE:]
    with pytest.raises(UnknownFingerprint) as caught:
        decode(forged)
    assert caught.value.fingerprint == bytes(8)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, BusError)


def test_malformed_bodies() -> None:
    schema = REGISTRY.get("OrderExpiryNotice")
    value = encode("OrderExpiryNotice", example("OrderExpiryNotice"))
    bad_utf8 = schema.header + b"\x48" + b"\xff" * 36 + value[HEADER_SIZE + 37 :]
    with pytest.raises(MalformedPayload, match="OrderExpiryNotice"):
        decode(bad_utf8)
    negative = schema.header + b"\x01" + value[HEADER_SIZE + 1 :]
    with pytest.raises(MalformedPayload, match="negative length"):
        decode(negative)
    # order_kind is the second field: enum index 9 does not exist
    kind_at = HEADER_SIZE + 1 + 36
    bad_enum = value[:kind_at] + b"\x12" + value[kind_at + 1 :]
    with pytest.raises(MalformedPayload):
        decode(bad_enum)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["HitConfirmation", "Hit", "HotelCheckIn", "DeadLetter"]),
    body=st.binary(max_size=200),
)
def test_random_bodies_decode_or_raise_a_codec_error(name: str, body: bytes) -> None:
    value = REGISTRY.get(name).header + body
    try:
        writer, record = decode(value)
    except CodecError:
        return
    assert writer.name == name and isinstance(record, dict)


@given(st.binary(max_size=64))
def test_random_bytes_raise_a_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode(data)


def test_bytearray_and_memoryview_are_accepted() -> None:
    value = encode("HitConfirmation", example("HitConfirmation"))
    assert decode(bytearray(value))[1] == decode(memoryview(value))[1] == decode(value)[1]


# ---- evolution through a reader schema ---------------------------------------------------


def _variant(name: str, change: Any) -> dict[str, Any]:
    raw = copy.deepcopy(dict(REGISTRY.get(name).raw))
    change(raw)
    return raw


def _field(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return next(field for field in raw["fields"] if field["name"] == name)


def test_old_writer_decodes_into_the_current_reader() -> None:
    registry = Registry.from_directory(SCHEMA_DIR)
    codec = Codec(registry)
    # an older HitConfirmation without the optional note
    old_raw = _variant("HitConfirmation", lambda r: r["fields"].remove(_field(r, "note")))
    old = registry.register_writer(old_raw)
    assert old.fingerprint != registry.get("HitConfirmation").fingerprint
    record = {k: v for k, v in example("HitConfirmation").items() if k != "note"}
    stream = io.BytesIO()
    schemaless_writer(stream, old.parsed, record)
    value = old.header + stream.getvalue()
    writer, as_written = codec.decode(value)
    assert writer is old and "note" not in as_written
    writer, current = codec.decode(value, "HitConfirmation")
    assert writer is old and current["note"] is None
    assert current["confirmed_by"] == "黄志明"


def test_new_enum_symbol_falls_back_to_the_reader_default() -> None:
    registry = Registry.from_directory(SCHEMA_DIR)
    codec = Codec(registry)

    def add_kind(raw: dict[str, Any]) -> None:
        raw["fields"][3]["type"]["symbols"].insert(0, "DRONE_PATROL")

    newer = registry.register_writer(_variant("VehicleEncounter", add_kind))
    stream = io.BytesIO()
    schemaless_writer(stream, newer.parsed, {**example("VehicleEncounter"), "kind": "DRONE_PATROL"})
    _, record = codec.decode(newer.header + stream.getvalue(), "VehicleEncounter")
    assert record["kind"] == "OTHER"


def test_unresolvable_reader_is_a_distinct_error() -> None:
    registry = Registry.from_directory(SCHEMA_DIR)
    codec = Codec(registry)

    def add_kind(raw: dict[str, Any]) -> None:
        raw["fields"][1]["type"]["symbols"].append("ASSET_FREEZE")

    newer = registry.register_writer(_variant("OrderExpiryNotice", add_kind))
    stream = io.BytesIO()
    schemaless_writer(
        stream, newer.parsed, {**example("OrderExpiryNotice"), "order_kind": "ASSET_FREEZE"}
    )
    with pytest.raises(SchemaResolutionError):
        codec.decode(newer.header + stream.getvalue(), "OrderExpiryNotice")


# ---- registry --------------------------------------------------------------------------


def test_registry_holds_every_family() -> None:
    assert len(REGISTRY) == 41
    assert {s.family for s in REGISTRY} == {
        "court",
        "query",
        "police",
        "orders",
        "sightings",
        "bus",
    }
    assert all(
        s.version == 1 and s.full_name == f"cn.zf801.{s.family}.v1.{s.name}" for s in REGISTRY
    )
    assert len({s.fingerprint for s in REGISTRY}) == len(REGISTRY)


def test_nested_types_of_the_same_name_are_identical_across_files() -> None:
    """Files are self-contained, so shared shapes (PersonRef, CaseHandler, OrderKind...) are
    repeated per file under a per-event namespace; they must not drift apart."""
    seen: dict[str, tuple[str, str]] = {}
    for schema in REGISTRY:
        for full, definition in schema.parsed["__named_schemas"].items():
            short = full.rpartition(".")[2]
            if full == schema.full_name:
                continue
            canonical = parsing_canonical_form(_strip_names(definition))
            previous = seen.setdefault(short, (canonical, schema.name))
            assert previous[0] == canonical, f"{short} differs in {schema.name} and {previous[1]}"


def _strip_names(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _strip_names(v) for k, v in node.items() if k != "namespace"}
        if "name" in out and out.get("type") in ("record", "enum", "fixed"):
            out["name"] = str(out["name"]).rpartition(".")[2]
        return out
    if isinstance(node, list):
        return [_strip_names(v) for v in node]
    if isinstance(node, str) and node.startswith("cn.zf801."):
        return node.rpartition(".")[2]
    return node


def _write(folder: Path, family: str, name: str, raw: dict[str, Any]) -> None:
    (folder / family).mkdir(parents=True, exist_ok=True)
    (folder / family / f"{name}.avsc").write_text(json.dumps(raw), encoding="utf-8")


def test_registry_refuses_a_misplaced_file(tmp_path: Path) -> None:
    raw = dict(REGISTRY.get("HitConfirmation").raw)
    _write(tmp_path, "orders", "HitConfirmation", raw)
    with pytest.raises(SchemaLoadError, match=r"expected orders/HitConfirmation\.avsc"):
        Registry.from_directory(tmp_path)


def test_registry_refuses_a_nested_type_defined_in_two_files(tmp_path: Path) -> None:
    nested = {"type": "record", "name": "Shared", "namespace": "cn.zf801.bus.v1", "fields": []}
    for name in ("A", "B"):
        _write(
            tmp_path,
            "bus",
            name,
            {
                "type": "record",
                "name": name,
                "namespace": "cn.zf801.bus.v1",
                "fields": [{"name": "x", "type": nested}],
            },
        )
    with pytest.raises(SchemaLoadError, match=r"cn\.zf801\.bus\.v1\.Shared is also defined"):
        Registry.from_directory(tmp_path)


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "enum", "name": "E", "symbols": ["A"]},
        {"type": "record", "name": "A", "namespace": "org.example", "fields": []},
        {
            "type": "record",
            "name": "A",
            "namespace": "cn.zf801.bus.v1",
            "fields": [{"name": "x", "type": "nope"}],
        },
        {
            "type": "record",
            "name": "A",
            "namespace": "cn.zf801.bus.v1",
            "fields": [{"name": "x", "type": ["null", "string"], "default": "none"}],
        },
        {
            "type": "record",
            "name": "A",
            "namespace": "cn.zf801.bus.v1",
            "fields": [{"name": "x", "type": ["string", "null"], "default": None}],
        },
    ],
)
def test_load_schema_refuses_non_contract_schemas(raw: dict[str, Any]) -> None:
    with pytest.raises(SchemaLoadError):
        load_schema(raw)


def test_registry_refuses_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(SchemaLoadError, match=r"no <family>/<Name>\.avsc"):
        Registry.from_directory(tmp_path)


# ---- property tests: generated records round-trip ---------------------------------------


def _strategy(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):
        return st.one_of(*[_strategy(branch, named) for branch in schema])
    kind = schema if isinstance(schema, str) else schema["type"]
    spec = schema if isinstance(schema, dict) else {}
    logical = spec.get("logicalType")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "int":
        if logical == "date":
            return st.dates()
        return st.integers(-(2**31), 2**31 - 1)
    if kind == "long":
        if logical in ("timestamp-micros", "timestamp-millis"):
            base = st.datetimes(
                dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1), timezones=st.just(UTC)
            )
            if logical == "timestamp-millis":
                return base.map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
            return base
        return st.integers(-(2**63), 2**63 - 1)
    if kind == "string":
        if logical == "uuid":
            return st.uuids()
        return st.text(max_size=min(spec.get("zf801.maxLength", 30), 30))
    if kind == "bytes":
        if logical == "decimal":
            return st.decimals(
                min_value=-(10**15),
                max_value=10**15,
                places=2,
                allow_nan=False,
                allow_infinity=False,
            )
        return st.binary(max_size=min(spec.get("zf801.maxLength", 40), 40))
    if kind == "fixed":
        return st.binary(min_size=spec["size"], max_size=spec["size"])
    if kind == "enum":
        return st.sampled_from(spec["symbols"])
    if kind == "array":
        low = spec.get("zf801.minItems", 0)
        return st.lists(_strategy(spec["items"], named), min_size=low, max_size=max(low, 3))
    assert kind == "record", kind
    return st.fixed_dictionaries({f["name"]: _strategy(f["type"], named) for f in spec["fields"]})


def _records(name: str) -> st.SearchStrategy[Any]:
    schema = REGISTRY.get(name)
    return _strategy(schema.parsed, schema.parsed["__named_schemas"])


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(
        ["HotelCheckIn", "Hit", "DeadLetter", "BorderCrossingResult", "EnforcementCase"]
    ).flatmap(lambda name: st.tuples(st.just(name), _records(name)))
)
def test_generated_records_round_trip(case: tuple[str, dict[str, Any]]) -> None:
    name, record = case
    value = encode(name, record)
    writer, decoded = decode(value)
    assert writer.name == name
    assert decoded == record
    assert encode(name, decoded) == value


def test_uuid_strings_and_objects_encode_alike() -> None:
    record = example("HitConfirmation")
    as_object = {**record, "hit_id": uuid.UUID(str(record["hit_id"]))}
    assert encode("HitConfirmation", record) == encode("HitConfirmation", as_object)
