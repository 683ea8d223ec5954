"""Codec: single-object encode/decode per second next to raw fastavro on the same records.

The raw loop is what any fastavro user writes (``BytesIO`` + ``schemaless_writer`` /
``schemaless_reader`` with a pre-parsed schema); the codec adds the name lookup, the
10-byte header, the header check, the fingerprint lookup and the trailing-bytes check.
Validation is measured apart: ``encode`` = validation + ``encode_trusted``. The two loops
alternate within each repetition and the best repetition counts, so drift hits both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from schemas.codec import HEADER_SIZE, default_codec
from schemas.jsonmap import from_json
from schemas.registry import EXAMPLE_DIR, RegisteredSchema, default_registry

__all__ = ["run"]

EXAMPLES = EXAMPLE_DIR
_REPEATS = 7
_TARGET_S = 0.08


def _records() -> list[tuple[RegisteredSchema, dict[str, Any]]]:
    registry = default_registry()
    out = []
    for schema in registry:
        path = EXAMPLES / schema.family / f"{schema.name}.json"
        record = from_json(schema, json.loads(path.read_text(encoding="utf-8")))
        out.append((schema, record))
    return out


def _pick(
    cases: list[tuple[RegisteredSchema, dict[str, Any]]],
) -> list[tuple[str, RegisteredSchema, dict[str, Any]]]:
    codec = default_codec()
    sized = sorted(cases, key=lambda case: len(codec.encode(case[0].name, case[1])))
    smallest, largest = sized[0], sized[-1]
    # The largest value is mostly one bytes field (a memcpy); the record with the most Avro
    # items to walk is the honest worst case for per-field work, so it is measured too.
    by_items = max(
        cases, key=lambda case: len(json.dumps(case[1], default=str)) - _bytes_len(case[1])
    )
    picked = [("smallest", *smallest), ("largest", *largest)]
    if by_items[0] is not largest[0]:
        picked.append(("most fields", *by_items))
    return picked


def _bytes_len(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return len(value) * 2
    if isinstance(value, dict):
        return sum(_bytes_len(v) for v in value.values())
    if isinstance(value, list):
        return sum(_bytes_len(v) for v in value)
    return 0


def _calibrate(fn: Callable[[], object]) -> int:
    loops = 1
    while True:
        started = time.perf_counter()
        for _ in range(loops):
            fn()
        if time.perf_counter() - started > _TARGET_S / 4:
            return max(1, int(loops * _TARGET_S / (time.perf_counter() - started)))
        loops *= 4


def _best_pair(raw: Callable[[], object], ours: Callable[[], object]) -> tuple[float, float]:
    """Best seconds per call of each function, their loops interleaved."""
    loops = _calibrate(raw)
    best_raw = best_ours = float("inf")
    for _ in range(_REPEATS):
        for fn, is_raw in ((raw, True), (ours, False)):
            started = time.perf_counter()
            for _ in range(loops):
                fn()
            per_call = (time.perf_counter() - started) / loops
            if is_raw:
                best_raw = min(best_raw, per_call)
            else:
                best_ours = min(best_ours, per_call)
    return best_raw, best_ours


def _row(label: str, event: str, operation: str, raw_s: float, ours_s: float) -> dict[str, object]:
    return {
        "event": f"{label}: {event}",
        "operation": operation,
        "raw fastavro /s": f"{1 / raw_s:,.0f}",
        "codec /s": f"{1 / ours_s:,.0f}",
        "µs per call raw → codec": f"{raw_s * 1e6:.2f} → {ours_s * 1e6:.2f}",
        "overhead": f"{(ours_s / raw_s - 1) * 100:+.1f}%",
    }


def _measure(
    label: str, schema: RegisteredSchema, record: dict[str, Any]
) -> list[dict[str, object]]:
    codec = default_codec()
    name, parsed = schema.name, schema.parsed
    value = codec.encode(name, record)
    body = value[HEADER_SIZE:]
    event = f"{name} ({len(value):,} B)"

    def raw_write() -> bytes:
        stream = BytesIO()
        schemaless_writer(stream, parsed, record)
        return stream.getvalue()

    def raw_read() -> object:
        return schemaless_reader(BytesIO(body), parsed, None)

    rows = []
    raw_s, ours_s = _best_pair(raw_write, lambda: codec.encode_trusted(name, record))
    rows.append(_row(label, event, "encode_trusted (no validation)", raw_s, ours_s))
    raw_s, ours_s = _best_pair(raw_read, lambda: codec.decode(value))
    rows.append(_row(label, event, "decode", raw_s, ours_s))
    raw_s, ours_s = _best_pair(raw_write, lambda: codec.encode(name, record))
    rows.append(_row(label, event, "encode (validates)", raw_s, ours_s))
    return rows


def run() -> list[dict[str, object]]:
    """Rows: per picked event, encode without and with validation and decode, vs raw."""
    rows: list[dict[str, object]] = []
    for label, schema, record in _pick(_records()):
        rows.extend(_measure(label, schema, record))
    return rows
