"""Seal files as the file system and a hostile seal present them: a link or a folder where
the seal is written, an existing seal, and seals whose content is well-formed JSON only in
part (a time that is no time, nesting that exhausts the parser, fields of the wrong type).
Every refusal is a :class:`SignError` naming the file and the rule, never a ValueError."""

from __future__ import annotations

import base64
import json
import os
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from sign.errors import MalformedSeal, SignatureRejected, SignError
from sign.identity import key_id_of
from sign.seal import (
    _write_seal,
    check_seal_path,
    describe_seal,
    seal_document,
    seal_path_for,
    verify_seal,
)


@pytest.fixture
def document(tmp_path):
    path = tmp_path / "判决书.pdf"
    path.write_bytes(b"%PDF-1.7 judgment " * 100)
    return path


def _chain(trust_set, issued, code="BJ01"):
    return [
        issued[code].certificate,
        trust_set.issuers["court"].certificate,
        trust_set.roots["court"].certificate,
    ]


def _seal(document, trust_set, issued, now, code="BJ01", **options):
    return seal_document(
        document, issued[code].key, _chain(trust_set, issued, code), code, now, **options
    )


def _refusal(document, store, seal_path=None) -> SignatureRejected:
    with pytest.raises(SignatureRejected) as caught:
        verify_seal(document, store, seal_path)
    return caught.value


# --- writing the seal ------------------------------------------------------------------------
def test_a_link_at_the_seal_name_is_replaced_not_written_through(document, trust_set, issued,
                                                                 now):  # fmt: skip
    victim = document.with_name("victim.txt")
    victim.write_text("victim\n")
    seal_path_for(document).symlink_to(victim.name)
    path = _seal(document, trust_set, issued, now)
    assert victim.read_text() == "victim\n"
    assert not path.is_symlink() and path.is_file()
    assert verify_seal(document, trust_set.trust_store()).agency_code == "BJ01"


def test_a_dangling_link_at_the_seal_name_is_replaced_too(document, trust_set, issued, now):
    seal_path_for(document).symlink_to(document.with_name("absent.txt"))
    path = _seal(document, trust_set, issued, now)
    assert not path.is_symlink() and not document.with_name("absent.txt").exists()


def test_without_replace_an_existing_seal_or_link_is_kept_and_named(document, trust_set, issued,
                                                                    now):  # fmt: skip
    first = _seal(document, trust_set, issued, now, code="SH02")
    before = first.read_bytes()
    with pytest.raises(
        SignError, match=r"already exists \(sealed by SH02 with key .*\); it is kept"
    ):
        _seal(document, trust_set, issued, now, replace=False)
    assert first.read_bytes() == before
    first.unlink()
    victim = document.with_name("victim.txt")
    victim.write_text("victim\n")
    first.symlink_to(victim)
    with pytest.raises(SignError, match=r"already exists \(a symbolic link to .*victim.txt\)"):
        _seal(document, trust_set, issued, now, replace=False)
    assert first.is_symlink() and victim.read_text() == "victim\n"


def test_with_replace_an_existing_seal_is_replaced(document, trust_set, issued, now):
    _seal(document, trust_set, issued, now, code="SH02")
    _seal(document, trust_set, issued, now, replace=True)
    assert verify_seal(document, trust_set.trust_store()).agency_code == "BJ01"


@pytest.mark.parametrize("replace", [True, False])
def test_a_folder_at_the_seal_name_is_refused_naming_it(document, trust_set, issued, now,
                                                        replace):  # fmt: skip
    seal_path_for(document).mkdir()
    with pytest.raises(
        SignError, match=r"seal .*判决书.pdf.seal.json: a folder, not a file; a seal"
    ):
        _seal(document, trust_set, issued, now, replace=replace)
    assert seal_path_for(document).is_dir() and not any(seal_path_for(document).iterdir())


