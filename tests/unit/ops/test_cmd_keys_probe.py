"""``zf801 keys init`` asks first whether the trust topic takes writes: a missing topic
ends the command with one line before anything is generated (no broker: the brokers'
answer is stood in for)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import ops.cmd_keys
from ops.cli import app
from topics.errors import BrokerUnreachable, TopicMissing

runner = CliRunner()


@pytest.fixture
def keys_path(fresh_settings: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ZF801_KEYS_PATH", str(tmp_path / "keys"))
    monkeypatch.setenv("ZF801_TOPIC_PREFIX", "")
    return tmp_path / "keys"


def _brokers_answer(monkeypatch: pytest.MonkeyPatch, error: Exception | None) -> list[Any]:
    asked: list[Any] = []

    def require_topics(settings: Any, agency: str, topics: Any, operation: str) -> Any:
        asked.append((agency, list(topics), operation, settings.connect_timeout_s))
        if error is not None:
            raise error
        return {topic: (0,) for topic in topics}

    monkeypatch.setattr(ops.cmd_keys, "require_topics", require_topics)
    return asked


def test_missing_trust_topic_fails_in_one_line_and_generates_nothing(
    keys_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _brokers_answer(monkeypatch, TopicMissing("topic zf801.bus.trust: unknown"))
    result = runner.invoke(app, ["keys", "init"], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line == (
        "error: the trust topic zf801.bus.trust does not exist: run `zf801 topics apply` "
        "first (nothing was generated)"
    )
    assert not keys_path.exists()
    [(agency, topics, operation, timeout_s)] = asked
    assert (agency, topics, operation) == ("ZF801-ADMIN", ["zf801.bus.trust"], "write")
    assert timeout_s <= 5


def test_no_publish_asks_nothing(keys_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _brokers_answer(monkeypatch, TopicMissing("never asked"))
    result = runner.invoke(app, ["keys", "init", "--no-publish"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert asked == [] and (keys_path / "agencies.json").is_file()


def test_a_broker_that_does_not_answer_leaves_the_decision_to_publishing(
    keys_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _brokers_answer(monkeypatch, BrokerUnreachable("no answer"))

    def no_producer(*args: Any, **kwargs: Any) -> Any:
        raise BrokerUnreachable("no answer")

    monkeypatch.setattr(ops.cmd_keys, "kafka_producer", no_producer)
    result = runner.invoke(app, ["keys", "init"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "not published" in result.output and (keys_path / "agencies.json").is_file()
