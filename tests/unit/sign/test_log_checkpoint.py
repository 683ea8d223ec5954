"""Log checkpoints (sign.checkpoint): the record digest, the partition chain, and the check
of checkpoints against the records a replay reads."""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from sign.checkpoint import (
    GENESIS,
    Checkpoint,
    CheckpointCheck,
    PartitionChain,
    chain_step,
    record_digest,
)

TOPIC = "zf801.bus.audit"


@dataclass(frozen=True)
class Message:
    offset: int
    value: bytes | None
    key: bytes | None = b"k"
    topic: str = TOPIC
    partition: int = 0
    timestamp: int = 1_780_000_000_000
    headers: tuple[tuple[str, bytes], ...] = (("ce_id", b"1"),)


def _log(count: int, first: int = 0) -> list[Message]:
    return [Message(first + i, f"record {first + i}".encode()) for i in range(count)]


_places = iter(range(10_000))


def _checkpoint(
    records: list[Message], start: int, end: int, previous: bytes = GENESIS
) -> Checkpoint:
    chain = PartitionChain(start, previous)
    for message in records:
        if start <= message.offset < end:
            chain.add(message)
    value = chain.checkpoint_value(TOPIC, 0, end)
    return Checkpoint.from_record(value, ("zf801.bus.checkpoints", 0, next(_places)))


def _check(
    checkpoints: list[Checkpoint],
    read: list[Message],
    first: int,
    stop: int,
    stalled_at: int | None = None,
) -> CheckpointCheck:
    check = CheckpointCheck()
    for checkpoint in checkpoints:
        check.add_checkpoint(checkpoint)
    check.expect(TOPIC, 0, first, stop)
    for message in read:
        check.feed(message)
    check.finish({} if stalled_at is None else {(TOPIC, 0): stalled_at})
    return check


def test_the_digest_is_the_documented_recipe() -> None:
    expected = hashlib.sha256(
        b"zf801-log-record/1\x00"
        + struct.pack(">qq", 7, 1000)
        + struct.pack(">I", 1) + b"k"
        + struct.pack(">I", 0xFFFFFFFF)
        + struct.pack(">I", 1)
        + struct.pack(">I", 5) + b"ce_id" + struct.pack(">I", 1) + b"x"
    ).digest()  # fmt: skip
    assert record_digest(7, 1000, b"k", None, [("ce_id", b"x")]) == expected
    assert chain_step(GENESIS, expected) == hashlib.sha256(b"\x01" + GENESIS + expected).digest()


