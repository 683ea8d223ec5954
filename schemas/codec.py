"""Avro single-object encoding of bus records: ``C3 01`` + 8-byte CRC-64-AVRO fingerprint of
the writer schema (little-endian) + the Avro binary body, written and read with fastavro.

``encode`` validates (types, required and unknown fields, size limits) before writing: use it
on every public publish path. ``encode_trusted`` skips validation, for records the bus itself
builds from values that were validated when they entered it (a hit built from a verified
order and sighting). ``decode`` resolves the writer schema from the fingerprint and can read
into another (reader) schema for evolution. Each malformed value raises one distinct error.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError as _FastavroResolutionError

from schemas.errors import (
    BadMagic,
    CodecError,
    MalformedPayload,
    SchemaResolutionError,
    SchemaValidationError,
    TrailingBytes,
    TruncatedPayload,
    UnknownFingerprint,
)
from schemas.registry import MAGIC, RegisteredSchema, Registry, default_registry

__all__ = [
    "HEADER_SIZE",
    "Codec",
    "decode",
    "default_codec",
    "encode",
    "encode_trusted",
    "validate",
    "writer_schema",
]

HEADER_SIZE = 10
"""Bytes before the Avro body: 2 marker bytes and 8 fingerprint bytes."""


class _PayloadEndedError(Exception):
    """The body asked for more bytes than the value holds."""


class _NegativeLengthError(Exception):
    """A length prefix in the body is negative."""


class _StrictStream(BytesIO):
    """Used only on the error path, to tell truncation from other corruption: fastavro
    itself reports both with a mix of EOFError and IndexError."""

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size < 0:
            raise _NegativeLengthError
        chunk = super().read(size)
        if size is not None and len(chunk) < size:
            raise _PayloadEndedError
        return chunk


class Codec:
    """Encoder and decoder bound to one :class:`Registry`."""

    __slots__ = ("_by_header", "_by_name", "registry")

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry if registry is not None else default_registry()
        self._by_name = self.registry.by_name
        self._by_header = self.registry.by_header

    def schema(self, name: str) -> RegisteredSchema:
        """The current schema of a record name (``HotelCheckIn``) or full name."""
        schema = self._by_name.get(name)
        return schema if schema is not None else self.registry.get(name)

    def validate(self, name: str, record: Mapping[str, Any]) -> None:
        """Raise :class:`SchemaValidationError` naming the field path and rule."""
        self.schema(name).validator(record)

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Validate ``record`` against schema ``name`` and return its single-object bytes."""
        schema = self._by_name.get(name) or self.registry.get(name)
        schema.validator(record)
        return self._write(schema, record)

    def encode_trusted(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Single-object bytes without validation, for records the bus built from validated
        values; a record fastavro cannot write still raises :class:`SchemaValidationError`."""
        schema = self._by_name.get(name) or self.registry.get(name)
        return self._write(schema, record)

    @staticmethod
    def _write(schema: RegisteredSchema, record: Mapping[str, Any]) -> bytes:
        stream = BytesIO()
        stream.write(schema.header)
        try:
            schemaless_writer(stream, schema.parsed, record)
        except Exception as exc:  # fastavro raises TypeError, ValueError, KeyError, ...
            schema.validator(record)  # names the field when it can
            raise SchemaValidationError(schema.full_name, "", "encode", str(exc)) from exc
        return stream.getvalue()

    def writer_schema(self, value: bytes) -> RegisteredSchema:
        """The writer schema named by a value's 10-byte header, without decoding the body."""
        if type(value) is not bytes:
            value = bytes(value)
        schema = self._by_header.get(value[:HEADER_SIZE])
        return schema if schema is not None else self._header_error(value)

    def decode(
        self, value: bytes, reader_name: str | None = None
    ) -> tuple[RegisteredSchema, dict[str, Any]]:
        """``(writer schema, record)``; with ``reader_name``, the record is resolved into that
        schema's current version (Avro schema resolution) when the writer differs."""
        if type(value) is not bytes:
            value = bytes(value)
        writer = self._by_header.get(value[:HEADER_SIZE])
        if writer is None:
            writer = self._header_error(value)
        reader = None
        if reader_name is not None:
            reader_schema = self.schema(reader_name)
            if reader_schema is not writer:
                reader = reader_schema.parsed
        stream = BytesIO(value)
        stream.seek(HEADER_SIZE)
        try:
            record: dict[str, Any] = schemaless_reader(  # type: ignore[assignment]
                stream, writer.parsed, reader
            )
        except Exception as exc:  # classified on the slow path below
            raise _body_error(value, writer, reader, exc) from exc
        if stream.tell() != len(value):
            raise TrailingBytes(
                f"{len(value) - stream.tell()} byte(s) after the {writer.full_name} body"
                f" (value is {len(value)} bytes)"
            )
        return writer, record

    def _header_error(self, value: bytes) -> RegisteredSchema:
        head = value[:2]
        if head != MAGIC[: len(head)]:
            raise BadMagic(
                f"value starts with {head.hex(' ') or 'nothing'}, not the single-object"
                " marker c3 01"
            )
        if len(value) < HEADER_SIZE:
            raise TruncatedPayload(
                f"value is {len(value)} byte(s), shorter than the {HEADER_SIZE}-byte"
                " single-object header"
            )
        raise UnknownFingerprint(value[2:HEADER_SIZE])


def _body_error(
    value: bytes, writer: RegisteredSchema, reader: dict[str, Any] | None, exc: Exception
) -> CodecError:
    if isinstance(exc, _FastavroResolutionError):
        return SchemaResolutionError(f"cannot read {writer.full_name} as requested: {exc}")
    stream = _StrictStream(value)
    stream.seek(HEADER_SIZE)
    try:
        schemaless_reader(stream, writer.parsed, reader)
    except _PayloadEndedError:
        return TruncatedPayload(
            f"{writer.full_name} body ends early at byte {len(value)} (truncated, or a"
            " length prefix is corrupt)"
        )
    except _NegativeLengthError:
        return MalformedPayload(f"{writer.full_name} body has a negative length prefix")
    except Exception as again:  # any other failure is corruption of the body
        return MalformedPayload(
            f"{writer.full_name} body does not decode: {type(again).__name__}: {again}"
        )
    return MalformedPayload(f"{writer.full_name} body does not decode: {exc}")


@lru_cache(maxsize=1)
def default_codec() -> Codec:
    """The codec over :func:`~schemas.registry.default_registry`."""
    return Codec(default_registry())


def encode(name: str, record: Mapping[str, Any]) -> bytes:
    """Validate and encode with the default registry; see :meth:`Codec.encode`."""
    return default_codec().encode(name, record)


def encode_trusted(name: str, record: Mapping[str, Any]) -> bytes:
    """Encode without validation; see :meth:`Codec.encode_trusted`."""
    return default_codec().encode_trusted(name, record)


def decode(value: bytes, reader_name: str | None = None) -> tuple[RegisteredSchema, dict[str, Any]]:
    """Decode with the default registry; see :meth:`Codec.decode`."""
    return default_codec().decode(value, reader_name)


def validate(name: str, record: Mapping[str, Any]) -> None:
    """Validate with the default registry; see :meth:`Codec.validate`."""
    default_codec().validate(name, record)


def writer_schema(value: bytes) -> RegisteredSchema:
    """The writer schema of a value, from its header only; see :meth:`Codec.writer_schema`."""
    return default_codec().writer_schema(value)
