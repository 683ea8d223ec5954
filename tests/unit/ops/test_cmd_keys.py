"""``zf801 keys`` and ``zf801 seal`` / ``verify-seal`` on a temporary key store, with an
in-memory producer standing in for the trust topic (no broker)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from typer.testing import CliRunner

import ops.cmd_keys
from ops.cli import app
from schemas.agencies import load_agencies
from schemas.codec import decode
from schemas.settings import get_settings
from sign.follower import TrustFollower
from sign.keystore import KeyStore
from sign.trust import TrustStore

runner = CliRunner()


class _Done:
    def get(self, timeout: float | None = None) -> None:
        return None


@dataclass
class MemoryProducer:
    sent: list[tuple[str, bytes | None, bytes, list[Any]]] = field(default_factory=list)

    def send(self, topic: str, *, key: bytes | None, value: bytes, headers: list[Any]) -> _Done:
        self.sent.append((topic, key, value, headers))
        return _Done()

    def close(self) -> None:
        return None


@pytest.fixture
def keys_env(fresh_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("ZF801_KEYS_PATH", str(tmp_path / "keys"))
    monkeypatch.setenv("ZF801_TOPIC_PREFIX", "")
    producer = MemoryProducer()
    monkeypatch.setattr(ops.cmd_keys, "kafka_producer", lambda *a, **k: producer)
    return tmp_path, producer


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_init_issues_every_agency_and_publishes_certificates(keys_env):
    _, producer = keys_env
    output = _ok(["keys", "init", "--publish"])
    agencies = load_agencies().agencies
    assert "BJ01" in output and "110000230000" in output
    assert len(producer.sent) == len(agencies)
    topics = {topic for topic, *_ in producer.sent}
    assert topics == {"zf801.bus.trust"}
    names = {decode(value)[0].name for _, _, value, _ in producer.sent}
    assert names == {"TrustCertificate"}
    # What was published is enough for a processor that only holds the anchors.
    keystore = KeyStore.from_settings(get_settings())
    store = TrustStore(keystore.anchors(), keystore.issuing_certificates())
    follower = TrustFollower(store)
    outcomes = {follower.apply(k, v, h) for _, k, v, h in producer.sent}
    assert outcomes == {"certificate"}
    assert len(store.certificates()) == len(agencies)


def test_rotate_revoke_list_and_publish_revocation(keys_env):
    _, producer = keys_env
    _ok(["keys", "init", "--no-publish"])
    keystore = KeyStore.from_settings(get_settings())
    old = keystore.current_key_id("BJ01")
    _ok(["keys", "rotate", "--agency", "BJ01", "--no-publish"])
    new = keystore.current_key_id("BJ01")
    assert new != old
    _ok(["keys", "revoke", "--key-id", old, "--at", "2026-11-27T05:00:00Z",
         "--reason", "superseded", "--by", "operator-9", "--publish"])  # fmt: skip
    # The key's certificate goes with its revocation: a late processor needs both.
    (_, cert_key, _, _), (_, key, value, _) = producer.sent
    assert (cert_key, key) == (old.encode(), f"{old}/revocation".encode())
    _, record = decode(value)
    assert (record["reason"], record["revoked_by"]) == ("SUPERSEDED", "operator-9")
    listing = _ok(["keys", "list", "--agency", "BJ01"])
    assert old in listing and new in listing
    assert "revoked from 2026-11-27 05:00:00Z" in listing and "current" in listing
    assert _ok(["keys", "list", "--agency", "bj01"]) == listing
    misspelt = runner.invoke(app, ["keys", "list", "--agency", "BJ1"])  # not an empty table
    assert misspelt.exit_code == 1 and "--agency 'BJ1': no key of that agency" in misspelt.output


def test_revoke_needs_a_zone_and_a_known_reason(keys_env):
    _ok(["keys", "init", "--no-publish"])
    key_id = KeyStore.from_settings(get_settings()).current_key_id("BJ01")
    naive = runner.invoke(app, ["keys", "revoke", "--key-id", key_id, "--at", "2026-11-27T05:00"])
    assert naive.exit_code != 0 and "UTC offset" in naive.output
    bad = runner.invoke(app, ["keys", "revoke", "--key-id", key_id, "--at", "now",
                              "--reason", "bored", "--no-publish"])  # fmt: skip
    assert bad.exit_code == 1 and "revocation reason" in bad.output


def test_init_twice_and_unknown_agency_are_refused(keys_env):
    _ok(["keys", "init", "--no-publish"])
    again = runner.invoke(app, ["keys", "init", "--no-publish"])
    assert again.exit_code == 1 and "already initialised" in again.output
    unknown = runner.invoke(app, ["keys", "issue", "--agency", "ZZ99", "--no-publish"])
    assert unknown.exit_code == 1 and "ZZ99" in unknown.output


def test_seal_and_verify_seal(keys_env):
    tmp_path, _ = keys_env
    _ok(["keys", "init", "--no-publish"])
    document = tmp_path / "协助执行通知书.pdf"
    document.write_bytes(b"%PDF assistance notice")
    assert "sealed" in _ok(["seal", str(document), "--agency", "BJ01"])
    seal = json.loads((tmp_path / "协助执行通知书.pdf.seal.json").read_text())
    assert "agency: BJ01\n" in seal["statement"]
    assert "seal OK" in _ok(["verify-seal", str(document)])
    document.write_bytes(b"%PDF assistance notice, edited")
    refused = runner.invoke(app, ["verify-seal", str(document)])
    assert refused.exit_code == 1 and "DOCUMENT_MISMATCH" in refused.output
    assert "DOCUMENT_MISMATCH: DOCUMENT_MISMATCH" not in " ".join(refused.output.split())


def test_verify_seal_without_a_key_store_says_so(keys_env):
    """No key store yet: the anchors to verify against are missing, said in one line (it
    used to end in an unexpected FileNotFoundError)."""
    tmp_path, _ = keys_env
    document = tmp_path / "notice.pdf"
    document.write_bytes(b"%PDF")
    (tmp_path / "notice.pdf.seal.json").write_text("{}")
    refused = runner.invoke(app, ["verify-seal", str(document)])
    assert refused.exit_code == 1, refused.output
    assert "not initialised (zf801 keys init)" in refused.output
    assert "unexpected" not in refused.output


def test_revoke_refuses_a_time_far_ahead_and_an_operator_with_control_characters(keys_env):
    """A revocation years ahead would leave the key signing as if never revoked while its
    TLS identity went at once; the operator's name is published on the trust topic."""
    _ok(["keys", "init", "--no-publish"])
    keystore = KeyStore.from_settings(get_settings())
    key_id = keystore.current_key_id("BJ01")
    ahead = runner.invoke(app, ["keys", "revoke", "--key-id", key_id, "--at",
                                "9999-12-31T00:00:00Z", "--no-publish"])  # fmt: skip
    said = " ".join(ahead.output.split())
    assert ahead.exit_code == 2 and "more than 5 minutes ahead" in said, said
    hostile = runner.invoke(app, ["keys", "revoke", "--key-id", key_id, "--at", "now",
                                  "--by", "evil\x1b[31m\u202eop", "--no-publish"])  # fmt: skip
    assert hostile.exit_code == 1 and "--by" in hostile.output, hostile.output
    assert keystore.revocations() == []  # neither was recorded
    assert keystore.has_tls_identity("BJ01")
