"""An in-memory producer behind the real Publisher, and the input documents the tests of
``zf801 publish`` feed it (no broker)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any
from unittest import mock

from kafka.errors import KafkaTimeoutError
from typer.testing import CliRunner

from ops.cli import app
from ops.cmd_publish import PublishHooks
from producers.publisher import Publisher
from schemas.registry import EXAMPLE_DIR
from schemas.settings import Settings
from sign.events import EventSigner
from sign.verify_stage import AuditSink

EXAMPLES = EXAMPLE_DIR
runner = CliRunner()
Invoke = Callable[..., Any]


@dataclass(frozen=True)
class Metadata:
    topic: str
    partition: int
    offset: int


class Future:
    """A send's outcome: acknowledged with its metadata, or failed."""

    def __init__(self, metadata: Metadata | None) -> None:
        self.value = metadata
        self.is_done = True

    def succeeded(self) -> bool:
        return self.value is not None

    def get(self, timeout: float | None = None) -> Metadata:
        if self.value is None:
            raise KafkaTimeoutError("Timeout after waiting for 30 secs")
        return self.value


@dataclass
class MemoryProducer:
    """Records what would have been sent; offsets count up per topic. With ``fail_after``,
    the broker acknowledges only that many event records (audit records always)."""

    sent: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]] = field(
        default_factory=list
    )
    fail_after: int | None = None
    refused: list[bytes] = field(default_factory=list)

    def send(
        self, topic: str, *, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Future:
        offset = sum(1 for sent in self.sent if sent[0] == topic)
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            self.refused.append(value)
            return Future(None)
        self.sent.append((topic, key, value, headers))
        return Future(Metadata(topic, 0, offset))

    def flush(self, timeout: float | None = None) -> None:
        return None

    def close(self, timeout: float | None = None) -> None:
        return None


def make_invoke(settings: Settings, producer: MemoryProducer, audit: AuditSink) -> Invoke:
    """Runs ``zf801 publish ARGS`` with ``text`` (or a stream) as stdin, behind ``producer``
    and ``audit``."""

    def make(signer: EventSigner, s: Settings, timeout_s: float) -> Publisher:
        return Publisher(signer, settings=s, producer=producer)

    hooks = PublishHooks(settings=lambda: settings, publisher=make, audit=lambda *_: audit)

    def run(args: list[str], text: str | bytes | IO[bytes] = "") -> Any:
        if isinstance(text, (str, bytes)):
            return runner.invoke(app, ["publish", *args], input=text, obj=hooks)
        with mock.patch("ops.cmd_publish.click.get_binary_stream", return_value=text):
            return runner.invoke(app, ["publish", *args], obj=hooks)

    return run


def example_event(family: str, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES / family / f"{name}.json").read_text("utf-8"))
    return document


def json_lines(*documents: object) -> str:
    return "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents)


def exit_order(case_seq: int = 123) -> dict[str, Any]:
    order = example_event("orders", "ExitRestrictionOrder")
    order["order_id"] = f"93f2b536-8ee6-577b-9484-4c722ead{case_seq:04d}"
    return order
