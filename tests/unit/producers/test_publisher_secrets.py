"""A Publisher is not built in production mode while a secret holds its demo value."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from producers.publisher import Publisher
from schemas.errors import InsecureSettings
from schemas.settings import Settings
from sign.events import EventSigner

REAL = SecretStr("a-real-secret-of-this-deployment")


@pytest.fixture(autouse=True)
def _demo_secrets(fresh_settings: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("ZF801_MATCH_KEY_SECRET", "ZF801_KEY_PASSPHRASE"):
        monkeypatch.delenv(variable, raising=False)


def _signer() -> EventSigner:
    return EventSigner(Ed25519PrivateKey.generate(), "BJ01")


def test_publisher_refuses_given_production_settings_with_demo_secrets():
    with pytest.raises(InsecureSettings) as caught:
        Publisher(_signer(), settings=Settings(mode="production"))
    assert caught.value.component == "the publisher of agency BJ01"
    assert caught.value.variables == ("ZF801_MATCH_KEY_SECRET", "ZF801_KEY_PASSPHRASE")
    assert "the publisher of agency BJ01 refused to start" in str(caught.value)


def test_publisher_refuses_the_global_production_settings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ZF801_MODE", "production")
    monkeypatch.setenv("ZF801_MATCH_KEY_SECRET", REAL.get_secret_value())
    with pytest.raises(InsecureSettings) as caught:
        Publisher(_signer())
    assert caught.value.variables == ("ZF801_KEY_PASSPHRASE",)


def test_publisher_is_built_with_real_secrets_in_production_mode():
    settings = Settings(mode="production", match_key_secret=REAL, key_passphrase=REAL)
    assert Publisher(_signer(), settings=settings).agency.code == "BJ01"


@pytest.mark.parametrize("mode", ["demo", "test"])
def test_publisher_is_built_with_demo_secrets_in_demo_and_test_mode(mode: str):
    settings = Settings(mode=mode)  # type: ignore[arg-type]
    assert Publisher(_signer(), settings=settings).agency.code == "BJ01"
