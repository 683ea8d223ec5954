"""The test vector of sign/CANONICAL.md holds for the Python code and for openssl."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sign.events import EventSigner, canonical_bytes
from sign.identity import key_id_of

DOC = Path(__file__).resolve().parents[3] / "sign" / "CANONICAL.md"
SEED = bytes(range(32))
FIELDS = [
    b"ed25519",
    b"a050837d85070582ccf7394b0988847c",
    b"2f1e8c4a-6d3b-4f7e-9a21-0c5d8b7e6f13",
    b"zf801:agency/BJ01",
    b"cn.zf801.orders.v1.OrderRelease",
    b"2026-11-27T05:00:00.123456Z",
    b"1.0",
    b"application/avro",
]
KEY = b"order-0001"
VALUE = bytes.fromhex("c3010000000000000000") + b"\x02"


def _block(marker: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(rf"<!-- vector:{marker} -->\n```[a-z]*\n(.*?)```", text, re.S)
    assert found is not None, f"CANONICAL.md lost its {marker} block"
    return found.group(1)


def test_vector_matches_the_code():
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    assert key_id_of(key.public_key()) == FIELDS[1].decode()
    canonical = canonical_bytes(FIELDS, KEY, VALUE)
    assert canonical.hex() == _block("canonical").strip()
    assert base64.b64encode(key.sign(canonical)).decode() == _block("signature").strip()


def test_signer_produces_the_vector_from_headers():
    headers = list(zip(("ce_id", "ce_source", "ce_type", "ce_time", "ce_specversion",
                        "content-type"), FIELDS[2:], strict=True))  # fmt: skip
    signer = EventSigner(Ed25519PrivateKey.from_private_bytes(SEED), "BJ01")
    signed = dict(signer.sign(KEY, VALUE, headers))
    assert signed["ce_signature"].decode() == _block("signature").strip()
    assert signed["ce_sigkeyid"] == FIELDS[1]


@pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("xxd") is None,
                    reason="needs the openssl and xxd command-line tools")  # fmt: skip
def test_openssl_verifies_the_vector(tmp_path):
    (tmp_path / "canonical.hex").write_text(_block("canonical"))
    (tmp_path / "signature.b64").write_text(_block("signature").strip())
    result = subprocess.run(["bash", "-c", _block("openssl")], cwd=tmp_path, check=False,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Signature Verified Successfully" in result.stdout
