"""The client factory without a broker: the connection of each agency under plaintext and
mTLS (listener by side, TLS files from the layout, passphrase, TLS 1.3), clear errors for
missing or undecryptable identities, the access check's reading of topic metadata, and
that no module outside ``topics/clients.py`` builds a Kafka client."""

from __future__ import annotations

import ast
import datetime as dt
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from kafka.errors import KafkaTimeoutError
from pydantic import SecretStr

import topics.clients as clients
from schemas.settings import Settings
from schemas.tls_layout import ADMIN_NAME, TlsLayout
from topics.errors import AccessDenied, BrokerUnreachable, ClientConfigError, TopicMissing

REPO_ROOT = Path(__file__).resolve().parents[3]
PASSPHRASE = "unit-test-key-passphrase"
# One agency of each side, the command system (court side) and the operator.
SIDES = {
    "BJ01": "court",
    "SPC-COMMAND": "court",
    "110000230000": "police",
    "110000110000": "police",
    "BUS-MATCHER": "bus",
    ADMIN_NAME: "bus",
}
SERVERS = {"court": "court:9092", "police": "police:9094", "bus": "bus:9095"}


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: Ed25519PrivateKey, issuer: str, issuer_key: Ed25519PrivateKey, ca: bool
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, None)
    )


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TLS layout as ``zf801 keys init`` writes it (one CA for all, Ed25519 keys,
    PKCS#8 private keys encrypted with the passphrase) for every agency of SIDES."""
    layout = TlsLayout(tmp_path_factory.mktemp("tls"))
    ca_key = Ed25519PrivateKey.generate()
    ca = _certificate("unit-test CA", ca_key, "unit-test CA", ca_key, ca=True)
    layout.brokers_ca.parent.mkdir(parents=True, exist_ok=True)
    layout.brokers_ca.write_bytes(_pem(ca))
    encryption = serialization.BestAvailableEncryption(PASSPHRASE.encode())
    for agency in SIDES:
        key = Ed25519PrivateKey.generate()
        files = layout.identity(agency)
        files.chain.parent.mkdir(parents=True)
        leaf = _certificate(agency, key, "unit-test CA", ca_key, ca=False)
        files.chain.write_bytes(_pem(leaf) + _pem(ca))
        files.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
            )
        )
    return layout.root


def _mtls(tls_dir: Path, passphrase: str = PASSPHRASE) -> Settings:
    return Settings(
        security="mtls",
        bootstrap_servers=SERVERS["court"],
        police_bootstrap_servers=SERVERS["police"],
        bus_bootstrap_servers=SERVERS["bus"],
        tls_path=tls_dir,
        key_passphrase=SecretStr(passphrase),
    )


class _Recorder:
    """Stands in for a client class: keeps what it was built with."""

    built: list[_Recorder]

    def __init__(self, *topics: str, **config: Any) -> None:
        self.topics = topics
        self.config = config
        self.built.append(self)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[_Recorder]]:
    """Every client class of topics.clients replaced by a recorder; the clients built."""
    made: list[_Recorder] = []
    for name in ("KafkaProducer", "KafkaConsumer", "AIOKafkaProducer", "AIOKafkaConsumer"):
        monkeypatch.setattr(clients, name, type(name, (_Recorder,), {"built": made}))
    yield made


# --- plaintext ---------------------------------------------------------------------------
@pytest.mark.parametrize("agency", list(SIDES))
def test_plaintext_every_agency_uses_the_bootstrap_servers_without_tls(agency: str) -> None:
    settings = Settings(
        security="plaintext", bootstrap_servers="plain:9092", police_bootstrap_servers="x:1"
    )
    conn = clients.connection(settings, agency)
    assert (conn.bootstrap_servers, conn.tls, conn.security_protocol) == (
        "plain:9092", None, "PLAINTEXT")  # fmt: skip
    assert conn.side == SIDES[agency]
    assert clients.ssl_context(settings, agency) is None


