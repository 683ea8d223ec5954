"""Typed publishers for upstream systems: what a court and a police unit publish, in the
domain's words.

Each method validates, normalises, encodes, signs and publishes one event through a
:class:`~producers.publisher.Publisher` (``acks=all``, idempotence) and returns only once
the broker has acknowledged it; a refusal raises before anything is sent, naming the
field and the rule; a broker that cannot be reached raises
:class:`~topics.errors.BrokerUnreachable`, and a send the broker did not acknowledge
:class:`~producers.errors.PublishFailed`.
Records are plain mappings in the shape of their Avro schema (``schemas/avro``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from producers.errors import require_type
from producers.events import PublishedEvent
from producers.publisher import Publisher
from producers.routes import checked_event

__all__ = ["CourtPublisher", "PoliceUnitPublisher"]

_ORDERS = "cn.zf801.orders.v1."
_SIGHTINGS = "cn.zf801.sightings.v1."

Record = Mapping[str, Any]


class _AgencyPublisher:
    def __init__(self, publisher: Publisher) -> None:
        require_type(publisher, Publisher, "publisher", "a Publisher")
        self.publisher = publisher

    def _publish(
        self, schema_name: str, record: Record, subject: Mapping[str, Any] | None = None
    ) -> PublishedEvent:
        return self.publisher.publish(checked_event(schema_name, record, subject), checked=True)


class CourtPublisher(_AgencyPublisher):
    """A court's orders and releases (its signer must be the court's)."""

    def issue_exit_restriction(self, order: Record) -> PublishedEvent:
        """限制出境: the person may not leave the country during the control period."""
        return self._publish(f"{_ORDERS}ExitRestrictionOrder", order)

    def issue_vehicle_search(self, order: Record) -> PublishedEvent:
        """查找车辆: find and seize the vehicle; block its transfer and new mortgages."""
        return self._publish(f"{_ORDERS}VehicleSearchOrder", order)

    def issue_locate_debtor(self, order: Record) -> PublishedEvent:
        """查找被执行人: locate a debtor under a detention decision."""
        return self._publish(f"{_ORDERS}LocateDebtorOrder", order)

    def release_order(self, release: Record, subject: Mapping[str, Any]) -> PublishedEvent:
        """解除: release an order. ``subject`` is what the order was issued for
        (``{"id_number": ...}`` or ``{"plate_number": ..., "vin": ...}``): the release
        travels under the order's key, so it is always processed after the order."""
        return self._publish(f"{_ORDERS}OrderRelease", release, subject)


class PoliceUnitPublisher(_AgencyPublisher):
    """A police unit's sightings and order acknowledgements (its signer must be the
    unit's)."""

    def report_hotel_check_in(self, sighting: Record) -> PublishedEvent:
        return self._publish(f"{_SIGHTINGS}HotelCheckIn", sighting)

    def report_border_crossing(self, sighting: Record) -> PublishedEvent:
        return self._publish(f"{_SIGHTINGS}BorderCrossing", sighting)

    def report_vehicle_encounter(self, sighting: Record) -> PublishedEvent:
        """Annual inspection, transfer or mortgage registration, patrol, checkpoint."""
        return self._publish(f"{_SIGHTINGS}VehicleEncounter", sighting)

    def report_person_encounter(self, sighting: Record) -> PublishedEvent:
        return self._publish(f"{_SIGHTINGS}PersonEncounter", sighting)

    def acknowledge_order(self, acknowledgement: Record) -> PublishedEvent:
        """Deployed, or rejected with a reason."""
        return self._publish(f"{_ORDERS}OrderAcknowledgement", acknowledgement)
