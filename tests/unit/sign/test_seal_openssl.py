"""The seal recipe of sign/SEAL-OPENSSL.md, run with openssl (and jq) only.

The seal is made by project code; its verification here uses no project code at all: the
test runs the bash block of the document verbatim against files on disk.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from sign.seal import seal_document

RECIPE_DOC = Path(__file__).resolve().parents[3] / "sign" / "SEAL-OPENSSL.md"

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None or shutil.which("jq") is None,
    reason="the recipe needs the openssl and jq command-line tools",
)


def _recipe() -> str:
    text = RECIPE_DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- recipe:begin -->\n```bash\n(.*?)```\n<!-- recipe:end -->", text, re.S)
    assert block is not None, "SEAL-OPENSSL.md lost its recipe markers"
    return block.group(1)


def _run(document: Path, seal: Path, anchor: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOC": str(document), "SEAL": str(seal), "ANCHOR": str(anchor)}
    return subprocess.run(
        ["bash", "-c", _recipe()],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def sealed(tmp_path, trust_set, issued, now):
    document = tmp_path / "查封裁定书.pdf"
    document.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 40)
    court = issued["BJ01"]
    chain = [court.certificate, trust_set.issuers["court"].certificate]
    chain.append(trust_set.roots["court"].certificate)
    seal = seal_document(document, court.key, chain, "BJ01", now + timedelta(hours=1))
    anchor = tmp_path / "court-root.pem"
    anchor.write_bytes(trust_set.roots["court"].certificate.public_bytes(Encoding.PEM))
    return document, seal, anchor


def test_openssl_verifies_a_sealed_document(sealed):
    result = _run(*sealed)
    assert result.returncode == 0, result.stderr
    assert "seal OK: BJ01 signed" in result.stdout
    assert "OU=court" in result.stdout.replace(" = ", "=")


def test_openssl_refuses_a_tampered_document(sealed):
    document, seal, anchor = sealed
    data = bytearray(document.read_bytes())
    data[100] ^= 0x01
    document.write_bytes(bytes(data))
    result = _run(document, seal, anchor)
    assert result.returncode != 0
    # The chain and the signature still verify: it is the document hash step that fails.
    assert "Signature Verified Successfully" in result.stdout
    assert "seal OK" not in result.stdout


def test_openssl_refuses_a_statement_edited_to_match_a_tampered_document(sealed):
    document, seal, anchor = sealed
    document.write_bytes(b"another document")
    content = json.loads(seal.read_text())
    digest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-r", str(document)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[0]
    content["statement"] = re.sub(r"sha256: [0-9a-f]+", f"sha256: {digest}", content["statement"])
    content["statement"] = re.sub(r"size: \d+", "size: 16", content["statement"])
    seal.write_text(json.dumps(content))
    result = _run(document, seal, anchor)
    assert result.returncode != 0
    assert "Signature Verification Failure" in result.stdout + result.stderr


def test_openssl_refuses_a_seal_under_another_anchor(sealed, trust_set, tmp_path):
    document, seal, _ = sealed
    police_root = tmp_path / "police-root.pem"
    police_root.write_bytes(trust_set.roots["police"].certificate.public_bytes(Encoding.PEM))
    result = _run(document, seal, police_root)
    assert result.returncode != 0
    assert "unable to get local issuer certificate" in result.stdout + result.stderr
