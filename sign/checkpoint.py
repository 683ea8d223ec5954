"""Log checkpoints: a hash chain over each topic partition's records, so a third party can
check from Kafka alone that the records it reads are the records the bus saw.

Each record read (committed records only, in offset order) is digested with
:func:`record_digest` (offset, timestamp, key, value and headers, length-prefixed), and
each partition's chain is ``head = SHA-256(0x01 || head || digest)`` from 32 zero bytes
(:data:`GENESIS`). A checkpoint (``cn.zf801.bus.v1.LogCheckpoint``, signed by the bus)
names a partition's offsets ``[start_offset, end_offset)``, the records it counted there,
the head it started from (the previous checkpoint's) and the head it reached. Offsets
inside a range that hold no record (transaction markers, aborted records) are not
records. ``sign/CHECKPOINTS.md`` gives the recipe with nothing but SHA-256.

:class:`CheckpointCheck` compares checkpoints with the records a replay reads: a head or
count that differs, a checkpoint that does not continue the one before it, or two that
claim one range with different heads, are each a finding at the checkpoint's own place.
Pure: no Kafka here.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "CHECKPOINT_SCHEMA",
    "GENESIS",
    "Checkpoint",
    "CheckpointCheck",
    "CheckpointFinding",
    "PartitionChain",
    "chain_step",
    "message_digest",
    "record_digest",
]

CHECKPOINT_SCHEMA: Final = "cn.zf801.bus.v1.LogCheckpoint"
GENESIS: Final = bytes(32)
"""The head a partition's chain starts from."""

_DOMAIN = b"zf801-log-record/1\x00"
_ABSENT = 0xFFFFFFFF
MISMATCH: Final = "CHECKPOINT_MISMATCH"
BROKEN_LINK: Final = "CHECKPOINT_UNLINKED"
FORK: Final = "CHECKPOINT_FORK"


def _field(data: bytes | None) -> bytes:
    if data is None:
        return struct.pack(">I", _ABSENT)
    return struct.pack(">I", len(data)) + data


def record_digest(
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]],
) -> bytes:
    """SHA-256 of one record as read: ``"zf801-log-record/1" 0x00``, the offset and the
    timestamp (8 bytes each, big-endian, signed), the key and the value (each a 4-byte
    big-endian length, 0xFFFFFFFF for none, then the bytes), the number of headers
    (4 bytes) and each header's UTF-8 name and value the same way, in record order."""
    digest = hashlib.sha256(_DOMAIN)
    digest.update(struct.pack(">qq", offset, timestamp_ms))
    digest.update(_field(key))
    digest.update(_field(value))
    digest.update(struct.pack(">I", len(headers)))
    for name, data in headers:
        digest.update(_field(name.encode("utf-8")))
        digest.update(_field(data))
    return digest.digest()


def chain_step(head: bytes, digest: bytes) -> bytes:
    """The head after one more record: ``SHA-256(0x01 || head || digest)``."""
    return hashlib.sha256(b"\x01" + head + digest).digest()


def message_digest(message: Any) -> bytes:
    """:func:`record_digest` of a consumed Kafka record (kafka-python's or aiokafka's)."""
    return record_digest(
        message.offset, message.timestamp, message.key, message.value, message.headers or ()
    )


@dataclass(slots=True)
class PartitionChain:
    """One partition's chain since its last checkpoint: the records read from offset
    ``start`` on, chained from ``previous_head`` (the last checkpoint's head)."""

    start: int
    previous_head: bytes = GENESIS
    head: bytes = GENESIS
    records: int = 0

    def __post_init__(self) -> None:
        self.head = self.previous_head

    def add(self, message: Any) -> None:
        self.head = chain_step(self.head, message_digest(message))
        self.records += 1

    def checkpoint_value(self, topic: str, partition: int, end: int) -> dict[str, Any]:
        """The ``LogCheckpoint`` fields of the chain over ``[start, end)`` (but the id and
        the time)."""
        return {
            "topic": topic, "partition": partition, "start_offset": self.start,
            "end_offset": end, "record_count": self.records,
            "previous_head": self.previous_head, "head": self.head,
        }  # fmt: skip

    def next(self, end: int) -> PartitionChain:
        """The chain after a checkpoint at ``end``: from there, from this head."""
        return PartitionChain(end, self.head)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A verified ``LogCheckpoint`` and where it was read."""

    topic: str
    partition: int
    start_offset: int
    end_offset: int
    record_count: int
    previous_head: bytes
    head: bytes
    place: tuple[str, int, int]
    """The checkpoint record's own topic, partition and offset."""

    @classmethod
    def from_record(cls, record: Mapping[str, Any], place: tuple[str, int, int]) -> Checkpoint:
        return cls(
            record["topic"], record["partition"], record["start_offset"], record["end_offset"],
            record["record_count"], bytes(record["previous_head"]), bytes(record["head"]),
            place,
        )  # fmt: skip

    def describe(self) -> str:
        return f"{self.topic}[{self.partition}] offsets {self.start_offset}-{self.end_offset - 1}"


@dataclass(frozen=True, slots=True)
class CheckpointFinding:
    """A checkpoint that does not hold: ``reason`` is one of the ``CHECKPOINT_*`` codes."""

    place: tuple[str, int, int]
    reason: str
    detail: str


@dataclass(slots=True)
class _Running:
    checkpoint: Checkpoint
    head: bytes
    records: int = 0