def test_plaintext_builders_pass_the_connection_and_the_call_sites_settings(
    built: list[_Recorder],
) -> None:
    settings = Settings(security="plaintext", bootstrap_servers="plain:9092", connect_timeout_s=3.5)
    clients.kafka_producer(settings, "BJ01", linger_ms=20)
    clients.aio_producer(settings, "BUS-MATCHER", acks=1, client_id="notices")
    clients.aio_consumer(settings, "BUS-MATCHER", group_id="g")
    producer, aio_producer, aio_consumer = built
    assert producer.config == {
        "bootstrap_servers": "plain:9092", "client_id": "zf801-bj01",
        "acks": "all", "enable_idempotence": True, "linger_ms": 20,
        "bootstrap_timeout_ms": 3500, "max_block_ms": 3500,  # a broker that is down: bounded
    }  # fmt: skip
    assert aio_producer.config == {
        "bootstrap_servers": "plain:9092", "client_id": "notices",
        "acks": 1, "enable_idempotence": True,
    }  # fmt: skip
    assert aio_consumer.config == {
        "bootstrap_servers": "plain:9092", "client_id": "zf801-bus-matcher", "group_id": "g",
        "isolation_level": "read_committed",  # aiokafka's own default reads aborted records
    }  # fmt: skip


def test_plaintext_faust_options_are_the_broker_url_only() -> None:
    settings = Settings(security="plaintext", bootstrap_servers="a:9092,b:9092")
    assert clients.faust_broker_options(settings, "BUS-MATCHER") == {
        "broker": "kafka://a:9092,b:9092"
    }


# --- mTLS ----------------------------------------------------------------------------------
@pytest.mark.parametrize("agency", list(SIDES))
def test_mtls_connects_on_the_listener_of_the_agencys_side_with_its_own_files(
    tls_dir: Path, agency: str
) -> None:
    conn = clients.connection(_mtls(tls_dir), agency)
    side = SIDES[agency]
    assert (conn.side, conn.bootstrap_servers, conn.security_protocol) == (
        side, SERVERS[side], "SSL")  # fmt: skip
    layout = TlsLayout(tls_dir)
    assert conn.tls is not None
    assert (conn.tls.chain, conn.tls.key) == (layout.identity(agency).chain,
                                              layout.identity(agency).key)  # fmt: skip
    assert conn.tls.brokers_ca == layout.brokers_ca
    assert conn.tls.password == PASSPHRASE
    assert PASSPHRASE not in repr(conn)


def test_mtls_context_is_tls13_verifies_the_brokers_and_loads_the_encrypted_key(
    tls_dir: Path,
) -> None:
    context = clients.ssl_context(_mtls(tls_dir), "BJ01")
    assert isinstance(context, ssl.SSLContext)
    assert context.minimum_version is ssl.TLSVersion.TLSv1_3
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    # The brokers' CA is an issuing CA, trusted as the anchor itself.
    assert context.verify_flags & ssl.VERIFY_X509_PARTIAL_CHAIN
    [ca] = context.get_ca_certs()
    assert ca["subject"] == ((("commonName", "unit-test CA"),),)


def test_mtls_builders_use_ssl_with_the_agencys_context(
    tls_dir: Path, built: list[_Recorder]
) -> None:
    settings = _mtls(tls_dir)
    clients.kafka_producer(settings, "110000230000")
    clients.aio_consumer(settings, "BUS-MATCHER")
    producer, consumer = built
    assert producer.config["bootstrap_servers"] == SERVERS["police"]
    assert consumer.config["bootstrap_servers"] == SERVERS["bus"]
    for client in built:
        assert client.config["security_protocol"] == "SSL"
        context = client.config["ssl_context"]
        assert context.minimum_version is ssl.TLSVersion.TLSv1_3
    assert consumer.config["isolation_level"] == "read_committed"


def test_mtls_faust_options_carry_ssl_credentials_around_a_ready_context(tls_dir: Path) -> None:
    options = clients.faust_broker_options(_mtls(tls_dir), "BUS-MATCHER")
    assert options["broker"] == f"kafka://{SERVERS['bus']}"
    credentials = options["broker_credentials"]
    assert credentials.protocol.name == "SSL"
    assert credentials.context.minimum_version is ssl.TLSVersion.TLSv1_3


