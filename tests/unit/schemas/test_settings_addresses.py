"""Where the clients connect when no address is given: the local broker, wherever it
was moved."""

from __future__ import annotations

import pytest

from schemas.settings import Settings

_ADDRESSES = (
    "ZF801_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS", "ZF801_POLICE_BOOTSTRAP_SERVERS",
    "ZF801_BUS_BOOTSTRAP_SERVERS", "ZF801_BROKER_HOST", "ZF801_BROKER_PORT",
    "ZF801_BROKER_POLICE_PORT", "ZF801_BROKER_BUS_PORT",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _no_address_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in _ADDRESSES:
        monkeypatch.delenv(variable, raising=False)


def _addresses(settings: Settings) -> tuple[str, str, str]:
    return (settings.bootstrap_servers, settings.police_bootstrap_servers,
            settings.bus_bootstrap_servers)  # fmt: skip


def test_the_defaults_are_the_default_local_broker() -> None:
    assert _addresses(Settings()) == ("127.0.0.1:9092", "127.0.0.1:9094", "127.0.0.1:9095")


def test_clients_follow_a_moved_local_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZF801_BROKER_PORT", "29092")
    monkeypatch.setenv("ZF801_BROKER_POLICE_PORT", "29094")
    monkeypatch.setenv("ZF801_BROKER_BUS_PORT", "29095")
    assert _addresses(Settings()) == ("127.0.0.1:29092", "127.0.0.1:29094", "127.0.0.1:29095")
    monkeypatch.setenv("ZF801_BROKER_HOST", "10.0.0.5")
    assert _addresses(Settings()) == ("10.0.0.5:29092", "10.0.0.5:29094", "10.0.0.5:29095")


def test_an_address_given_wins_over_the_local_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZF801_BROKER_PORT", "29092")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092")
    monkeypatch.setenv("ZF801_POLICE_BOOTSTRAP_SERVERS", "kafka-1:9094")
    found = Settings()
    assert found.bootstrap_servers == "kafka-1:9092"
    assert found.police_bootstrap_servers == "kafka-1:9094"
    assert Settings(bootstrap_servers="h:1", broker_port=3).bootstrap_servers == "h:1"


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("not json", "ZF801_QUERY_QUOTAS: not valid JSON for its type [rule json]"),
        ('{"11": {"per_court": -1}}', "ZF801_QUERY_QUOTAS 11.per_court: Input should be greater"),
        ('{"11": {"per_court": true}}', "ZF801_QUERY_QUOTAS 11.per_court: Input should be a valid"),
        ("[1, 2]", "ZF801_QUERY_QUOTAS: Input should be a valid dictionary"),
    ],
)
def test_a_bad_setting_is_named_by_its_variable_and_rule(
    monkeypatch: pytest.MonkeyPatch, value: str, said: str
) -> None:
    """A command shows this line, not pydantic's report (it ended in 'unexpected
    SettingsError')."""
    from pydantic import ValidationError  # noqa: PLC0415
    from pydantic_settings import SettingsError  # noqa: PLC0415

    from schemas.settings import settings_problem  # noqa: PLC0415

    monkeypatch.setenv("ZF801_QUERY_QUOTAS", value)
    with pytest.raises((ValidationError, SettingsError)) as info:
        Settings()
    problem = settings_problem(info.value)
    assert problem is not None and said in problem, problem
    assert settings_problem(ValueError("other")) is None
