"""Verify before act against the real broker: every tampered record is refused, lands on
the dead-letter topic with its precise reason and the original record, is audited, and
never reaches the effect."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from kafka import KafkaProducer
from kafka.structs import TopicPartition

from schemas.codec import decode
from schemas.envelope import KafkaRecord, build_record
from sign.events import EventSigner, EventVerifier
from sign.kafka_sinks import KafkaAuditSink, KafkaDeadLetterSink
from sign.replay import ReplayGuard
from sign.trust import Revocation, TrustStore
from sign.trustset import TrustSet
from sign.verify_stage import VerifiedEvent, VerifyStage

if TYPE_CHECKING:
    from tests.conftest import KafkaClients

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
POLICE = "110105000000"
PROCESSOR = "BUS-MATCHER"
KEY = bytes(range(32))
_READ_LIMIT_S = 30.0


@dataclass
class Pki:
    trust_set: TrustSet
    signers: dict[str, EventSigner]
    store: TrustStore


@pytest.fixture(scope="module")
def pki() -> Pki:
    trust_set = TrustSet.create(NOW - timedelta(days=30))
    signers = {}
    specs = {
        POLICE: (NOW - timedelta(days=1), timedelta(days=365)),
        PROCESSOR: (NOW - timedelta(days=1), timedelta(days=365)),
        "expired": (NOW - timedelta(days=20), timedelta(days=2)),
        "future": (NOW + timedelta(days=2), timedelta(days=30)),
        "revoked": (NOW - timedelta(days=1), timedelta(days=365)),
    }
    for name, (issued_at, lifetime) in specs.items():
        code = name if name in (POLICE, PROCESSOR) else POLICE
        role = "bus" if code == PROCESSOR else "public-security"
        key, _ = trust_set.issue(code, "unit", role, now=issued_at, lifetime=lifetime)
        signers[name] = EventSigner(key, code)
    rogue = TrustSet.create(NOW - timedelta(days=5))
    rogue_key, rogue_cert = rogue.issue(POLICE, "forged", "public-security", now=NOW,
                                        lifetime=timedelta(days=9))  # fmt: skip
    signers["rogue"] = EventSigner(rogue_key, POLICE)
    signers["court"] = EventSigner(
        trust_set.issue("BJ01", "court", "court", now=NOW - timedelta(1), lifetime=timedelta(9))[0],
        "BJ01",
    )
    store = trust_set.trust_store()
    store.add_certificate(rogue_cert)  # e.g. smuggled onto the trust topic
    revoked_id = signers["revoked"].key_id
    store.add_revocation(Revocation(revoked_id, NOW - timedelta(hours=1), "key-compromise", NOW))
    return Pki(trust_set, signers, store)


def _sighting(signer: EventSigner, source: str = POLICE, when: datetime = NOW) -> KafkaRecord:
    value = {
        "sighting_id": str(uuid.uuid4()),
        "reporting_unit_code": POLICE,
        "observed_at": when,
        "person": {"name": "张三", "id_number": "11010519491231002X"},
        "hotel_name": "北京饭店",
        "hotel_address": "北京市东城区东长安街33号",
        "room": None,
        "checked_in_at": when,
        "expected_check_out": None,
        "registered_phone": None,
    }
    record = build_record("HotelCheckIn", value, key=KEY, source=f"zf801:agency/{source}",
                          time=when)  # fmt: skip
    return signer.sign(record.key, record.value, record.headers), record


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def _with(headers: list, name: str, value: bytes) -> list:
    return [(n, value if n == name else v) for n, v in headers]


Case = Callable[[Pki], tuple[bytes | None, bytes, list[tuple[str, bytes]]]]


def _good(pki: Pki, signer: str = POLICE, source: str = POLICE) -> tuple:
    headers, record = _sighting(pki.signers[signer], source)
    return record.key, record.value, headers


def _edited(edit: Callable[[Any, Any, Any], tuple]) -> Case:
    """A case: a good signed record, then ``edit(key, value, headers)``."""

    def case(pki: Pki) -> tuple:
        return edit(*_good(pki))

    return case


def _tamper_header(name: str) -> Case:
    def case(pki: Pki) -> tuple:
        key, value, headers = _good(pki)
        original = dict(headers)[name]
        return key, value, _with(headers, name, _flip(original, len(original) - 2))

    return case


def _moved(pki: Pki) -> tuple:
    key, value, headers = _good(pki)
    _, _, other = _good(pki)
    signature_of_other = [(n, v) for n, v in other if n.startswith("ce_sig")]
    return (
        key,
        value,
        [(n, v) for n, v in headers if not n.startswith("ce_sig")] + (signature_of_other),
    )


def _flipped_signature(pki: Pki) -> tuple:
    key, value, headers = _good(pki)
    raw = base64.b64decode(dict(headers)["ce_signature"])
    return key, value, _with(headers, "ce_signature", base64.b64encode(_flip(raw, 5)))


def _mismatch(pki: Pki) -> tuple:
    # The court's valid key signs a record that claims to come from the police unit.
    headers, record = _sighting(EventSigner(pki.signers["court"]._private_key, POLICE))
    return record.key, record.value, headers


# name -> (record builder, precise reason, DeadLetter reason symbol, DeadLetter stage)
CASES: dict[str, tuple[Case, str, str, str]] = {
    "value-byte": (
        _edited(lambda k, v, h: (k, _flip(v, 30), h)),
        "BAD_SIGNATURE", "SIGNATURE_INVALID", "VERIFY",
    ),
    "key-byte": (
        _edited(lambda k, v, h: (_flip(k, 0), v, h)),
        "BAD_SIGNATURE", "SIGNATURE_INVALID", "VERIFY",
    ),
    **{
        f"header-{name}": (_tamper_header(name), "BAD_SIGNATURE", "SIGNATURE_INVALID", "VERIFY")
        for name in ("ce_id", "ce_source", "ce_type", "ce_time", "ce_specversion",
                     "content-type")
    },
    "signature-byte": (_flipped_signature, "BAD_SIGNATURE", "SIGNATURE_INVALID", "VERIFY"),
    "signature-moved": (_moved, "BAD_SIGNATURE", "SIGNATURE_INVALID", "VERIFY"),
    "untrusted-chain": (
        lambda p: _good(p, "rogue"), "UNTRUSTED_CHAIN", "CERTIFICATE_UNTRUSTED", "VERIFY",
    ),
    "agency-mismatch": (
        _mismatch, "AGENCY_MISMATCH", "AGENCY_MISMATCH", "VERIFY",
    ),
    "expired": (
        lambda p: _good(p, "expired"), "CERT_EXPIRED", "CERTIFICATE_NOT_VALID_AT_TIME", "VERIFY",
    ),
    "not-yet-valid": (
        lambda p: _good(p, "future"),
        "CERT_NOT_YET_VALID", "CERTIFICATE_NOT_VALID_AT_TIME", "VERIFY",
    ),
    "revoked": (lambda p: _good(p, "revoked"), "KEY_REVOKED", "KEY_REVOKED", "VERIFY"),
    "missing-signature": (
        _edited(lambda k, v, h: (k, v, [x for x in h if x[0] != "ce_signature"])),
        "MISSING_HEADER", "SIGNATURE_MISSING", "HEADERS",
    ),
    "duplicated-keyid": (
        _edited(lambda k, v, h: (k, v, [*h, ("ce_sigkeyid", dict(h)["ce_sigkeyid"])])),
        "DUPLICATE_HEADER", "HEADER_DUPLICATED", "HEADERS",
    ),
    "unknown-algorithm": (
        _edited(lambda k, v, h: (k, v, _with(h, "ce_sigalg", b"rsa-pss-sha256"))),
        "UNKNOWN_ALGORITHM", "UNKNOWN_ALGORITHM", "VERIFY",
    ),
    "oversized-header": (
        _edited(lambda k, v, h: (k, v, _with(h, "ce_signature", b"A" * 4000))),
        "OVERSIZED_HEADER", "HEADER_TOO_LARGE", "HEADERS",
    ),
}  # fmt: skip


@dataclass
class Bus:
    """The test's own topics, reached as the admin: the stage under test takes its producer
    (for its dead-letter and audit sinks) and the records read, not a client of its own."""

    clients: KafkaClients
    source: str
    dead_letter: str
    audit: str
    producer: KafkaProducer


@pytest.fixture
def bus(kafka_clients: KafkaClients, make_topic: Callable[..., str]) -> Iterator[Bus]:
    producer = kafka_clients.producer()
    try:
        yield Bus(kafka_clients, make_topic(prefix="src"), make_topic(prefix="dlq"),
                  make_topic(prefix="audit"), producer)  # fmt: skip
    finally:
        producer.close()


def _read_all(bus: Bus, topic: str, count: int) -> list[Any]:
    consumer = bus.clients.consumer(enable_auto_commit=False)
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    got: list[Any] = []
    deadline = time.monotonic() + _READ_LIMIT_S
    try:
        while len(got) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got += records
    finally:
        consumer.close()
    return got


def _run_stage(pki: Pki, bus: Bus, count: int) -> tuple[list[VerifiedEvent], VerifyStage]:
    signer = pki.signers[PROCESSOR]
    stage = VerifyStage(
        pki.store,
        ReplayGuard(timedelta(days=7), 100_000),
        KafkaDeadLetterSink(bus.producer, bus.dead_letter, signer),
        KafkaAuditSink(bus.producer, bus.audit, signer),
        verifier_agency=PROCESSOR,
        stage="sightings",
    )
    effects: list[VerifiedEvent] = []
    for message in _read_all(bus, bus.source, count):
        stage.handle(message, effects.append)
    return effects, stage


def _send(bus: Bus, key: bytes | None, value: bytes, headers: list) -> int:
    return bus.producer.send(bus.source, key=key, value=value, headers=headers).get(30).offset


@pytest.mark.parametrize("case", CASES)
def test_tampered_record_is_dead_lettered_audited_and_never_acted_on(pki, bus, case):
    build, reason, category, stage_symbol = CASES[case]
    key, value, headers = build(pki)
    good_key, good_value, good_headers = _good(pki)
    bad_offset = _send(bus, key, value, headers)
    good_offset = _send(bus, good_key, good_value, good_headers)

    effects, stage = _run_stage(pki, bus, 2)

    # The effect ran for the good record only.
    assert [e.record.offset for e in effects] == [good_offset]
    assert stage.rejected == {reason: 1}
    (letter_message,) = _read_all(bus, bus.dead_letter, 1)
    _, letter = decode(letter_message.value)
    assert letter["reason"] == category
    assert letter["detail"].startswith(f"{reason} [sightings]: ")
    assert letter["failed_stage"] == stage_symbol
    assert letter["processor"] == PROCESSOR
    assert letter["original"] == {"topic": bus.source, "partition": 0, "offset": bad_offset}
    assert letter["original_key"] == key
    assert letter["original_value"] == value
    assert [(h["name"], h["value"]) for h in letter["original_headers"]] == headers
    # The dead letter is itself a signed bus event.
    verified = EventVerifier(pki.store).verify(
        letter_message.key, letter_message.value, letter_message.headers
    )
    assert verified.agency_code == PROCESSOR
    (audit_message,) = _read_all(bus, bus.audit, 1)
    _, audit = decode(audit_message.value)
    assert audit["target"] == f"{bus.source}/0@{bad_offset}"
    assert audit["result"] == "FAILURE"
    assert audit["result_detail"].startswith(reason)
    assert audit["agency_code"] == PROCESSOR


def test_replayed_event_is_acted_on_once(pki, bus):
    key, value, headers = _good(pki)
    first = _send(bus, key, value, headers)
    replay = _send(bus, key, value, headers)  # a byte-identical copy, at a new offset

    effects, stage = _run_stage(pki, bus, 2)

    assert [e.record.offset for e in effects] == [first]
    (letter_message,) = _read_all(bus, bus.dead_letter, 1)
    _, letter = decode(letter_message.value)
    assert letter["reason"] == "REPLAYED"
    assert letter["detail"].startswith("REPLAYED [sightings]: ")
    assert letter["original"]["offset"] == replay
    assert [(h["name"], h["value"]) for h in letter["original_headers"]] == headers
    (audit_message,) = _read_all(bus, bus.audit, 1)
    assert decode(audit_message.value)[1]["target"] == f"{bus.source}/0@{replay}"
    assert stage.accepted == 1


def test_redelivery_after_a_crash_is_not_a_replay(pki, bus):
    key, value, headers = _good(pki)
    offset = _send(bus, key, value, headers)
    signer = pki.signers[PROCESSOR]
    stage = VerifyStage(
        pki.store, ReplayGuard(timedelta(days=7), 1000),
        KafkaDeadLetterSink(bus.producer, bus.dead_letter, signer),
        KafkaAuditSink(bus.producer, bus.audit, signer), verifier_agency=PROCESSOR,
    )  # fmt: skip
    # The consumer read the record, crashed before committing, and reads it again.
    first = [stage.check_record(m) for m in _read_all(bus, bus.source, 1)]
    again = [stage.check_record(m) for m in _read_all(bus, bus.source, 1)]
    assert [(e.record.offset, e.redelivery) for e in first + again] == [
        (offset, False),
        (offset, True),
    ]
    assert stage.rejected == {}