def test_a_missing_identity_names_the_agency_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ClientConfigError) as caught:
        clients.kafka_producer(_mtls(tmp_path), "SH01")
    message = str(caught.value)
    assert "agency SH01" in message
    assert str(TlsLayout(tmp_path).identity("SH01").chain) in message
    assert "zf801 keys init" in message and "zf801 keys issue --agency SH01" in message


def test_a_missing_brokers_ca_is_named_too(tls_dir: Path, tmp_path: Path) -> None:
    settings = _mtls(tmp_path)
    mine, complete = TlsLayout(tmp_path).identity("BJ01"), TlsLayout(tls_dir).identity("BJ01")
    mine.chain.parent.mkdir(parents=True)
    mine.chain.write_bytes(complete.chain.read_bytes())
    mine.key.write_bytes(complete.key.read_bytes())
    with pytest.raises(ClientConfigError, match=r"brokers\.pem is missing"):
        clients.connection(settings, "BJ01")


def test_a_wrong_passphrase_is_a_clear_error(tls_dir: Path) -> None:
    with pytest.raises(ClientConfigError, match="ZF801_KEY_PASSPHRASE") as caught:
        clients.ssl_context(_mtls(tls_dir, passphrase="not-the-passphrase"), "BJ01")
    assert "agency BJ01" in str(caught.value)


# --- require_topics --------------------------------------------------------------------------
ALL_OPERATIONS = ["READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "DESCRIBE_CONFIGS",
                  "ALTER_CONFIGS"]  # fmt: skip


def _described(name: str, code: int = 0, partitions: int = 2,
               operations: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """A topic as kafka-python 3's describe_topics returns it (shapes seen on Kafka 4.1)."""
    return {
        "error_code": code, "name": name, "is_internal": False,
        "partitions": [{"error_code": 0, "partition_index": p} for p in reversed(range(partitions))]
        if code == 0 else [],
        "authorized_operations": operations,
    }  # fmt: skip


class _FakeAdmin:
    """Answers describe_topics with canned metadata; records how it was built."""

    answers: dict[str, dict[str, Any]]
    built: list[_FakeAdmin]

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.closed = False
        self.built.append(self)

    def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        return [self.answers.get(name, _described(name, code=3)) for name in topics]

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[_FakeAdmin]]:
    def answer(*topics: dict[str, Any]) -> list[_FakeAdmin]:
        made: list[_FakeAdmin] = []
        fake = type("KafkaAdminClient", (_FakeAdmin,), {
            "answers": {t["name"]: t for t in topics}, "built": made})  # fmt: skip
        monkeypatch.setattr(clients, "KafkaAdminClient", fake)
        return made

    return answer


PLAIN = Settings(security="plaintext", bootstrap_servers="plain:9092")


def test_require_topics_returns_sorted_partitions_asked_with_the_agencys_connection(
    cluster: Callable[..., list[_FakeAdmin]], tls_dir: Path
) -> None:
    admins = cluster(_described("a", partitions=3, operations=["DESCRIBE", "READ"]),
                     _described("b", operations=ALL_OPERATIONS))  # fmt: skip
    found = clients.require_topics(_mtls(tls_dir), "110000230000", ["a", "b", "a"])
    assert found == {"a": (0, 1, 2), "b": (0, 1)}
    [admin] = admins
    assert admin.closed
    assert admin.config["bootstrap_servers"] == SERVERS["police"]
    assert admin.config["security_protocol"] == "SSL"


def test_a_topic_the_agency_may_not_describe_is_access_denied(
    cluster: Callable[..., list[_FakeAdmin]],
) -> None:
    cluster(_described("zf801.alerts.SH01", code=29))
    with pytest.raises(AccessDenied) as caught:
        clients.require_topics(PLAIN, "BJ01", ["zf801.alerts.SH01"])
    denied = caught.value
    assert (denied.agency, denied.topic, denied.permission) == ("BJ01", "zf801.alerts.SH01", "READ")
    assert "TOPIC_AUTHORIZATION_FAILED" in str(denied)
    assert "ALLOW READ on Topic:zf801.alerts.SH01 for User:BJ01" in str(denied)


