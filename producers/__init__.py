"""Publishers of the ZF801 bus: the wire path out (validate, normalise identifiers, encode,
sign, publish with ``acks=all``), event routing, and typed court and police publishers."""

from producers.agencies import CourtPublisher, PoliceUnitPublisher
from producers.errors import NotAllowed, PublishError, PublishFailed
from producers.events import OutgoingEvent, PublishedEvent
from producers.publisher import Publisher, kafka_producer
from producers.routes import RoutingError, outgoing_event

__all__ = [
    "CourtPublisher",
    "NotAllowed",
    "OutgoingEvent",
    "PoliceUnitPublisher",
    "PublishError",
    "PublishFailed",
    "PublishedEvent",
    "Publisher",
    "RoutingError",
    "kafka_producer",
    "outgoing_event",
]
