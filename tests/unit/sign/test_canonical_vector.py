"""The test vectors of sign/CANONICAL.md hold for the Python code and for openssl."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sign.events import EventSigner, canonical_bytes
from sign.identity import key_id_of

DOC = Path(__file__).resolve().parents[3] / "sign" / "CANONICAL.md"
SEED = bytes(range(32))
KEY_ID = b"a050837d85070582ccf7394b0988847c"
HEADER_NAMES = ("ce_id", "ce_source", "ce_type", "ce_time", "ce_specversion", "content-type")


@dataclass(frozen=True)
class Vector:
    """One vector of the doc: its block markers, the signing agency and the event."""

    marker: str  # "" for the first vector, "-altkeys" for the second
    agency: str
    headers: tuple[bytes, ...]  # the values of HEADER_NAMES, in that order
    altkeys: bytes | None
    key: bytes
    value: bytes

    @property
    def fields(self) -> list[bytes | None]:
        return [b"ed25519", KEY_ID, *self.headers, self.altkeys]


ORDER_RELEASE = Vector(
    marker="",
    agency="BJ01",
    headers=(
        b"2f1e8c4a-6d3b-4f7e-9a21-0c5d8b7e6f13",
        b"zf801:agency/BJ01",
        b"cn.zf801.orders.v1.OrderRelease",
        b"2026-11-27T05:00:00.123456Z",
        b"1.0",
        b"application/avro",
    ),
    altkeys=None,
    key=b"order-0001",
    value=bytes.fromhex("c3010000000000000000") + b"\x02",
)
VEHICLE_WITH_ALTKEYS = Vector(
    marker="-altkeys",
    agency="110000110000",
    headers=(
        b"7b3d9e21-4c5a-4e8f-b1d2-3a6c9e0f5d27",
        b"zf801:agency/110000110000",
        b"cn.zf801.sightings.v1.VehicleEncounter",
        b"2026-11-27T05:00:01.000000Z",
        b"1.0",
        b"application/avro",
    ),
    altkeys=b"9e95e9b04332a2d1158c4d89d34a703d9fbea830b24b14266ea518adba183a1d",
    key=bytes.fromhex("4dc2d251bda7d26efdd45646c1dcb5f2e3a7a624d5275dba354874274624593a"),
    value=bytes.fromhex("c3010000000000000000") + b"\x02",
)
VECTORS = [pytest.param(v, id=v.marker.strip("-") or "plain") for v in (
    ORDER_RELEASE, VEHICLE_WITH_ALTKEYS)]  # fmt: skip

# The first vector's signature under version 1 (no ce_altkeys field): no longer accepted.
V1_SIGNATURE = (
    "D/CIsBC6eM6v3TGnuMBDw3rwGfVbgm9syR4eiDKqzsMDBWXZeF6xRtqIIGrf+k19tPtyK0WnTccDUB1BKuWPAA=="
)


def _block(marker: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(rf"<!-- vector:{marker} -->\n```[a-z]*\n(.*?)```", text, re.S)
    assert found is not None, f"CANONICAL.md lost its {marker} block"
    return found.group(1)


def _stated_length(marker: str) -> int:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(rf"\((\d+) bytes, hex\):\s*<!-- vector:canonical{marker} -->", text)
    assert found is not None, f"CANONICAL.md does not state the length of canonical{marker}"
    return int(found.group(1))


def test_the_key_id_is_the_documented_one() -> None:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    assert key_id_of(key.public_key()).encode() == KEY_ID


@pytest.mark.parametrize("vector", VECTORS)
def test_vector_matches_the_code(vector: Vector) -> None:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    canonical = canonical_bytes(vector.fields, vector.key, vector.value)
    assert canonical.hex() == _block(f"canonical{vector.marker}").strip()
    assert len(canonical) == _stated_length(vector.marker)
    assert canonical.startswith(b"ZF801-EVENT-SIG-V2\n")
    signature = base64.b64encode(key.sign(canonical)).decode()
    assert signature == _block(f"signature{vector.marker}").strip()


@pytest.mark.parametrize("vector", VECTORS)
def test_signer_produces_the_vector_from_headers(vector: Vector) -> None:
    headers = list(zip(HEADER_NAMES, vector.headers, strict=True))
    if vector.altkeys is not None:
        headers.append(("ce_altkeys", vector.altkeys))
    signer = EventSigner(Ed25519PrivateKey.from_private_bytes(SEED), vector.agency)
    signed = dict(signer.sign(vector.key, vector.value, headers))
    assert signed["ce_signature"].decode() == _block(f"signature{vector.marker}").strip()
    assert signed["ce_sigkeyid"] == KEY_ID


def test_the_altkeys_field_sits_after_content_type_and_is_null_when_absent() -> None:
    plain = bytes.fromhex(_block("canonical").strip())
    with_hints = bytes.fromhex(_block("canonical-altkeys").strip())
    content_type = len(b"application/avro").to_bytes(4, "big") + b"application/avro"
    assert plain.split(content_type, 1)[1].startswith(b"\xff\xff\xff\xff\x00\x00\x00\x0aorder")
    altkeys = VEHICLE_WITH_ALTKEYS.altkeys or b""
    assert with_hints.split(content_type, 1)[1].startswith(b"\x00\x00\x00\x40" + altkeys)


def test_a_version_1_signature_is_not_accepted() -> None:
    public = Ed25519PrivateKey.from_private_bytes(SEED).public_key()
    v2 = canonical_bytes(ORDER_RELEASE.fields, ORDER_RELEASE.key, ORDER_RELEASE.value)
    with pytest.raises(InvalidSignature):
        public.verify(base64.b64decode(V1_SIGNATURE), v2)


@pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("xxd") is None,
                    reason="needs the openssl and xxd command-line tools")  # fmt: skip
@pytest.mark.parametrize("vector", VECTORS)
def test_openssl_verifies_the_vector(tmp_path: Path, vector: Vector) -> None:
    (tmp_path / "canonical.hex").write_text(_block(f"canonical{vector.marker}"))
    (tmp_path / "signature.b64").write_text(_block(f"signature{vector.marker}").strip())
    result = subprocess.run(["bash", "-c", _block("openssl")], cwd=tmp_path, check=False,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Signature Verified Successfully" in result.stdout


@pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("xxd") is None,
                    reason="needs the openssl and xxd command-line tools")  # fmt: skip
def test_openssl_refuses_the_vector_without_its_altkeys(tmp_path: Path) -> None:
    """The recipe is not a rubber stamp: the second vector's signature over the string
    with ce_altkeys stripped (the null length instead) fails under openssl too."""
    stripped = canonical_bytes(
        [*VEHICLE_WITH_ALTKEYS.fields[:-1], None], VEHICLE_WITH_ALTKEYS.key,
        VEHICLE_WITH_ALTKEYS.value,
    )  # fmt: skip
    (tmp_path / "canonical.hex").write_text(stripped.hex() + "\n")
    (tmp_path / "signature.b64").write_text(_block("signature-altkeys").strip())
    result = subprocess.run(["bash", "-c", _block("openssl")], cwd=tmp_path, check=False,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode != 0
    assert "Signature Verified Successfully" not in result.stdout
