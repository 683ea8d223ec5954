"""The command centre's edge: every value a request brings (headers, path, query string)
is checked here, and a bad one gets a clear error that names the field and the rule."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Mapping

from ops.centre.tokens import MAX_TOKEN_CHARS
from ops.errors import OpsError

__all__ = [
    "COURT_PATTERN",
    "LANGUAGES",
    "BadInput",
    "bearer_token",
    "checked_court",
    "checked_host",
    "checked_query",
]

COURT_PATTERN = re.compile(r"^[A-Z0-9]{2,16}$")
LANGUAGES = ("zh", "en")
_MAX_PARAM_CHARS = 64
_BEARER = "Bearer "


class BadInput(OpsError, ValueError):  # noqa: N818 - reads as a verdict
    """A request value that breaks a rule; ``status`` is the HTTP status to answer."""

    def __init__(self, field: str, rule: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.rule = rule
        self.status = status

    def document(self) -> dict[str, str]:
        return {"error": str(self), "field": self.field, "rule": self.rule}


def bearer_token(headers: Mapping[str, str]) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (401 when missing)."""
    value = headers.get("authorization")
    if value is None or not value.strip():
        raise BadInput(
            "authorization", "required",
            "required: Bearer <token> (zf801 command-centre token --as <agency>)", 401,
        )  # fmt: skip
    if len(value) > MAX_TOKEN_CHARS + len(_BEARER):
        raise BadInput("authorization", "max-length",
                       f"at most {MAX_TOKEN_CHARS + len(_BEARER)} characters", 401)  # fmt: skip
    if not value.startswith(_BEARER) or not value[len(_BEARER) :].strip():
        raise BadInput("authorization", "scheme", "must be 'Bearer <token>'", 401)
    return value[len(_BEARER) :].strip()


def checked_court(value: str) -> str:
    if len(value) > _MAX_PARAM_CHARS or not COURT_PATTERN.fullmatch(value):
        shown = value[:20] + ("..." if len(value) > 20 else "")
        raise BadInput("court", "pattern",
                       f"{shown!r} must match {COURT_PATTERN.pattern}")  # fmt: skip
    return value


def checked_query(params: Mapping[str, str], allowed: Collection[str]) -> dict[str, str]:
    """The query parameters, each one allowed here, given once, short and well formed."""
    out: dict[str, str] = {}
    for name, value in params.items():
        if name not in allowed:
            shown = name[:20] + ("..." if len(name) > 20 else "")
            accepted = ", ".join(sorted(allowed)) or "none"
            raise BadInput(f"query parameter {shown!r}", "unknown",
                           f"not accepted here (accepted: {accepted})")  # fmt: skip
        if len(value) > _MAX_PARAM_CHARS:
            raise BadInput(name, "max-length", f"at most {_MAX_PARAM_CHARS} characters")
        if name == "lang" and value not in LANGUAGES:
            raise BadInput("lang", "one-of", f"must be one of {', '.join(LANGUAGES)}")
        if name == "court":
            checked_court(value)
        out[name] = value
    return out


def checked_host(value: str) -> str:
    """The address to listen on: an IP address literal."""
    try:
        ipaddress.ip_address(value)
    except ValueError as exc:
        raise BadInput("--host", "ip-address", f"{value[:40]!r} is not an IP address") from exc
    return value
