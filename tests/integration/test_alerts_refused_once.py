"""A court reads its whole alert stream on every read; a forged alert in it is refused,
audited once (a court writes no dead letters), not again on every later read, also by a new process
(a new runtime and subscriber: what it refused is remembered in a file under the home)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from consumers.alerts import AlertSubscriber, RefusedPositions
from consumers.runtime import Runtime
from ops.deployment import Deployment
from producers.publisher import Publisher
from producers.routes import outgoing_event
from schemas.codec import decode
from schemas.envelope import KafkaRecord
from schemas.settings import Settings
from tests.builders import Records, deployed
from topics.clients import kafka_reader

if TYPE_CHECKING:
    from tests.conftest import KafkaClients

pytestmark = pytest.mark.integration

COURT, BJ_TRAFFIC = "BJ01", "110000110000"
ACK = "cn.zf801.orders.v1.OrderAcknowledgement"


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, kafka_settings: Settings
) -> Iterator[Deployment]:
    home = tmp_path_factory.mktemp("refused-once")
    with deployed(home, kafka_settings, (COURT, "BUS-MATCHER", BJ_TRAFFIC), "once") as deployment:
        yield deployment


def _forged_alerts(deployment: Deployment) -> list[KafkaRecord]:
    """An acknowledgement signed by a unit that does not act on exit restrictions (refused
    for its content), and the same with a byte of its value flipped (refused by the
    signature check)."""
    order = {"order_id": str(uuid.uuid4()), "enforcing_court_code": COURT}
    record = Records.acknowledgement(order, "EXIT_RESTRICTION", BJ_TRAFFIC)
    publisher = Publisher(deployment.keystore.signer_for(BJ_TRAFFIC), catalog=deployment.catalog,
                          settings=deployment.settings)  # fmt: skip
    _, signed = publisher.prepare(outgoing_event(ACK, record))
    value = bytearray(signed.value)
    value[-1] ^= 0x01
    return [signed, KafkaRecord(signed.key, bytes(value), signed.headers)]


def _dead_letters_of(deployment: Deployment, stream: str) -> list[tuple[int, int, str]]:
    """(partition, offset, reason) of every dead letter of a record of ``stream``."""
    settings = deployment.settings
    reader = kafka_reader(settings, "ZF801-ADMIN", deployment.catalog.topic_name("dead-letter"))
    found: list[tuple[int, int, str]] = []
    try:
        while batch := reader.poll(timeout_ms=3000):
            for messages in batch.values():
                for message in messages:
                    _, dead = decode(message.value)
                    if dead["original"]["topic"] == stream:
                        original = dead["original"]
                        found.append((original["partition"], original["offset"], dead["reason"]))
    finally:
        reader.close()
    return sorted(found)


def _read_once(deployment: Deployment) -> AlertSubscriber:
    """One ``zf801 alerts`` run: a runtime of its own (``Runtime.connect``, as the command
    builds it), whose refusals go to the audit topic; a court writes no dead letters (the
    catalog keeps them for the bus's processors)."""
    runtime = Runtime.connect(COURT, deployment.settings)
    try:
        subscriber = AlertSubscriber(runtime, COURT)
        assert list(subscriber.read(until_idle_s=3.0)) == []
    finally:
        runtime.close()
    return subscriber


def _audited_refusals(deployment: Deployment, stream: str) -> list[str]:
    """The targets (positions) of every audited refusal of a record of ``stream``."""
    reader = kafka_reader(
        deployment.settings, "ZF801-ADMIN", deployment.catalog.topic_name("audit")
    )
    targets: list[str] = []
    try:
        while batch := reader.poll(timeout_ms=3000):
            for messages in batch.values():
                for message in messages:
                    _, audit = decode(message.value)
                    if audit["operation"] == "event.verify" and audit["target"].startswith(
                        f"{stream}/"
                    ):
                        targets.append(audit["target"])
    finally:
        reader.close()
    return sorted(targets)


def test_a_forged_alert_is_audited_once_across_reads(
    deployment: Deployment, kafka_clients: KafkaClients
) -> None:
    stream = deployment.catalog.topic_name("alerts", court=COURT)
    producer = kafka_clients.producer()  # the attacker: raw bytes into the court's stream
    try:
        for forged in _forged_alerts(deployment):
            producer.send(stream, key=forged.key, value=forged.value, headers=list(forged.headers))
        producer.flush()
    finally:
        producer.close()

    first = _read_once(deployment)
    assert (first.refused_before, len(first.refused)) == (0, 2)
    audited = _audited_refusals(deployment, stream)
    assert len(set(audited)) == 2  # one audit record per forged alert, at its position

    second = _read_once(deployment)  # a new process: the file remembers
    assert second.refused_before == 2
    assert _audited_refusals(deployment, stream) == audited  # not audited again
    assert _dead_letters_of(deployment, stream) == []  # a court writes no dead letters


def test_the_memory_matches_only_the_same_content(tmp_path) -> None:
    class Message:
        def __init__(self, offset: int, value: bytes) -> None:
            self.partition, self.offset, self.value, self.headers = 0, offset, value, []

    path = tmp_path / "alerts.refused.json"
    memory = RefusedPositions.load(path, limit=2)
    for offset in range(3):
        memory.add(Message(offset, b"forged"))
    again = RefusedPositions.load(path, limit=2)
    assert Message(0, b"forged") not in again  # the oldest beyond the limit is dropped
    assert Message(2, b"forged") in again
    assert Message(2, b"another record at the same offset") not in again
    path.write_text("not json")
    assert len(RefusedPositions.load(path)) == 0  # unreadable: start empty, hide nothing