def test_the_digest_tells_every_part_apart() -> None:
    base = record_digest(1, 2, b"k", b"v", [("a", b"1"), ("b", b"2")])
    variants = [
        record_digest(2, 2, b"k", b"v", [("a", b"1"), ("b", b"2")]),
        record_digest(1, 3, b"k", b"v", [("a", b"1"), ("b", b"2")]),
        record_digest(1, 2, None, b"v", [("a", b"1"), ("b", b"2")]),
        record_digest(1, 2, b"", b"v", [("a", b"1"), ("b", b"2")]),
        record_digest(1, 2, b"k", b"v", [("b", b"2"), ("a", b"1")]),
        record_digest(1, 2, b"kv", b"", [("a", b"1"), ("b", b"2")]),
        record_digest(1, 2, b"k", b"v", [("a", b"1")]),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_checkpoints_of_an_untouched_log_match() -> None:
    log = _log(30)
    first = _checkpoint(log, 0, 10)
    second = _checkpoint(log, 10, 30, first.head)
    check = _check([first, second], log, 0, 30)
    assert check.findings == []
    assert check.summary() == {"checkpoints": 2, "matched": 2, "failed": 0, "outside_range": 0}


@pytest.mark.parametrize(
    "change",
    ["tampered value", "missing record", "reordered", "header added", "timestamp changed"],
)
def test_a_log_that_changed_after_its_checkpoint_is_named(change: str) -> None:
    log = _log(20)
    checkpoint = _checkpoint(log, 0, 20)
    read = list(log)
    if change == "tampered value":
        read[5] = replace(read[5], value=b"forged")
    elif change == "missing record":
        del read[5]
    elif change == "reordered":
        read[5], read[6] = replace(read[6], offset=5), replace(read[5], offset=6)
    elif change == "header added":
        read[7] = replace(read[7], headers=(*read[7].headers, ("ce_extra", b"1")))
    else:
        read[3] = replace(read[3], timestamp=read[3].timestamp + 1)
    check = _check([checkpoint], read, 0, 20)
    assert [f.reason for f in check.findings] == ["CHECKPOINT_MISMATCH"]
    assert check.findings[0].place == checkpoint.place
    assert "offsets 0-19" in check.findings[0].detail


def test_offsets_without_records_are_no_records() -> None:
    # transaction markers take offsets: the records of a range need not be contiguous
    log = [Message(offset, b"v%d" % offset) for offset in (0, 1, 3, 4, 7)]
    checkpoint = _checkpoint(log, 0, 9)
    assert checkpoint.record_count == 5
    assert _check([checkpoint], log, 0, 9).matched == 1


def test_a_checkpoint_of_a_range_that_held_no_record_matches_when_read() -> None:
    log = _log(5)
    empty = Checkpoint.from_record(
        PartitionChain(5, GENESIS).checkpoint_value(TOPIC, 0, 8), ("zf801.bus.checkpoints", 0, 99)
    )
    assert _check([empty], log, 0, 8).matched == 1


def test_checkpoints_reaching_outside_what_was_read_are_not_judged() -> None:
    log = _log(30)
    first = _checkpoint(log, 0, 10)
    second = _checkpoint(log, 10, 20, first.head)
    third = _checkpoint(log, 20, 30, second.head)
    check = _check([first, second, third], log[12:25], 12, 25)
    assert check.findings == []
    assert check.summary()["outside_range"] == 3
    check = _check([first, second, third], log[10:30], 10, 30)
    assert (check.matched, check.outside) == (2, 1)


def test_a_stalled_partition_leaves_the_checkpoints_beyond_it_unjudged() -> None:
    log = _log(20)
    first = _checkpoint(log, 0, 10)
    second = _checkpoint(log, 10, 20, first.head)
    check = _check([first, second], log[:14], 0, 20, stalled_at=14)
    assert check.findings == []
    assert (check.matched, check.outside) == (1, 1)


def test_a_checkpoint_that_does_not_continue_the_one_before_is_named() -> None:
    log = _log(30)
    first = _checkpoint(log, 0, 10)
    skipped = _checkpoint(log, 12, 30, first.head)  # offsets 10-11 never checkpointed
    check = _check([first, skipped], log, 0, 30)
    assert [(f.reason, f.place) for f in check.findings] == [("CHECKPOINT_UNLINKED", skipped.place)]
    assert "its start is not that one's end" in check.findings[0].detail
    other_head = _checkpoint(log, 10, 30)  # chained from genesis, not from the first's head
    check = _check([first, other_head], log, 0, 30)
    assert [f.reason for f in check.findings] == ["CHECKPOINT_UNLINKED"]
    assert "previous head" in check.findings[0].detail


def test_two_heads_for_one_range_are_a_fork_and_a_repeat_is_not() -> None:
    log = _log(10)
    honest = _checkpoint(log, 0, 10)
    repeat = replace(honest, place=("zf801.bus.checkpoints", 0, 500))
    forged = replace(honest, head=bytes(32), place=("zf801.bus.checkpoints", 0, 501))
    assert _check([honest, repeat], log, 0, 10).findings == []
    check = _check([honest, repeat, forged], log, 0, 10)
    assert [(f.reason, f.place) for f in check.findings] == [("CHECKPOINT_FORK", forged.place)]
    assert check.matched == 1


def test_the_chain_continues_from_a_checkpoint() -> None:
    log = _log(6)
    chain = PartitionChain(0)
    for message in log[:3]:
        chain.add(message)
    after = chain.next(3)
    assert (after.start, after.previous_head, after.head, after.records) == (
        3,
        chain.head,
        chain.head,
        0,
    )
    whole = PartitionChain(0)
    for message in log:
        whole.add(message)
    for message in log[3:]:
        after.add(message)
    assert after.head == whole.head


def test_the_third_party_recipe_computes_the_same_chain() -> None:
    """The Python block of sign/CHECKPOINTS.md, run as written, against this module."""
    text = (Path(__file__).resolve().parents[3] / "sign" / "CHECKPOINTS.md").read_text("utf-8")
    block = re.search(r"```python\n(.*?)```", text, re.S)
    assert block is not None
    log = _log(7)
    checkpoint = _checkpoint(log, 0, 5)
    value = PartitionChain(0).checkpoint_value(TOPIC, 0, 5) | {
        "head": checkpoint.head,
        "record_count": checkpoint.record_count,
    }
    scope = {"checkpoint": value, "records_from": lambda start: log[start:], "start_offset": 0}
    exec(block.group(1), scope)
    assert scope["count"] == 5 and scope["head"] == checkpoint.head
    tampered = [*log[:2], replace(log[2], value=b"x"), *log[3:]]
    scope |= {"records_from": lambda start: tampered[start:]}
    with pytest.raises(AssertionError):
        exec(block.group(1), scope)
