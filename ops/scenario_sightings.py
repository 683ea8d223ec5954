"""Sightings of the demo scenario: hotel check-ins, border crossings, person encounters
and vehicle encounters of every kind, reported by the police units of the province where
they happen (see :mod:`ops.scenario_gen`)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from ops.scenario import (
    BORDER,
    ENCOUNTER,
    HOTEL,
    VEHICLE,
    Forgery,
    ScenarioSighting,
    Subject,
)
from ops.scenario_orders import new_uuid
from ops.scenario_values import PROVINCE_PLACES, mobile, pick_weighted
from schemas.agencies import AgencyRole, load_agencies

__all__ = ["SightingMaker"]

_PERSON_TYPES = ((HOTEL, 45), (ENCOUNTER, 30), (BORDER, 25))
_VEHICLE_KINDS = (
    ("ANNUAL_INSPECTION", 15),
    ("PATROL", 35),
    ("CHECKPOINT", 30),
    ("TRANSFER_REGISTRATION", 6),
    ("MORTGAGE_REGISTRATION", 4),
    ("OTHER", 10),
)
_AT_THE_OFFICE = frozenset({"ANNUAL_INSPECTION", "TRANSFER_REGISTRATION", "MORTGAGE_REGISTRATION"})
_ENCOUNTER_KINDS = ("PATROL", "CHECKPOINT", "STATION_VISIT", "OTHER")


class SightingMaker:
    """Builds sighting records; every unit is one of the agency list's police units of
    the province where the sighting happens."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        agencies = load_agencies()
        self._units = {
            (province, role): tuple(
                a.code for a in agencies.in_province(province) if a.role is role
            )
            for province in PROVINCE_PLACES
            for role in (AgencyRole.PUBLIC_SECURITY, AgencyRole.TRAFFIC_MANAGEMENT)
        }

    def _unit(self, province: str, role: AgencyRole) -> str:
        return self._rng.choice(self._units[(province, role)])

    def _base(
        self, schema: str, unit: str, subject: Subject, observed: dt.datetime
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "sighting_id": new_uuid(self._rng),
            "reporting_unit_code": unit,
            "observed_at": observed,
        }
        if schema == VEHICLE:
            return record
        record["person"] = {"name": subject.name, "id_number": subject.id_number}
        return record

    def hotel(
        self, subject: Subject, province: str, observed: dt.datetime, forgery: Forgery | None = None
    ) -> ScenarioSighting:
        rng = self._rng
        unit = self._unit(province, AgencyRole.PUBLIC_SECURITY)
        hotel_name, address = rng.choice(PROVINCE_PLACES[province].hotels)
        record = self._base(HOTEL, unit, subject, observed) | {
            "hotel_name": hotel_name,
            "hotel_address": address,
            "room": f"{rng.randrange(2, 20)}{rng.randrange(1, 30):02d}",
            "checked_in_at": observed,
            "expected_check_out": observed + dt.timedelta(days=rng.randrange(1, 4)),
            "registered_phone": mobile(rng) if rng.random() < 0.8 else None,
        }
        tampered = None
        if forgery is Forgery.TAMPERED_VALUE:
            # Someone rewrites where the debtor stayed after the police unit signed it.
            other = next(h for h in PROVINCE_PLACES[province].hotels if h[0] != hotel_name)
            tampered = record | {"hotel_name": other[0], "hotel_address": other[1]}
        return _sighting(HOTEL, unit, subject, observed, record, forgery, tampered)

    def border(
        self, subject: Subject, province: str, observed: dt.datetime, direction: str = "OUT"
    ) -> ScenarioSighting:
        rng = self._rng
        port, unit = rng.choice(PROVINCE_PLACES[province].ports)
        permit = "深圳" in port and rng.random() < 0.6
        record = self._base(BORDER, unit, subject, observed) | {
            "direction": direction,
            "port": port,
            # Left empty: the edge (schemas.edge) has no country_or_region rule yet.
            "destination_country_or_region": None,
            "document_type": "HK_MACAO_PERMIT" if permit else "ORDINARY_PASSPORT",
            "document_number": f"{'C' if permit else 'E'}{rng.randrange(10**8):08d}",
            "crossed_at": observed,
        }
        return _sighting(BORDER, unit, subject, observed, record)

    def encounter(
        self, subject: Subject, province: str, observed: dt.datetime, forgery: Forgery | None = None
    ) -> ScenarioSighting:
        rng = self._rng
        unit = self._unit(province, AgencyRole.PUBLIC_SECURITY)
        record = self._base(ENCOUNTER, unit, subject, observed) | {
            "kind": rng.choice(_ENCOUNTER_KINDS),
            "place": rng.choice(PROVINCE_PLACES[province].patrol_places),
        }
        return _sighting(ENCOUNTER, unit, subject, observed, record, forgery)

    def vehicle(
        self, subject: Subject, province: str, observed: dt.datetime, kind: str | None = None
    ) -> ScenarioSighting:
        rng = self._rng
        kind = kind or pick_weighted(rng, _VEHICLE_KINDS)
        places = PROVINCE_PLACES[province]
        at_office = kind in _AT_THE_OFFICE
        police = not at_office and rng.random() < 0.3
        role = AgencyRole.PUBLIC_SECURITY if police else AgencyRole.TRAFFIC_MANAGEMENT
        unit = self._unit(province, role)
        record = self._base(VEHICLE, unit, subject, observed) | {
            "kind": kind,
            # Registration and inspection read the VIN too; a camera reads the plate only.
            "vehicle": {
                "plate_number": subject.plate_number,
                "vin": subject.vin if at_office else None,
            },
            "place": rng.choice(places.vehicle_offices if at_office else places.patrol_places),
        }
        return _sighting(VEHICLE, unit, subject, observed, record)

    def any_of(self, subject: Subject, province: str, observed: dt.datetime) -> ScenarioSighting:
        """A sighting of a type that fits the subject, drawn with realistic weights."""
        if subject.is_vehicle:
            return self.vehicle(subject, province, observed)
        schema = pick_weighted(self._rng, _PERSON_TYPES)
        if schema == HOTEL:
            return self.hotel(subject, province, observed)
        if schema == ENCOUNTER:
            return self.encounter(subject, province, observed)
        return self.border(subject, province, observed, self._rng.choice(("OUT", "OUT", "IN")))


def _sighting(  # noqa: PLR0917 - the sighting's facts, in the order the record holds them
    schema: str,
    unit: str,
    subject: Subject,
    observed: dt.datetime,
    record: dict[str, Any],
    forgery: Forgery | None = None,
    tampered: dict[str, Any] | None = None,
) -> ScenarioSighting:
    return ScenarioSighting(
        str(record["sighting_id"]), schema, unit, subject, observed, record, forgery, tampered
    )
