"""Reading what ``zf801 publish`` is fed: JSON lines (or one pretty-printed document), each
line at most 1 MiB and refused unread beyond that, parsed strictly (no NaN or Infinity, no
duplicate keys, bounded nesting), and text values free of control characters, bidirectional
overrides and lone surrogates."""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from ops.errors import OpsError
from schemas.jsonmap import field_path

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_SKIP_BYTES",
    "BadLine",
    "InputAbandonedError",
    "InputError",
    "check_text",
    "raw_lines",
    "read_documents",
]

MAX_LINE_BYTES = 1 << 20
"""Longest accepted line (and single document): no bus event comes near 1 MiB."""
MAX_SKIP_BYTES = 16 << 20
"""How far past the limit a refused line is skipped to find its end before the input is
abandoned (endless input without line ends, such as ``/dev/zero``)."""

_SKIP_CHUNK = 1 << 16
_BOM = "\ufeff"
# Text that may be displayed to an officer: no control characters but tab and newlines,
# no bidirectional overrides (they make a name read differently from its bytes).
_REFUSED = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


@dataclass(frozen=True, slots=True)
class BadLine:
    """A refused input line and why."""

    line: int
    error: str


class InputError(OpsError, ValueError):
    """A line that is not a usable JSON object, or text that may not be published."""


class InputAbandonedError(OpsError):
    """The input cannot be read on (a line without end): the lines before it stand."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line


def raw_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) per line, read as the stream is consumed; None for a line over
    the limit, whose rest is skipped without being held. A line with no end within
    :data:`MAX_SKIP_BYTES` (``/dev/zero``) ends the input: :class:`InputAbandonedError`."""
    number = 0
    while chunk := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
            skipped = len(chunk)
            while (rest := stream.readline(_SKIP_CHUNK)) and not rest.endswith(b"\n"):
                skipped += len(rest)
                if skipped > MAX_SKIP_BYTES:
                    raise InputAbandonedError(
                        number,
                        f"longer than {MAX_LINE_BYTES} bytes and no line end within "
                        f"{MAX_SKIP_BYTES} bytes: the rest of the input is not read",
                    )
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


_MAX_INT_DIGITS = 40
"""More digits than any number a field holds (a decimal amount has 18)."""


