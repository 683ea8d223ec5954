"""The worker's SIGUSR1 state dump (pure formatting, against stand-ins for faust)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from consumers.diagnostics import state_dump


def _app() -> Any:
    tp = ("zf801.orders.locate-debtor", 2)
    position = SimpleNamespace(position=10)
    raw = SimpleNamespace(
        paused=set,
        assignment=lambda: {tp},
        _fetcher=SimpleNamespace(_subscriptions=SimpleNamespace(subscription=SimpleNamespace(
            assignment=SimpleNamespace(state_value=lambda _: position))),
        ),
    )  # fmt: skip
    consumer = SimpleNamespace(
        assignment=lambda: {tp},
        _thread=SimpleNamespace(_ensure_consumer=lambda: raw),
        _acked_index={tp: {9}}, _acked={tp: [9]}, _committed_offset={tp: 7},
        _read_offset={tp: 7}, _gap={},
    )  # fmt: skip
    return SimpleNamespace(
        rebalancing=False, in_recovery=False,
        flow_control=SimpleNamespace(is_active=lambda: True), consumer=consumer,
    )  # fmt: skip


def test_the_dump_names_positions_pending_acks_and_every_task() -> None:
    async def dump() -> str:
        return state_dump(_app())

    text = asyncio.run(dump())
    assert "rebalancing=False in_recovery=False flow_control_active=True" in text
    assert "positions: {\"('zf801.orders.locate-debtor', 2)\": 10}" in text
    assert "index=[9] list=[9] committed=7 read=7" in text
    assert "--- Task-" in text  # the task that asked, with its stack


def test_a_consumer_it_cannot_read_is_said_so_not_raised() -> None:
    async def dump() -> str:
        return state_dump(SimpleNamespace())

    assert "consumer state unavailable: AttributeError" in asyncio.run(dump())