def test_a_fifo_at_the_seal_name_is_refused_not_opened(document, trust_set, issued, now):
    os.mkfifo(seal_path_for(document))
    with pytest.raises(SignError, match=r"seal .*: not a regular file; a seal is written"):
        _seal(document, trust_set, issued, now)


def test_a_seal_in_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(SignError, match=r"its folder .*nowhere does not exist"):
        check_seal_path(tmp_path / "nowhere" / "x.seal.json")
    assert check_seal_path(tmp_path / "x.seal.json") is None


def test_describe_seal_names_what_is_there(document, trust_set, issued, now):
    path = seal_path_for(document)
    assert describe_seal(path) is None
    path.write_text("[]")
    assert describe_seal(path) == f"not a readable seal: seal {path}: 'format' must be " + (
        "'zf801-seal/1'"
    )
    _seal(document, trust_set, issued, now)
    assert describe_seal(path).startswith(f"sealed by BJ01 with key {issued['BJ01'].signer.key_id}")


# --- reading a hostile seal ------------------------------------------------------------------
def _resign(path, key, edit):
    """Edit the seal's statement and sign it again with ``key``: a valid signature over a
    statement the pattern admits."""
    seal = json.loads(path.read_text())
    seal["statement"] = edit(seal["statement"])
    seal["signature"] = base64.b64encode(key.sign(seal["statement"].encode("ascii"))).decode()
    path.write_text(json.dumps(seal))


@pytest.mark.parametrize(
    "when",
    [
        "2026-13-99T99:99:99Z",
        "2026-02-30T00:00:00Z",
        "2026-01-01T::::::::Z",
        "0000-01-01T00:00:00Z",
    ],
)
def test_a_signed_at_that_is_no_time_is_a_malformed_seal(document, trust_set, issued, now, when):
    path = _seal(document, trust_set, issued, now)
    stamp = now.isoformat(timespec="microseconds").replace("+00:00", "Z")
    _resign(path, issued["BJ01"].key, lambda text: text.replace(stamp, when))
    refused = _refusal(document, trust_set.trust_store())
    assert isinstance(refused, MalformedSeal)
    assert "signed-at" in str(refused) and when in str(refused) and str(path) in str(refused)


def test_a_self_signed_seal_with_an_impossible_time_is_a_malformed_seal(document, trust_set,
                                                                         now):  # fmt: skip
    """A forger's seal: a key of its own, a certificate it signed itself, a good signature."""
    key = Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "BJ01")])
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
        .sign(key, None)
    )  # fmt: skip
    _write_seal(document, key, [certificate], "BJ01", now)
    stamp = now.isoformat(timespec="microseconds").replace("+00:00", "Z")
    _resign(seal_path_for(document), key, lambda t: t.replace(stamp, "2026-13-99T99:99:99Z"))
    seal = json.loads(seal_path_for(document).read_text())
    assert seal["certificate"] == certificate.public_bytes(Encoding.PEM).decode()
    assert f"key-id: {key_id_of(key.public_key())}" in seal["statement"]
    refused = _refusal(document, trust_set.trust_store())
    assert refused.reason == "MALFORMED_SEAL" and "signed-at '2026-13-99T99:99:99Z'" in str(refused)


@pytest.mark.parametrize(
    "content",
    [b"[" * 60000, b'{"a":' * 20000, b"[" * 900 + b"]" * 900, b"\xff\xfe{}", b"null"],
)
def test_a_seal_that_exhausts_the_parser_is_a_malformed_seal(sealed_document, trust_set,
                                                             content):  # fmt: skip
    seal_path_for(sealed_document).write_bytes(content)
    refused = _refusal(sealed_document, trust_set.trust_store())
    assert refused.reason == "MALFORMED_SEAL" and str(seal_path_for(sealed_document)) in str(
        refused
    )


