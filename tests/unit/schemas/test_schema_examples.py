"""A realistic example of every event round-trips through our codec, and the Apache Avro
reference implementation (the ``avro`` package) reads and writes the same bytes.

The examples live in ``examples/<family>/<Name>.json`` in the documented JSON mapping, so
they double as fixtures for integrators (``zf801 schemas encode Name < file``).
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import avro.io
import avro.schema
import pytest
from avro.schema import _crc_64_fingerprint
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from schemas import identifiers
from schemas.codec import HEADER_SIZE, decode, encode
from schemas.jsonmap import from_json, to_json
from schemas.registry import EXAMPLE_DIR, MAGIC, RegisteredSchema, default_registry

EXAMPLES = EXAMPLE_DIR
REGISTRY = default_registry()
SCHEMAS = {schema.full_name: schema for schema in REGISTRY}


def _example(schema: RegisteredSchema) -> Any:
    path = EXAMPLES / schema.family / f"{schema.name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _avro_schema(schema: RegisteredSchema) -> avro.schema.Schema:
    assert schema.path is not None
    return avro.schema.parse(schema.path.read_text(encoding="utf-8"))


every_schema = pytest.mark.parametrize("schema", list(SCHEMAS.values()), ids=list(SCHEMAS))


def test_every_schema_has_an_example_and_every_example_a_schema() -> None:
    examples = {
        p.relative_to(EXAMPLES).with_suffix("").as_posix() for p in EXAMPLES.rglob("*.json")
    }
    expected = {f"{s.family}/{s.name}" for s in SCHEMAS.values()}
    assert examples == expected
    assert len(expected) == 41


@every_schema
def test_example_round_trips_through_the_codec(schema: RegisteredSchema) -> None:
    document = _example(schema)
    value = encode(schema.name, from_json(schema, document))
    assert value[:HEADER_SIZE] == MAGIC + schema.fingerprint
    writer, record = decode(value)
    assert writer is schema
    # The example names every field, so the decoded record maps back to the same JSON.
    assert to_json(schema, record) == document


@every_schema
def test_reference_implementation_reads_our_bytes(schema: RegisteredSchema) -> None:
    document = _example(schema)
    value = encode(schema.name, from_json(schema, document))
    reader = avro.io.DatumReader(_avro_schema(schema))
    body = io.BytesIO(value[HEADER_SIZE:])
    record = reader.read(avro.io.BinaryDecoder(body))
    assert body.tell() == len(value) - HEADER_SIZE
    assert to_json(schema, record) == document


@every_schema
def test_reference_implementation_writes_the_same_bytes(schema: RegisteredSchema) -> None:
    record = from_json(schema, _example(schema))
    out = io.BytesIO()
    avro.io.DatumWriter(_avro_schema(schema)).write(record, avro.io.BinaryEncoder(out))
    assert MAGIC + schema.fingerprint + out.getvalue() == encode(schema.name, record)


# avro 1.12 keeps {"type":"long"} for a primitive carrying a logical type, where the spec's
# [PRIMITIVES] rule, Java's SchemaNormalization and fastavro write "long". Every one of our
# schemas has a timestamp, so its raw avro fingerprint differs; after undoing exactly that
# one divergence the forms must be identical.
_WRAPPED_PRIMITIVE = re.compile(r'\{"type":"(null|boolean|int|long|float|double|bytes|string)"\}')


@every_schema
def test_fingerprint_matches_reference_implementations(schema: RegisteredSchema) -> None:
    reference = _avro_schema(schema)
    avro_form = _WRAPPED_PRIMITIVE.sub(r'"\1"', reference.canonical_form)
    assert avro_form == schema.canonical_form
    assert _crc_64_fingerprint(schema.canonical_form.encode()) == schema.fingerprint
    assert to_parsing_canonical_form(schema.parsed) == schema.canonical_form
    fast = fastavro_fingerprint(schema.canonical_form, "CRC-64-AVRO")
    assert bytes.fromhex(fast) == schema.fingerprint


def _identifier_check(rule: str, value: str) -> str:
    if rule == "organisation_code":
        if len(value) == 18:
            return identifiers.normalise_credit_code(value)
        return identifiers.normalise_organisation_code(value)
    if rule in ("unit_code", "agency_code"):
        return identifiers.normalise_agency_code(value)
    checks = {
        "id_number": identifiers.normalise_id_number,
        "plate_number": identifiers.normalise_plate_number,
        "vin": identifiers.normalise_vin,
        "case_number": identifiers.normalise_case_number,
        "court_code": identifiers.normalise_court_code,
        "phone": identifiers.normalise_phone,
    }
    if rule in checks:
        return checks[rule](value)
    if rule == "province_code":
        assert re.fullmatch(r"[1-8][0-9]", value)
    elif rule == "country_or_region":
        assert re.fullmatch(r"[A-Z]{3}", value)
    else:
        raise AssertionError(f"no check for identifier rule {rule}")
    return value


def _identifiers(
    schema: Any, value: Any, named: dict[str, Any], found: list[tuple[str, str]]
) -> None:
    """Collect (rule, value) for every string whose type names a zf801.identifier."""
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):
        branch = next(b for b in schema if b != "null")
        if value is not None:
            _identifiers(branch, value, named, found)
        return
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "record":
        for field in schema["fields"]:
            _identifiers(field["type"], value[field["name"]], named, found)
    elif schema.get("type") == "array":
        for item in value:
            _identifiers(schema["items"], item, named, found)
    elif "zf801.identifier" in schema:
        found.append((schema["zf801.identifier"], value))


@every_schema
def test_example_identifiers_pass_the_edge_rules_unchanged(schema: RegisteredSchema) -> None:
    found: list[tuple[str, str]] = []
    _identifiers(schema.parsed, _example(schema), schema.parsed["__named_schemas"], found)
    for rule, value in found:
        assert _identifier_check(rule, value) == value, (rule, value)


def test_identifier_rules_named_by_the_schemas() -> None:
    rules = set()
    for schema in SCHEMAS.values():
        rules.update(re.findall(r'"zf801.identifier": "([a-z_]+)"', json.dumps(schema.raw)))
    assert rules == {
        "id_number",
        "organisation_code",
        "plate_number",
        "vin",
        "case_number",
        "court_code",
        "unit_code",
        "agency_code",
        "phone",
        "province_code",
        "country_or_region",
    }
