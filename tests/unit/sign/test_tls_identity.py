"""TLS identities for mutual TLS: the certificate profile (subject, issuer per side, EKU,
SAN), the files of the layout (chain, encrypted key, PKCS#12, trusted CAs), their life
with the signing keys (issue, rotate, revoke), ``ensure_tls`` on an older store, and
Python's ``ssl`` loading them and completing a handshake."""

from __future__ import annotations

import ipaddress
import shutil
import ssl
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from schemas.tls_layout import ADMIN_NAME, TlsLayout, node_name
from sign.errors import KeyStoreError, TrustMaterialError
from sign.keystore import KeyStore
from sign.tls_identity import TlsHolder, issue_tls_identity, tls_issuer_side

PASSPHRASE = b"correct horse battery"
# The real clock: the handshake tests check validity against it.
NOW = datetime.now(UTC) - timedelta(minutes=1)


@dataclass(frozen=True)
class Agency:
    code: str
    name: str
    role: str


COURT = Agency("BJ01", "北京市第一中级人民法院", "court")
BORDER = Agency("110000230000", "北京出入境边防检查总站", "border-control")
TRAFFIC = Agency("110000040000", "北京市公安局公安交通管理局", "traffic-management")
MATCHER = Agency("BUS-MATCHER", "总线命中匹配处理器", "bus")
AGENCIES = [COURT, BORDER, MATCHER]
NODES = [node_name(i) for i in (1, 2, 3)]


