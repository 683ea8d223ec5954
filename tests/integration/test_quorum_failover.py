"""A 3-node KRaft quorum loses the leader of an RF 3 topic to SIGKILL and keeps working:
``acks=all`` writes still succeed (2 in-sync replicas remain, min.insync.replicas=2) and
every record, written before and after the kill, is served. Under mTLS the quorum also
enforces isolation as the single node does (the main cases of test_broker_access.py).

The quorum runs with the session's security: mTLS with the key store's node identities
1-3 when the session's broker does, plaintext otherwise; the test speaks as the admin."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError

from ops.broker import LocalCluster
from ops.broker_config import BrokerSecurity, ClusterLayout, NodeSpec
from ops.broker_fetch import fetch_kafka, kafka_libs_dir
from ops.broker_process import is_alive
from ops.deployment import Deployment, cluster_addresses
from schemas.settings import Settings
from schemas.tls_layout import ADMIN_NAME
from tests.kafka_io import free_ports
from tests.waiting import wait_for
from topics import clients
from topics.clients import kafka_admin, kafka_consumer, kafka_producer
from topics.errors import AccessDenied

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_PER_PHASE = 100
_READ_LIMIT_S = 60.0


@pytest.fixture(scope="module")
def quorum(
    kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    """Three nodes of our own in a temp folder on free ports, stopped whatever happens."""
    tmp_path = tmp_path_factory.mktemp("quorum")
    fetch_kafka(kafka_settings)
    ports = free_ports(12)  # per node: broker (court side), controller, police, bus
    layout = ClusterLayout.on_ports(
        tmp_path / "quorum",
        host=kafka_settings.broker_host,
        broker_ports=ports[:3],
        controller_ports=ports[3:6],
        police_ports=ports[6:9],
        bus_ports=ports[9:],
        heap=kafka_settings.quorum_broker_heap,
        security=BrokerSecurity.from_settings(kafka_settings),  # None under plaintext
    )
    cluster = LocalCluster(
        layout,
        kafka_libs_dir(kafka_settings),
        start_timeout_s=kafka_settings.broker_start_timeout_s,
        stop_timeout_s=15.0,
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _reaching(settings: Settings, nodes: Iterable[NodeSpec]) -> Settings:
    """``settings`` bootstrapping from ``nodes`` only, on each side's listener (under
    plaintext only ``bootstrap_servers``, the nodes' broker ports, is used)."""
    chosen = list(nodes)

    def listener(name: str) -> str:
        return ",".join(f"{n.host}:{n.listener_ports()[name]}" for n in chosen)

    return settings.model_copy(update={
        "bootstrap_servers": listener("COURT"),
        "police_bootstrap_servers": listener("POLICE"),
        "bus_bootstrap_servers": listener("BUS"),
    })  # fmt: skip


def _partition_state(admin: KafkaAdminClient, topic: str) -> tuple[int, list[int]]:
    """The leader and in-sync replicas of the topic's one partition, once the node asked
    knows of it (a node that has not yet caught up with the controller describes a new
    topic with no partitions)."""

    def described() -> list[dict[str, Any]] | None:
        (topic_state,) = admin.describe_topics([topic])
        partitions: list[dict[str, Any]] = topic_state["partitions"]
        return partitions if partitions and partitions[0]["leader_id"] >= 0 else None

    partitions = wait_for(described, timeout_s=30, interval_s=0.2)
    (partition,) = partitions
    return partition["leader_id"], sorted(partition["isr_nodes"])


def _send_all(producer: KafkaProducer, topic: str, values: list[bytes]) -> list[int]:
    futures = [producer.send(topic, key=b"order-1", value=v) for v in values]
    return [f.get(timeout=90).offset for f in futures]


def test_the_quorum_enforces_isolation(
    quorum: LocalCluster, kafka_settings: Settings, tmp_path: Path
) -> None:
    """Runs first, while all three nodes are up: topics and ACLs from the catalog, then
    no certificate is refused, a court reads its own alerts and not another court's, a
    police unit writes its sightings and not an alert topic."""
    if kafka_settings.security != "mtls":
        pytest.skip("the session's broker runs without mTLS")
    settings = kafka_settings.model_copy(
        update={**cluster_addresses(quorum), "home": tmp_path, "topic_prefix": "q3-"}
    )
    deployment = Deployment.create(settings)
    deployment.apply_topics()
    catalog = deployment.catalog
    files = clients.connection(settings, "BJ01").tls
    assert files is not None
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    bare.load_verify_locations(cafile=files.brokers_ca)
    with pytest.raises(KafkaError):
        KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers, security_protocol="SSL",
            ssl_context=bare, bootstrap_timeout_ms=3000,
        ).describe_cluster()  # fmt: skip
    own, other = (catalog.topic_name("alerts", court=c) for c in ("BJ01", "SH01"))
    clients.require_topics(settings, "BJ01", [own], "read")
    with pytest.raises(AccessDenied):
        clients.require_topics(settings, "BJ01", [other], "read")
    clients.require_topics(settings, "110000000000", [catalog.topic_name("sightings-person")],
                           "write")  # fmt: skip
    with pytest.raises(AccessDenied):
        clients.require_topics(settings, "110000000000", [own], "write")


def test_rf3_topic_keeps_accepting_acks_all_writes_after_its_leader_is_killed(
    quorum: LocalCluster, kafka_settings: Settings, unique_name: Callable[..., str]
) -> None:
    topic = unique_name()
    settings = kafka_settings.model_copy(update=cluster_addresses(quorum))
    admin = kafka_admin(settings)
    producer = kafka_producer(settings, ADMIN_NAME)  # acks=all, idempotence
    try:
        admin.create_topics(
            {
                topic: {
                    "num_partitions": 1,
                    "replication_factor": 3,
                    "configs": {"min.insync.replicas": "2"},
                }
            },
            wait_for_metadata=True,
        )
        leader, isr = _partition_state(admin, topic)
        assert isr == [1, 2, 3]

        before = [f"before-{i}".encode() for i in range(_PER_PHASE)]
        assert _send_all(producer, topic, before) == list(range(_PER_PHASE))

        killed_pid = quorum.kill_node(leader)
        assert not is_alive(killed_pid)

        after = [f"after-{i}".encode() for i in range(_PER_PHASE)]
        offsets = _send_all(producer, topic, after)
        assert offsets == list(range(_PER_PHASE, 2 * _PER_PHASE))

        new_leader, new_isr = _partition_state(admin, topic)
        assert new_leader != leader and leader not in new_isr and len(new_isr) == 2
    finally:
        producer.close()
        admin.close()

    survivors = [n for n in quorum.layout.nodes if n.node_id != leader]
    consumer = kafka_consumer(
        _reaching(settings, survivors),
        ADMIN_NAME,
        topic,
        group_id=unique_name("g"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    received: list[bytes] = []
    deadline = time.monotonic() + _READ_LIMIT_S
    try:
        while len(received) < 2 * _PER_PHASE and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                received += [r.value for r in records]
    finally:
        consumer.close()
    assert received == before + after
