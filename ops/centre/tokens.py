"""Viewer tokens of the command centre: an agency proves who is looking with its own
signing identity (the Ed25519 key the key store holds for it, certified by the bus's CA).

A token is ``<payload>.<signature>``, both base64url without padding. The payload is
compact JSON ``{"v": 1, "aud": "zf801-command-centre", "sub": <agency>, "kid": <key id>,
"iat": <unix s>, "exp": <unix s>}``; the signature is Ed25519 over
``b"zf801-command-centre-token/1\\n" + payload`` (the prefix keeps a token from ever being
taken for a signed event or seal). The centre checks it against its trust store, which
follows the trust topic: a revoked or expired certificate, another agency's key, a
lifetime over :data:`MAX_LIFETIME_S` or a token from the future is refused. Nothing is
kept on the server: no session, no password.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature

from ops.errors import OpsError
from schemas.agencies import Agency, load_agencies
from schemas.errors import BusError
from sign.keystore import KeyStore
from sign.trust import TrustStore

__all__ = [
    "AUDIENCE",
    "MAX_LIFETIME_S",
    "MAX_TOKEN_CHARS",
    "TokenRefused",
    "Viewer",
    "issue_token",
    "verify_token",
]

AUDIENCE = "zf801-command-centre"
MAX_LIFETIME_S = 12 * 3600
MAX_TOKEN_CHARS = 2048
_CLOCK_SKEW_S = 60
_DOMAIN = b"zf801-command-centre-token/1\n"
_PART = re.compile(r"^[A-Za-z0-9_-]{1,1800}$")


class TokenRefused(OpsError, ValueError):  # noqa: N818 - reads as a verdict
    """A viewer token that does not prove an identity; the message names the rule."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking: the agency a verified token speaks for."""

    agency: Agency
    key_id: str
    expires: datetime

    @property
    def code(self) -> str:
        return self.agency.code

    @property
    def sees_national(self) -> bool:
        """The national view is the SPC's: its command system and the Supreme People's
        Court itself (a court without a province)."""
        role = str(self.agency.role)
        return role == "command-system" or (role == "court" and self.agency.province is None)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str, part: str) -> bytes:
    if not _PART.fullmatch(text):
        raise TokenRefused(f"token {part}: must be 1-1800 base64url characters")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenRefused(f"token {part}: not base64url") from exc


def issue_token(
    keystore: KeyStore, agency_code: str, lifetime_s: int, now: datetime | None = None
) -> str:
    """A token of ``agency_code``, signed with its current key in ``keystore``, valid for
    ``lifetime_s`` seconds from ``now``."""
    if not 0 < lifetime_s <= MAX_LIFETIME_S:
        raise TokenRefused(f"lifetime: must be 1-{MAX_LIFETIME_S} seconds, got {lifetime_s}")
    key_id = keystore.current_key_id(agency_code)
    issued = int((now or datetime.now(UTC)).timestamp())
    payload = json.dumps(
        {"v": 1, "aud": AUDIENCE, "sub": agency_code, "kid": key_id,
         "iat": issued, "exp": issued + lifetime_s},
        separators=(",", ":"), sort_keys=True,
    ).encode()  # fmt: skip
    return f"{_b64(payload)}.{_b64(keystore.private_key(key_id).sign(_DOMAIN + payload))}"


def _claims(payload: bytes) -> dict[str, object]:
    try:
        claims = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenRefused("token payload: not JSON") from exc
    except RecursionError:  # any client can send one: never a 500
        raise TokenRefused("token payload: not JSON (nested too deeply)") from None
    if not isinstance(claims, dict):
        raise TokenRefused("token payload: must be a JSON object")
    if claims.get("v") != 1 or claims.get("aud") != AUDIENCE:
        raise TokenRefused(f"token payload: must be version 1 for audience {AUDIENCE}")
    for name, kind in (("sub", str), ("kid", str), ("iat", int), ("exp", int)):
        if not isinstance(claims.get(name), kind) or isinstance(claims.get(name), bool):
            raise TokenRefused(f"token payload: {name} must be a {kind.__name__}")
    return claims


def verify_token(token: str, trust: TrustStore, now: datetime | None = None) -> Viewer:
    """The viewer a token proves, or :class:`TokenRefused` naming the rule it breaks."""
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenRefused(f"token: at most {MAX_TOKEN_CHARS} characters, got {len(token)}")
    parts = token.split(".")
    if len(parts) != 2:
        raise TokenRefused("token: must be <payload>.<signature>")
    payload, signature = _unb64(parts[0], "payload"), _unb64(parts[1], "signature")
    claims = _claims(payload)
    now = now or datetime.now(UTC)
    issued, expires = int(claims["iat"]), int(claims["exp"])  # type: ignore[call-overload]
    if expires <= issued or expires - issued > MAX_LIFETIME_S:
        raise TokenRefused(f"token lifetime: must be 1-{MAX_LIFETIME_S} seconds")
    if issued > now.timestamp() + _CLOCK_SKEW_S:
        raise TokenRefused("token iat: issued in the future")
    if expires <= now.timestamp():
        raise TokenRefused("token exp: expired")
    code, key_id = str(claims["sub"]), str(claims["kid"])
    try:
        agency = load_agencies().get(code)
        trust.authorise(key_id, code, now)
        trust.public_key(key_id).verify(signature, _DOMAIN + payload)
    except InvalidSignature as exc:
        raise TokenRefused("token signature: does not verify with the key it names") from exc
    except BusError as exc:
        raise TokenRefused(f"token sub/kid: {exc}") from exc
    return Viewer(agency, key_id, datetime.fromtimestamp(expires, UTC))
