"""Where each event type goes: its catalog topic and its record key.

Events about a person or a vehicle are keyed by the subject's match key, so an order,
its release and every sighting of its subject share a partition: a release is always
processed after its order, and the matcher finds a sighting's orders on the sighting's
own partition. A release names no subject in its schema, so the caller passes the
subject (the same identifier the order was issued for) to key it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from producers.errors import NotAllowed, PublishError
from producers.events import OutgoingEvent
from schemas.agencies import get_agency
from schemas.codec import default_codec
from schemas.edge import normalise_event
from schemas.errors import UnknownAgencyError
from schemas.jsonmap import json_kind
from schemas.matchkey import MatchKeyer
from schemas.settings import get_settings

__all__ = [
    "ORDER_TOPICS",
    "SUBJECT_FIELD",
    "Route",
    "RoutingError",
    "check_sender",
    "checked_event",
    "edge_record",
    "key_for",
    "outgoing_event",
    "route_for",
    "sender_field",
    "subject_key",
]


class RoutingError(PublishError, ValueError):
    """An event cannot be routed: unknown type, or no subject to key it by."""


_Keyer = Callable[[Mapping[str, Any], Mapping[str, Any] | None], bytes | None]


def _keyer() -> MatchKeyer:
    return _keyer_for(get_settings().match_key_secret.get_secret_value().encode("utf-8"))


@lru_cache(maxsize=4)
def _keyer_for(secret: bytes) -> MatchKeyer:
    return MatchKeyer(secret)


def subject_key(subject: Mapping[str, Any]) -> bytes:
    """The match key of a subject given as ``{"id_number": ...}`` (a person) or
    ``{"plate_number": ..., "vin": ...}`` (a vehicle)."""
    if not isinstance(subject, Mapping):
        raise RoutingError(
            "subject: expected an object with id_number (a person) or plate_number/vin (a "
            f"vehicle), got {json_kind(subject)}"
        )
    if subject.get("id_number"):
        return _keyer().person(subject["id_number"], "subject.id_number")
    if subject.get("plate_number") or subject.get("vin"):
        return _vehicle_keys(subject, "subject")[0]
    raise RoutingError("subject: give id_number (a person) or plate_number/vin (a vehicle)")


def _person_at(field: str) -> _Keyer:
    def key(record: Mapping[str, Any], _subject: Mapping[str, Any] | None) -> bytes:
        return _keyer().person(record[field]["id_number"], f"{field}.id_number")

    return key


def _vehicle_at(field: str) -> _Keyer:
    def key(record: Mapping[str, Any], _subject: Mapping[str, Any] | None) -> bytes:
        return _vehicle_keys(record[field], field)[0]

    return key


def _text_at(field: str) -> _Keyer:
    def key(record: Mapping[str, Any], _subject: Mapping[str, Any] | None) -> bytes:
        return str(record[field]).encode("utf-8")

    return key


def _given_subject(_record: Mapping[str, Any], subject: Mapping[str, Any] | None) -> bytes:
    if subject is None:
        raise RoutingError(
            "subject: an OrderRelease is keyed by its order's subject; give the subject "
            "the order was issued for (id_number, or plate_number/vin)"
        )
    return subject_key(subject)


def _party(record: Mapping[str, Any], _subject: Mapping[str, Any] | None) -> bytes:
    party = record.get("debtor") or record.get("party") or {}
    if party.get("id_number"):
        return _keyer().person(party["id_number"], "debtor.id_number")
    code = party.get("organisation_code")
    if not code:
        raise RoutingError("debtor: needs an id_number or an organisation_code for its key")
    return _keyer().organisation(code, "debtor.organisation_code")


@dataclass(frozen=True, slots=True)
class Route:
    """The catalog topic of an event type and how its record key is made."""

    topic_id: str
    key: _Keyer
    court_field: str | None = None
    """For per-court topics: the record field holding the court whose topic it is."""


ORDER_TOPICS: Mapping[str, str] = {
    "EXIT_RESTRICTION": "orders-exit-restriction",
    "VEHICLE_SEARCH": "orders-vehicle-search",
    "LOCATE_DEBTOR": "orders-locate-debtor",
}
"""The order intake topic of each order kind (orders, releases and expiry notices share it;
only the bus reads it and delivers what it accepted per province: ``consumers.delivery``)."""

_NS = "cn.zf801."
_QUERY_SUBJECTS = ("Identity", "ExitEntryDocument", "BorderCrossing", "VehicleRegistration",
                   "HotelStay")  # fmt: skip
"""The P1-P5 information kinds: each has a ``<kind>Query`` and a ``<kind>Result``."""
_ROUTES: Mapping[str, Route] = {
    f"{_NS}orders.v1.ExitRestrictionOrder": Route("orders-exit-restriction", _person_at("subject")),
    f"{_NS}orders.v1.LocateDebtorOrder": Route("orders-locate-debtor", _person_at("subject")),
    f"{_NS}orders.v1.VehicleSearchOrder": Route("orders-vehicle-search", _vehicle_at("subject")),
    f"{_NS}orders.v1.OrderAcknowledgement": Route("order-acknowledgements", _text_at("order_id")),
    f"{_NS}sightings.v1.HotelCheckIn": Route("sightings-person", _person_at("person")),
    f"{_NS}sightings.v1.BorderCrossing": Route("sightings-person", _person_at("person")),
    f"{_NS}sightings.v1.PersonEncounter": Route("sightings-person", _person_at("person")),
    f"{_NS}sightings.v1.VehicleEncounter": Route("sightings-vehicle", _vehicle_at("vehicle")),
    f"{_NS}court.v1.EnforcementCase": Route("enforcement-cases", _text_at("case_number")),
    f"{_NS}court.v1.DishonestDebtorListing": Route("dishonest-debtors", _party),
    f"{_NS}court.v1.DishonestDebtorRemoval": Route("dishonest-debtors", _party),
    f"{_NS}court.v1.JudicialDocument": Route("judicial-documents", _text_at("document_id")),
    f"{_NS}court.v1.RemovalReceipt": Route(
        "removal-receipts", _text_at("listing_id"), court_field="enforcing_court_code"
    ),
    f"{_NS}bus.v1.HitConfirmation": Route("hit-confirmations", _text_at("hit_id")),
    f"{_NS}bus.v1.EncounterConfirmation": Route("encounter-confirmations", _text_at("hit_id")),
    f"{_NS}bus.v1.AnomalyNotice": Route("anomalies", _text_at("notice_id")),
    f"{_NS}bus.v1.AnomalyAcknowledgement": Route("anomalies", _text_at("notice_id")),
    f"{_NS}bus.v1.AnomalyEscalation": Route("anomalies", _text_at("notice_id")),
    **{
        f"{_NS}query.v1.{name}Query": Route("query-requests", _text_at("correlation_id"))
        for name in _QUERY_SUBJECTS
    },
    **{
        f"{_NS}police.v1.{name}Result": Route(
            "query-results", _text_at("correlation_id"), court_field="requesting_court_code"
        )
        for name in _QUERY_SUBJECTS
    },
}

SUBJECT_FIELD = "subject"
"""The extra input field that names a release's subject (not part of the release record)."""