def test_a_topic_the_agency_may_describe_but_not_read_is_access_denied(
    cluster: Callable[..., list[_FakeAdmin]],
) -> None:
    cluster(_described("zf801.orders.exit-restriction", operations=["DESCRIBE", "WRITE"]))
    with pytest.raises(AccessDenied, match=r"may not read .* allow it only DESCRIBE, WRITE"):
        clients.require_topics(PLAIN, "BJ01", ["zf801.orders.exit-restriction"])
    assert clients.require_topics(PLAIN, "BJ01", ["zf801.orders.exit-restriction"], "write")


def test_without_an_authoriser_only_existence_is_checked(
    cluster: Callable[..., list[_FakeAdmin]],
) -> None:
    cluster(_described("present", operations=ALL_OPERATIONS))
    assert clients.require_topics(PLAIN, "BJ01", ["present"]) == {"present": (0, 1)}
    with pytest.raises(TopicMissing, match=r"topic absent .*UnknownTopicOrPartition.*topics apply"):
        clients.require_topics(PLAIN, "BJ01", ["present", "absent"])


def test_no_answer_from_the_brokers_is_broker_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(**config: Any) -> None:
        raise KafkaTimeoutError("Unable to bootstrap from plain:9092")

    monkeypatch.setattr(clients, "KafkaAdminClient", unreachable)
    with pytest.raises(BrokerUnreachable, match=r"agency BJ01 .* from plain:9092"):
        clients.require_topics(PLAIN, "BJ01", ["t"])


def test_a_reader_is_assigned_every_partition_from_the_start(
    cluster: Callable[..., list[_FakeAdmin]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster(_described("t", partitions=3, operations=ALL_OPERATIONS))
    calls: list[tuple[str, Any]] = []

    class Consumer:
        def __init__(self, **config: Any) -> None:
            calls.append(("config", config))

        def assign(self, partitions: list[Any]) -> None:
            calls.append(("assign", [(tp.topic, tp.partition) for tp in partitions]))

        def seek_to_beginning(self, *partitions: Any) -> None:
            calls.append(("seek", len(partitions)))

    monkeypatch.setattr(clients, "KafkaConsumer", Consumer)
    clients.kafka_reader(PLAIN, "BJ01", "t")
    (_, config), assign, seek = calls
    assert config["group_id"] is None and config["enable_auto_commit"] is False
    assert config["isolation_level"] == "read_committed"
    assert assign == ("assign", [("t", 0), ("t", 1), ("t", 2)]) and seek == ("seek", 3)


# --- one home ---------------------------------------------------------------------------------
_CLIENT_CLASSES = frozenset(
    {"KafkaProducer", "KafkaConsumer", "KafkaAdminClient", "AIOKafkaProducer", "AIOKafkaConsumer"}
)
_HOME = Path("topics/clients.py")


def _constructions(path: Path) -> list[int]:
    """Lines of ``path`` that call a Kafka client class or ``faust.App``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        owner = getattr(func, "value", None)
        is_faust_app = name == "App" and isinstance(owner, ast.Name) and owner.id == "faust"
        if name in _CLIENT_CLASSES or is_faust_app:
            lines.append(node.lineno)
    return lines


def _sources() -> Iterator[Path]:
    for path in sorted(REPO_ROOT.rglob("*.py")):
        relative = path.relative_to(REPO_ROOT)
        if relative.parts[0] == "tests" or any(p.startswith(".") for p in relative.parts):
            continue
        yield relative


def test_no_kafka_client_is_built_outside_topics_clients() -> None:
    offenders = [
        f"{path}:{line}"
        for path in _sources()
        if path != _HOME
        for line in _constructions(REPO_ROOT / path)
    ]
    assert not offenders, "build Kafka clients with topics.clients, not here: " + ", ".join(
        offenders
    )
    assert _constructions(REPO_ROOT / _HOME), "the scan must see the factory's own calls"
