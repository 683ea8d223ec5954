"""Fixtures shared by every test: a real Kafka broker (started only when a test asks for
one), unique topic and group names per test, and topics created for one test.

Where the broker comes from, in this order:
1. ``KAFKA_BOOTSTRAP_SERVERS`` (or ``ZF801_BOOTSTRAP_SERVERS``) set: that cluster, start nothing.
2. A Docker engine answers: testcontainers' KafkaContainer in KRaft mode.
3. Otherwise the local single node of ``zf801 broker`` (jars fetched if needed); one already
   running from this checkout is reused, and only a broker this session started is stopped.
   With ``ZF801_SECURITY=mtls`` it runs with mutual TLS and ACLs, its TLS
   material from the checkout's key store (created if missing, like ``make demo`` does).
Unit tests request none of these fixtures, so ``pytest tests/unit`` never starts Java.

Tests reach the broker through ``kafka_settings`` (bootstrap per side, TLS material) and the
clients of ``topics.clients``: ``kafka_clients.producer()`` is the admin's by default (a
super user, for raw writes an attacker with broker access would make), or an agency's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import UnknownTopicOrPartitionError

from ops.broker import LocalCluster
from ops.broker_fetch import fetch_kafka
from ops.deployment import Deployment, cluster_addresses
from schemas.settings import Settings, get_settings
from schemas.tls_layout import ADMIN_NAME
from topics import clients

# Tests run in test mode, which accepts the demo secrets; set before any settings are read
# (they are read lazily, never at import), and inherited by the workers tests start.
os.environ.setdefault("ZF801_MODE", "test")

REPO_ROOT = Path(__file__).resolve().parent.parent
# cp-kafka 8.0 is Apache Kafka 4.0: the same protocol generation (KIP-896) as the local broker.
_CONTAINER_IMAGE = "confluentinc/cp-kafka:8.0.0"
_DOCKER_PING_TIMEOUT_S = 1.0

UniqueName = Callable[..., str]
MakeTopic = Callable[..., str]


# The ports of the local broker and of the three-node quorum, with their defaults.
_PORT_VARIABLES = {
    f"ZF801_{name.upper()}": field.default
    for name, field in Settings.model_fields.items()
    if name.endswith("_port") and isinstance(field.default, int)
}
"""Every broker port of the settings (the single node's and the quorum's), with its
default: read from the settings, so a port added there moves up under xdist too."""
_XDIST_PORT_STEP = 1000


def pytest_configure(config: pytest.Config) -> None:
    """Under ``pytest -n N`` each xdist worker but the first gets a broker of its own: its
    own home (the Kafka jars shared) and its ports moved up by 1,000 per worker, set before
    any settings are read and inherited by the processes its tests start."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return
    # An xdist worker starts with COLUMNS=80 and LINES=24 in its environment, which the
    # commands' consoles, built at import, would keep: tests set the width they need.
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)
    number = int(worker.removeprefix("gw") or 0)
    if number == 0:
        return
    home = REPO_ROOT / os.environ.get("ZF801_HOME", ".zf801")  # as _checkout_settings
    own = home / "xdist" / worker
    own.mkdir(parents=True, exist_ok=True)
    jars = own / "kafka"
    if not jars.exists():
        jars.symlink_to((home / "kafka").resolve(), target_is_directory=True)
    os.environ["ZF801_HOME"] = str(own)
    for variable, default in _PORT_VARIABLES.items():
        port = int(os.environ.get(variable, default))
        os.environ[variable] = str(port + number * _XDIST_PORT_STEP)


def _configured_bootstrap() -> str | None:
    for variable in ("KAFKA_BOOTSTRAP_SERVERS", "ZF801_BOOTSTRAP_SERVERS"):
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    return None