@pytest.fixture
def sealed_document(document, trust_set, issued, now):
    _seal(document, trust_set, issued, now)
    return document


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("statement", [[["deep"]]], "'statement' must be a string"),
        ("statement", None, "'statement' must be a string"),
        ("signature", 7, "'signature' must be a string"),
        ("certificate", {"pem": "x"}, "'certificate' must be a string"),
        ("chain", "PEM", "'chain' must be a list of PEM strings"),
        ("chain", [1, 2], "'chain' must be a list of PEM strings"),
        ("certificate", "-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n",
         "a certificate does not parse"),
    ],
)  # fmt: skip
def test_a_seal_field_of_the_wrong_type_is_a_malformed_seal(sealed_document, trust_set, field,
                                                            value, message):  # fmt: skip
    path = seal_path_for(sealed_document)
    seal = json.loads(path.read_text())
    seal[field] = value
    path.write_text(json.dumps(seal))
    refused = _refusal(sealed_document, trust_set.trust_store())
    assert refused.reason == "MALFORMED_SEAL" and message in str(refused)


def test_a_seal_larger_than_the_limit_or_a_folder_is_refused_unread(sealed_document, trust_set,
                                                                    tmp_path):  # fmt: skip
    big = tmp_path / "big.seal.json"
    big.write_bytes(b" " * (64 * 1024 + 1))
    assert "more than 65,536" in str(_refusal(sealed_document, trust_set.trust_store(), big))
    folder = tmp_path / "folder.seal.json"
    folder.mkdir()
    refused = _refusal(sealed_document, trust_set.trust_store(), folder)
    assert refused.reason == "MALFORMED_SEAL" and "a folder, not a file" in str(refused)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("error parsing asn1 value: duplicate extension"),
        x509.DuplicateExtension("Duplicate 2.5.29.19 extension found", x509.OID_BASIC_CONSTRAINTS),
    ],
)
def test_a_certificate_the_trust_store_cannot_use_is_a_malformed_seal(
    sealed_document, trust_set, error
):
    store = trust_set.trust_store()

    def hostile(certificate):
        raise error

    store.add_certificate = hostile
    refused = _refusal(sealed_document, store)
    assert refused.reason == "MALFORMED_SEAL" and "a certificate cannot be used" in str(refused)


def _altered_copies(pem: str, step: int):
    """``pem`` with one character of its base64 body replaced, at every ``step``-th place."""
    lines = pem.splitlines(keepends=True)
    body = range(1, len(lines) - 1)  # between the BEGIN and END lines
    for row in body:
        for column in range(0, len(lines[row].rstrip("\n")), step):
            old = lines[row][column]
            new = "A" if old != "A" else "B"
            yield "".join(
                [
                    *lines[:row],
                    lines[row][:column] + new + lines[row][column + 1 :],
                    *lines[row + 1 :],
                ]
            )


@pytest.mark.parametrize("field", ["certificate", "chain"])
def test_a_certificate_altered_in_the_seal_is_refused_as_openssl_refuses_it(
    sealed_document, trust_set, tmp_path, field
):
    """The key is found by its id in the trust store, so an altered copy of a certificate
    the seal carries changed no verdict here, while OpenSSL refused the same file."""
    store = trust_set.trust_store()
    seal = json.loads(seal_path_for(sealed_document).read_text())
    places = (
        [("certificate", None)]
        if field == "certificate"
        else [("chain", index) for index in range(len(seal["chain"]))]
    )
    altered_path = tmp_path / "altered.seal.json"
    tried = 0
    for name, index in places:
        pem = seal[name] if index is None else seal[name][index]
        for altered in _altered_copies(pem, 7):
            copy = json.loads(json.dumps(seal))
            if index is None:
                copy[name] = altered
            else:
                copy[name][index] = altered
            altered_path.write_text(json.dumps(copy))
            tried += 1
            try:
                verify_seal(sealed_document, store, altered_path)
            except SignatureRejected:
                continue
            pytest.fail(f"an altered copy of {name}[{index}] was accepted:\n{altered}")
    assert tried > 50
    verify_seal(sealed_document, store)  # the seal as written still verifies
