"""The intake's batch: each record verified by its topic's stage, the ledger entries and
replay journal records acknowledged before the batch's offsets are committed, and what
fails verification dead-lettered and never moved. The producer and the consumer are
stand-ins that record the order of events; the broker tests play the same against Kafka
(tests/e2e/test_worker_crash.py, test_order_lifecycle.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any, NamedTuple

from consumers.intake_loop import IntakeCommitter
from consumers.ledger import OrderLedger
from consumers.replay_journal import ReplayJournal
from consumers.runtime import Runtime
from producers.publisher import Publisher
from producers.routes import outgoing_event
from schemas.codec import default_codec
from schemas.settings import Settings
from sign.keystore import KeyStore
from sign.state_seal import StateSealer
from sign.verify_stage import ConsumedRecord, MemoryAuditSink, MemoryDeadLetterSink, VerifyStage
from tests.builders import Records

SEALER = StateSealer(b"s" * 32)
LOCATE = "cn.zf801.orders.v1.LocateDebtorOrder"


class _TP(NamedTuple):
    topic: str
    partition: int


class _Producer:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.sent: list[tuple[str, int | None, bytes | None]] = []

    async def send(self, topic: str, *, key: Any, value: Any, headers: Any, partition: Any) -> Any:
        self.sent.append((topic, partition, key))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(self._acked, future, topic)
        return future

    def _acked(self, future: asyncio.Future[None], topic: str) -> None:
        self.log.append(f"acked {topic}")
        future.set_result(None)


class _Consumer:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.log.append(f"commit {sorted(offsets.values())}")


def _runtime(keystore: KeyStore) -> tuple[Runtime, MemoryDeadLetterSink]:
    dead = MemoryDeadLetterSink()
    settings = Settings(home=keystore.directory.parent)
    runtime = Runtime.from_keystore(
        "BUS-MATCHER", dead, MemoryAuditSink(), settings=settings, keystore=keystore
    )
    return runtime, dead


def _orders(runtime: Runtime, keystore: KeyStore, count: int) -> list[ConsumedRecord]:
    publisher = Publisher(keystore.signer_for("BJ01"), catalog=runtime.catalog,
                          settings=runtime.settings)  # fmt: skip
    records = Records(7)
    out = []
    for offset in range(count):
        order = records.person_order("BJ01", f"（2026）京01执{offset + 1}号", "11010519491231002X")
        topic, signed = publisher.prepare(outgoing_event(LOCATE, order))
        now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        out.append(ConsumedRecord(topic, 0, offset, now_ms, signed.key, signed.value,
                                  tuple(signed.headers)))  # fmt: skip
    return out


def test_a_batch_is_moved_to_the_ledger_and_committed_after_every_send_is_acknowledged(
    keystore: KeyStore,
) -> None:
    runtime, dead = _runtime(keystore)
    stage: VerifyStage = runtime.verify_stage(journal_scope="orders")
    ledger = OrderLedger(SEALER, "zf801-matcher/order_ledger", "ledger", 6, default_codec())
    journal = ReplayJournal("journal", 6, SEALER, "zf801-matcher")
    orders = _orders(runtime, keystore, 3)
    value = orders[1].value or b""
    forged = dataclasses.replace(orders[1], value=value[:-1] + bytes([value[-1] ^ 1]))
    batch = {_TP(orders[0].topic, 0): [orders[0], forged, orders[2]]}
    log: list[str] = []
    producer = _Producer(log)
    committer = IntakeCommitter(
        runtime, {orders[0].topic: stage}, ledger, producer=producer,  # type: ignore[arg-type]
        consumer=_Consumer(log),
        journal=journal.accepted_by,
    )  # fmt: skip
    assert asyncio.run(committer.process(batch)) == 2
    assert [topic for topic, _, _ in producer.sent] == ["journal", "journal", "ledger", "ledger"]
    assert log[-1] == "commit [3]" and all(e.startswith("acked") for e in log[:-1])
    assert committer.committed == {_TP(orders[0].topic, 0): 3} and committer.moved == 2
    (letter,) = dead.rejections
    assert letter.record.offset == 1  # the forged one: dead-lettered, not moved


def test_a_batch_taken_again_after_a_crash_is_moved_again_as_redeliveries(
    keystore: KeyStore,
) -> None:
    """At least once: the same records read again (the worker died before the commit)
    are moved again; the replay guard, restored from the journal, calls them redeliveries
    rather than replays, so nothing is dead-lettered."""
    runtime, dead = _runtime(keystore)
    stage: VerifyStage = runtime.verify_stage(journal_scope="orders")
    ledger = OrderLedger(SEALER, "zf801-matcher/order_ledger", "ledger", 6, default_codec())
    orders = _orders(runtime, keystore, 2)
    batch = {_TP(orders[0].topic, 0): orders}
    log: list[str] = []
    committer = IntakeCommitter(
        runtime, {orders[0].topic: stage}, ledger, producer=_Producer(log),  # type: ignore[arg-type]
        consumer=_Consumer(log), journal=lambda s: [],
    )  # fmt: skip
    assert asyncio.run(committer.process(batch)) == 2
    assert asyncio.run(committer.process(batch)) == 2
    assert dead.rejections == [] and stage.redeliveries == 2
