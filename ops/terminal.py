"""Text on its way to an operator's terminal: anything that came from input or from a topic
passes :func:`printable` first, so an ANSI escape, a carriage return or a bidirectional
override in a hostile field name or value is shown escaped and cannot move the cursor,
recolour the screen or make a line read differently from its bytes."""

from __future__ import annotations

import unicodedata

__all__ = ["printable"]

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
