"""Where each local Kafka node lives and listens, and the ``server.properties`` it runs with.

Every node is a combined KRaft broker+controller. The single node and the three-node
quorum have separate folders (``<home>/broker/1-node``, ``<home>/broker/3-node``) and
separate ports, so both can run side by side.

With :class:`BrokerSecurity` (``ZF801_SECURITY=mtls``, the default of ``make demo`` and
``make test``) every listener is TLS 1.3 with client authentication required, and the
broker authorises every request (``StandardAuthorizer``, nothing allowed without an ACL):

- one client listener per side, each trusting only its side's issuing CA and mapping only
  its roles to principals: COURT (courts, the command system), POLICE (border control,
  traffic management, public security), BUS (the bus processors, the admin, and the
  nodes among themselves); a certificate of the police CA whose subject claims a court
  cannot even complete the handshake on the court listener, and on the police listener its
  role does not map;
- CONTROLLER, between the nodes only, trusting the bus CA;
- a principal is ``User:<CN>``; a subject that does not match its listener's rule maps to
  ``User:UNMAPPED``, which no ACL names; super users are the nodes and the admin only.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import ConfigurationError
from schemas.settings import Settings
from schemas.tls_layout import ADMIN_NAME, Side, TlsLayout, node_name

__all__ = [
    "QUORUM_SIZES",
    "BrokerSecurity",
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


# The roles each client listener maps to principals (RFC 2253 subjects, CN first).
_LISTENER_ROLES = {
    "COURT": ("court", "command-system", "list-subscriber"),
    "POLICE": ("border-control", "traffic-management", "public-security"),
    "BUS": ("bus", "broker", "admin"),
    "CONTROLLER": ("broker",),
}
_LISTENER_TRUST: dict[str, Side] = {
    "COURT": "court",
    "POLICE": "police",
    "BUS": "bus",
    "CONTROLLER": "bus",
}
UNMAPPED = "UNMAPPED"


@dataclass(frozen=True)
class BrokerSecurity:
    """mTLS for a local cluster: the key store's TLS files and the passphrase of the nodes'
    PKCS#12 keystores."""

    tls: TlsLayout
    passphrase: str

    @classmethod
    def from_settings(cls, settings: Settings) -> BrokerSecurity | None:
        if settings.security != "mtls":
            return None
        return cls(TlsLayout(settings.tls_dir.resolve()),
                   settings.key_passphrase.get_secret_value())  # fmt: skip


@dataclass(frozen=True)
class NodeSpec:
    """One combined broker+controller node: its id, loopback ports and folder. The police
    and bus ports are its mTLS listeners (unused in plaintext)."""

    node_id: int
    host: str
    broker_port: int
    controller_port: int
    node_dir: Path
    police_port: int = 0
    bus_port: int = 0

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

    def listener_ports(self) -> dict[str, int]:
        return {"COURT": self.broker_port, "POLICE": self.police_port,
                "BUS": self.bus_port, "CONTROLLER": self.controller_port}  # fmt: skip


