"""Kafka header names and limits of the bus envelope, in one place.

CloudEvents 1.0 Kafka protocol binding, binary mode: each context attribute is a header
``ce_<attribute>`` with a UTF-8 value; the data's media type is ``content-type``. The
signature travels in three CloudEvents extension attributes (``ce_sigalg``,
``ce_sigkeyid``, ``ce_signature``) written by ``sign``. W3C ``traceparent`` correlates
an event with what it caused.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CE_ALTKEYS",
    "CE_ID",
    "CE_SIGALG",
    "CE_SIGKEYID",
    "CE_SIGNATURE",
    "CE_SOURCE",
    "CE_SPECVERSION",
    "CE_TIME",
    "CE_TYPE",
    "CONTENT_TYPE",
    "CONTENT_TYPE_AVRO",
    "ENVELOPE_HEADERS",
    "MAX_HEADERS",
    "MAX_HEADER_NAME_BYTES",
    "MAX_HEADER_VALUE_BYTES",
    "SIGNATURE_HEADERS",
    "SOURCE_PREFIX",
    "SPECVERSION",
    "TRACEPARENT",
]

CE_SPECVERSION: Final = "ce_specversion"
CE_ID: Final = "ce_id"
CE_SOURCE: Final = "ce_source"
CE_TYPE: Final = "ce_type"
CE_TIME: Final = "ce_time"
CONTENT_TYPE: Final = "content-type"
TRACEPARENT: Final = "traceparent"

CE_SIGALG: Final = "ce_sigalg"
"""Signature algorithm, ``ed25519``."""
CE_SIGKEYID: Final = "ce_sigkeyid"
"""Identifier of the signing key (its certificate is on the trust topic)."""
CE_SIGNATURE: Final = "ce_signature"
"""Base64 of the 64-byte Ed25519 signature."""

CE_ALTKEYS: Final = "ce_altkeys"
"""The subject's other match keys, lower-case hex, comma-separated: a vehicle sighting is
keyed by its plate key and carries its VIN key here, so a vehicle under false plates is
still found. A hint for the lookup only: a hit is acted on only after the signed value
is checked to name a subject with the matched key."""

SPECVERSION: Final = "1.0"
CONTENT_TYPE_AVRO: Final = "application/avro"
SOURCE_PREFIX: Final = "zf801:agency/"
"""``ce_source`` is ``zf801:agency/<AGENCY_CODE>``."""

ENVELOPE_HEADERS: Final = (
    CE_SPECVERSION,
    CE_ID,
    CE_SOURCE,
    CE_TYPE,
    CE_TIME,
    CONTENT_TYPE,
    TRACEPARENT,
)
"""Headers every record carries, in the order ``build_record`` writes them."""

SIGNATURE_HEADERS: Final = (CE_SIGALG, CE_SIGKEYID, CE_SIGNATURE)

MAX_HEADERS: Final = 32
"""At most this many headers on one record."""
MAX_HEADER_NAME_BYTES: Final = 64
MAX_HEADER_VALUE_BYTES: Final = 1024
"""Each header value: the largest legitimate one (``ce_source``) is far below."""
