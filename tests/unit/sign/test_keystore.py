"""The on-disk key store: init, encrypted 0600 keys, issue, rotate, revoke, list."""

from __future__ import annotations

import stat
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from schemas.agencies import load_agencies
from sign.errors import KeyStoreError, SignatureRejected
from sign.events import EventVerifier
from sign.keystore import KeyStore

T0 = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Agency:
    code: str
    name: str
    role: str


AGENCIES = [
    Agency("BJ01", "北京市第一中级人民法院", "court"),
    Agency("110000230000", "北京出入境边防检查总站", "border-control"),
    Agency("BUS-MATCHER", "总线命中匹配处理器", "bus"),
]


@pytest.fixture
def store(tmp_path) -> KeyStore:
    keys = KeyStore(tmp_path / "keys", b"correct horse", timedelta(days=365))
    keys.init(AGENCIES, T0)
    return keys


def _headers(source, when):
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"3f0c1d2e-0000-4000-8000-000000000001"),
        ("ce_source", f"zf801:agency/{source}".encode()),
        ("ce_type", b"cn.zf801.orders.v1.OrderRelease"),
        ("ce_time", when.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()),
        ("content-type", b"application/avro"),
    ]


def test_init_creates_a_key_per_agency_and_both_anchors(store):
    entries = store.entries()
    assert sorted(e.agency_code for e in entries) == sorted(a.code for a in AGENCIES)
    assert all(e.current and e.revocation is None for e in entries)
    assert len(store.anchors()) == 2
    assert {e.role for e in entries} == {"court", "border-control", "bus"}


def test_private_keys_are_encrypted_and_owner_only(store):
    private = sorted((store.directory / "private").glob("*.pem"))
    ca_keys = sorted((store.directory / "ca").glob("*.key.pem"))
    assert len(private) == 3 and len(ca_keys) == 5
    for path in private + ca_keys:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")


def test_wrong_passphrase_is_refused(store):
    wrong = KeyStore(store.directory, b"wrong", timedelta(days=365))
    with pytest.raises(KeyStoreError, match="wrong passphrase"):
        wrong.signer_for("BJ01")


@pytest.mark.parametrize("key_id", ["../anchors/court", "/etc/passwd", "", "AB" * 16, None])
def test_a_key_id_is_no_file_name(store, key_id):
    """``certificate("../anchors/court")`` loaded a certificate from outside certs/."""
    with pytest.raises(KeyStoreError, match=r"not a key id \(32 lower-case hex digits\)"):
        store.certificate(key_id)
    with pytest.raises(KeyStoreError, match=r"not a key id"):
        store.private_key(key_id)


def test_init_twice_needs_force(store):
    with pytest.raises(KeyStoreError, match="already initialised"):
        store.init(AGENCIES, T0)
    old = store.current_key_id("BJ01")
    store.init(AGENCIES[:1], T0, force=True)
    assert store.current_key_id("BJ01") != old
    assert [e.agency_code for e in store.entries()] == ["BJ01"]
    assert len(list((store.directory / "private").glob("*.pem"))) == 1


def test_events_signed_from_disk_verify_against_the_stores_trust(store):
    signer = store.signer_for("BJ01")
    headers = signer.sign(b"k", b"v", _headers("BJ01", T0 + timedelta(hours=1)))
    result = EventVerifier(store.trust_store()).verify(b"k", b"v", headers)
    assert (result.agency_code, result.key_id) == ("BJ01", store.current_key_id("BJ01"))


def test_rotate_moves_current_and_old_key_still_verifies_what_it_signed(store):
    old_signer = store.signer_for("BJ01")
    old_event = old_signer.sign(b"k", b"v", _headers("BJ01", T0 + timedelta(hours=1)))
    entry = store.rotate("BJ01", T0 + timedelta(days=1))
    assert entry.current and entry.key_id != old_signer.key_id
    assert store.current_key_id("BJ01") == entry.key_id
    verifier = EventVerifier(store.trust_store())
    assert verifier.verify(b"k", b"v", old_event).key_id == old_signer.key_id
    new_event = store.signer_for("BJ01").sign(b"k", b"v", _headers("BJ01", T0 + timedelta(2)))
    assert verifier.verify(b"k", b"v", new_event).key_id == entry.key_id
    codes = [(e.agency_code, e.current) for e in store.entries()]
    assert codes.count(("BJ01", False)) == 1 and codes.count(("BJ01", True)) == 1


def test_revoke_at_a_time(store):
    signer = store.signer_for("BJ01")
    at = T0 + timedelta(days=3)
    before = signer.sign(b"k", b"v", _headers("BJ01", at - timedelta(seconds=1)))
    after = signer.sign(b"k", b"v", _headers("BJ01", at))
    revocation = store.revoke(signer.key_id, at, "key-compromise", T0 + timedelta(days=4), "op")
    assert revocation.revoked_at == at
    verifier = EventVerifier(store.trust_store())
    assert verifier.verify(b"k", b"v", before).agency_code == "BJ01"
    with pytest.raises(SignatureRejected) as caught:
        verifier.verify(b"k", b"v", after)
    assert caught.value.reason == "KEY_REVOKED"
    (entry,) = [e for e in store.entries() if e.key_id == signer.key_id]
    assert entry.revocation == revocation


def test_issue_refuses_an_agency_that_has_a_key_and_revoke_an_unknown_key(store):
    with pytest.raises(KeyStoreError, match="rotate"):
        store.issue("BJ01", "x", "court", T0)
    with pytest.raises(KeyStoreError, match="no certificate"):
        store.revoke("0" * 32, T0, "superseded", T0, "op")
    entry = store.issue("SH01", "上海市第一中级人民法院", "court", T0)
    assert entry.agency_code == "SH01" and entry.current


def test_uninitialised_store_says_so(tmp_path):
    keys = KeyStore(tmp_path / "none", b"p", timedelta(days=1))
    with pytest.raises(KeyStoreError, match="not initialised"):
        keys.entries()


def test_demo_agency_list_can_be_initialised(tmp_path):
    agencies = list(load_agencies().agencies.values())
    keys = KeyStore(tmp_path / "keys", b"p", timedelta(days=30))
    entries = keys.init(agencies, T0)
    assert len(entries) == len(agencies)
    store = keys.trust_store()
    for entry in entries:
        assert store.chain_for(entry.key_id).identity.agency_code == entry.agency_code


def test_workers_starting_together_read_one_whole_state_secret(store):
    """The processor's state secret is created by the first worker that asks; the others,
    asking at the same moment, read the whole file, never a partial one."""
    ready = threading.Barrier(8)
    secrets: list[bytes] = []
    failures: list[BaseException] = []

    def start() -> None:
        ready.wait()
        try:
            secrets.append(store.state_secret("BUS-MATCHER"))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and len(set(secrets)) == 1 and len(secrets) == 8
    folder = store.directory / "state"
    assert [p.name for p in folder.iterdir()] == ["BUS-MATCHER.key.pem"]  # no temporary left
    assert stat.S_IMODE((folder / "BUS-MATCHER.key.pem").stat().st_mode) == 0o600