@dataclass(frozen=True)
class ClusterLayout:
    """A local cluster of one or three nodes sharing a cluster id."""

    cluster_dir: Path
    nodes: tuple[NodeSpec, ...]
    heap: str
    security: BrokerSecurity | None = None

    def __post_init__(self) -> None:
        if len(self.nodes) not in QUORUM_SIZES:
            raise ConfigurationError(
                f"nodes={len(self.nodes)} breaks the rule: a local cluster has 1 or 3 nodes"
            )
        ports = [p for n in self.nodes for p in (n.broker_port, n.controller_port)]
        if self.security is not None:
            ports += [p for n in self.nodes for p in (n.police_port, n.bus_port)]
            if not all(ports):
                raise ConfigurationError("an mTLS cluster needs police and bus ports")
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
        police_ports: list[int] | None = None,
        bus_ports: list[int] | None = None,
        security: BrokerSecurity | None = None,
    ) -> ClusterLayout:
        """A layout on explicit ports (node ids 1..n); tests use free ports and a temp folder."""
        count = len(broker_ports)
        police_ports = police_ports or [0] * count
        bus_ports = bus_ports or [0] * count
        if not len(controller_ports) == len(police_ports) == len(bus_ports) == count:
            raise ConfigurationError("the port lists differ in length")
        root = cluster_dir.resolve()
        nodes = tuple(
            NodeSpec(i, host, bport, cport, root / f"node-{i}", pport, uport)
            for i, (bport, cport, pport, uport) in enumerate(
                zip(broker_ports, controller_ports, police_ports, bus_ports, strict=True), 1
            )
        )
        return cls(root, nodes, heap, security)

    @classmethod
    def from_settings(cls, settings: Settings, nodes: int = 1) -> ClusterLayout:
        """The single node on ``broker_port``/``controller_port``, or the quorum's ports."""
        if nodes not in QUORUM_SIZES:
            raise ConfigurationError(f"nodes={nodes} breaks the rule: 1 or 3")
        if nodes == 1:
            broker_ports = [settings.broker_port]
            controller_ports = [settings.controller_port]
            police_ports, bus_ports = [settings.broker_police_port], [settings.broker_bus_port]
            heap = settings.broker_heap
        else:
            broker_ports = [settings.quorum_broker_port + i for i in range(nodes)]
            controller_ports = [settings.quorum_controller_port + i for i in range(nodes)]
            police_ports = [settings.quorum_police_port + i for i in range(nodes)]
            bus_ports = [settings.quorum_bus_port + i for i in range(nodes)]
            heap = settings.quorum_broker_heap
        return cls.on_ports(
            settings.home / "broker" / f"{nodes}-node",
            host=settings.broker_host,
            broker_ports=broker_ports,
            controller_ports=controller_ports,
            heap=heap,
            police_ports=police_ports,
            bus_ports=bus_ports,
            security=BrokerSecurity.from_settings(settings),
        )

    @property
    def size(self) -> int:
        return len(self.nodes)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_address for node in self.nodes)

    def side_bootstrap(self, listener: str) -> str:
        """The bootstrap servers of one listener (COURT, POLICE, BUS)."""
        return ",".join(f"{n.host}:{n.listener_ports()[listener]}" for n in self.nodes)

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
        **(
            _plaintext_listeners(node)
            if layout.security is None
            else _mtls_listeners(layout, node, layout.security)
        ),
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


def _plaintext_listeners(node: NodeSpec) -> dict[str, str | int]:
    listeners = f"PLAINTEXT://{node.host}:{node.broker_port},CONTROLLER://{node.host}:{node.controller_port}"
    return {
        "listeners": listeners,
        "advertised.listeners": listeners,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    }


def _mtls_listeners(
    layout: ClusterLayout, node: NodeSpec, security: BrokerSecurity
) -> dict[str, str | int]:
    ports = node.listener_ports()
    listeners = ",".join(f"{name}://{node.host}:{port}" for name, port in ports.items())
    supers = [node_name(n.node_id) for n in layout.nodes] + [ADMIN_NAME]
    config: dict[str, str | int] = {
        "listeners": listeners,
        "advertised.listeners": listeners,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "BUS",
        "listener.security.protocol.map": ",".join(f"{name}:SSL" for name in ports),
        "ssl.keystore.type": "PKCS12",  # Kafka 4.1's PEM loader cannot read an Ed25519 key
        "ssl.keystore.location": str(security.tls.node_keystore(node.node_id)),
        "ssl.keystore.password": security.passphrase,
        "ssl.key.password": security.passphrase,
        "ssl.truststore.type": "PEM",
        "ssl.client.auth": "required",
        "ssl.protocol": "TLSv1.3",
        "ssl.enabled.protocols": "TLSv1.3",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": ";".join(f"User:{name}" for name in supers),
    }
    for name, side in _LISTENER_TRUST.items():
        prefix = f"listener.name.{name.lower()}."
        roles = "|".join(_LISTENER_ROLES[name])
        config[prefix + "ssl.truststore.location"] = str(security.tls.truststore(side))
        config[prefix + "ssl.client.auth"] = "required"
        config[prefix + "ssl.principal.mapping.rules"] = (
            f"RULE:^CN=([^,]+),OU=({roles}),O=ZF801,C=CN$/$1/,RULE:^.*$/{UNMAPPED}/"
        )
    return config
