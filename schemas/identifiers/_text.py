"""Input hygiene shared by every identifier rule: type and size limits, refusal of
control and look-alike characters, NFKC normalisation, and the masking of personal data
in error messages (the raw value never reaches a message or an exception attribute)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import NoReturn

from schemas.errors import IdentifierError
from schemas.validation import UUID_TEXT

__all__ = [
    "MAX_INPUT_CHARS",
    "SEPARATORS",
    "Kind",
    "fail",
    "mask",
    "normalise_text",
    "prepare",
    "show",
    "strip_chars",
]

# No identifier is longer than ~20 characters; anything past this is refused before any
# normalisation work, so a hostile 10 MB "ID number" costs a length check, not NFKC.
MAX_INPUT_CHARS = 64

# Characters (before NFKC) that an identifier may be typed with: printable ASCII, the
# ideographic space, the full-width ASCII forms, CJK ideographs (plates, case numbers),
# middle dots and dashes used as separators. Everything else (control and format
# characters such as NUL or U+202E RIGHT-TO-LEFT OVERRIDE, emoji, mathematical or
# circled digits that NFKC would quietly turn into ASCII) is refused.
_SEPARATORS = frozenset("\u00a0\u00b7\u2010\u2011\u2012\u2013\u2014\u2015\u2022\u2027\u2212\u30fb")


def _allowed(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x20 <= cp <= 0x7E
        or cp == 0x3000
        or 0xFF01 <= cp <= 0xFF5E
        or 0x4E00 <= cp <= 0x9FFF
        or ch in _SEPARATORS
    )


@dataclass(frozen=True, slots=True)
class Kind:
    """What is being validated: its label in messages, its rule prefix, and how to mask it.

    ``keep`` is (head, tail) characters left visible for personal data, None for public
    identifiers (credit codes, case numbers, court codes) that are shown in full.
    """

    label: str
    prefix: str
    keep: tuple[int, int] | None


def _escape(text: str) -> str:
    return "".join(
        ch if ch.isprintable() and ch not in "'\\" else f"\\u{ord(ch):04X}" for ch in text
    )


def mask(text: str, head: int, tail: int) -> str:
    """``text`` with all but ``head`` leading and ``tail`` trailing characters starred;
    fully starred when that would leave fewer than three characters hidden."""
    if len(text) < head + tail + 3:
        return "*" * len(text)
    return text[:head] + "*" * (len(text) - head - tail) + text[len(text) - tail :]


def show(text: str, kind: Kind) -> str:
    """How ``text`` appears in an error message: masked if personal, escaped always."""
    if len(text) > MAX_INPUT_CHARS:
        return f"<{len(text)} characters>"
    if kind.keep is not None:
        text = mask(text, *kind.keep)
    return _escape(text)


def fail(kind: Kind, field: str, rule: str, reason: str, text: str | None) -> NoReturn:
    """Raise the :class:`IdentifierError` for ``rule`` (prefixed with the kind)."""
    shown = None if text is None else show(text, kind)
    raise IdentifierError(field, f"{kind.prefix}.{rule}", f"{kind.label}: {reason}", shown)


def prepare(value: object, field: str, kind: Kind) -> str:
    """The NFKC-normalised, stripped text of ``value``, or an error for a missing,
    non-string, oversized, or hostile input."""
    if value is None:
        fail(kind, field, "required", "is missing", None)
    if not isinstance(value, str):
        fail(kind, field, "type", f"must be text, not {type(value).__name__}", None)
    if len(value) > MAX_INPUT_CHARS:
        reason = f"is {len(value)} characters long; no input over {MAX_INPUT_CHARS} is read"
        fail(kind, field, "length", reason, value)
    text = value.strip()
    if not text:
        fail(kind, field, "required", "is empty", None)
    if text.isascii() and text.isprintable():
        return text  # NFKC leaves printable ASCII as it is
    for ch in text:
        if not _allowed(ch):
            name = unicodedata.name(ch, "unnamed")
            reason = f"contains U+{ord(ch):04X} ({name}), which no identifier may contain"
            fail(kind, field, "characters", reason, text)
    text = unicodedata.normalize("NFKC", text).strip()
    if not text:
        fail(kind, field, "required", "is empty", None)
    return text


def normalise_text(
    value: object, field: str, label: str, prefix: str, *, personal: bool = False
) -> str:
    """A name or search term (a user, an operation, a subject) with the hygiene every
    identifier gets (:func:`prepare`): rules ``<prefix>.required``, ``.type``,
    ``.length`` (over :data:`MAX_INPUT_CHARS`) and ``.characters``; ``personal`` masks it
    in messages."""
    return prepare(value, field, Kind(label, prefix, (2, 2) if personal else None))


def normalise_uuid(value: object, field: str) -> str:
    """An id that is a UUID (an order, a document), in its canonical lower-case form:
    rules ``uuid.required``, ``.type``, ``.length``, ``.characters`` and ``.format``."""
    kind = Kind("UUID", "uuid", None)
    text = prepare(value, field, kind).lower()
    if UUID_TEXT.fullmatch(text) is None:  # the schemas' own uuid rule
        fail(kind, field, "format", "expected 8-4-4-4-12 hexadecimal digits", text)
    return text


# Separators people type inside plates, codes and phone numbers (after NFKC):
# spaces, middle dots and the dash family.
SEPARATORS = " \u00b7\u2022\u2027\u30fb-\u2010\u2011\u2012\u2013\u2014\u2015\u2212"


def strip_chars(text: str, chars: str) -> str:
    """``text`` without any of ``chars``."""
    return text.translate({ord(ch): None for ch in chars})
