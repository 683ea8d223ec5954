"""The worker's SIGUSR1 state dump (pure formatting, against stand-ins for faust)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from consumers.diagnostics import awaiting, state_dump


@dataclass(frozen=True)
class _Message:
    tp: Any
    offset: int


def _app() -> Any:
    tp = ("zf801.orders.locate-debtor", 2)
    position = SimpleNamespace(position=10)
    raw = SimpleNamespace(
        paused=set,
        assignment=lambda: {tp},
        _fetcher=SimpleNamespace(_subscriptions=SimpleNamespace(subscription=SimpleNamespace(
            assignment=SimpleNamespace(state_value=lambda _: position))),
            _records={tp: object()},
        ),
    )  # fmt: skip
    consumer = SimpleNamespace(
        assignment=lambda: {tp},
        _thread=SimpleNamespace(_ensure_consumer=lambda: raw),
        _acked_index={tp: {9}}, _acked={tp: [9]}, _committed_offset={tp: 7},
        _read_offset={tp: 7}, _gap={}, flow_active=True,
        suspend_flow=SimpleNamespace(is_set=lambda: False),
        _unacked_messages=[_Message(SimpleNamespace(topic=tp[0], partition=2), 10)],
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
    assert "consumer flow_active=True suspend_flow=False" in text
    assert "delivered, not acknowledged: ['zf801.orders.locate-debtor[2]@10']" in text
    assert "fetched, not yet returned: [\"('zf801.orders.locate-debtor', 2)\"]" in text
    assert "--- Task-" in text and "dump (test_diagnostics.py:" in text  # the asking task


def test_a_consumer_it_cannot_read_is_said_so_not_raised() -> None:
    async def dump() -> str:
        return state_dump(SimpleNamespace())

    assert "consumer state unavailable: AttributeError" in asyncio.run(dump())


def test_a_suspended_task_is_followed_down_to_what_it_awaits() -> None:
    async def inner(gate: asyncio.Event) -> None:
        await gate.wait()

    async def outer(gate: asyncio.Event) -> None:
        await inner(gate)

    async def look() -> list[str]:
        gate = asyncio.Event()
        task = asyncio.create_task(outer(gate))
        await asyncio.sleep(0)
        chain = awaiting(task.get_coro())
        gate.set()
        await task
        return chain

    chain = asyncio.run(look())
    assert [step.split(" ")[0] for step in chain[:3]] == ["outer", "inner", "wait"]