def _new_store(directory: Path) -> KeyStore:
    store = KeyStore(directory / "keys", PASSPHRASE, timedelta(days=365))
    store.init(AGENCIES, NOW)
    return store


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    """A store that no test changes."""
    return _new_store(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return _new_store(tmp_path)


def _chain(store: KeyStore, name: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(store.tls_identity(name).chain.read_bytes())


def _leaf(store: KeyStore, name: str) -> x509.Certificate:
    return _chain(store, name)[0]


def _ca(store: KeyStore, ca_name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(
        (store.directory / "ca" / f"{ca_name}.cert.pem").read_bytes()
    )


def _eku(certificate: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


# --- the certificate profile -----------------------------------------------------------


def test_a_court_subject_is_its_rfc2253_principal(shared):
    assert _leaf(shared, "BJ01").subject.rfc4514_string() == "CN=BJ01,OU=court,O=ZF801,C=CN"


@pytest.mark.parametrize(
    ("name", "subject"),
    [
        ("110000230000", "CN=110000230000,OU=border-control,O=ZF801,C=CN"),
        ("BUS-MATCHER", "CN=BUS-MATCHER,OU=bus,O=ZF801,C=CN"),
        (ADMIN_NAME, f"CN={ADMIN_NAME},OU=admin,O=ZF801,C=CN"),
        ("node-2", "CN=node-2,OU=broker,O=ZF801,C=CN"),
    ],
)
def test_subjects_name_the_holder_and_its_role(shared, name, subject):
    assert _leaf(shared, name).subject.rfc4514_string() == subject


@pytest.mark.parametrize(
    ("name", "issuer"),
    [
        ("BJ01", "court"),
        ("110000230000", "police"),
        ("BUS-MATCHER", "bus"),
        (ADMIN_NAME, "bus"),
        *((node, "bus") for node in NODES),
    ],
)
def test_each_side_is_issued_by_its_own_ca(shared, name, issuer):
    leaf, issuing = _chain(shared, name)
    assert issuing == _ca(shared, issuer)
    leaf.verify_directly_issued_by(issuing)


def test_the_side_of_each_role():
    assert tls_issuer_side("court") == "court"
    assert tls_issuer_side("command-system") == "court"
    assert {tls_issuer_side(r) for r in ("border-control", "traffic-management")} == {"police"}
    assert {tls_issuer_side(r) for r in ("bus", "broker", "admin")} == {"bus"}
    with pytest.raises(TrustMaterialError):
        tls_issuer_side("notary")


def test_issuing_from_a_trust_set_uses_a_fresh_key_each_time(trust_set):
    holder = TlsHolder("TJ01", "court")
    first = issue_tls_identity(trust_set, holder, now=NOW, lifetime=timedelta(days=30))
    second = issue_tls_identity(trust_set, holder, now=NOW, lifetime=timedelta(days=30))
    assert first.certificate.public_key() != second.certificate.public_key()
    assert first.issuer == trust_set.issuers["court"].certificate
    assert first.certificate.not_valid_after_utc - NOW <= timedelta(days=30, minutes=5)


@pytest.mark.parametrize("name", ["BJ01", "110000230000", "BUS-MATCHER", ADMIN_NAME])
def test_clients_are_client_auth_only_without_san(shared, name):
    leaf = _leaf(shared, name)
    assert _eku(leaf) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)


@pytest.mark.parametrize("name", NODES)
def test_nodes_are_client_and_server_with_local_names(shared, name):
    leaf = _leaf(shared, name)
    assert _eku(leaf) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]


@pytest.mark.parametrize("name", ["BJ01", "node-1"])
def test_end_entity_signature_only(shared, name):
    extensions = _leaf(shared, name).extensions
    constraints = extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not (usage.value.key_cert_sign or usage.value.content_commitment)


def test_tls_keys_are_not_signing_keys(shared):
    signing = shared.certificate(shared.current_key_id("BJ01")).public_key()
    assert _leaf(shared, "BJ01").public_key() != signing


def test_lifetime_is_the_agency_certificate_lifetime(shared):
    leaf = _leaf(shared, "BJ01")
    # X.509 times have whole seconds.
    assert abs(leaf.not_valid_after_utc - (NOW + timedelta(days=365))) < timedelta(seconds=1)


# --- the files ---------------------------------------------------------------------------


def test_chain_file_is_leaf_then_issuing_ca(shared):
    chain = _chain(shared, "110000230000")
    assert len(chain) == 2
    assert chain[1] == _ca(shared, "police")
    assert chain[0].issuer == chain[1].subject


def test_key_file_is_encrypted_owner_only_and_matches_the_leaf(shared):
    files = shared.tls_identity("BJ01")
    data = files.key.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(data, None)
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(data, b"wrong passphrase")
    key = serialization.load_pem_private_key(data, PASSPHRASE)
    assert key.public_key() == _leaf(shared, "BJ01").public_key()


@pytest.mark.parametrize("node_id", [1, 2, 3])
def test_node_pkcs12_holds_key_leaf_and_bus_ca(shared, node_id):
    path = shared.tls_layout.node_keystore(node_id)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(path.read_bytes(), None)
    bundle = pkcs12.load_pkcs12(path.read_bytes(), PASSPHRASE)
    assert bundle.key is not None and bundle.cert is not None
    assert bundle.cert.certificate == _leaf(shared, node_name(node_id))
    assert bundle.key.public_key() == bundle.cert.certificate.public_key()
    assert [c.certificate for c in bundle.additional_certs] == [_ca(shared, "bus")]
    assert bundle.cert.friendly_name == node_name(node_id).encode()


def test_trusted_ca_files(shared):
    layout = shared.tls_layout
    for side in ("court", "police", "bus"):
        trusted = x509.load_pem_x509_certificates(layout.truststore(side).read_bytes())
        assert trusted == [_ca(shared, side)]
    assert x509.load_pem_x509_certificates(layout.brokers_ca.read_bytes()) == [_ca(shared, "bus")]


def test_the_layout_is_the_shared_one(shared):
    assert shared.tls_layout == TlsLayout.under(shared.directory)
    assert shared.tls_identity(ADMIN_NAME) == TlsLayout.under(shared.directory).identity(ADMIN_NAME)


# --- life with the signing keys ------------------------------------------------------------


def test_issue_gives_a_new_agency_its_tls_identity(store):
    store.issue(TRAFFIC.code, TRAFFIC.name, TRAFFIC.role, NOW)
    leaf, issuing = _chain(store, TRAFFIC.code)
    assert leaf.subject.rfc4514_string() == "CN=110000040000,OU=traffic-management,O=ZF801,C=CN"
    assert issuing == _ca(store, "police")


def test_rotate_replaces_the_tls_identity(store):
    old_leaf = _leaf(store, "BJ01")
    old_key = store.tls_identity("BJ01").key.read_bytes()
    store.rotate("BJ01", NOW + timedelta(days=1))
    new_leaf = _leaf(store, "BJ01")
    assert new_leaf.subject == old_leaf.subject
    assert new_leaf.public_key() != old_leaf.public_key()
    assert new_leaf.serial_number != old_leaf.serial_number
    files = store.tls_identity("BJ01")
    assert files.key.read_bytes() != old_key
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert sorted(p.name for p in files.chain.parent.iterdir()) == ["chain.pem", "key.pem"]
    key = serialization.load_pem_private_key(files.key.read_bytes(), PASSPHRASE)
    assert key.public_key() == new_leaf.public_key()


def test_revoking_the_current_key_removes_the_tls_identity(store):
    store.revoke(store.current_key_id("BJ01"), NOW, "key-compromise", NOW, "test")
    assert not store.has_tls_identity("BJ01")
    assert not store.tls_layout.identity("BJ01").chain.parent.exists()
    with pytest.raises(KeyStoreError, match="no TLS identity"):
        store.tls_identity("BJ01")
    assert store.has_tls_identity("110000230000")  # the others keep theirs
    assert store.ensure_tls(NOW) == 0  # a revoked agency is not given a new one
    assert not store.has_tls_identity("BJ01")
    store.rotate("BJ01", NOW)  # a new key brings a new TLS identity
    assert store.has_tls_identity("BJ01")


def test_revoking_a_rotated_out_key_keeps_the_tls_identity(store):
    old = store.current_key_id("BJ01")
    store.rotate("BJ01", NOW)
    leaf = _leaf(store, "BJ01")
    store.revoke(old, NOW, "superseded", NOW, "test")
    assert _leaf(store, "BJ01") == leaf


def test_init_force_replaces_every_tls_identity(store):
    old_court_ca = _ca(store, "court")
    store.init(AGENCIES[:1], NOW, force=True)
    assert _chain(store, "BJ01")[1] == _ca(store, "court") != old_court_ca
    assert not store.has_tls_identity("110000230000")  # not in the new trust set
    assert store.has_tls_identity("node-3")


# --- ensure_tls on a store made before mutual TLS ---------------------------------------------


def test_ensure_tls_issues_what_an_old_store_lacks_and_is_idempotent(store):
    shutil.rmtree(store.tls_layout.root)  # what a store made before this change looks like
    assert store.ensure_tls(NOW) == len(AGENCIES) + 1 + len(NODES)
    for name in [*(a.code for a in AGENCIES), ADMIN_NAME, *NODES]:
        assert store.has_tls_identity(name)
    assert all(store.tls_layout.node_keystore(i).is_file() for i in (1, 2, 3))
    assert store.tls_layout.brokers_ca.is_file()
    chain = store.tls_identity("BJ01").chain.read_bytes()
    assert store.ensure_tls(NOW) == 0
    assert store.tls_identity("BJ01").chain.read_bytes() == chain


def test_ensure_tls_completes_a_node_without_keystore(store):
    store.tls_layout.node_keystore(2).unlink()
    store.tls_layout.truststore("police").unlink()
    assert store.ensure_tls(NOW) == 1
    assert store.tls_layout.node_keystore(2).is_file()
    assert store.tls_layout.truststore("police").is_file()


def test_reading_creates_no_tls_files(store):
    shutil.rmtree(store.tls_layout.root)
    assert not store.has_tls_identity("BJ01")
    with pytest.raises(KeyStoreError):
        store.tls_identity("node-1")
    store.entries()
    assert not store.tls_layout.root.exists()


def test_ensure_tls_needs_an_initialised_store(tmp_path):
    empty = KeyStore(tmp_path / "keys", PASSPHRASE, timedelta(days=365))
    with pytest.raises(KeyStoreError, match="not initialised"):
        empty.ensure_tls(NOW)


# --- Python's ssl module -------------------------------------------------------------------


def _client_context(store: KeyStore, name: str) -> ssl.SSLContext:
    files = store.tls_identity(name)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_cert_chain(files.chain, files.key, password=PASSPHRASE)
    context.load_verify_locations(store.tls_layout.brokers_ca)
    return context


def _node_context(store: KeyStore, side: str) -> ssl.SSLContext:
    """A listener of ``side`` as the broker runs it: node 1's certificate, that side's CA."""
    files = store.tls_identity("node-1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.chain, files.key, password=PASSPHRASE)
    context.load_verify_locations(store.tls_layout.truststore(side))
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext) -> dict[str, object]:
    """A TLS handshake in memory; the client certificate the server saw."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = client.wrap_bio(to_client, to_server, server_hostname="localhost")
    server_side = server.wrap_bio(to_server, to_client, server_side=True)
    done: set[str] = set()
    for _ in range(10):
        for label, end in (("client", client_side), ("server", server_side)):
            if label in done:
                continue
            try:
                end.do_handshake()
                done.add(label)
            except ssl.SSLWantReadError:
                pass
        if done == {"client", "server"}:
            return server_side.getpeercert() or {}
    raise AssertionError("handshake did not complete")


def test_ssl_loads_the_chain_the_encrypted_key_and_the_brokers_ca(shared):
    files = shared.tls_identity("BJ01")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_cert_chain(files.chain, files.key, password=PASSPHRASE)
    context.load_verify_locations(shared.tls_layout.brokers_ca)
    assert context.get_ca_certs()[0]["subject"][-1] == (("commonName", "ZF801 Bus Processors CA"),)
    with pytest.raises(ssl.SSLError):
        context.load_cert_chain(files.chain, files.key, password=b"wrong passphrase")


def test_a_court_completes_mutual_tls_with_a_node(shared):
    client = _client_context(shared, "BJ01")
    client.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    seen = _handshake(client, _node_context(shared, "court"))
    assert seen["subject"] == (
        (("countryName", "CN"),),
        (("organizationName", "ZF801"),),
        (("organizationalUnitName", "court"),),
        (("commonName", "BJ01"),),
    )


def test_a_police_certificate_fails_on_the_court_listener(shared):
    client = _client_context(shared, "110000230000")
    client.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    with pytest.raises(ssl.SSLError):
        _handshake(client, _node_context(shared, "court"))


def test_python_clients_need_partial_chain_to_trust_an_issuing_ca(shared):
    # brokers.pem holds the bus issuing CA, not a self-signed root: OpenSSL accepts it as
    # an anchor only with VERIFY_X509_PARTIAL_CHAIN (Java's truststores need no flag).
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(_client_context(shared, "BJ01"), _node_context(shared, "court"))