def route_for(schema_name: str, record: Mapping[str, Any]) -> Route:
    """The route of an event type; a release goes to the topic of its order's kind."""
    if schema_name == f"{_NS}orders.v1.OrderRelease":
        kind = record.get("order_kind")
        topic_id = ORDER_TOPICS.get(str(kind))
        if topic_id is None:
            raise RoutingError(f"order_kind: {kind!r} is not one of {', '.join(ORDER_TOPICS)}")
        return Route(topic_id, _given_subject)
    try:
        return _ROUTES[schema_name]
    except KeyError:
        raise RoutingError(f"event type {schema_name!r} is not published by agencies") from None


def key_for(
    route: Route, record: Mapping[str, Any], subject: Mapping[str, Any] | None = None
) -> bytes | None:
    """The record key of an (already normalised) record on ``route``."""
    try:
        return route.key(record, subject)
    except (KeyError, TypeError, AttributeError) as exc:
        raise RoutingError(f"cannot key the event: {type(exc).__name__}: {exc}") from exc


_SENDER_FIELDS = (
    "enforcing_court_code",
    "releasing_court_code",
    "acknowledging_unit_code",
    "reporting_unit_code",
    "answering_unit_code",
    "reporting_agency_code",
    "requesting_court_code",
    "acknowledging_agency_code",
    "escalating_agency_code",
)
_SENDER_BY_SCHEMA: Mapping[str, str] = {
    f"{_NS}court.v1.JudicialDocument": "court_code",
    f"{_NS}bus.v1.HitConfirmation": "court_code",
    f"{_NS}court.v1.RemovalReceipt": "subscriber_code",
    **{f"{_NS}query.v1.{name}Query": "requesting_court_code" for name in _QUERY_SUBJECTS},
}


