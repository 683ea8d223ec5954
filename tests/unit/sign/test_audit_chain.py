"""Audit chain positions: one slot per live process, continued across runs, no fork."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from schemas.codec import decode
from sign.audit_chain import AuditChainError, ChainSlot
from sign.kafka_sinks import ClientInfo, KafkaAuditSink

AGENCY = "BUS-matcher"
CLIENT = ClientInfo("h", "127.0.0.1", "a")


class _Done:
    def get(self, timeout: float | None = None) -> None:
        return None


class _Failing:
    def get(self, timeout: float | None = None) -> None:
        raise TimeoutError("no acknowledgement")


class _Producer:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[bytes] = []
        self.fail = fail

    def send(self, topic: str, *, key: bytes, value: bytes, headers: Any) -> Any:
        self.sent.append(value)
        return _Failing() if self.fail else _Done()


def _record(sink: KafkaAuditSink, n: int) -> None:
    sink.record(user="clerk", role="operator", agency_code=AGENCY, operation="order.issue",
                target=f"order/{n}", result="SUCCESS", detail=None)  # fmt: skip


def _positions(values: list[bytes]) -> list[tuple[int, bytes]]:
    return [(record["sequence"], record["previous_hash"]) for _, record in map(decode, values)]


def test_two_live_processes_get_two_slots_and_a_released_slot_is_taken_again(
    tmp_path: Path,
) -> None:
    first = ChainSlot.claim(tmp_path, AGENCY)
    second = ChainSlot.claim(tmp_path, AGENCY)
    assert (first.slot, second.slot) == (0, 1)
    assert ChainSlot.claim(tmp_path, "BJ01").slot == 0  # slots are per agency
    first.release()
    assert ChainSlot.claim(tmp_path, AGENCY).slot == 0


def test_a_chain_continues_across_runs_linked_by_hash(tmp_path: Path, issued: Any) -> None:
    producer = _Producer()
    signer = issued[AGENCY].signer
    run = ChainSlot.claim(tmp_path, AGENCY)
    sink = KafkaAuditSink(producer, "audit", signer, client=CLIENT, chain=run)
    _record(sink, 0)
    _record(sink, 1)
    run.release()
    again = KafkaAuditSink(producer, "audit", signer, client=CLIENT,
                           chain=ChainSlot.claim(tmp_path, AGENCY))  # fmt: skip
    _record(again, 2)
    first, second, third = producer.sent
    assert _positions(producer.sent) == [
        (0, bytes(32)), (1, hashlib.sha256(first).digest()), (2, hashlib.sha256(second).digest())
    ]  # fmt: skip
    assert again.sequence == 3 and again.previous_hash == hashlib.sha256(third).digest()


def test_a_send_that_fails_leaves_a_gap_not_a_fork(tmp_path: Path, issued: Any) -> None:
    producer = _Producer(fail=True)
    slot = ChainSlot.claim(tmp_path, AGENCY)
    sink = KafkaAuditSink(producer, "audit", issued[AGENCY].signer, client=CLIENT, chain=slot)
    with pytest.raises(TimeoutError):
        _record(sink, 0)  # perhaps written, perhaps not: the next record must not reuse its place
    producer.fail = False
    _record(sink, 1)
    assert [sequence for sequence, _ in _positions(producer.sent)] == [0, 1]
    assert _positions(producer.sent)[1][1] == hashlib.sha256(producer.sent[0]).digest()
    assert slot.load() == (2, hashlib.sha256(producer.sent[1]).digest())


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"sequence": 3}',
        '{"sequence": -1, "previous_hash": ""}',
        '{"sequence": 1, "previous_hash": "abcd"}',
    ],
)
def test_an_unreadable_position_is_refused_naming_the_file(tmp_path: Path, content: str) -> None:
    slot = ChainSlot.claim(tmp_path, AGENCY)
    slot.path.write_text(content, encoding="utf-8")
    with pytest.raises(AuditChainError, match=r"audit chain position .*BUS-matcher\.0\.json"):
        slot.load()
