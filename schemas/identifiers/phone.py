"""Phone numbers of mainland China (case handlers, registered contacts).

Normalised forms:

- mobile: the 11 digits, ``1[3-9]xxxxxxxxx``, e.g. ``13812345678``; a ``+86``, ``0086``
  or ``86`` prefix is dropped;
- landline: ``0AA-NNNNNNNN`` or ``0AAA-NNNNNNN(N)``: the trunk-prefixed area code, a
  hyphen, the local number, e.g. ``010-12345678``, ``0755-1234567``; with an extension
  (written ``-123``, ``转123``, ``ext 123``, ``x123`` or ``#123``) ``-`` and up to 6 digits
  follow. Two-digit area codes are 10 and 20-29 (local numbers of 8 digits), the others
  three digits starting 3-9 (7 or 8 digits); local numbers do not start with 0. After an
  international prefix the area code is written without its 0, e.g. ``+86 10 12345678``.

Service numbers (12368, 95xxx, 400/800) and numbers without an area code are refused:
a handler's phone must be dialable from any province. Phone numbers are personal data:
messages show e.g. ``138****5678``.
"""

from __future__ import annotations

import re

from schemas.identifiers._text import Kind, fail, mask, prepare

__all__ = ["mask_phone", "normalise_phone"]

_PHONE = Kind("phone number (电话号码)", "phone", (3, 4))
_EXTENSION = re.compile(r"(?:转|ext\.?|x|#)\s*([0-9]{1,6})$", re.IGNORECASE)
_INTERNATIONAL = re.compile(r"(?:\+86|0086)")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_LANDLINE = re.compile(r"(0(?:10|2[0-9]))([1-9][0-9]{7})|(0[3-9][0-9]{2})([1-9][0-9]{6,7})")
_LOOSE = re.compile(r"[0-9 ()\-]+")


def mask_phone(phone: str) -> str:
    """A normalised phone number masked for display: ``138****5678``, ``010-****5678``."""
    parts = phone.split("-")
    if len(parts) == 1:
        return mask(phone, 3, 4)
    local = parts[1]
    return "-".join([parts[0], "*" * (len(local) - 4) + local[-4:], *parts[2:]])


def normalise_phone(value: object, field: str = "phone") -> str:
    """The normalised mobile or landline number, or :class:`IdentifierError`.

    Rules: ``phone.format`` (characters, prefix, shape), ``phone.area_code`` (a landline
    without an area code), plus ``.required``, ``.type``, ``.characters``, ``.length``.
    """
    text = prepare(value, field, _PHONE)
    extension = ""
    found = _EXTENSION.search(text)
    if found:
        extension, text = found.group(1), text[: found.start()].rstrip()
    international = _INTERNATIONAL.match(text)
    if international:
        text = text[international.end() :]
    if not _LOOSE.fullmatch(text):
        reason = "may hold only digits, spaces, hyphens, brackets and a +86/0086 prefix"
        fail(_PHONE, field, "format", reason, text)
    digits = _digits(text, international is not None)
    if _MOBILE.fullmatch(digits):
        if extension:
            fail(_PHONE, field, "format", "a mobile number has no extension", digits)
        return digits
    head, sep, tail = text.rpartition("-")
    if not extension and sep and head.strip() and 1 <= len(tail.strip()) <= 6:
        # "0755-1234567-8": a last hyphenated group is an extension if the rest is whole.
        landline = _LANDLINE.fullmatch(_digits(head, international is not None))
        if landline:
            return _format_landline(landline, tail.strip())
    landline = _LANDLINE.fullmatch(digits)
    if landline:
        return _format_landline(landline, extension)
    if 7 <= len(digits) <= 8 and digits[0] != "0":
        reason = "a landline number needs its area code, e.g. 010-12345678"
        fail(_PHONE, field, "area_code", reason, digits)
    reason = "is neither a mobile number (1[3-9] + 9 digits) nor area code + local number"
    fail(_PHONE, field, "format", reason, digits)


def _digits(text: str, international: bool) -> str:
    digits = re.sub(r"[^0-9]", "", text)
    if international and not digits.startswith("0") and not _MOBILE.fullmatch(digits):
        return "0" + digits  # +86 10 12345678: the area code lost its trunk prefix 0
    if not international and len(digits) == 13 and digits.startswith("861"):
        return digits[2:]  # 8613812345678: country code without + or 00
    return digits


def _format_landline(landline: re.Match[str], extension: str) -> str:
    area = landline.group(1) or landline.group(3)
    local = landline.group(2) or landline.group(4)
    return f"{area}-{local}" + (f"-{extension}" if extension else "")
