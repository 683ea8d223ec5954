"""Reading what ``zf801 publish`` is fed: JSON lines (or one pretty-printed document), each
line at most 1 MiB and refused unread beyond that, parsed strictly (no NaN or Infinity, no
duplicate keys, bounded nesting), and text values free of control characters, bidirectional
overrides and lone surrogates."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from ops.errors import OpsError

__all__ = ["MAX_LINE_BYTES", "BadLine", "InputError", "check_text", "read_documents"]

MAX_LINE_BYTES = 1 << 20
"""Longest accepted line (and single document): no bus event comes near 1 MiB."""

_SKIP_CHUNK = 1 << 16
_BOM = "\ufeff"
# Text that may be displayed to an officer: no control characters but tab and newlines,
# no bidirectional overrides (they make a name read differently from its bytes).
_BIDI = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))


@dataclass(frozen=True, slots=True)
class BadLine:
    """A refused input line and why."""

    line: int
    error: str


class InputError(OpsError, ValueError):
    """A line that is not a usable JSON object, or text that may not be published."""


def _raw_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) per line; None for a line over the limit, whose rest is skipped
    without being held in memory."""
    number = 0
    while chunk := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
            while (rest := stream.readline(_SKIP_CHUNK)) and not rest.endswith(b"\n"):
                pass
            yield number, None
        else:
            yield number, chunk


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for name, value in pairs:
        if name in document:
            raise InputError(f"key {name!r} appears twice in one object")
        document[name] = value
    return document


def _no_constant(name: str) -> Any:
    raise InputError(f"{name} is not a JSON number")


def _parse(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise InputError(f"not valid JSON: {exc.msg} ({where})") from None
    except RecursionError:
        raise InputError("not valid JSON: nested too deeply") from None
    except ValueError as exc:  # InputError, or an integer with too many digits
        raise InputError(str(exc)) from None


def _decode(raw: bytes, first: bool) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 (byte {exc.start + 1} of the line)") from None
    return text.removeprefix(_BOM) if first else text


def read_documents(stream: IO[bytes]) -> Iterator[tuple[int, Any | BadLine]]:
    """(line number, parsed document or :class:`BadLine`) for JSON lines; a single JSON
    document spread over several lines (pretty-printed) is read as one, at its first line."""
    lines = list(_raw_lines(stream))
    content = [(n, raw) for n, raw in lines if raw is None or raw.strip()]
    if len(content) > 1 and all(raw is not None for _, raw in content):
        first_line, first_raw = content[0]
        try:
            _parse(_decode(first_raw or b"", first_line == 1))
        except InputError:
            yield from _whole_document(lines, first_line)
            return
    for number, raw in content:
        if raw is None:
            yield number, BadLine(number, f"longer than {MAX_LINE_BYTES} bytes: refused unread")
            continue
        try:
            yield number, _parse(_decode(raw, number == 1))
        except InputError as exc:
            yield number, BadLine(number, str(exc))


def _whole_document(
    lines: list[tuple[int, bytes | None]], first_line: int
) -> Iterator[tuple[int, Any | BadLine]]:
    whole = b"".join(raw or b"" for _, raw in lines)
    if len(whole) > MAX_LINE_BYTES:
        yield first_line, BadLine(first_line, f"document longer than {MAX_LINE_BYTES} bytes")
        return
    try:
        yield first_line, _parse(_decode(whole, True))
    except InputError as exc:
        yield first_line, BadLine(first_line, str(exc))


def check_text(value: Any, path: str) -> None:
    if isinstance(value, str):
        for ch in value:
            cp = ord(ch)
            if 0xD800 <= cp <= 0xDFFF:
                raise InputError(f"{path}: lone surrogate U+{cp:04X} is not text [rule text]")
            if (cp < 0x20 and ch not in "\t\n\r") or 0x7F <= cp <= 0x9F or cp in _BIDI:
                raise InputError(f"{path}: control character U+{cp:04X} refused [rule text]")
    elif isinstance(value, Mapping):
        for name, item in value.items():
            check_text(item, f"{path}.{name}" if path else str(name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_text(item, f"{path}[{index}]")
