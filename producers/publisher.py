"""The wire path out: validate -> normalise identifiers -> encode -> sign -> publish.

A :class:`Publisher` speaks for one agency (its signing key comes from the key store).
It refuses, before anything is sent, an event type the topic does not carry, a topic the
agency's role may not write, and any record that breaks its schema or an identifier rule.
It publishes with ``acks=all`` and idempotence, and :meth:`Publisher.publish` returns
only when the broker has acknowledged the record. In production mode it refuses to be
built while a secret holds its demo value (``Settings.require_real_secrets``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from producers.errors import NotAllowed, PublishFailed, require_type
from producers.events import OutgoingEvent, PublishedEvent
from producers.routes import check_sender, edge_record
from schemas.agencies import get_agency
from schemas.envelope import KafkaRecord
from schemas.headers import CE_ALTKEYS
from schemas.settings import Settings, get_settings
from schemas.tls_layout import ADMIN_NAME
from sign.events import EventSigner
from topics import clients
from topics.catalog import Catalog, bus_catalog

__all__ = ["OutgoingEvent", "PublishedEvent", "Publisher", "kafka_producer"]


# The publisher's producer settings, on top of the bus's acks=all and idempotence.
_PUBLISHER_PRESET: dict[str, Any] = {
    "linger_ms": 5,
    "retries": 2**31 - 1,
    "max_in_flight_requests_per_connection": 5,
    # The client-side cap only; each topic's max.message.bytes (the catalog) decides.
    "max_request_size": 16 * 1024 * 1024,
    "client_id": "zf801-publisher",
}


def kafka_producer(
    settings: Settings | None = None, agency: str = ADMIN_NAME, **overrides: Any
) -> KafkaProducer:
    """A kafka-python producer with the bus's guarantees (``acks=all``, idempotence) and
    the publisher's settings, connected as ``agency`` (:mod:`topics.clients`). The default,
    the operator's identity, is for ``ops`` commands; a publisher passes its own agency."""
    settings = settings or get_settings()
    return clients.kafka_producer(settings, agency, **{**_PUBLISHER_PRESET, **overrides})


class Publisher:
    """Publishes signed events for the agency of ``signer``; its producer is built at the
    first send (``producer_options`` added to the publisher's settings)."""

    def __init__(
        self,
        signer: EventSigner,
        *,
        catalog: Catalog | None = None,
        producer: KafkaProducer | None = None,
        settings: Settings | None = None,
        send_timeout_s: float = 30.0,
        producer_options: dict[str, Any] | None = None,
    ) -> None:
        require_type(signer, EventSigner, "signer", "an EventSigner (KeyStore.signer_for)")
        self._settings = settings or get_settings()
        self._settings.require_real_secrets(f"the publisher of agency {signer.agency_code}")
        self._signer = signer
        self.agency = get_agency(signer.agency_code)
        self.catalog = catalog or bus_catalog(self._settings)
        self._producer = producer
        self._producer_options = producer_options or {}
        self._send_timeout_s = send_timeout_s

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = kafka_producer(
                self._settings, self.agency.code, **self._producer_options
            )
        return self._producer

    def prepare(self, event: OutgoingEvent, *, checked: bool = False) -> tuple[str, KafkaRecord]:
        """Check, normalise, encode and sign one event; nothing is sent. ``checked``: the
        caller has just passed the record through ``schemas.edge.normalise_event`` and
        validated it against its schema (neither is done again)."""
        require_type(event, OutgoingEvent, "event", "an OutgoingEvent (outgoing_event)")
        spec = self.catalog.get(event.topic_id)
        role = str(self.agency.role)
        if not self.catalog.may_write(role, event.topic_id):
            raise NotAllowed(
                f"agency {self.agency.code} (role {role}) may not write topic {event.topic_id!r}"
            )
        if not spec.allows_schema(event.schema_name):
            raise NotAllowed(
                f"topic {event.topic_id!r} does not carry {event.schema_name} "
                f"(allowed: {', '.join(spec.value_schemas)})"
            )
        if not checked and isinstance(event.record, Mapping):
            check_sender(event.schema_name, event.record, self.agency.code)  # before the rest
        record = event.record if checked else edge_record(event.schema_name, event.record)
        check_sender(event.schema_name, record, self.agency.code, normalised=True)
        hints = ",".join(key.hex() for key in event.alt_keys).encode("ascii")
        signed = self._signer.signed_record(
            event.schema_name, record, key=event.key, event_id=event.event_id,
            time=event.time, traceparent=event.traceparent,
            extra_headers=((CE_ALTKEYS, hints),) if event.alt_keys else (),
            validate=not checked,
        )  # fmt: skip
        return self.catalog.topic_name(event.topic_id, event.court), signed

    def publish(self, event: OutgoingEvent, *, checked: bool = False) -> PublishedEvent:
        """Publish one event and wait for the broker's acknowledgement (``checked``: as
        :meth:`prepare`)."""
        return self.publish_all([event], checked=checked)[0]

    def publish_all(
        self, events: Sequence[OutgoingEvent], *, checked: bool = False
    ) -> list[PublishedEvent]:
        """Prepare every event first (a bad one fails the whole batch before anything is
        sent), then send them all and wait until the broker has acknowledged each."""
        require_type(events, Sequence, "events", "a list of OutgoingEvent")
        prepared = [self.prepare(event, checked=checked) for event in events]
        futures = [
            (
                record,
                self.producer.send(
                    topic, key=record.key, value=record.value, headers=list(record.headers)
                ),
            )
            for topic, record in prepared
        ]
        published = []
        for record, future in futures:
            try:
                metadata = future.get(timeout=self._send_timeout_s)
            except KafkaError as exc:
                raise PublishFailed(
                    f"event {_event_id(record)}: the broker did not acknowledge it: {exc}"
                ) from exc
            published.append(
                PublishedEvent(
                    _event_id(record), metadata.topic, metadata.partition, metadata.offset
                )
            )
        return published

    def send_prepared(self, prepared: Iterable[tuple[str, KafkaRecord]]) -> None:
        """Send already prepared records without waiting (bulk loads); call :meth:`flush`."""
        for topic, record in prepared:
            self.producer.send(
                topic, key=record.key, value=record.value, headers=list(record.headers)
            )

    def flush(self, timeout_s: float | None = None) -> None:
        try:
            self.producer.flush(timeout=timeout_s)
        except KafkaError as exc:
            raise PublishFailed(f"flush failed: {exc}") from exc

    def close(self, timeout_s: float | None = None) -> None:
        """Close the producer, waiting at most ``timeout_s`` for records still in flight
        (None: until they are acknowledged or their delivery timeout passes)."""
        if self._producer is not None:
            producer, self._producer = self._producer, None
            clients.close_producer(producer, timeout_s)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _event_id(record: KafkaRecord) -> str:
    raw = record.header("ce_id")
    return raw.decode() if raw else str(uuid.UUID(int=0))
