"""A received record's headers read in one pass, for both checks that need them: the
signature's (sizes and duplicates before any crypto, :mod:`sign.events`) and the
envelope's (forms and UTF-8, :func:`schemas.envelope.parse_received`). Nothing is raised
here: the first fault each check would find is kept for it, so the verify stage still
checks the signature first and a tampered record still reads as BAD_SIGNATURE."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from schemas.errors import EnvelopeError, HeaderDuplicated, HeaderMalformed, HeaderTooLarge
from schemas.headers import MAX_HEADER_NAME_BYTES, MAX_HEADER_VALUE_BYTES, MAX_HEADERS

__all__ = ["HeaderFault", "ReceivedHeaders", "read_headers"]

Headers = tuple[tuple[str, bytes], ...]

# A character is at most 4 UTF-8 bytes: shorter names need no encoding to be measured.
_SHORT_NAME = MAX_HEADER_NAME_BYTES // 4


@dataclass(frozen=True, slots=True)
class HeaderFault:
    """The first header the signature check refuses before any crypto: over its size
    limit (value bytes or name characters), or a second one of a watched name."""

    name: str
    size: int
    limit: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class ReceivedHeaders:
    """What one pass over a record's headers found."""

    count: int
    values: Mapping[str, bytes]
    """The first value of each name (an absent value as empty bytes)."""
    fault: HeaderFault | None
    """For the signature check (:func:`read_headers`' ``limits`` and ``watched``)."""
    kept: Headers
    """The headers as the envelope keeps them (up to its first problem)."""
    texts: Mapping[str, str]
    """Each kept header's value as text."""
    problem: EnvelopeError | None
    """The envelope's first problem: too many, too large, no value, twice, not UTF-8."""


def read_headers(
    headers: Iterable[tuple[str, bytes | None]],
    limits: Mapping[str, int],
    watched: Collection[str],
) -> ReceivedHeaders:
    """One pass: ``limits`` are the signature check's value sizes by name (others:
    ``MAX_HEADER_VALUE_BYTES``), ``watched`` the names it allows once."""
    values: dict[str, bytes] = {}
    kept: list[tuple[str, bytes]] = []
    texts: dict[str, str] = {}
    fault: HeaderFault | None = None
    problem: EnvelopeError | None = None
    count = 0
    for name, value in headers:
        count += 1
        raw = b"" if value is None else value if type(value) is bytes else bytes(value)
        if fault is None:
            limit = limits.get(name, MAX_HEADER_VALUE_BYTES)
            if len(raw) > limit or len(name) > MAX_HEADER_NAME_BYTES:
                fault = HeaderFault(name, len(raw), limit, duplicate=False)
            elif name in watched and name in values:
                fault = HeaderFault(name, len(raw), limit, duplicate=True)
        if problem is None:
            problem = _envelope_problem(name, value, raw, len(kept), texts)
        if problem is None:
            try:
                texts[name] = raw.decode("utf-8")
                kept.append((name, raw))
            except UnicodeDecodeError as exc:
                problem = HeaderMalformed(name, "value is not UTF-8")
                problem.__cause__ = exc
        if name not in values:
            values[name] = raw
    return ReceivedHeaders(count, values, fault, tuple(kept), texts, problem)


def _envelope_problem(
    name: str, value: bytes | None, raw: bytes, position: int, texts: Mapping[str, str]
) -> EnvelopeError | None:
    """What the envelope refuses in this header's name, size or place (None: nothing)."""
    if position == MAX_HEADERS:
        return HeaderTooLarge(name, f"more than {MAX_HEADERS} headers on one record")
    if len(name) > _SHORT_NAME and len(name.encode("utf-8", "replace")) > MAX_HEADER_NAME_BYTES:
        return HeaderTooLarge(name[:MAX_HEADER_NAME_BYTES], "header name too long")
    if value is None:
        return HeaderMalformed(name, "header has no value")
    if len(raw) > MAX_HEADER_VALUE_BYTES:
        return HeaderTooLarge(name, f"{len(raw)} bytes, at most {MAX_HEADER_VALUE_BYTES} allowed")
    if name in texts:
        return HeaderDuplicated(name, "header occurs more than once")
    return None
