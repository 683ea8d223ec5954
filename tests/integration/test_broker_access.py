"""Isolation enforced by the broker (mTLS + ACLs from the catalog), tried as users and
attackers would: with no certificate, a plaintext client, a stranger's CA, a police
certificate that claims a court, and each agency reaching past its authority.

The whole access matrix (every agency x every catalog topic x read/write) is checked
against what the broker itself reports (KIP-430 authorised operations), and the main
cells are also tried for real (poll, produce, join a group, create a topic).
Skipped when the session's broker runs without mTLS (``ZF801_SECURITY=plaintext`` or an
external cluster).
"""

from __future__ import annotations

import datetime as dt
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
)

from ops.deployment import Deployment
from schemas.agencies import load_agencies
from schemas.settings import Settings
from schemas.tls_layout import ADMIN_NAME
from sign.ca import new_key
from sign.keystore import KeyStore
from sign.tls_identity import TlsHolder, TlsIdentity, issue_tls_identity
from sign.trustset import TrustSet
from tests.kafka_io import broker_refuses_read
from topics import clients
from topics.acls import group_prefix
from topics.catalog import Catalog, bus_catalog
from topics.errors import AccessDenied

pytestmark = [pytest.mark.integration]

COURT, OTHER_COURT = "BJ01", "SH01"
BORDER, TRAFFIC, POLICE = "110000230000", "110000110000", "110000000000"
MATCHER = "BUS-MATCHER"
_TIMEOUTS = {"request_timeout_ms": 5000}


