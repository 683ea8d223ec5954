"""The trust follower keeps a processor's trust store current from a real compacted
topic: a new agency, a rotation and a revocation take effect without a restart."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

import pytest

from schemas.settings import Settings
from sign.errors import SignatureRejected
from sign.events import EventSigner, EventVerifier
from sign.follower import TrustFollower
from sign.trust import Revocation, TrustStore
from sign.trust_records import certificate_event, revocation_event
from sign.trustset import TrustSet
from topics.clients import kafka_reader

if TYPE_CHECKING:
    from tests.conftest import KafkaClients
    from tests.integration.conftest import Grant

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
_WAIT_S = 30.0
PROCESSOR = "BUS-MATCHER"  # the follower reads the trust topic as the processor it serves


def _headers(source: str, when: datetime) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"6f1c2d3e-0000-4000-8000-00000000000a"),
        ("ce_source", f"zf801:agency/{source}".encode()),
        ("ce_type", b"cn.zf801.orders.v1.OrderRelease"),
        ("ce_time", when.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()),
        ("content-type", b"application/avro"),
    ]


def test_follower_applies_certificates_rotations_and_revocations_live(
    kafka_settings: Settings,
    kafka_clients: KafkaClients,
    make_topic: Callable[..., str],
    grant: Grant,
) -> None:
    topic = make_topic(configs={"cleanup.policy": "compact"})
    grant(PROCESSOR, topic, "read")
    trust_set = TrustSet.create(NOW - timedelta(days=10))
    publisher_key, _ = trust_set.issue("BUS-AUDIT", "audit", "bus", now=NOW - timedelta(1),
                                       lifetime=timedelta(days=30))  # fmt: skip
    publisher = EventSigner(publisher_key, "BUS-AUDIT")
    court_key, _ = trust_set.issue("BJ01", "court", "court", now=NOW - timedelta(1),
                                   lifetime=timedelta(days=30))  # fmt: skip
    court = EventSigner(court_key, "BJ01")
    producer = kafka_clients.producer()  # the admin, as an operator publishing trust records

    def publish(record):
        producer.send(topic, key=record.key, value=record.value,
                      headers=list(record.headers)).get(timeout=30)  # fmt: skip

    # On the topic before the processor starts: the publisher's and the court's certificates.
    for certificate in trust_set.certificates:
        publish(certificate_event(certificate, publisher, NOW))

    store = TrustStore(anchors=trust_set.anchors(), certificates=trust_set.chain_certificates())
    follower = TrustFollower(store)
    reader = partial(kafka_reader, kafka_settings, PROCESSOR)
    thread = follower.start(reader, topic)
    try:
        assert thread.wait_caught_up(_WAIT_S), thread.error
        verifier = EventVerifier(store)
        early = court.sign(b"k", b"v", _headers("BJ01", NOW))
        assert verifier.verify(b"k", b"v", early).key_id == court.key_id

        # Rotation while running: the new key verifies as soon as its certificate arrives.
        new_key, new_cert = trust_set.issue("BJ01", "court", "court", now=NOW,
                                            lifetime=timedelta(days=30))  # fmt: skip
        rotated = EventSigner(new_key, "BJ01")
        publish(certificate_event(new_cert, publisher, NOW))
        assert follower.wait_applied(3, _WAIT_S)
        fresh = rotated.sign(b"k", b"v", _headers("BJ01", NOW + timedelta(minutes=1)))
        assert verifier.verify(b"k", b"v", fresh).key_id == rotated.key_id

        # Revocation of the old key from a point in time: earlier events stay valid.
        cut = NOW + timedelta(minutes=5)
        revocation = Revocation(court.key_id, cut, "superseded", NOW, "operator-7")
        publish(revocation_event(revocation, publisher, NOW))
        assert follower.wait_applied(4, _WAIT_S)
        assert follower.applied["revocation"] == 1
        assert verifier.verify(b"k", b"v", early).agency_code == "BJ01"
        late = court.sign(b"k", b"v", _headers("BJ01", cut + timedelta(seconds=1)))
        with pytest.raises(SignatureRejected) as caught:
            verifier.verify(b"k", b"v", late)
        assert caught.value.reason == "KEY_REVOKED"
    finally:
        thread.stop()
        producer.close()
    assert thread.error is None
