"""DeadLetter and AuditRecord events built by the Kafka sinks (with a recording producer)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from schemas.codec import decode
from sign.events import EventVerifier
from sign.kafka_sinks import ClientInfo, KafkaAuditSink, KafkaDeadLetterSink
from sign.verify_stage import ConsumedRecord, Rejection


class _Done:
    def get(self, timeout=None):
        return None


@dataclass
class RecordingProducer:
    sent: list = field(default_factory=list)

    def send(self, topic, *, key, value, headers):
        self.sent.append((topic, key, value, headers))
        return _Done()


def _rejection(now, reason="BAD_SIGNATURE", header=None, offset=41):
    record = ConsumedRecord(
        topic="zf801.sightings.hotel",
        partition=1,
        offset=offset,
        timestamp=1_795_755_600_123,
        key=b"\x01" * 32,
        value=b"\xc3\x01tampered",
        headers=(("ce_id", b"abc"), ("ce_signature", b"AAAA"), ("x-dup", b"1"), ("x-dup", b"2")),
    )
    return Rejection(
        record=record, reason=reason, detail="key 1234: signature does not match",
        verifier="BUS-MATCHER", rejected_at=now, stage="sightings", header=header,
    )  # fmt: skip


def test_dead_letter_event_carries_reason_and_the_original(trust_set, issued, now):
    producer = RecordingProducer()
    sink = KafkaDeadLetterSink(producer, "dead", issued["BUS-matcher"].signer)
    sink.write(_rejection(now))
    ((topic, key, value, headers),) = producer.sent
    assert topic == "dead"
    _, letter = decode(value)
    assert letter["reason"] == "SIGNATURE_INVALID"
    assert letter["detail"].startswith("BAD_SIGNATURE [sightings]: key 1234")
    assert letter["failed_stage"] == "VERIFY"
    assert letter["processor"] == "BUS-MATCHER"
    assert letter["original"] == {"topic": "zf801.sightings.hotel", "partition": 1, "offset": 41}
    assert letter["original_key"] == b"\x01" * 32
    assert letter["original_value"] == b"\xc3\x01tampered"
    assert [(h["name"], h["value"]) for h in letter["original_headers"]] == [
        ("ce_id", b"abc"), ("ce_signature", b"AAAA"), ("x-dup", b"1"), ("x-dup", b"2"),
    ]  # fmt: skip
    assert int(letter["original_timestamp"].timestamp() * 1000) == 1_795_755_600_123
    signed = EventVerifier(trust_set.trust_store()).verify(key, value, headers)
    assert signed.agency_code == "BUS-matcher"
    # The same bad record dead-lettered twice keeps its id (consumers can dedupe).
    sink.write(_rejection(now))
    assert producer.sent[1][1] == key


def test_audit_records_form_a_hash_chain(issued, now):
    producer = RecordingProducer()
    client = ClientInfo("worker-1", "10.0.0.5", "zf801-bus/test")
    sink = KafkaAuditSink(producer, "audit", issued["BUS-matcher"].signer, client=client)
    sink.write(_rejection(now, offset=1))
    sink.write(_rejection(now, reason="ROLE_NOT_ALLOWED", offset=2))
    (_, _, first, _), (_, _, second, _) = producer.sent
    _, one = decode(first)
    _, two = decode(second)
    assert (one["sequence"], one["previous_hash"]) == (0, bytes(32))
    assert (two["sequence"], two["previous_hash"]) == (1, hashlib.sha256(first).digest())
    assert (one["result"], two["result"]) == ("FAILURE", "DENIED")
    assert one["operation"] == "event.verify"
    assert one["target"] == "zf801.sightings.hotel/1@1"
    assert one["client"] == {"host": "worker-1", "address": "10.0.0.5",
                             "application": "zf801-bus/test"}  # fmt: skip
    assert sink.sequence == 2


def test_audit_chain_resumes(issued, now):
    producer = RecordingProducer()
    sink = KafkaAuditSink(producer, "audit", issued["BUS-matcher"].signer,
                          client=ClientInfo("h", "127.0.0.1", "a"))  # fmt: skip
    sink.resume(17, b"\x07" * 32)
    sink.write(_rejection(now))
    _, record = decode(producer.sent[0][2])
    assert (record["sequence"], record["previous_hash"]) == (17, b"\x07" * 32)