@pytest.fixture(scope="module")
def secured(kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if kafka_settings.security != "mtls":
        pytest.skip("the session's broker runs without mTLS")
    home = tmp_path_factory.mktemp("access")
    settings = kafka_settings.model_copy(
        update={"home": home, "topic_prefix": f"acc{uuid.uuid4().hex[:8]}-"}
    )
    deployment = Deployment.create(settings)
    deployment.apply_topics()  # the topics and their ACLs
    yield deployment
    deployment.remove_run()


def _catalog(secured: Any) -> Catalog:
    return bus_catalog(secured.settings)


def _context(chain: Path | None, key: Path | None, password: str, brokers_ca: Path) -> Any:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_verify_locations(cafile=brokers_ca)
    if chain is not None:
        context.load_cert_chain(chain, key, password=password)
    return context


def _refused_at_handshake(bootstrap: str, **security: Any) -> bool:
    """True when no connection gets as far as a metadata answer (within 3 s)."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=3000,
                                 request_timeout_ms=3000, **security)  # fmt: skip
    except KafkaError:
        return True
    try:
        admin.describe_cluster()
    except KafkaError:
        return True
    finally:
        admin.close()
    return False


# --- the handshake --------------------------------------------------------------------------
def test_no_certificate_plaintext_and_a_stranger_ca_are_refused_at_the_handshake(
    secured: Any, tmp_path: Path
) -> None:
    settings = secured.settings
    files = clients.connection(settings, COURT).tls
    assert files is not None
    no_cert = _context(None, None, files.password, files.brokers_ca)
    assert _refused_at_handshake(settings.bootstrap_servers, security_protocol="SSL",
                                 ssl_context=no_cert)  # fmt: skip
    assert _refused_at_handshake(settings.bootstrap_servers, security_protocol="PLAINTEXT")
    # A certificate that names BJ01 as a court, from a CA the bus has never seen.
    stranger = issue_tls_identity(TrustSet.create(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)),
                                  TlsHolder(COURT, "court"), now=dt.datetime.now(dt.UTC),
                                  lifetime=dt.timedelta(days=1))  # fmt: skip
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    chain.write_bytes(stranger.chain_pem())
    key.write_bytes(stranger.key_pem(files.password.encode()))
    forged = _context(chain, key, files.password, files.brokers_ca)
    assert _refused_at_handshake(settings.bootstrap_servers, security_protocol="SSL",
                                 ssl_context=forged)  # fmt: skip


def test_a_police_certificate_claiming_a_court_acts_as_nobody(
    secured: Any, kafka_settings: Settings, tmp_path: Path
) -> None:
    """Side binding: the police CA issues a subject CN=BJ01,OU=court. The court listener
    trusts only the court CA (handshake refused); the police listener maps only police
    roles (the principal is User:UNMAPPED, which no ACL names)."""
    settings = secured.settings
    store = KeyStore(kafka_settings.tls_dir.parent, kafka_settings.key_passphrase
                     .get_secret_value().encode(), dt.timedelta(days=1))  # fmt: skip
    police_ca = store._trust_set().issuers["police"]
    key = new_key()
    now, day = dt.datetime.now(dt.UTC), dt.timedelta(days=1)
    claim = police_ca.issue_tls(COURT, "court", public_key=key.public_key(), now=now, lifetime=day)
    forged = TlsIdentity(key, claim, police_ca.certificate)
    files = clients.connection(settings, COURT).tls
    assert files is not None
    chain, key_path = tmp_path / "chain.pem", tmp_path / "key.pem"
    chain.write_bytes(forged.chain_pem())
    key_path.write_bytes(forged.key_pem(files.password.encode()))
    context = _context(chain, key_path, files.password, files.brokers_ca)
    assert _refused_at_handshake(settings.bootstrap_servers, security_protocol="SSL",
                                 ssl_context=context)  # fmt: skip
    alerts = _catalog(secured).topic_name("alerts", court=COURT)
    consumer = KafkaConsumer(bootstrap_servers=settings.police_bootstrap_servers,
                             security_protocol="SSL", ssl_context=context, group_id=None,
                             **_TIMEOUTS)  # fmt: skip
    try:
        assert broker_refuses_read(consumer, alerts)
    finally:
        consumer.close()


# --- the matrix -----------------------------------------------------------------------------
def _agencies() -> list[str]:
    return sorted(load_agencies().agencies)


def _granted(settings: Settings, agency: str, topics: list[str]) -> dict[str, set[str]]:
    """What the broker says ``agency`` may do on each topic (KIP-430), asked as ``agency``;
    a topic it may not even describe answers TOPIC_AUTHORIZATION_FAILED: nothing."""
    admin = clients.kafka_admin(settings, agency, **_TIMEOUTS)
    try:
        described = admin.describe_topics(topics)
    finally:
        admin.close()
    return {
        str(t["name"]): set() if t.get("error_code") else set(t.get("authorized_operations") or ())
        for t in described
    }


def test_every_agency_reads_and_writes_exactly_what_the_catalog_grants(secured: Any) -> None:
    """The broker's own answer (authorised operations per topic) for every agency and every
    topic of the run equals the catalog's rule (``Catalog.may_read``/``may_write``)."""
    settings, catalog = secured.settings, _catalog(secured)
    agencies = load_agencies()
    courts = [court.code for court in agencies.courts()]
    units = [unit.code for unit in agencies.police_units()]
    topics = catalog.concrete_topics(courts, agencies.provinces(), units)
    names = [topic.name for topic in topics]
    wrong, cells = [], 0
    for code in _agencies():
        role = str(agencies.get(code).role)
        granted = _granted(settings, code, names)
        served = agencies.provinces_served_by(code)
        for topic in topics:
            readable = catalog.may_read(
                role, topic.spec.id, topic.court, province=topic.province, unit=topic.unit,
                reader_court=code, reader_provinces=served, reader_unit=code,
            )  # fmt: skip
            want = {"READ": readable, "WRITE": catalog.may_write(role, topic.spec.id)}
            got = {op: op in granted[topic.name] for op in want}
            cells += 2
            if want != got:
                wrong.append((code, topic.name, want, got))
    assert wrong == []
    assert cells > 2000  # every agency x every topic x {read, write}


# --- real requests --------------------------------------------------------------------------
def test_a_court_reads_its_own_alerts_and_nothing_of_another_court(secured: Any) -> None:
    settings, catalog = secured.settings, _catalog(secured)
    own = catalog.topic_name("alerts", court=COURT)
    other = catalog.topic_name("alerts", court=OTHER_COURT)
    clients.kafka_reader(settings, COURT, own, **_TIMEOUTS).close()
    with pytest.raises(AccessDenied, match=f"agency {COURT}.*{other}.*READ"):
        clients.kafka_reader(settings, COURT, other)
    # Without our library's check, the broker still says no: assign and poll.
    raw = clients.kafka_consumer(settings, COURT, group_id=None, **_TIMEOUTS)
    try:
        assert broker_refuses_read(raw, other)
    finally:
        raw.close()


def test_a_court_cannot_join_another_agencys_consumer_group(secured: Any) -> None:
    settings, catalog = secured.settings, _catalog(secured)
    own = catalog.topic_name("alerts", court=COURT)
    theirs = group_prefix(catalog, load_agencies().get(OTHER_COURT)) + "reader"
    consumer = clients.kafka_consumer(settings, COURT, group_id=theirs, **_TIMEOUTS)
    try:
        consumer.subscribe([own])
        with pytest.raises(GroupAuthorizationFailedError):
            for _ in range(20):
                consumer.poll(timeout_ms=250)
    finally:
        consumer.close()


@pytest.mark.parametrize(("agency", "topic_id"), [
    (COURT, "alerts"), (POLICE, "alerts"), (TRAFFIC, "vehicle-blocks"), (COURT, "dead-letter"),
    (COURT, "watchlist-changelog"), (BORDER, "orders-exit-restriction"),
])  # fmt: skip
def test_only_the_bus_writes_what_the_bus_writes(secured: Any, agency: str, topic_id: str) -> None:
    settings, catalog = secured.settings, _catalog(secured)
    topic = catalog.topic_name(topic_id, court=COURT if topic_id == "alerts" else None)
    producer = clients.kafka_producer(settings, agency, max_block_ms=5000, **_TIMEOUTS)
    try:
        future = producer.send(topic, key=b"k", value=b"v")
        with pytest.raises(KafkaError):
            future.get(timeout=10)
    finally:
        producer.close(timeout=2)
    matcher = clients.kafka_producer(settings, MATCHER, **_TIMEOUTS)
    try:
        if catalog.may_write("bus", catalog.resolve(topic).spec.id):
            assert matcher.send(topic, key=b"k", value=b"v").get(timeout=10).offset >= 0
    finally:
        matcher.close()


def test_each_police_role_writes_its_sightings(secured: Any) -> None:
    settings, catalog = secured.settings, _catalog(secured)
    sent = []
    grants = (
        (BORDER, "sightings-person"), (TRAFFIC, "sightings-vehicle"),
        (POLICE, "sightings-person"), (POLICE, "order-acknowledgements"),
    )  # fmt: skip
    for agency, topic_id in grants:
        producer: KafkaProducer = clients.kafka_producer(settings, agency, **_TIMEOUTS)
        try:
            sent.append(producer.send(catalog.topic_name(topic_id), b"k", b"v").get(timeout=10))
        finally:
            producer.close()
    assert len(sent) == 4


def test_only_the_admin_creates_topics_and_changes_acls(secured: Any) -> None:
    settings = secured.settings
    name = f"{settings.topic_prefix}zf801.rogue-{uuid.uuid4().hex[:6]}"
    for agency in (COURT, MATCHER):
        admin = clients.kafka_admin(settings, agency, **_TIMEOUTS)
        try:
            with pytest.raises(KafkaError):
                admin.create_topics([NewTopic(name, 1, 1)])
        finally:
            admin.close()
    admin = clients.kafka_admin(settings, ADMIN_NAME, **_TIMEOUTS)
    try:
        admin.create_topics([NewTopic(name, 1, 1)])
        admin.delete_topics([name])
    finally:
        admin.close()
