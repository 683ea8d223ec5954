"""The CloudEvents 1.0 envelope of a bus record (Kafka protocol binding, binary mode).

:func:`build_record` turns a record into ``(key, value, headers)``: validated, encoded as
Avro single-object bytes, with ``ce_*`` headers, ``content-type`` and a W3C
``traceparent``. :func:`parse_record` checks the headers of a received record (each
missing, duplicated, malformed or oversized header is a distinct error naming it),
checks that ``ce_type`` is the full name of the value's writer schema, and decodes the
value lazily. Signature headers are added and verified by ``sign``.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from schemas.codec import Codec, default_codec
from schemas.errors import (
    HeaderMalformed,
    HeaderMissing,
    TruncatedPayload,
    TypeMismatch,
)
from schemas.headers import (
    CE_ID,
    CE_SOURCE,
    CE_SPECVERSION,
    CE_TIME,
    CE_TYPE,
    CONTENT_TYPE,
    CONTENT_TYPE_AVRO,
    ENVELOPE_HEADERS,
    MAX_HEADER_NAME_BYTES,
    SOURCE_PREFIX,
    SPECVERSION,
    TRACEPARENT,
)
from schemas.received_headers import ReceivedHeaders, read_headers
from schemas.registry import RegisteredSchema

__all__ = [
    "Envelope",
    "KafkaRecord",
    "agency_of",
    "agency_source",
    "build_record",
    "child_traceparent",
    "format_time",
    "from_micros",
    "new_traceparent",
    "parse_received",
    "parse_record",
    "parse_time",
    "to_micros",
]

Headers = tuple[tuple[str, bytes], ...]

_AGENCY = r"[A-Za-z0-9][A-Za-z0-9-]{1,31}"
_SOURCE_RE = re.compile(rf"^{re.escape(SOURCE_PREFIX)}(?P<agency>{_AGENCY})$")
_TYPE_RE = re.compile(r"^cn\.zf801\.[a-z]+\.v[1-9][0-9]*\.[A-Z][A-Za-z0-9]*$")
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TRACEPARENT_RE = re.compile(r"^00-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-[0-9a-f]{2}$")
_EXTENSION_RE = re.compile(r"^ce_[a-z0-9]{1,20}$")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_SHORT_NAME = MAX_HEADER_NAME_BYTES // 4
# Extension attribute names already matched (the signature headers, ce_altkeys): a few,
# repeated on every record; bounded so that hostile names cannot grow it.
_EXTENSION_NAMES: set[str] = set()
_EXTENSION_NAMES_KEPT = 64


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """What a producer sends: key, value and headers (name, UTF-8 value bytes)."""

    key: bytes | None
    value: bytes
    headers: Headers

    def header(self, name: str) -> bytes | None:
        """The value of header ``name`` (the first one if repeated), or None."""
        for header_name, value in self.headers:
            if header_name == name:
                return value
        return None

    def with_headers(self, *extra: tuple[str, bytes]) -> KafkaRecord:
        """A copy with ``extra`` headers appended (e.g. the signature headers)."""
        return KafkaRecord(self.key, self.value, self.headers + tuple(extra))


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def to_micros(instant: dt.datetime) -> int:
    """Exact microseconds since the epoch of an aware datetime (naive ones are taken as UTC);
    ``int(instant.timestamp() * 1e6)`` goes through a float and can be off by one."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=dt.UTC)
    delta = instant - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> dt.datetime:
    """The UTC instant ``micros`` microseconds after the epoch (inverse of :func:`to_micros`)."""
    return _EPOCH + dt.timedelta(microseconds=micros)