def sender_field(schema_name: str, record: Mapping[str, Any]) -> str | None:
    """The record field that names the sending agency (an agency publishes only its own
    events: the field must equal the signer's agency code), or None."""
    if schema_name in _SENDER_BY_SCHEMA:
        return _SENDER_BY_SCHEMA[schema_name]
    return next((name for name in _SENDER_FIELDS if name in record), None)


def check_sender(
    schema_name: str, record: Mapping[str, Any], agency_code: str, *, normalised: bool = False
) -> None:
    """Refuse a record whose sender field names another agency than ``agency_code`` (an
    agency publishes only its own events). ``normalised``: the record has passed the
    edge's rules, and its sender field, if its type has one, must be ``agency_code``
    exactly. Otherwise the record is as given and checked before the other rules (codes
    compared without case or surrounding space), so that a record made out for another
    agency is refused for that, not for a rule that follows from it (another court's case
    number); what is no agency's code at all is left to the identifier rules."""
    sender = sender_field(schema_name, record)
    if sender is None:
        return
    given = record.get(sender)
    if normalised:
        if given != agency_code:
            raise _not_the_sender(sender, given, agency_code)
        return
    if not isinstance(given, str) or given.strip().upper() == agency_code.upper():
        return
    try:
        get_agency(given.strip().upper())
    except UnknownAgencyError:
        return
    raise _not_the_sender(sender, given, agency_code)


def _not_the_sender(sender: str, given: object, agency_code: str) -> NotAllowed:
    return NotAllowed(
        f"{sender}: {given!r} is not the publishing agency {agency_code} (an agency "
        "publishes only its own events) [rule sender]"
    )


def outgoing_event(
    schema_name: str, record: Mapping[str, Any], subject: Mapping[str, Any] | None = None
) -> OutgoingEvent:
    """An event routed to its catalog topic and keyed (``subject`` keys a release)."""
    route = route_for(schema_name, record)
    court = record.get(route.court_field) if route.court_field else None
    return OutgoingEvent(
        route.topic_id,
        schema_name,
        record,
        key_for(route, record, subject),
        court=court if isinstance(court, str) else None,
        alt_keys=_alt_keys(schema_name, record),
    )


def checked_event(
    schema_name: str, record: Any, subject: Mapping[str, Any] | None = None
) -> OutgoingEvent:
    """:func:`outgoing_event` of a record as it came from the caller, checked at the edge
    first: an object, normalised (identifiers, text, times, cross-field rules:
    :func:`schemas.edge.normalise_event`) and valid against its schema, so a refusal names
    the field and the rule before anything is keyed, signed or sent."""
    normalised = edge_record(schema_name, record)
    default_codec().validate(schema_name, normalised)
    return outgoing_event(schema_name, normalised, subject)


def edge_record(schema_name: str, record: Any) -> dict[str, Any]:
    """``record`` normalised at the edge (:func:`schemas.edge.normalise_event`), refused
    first, naming its kind, if it is no object at all."""
    if not isinstance(record, Mapping):
        short = schema_name.rsplit(".", 1)[-1]
        raise RoutingError(f"record: expected a JSON object ({short}), got {json_kind(record)}")
    return normalise_event(schema_name, record)


def _alt_keys(schema_name: str, record: Mapping[str, Any]) -> tuple[bytes, ...]:
    """A vehicle sighting's keys beyond its record key (the VIN key, if it has a plate)."""
    if schema_name != f"{_NS}sightings.v1.VehicleEncounter":
        return ()
    vehicle = record.get("vehicle")
    if not isinstance(vehicle, Mapping) or not vehicle.get("vin"):
        return ()
    return tuple(_vehicle_keys(vehicle, "vehicle")[1:])


def _vehicle_keys(vehicle: Mapping[str, Any], field: str) -> list[bytes]:
    """[plate key, VIN key] of a vehicle (absent identifiers omitted); the first is the
    record key."""
    return _keyer().vehicle(
        vehicle.get("plate_number"), vehicle.get("vin"),
        plate_field=f"{field}.plate_number", vin_field=f"{field}.vin",
    )  # fmt: skip