def _docker_answers() -> bool:
    """True when a Docker engine replies to /_ping within a second (never hangs)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(_DOCKER_PING_TIMEOUT_S)
            sock.connect(host.removeprefix("unix://"))
        elif host.startswith("tcp://"):
            address, _, port = host.removeprefix("tcp://").rpartition(":")
            sock = socket.create_connection((address, int(port)), _DOCKER_PING_TIMEOUT_S)
        else:
            return False
        with sock:
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in sock.recv(256)
    except (OSError, ValueError):
        return False


def _container_broker() -> Iterator[str]:
    # Imported only here: it is slow to import and only used when Docker answers.
    from testcontainers.community.kafka import KafkaContainer  # noqa: PLC0415

    with KafkaContainer(_CONTAINER_IMAGE).with_kraft() as container:
        yield container.get_bootstrap_server()


def _checkout_settings() -> Settings:
    """The bus settings, with a relative ``home`` anchored at this checkout's root: read
    from the environment now, not from the cache a unit test may have filled under
    variables of its own (under xdist a process may run unit tests before its first
    broker test, and its broker would have started without mTLS)."""
    get_settings.cache_clear()
    settings = get_settings()
    if settings.home.is_absolute():
        return settings
    # The checkout's own .zf801, wherever pytest was started from.
    return settings.model_copy(update={"home": REPO_ROOT / settings.home})


def _local_broker() -> Iterator[Settings]:
    settings = _checkout_settings()
    fetch_kafka(settings)
    if settings.security == "mtls":
        # The broker's identity and every test client's come from the checkout's key store.
        Deployment.create(settings).ensure_keys(dt.datetime.now(dt.UTC))
    cluster = LocalCluster.from_settings(settings, nodes=1)
    started_here = not cluster.is_running()
    cluster.start()
    try:
        yield settings.model_copy(
            update={**cluster_addresses(cluster), "tls_path": settings.tls_dir.resolve()}
        )
    finally:
        if started_here:
            cluster.stop()


def _plain(bootstrap: str) -> Settings:
    return _checkout_settings().model_copy(
        update={"security": "plaintext", "bootstrap_servers": bootstrap}
    )


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """``get_settings`` is read once per process: read it again under the variables a test
    sets, and again afterwards under the suite's own. A test module that changes them uses
    it with ``pytestmark = pytest.mark.usefixtures("fresh_settings")``, or a fixture of its
    own asks for it before ``monkeypatch``."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def checkout_settings() -> Settings:
    """The bus settings, with a relative ``home`` anchored at this checkout's root."""
    return _checkout_settings()


@pytest.fixture(scope="session")
def kafka_settings() -> Iterator[Settings]:
    """How this session's clients reach a real Kafka broker (bootstrap per side, TLS)."""
    configured = _configured_bootstrap()
    if configured:
        yield _plain(configured)
    elif _docker_answers():
        for bootstrap in _container_broker():
            yield _plain(bootstrap)
    else:
        yield from _local_broker()


@pytest.fixture(scope="session")
def bootstrap_servers(kafka_settings: Settings) -> str:
    """The court side's bootstrap address (the only one without mTLS)."""
    return kafka_settings.bootstrap_servers


@dataclass(frozen=True)
class KafkaClients:
    """Clients of this session's broker, built by ``topics.clients``: the admin's by
    default (a super user under mTLS), or ``agency=...``'s."""

    settings: Settings

    def producer(self, agency: str = ADMIN_NAME, **overrides: Any) -> KafkaProducer:
        return clients.kafka_producer(self.settings, agency, **overrides)

    def consumer(self, *topics: str, agency: str = ADMIN_NAME, **overrides: Any) -> KafkaConsumer:
        return clients.kafka_consumer(self.settings, agency, *topics, **overrides)

    def admin(self, agency: str = ADMIN_NAME, **overrides: Any) -> KafkaAdminClient:
        return clients.kafka_admin(self.settings, agency, **overrides)


@pytest.fixture(scope="session")
def kafka_clients(kafka_settings: Settings) -> KafkaClients:
    return KafkaClients(kafka_settings)


@pytest.fixture(scope="session")
def kafka_admin(kafka_clients: KafkaClients) -> Iterator[KafkaAdminClient]:
    admin = kafka_clients.admin(client_id="zf801-tests")
    try:
        yield admin
    finally:
        admin.close()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> UniqueName:
    """A factory of names no other test (or earlier run) uses: ``<prefix>-<test>-<8 hex>``.

    Use it for topic names and consumer group ids alike: ``unique_name("g")``.
    """
    test = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-")[:80]

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def make_topic(kafka_admin: KafkaAdminClient, unique_name: UniqueName) -> Iterator[MakeTopic]:
    """A factory that creates a topic for this test (leaders elected) and deletes it after.

    ``make_topic(partitions=3, replication_factor=1, configs={"cleanup.policy": "compact"})``
    returns the new topic's unique name.
    """
    created: list[str] = []

    def make(
        partitions: int = 1,
        replication_factor: int = 1,
        configs: dict[str, str] | None = None,
        prefix: str = "t",
    ) -> str:
        name = unique_name(prefix)
        spec = {
            "num_partitions": partitions,
            "replication_factor": replication_factor,
            "configs": configs or {},
        }
        kafka_admin.create_topics({name: spec}, wait_for_metadata=True)
        created.append(name)
        return name

    yield make
    if created:
        with contextlib.suppress(UnknownTopicOrPartitionError):
            kafka_admin.delete_topics(created)