def format_time(instant: dt.datetime) -> str:
    """RFC 3339 UTC with microseconds, the only form ``ce_time`` takes."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise HeaderMalformed(CE_TIME, "time must be timezone-aware")
    try:
        utc = instant.astimezone(dt.UTC)
    except OverflowError as exc:
        raise HeaderMalformed(CE_TIME, "time is out of range in UTC") from exc
    # isoformat, not strftime: %Y does not zero-pad years before 1000 on every platform.
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time(text: str) -> dt.datetime:
    """Parse a ``ce_time`` value (``2026-11-27T05:00:00.123456Z``) into an aware datetime."""
    if not _TIME_RE.match(text):
        raise HeaderMalformed(CE_TIME, "not RFC 3339 UTC with microseconds (…T05:00:00.123456Z)")
    try:
        # The pattern above fixes the form; fromisoformat reads it ten times faster than
        # strptime and refuses the same impossible dates (month 13, February 30).
        return dt.datetime.fromisoformat(text)  # the trailing Z reads as UTC
    except ValueError as exc:
        raise HeaderMalformed(CE_TIME, f"not a real instant: {exc}") from exc


def agency_source(agency_code: str) -> str:
    """The ``ce_source`` URI of an agency: ``zf801:agency/<AGENCY_CODE>``."""
    source = SOURCE_PREFIX + agency_code
    if not _SOURCE_RE.match(source):
        raise HeaderMalformed(
            CE_SOURCE, f"agency code {agency_code!r} is not 2-32 of A-Z a-z 0-9 -"
        )
    return source


def agency_of(source: str) -> str:
    """The agency code in a ``ce_source`` URI."""
    match = _SOURCE_RE.match(source)
    if match is None:
        raise HeaderMalformed(CE_SOURCE, f"{source[:80]!r} is not {SOURCE_PREFIX}<AGENCY_CODE>")
    return match["agency"]


def new_traceparent() -> str:
    """A fresh W3C traceparent (version 00, sampled)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child_traceparent(parent: str) -> str:
    """Same trace, new span: for an event caused by the one carrying ``parent``."""
    _check_traceparent(parent)
    return f"{parent[:36]}{secrets.token_hex(8)}{parent[52:]}"


def _check_traceparent(text: str) -> None:
    match = _TRACEPARENT_RE.match(text)
    if match is None:
        raise HeaderMalformed(TRACEPARENT, "not a W3C traceparent 00-<32 hex>-<16 hex>-<2 hex>")
    if match["trace"] == _ZERO_TRACE or match["span"] == _ZERO_SPAN:
        raise HeaderMalformed(TRACEPARENT, "trace id and parent id must not be all zeros")


def _event_id(event_id: uuid.UUID | str | None) -> str:
    if event_id is None:
        return str(uuid.uuid4())
    text = str(event_id)
    if not _UUID_RE.match(text):
        raise HeaderMalformed(CE_ID, "event id must be a UUID in lower-case 8-4-4-4-12 form")
    return text


def build_record(
    schema_name: str,
    record: Mapping[str, Any],
    *,
    key: bytes | None,
    source: str,
    event_id: uuid.UUID | str | None = None,
    time: dt.datetime | None = None,
    traceparent: str | None = None,
    validate: bool = True,
    codec: Codec | None = None,
) -> KafkaRecord:
    """Validate and encode ``record`` and wrap it in the CloudEvents headers.

    ``source`` is the agency URI (see :func:`agency_source`); ``event_id`` defaults to a
    random UUID, ``time`` to now, ``traceparent`` to a fresh trace. ``validate=False`` is
    for records the bus built itself from already-validated values.
    """
    if key is not None and type(key) is not bytes:
        raise TypeError(f"record key must be bytes or None, got {type(key).__name__}")
    codec = codec or default_codec()
    schema = codec.schema(schema_name)
    value = (
        codec.encode(schema_name, record) if validate else codec.encode_trusted(schema_name, record)
    )
    agency_of(source)
    if traceparent is None:
        traceparent = new_traceparent()
    else:
        _check_traceparent(traceparent)
    when = format_time(time if time is not None else dt.datetime.now(dt.UTC))
    headers = (
        (CE_SPECVERSION, SPECVERSION.encode()),
        (CE_ID, _event_id(event_id).encode()),
        (CE_SOURCE, source.encode()),
        (CE_TYPE, schema.full_name.encode()),
        (CE_TIME, when.encode()),
        (CONTENT_TYPE, CONTENT_TYPE_AVRO.encode()),
        (TRACEPARENT, traceparent.encode()),
    )
    return KafkaRecord(key, value, headers)


