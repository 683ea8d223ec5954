"""Plays a scenario on the demo's deployment and reads back what the bus made of it.

Courts publish orders and releases, police units acknowledgements and sightings, each
signed with its own key from the key store; two sightings are forged on the way (one
altered after signing, one signed by a key outside the trust anchors). Then every court
reads its own alert stream with the court subscriber (verified, de-duplicated), and the
blocked transfers, the dead letters and the police side's order delivery topics (each
province's, read as a unit that province's rule names) are read in full.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kafka import KafkaProducer
from kafka.errors import KafkaError

from consumers.alerts import AlertSubscriber
from consumers.delivery import DELIVERY_TOPIC_IDS
from consumers.runtime import Runtime
from ops.deployment import Deployment, DeploymentError
from ops.scenario import Expected, Forgery, Scenario, ScenarioSighting
from producers.publisher import OutgoingEvent, Publisher, kafka_producer
from producers.routes import outgoing_event
from schemas.agencies import AgencyList, load_agencies
from schemas.codec import default_codec
from schemas.envelope import KafkaRecord
from schemas.errors import BusError
from sign.events import EventSigner, EventVerifier
from sign.verify_stage import MemoryAuditSink, MemoryDeadLetterSink
from topics.clients import kafka_reader

__all__ = ["Observed", "ObservedHit", "Player", "read_catalog_topic", "read_outcome"]

_SEND_TIMEOUT_S = 60.0
_IDLE_S = 1.0
_EXPIRY = "OrderExpiryNotice"

Advance = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class ObservedHit:
    court: str
    order_id: str
    sighting_id: str
    signed_by: str
    late: bool = False


@dataclass
class Observed:
    """What arrived: alerts per court, police-side notices, blocks and dead letters."""

    hits: dict[str, ObservedHit] = field(default_factory=dict)
    hits_elsewhere: list[tuple[str, str]] = field(default_factory=list)
    """(alert topic's court, hit's court) of any hit found on another court's stream."""
    duplicates: int = 0
    acknowledgements: Counter[tuple[str, str]] = field(default_factory=Counter)
    overdue: set[str] = field(default_factory=set)
    expiry_court: set[str] = field(default_factory=set)
    expiry_warnings: set[str] = field(default_factory=set)
    expiry_police: set[str] = field(default_factory=set)
    delivered: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    """(event type, order id) -> the provinces whose delivery topic carried it."""
    blocked: set[tuple[str, str]] = field(default_factory=set)
    blocked_unverified: int = 0
    dead_letters: dict[str, str] = field(default_factory=dict)
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    refused_alerts: int = 0


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A signed record ready to send, with the agency whose connection sends it."""

    agency: str
    topic: str
    record: KafkaRecord


class Player:
    """Publishes a scenario's events, each agency with its own key and its own producer
    (under mTLS the brokers know a client by its agency's certificate)."""

    def __init__(self, bus: Deployment) -> None:
        self._bus = bus
        self._producers: dict[str, KafkaProducer] = {}
        self._publishers: dict[str, Publisher] = {}

    def producer(self, agency: str) -> KafkaProducer:
        if agency not in self._producers:
            self._producers[agency] = kafka_producer(self._bus.settings, agency, linger_ms=20)
        return self._producers[agency]

    def publisher(self, agency: str, signer: EventSigner | None = None) -> Publisher:
        if signer is not None:
            return Publisher(signer, catalog=self._bus.catalog, producer=self.producer(agency),
                             settings=self._bus.settings)  # fmt: skip
        if agency not in self._publishers:
            self._publishers[agency] = self.publisher(agency, self._bus.keystore.signer_for(agency))
        return self._publishers[agency]

    def orders(self, scenario: Scenario, advance: Advance) -> int:
        return self._send([self._prepare(o.court, outgoing_event(o.schema_name, o.record))
                           for o in scenario.orders], advance)  # fmt: skip

    def acknowledgements(self, scenario: Scenario, advance: Advance) -> int:
        return self._send([self._prepare(a.unit, outgoing_event(a.schema_name, a.record))
                           for a in scenario.acknowledgements], advance)  # fmt: skip

    def releases(self, scenario: Scenario, advance: Advance) -> int:
        return self._send([
            self._prepare(r.court, outgoing_event(r.schema_name, r.record, r.subject.ref()))
            for r in scenario.releases
        ], advance)  # fmt: skip

    def sightings(self, scenario: Scenario, advance: Advance) -> int:
        return self._send([self._sighting(s) for s in scenario.sightings], advance)

    def _sighting(self, sighting: ScenarioSighting) -> _Prepared:
        unit = sighting.unit
        event = outgoing_event(sighting.schema_name, sighting.record)
        if sighting.forgery is Forgery.UNTRUSTED_KEY:
            rogue = EventSigner(Ed25519PrivateKey.generate(), unit)
            return _Prepared(unit, *self.publisher(unit, rogue).prepare(event))
        signed = self._prepare(unit, event)
        if sighting.forgery is Forgery.TAMPERED_VALUE and sighting.tampered is not None:
            altered = outgoing_event(sighting.schema_name, sighting.tampered)
            # Same event id and time, so only the value differs from what was signed.
            changed = self._prepare(unit, OutgoingEvent(
                altered.topic_id, altered.schema_name, altered.record, altered.key,
                event_id=_header(signed.record, "ce_id"), time=None,
            ))  # fmt: skip
            record = signed.record
            forged = KafkaRecord(record.key, changed.record.value, record.headers)
            return _Prepared(unit, signed.topic, forged)
        return signed

    def _prepare(self, agency: str, event: OutgoingEvent) -> _Prepared:
        try:
            return _Prepared(agency, *self.publisher(agency).prepare(event))
        except BusError as exc:
            refused = f"the scenario's {event.schema_name} of {agency} is refused: {exc}"
            raise DeploymentError(refused) from exc

    def _send(self, prepared: Sequence[_Prepared], advance: Advance) -> int:
        futures = [
            self.producer(p.agency).send(
                p.topic, key=p.record.key, value=p.record.value, headers=list(p.record.headers)
            )
            for p in prepared
        ]
        try:
            for future in futures:
                future.get(timeout=_SEND_TIMEOUT_S)
                advance(1)
        except KafkaError as exc:
            raise DeploymentError(f"the broker did not acknowledge an event: {exc}") from exc
        return len(futures)

    def close(self) -> None:
        for producer in self._producers.values():
            producer.close()
        self._producers.clear()


def _header(record: KafkaRecord, name: str) -> str:
    raw = record.header(name)
    return raw.decode() if raw else ""


# --- reading back ------------------------------------------------------------------------------
def _wanted(scenario: Scenario, expected: Expected, court: str) -> set[tuple[str, str]]:
    wanted = {("Hit", hit_id) for hit_id in expected.hits_of(court)}
    wanted |= {("OrderAckOverdue", o) for o in expected.overdue if scenario.order(o).court == court}
    wanted |= {(_EXPIRY, o) for o in expected.expiry_notices if scenario.order(o).court == court}
    return wanted


def _read_court(bus: Deployment, court: str, wanted: set[tuple[str, str]], acks: int,
                deadline: float) -> tuple[list[Any], int, int]:  # fmt: skip
    """Every alert of ``court`` (as that court), until all that is wanted has arrived and
    the stream has been idle for a moment, or the deadline."""
    refusals = MemoryDeadLetterSink()
    runtime = Runtime.from_keystore(court, refusals, MemoryAuditSink(),
                                    settings=bus.settings, keystore=bus.keystore)  # fmt: skip
    subscriber = AlertSubscriber(runtime, court)
    missing, alerts, last = set(wanted), [], time.monotonic()
    forwarded = 0

    def done() -> bool:
        now = time.monotonic()
        settled = not missing and forwarded >= acks and now - last >= _IDLE_S
        return settled or now > deadline

    for alert in subscriber.read(until_idle_s=None, stop=done):
        alerts.append(alert)
        last = time.monotonic()
        key = str(alert.record.get("hit_id") or alert.record.get("order_id"))
        missing.discard((alert.kind, key))
        forwarded += alert.kind == "OrderAcknowledgement"
    return alerts, subscriber.duplicates, len(refusals.rejections)


def _reader_of(bus: Deployment, topic_id: str) -> str:
    """The agency that reads ``topic_id`` for the demo: the first of the agency list whose
    role the catalog lets read it (e.g. a traffic-management unit reads the blocks)."""
    readers = bus.catalog.get(topic_id).access.read
    return next(a.code for a in load_agencies().agencies.values() if a.role in readers)


def _rule_reader(agencies: AgencyList, bus: Deployment, topic_id: str, province: str) -> str:
    """A unit that reads ``topic_id`` of ``province``: one of the catalog's reader roles
    that the province's rule names."""
    readers = bus.catalog.get(topic_id).access.read
    rule = agencies.rules[province]
    return next(code for role, codes in rule.items() if role in readers for code in codes)


def _read_topic(bus: Deployment, topic: str, reader: str) -> list[Any]:
    """Every committed record of a Kafka topic, read to its end by ``reader``."""
    consumer = kafka_reader(bus.settings, reader, topic)
    try:
        partitions = list(consumer.assignment())
        ends = consumer.end_offsets(partitions)
        records: list[Any] = []
        idle_since = time.monotonic()
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            batch = consumer.poll(timeout_ms=200)
            if batch:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > _IDLE_S * 3:
                break  # the end offset counts a transaction marker no record follows
            for messages in batch.values():
                records.extend(messages)
        return records
    finally:
        consumer.close()


def read_catalog_topic(
    bus: Deployment, topic_id: str, province: str | None = None, *, unit: str | None = None
) -> list[Any]:
    """Every committed record of a catalog topic (of ``province``, for a per-province one;
    of ``unit``, for a per-unit one, read by that unit), read by one of its readers."""
    if unit is not None:
        return _read_topic(bus, bus.catalog.topic_name(topic_id, unit=unit), unit)
    if province is None:
        return _read_topic(bus, bus.catalog.topic_name(topic_id), _reader_of(bus, topic_id))
    reader = _rule_reader(load_agencies(), bus, topic_id, province)
    return _read_topic(bus, bus.catalog.topic_name(topic_id, province=province), reader)


def read_outcome(
    bus: Deployment, scenario: Scenario, expected: Expected, timeout_s: float
) -> Observed:
    """Everything the bus delivered for ``scenario``."""
    observed = Observed()
    deadline = time.monotonic() + timeout_s
    acks = Counter(a.court for a in scenario.acknowledgements)
    courts = scenario.courts
    with ThreadPoolExecutor(max_workers=len(courts)) as pool:
        results = pool.map(
            lambda c: _read_court(bus, c, _wanted(scenario, expected, c), acks[c], deadline), courts
        )
        for court, (alerts, duplicates, refused) in zip(courts, results, strict=True):
            observed.duplicates += duplicates
            observed.refused_alerts += refused
            _note_alerts(observed, court, alerts)
    _note_blocks(observed, bus)
    _note_police_side(observed, bus)
    _note_dead_letters(observed, bus)
    return observed


def _note_alerts(observed: Observed, court: str, alerts: Iterable[Any]) -> None:
    for alert in alerts:
        record = alert.record
        if alert.kind == "Hit":
            hit = ObservedHit(record["court_code"], str(record["order_id"]),
                              str(record["sighting"]["sighting_id"]), alert.signed_by,
                              bool(record.get("late")))  # fmt: skip
            observed.hits[str(record["hit_id"])] = hit
            if hit.court != court:
                observed.hits_elsewhere.append((court, hit.court))
        elif alert.kind == "OrderAcknowledgement":
            observed.acknowledgements[(court, str(record["status"]))] += 1
        elif alert.kind == "OrderAckOverdue":
            observed.overdue.add(str(record["order_id"]))
        elif alert.kind == _EXPIRY:
            observed.expiry_court.add(str(record["order_id"]))
        elif alert.kind == "OrderExpiryWarning":
            observed.expiry_warnings.add(str(record["order_id"]))


def _note_blocks(observed: Observed, bus: Deployment) -> None:
    verifier = EventVerifier(bus.keystore.trust_store())
    codec = default_codec()
    for message in read_catalog_topic(bus, "vehicle-blocks"):
        try:
            signature = verifier.verify(message.key, message.value, list(message.headers))
        except BusError:
            observed.blocked_unverified += 1
            continue
        if signature.role != "bus":
            observed.blocked_unverified += 1
            continue
        _, record = codec.decode(message.value)
        observed.blocked.add((str(record["order_id"]), str(record["sighting_id"])))


def _note_police_side(observed: Observed, bus: Deployment) -> None:
    """What each province's delivery topics carried, each read as a unit its rule names."""
    agencies, codec = load_agencies(), default_codec()
    wanted = [(t, p) for t in DELIVERY_TOPIC_IDS.values() for p in agencies.provinces()]

    def read(item: tuple[str, str]) -> list[Any]:
        topic_id, province = item
        topic = bus.catalog.topic_name(topic_id, province=province)
        return _read_topic(bus, topic, _rule_reader(agencies, bus, topic_id, province))

    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        for (_, province), messages in zip(wanted, pool.map(read, wanted), strict=True):
            for message in messages:
                schema, record = codec.decode(message.value)
                order_id = str(record["order_id"])
                observed.delivered[(schema.full_name, order_id)].add(province)
                if schema.name == _EXPIRY:
                    observed.expiry_police.add(order_id)


def _note_dead_letters(observed: Observed, bus: Deployment) -> None:
    codec = default_codec()
    for message in read_catalog_topic(bus, "dead-letter"):
        _, letter = codec.decode(message.value)
        observed.dead_letter_reasons[str(letter["reason"])] += 1
        try:
            _, original = codec.decode(letter["original_value"])
        except BusError:
            continue
        sighting_id = original.get("sighting_id")
        if sighting_id is not None:
            observed.dead_letters[str(sighting_id)] = str(letter["reason"])
