"""The watchlist: per subject match key, every active order, and the rules that match a
sighting against it.

Pure logic, no Kafka: the worker keeps one :class:`WatchEntry` per match key in a faust
table (with a changelog) and calls these functions from its agents, so the rules are the
same in the worker, the tests and the benchmarks.

Matching rules (``MISSION.md`` §2):

- a person sighting (hotel check-in, person encounter, border crossing) matches
  locate-debtor orders; a border crossing also matches exit restrictions;
- a vehicle encounter matches vehicle search orders;
- an order matches only while it is active: ``start <= observed_at < end`` *and* the
  control period has not ended at processing time (an expired order stops matching at
  once, before its expiry notice is processed);
- a release removes the order as soon as it is processed; a sighting processed after
  the release never hits, whatever its observation time. A sighting processed before
  the release hits (the order was active when the bus saw it). Release and sighting
  arrive on different topics, so "processed before" is the bus's processing order;
- a **late sighting** (observed while the order was active, processed after its period
  ended: a police system reconnecting after an outage) still reaches the issuing court
  when processed within the late window after the period's end (the worker's
  ``late_window_s``; 0: never), as a hit flagged ``late``: informational, with no action
  notice to the police side (the order no longer authorises acting on it). A released
  order is off the watchlist at once, so a release is never undone by lateness;
- a sighting carries one match key or several (a vehicle's plate key, and its VIN key
  in ``ce_altkeys``); an order indexed under several of them is hit once, at the first
  of the sighting's keys it is indexed under (:meth:`ActiveOrder.indexed_under`).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from schemas.envelope import to_micros

__all__ = [
    "HIT_NAMESPACE",
    "ORDER_TYPES",
    "ActiveOrder",
    "OrderKind",
    "SightingType",
    "WatchEntry",
    "active_order_from_record",
    "derive_id",
    "expired_orders",
    "key_fingerprint",
    "kinds_matched_by",
    "late_orders",
    "matching_orders",
]

HIT_NAMESPACE = uuid.UUID("6f1c2a0e-5b0d-4c53-9a51-3f0c8e8f0801")
"""Namespace of the bus's derived ids (UUIDv5): a redelivered input yields the same id."""


class OrderKind(StrEnum):
    EXIT_RESTRICTION = "EXIT_RESTRICTION"
    VEHICLE_SEARCH = "VEHICLE_SEARCH"
    LOCATE_DEBTOR = "LOCATE_DEBTOR"


class SightingType(StrEnum):
    """Sighting event types, by their Avro full names."""

    HOTEL_CHECK_IN = "cn.zf801.sightings.v1.HotelCheckIn"
    BORDER_CROSSING = "cn.zf801.sightings.v1.BorderCrossing"
    PERSON_ENCOUNTER = "cn.zf801.sightings.v1.PersonEncounter"
    VEHICLE_ENCOUNTER = "cn.zf801.sightings.v1.VehicleEncounter"


_KINDS_BY_SIGHTING: Mapping[str, frozenset[OrderKind]] = {
    SightingType.HOTEL_CHECK_IN: frozenset({OrderKind.LOCATE_DEBTOR}),
    SightingType.PERSON_ENCOUNTER: frozenset({OrderKind.LOCATE_DEBTOR}),
    SightingType.BORDER_CROSSING: frozenset({OrderKind.EXIT_RESTRICTION, OrderKind.LOCATE_DEBTOR}),
    SightingType.VEHICLE_ENCOUNTER: frozenset({OrderKind.VEHICLE_SEARCH}),
}

ORDER_TYPES: Mapping[str, OrderKind] = {
    "cn.zf801.orders.v1.ExitRestrictionOrder": OrderKind.EXIT_RESTRICTION,
    "cn.zf801.orders.v1.VehicleSearchOrder": OrderKind.VEHICLE_SEARCH,
    "cn.zf801.orders.v1.LocateDebtorOrder": OrderKind.LOCATE_DEBTOR,
}


def kinds_matched_by(sighting_type: str) -> frozenset[OrderKind]:
    """The order kinds a sighting of this type can hit (empty for an unknown type)."""
    return _KINDS_BY_SIGHTING.get(sighting_type, frozenset())


def derive_id(*parts: object) -> str:
    """A deterministic UUIDv5 from ``parts`` (e.g. order id and sighting id for a hit)."""
    return str(uuid.uuid5(HIT_NAMESPACE, "/".join(str(part) for part in parts)))


