"""Event type names the processors reason about, and the family each belongs to.

A family says what an event does to the bus's state, which decides how its time and
its repetition are judged (``sign/REPLAY.md``):

- ``ORDER``: activates an effect (an order enters the watchlist);
- ``REMOVAL``: removes an effect (a release, the bus's expiry notice) - never refused for
  its time or for having been seen before, because refusing it would keep an order alive;
- ``ACKNOWLEDGEMENT``: a police unit's answer to an order (changes the order's status and
  is forwarded to the court);
- ``SIGHTING``: a police report that can become a hit;
- ``OTHER``: everything else (alerts a court reads, trust records, ...).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = [
    "ACKNOWLEDGEMENT",
    "BLOCKED",
    "ENCOUNTER_CONFIRMATION",
    "EXPIRY_NOTICE",
    "EXPIRY_WARNING",
    "HIT",
    "HIT_CONFIRMATION",
    "HIT_UNCONFIRMED",
    "ORDERS",
    "OVERDUE",
    "RELEASE",
    "SIGHTINGS",
    "EventFamily",
    "family_of",
]

_NS = "cn.zf801"
ORDERS: Final = frozenset({
    f"{_NS}.orders.v1.ExitRestrictionOrder",
    f"{_NS}.orders.v1.VehicleSearchOrder",
    f"{_NS}.orders.v1.LocateDebtorOrder",
})  # fmt: skip
RELEASE: Final = f"{_NS}.orders.v1.OrderRelease"
EXPIRY_NOTICE: Final = f"{_NS}.orders.v1.OrderExpiryNotice"
EXPIRY_WARNING: Final = f"{_NS}.orders.v1.OrderExpiryWarning"
ACKNOWLEDGEMENT: Final = f"{_NS}.orders.v1.OrderAcknowledgement"
OVERDUE: Final = f"{_NS}.orders.v1.OrderAckOverdue"
BLOCKED: Final = f"{_NS}.orders.v1.VehicleTransferBlocked"
HIT: Final = f"{_NS}.bus.v1.Hit"
HIT_CONFIRMATION: Final = f"{_NS}.bus.v1.HitConfirmation"
ENCOUNTER_CONFIRMATION: Final = f"{_NS}.bus.v1.EncounterConfirmation"
HIT_UNCONFIRMED: Final = f"{_NS}.bus.v1.HitUnconfirmed"
SIGHTINGS: Final = frozenset({
    f"{_NS}.sightings.v1.HotelCheckIn",
    f"{_NS}.sightings.v1.BorderCrossing",
    f"{_NS}.sightings.v1.PersonEncounter",
    f"{_NS}.sightings.v1.VehicleEncounter",
})  # fmt: skip


class EventFamily(StrEnum):
    ORDER = "order"
    REMOVAL = "removal"
    ACKNOWLEDGEMENT = "acknowledgement"
    SIGHTING = "sighting"
    OTHER = "other"


def family_of(event_type: str) -> EventFamily:
    """The family of an event type (its Avro full name)."""
    if event_type in ORDERS:
        return EventFamily.ORDER
    if event_type in (RELEASE, EXPIRY_NOTICE):
        return EventFamily.REMOVAL
    if event_type == ACKNOWLEDGEMENT:
        return EventFamily.ACKNOWLEDGEMENT
    if event_type in SIGHTINGS:
        return EventFamily.SIGHTING
    return EventFamily.OTHER