@dataclass(frozen=True, eq=False)
class Envelope:
    """A received record whose envelope has been checked; the value decodes on demand."""

    key: bytes | None
    value: bytes
    headers: Headers
    id: str
    source: str
    type: str
    time: dt.datetime
    traceparent: str
    schema: RegisteredSchema
    """The writer schema named by the value's fingerprint (its full name is ``type``)."""
    extensions: Mapping[str, str] = field(default_factory=dict)
    """Other ``ce_*`` attributes (e.g. the signature headers), decoded as text."""
    _codec: Codec = field(default_factory=default_codec, repr=False)

    @property
    def agency(self) -> str:
        """The agency code of ``ce_source``."""
        return agency_of(self.source)

    def header(self, name: str) -> bytes | None:
        """Raw value of header ``name``, or None."""
        for header_name, value in self.headers:
            if header_name == name:
                return value
        return None

    def decode(self, reader_name: str | None = None) -> dict[str, Any]:
        """Decode the value (into ``reader_name``'s current schema when given)."""
        return self._codec.decode(self.value, reader_name)[1]

    @cached_property
    def record(self) -> dict[str, Any]:
        """The value decoded with its writer schema (decoded once, on first access)."""
        return self.decode()


def _check_extension_name(name: str) -> None:
    if name in _EXTENSION_NAMES:
        return
    if not _EXTENSION_RE.match(name):
        raise HeaderMalformed(name, "extension attribute names are ce_ + [a-z0-9]{1,20}")
    if len(_EXTENSION_NAMES) < _EXTENSION_NAMES_KEPT:
        _EXTENSION_NAMES.add(name)


def _required(texts: Mapping[str, str], name: str) -> str:
    try:
        return texts[name]
    except KeyError:
        raise HeaderMissing(name, "required header is missing") from None


def parse_record(
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes | None]],
    *,
    codec: Codec | None = None,
) -> Envelope:
    """Check a received record's envelope; raises an :class:`~schemas.errors.EnvelopeError`
    naming the header, or a :class:`~schemas.errors.CodecError` for the value's header.
    The Avro body is not decoded here (see :attr:`Envelope.record`)."""
    return parse_received(key, value, read_headers(headers, {}, ()), codec=codec)


def parse_received(
    key: bytes | None, value: bytes | None, received: ReceivedHeaders, *, codec: Codec | None = None
) -> Envelope:
    """:func:`parse_record` of headers already read (:func:`read_headers`), as the verify
    stage reads them once for the signature and the envelope."""
    codec = codec or default_codec()
    if received.problem is not None:
        raise received.problem
    kept, texts = received.kept, received.texts
    for name in ENVELOPE_HEADERS:
        _required(texts, name)
    if texts[CE_SPECVERSION] != SPECVERSION:
        raise HeaderMalformed(CE_SPECVERSION, f"must be {SPECVERSION}")
    if texts[CONTENT_TYPE] != CONTENT_TYPE_AVRO:
        raise HeaderMalformed(CONTENT_TYPE, f"must be {CONTENT_TYPE_AVRO}")
    event_id = _event_id(texts[CE_ID])
    agency_of(texts[CE_SOURCE])
    event_type = texts[CE_TYPE]
    if not _TYPE_RE.match(event_type):
        raise HeaderMalformed(CE_TYPE, "not a schema full name cn.zf801.<family>.v<N>.<Name>")
    time = parse_time(texts[CE_TIME])
    _check_traceparent(texts[TRACEPARENT])
    extensions = {}
    for name, text in texts.items():
        if name.startswith("ce_") and name not in ENVELOPE_HEADERS:
            _check_extension_name(name)
            extensions[name] = text
    if value is None:
        raise TruncatedPayload("record has no value (a tombstone is not an event)")
    value = bytes(value)
    writer = codec.writer_schema(value)
    if writer.full_name != event_type:
        raise TypeMismatch(
            CE_TYPE, f"says {event_type} but the value was written as {writer.full_name}"
        )
    return Envelope(
        key=None if key is None else bytes(key),
        value=value,
        headers=kept,
        id=event_id,
        source=texts[CE_SOURCE],
        type=event_type,
        time=time,
        traceparent=texts[TRACEPARENT],
        schema=writer,
        extensions=extensions,
        _codec=codec,
    )