@dataclass(frozen=True, slots=True)
class ActiveOrder:
    """What the matcher needs of an order to build a hit, without decoding it again."""

    order_id: str
    kind: OrderKind
    court_code: str
    case_number: str
    handler_name: str
    handler_phone: str
    action_required: str
    start_us: int
    end_us: int
    issued_at_us: int
    seizure_ruling_reference: str | None = None
    keys: tuple[bytes, ...] = ()
    """Fingerprints (:func:`key_fingerprint`) of every match key the order is indexed by,
    so a sighting that carries two of them hits the order at the first one only."""
    concealed: bool = False
    """Set by the court: the police unit that meets the subject is told only to contact
    the issuing court (:mod:`consumers.action_notices`)."""
    documents: tuple[tuple[str, str, str, str], ...] = ()
    """The sealed documents the order cites: (kind, document id, SHA-256 hex, title)."""
    impound_on_sight: bool = False

    def is_active(self, observed_at_us: int, now_us: int) -> bool:
        return self.start_us <= observed_at_us < self.end_us and now_us < self.end_us

    def is_late(self, observed_at_us: int, now_us: int, window_us: int) -> bool:
        """Observed while the order was active, processed after its period ended, within
        ``window_us`` of that end."""
        return self.start_us <= observed_at_us < self.end_us <= now_us < self.end_us + window_us

    def to_json(self) -> list[Any]:
        """Compact form stored in the table's changelog (a JSON array, field order fixed)."""
        return [
            self.order_id,
            self.kind.value,
            self.court_code,
            self.case_number,
            self.handler_name,
            self.handler_phone,
            self.action_required,
            self.start_us,
            self.end_us,
            self.issued_at_us,
            self.seizure_ruling_reference,
            [key.hex() for key in self.keys],
            self.concealed,
            [list(document) for document in self.documents],
            self.impound_on_sight,
        ]

    @classmethod
    def from_json(cls, data: list[Any]) -> ActiveOrder:
        return cls(
            order_id=data[0],
            kind=OrderKind(data[1]),
            court_code=data[2],
            case_number=data[3],
            handler_name=data[4],
            handler_phone=data[5],
            action_required=data[6],
            start_us=data[7],
            end_us=data[8],
            issued_at_us=data[9],
            seizure_ruling_reference=data[10],
            keys=tuple(bytes.fromhex(key) for key in data[11]) if len(data) > 11 else (),
            concealed=bool(data[12]) if len(data) > 12 else False,
            documents=tuple(
                (str(d[0]), str(d[1]), str(d[2]), str(d[3])) for d in data[13]
            ) if len(data) > 13 else (),
            impound_on_sight=bool(data[14]) if len(data) > 14 else False,
        )  # fmt: skip

    def with_keys(self, keys: Iterable[bytes]) -> ActiveOrder:
        """This order indexed by ``keys`` (match keys; their fingerprints are kept)."""
        return dataclasses.replace(self, keys=tuple(key_fingerprint(key) for key in keys))

    def indexed_under(self, fingerprint: bytes) -> bool:
        return fingerprint in self.keys


def key_fingerprint(key: bytes) -> bytes:
    """The first 16 bytes of a match key (an HMAC-SHA256): enough to tell the keys of one
    subject apart, at half the size."""
    return key[:16]


def active_order_from_record(schema_name: str, record: Mapping[str, Any]) -> ActiveOrder:
    """Summarise a decoded order record (one of :data:`ORDER_TYPES`)."""
    kind = ORDER_TYPES[schema_name]
    handler = record["handler"]
    return ActiveOrder(
        order_id=str(record["order_id"]),
        kind=kind,
        court_code=record["enforcing_court_code"],
        case_number=record["case_number"],
        handler_name=handler["name"],
        handler_phone=handler["phone"],
        action_required=record["police_requirements"],
        start_us=to_micros(record["control_period_start"]),
        end_us=to_micros(record["control_period_end"]),
        issued_at_us=to_micros(record["issued_at"]),
        seizure_ruling_reference=record.get("seizure_ruling_reference"),
        concealed=bool(record.get("concealed", False)),
        documents=tuple(
            (str(d["kind"]), str(d["document_id"]), bytes(d["sha256"]).hex(), str(d["title"]))
            for d in record.get("sealed_documents", ())
        ),
        impound_on_sight=bool(record.get("impound_on_sight", False)),
    )


@dataclass(frozen=True, slots=True)
class WatchEntry:
    """Every order on one subject, by order id; one subject can carry orders of several
    courts and kinds."""

    orders: Mapping[str, ActiveOrder]

    @classmethod
    def empty(cls) -> WatchEntry:
        return cls({})

    @classmethod
    def from_json(cls, data: Mapping[str, list[Any]] | None) -> WatchEntry:
        if not data:
            return cls.empty()
        return cls({order_id: ActiveOrder.from_json(item) for order_id, item in data.items()})

    def to_json(self) -> dict[str, list[Any]]:
        return {order_id: order.to_json() for order_id, order in self.orders.items()}

    @classmethod
    def from_bytes(cls, data: bytes | None) -> WatchEntry:
        """The entry stored in the table (compact UTF-8 JSON); None or b"" is empty."""
        return cls.from_json(json.loads(data)) if data else cls.empty()

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")).encode()

    def with_order(self, order: ActiveOrder) -> WatchEntry:
        return WatchEntry({**self.orders, order.order_id: order})

    def without(self, order_id: str) -> WatchEntry:
        return WatchEntry({k: v for k, v in self.orders.items() if k != order_id})

    def __bool__(self) -> bool:
        return bool(self.orders)


def matching_orders(
    entry: WatchEntry, sighting_type: str, observed_at_us: int, now_us: int
) -> list[ActiveOrder]:
    """The orders of ``entry`` that a sighting of ``sighting_type`` hits, by order id."""
    kinds = kinds_matched_by(sighting_type)
    return sorted(
        (
            order
            for order in entry.orders.values()
            if order.kind in kinds and order.is_active(observed_at_us, now_us)
        ),
        key=lambda order: order.order_id,
    )


def late_orders(
    entries: Iterable[WatchEntry],
    sighting_type: str,
    observed_at_us: int,
    now_us: int,
    window_us: int,
) -> list[ActiveOrder]:
    """The orders a sighting would have hit had it been processed in time
    (:meth:`ActiveOrder.is_late`), once each, by order id: the court hears of them,
    flagged late and informational; the police side gets no action notice."""
    kinds = kinds_matched_by(sighting_type)
    found = {
        order.order_id: order
        for entry in entries
        for order in entry.orders.values()
        if order.kind in kinds and order.is_late(observed_at_us, now_us, window_us)
    }
    return [found[order_id] for order_id in sorted(found)]


def expired_orders(entries: Iterable[WatchEntry], now_us: int) -> list[ActiveOrder]:
    """Orders whose control period has ended (they leave the watchlist when the bus's
    expiry notice for them is processed)."""
    return [order for entry in entries for order in entry.orders.values() if order.end_us <= now_us]