@dataclass(slots=True)
class _Partition:
    first: int
    stop: int
    pending: list[Checkpoint]
    """The checkpoints inside ``[first, stop)`` not started yet, by start offset."""
    active: list[_Running] = field(default_factory=list)


@dataclass
class CheckpointCheck:
    """Checks the checkpoints of the partitions a replay reads against its records.

    Give it every verified checkpoint (:meth:`add_checkpoint`), the offsets each partition
    will be read over (:meth:`expect`), each record read (:meth:`feed`, in offset order
    per partition), and where each partition's reading really stopped (:meth:`finish`).
    A checkpoint is checked when its whole range was read; one reaching outside what was
    read is counted in :attr:`outside`."""

    checkpoints: dict[tuple[str, int], list[Checkpoint]] = field(default_factory=dict)
    findings: list[CheckpointFinding] = field(default_factory=list)
    matched: int = 0
    outside: int = 0
    _partitions: dict[tuple[str, int], _Partition] = field(default_factory=dict)

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        where = (checkpoint.topic, checkpoint.partition)
        self.checkpoints.setdefault(where, []).append(checkpoint)

    def expect(self, topic: str, partition: int, first: int, stop: int) -> None:
        """``topic``'s ``partition`` is read over ``[first, stop)``: its checkpoints are
        linked up (forks and broken links named) and those inside the range armed."""
        if (topic, partition) in self._partitions:
            return  # read twice (e.g. listed again): checked once
        found = self.checkpoints.get((topic, partition), [])
        unique = self._linked(found)
        inside = [c for c in unique if first <= c.start_offset and c.end_offset <= stop]
        self.outside += len(unique) - len(inside)
        self._partitions[(topic, partition)] = _Partition(first, stop, inside)

    def _linked(self, found: list[Checkpoint]) -> list[Checkpoint]:
        """``found`` by start offset, a repeat of one range with the same head once; a
        second head for one range is a fork, a checkpoint that does not continue the one
        before it an unlinked one."""
        unique: list[Checkpoint] = []
        for checkpoint in sorted(found, key=lambda c: (c.start_offset, c.place)):
            same = next((u for u in unique if u.start_offset == checkpoint.start_offset), None)
            if same is not None and (same.end_offset, same.head) == (
                checkpoint.end_offset, checkpoint.head,
            ):  # fmt: skip
                continue
            if same is not None:
                self.findings.append(CheckpointFinding(
                    checkpoint.place, FORK,
                    f"{checkpoint.describe()} claims the range of the checkpoint at "
                    f"{_place(same.place)} ({same.describe()}) with another head",
                ))  # fmt: skip
                continue
            if unique:
                before = unique[-1]
                why = None
                if checkpoint.start_offset != before.end_offset:
                    why = "its start is not that one's end"
                elif checkpoint.previous_head != before.head:
                    why = "its previous head is not that one's head"
                if why is not None:
                    self.findings.append(CheckpointFinding(
                        checkpoint.place, BROKEN_LINK,
                        f"{checkpoint.describe()} does not continue the checkpoint at "
                        f"{_place(before.place)} ({before.describe()}): {why}",
                    ))  # fmt: skip
            unique.append(checkpoint)
        return unique

    def feed(self, message: Any) -> None:
        """One record read, in offset order within its partition."""
        state = self._partitions.get((message.topic, message.partition))
        if state is None or not (state.pending or state.active):
            return
        offset = message.offset
        for running in [r for r in state.active if r.checkpoint.end_offset <= offset]:
            state.active.remove(running)
            self._close(running)
        while state.pending and state.pending[0].start_offset <= offset:
            checkpoint = state.pending.pop(0)
            running = _Running(checkpoint, checkpoint.previous_head)
            if checkpoint.end_offset <= offset:
                self._close(running)  # its range held no record
            else:
                state.active.append(running)
        if state.active:
            digest = message_digest(message)
            for running in state.active:
                running.head = chain_step(running.head, digest)
                running.records += 1

    def finish(self, read_to: Mapping[tuple[str, int], int]) -> None:
        """Closes every armed checkpoint; ``read_to`` gives the position a partition's
        reading stopped at when short of its range (a stalled partition): checkpoints
        ending beyond it were not wholly read."""
        for where, state in self._partitions.items():
            stop = read_to.get(where, state.stop)
            remaining = [*state.active, *(_Running(c, c.previous_head) for c in state.pending)]
            for running in remaining:
                if running.checkpoint.end_offset <= stop:
                    self._close(running)
                else:
                    self.outside += 1
            state.active, state.pending = [], []

    def _close(self, running: _Running) -> None:
        checkpoint = running.checkpoint
        if running.records == checkpoint.record_count and running.head == checkpoint.head:
            self.matched += 1
            return
        self.findings.append(CheckpointFinding(
            checkpoint.place, MISMATCH,
            f"{checkpoint.describe()}: the records read there ({running.records}, head "
            f"{running.head.hex()[:16]}) are not those checkpointed "
            f"({checkpoint.record_count}, head {checkpoint.head.hex()[:16]})",
        ))  # fmt: skip

    def summary(self) -> dict[str, int]:
        """Counts over the checkpoints of the partitions read (:meth:`expect`)."""
        return {
            "checkpoints": sum(len(self.checkpoints.get(where, ())) for where in self._partitions),
            "matched": self.matched,
            "failed": len(self.findings),
            "outside_range": self.outside,
        }


def _place(place: tuple[str, int, int]) -> str:
    return f"{place[0]}[{place[1]}]@{place[2]}"
