"""``zf801 topics apply`` and ``topics list`` honour ZF801_TOPIC_PREFIX like every other
command (issue 10): the plan is made for the prefixed catalog."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from typer.testing import CliRunner

from ops import cmd_topics
from ops.cli import app
from schemas.settings import get_settings
from topics.catalog import bus_catalog
from topics.plan import Plan

runner = CliRunner()
PREFIX = "it10-"


class _EmptyCluster:
    """One broker, no topics: every catalog topic is to be created."""

    def describe_cluster(self) -> dict[str, Any]:
        return {"brokers": [{"node_id": 1}]}

    def list_topics(self) -> list[str]:
        return ["zf801.orders.exit-restriction"]  # an unprefixed topic of another run

    def describe_topics(self, topics: Any = None) -> list[Any]:
        return []

    def describe_configs(self, config_resources: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return []


@pytest.fixture
def plans(fresh_settings: None, monkeypatch: pytest.MonkeyPatch) -> list[Plan]:
    @contextmanager
    def admin_client(bootstrap: str | None = None, *args: Any, **kwargs: Any) -> Iterator[Any]:
        yield _EmptyCluster()

    seen: list[Plan] = []
    monkeypatch.setattr(cmd_topics, "admin_client", admin_client)
    monkeypatch.setattr(cmd_topics, "_print_plan", seen.append)
    monkeypatch.setenv("ZF801_TOPIC_PREFIX", PREFIX)
    return seen


def test_topics_apply_plans_the_prefixed_catalog(plans: list[Plan]) -> None:
    result = runner.invoke(app, ["topics", "apply", "--dry-run"])
    assert result.exit_code == 0, result.output
    (plan,) = plans
    created = {t.name for t in plan.creations}
    assert created == {t.name for t in plan.desired}
    assert created and all(name.startswith(PREFIX) for name in created)
    assert "zf801.orders.exit-restriction" not in created
    assert f"{PREFIX}zf801.orders.exit-restriction" in created
    assert bus_catalog(get_settings()).topic_name("audit") in created
    assert "Nothing to change" not in result.stdout


def test_an_explicit_name_prefix_still_wins(plans: list[Plan]) -> None:
    result = runner.invoke(app, ["topics", "apply", "--dry-run", "--name-prefix", "other-"])
    assert result.exit_code == 0, result.output
    (plan,) = plans
    assert plan.creations and all(t.name.startswith("other-") for t in plan.creations)


def test_topics_list_shows_the_prefixed_catalog(plans: list[Plan]) -> None:
    result = runner.invoke(app, ["topics", "list"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert f"{PREFIX}zf801.orders.exit-restriction " in result.stdout


@pytest.mark.parametrize(
    ("option", "code"), [("--court", "NOPE"), ("--province", "99"), ("--unit", "999999999999")]
)
def test_a_code_not_in_the_agency_list_makes_no_topic(option: str, code: str) -> None:
    """A topic for a code the list does not know would be kept for ever, readable by no
    agency of the list: refused before the brokers are asked."""
    result = runner.invoke(app, ["topics", "apply", "--dry-run", option, code])
    said = " ".join(result.output.split())
    assert result.exit_code == 2, said
    assert f"'{code}': not in the agency list" in said and option in said
