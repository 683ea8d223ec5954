"""A running processor's state, on request: ``kill -USR1 PID`` logs where every asyncio task
waits and what the faust consumer holds (assignment, paused partitions, positions, flow
control, acknowledgements not yet committed). For the operator of a worker that stopped
making progress without an error; the deployment's waits ask for it when they time out."""

from __future__ import annotations

import asyncio
import io
import logging
import signal
from typing import Any

__all__ = ["awaiting", "install_state_dump", "state_dump"]

log = logging.getLogger(__name__)


def install_state_dump(app: Any) -> None:
    """Log :func:`state_dump` of ``app`` on SIGUSR1 (call from within its event loop)."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: log.warning("%s", state_dump(app)))


def state_dump(app: Any) -> str:
    out = io.StringIO()
    out.write("state dump (SIGUSR1)\n")
    try:
        _consumer_state(app, out)
    except Exception as exc:  # a dump shows what it can; faust's internals may differ
        out.write(f"consumer state unavailable: {exc!r}\n")
    _tasks(asyncio.all_tasks(), out)
    # faust runs the Kafka consumer in a thread of its own, with its own event loop
    thread_loop = getattr(
        getattr(getattr(app, "consumer", None), "_thread", None), "thread_loop", None
    )
    if thread_loop is not None:
        out.write("consumer thread:\n")
        try:
            _tasks(asyncio.all_tasks(thread_loop), out)
        except RuntimeError as exc:  # its task set changed while read: say so
            out.write(f"consumer thread tasks unavailable: {exc!r}\n")
    return out.getvalue()


def _tasks(tasks: set[asyncio.Task[Any]], out: io.StringIO) -> None:
    for task in list(tasks):
        out.write(f"--- {task.get_name()}: {' -> '.join(awaiting(task.get_coro()))}\n")


def awaiting(coro: Any) -> list[str]:
    """Where a suspended coroutine waits: each coroutine it awaits, down to the last one
    (``Task.print_stack`` shows only the outermost frame of a suspended task)."""
    chain: list[str] = []
    while coro is not None and len(chain) < 40:
        frame = (
            getattr(coro, "cr_frame", None)
            or getattr(coro, "gi_frame", None)
            or getattr(coro, "ag_frame", None)
        )
        if frame is None:
            chain.append(type(coro).__name__)
            break
        code = frame.f_code
        chain.append(f"{code.co_name} ({code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno})")
        coro = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "gi_yieldfrom", None)
            or getattr(coro, "ag_await", None)
        )
    return chain


def _consumer_state(app: Any, out: io.StringIO) -> None:
    out.write(
        f"rebalancing={app.rebalancing} in_recovery={getattr(app, 'in_recovery', None)} "
        f"flow_control_active={app.flow_control.is_active()}\n"
    )
    consumer = app.consumer
    out.write(
        f"consumer flow_active={consumer.flow_active} "
        f"suspend_flow={consumer.suspend_flow.is_set()}\n"
    )
    out.write(f"assignment: {sorted(map(str, consumer.assignment()))}\n")
    out.write(f"read offsets: { {str(tp): o for tp, o in consumer._read_offset.items()} }\n")
    raw = consumer._thread._ensure_consumer()  # aiokafka's consumer, inside faust's thread
    out.write(f"paused: {sorted(map(str, raw.paused()))}\n")
    state = raw._fetcher._subscriptions.subscription.assignment.state_value
    positions = {str(tp): state(tp).position for tp in raw.assignment()}
    out.write(f"positions: {positions}\n")
    out.write(f"fetched, not yet returned: {sorted(map(str, raw._fetcher._records))}\n")
    unacked = sorted(
        f"{m.tp.topic}[{m.tp.partition}]@{m.offset}" for m in consumer._unacked_messages
    )
    out.write(f"delivered, not acknowledged: {unacked}\n")
    for tp, index in list(consumer._acked_index.items()):
        if index:
            out.write(
                f"pending ack {tp}: index={sorted(index)} list={consumer._acked.get(tp)} "
                f"committed={consumer._committed_offset.get(tp)} "
                f"read={consumer._read_offset.get(tp)} gap={consumer._gap.get(tp)}\n"
            )
