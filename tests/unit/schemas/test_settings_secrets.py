"""Production mode refuses the demo secrets (and empty or short ones); demo and test mode
accept them. Every refusal names the component, each variable at fault and the fix."""

from __future__ import annotations

import pickle

import pytest
from pydantic import SecretStr, ValidationError

from schemas.errors import BusError, ConfigurationError, InsecureSettings
from schemas.settings import Settings

MATCH_KEY = "ZF801_MATCH_KEY_SECRET"
PASSPHRASE = "ZF801_KEY_PASSPHRASE"
REAL_MATCH_KEY = "a-real-match-key-secret-of-this-deployment"
REAL_PASSPHRASE = "a-real-passphrase-of-this-deployment"


@pytest.fixture(autouse=True)
def _no_secret_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test states mode and secrets itself; the shell's variables do not leak in."""
    for variable in (MATCH_KEY, PASSPHRASE, "ZF801_MODE"):
        monkeypatch.delenv(variable, raising=False)


def _settings(mode: str = "production", **secrets: str) -> Settings:
    values = {name: SecretStr(value) for name, value in secrets.items()}
    return Settings(mode=mode, **values)  # type: ignore[arg-type]


def _refusal(settings: Settings, component: str = "zf801 worker") -> InsecureSettings:
    with pytest.raises(InsecureSettings) as caught:
        settings.require_real_secrets(component)
    return caught.value


def test_production_is_the_default_mode():
    assert Settings().mode == "production"


@pytest.mark.parametrize("mode", ["production", "demo", "test"])
def test_the_mode_is_read_from_ZF801_MODE(monkeypatch: pytest.MonkeyPatch, mode: str):
    monkeypatch.setenv("ZF801_MODE", mode)
    assert Settings().mode == mode


def test_an_unknown_mode_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ZF801_MODE", "prod")
    with pytest.raises(ValidationError, match="mode"):
        Settings()


@pytest.mark.parametrize("mode", ["production", "demo", "test"])
def test_insecure_secrets_names_every_variable_at_its_demo_value_in_every_mode(mode: str):
    assert _settings(mode).insecure_secrets() == [MATCH_KEY, PASSPHRASE]
    assert _settings(mode, match_key_secret=REAL_MATCH_KEY).insecure_secrets() == [PASSPHRASE]
    assert _settings(mode, key_passphrase=REAL_PASSPHRASE).insecure_secrets() == [MATCH_KEY]
    real = _settings(mode, match_key_secret=REAL_MATCH_KEY, key_passphrase=REAL_PASSPHRASE)
    assert real.insecure_secrets() == []


def test_production_refuses_the_demo_secrets_with_a_message_an_operator_can_act_on():
    refusal = _refusal(_settings(), "zf801 worker")
    message = str(refusal)
    assert message.startswith("zf801 worker refused to start: ZF801_MODE is production")
    assert f"{MATCH_KEY} holds the public demo value" in message
    assert f"{PASSPHRASE} holds the public demo value" in message
    assert f"Set {MATCH_KEY} and {PASSPHRASE} to secrets of your own" in message
    assert "ZF801_MODE=demo" in message
    assert refusal.component == "zf801 worker"
    assert refusal.variables == (MATCH_KEY, PASSPHRASE)


def test_the_refusal_does_not_show_the_secrets():
    settings = _settings(match_key_secret="tiny-secret", key_passphrase=REAL_PASSPHRASE)
    message = str(_refusal(settings))
    assert "tiny-secret" not in message
    assert REAL_PASSPHRASE not in message
    assert "zf801-demo" not in str(_refusal(_settings()))


@pytest.mark.parametrize(
    ("real", "at_fault"),
    [("match_key_secret", PASSPHRASE), ("key_passphrase", MATCH_KEY)],
)
def test_each_variable_at_its_demo_value_is_named_alone(real: str, at_fault: str):
    refusal = _refusal(_settings(**{real: "x" * 40}))
    assert refusal.variables == (at_fault,)
    other = MATCH_KEY if at_fault == PASSPHRASE else PASSPHRASE
    assert at_fault in str(refusal)
    assert other not in str(refusal)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("", "is empty"),
        ("                    ", "is empty"),
        ("short", "is shorter than 16 characters"),
        ("x" * 15, "is shorter than 16 characters"),
    ],
)
@pytest.mark.parametrize(("field", "variable"), [("match_key_secret", MATCH_KEY),
                                                 ("key_passphrase", PASSPHRASE)])  # fmt: skip
def test_production_refuses_an_empty_or_short_secret(
    field: str, variable: str, secret: str, problem: str
):
    secrets = {"match_key_secret": REAL_MATCH_KEY, "key_passphrase": REAL_PASSPHRASE}
    refusal = _refusal(_settings(**{**secrets, field: secret}), "zf801 publish")
    assert refusal.problems == ((variable, problem),)
    assert str(refusal).startswith(
        f"zf801 publish refused to start: ZF801_MODE is production and {variable} {problem}. "
        f"Set {variable} to a"
    )


def test_production_accepts_real_secrets_of_sixteen_characters_or_more():
    _settings(match_key_secret="x" * 16, key_passphrase=REAL_PASSPHRASE).require_real_secrets(
        "zf801 worker"
    )


@pytest.mark.parametrize("mode", ["demo", "test"])
@pytest.mark.parametrize("secret", [None, "", "short"])
def test_demo_and_test_mode_accept_any_secret(mode: str, secret: str | None):
    secrets = {} if secret is None else {"match_key_secret": secret, "key_passphrase": secret}
    _settings(mode, **secrets).require_real_secrets("zf801 worker")


def test_the_refusal_is_a_bus_error_and_a_value_error_that_survives_pickling():
    refusal = _refusal(_settings())
    assert isinstance(refusal, BusError)
    assert isinstance(refusal, ValueError)
    assert isinstance(refusal, ConfigurationError)
    copy = pickle.loads(pickle.dumps(refusal))
    assert str(copy) == str(refusal)
    assert copy.variables == refusal.variables
