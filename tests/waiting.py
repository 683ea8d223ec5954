"""Polling for a condition the broker reaches in its own time, for the broker tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kafka.errors import KafkaError

from schemas.settings import Settings
from topics.clients import kafka_admin

__all__ = ["wait_for", "wait_group_members"]


def wait_for(predicate: Callable[[], Any], timeout_s: float = 30.0, interval_s: float = 0.5) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), or fail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError("condition not met in time")


def wait_group_members(settings: Settings, group: str, count: int, timeout_s: float) -> None:
    """Until consumer group ``group`` has ``count`` members and, with any, is Stable (a
    rebalance done), or fail. A broker still without a coordinator is waited for."""
    admin = kafka_admin(settings)
    deadline = time.monotonic() + timeout_s
    found: dict[str, Any] = {}
    try:
        while time.monotonic() < deadline:
            try:
                found = admin.describe_groups([group]).get(group, {})
            except KafkaError as exc:  # e.g. no coordinator yet on a fresh broker
                if not exc.retriable:
                    raise
                found = {}
            members = len(found.get("members", ()))
            if members == count and (count == 0 or found.get("group_state") == "Stable"):
                return
            time.sleep(0.2)
    finally:
        admin.close()
    raise AssertionError(
        f"group {group} did not settle with {count} member(s) within {timeout_s:.0f} s: "
        f"{found.get('group_state', 'unknown')}, {len(found.get('members', ()))} member(s)"
    )
