"""A running processor's state, on request: ``kill -USR1 PID`` logs where every asyncio task
waits and what the faust consumer holds (assignment, paused partitions, positions, flow
control). For the operator of a worker that stopped making progress without an error."""

from __future__ import annotations

import asyncio
import io
import logging
import signal
from typing import Any

__all__ = ["install_state_dump", "state_dump"]

log = logging.getLogger(__name__)


def install_state_dump(app: Any) -> None:
    """Log :func:`state_dump` of ``app`` on SIGUSR1 (call from within its event loop)."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: log.warning("%s", state_dump(app)))


def state_dump(app: Any) -> str:
    out = io.StringIO()
    out.write("state dump (SIGUSR1)\n")
    out.write(
        f"rebalancing={getattr(app, 'rebalancing', None)} "
        f"in_recovery={getattr(app, 'in_recovery', None)} "
        f"flow_control_active={_safe(lambda: app.flow_control.is_active())}\n"
    )
    consumer = _safe(lambda: app.consumer)
    if consumer is not None and not isinstance(consumer, str):
        out.write(f"assignment: {_safe(lambda: sorted(map(str, consumer.assignment())))}\n")
        thread = _safe(lambda: consumer._thread)
        raw = _safe(lambda: thread._ensure_consumer())
        if raw is not None and not isinstance(raw, str):
            out.write(f"paused: {_safe(lambda: sorted(map(str, raw.paused())))}\n")
            positions = _safe(
                lambda: {
                    str(tp): raw._fetcher._subscriptions.subscription.assignment.state_value(
                        tp
                    ).position
                    for tp in raw.assignment()
                }  # fmt: skip
            )
            out.write(f"positions: {positions}\n")
        out.write(
            f"active partitions: {_safe(lambda: sorted(map(str, consumer._active_partitions or ())))}\n"
        )
        out.write(f"acked: {_safe(lambda: dict(consumer._acked_index))}\n")
        for tp, index in _safe(lambda: list(consumer._acked_index.items())) or ():
            if index:
                out.write(
                    f"pending ack {tp}: index={sorted(index)} list={consumer._acked.get(tp)} "
                    f"committed={consumer._committed_offset.get(tp)} "
                    f"read={consumer._read_offset.get(tp)} gap={consumer._gap.get(tp)}\n"
                )
    for task in asyncio.all_tasks():
        stack = io.StringIO()
        task.print_stack(limit=8, file=stack)
        out.write(f"--- {task.get_name()} {stack.getvalue()}")
    return out.getvalue()


def _safe(get: Any) -> Any:
    try:
        return get()
    except Exception as exc:  # a dump shows what it can
        return f"<{type(exc).__name__}: {exc}>"
