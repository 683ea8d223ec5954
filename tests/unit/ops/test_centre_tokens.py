"""Viewer tokens of the command centre: signed with the agency's own key, refused when
tampered with, expired, too long-lived, from the future, of another audience, or signed
by one agency in another's name."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from ops.centre.tokens import MAX_LIFETIME_S, TokenRefused, issue_token, verify_token
from schemas.settings import Settings
from sign.keystore import KeyStore


@pytest.fixture(scope="module")
def keystore(settings: Settings) -> KeyStore:
    return KeyStore.from_settings(settings)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _parts(token: str) -> tuple[dict[str, object], str]:
    payload, signature = token.split(".")
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))), signature


def test_a_token_proves_its_agency(keystore: KeyStore) -> None:
    viewer = verify_token(issue_token(keystore, "BJ01", 600), keystore.trust_store())
    assert viewer.code == "BJ01"
    assert not viewer.sees_national
    assert viewer.key_id == keystore.current_key_id("BJ01")


@pytest.mark.parametrize(
    ("agency", "national"),
    [("SPC-COMMAND", True), ("SPC", True), ("BJ", False), ("110000230000", False)],
)
def test_the_national_view_is_the_spcs(keystore: KeyStore, agency: str, national: bool) -> None:
    viewer = verify_token(issue_token(keystore, agency, 600), keystore.trust_store())
    assert viewer.sees_national is national


def test_a_claim_changed_after_signing_is_refused(keystore: KeyStore) -> None:
    claims, signature = _parts(issue_token(keystore, "BJ01", 600))
    forged = _b64(json.dumps({**claims, "sub": "GD01"}, separators=(",", ":")).encode())
    with pytest.raises(TokenRefused, match="token sub/kid"):
        verify_token(f"{forged}.{signature}", keystore.trust_store())
    longer = _b64(json.dumps({**claims, "exp": claims["exp"] + 60}).encode())  # type: ignore[operator]
    with pytest.raises(TokenRefused, match="signature: does not verify"):
        verify_token(f"{longer}.{signature}", keystore.trust_store())


def test_one_agency_cannot_sign_for_another(keystore: KeyStore) -> None:
    """GD01's key, a payload naming BJ01 with GD01's key id: the key does not speak for BJ01."""
    token = issue_token(keystore, "GD01", 600)
    claims, _ = _parts(token)
    payload = json.dumps({**claims, "sub": "BJ01"}, separators=(",", ":"), sort_keys=True)
    signature = keystore.private_key(str(claims["kid"])).sign(
        b"zf801-command-centre-token/1\n" + payload.encode()
    )
    with pytest.raises(TokenRefused, match="speaks for GD01"):
        verify_token(f"{_b64(payload.encode())}.{_b64(signature)}", keystore.trust_store())


def test_time_rules(keystore: KeyStore) -> None:
    trust = keystore.trust_store()
    now = datetime.now(UTC)
    with pytest.raises(TokenRefused, match="token exp: expired"):
        verify_token(issue_token(keystore, "BJ01", 60, now - timedelta(minutes=5)), trust)
    with pytest.raises(TokenRefused, match="issued in the future"):
        verify_token(issue_token(keystore, "BJ01", 60, now + timedelta(minutes=5)), trust)
    with pytest.raises(TokenRefused, match="lifetime"):
        issue_token(keystore, "BJ01", MAX_LIFETIME_S + 1)


@pytest.mark.parametrize(
    ("token", "rule"),
    [
        ("", "must be <payload>.<signature>"),
        ("abc", "must be <payload>.<signature>"),
        ("a.b.c", "must be <payload>.<signature>"),
        ("x" * 3000, "at most 2048 characters"),
        ("<script>.alert", "token payload: must be 1-1800 base64url"),
        (f"{_b64(b'not json')}.AAAA", "token payload: not JSON"),
        (f"{_b64(b'[' * 1350)}.AAAA", r"not JSON \(nested too deeply\)"),  # was a 500
        ("AAAA\n.AAAA", "token payload: must be 1-1800 base64url"),
        (f"{_b64(b'[1]')}.AAAA", "must be a JSON object"),
        (f"{_b64(json.dumps({'v': 1, 'aud': 'other'}).encode())}.AAAA", "audience"),
        (
            f"{_b64(json.dumps({'v': 1, 'aud': 'zf801-command-centre', 'sub': 1}).encode())}.AAAA",
            "sub must be a str",
        ),
    ],
)
def test_malformed_tokens_name_the_rule(keystore: KeyStore, token: str, rule: str) -> None:
    with pytest.raises(TokenRefused, match=rule):
        verify_token(token, keystore.trust_store())
