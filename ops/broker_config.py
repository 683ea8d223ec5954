"""Where each local Kafka node lives and listens, and the ``server.properties`` it runs with.

Every node is a combined KRaft broker+controller. The single node and the three-node
quorum have separate folders (``<home>/broker/1-node``, ``<home>/broker/3-node``) and
separate ports, so both can run side by side.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import ConfigurationError
from schemas.settings import Settings

__all__ = [
    "QUORUM_SIZES",
    "ClusterLayout",
    "NodeSpec",
    "new_cluster_id",
    "render_server_properties",
]

QUORUM_SIZES = (1, 3)

# Internal topics get 10 partitions instead of 50: a local broker creates them faster
# and the first consumer group joins sooner.
_INTERNAL_PARTITIONS = 10
# 32 MiB instead of 128 MiB: the log cleaner allocates this map on the heap at start,
# and a local broker never compacts millions of keys in one pass.
_CLEANER_BUFFER_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class NodeSpec:
    """One combined broker+controller node: its id, loopback ports and folder."""

    node_id: int
    host: str
    broker_port: int
    controller_port: int
    node_dir: Path

    @property
    def config_path(self) -> Path:
        return self.node_dir / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.node_dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.node_dir / "logs"

    @property
    def console_log(self) -> Path:
        """The JVM's own stdout and stderr (crashes before log4j starts land here)."""
        return self.logs_dir / "console.log"

    @property
    def server_log(self) -> Path:
        return self.logs_dir / "server.log"

    @property
    def pid_path(self) -> Path:
        return self.node_dir / "kafka.pid"

    @property
    def bootstrap_address(self) -> str:
        return f"{self.host}:{self.broker_port}"


@dataclass(frozen=True)
class ClusterLayout:
    """A local cluster of one or three nodes sharing a cluster id."""

    cluster_dir: Path
    nodes: tuple[NodeSpec, ...]
    heap: str

    def __post_init__(self) -> None:
        if len(self.nodes) not in QUORUM_SIZES:
            raise ConfigurationError(
                f"nodes={len(self.nodes)} breaks the rule: a local cluster has 1 or 3 nodes"
            )
        ports = [p for n in self.nodes for p in (n.broker_port, n.controller_port)]
        if len(set(ports)) != len(ports):
            raise ConfigurationError(f"ports={ports} break the rule: every port used once")

    @classmethod
    def on_ports(
        cls,
        cluster_dir: Path,
        *,
        host: str,
        broker_ports: list[int],
        controller_ports: list[int],
        heap: str,
    ) -> ClusterLayout:
        """A layout on explicit ports (node ids 1..n); tests use free ports and a temp folder."""
        if len(broker_ports) != len(controller_ports):
            raise ConfigurationError("broker_ports and controller_ports differ in length")
        root = cluster_dir.resolve()
        pairs = zip(broker_ports, controller_ports, strict=True)
        nodes = tuple(
            NodeSpec(i, host, bport, cport, root / f"node-{i}")
            for i, (bport, cport) in enumerate(pairs, start=1)
        )
        return cls(root, nodes, heap)

    @classmethod
    def from_settings(cls, settings: Settings, nodes: int = 1) -> ClusterLayout:
        """The single node on ``broker_port``/``controller_port``, or the quorum's ports."""
        if nodes not in QUORUM_SIZES:
            raise ConfigurationError(f"nodes={nodes} breaks the rule: 1 or 3")
        if nodes == 1:
            broker_ports = [settings.broker_port]
            controller_ports = [settings.controller_port]
            heap = settings.broker_heap
        else:
            broker_ports = [settings.quorum_broker_port + i for i in range(nodes)]
            controller_ports = [settings.quorum_controller_port + i for i in range(nodes)]
            heap = settings.quorum_broker_heap
        return cls.on_ports(
            settings.home / "broker" / f"{nodes}-node",
            host=settings.broker_host,
            broker_ports=broker_ports,
            controller_ports=controller_ports,
            heap=heap,
        )

    @property
    def size(self) -> int:
        return len(self.nodes)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_address for node in self.nodes)

    @property
    def cluster_id_path(self) -> Path:
        return self.cluster_dir / "cluster.id"

    def node(self, node_id: int) -> NodeSpec:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise ConfigurationError(f"node_id={node_id} is not in this cluster")


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 without padding (22 chars)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        # Kafka's own Uuid.randomUuid skips ids starting with '-': tools read them as flags.
        if not text.startswith("-"):
            return text


def render_server_properties(layout: ClusterLayout, node: NodeSpec) -> str:
    """The ``server.properties`` of ``node``: replication follows the cluster's size."""
    replicas = layout.size
    min_isr = min(2, replicas)
    voters = ",".join(f"{n.node_id}@{n.host}:{n.controller_port}" for n in layout.nodes)
    settings: dict[str, str | int] = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": voters,
        "listeners": (
            f"PLAINTEXT://{node.host}:{node.broker_port},"
            f"CONTROLLER://{node.host}:{node.controller_port}"
        ),
        "advertised.listeners": (
            f"PLAINTEXT://{node.host}:{node.broker_port},"
            f"CONTROLLER://{node.host}:{node.controller_port}"
        ),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(node.data_dir),
        # Topics come from the catalog (`zf801 topics apply`); a typo must fail, not create.
        "auto.create.topics.enable": "false",
        "num.partitions": 1,
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
        # Internal topics left at the default RF 3 on one node stall groups and transactions.
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": _INTERNAL_PARTITIONS,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": _INTERNAL_PARTITIONS,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
        "share.coordinator.state.topic.num.partitions": _INTERNAL_PARTITIONS,
        "group.initial.rebalance.delay.ms": 0,
        "log.cleaner.dedupe.buffer.size": _CLEANER_BUFFER_BYTES,
    }
    lines = [f"# Written by `zf801 broker start` for node {node.node_id}; rewritten on start."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"
