"""Trust records and the follower's pure ``apply`` (no broker)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas.codec import decode
from sign.errors import SignatureRejected
from sign.events import EventVerifier
from sign.follower import TrustFollower
from sign.trust import Revocation, TrustStore
from sign.trust_records import certificate_event, revocation_event
from sign.trustset import TrustSet


@pytest.fixture
def bare_store(trust_set) -> TrustStore:
    """What a processor starts with: anchors and issuing CAs, no agency certificates."""
    return TrustStore(anchors=trust_set.anchors(), certificates=trust_set.chain_certificates())


def _apply(follower, record):
    return follower.apply(record.key, record.value, record.headers)


def test_certificate_record_round_trips_and_is_keyed_by_key_id(issued, now):
    record = certificate_event(issued["BJ01"].certificate, issued["BUS-matcher"].signer, now)
    assert record.key == issued["BJ01"].signer.key_id.encode()
    schema, value = decode(record.value)
    assert schema.full_name == "cn.zf801.bus.v1.TrustCertificate"
    assert (value["agency_code"], value["role"]) == ("BJ01", "COURT")


def test_follower_learns_a_new_agency_key_without_restart(bare_store, issued, make_headers, now):
    follower = TrustFollower(bare_store)
    event = issued["BJ01"].signer.sign(b"k", b"v", make_headers())
    verifier = EventVerifier(bare_store)
    with pytest.raises(SignatureRejected, match="UNKNOWN_KEY"):
        verifier.verify(b"k", b"v", event)
    record = certificate_event(issued["BJ01"].certificate, issued["BUS-matcher"].signer, now)
    assert _apply(follower, record) == "certificate"
    assert verifier.verify(b"k", b"v", event).agency_code == "BJ01"


def test_follower_refuses_a_certificate_outside_the_anchors(bare_store, issued, now):
    rogue = TrustSet.create(now - timedelta(days=1))
    _, cert = rogue.issue("BJ01", "forged", "court", now=now, lifetime=timedelta(days=9))
    outcome = _apply(TrustFollower(bare_store), certificate_event(cert, issued["BJ01"].signer, now))
    assert outcome.startswith("refused:") and "no chain" in outcome
    assert bare_store.certificates() == {}


def test_follower_applies_a_revocation_signed_by_a_bus_agency(trust_set, issued, now):
    store = trust_set.trust_store()
    key_id = issued["SH02"].signer.key_id
    revocation = Revocation(key_id, now, "key-compromise", now)
    record = revocation_event(revocation, issued["BUS-matcher"].signer, now)
    assert record.key == f"{key_id}/revocation".encode()
    follower = TrustFollower(store)
    assert _apply(follower, record) == "revocation"
    assert store.revocation_for(key_id).revoked_at == now
    assert store.revocation_for(key_id).reason == "key-compromise"
    assert follower.applied["revocation"] == 1


def test_follower_refuses_a_revocation_not_signed_by_a_bus_agency(trust_set, issued, now):
    store = trust_set.trust_store()
    victim = issued["SH02"].signer.key_id
    forged = revocation_event(
        Revocation(victim, now, "key-compromise", now), issued["BJ01"].signer, now
    )
    outcome = _apply(TrustFollower(store), forged)
    assert "ROLE_NOT_ALLOWED" in outcome
    assert store.revocation_for(victim) is None


def test_follower_refuses_a_tampered_revocation(trust_set, issued, now):
    store = trust_set.trust_store()
    record = revocation_event(
        Revocation(issued["SH02"].signer.key_id, now, "superseded", now, "operator-1"),
        issued["BUS-matcher"].signer,
        now,
    )
    value = bytearray(record.value)
    value[-3] ^= 0x01
    outcome = TrustFollower(store).apply(record.key, bytes(value), record.headers)
    assert "BAD_SIGNATURE" in outcome


def test_follower_refuses_tombstones_and_garbage(bare_store):
    follower = TrustFollower(bare_store)
    assert follower.apply(b"k", None, []).startswith("refused")
    assert follower.apply(b"k", b"\xc3\x01garbage", []).startswith("refused")
    assert follower.applied["refused"] == 2


class _Message:
    def __init__(self, record) -> None:
        self.key, self.value, self.headers = record.key, record.value, list(record.headers)


class _AssignedConsumer:
    """What the caller's factory hands over: one partition, assigned, at the beginning."""

    def __init__(self, records) -> None:
        self._records = [_Message(r) for r in records]
        self._position = 0
        self.closed = False

    def assignment(self):
        return {("trust", 0)}

    def end_offsets(self, partitions):
        return {tp: len(self._records) for tp in partitions}

    def poll(self, timeout_ms=0, max_records=None):
        batch, self._position = self._records[self._position :], len(self._records)
        return {("trust", 0): batch} if batch else {}

    def position(self, partition):
        return self._position

    def close(self) -> None:
        self.closed = True


def test_follower_thread_reads_what_the_factory_assigned_and_catches_up(bare_store, issued, now):
    records = [certificate_event(issued[code].certificate, issued["BUS-matcher"].signer, now)
               for code in ("BJ01", "SH02")]  # fmt: skip
    consumer = _AssignedConsumer(records)
    asked: list[str] = []

    def factory(topic: str) -> _AssignedConsumer:
        asked.append(topic)
        return consumer

    thread = TrustFollower(bare_store).start(factory, "zf801.bus.trust")
    try:
        assert thread.wait_caught_up(10), thread.error
    finally:
        thread.stop()
    assert asked == ["zf801.bus.trust"]
    assert len(bare_store.certificates()) == 2
    assert consumer.closed and thread.error is None


def test_a_factory_that_refuses_the_topic_fails_the_caller(bare_store):
    def refusing(topic: str) -> _AssignedConsumer:
        raise PermissionError(f"agency BUS-MATCHER may not read topic {topic}")

    with pytest.raises(PermissionError, match=r"may not read topic zf801\.bus\.trust"):
        TrustFollower(bare_store).start(refusing, "zf801.bus.trust")
