"""Subject match keys: the record key of every event about a person or a vehicle.

``key = HMAC-SHA256(secret, b"zf801/v1/" + kind + b"\\x00" + normalised identifier)``,
32 bytes, with ``kind`` ``person``, ``vehicle`` or ``organisation`` (a listed company's
credit code or organisation code, the dishonest-debtor list's key) and the secret
``settings.match_key_secret`` (the same on every side of the bus). The identifier is
normalised first, so every spelling of one subject gets one key: ``11010519491231002x``,
``11010519491231002X``, full-width digits and the legacy 15-digit form of the same number
all hash alike; ``京A·12345`` and ``京a12345`` too. Without the secret the key reveals
nothing about the identifier (HMAC is a PRF); the ``kind`` label and the version prefix
separate the domains, so a person key can never equal a vehicle key.

Vehicles get TWO keys, a plate key and a VIN key (:func:`vehicle_match_keys`):

- a patrol or checkpoint camera reads only the plate; an annual inspection, transfer or
  mortgage registration has both; a vehicle re-registered in another province or given
  false plates keeps its VIN but not its plate. Keying by plate alone would miss the
  last case; by VIN alone, every camera sighting.
- an order (which carries both) is therefore indexed in the watchlist under both keys;
  a sighting is matched by every key it has.
- an event still has ONE record key (the partitioning key): the plate key when a plate
  is present, else the VIN key (:func:`vehicle_record_key`), so orders and most sightings
  of a vehicle share a partition; the watchlist must re-key orders (e.g. through its own
  repartition topic) to also find them by VIN key.

Plate and VIN keys share the ``vehicle`` label without colliding: a normalised plate
always contains a CJK character and a VIN is 17 ASCII characters, so no identifier is
both. :func:`match_key` tells them apart the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from enum import StrEnum
from functools import lru_cache

from schemas.errors import ConfigurationError
from schemas.identifiers import (
    normalise_id_number,
    normalise_party_code,
    normalise_plate_number,
    normalise_vin,
)
from schemas.settings import get_settings

__all__ = [
    "MATCH_KEY_LENGTH",
    "MIN_SECRET_BYTES",
    "MatchKeyer",
    "SubjectKind",
    "match_key",
    "match_key_hex",
    "person_match_key",
    "vehicle_match_keys",
    "vehicle_record_key",
]

MATCH_KEY_LENGTH = 32
MIN_SECRET_BYTES = 16
_PREFIX = b"zf801/v1/"


class SubjectKind(StrEnum):
    """Whom or what an order or sighting is about."""

    PERSON = "person"
    VEHICLE = "vehicle"
    ORGANISATION = "organisation"


class MatchKeyer:
    """Computes match keys under one secret (default: ``settings.match_key_secret``).

    Each method normalises its identifier first and raises
    :class:`~schemas.errors.IdentifierError` (naming ``field``) for an invalid one.
    """

    __slots__ = ("_by_kind",)

    def __init__(self, secret: bytes | None = None) -> None:
        if secret is None:
            secret = get_settings().match_key_secret.get_secret_value().encode("utf-8")
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigurationError(
                f"match_key_secret: must be at least {MIN_SECRET_BYTES} bytes (HMAC key)"
            )
        base = hmac.new(secret, digestmod=hashlib.sha256)
        self._by_kind: dict[SubjectKind, hmac.HMAC] = {}
        for kind in SubjectKind:
            state = base.copy()
            state.update(_PREFIX + kind.value.encode("ascii") + b"\x00")
            self._by_kind[kind] = state

    def __repr__(self) -> str:
        return "MatchKeyer(secret=<hidden>)"

    def _hash(self, kind: SubjectKind, normalised: str) -> bytes:
        state = self._by_kind[kind].copy()
        state.update(normalised.encode("utf-8"))
        return state.digest()

    def person(self, id_number: object, field: str = "id_number") -> bytes:
        """The key of the person with this citizen ID number (15 or 18 digits)."""
        return self._hash(SubjectKind.PERSON, normalise_id_number(id_number, field))

    def organisation(self, code: object, field: str = "organisation_code") -> bytes:
        """The key of the organisation with this unified social credit code (18
        characters) or organisation code (9): a listed company's key."""
        return self._hash(SubjectKind.ORGANISATION, normalise_party_code(code, field))

    def plate(self, plate_number: object, field: str = "plate_number") -> bytes:
        """The plate key of a vehicle."""
        return self._hash(SubjectKind.VEHICLE, normalise_plate_number(plate_number, field))

    def vin(self, vin: object, field: str = "vin") -> bytes:
        """The VIN key of a vehicle."""
        return self._hash(SubjectKind.VEHICLE, normalise_vin(vin, field))

    def vehicle(
        self,
        plate_number: object | None,
        vin: object | None,
        *,
        plate_field: str = "plate_number",
        vin_field: str = "vin",
    ) -> list[bytes]:
        """The vehicle's keys: [plate key, VIN key], omitting an absent identifier.

        At least one must be given; None means absent, an empty string is an error.
        """
        keys: list[bytes] = []
        if plate_number is not None:
            keys.append(self.plate(plate_number, plate_field))
        if vin is not None:
            keys.append(self.vin(vin, vin_field))
        if not keys:
            raise ValueError("a vehicle needs a plate number or a VIN for a match key")
        return keys

    def key(self, kind: SubjectKind, identifier: object, field: str | None = None) -> bytes:
        """The key of ``identifier`` of ``kind``; a vehicle identifier is a plate if it
        contains a non-ASCII character after NFKC (full-width VINs are VINs), else a VIN."""
        if kind is SubjectKind.PERSON:
            return self.person(identifier, field or "id_number")
        if kind is SubjectKind.ORGANISATION:
            return self.organisation(identifier, field or "organisation_code")
        if isinstance(identifier, str) and not unicodedata.normalize("NFKC", identifier).isascii():
            return self.plate(identifier, field or "plate_number")
        return self.vin(identifier, field or "vin")


def _keyer(secret: bytes | None) -> MatchKeyer:
    if secret is None:
        secret = get_settings().match_key_secret.get_secret_value().encode("utf-8")
    return _cached_keyer(secret)


@lru_cache(maxsize=4)
def _cached_keyer(secret: bytes) -> MatchKeyer:
    return MatchKeyer(secret)


def match_key(kind: SubjectKind, identifier: str, secret: bytes) -> bytes:
    """HMAC-SHA256(secret, b"zf801/v1/" + kind + b"\\x00" + normalised identifier)."""
    return _keyer(secret).key(SubjectKind(kind), identifier)


def person_match_key(id_number: object, *, secret: bytes | None = None) -> bytes:
    """The person key for a citizen ID number (secret: from settings unless given)."""
    return _keyer(secret).person(id_number)


def vehicle_match_keys(
    plate_number: object | None, vin: object | None, *, secret: bytes | None = None
) -> list[bytes]:
    """The vehicle keys [plate key, VIN key] (an absent identifier is omitted)."""
    return _keyer(secret).vehicle(plate_number, vin)


def vehicle_record_key(
    plate_number: object | None, vin: object | None, *, secret: bytes | None = None
) -> bytes:
    """The one record key of a vehicle event: the plate key if there is a plate, else
    the VIN key."""
    return vehicle_match_keys(plate_number, vin, secret=secret)[0]


def match_key_hex(key: bytes) -> str:
    """The lower-case hex form of a match key, for display and logs."""
    if len(key) != MATCH_KEY_LENGTH:
        raise ValueError(f"a match key has {MATCH_KEY_LENGTH} bytes, not {len(key)}")
    return key.hex()
