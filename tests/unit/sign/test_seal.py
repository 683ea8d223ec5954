"""Document seals verified by project code: good seal, and each way a seal must fail."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import timedelta, timezone
from pathlib import Path

import pytest

from sign.errors import SignatureRejected, SignError
from sign.seal import _write_seal, document_digest, seal_document, seal_path_for, verify_seal
from sign.trust import Revocation
from sign.trustset import TrustSet


@pytest.fixture
def document(tmp_path):
    path = tmp_path / "拘留决定书.pdf"
    path.write_bytes(b"%PDF-1.7 detention decision " * 1000)
    return path


def _chain(trust_set, issued, code, issuer="court"):
    return [
        issued[code].certificate,
        trust_set.issuers[issuer].certificate,
        trust_set.roots["court" if issuer != "police" else "police"].certificate,
    ]


@pytest.fixture
def sealed(document, trust_set, issued, now):
    seal_document(document, issued["BJ01"].key, _chain(trust_set, issued, "BJ01"), "BJ01", now)
    return document


def _reason(document, store, seal_path=None):
    with pytest.raises(SignatureRejected) as caught:
        verify_seal(document, store, seal_path)
    return caught.value.reason


def test_document_digest_is_sha256_of_the_bytes(document):
    assert document_digest(document) == hashlib.sha256(document.read_bytes()).digest()


def test_good_seal_verifies(sealed, trust_set, issued, now):
    check = verify_seal(sealed, trust_set.trust_store())
    assert (check.agency_code, check.role) == ("BJ01", "court")
    assert check.key_id == issued["BJ01"].signer.key_id
    assert check.signed_at == now
    assert check.sha256 == document_digest(sealed).hex()
    assert seal_path_for(sealed).name == "拘留决定书.pdf.seal.json"


def test_police_seal_verifies_under_police_anchor(document, trust_set, issued, now):
    chain = _chain(trust_set, issued, "110000230000", issuer="police")
    seal_document(document, issued["110000230000"].key, chain, "110000230000", now)
    assert verify_seal(document, trust_set.trust_store()).role == "border-control"


def test_flipped_byte_in_document_is_refused(sealed, trust_set):
    data = bytearray(sealed.read_bytes())
    data[-1] ^= 0x01
    sealed.write_bytes(bytes(data))
    assert _reason(sealed, trust_set.trust_store()) == "DOCUMENT_MISMATCH"


def test_edited_statement_is_refused(sealed, trust_set):
    path = seal_path_for(sealed)
    seal = json.loads(path.read_text())
    seal["statement"] = seal["statement"].replace("agency: BJ01", "agency: SH02")
    path.write_text(json.dumps(seal))
    assert _reason(sealed, trust_set.trust_store()) == "BAD_SIGNATURE"


def test_seal_by_key_outside_the_anchors_is_refused(document, trust_set, now):
    rogue = TrustSet.create(now - timedelta(days=1))
    key, cert = rogue.issue("BJ01", "forged", "court", now=now, lifetime=timedelta(days=5))
    chain = [cert, rogue.issuers["court"].certificate, rogue.roots["court"].certificate]
    seal_document(document, key, chain, "BJ01", now)
    assert _reason(document, trust_set.trust_store()) == "UNTRUSTED_CHAIN"


def test_seal_claiming_another_agency_is_refused(document, trust_set, issued, now):
    with pytest.raises(SignError, match=r"agency_code: 'SH02' .*\(BJ01\) \[rule sender\]"):
        seal_document(document, issued["BJ01"].key, _chain(trust_set, issued, "BJ01"), "SH02",
                      now)  # fmt: skip
    assert not seal_path_for(document).exists()
    _write_seal(document, issued["BJ01"].key, _chain(trust_set, issued, "BJ01"), "SH02", now)
    assert _reason(document, trust_set.trust_store()) == "AGENCY_MISMATCH"  # a forger's tool


def test_seal_arguments_its_verification_would_refuse_leave_a_good_seal_alone(
    sealed, trust_set, issued, now
):
    """A bad call overwrote a good seal with one its own verification refused."""
    before = seal_path_for(sealed).read_bytes()
    chain = _chain(trust_set, issued, "BJ01")
    naive = now.replace(tzinfo=None)
    for key, certificates, agency, when, rule in [
        (issued["BJ01"].key, chain, "BJ01", naive, "time.zone"),
        (issued["BJ01"].key, chain, "BJ01\nfoo", now, "sender"),
        (issued["BJ01"].key, chain, None, now, "sender"),
        (issued["SH02"].key, chain, "BJ01", now, "chain.key"),
        (issued["BJ01"].key, [], "BJ01", now, "chain.type"),
        ("key", chain, "BJ01", now, "key.type"),
    ]:
        with pytest.raises(SignError, match=rf"\[rule {rule}\]"):
            seal_document(sealed, key, certificates, agency, when)
    assert seal_path_for(sealed).read_bytes() == before
    east = now.astimezone(timezone(timedelta(hours=8)))  # an aware time in any zone is fine
    seal_document(sealed, issued["BJ01"].key, chain, "BJ01", east)
    assert verify_seal(sealed, trust_set.trust_store()).signed_at == now


def test_seal_after_expiry_is_refused(document, trust_set, issued):
    late = issued["BJ01"].certificate.not_valid_after_utc + timedelta(days=1)
    seal_document(document, issued["BJ01"].key, _chain(trust_set, issued, "BJ01"), "BJ01", late)
    assert _reason(document, trust_set.trust_store()) == "CERT_EXPIRED"


def test_revocation_after_signing_keeps_the_seal_good(sealed, trust_set, issued, now):
    store = trust_set.trust_store()
    key_id = issued["BJ01"].signer.key_id
    store.add_revocation(Revocation(key_id, now + timedelta(days=1), "superseded", now))
    assert verify_seal(sealed, store).agency_code == "BJ01"


def test_revocation_at_or_before_signing_fails_the_seal(sealed, trust_set, issued, now):
    store = trust_set.trust_store()
    key_id = issued["BJ01"].signer.key_id
    store.add_revocation(Revocation(key_id, now, "key-compromise", now))
    assert _reason(sealed, store) == "KEY_REVOKED"


@pytest.mark.parametrize(
    "content",
    [b"not json", b'{"format": "other/1"}', b"[]", b" " * (65 * 1024)],
)
def test_malformed_seal_is_refused(sealed, trust_set, content):
    seal_path_for(sealed).write_bytes(content)
    assert _reason(sealed, trust_set.trust_store()) == "MALFORMED_SEAL"


def test_missing_seal_is_refused(document, trust_set):
    assert _reason(document, trust_set.trust_store()) == "MALFORMED_SEAL"


def test_a_document_that_is_no_regular_file_is_neither_sealed_nor_read(tmp_path, trust_set,
                                                                       issued, now):  # fmt: skip
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path in (Path("/dev/zero"), fifo):  # read forever, or block for a writer
        with pytest.raises(SignError, match="not a regular file"):
            seal_document(path, issued["BJ01"].key, _chain(trust_set, issued, "BJ01"), "BJ01",
                          now)  # fmt: skip
        with pytest.raises(SignError, match="not a regular file"):
            document_digest(path)


def test_a_seal_or_a_document_that_is_no_regular_file_is_refused_not_read(sealed, tmp_path,
                                                                           trust_set):  # fmt: skip
    fifo = tmp_path / "pipe.seal.json"
    os.mkfifo(fifo)
    for seal in (Path("/dev/zero"), fifo):
        assert _reason(sealed, trust_set.trust_store(), seal) == "MALFORMED_SEAL"
    assert _reason(Path("/dev/zero"), trust_set.trust_store(),
                   seal_path_for(sealed)) == "DOCUMENT_MISMATCH"  # fmt: skip


def test_a_document_named_by_text_is_sealed_and_verified_and_none_is_refused(
    document, trust_set, issued, now
):
    chain = _chain(trust_set, issued, "BJ01")
    seal_document(str(document), issued["BJ01"].key, chain, "BJ01", now)
    assert verify_seal(str(document), trust_set.trust_store()).agency_code == "BJ01"
    with pytest.raises(SignError, match=r"document: a path is needed, got NoneType \[rule type\]"):
        verify_seal(None, trust_set.trust_store())  # type: ignore[arg-type]
