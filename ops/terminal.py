"""Text on its way to an operator's terminal: anything that came from input or from a topic
passes :func:`printable` first, so an ANSI escape, a carriage return or a bidirectional
override in a hostile field name or value is shown escaped and cannot move the cursor,
recolour the screen or make a line read differently from its bytes."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from typing import Any

__all__ = ["json_line", "printable"]

# Unicode categories that do not print: controls, format characters (bidi overrides,
# zero-width characters), line and paragraph separators, surrogates, private use, unassigned.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def _escaped(ch: str) -> str:
    cp = ord(ch)
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every character that does not print shown as an escape (``\\x1b``,
    ``\\u202e``); tabs and (with ``keep_newlines``) line feeds are kept."""
    if text.isprintable():  # the common case: nothing to escape, no copy
        return text
    kept = "\t\n" if keep_newlines else "\t"
    return "".join(
        ch if ch in kept or unicodedata.category(ch) not in _HIDDEN else _escaped(ch) for ch in text
    )


def _json_escape(ch: str) -> str:
    cp = ord(ch)
    if cp < 0x10000:
        return f"\\u{cp:04x}"
    cp -= 0x10000
    return f"\\u{0xD800 + (cp >> 10):04x}\\u{0xDC00 + (cp & 0x3FF):04x}"


def json_line(document: Mapping[str, Any]) -> str:
    """One JSON object on one line; a character that would not print (a bidi override, a
    zero-width space) is written as its JSON escape, so the line still parses to the
    record's exact text."""
    text = json.dumps(document, ensure_ascii=False, default=str)
    if text.isprintable():
        return text
    return "".join(_json_escape(ch) if unicodedata.category(ch) in _HIDDEN else ch for ch in text)
