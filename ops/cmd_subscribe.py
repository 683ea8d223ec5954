"""``zf801 subscribe debtors``: a list subscriber keeps its mirror of the dishonest-debtor
list, confirming each removal with a signed receipt."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from kafka import KafkaConsumer, TopicPartition
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from consumers.debtor_mirror import DebtorMirror
from consumers.debtor_subscriber import DebtorSubscriber, list_subscriber
from consumers.runtime import Runtime
from ops.errors import operator_message
from schemas.errors import BusError
from schemas.settings import MAX_IDLE_S, Settings, get_settings

__all__ = ["default_mirror_path", "subscribe_app"]

subscribe_app = typer.Typer(help="Subscribe to what the courts share.", no_args_is_help=True)
_console = Console(stderr=True)


def default_mirror_path(settings: Settings, subscriber: str) -> Path:
    """Where a subscriber's mirror lives: ``<home>/subscriber/<code>.sqlite``."""
    return settings.home / "subscriber" / f"{subscriber}.sqlite"


@subscribe_app.command("debtors")
def debtors(
    subscriber: Annotated[str, typer.Option("--as", help="The list subscriber (SUB-<name>).")],
    mirror_path: Annotated[
        Path | None,
        typer.Option(
            "--mirror", help="The SQLite mirror (default <home>/subscriber/<code>.sqlite)."
        ),
    ] = None,
    until_idle: Annotated[
        float | None,
        typer.Option(
            "--until-idle",
            help="Stop after this many idle seconds (default: follow).",
            min=0.1,
            max=MAX_IDLE_S,
        ),
    ] = None,
) -> None:
    """Keep a local mirror of the dishonest-debtor list: a first snapshot of the whole list
    (with a progress bar), then live listings and removals. Every record is verified and
    checked (identifiers, signing court, key); what fails is dead-lettered and audited and
    never reaches the mirror. Each removal applied is confirmed to its court with a signed
    receipt. A missing mirror, or one that last caught up longer ago than the list keeps
    tombstones, is rebuilt from the start of the topic, and the command says so.

    From Python: ``DebtorMirror(path).is_listed("11010519491231002X")``."""
    stop_requested = False

    def _stop(*_: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    try:  # before anything is connected or created: a mirror only a subscriber keeps
        list_subscriber(subscriber)
    except BusError as exc:
        raise typer.BadParameter(operator_message(exc), param_hint="--as") from None
    signal.signal(signal.SIGTERM, _stop)
    try:
        runtime = Runtime.connect(subscriber)
        path = mirror_path or default_mirror_path(runtime.settings or get_settings(), subscriber)
        with DebtorMirror(path, create=True) as mirror:
            follower = DebtorSubscriber(runtime, mirror)
            state = follower.open_mirror()
            _console.print(("[yellow]" if state.rebuilt else "") + state.reason)
            consumer = follower.consumer()
            remaining = _remaining(consumer)
            with _snapshot_progress(remaining) as on_batch:
                follower.run(lambda: stop_requested, until_idle_s=until_idle,
                             on_batch=on_batch, consumer=consumer)  # fmt: skip
            counts = follower.counts
            _console.print(
                f"{subscriber}: {mirror.count()} listed in {path}; read {counts['read']}, "
                f"listings {counts['listed']}, removals {counts['removed']}, receipts sent "
                f"{counts['receipts']}, refused {counts['refused']}"
            )
            follower.close()
        runtime.close()
    except BusError as exc:
        typer.secho(f"error: {operator_message(exc)}", fg="red", err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _remaining(consumer: KafkaConsumer) -> int:
    """How many records lie between the reader's positions and the ends: the snapshot."""
    assigned: Sequence[TopicPartition] = list(consumer.assignment())
    ends = consumer.end_offsets(assigned)
    return sum(max(0, ends[tp] - consumer.position(tp)) for tp in assigned)


class _snapshot_progress:  # noqa: N801 - used as a context manager, like a function
    """A progress bar over the first ``total`` records; then the mirror is live."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._done = 0
        self._progress = Progress(
            TextColumn("snapshot"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=_console, transient=False,
        )  # fmt: skip
        self._task = self._progress.add_task("snapshot", total=max(total, 1))

    def __enter__(self) -> Any:
        if self._total:
            self._progress.start()
        else:
            _console.print("snapshot: the mirror is current; following live changes")
        return self.advance

    def advance(self, messages: Sequence[Any]) -> None:
        if self._done >= self._total:
            return
        self._done += len(messages)
        self._progress.update(self._task, completed=min(self._done, self._total))
        if self._done >= self._total:
            self._progress.stop()
            _console.print("snapshot done; following live listings and removals")

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()
