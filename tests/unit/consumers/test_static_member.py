"""The worker's static group membership id (its tables on disk)."""

from __future__ import annotations

import re

import pytest

from consumers.worker import static_member_id

# What Kafka accepts as a group.instance.id (the rule of topic names).
_LEGAL = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


def test_the_id_names_the_application_the_host_and_the_worker() -> None:
    assert (
        static_member_id("zf801-matcher", "2", "bus-01.example") == "zf801-matcher-bus-01.example-2"
    )


def test_a_restart_on_the_same_host_keeps_the_id_and_another_worker_gets_its_own() -> None:
    first = static_member_id("zf801-matcher", "0", "bus-01")
    assert static_member_id("zf801-matcher", "0", "bus-01") == first
    assert static_member_id("zf801-matcher", "1", "bus-01") != first
    assert static_member_id("zf801-matcher", "0", "bus-02") != first


@pytest.mark.parametrize(
    "host", ["", "bus 01", "bus/01:9092", "主机-01", "x" * 300, "a\x00b", "../../etc"]
)
def test_a_hostile_or_odd_host_name_still_gives_a_legal_id(host: str) -> None:
    member = static_member_id("zf801-matcher", "0", host)
    assert _LEGAL.fullmatch(member), member
    assert member.startswith("zf801-matcher-") and member.endswith("-0")