class _NoNumber:
    """Parsed in place of what JSON does not allow as a number (``NaN``, ``Infinity``, an
    integer of thousands of digits), so that the refusal can name the field it is in."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


def _where(document: Any, path: str = "") -> tuple[str, _NoNumber] | None:
    """The field path of the first :class:`_NoNumber` in ``document``."""
    if isinstance(document, _NoNumber):
        return path or "the document", document
    if isinstance(document, dict):
        items: Any = document.items()
    elif isinstance(document, list):
        items = ((f"[{i}]", item) for i, item in enumerate(document))
    else:
        return None
    for key, item in items:
        found = _where(item, field_path(path, key))
        if found is not None:
            return found
    return None


def _parse(text: str) -> Any:
    odd: list[_NoNumber] = []

    def constant(name: str) -> _NoNumber:
        odd.append(_NoNumber(f"{name} is not a JSON number"))
        return odd[-1]

    def integer(digits: str) -> int | _NoNumber:
        if len(digits.lstrip("-")) <= _MAX_INT_DIGITS:
            return int(digits)
        odd.append(_NoNumber(f"a number of {len(digits.lstrip('-')):,} digits"))
        return odd[-1]

    def real(digits: str) -> float | _NoNumber:
        value = float(digits)
        if math.isfinite(value):
            return value
        odd.append(_NoNumber(f"{digits[:24]} is beyond the range of a number"))
        return odd[-1]

    try:
        document = json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=constant, parse_int=integer,
            parse_float=real,
        )  # fmt: skip
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise InputError(f"not valid JSON: {exc.msg} ({where})") from None
    except RecursionError:
        raise InputError("not valid JSON: nested too deeply") from None
    except ValueError as exc:  # InputError
        raise InputError(str(exc)) from None
    if odd:
        path, marker = _where(document) or ("the document", odd[0])
        raise InputError(f"{path}: {marker.why} [rule json.number]")
    return document


def _decode(raw: bytes, first: bool) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 (byte {exc.start + 1} of the line)") from None
    return text.removeprefix(_BOM) if first else text


def read_documents(stream: IO[bytes]) -> Iterator[tuple[int, Any | BadLine]]:
    """(line number, parsed document or :class:`BadLine`), one line at a time as the stream
    is read. A single JSON document spread over several lines (pretty-printed, at most
    :data:`MAX_LINE_BYTES` in all) is read as one, at its first line: when the first line
    opens an object or array but is not JSON by itself, up to that many bytes are looked
    ahead. Raises
    :class:`InputAbandonedError` for input that cannot be read on (see :func:`raw_lines`)."""
    lines = raw_lines(stream)
    ahead: list[tuple[int, bytes | None]] = []
    for number, raw in lines:
        ahead.append((number, raw))
        if raw is not None and raw.strip():
            break
    opening = (ahead[-1][1] or b"").lstrip().removeprefix(_BOM.encode()) if ahead else b""
    if opening[:1] in (b"{", b"[") and _not_json(ahead[-1]):
        document = yield from _whole_document(ahead, lines)
        if document:
            return
    for number, raw in itertools.chain(ahead, lines):
        if raw is None:
            yield number, BadLine(number, f"longer than {MAX_LINE_BYTES} bytes: refused unread")
        elif raw.strip():
            yield number, _document(number, raw)


def _document(number: int, raw: bytes) -> Any | BadLine:
    try:
        return _parse(_decode(raw, number == 1))
    except InputError as exc:
        return BadLine(number, str(exc))


def _not_json(line: tuple[int, bytes | None]) -> bool:
    number, raw = line
    return isinstance(_document(number, raw or b""), BadLine)


def _whole_document(
    ahead: list[tuple[int, bytes | None]], lines: Iterator[tuple[int, bytes | None]]
) -> Generator[tuple[int, Any | BadLine], None, bool]:
    """Read on (into ``ahead``) while the input may be one document; yield it (or its
    error, when it opens with a lone brace) and return True if it is one, else return
    False with every line read kept in ``ahead``."""
    size = sum(len(raw or b"") for _, raw in ahead)
    for number, raw in lines:
        ahead.append((number, raw))
        size += len(raw or b"")
        if raw is None or size > MAX_LINE_BYTES:
            return False
    whole = b"".join(raw or b"" for _, raw in ahead)
    first = next(number for number, raw in ahead if raw and raw.strip())
    try:
        document: Any | BadLine = _parse(_decode(whole, True))
    except InputError as exc:
        opening = next(raw for _, raw in ahead if raw and raw.strip()).strip()
        if opening not in (b"{", b"["):  # JSON lines whose first is bad: each on its own
            return False
        document = BadLine(first, str(exc))  # a pretty-printed document: one error
    yield first, document
    return True


def check_text(value: Any, path: str) -> None:
    """Refuse control characters (but tab and line ends), bidirectional overrides and lone
    surrogates anywhere in a document, naming the first offending value's path."""
    if isinstance(value, str):
        if (found := _REFUSED.search(value)) is None:
            return
        cp = ord(found.group())
        if 0xD800 <= cp <= 0xDFFF:
            raise InputError(f"{path}: lone surrogate U+{cp:04X} is not text [rule text]")
        raise InputError(f"{path}: control character U+{cp:04X} refused [rule text]")
    if isinstance(value, Mapping):
        for name, item in value.items():
            if isinstance(item, str) and _REFUSED.search(item) is None:
                continue  # the common case, without building the path
            check_text(item, f"{path}.{name}" if path else str(name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_text(item, f"{path}[{index}]")
