"""The replay journal: what each replay guard has seen, kept in Kafka across restarts.

Every NEW observation of a guard with a ``journal_scope`` (:class:`sign.replay.SeenEntry`)
becomes one sealed record on the ``replay-journal`` topic, in the partition of the input
record it describes, written before its effect can be committed: by the matcher inside
the transaction that carries the hits and the sightings' offsets, by the order and
acknowledgement agents before they act. When a worker is assigned partitions it reads
those journal partitions back into its guards, so a copy of an event written after a
restart is a replay still. The topic's retention is at least the widest acceptance
window (``sign/REPLAY.md``): an entry older than that is refused by the window anyway.

Record: key BLAKE2b-128 of ``<scope> 0x00 <id digest>``; value sealed
(:mod:`sign.state_seal`) over ``event_time_us (8, signed) | partition (4) | offset (8) |
scope length (1) | scope | id digest (12) | topic (UTF-8)``. A record whose seal fails is
refused (counted, and dead-lettered by the worker), never restored.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import struct
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from consumers.sealed_table import StateRefusal
from schemas.envelope import to_micros
from schemas.settings import Settings
from sign.replay import ReplayGuard, SeenEntry
from sign.state_seal import StateIntegrityError, StateSealer
from sign.verify_stage import ConsumedRecord, VerifyStage
from topics.clients import aio_consumer, require_topics

__all__ = ["JournalRecord", "ReplayJournal", "RestoreResult"]

log = logging.getLogger(__name__)

_PAYLOAD = struct.Struct(">qiqB")
_DIGEST = 12
_RESTORE_TIMEOUT_S = 300.0


@dataclass(frozen=True, slots=True)
class JournalRecord:
    topic: str
    partition: int
    key: bytes
    value: bytes


@dataclass
class RestoreResult:
    restored: int = 0
    read: int = 0
    refused: list[StateRefusal] = field(default_factory=list)


class ReplayJournal:
    """Encodes guard observations for the journal topic and restores guards from it."""

    def __init__(self, topic: str, partitions: int, sealer: StateSealer, application: str) -> None:
        self.topic = topic
        self.partitions = partitions
        self._sealer = sealer
        self._store = f"{application}/replay-journal"

    def records(self, entries: Iterable[SeenEntry], now: dt.datetime) -> list[JournalRecord]:
        """The sealed journal records of ``entries``."""
        now_us = to_micros(now)
        out = []
        for entry in entries:
            scope = entry.scope.encode("utf-8")
            key = hashlib.blake2b(scope + b"\x00" + entry.digest, digest_size=16).digest()
            payload = b"".join((
                _PAYLOAD.pack(entry.event_time_us, entry.partition, entry.offset, len(scope)),
                scope, entry.digest, entry.topic.encode("utf-8"),
            ))  # fmt: skip
            value = self._sealer.seal(self._store, key, payload, now_us)
            out.append(JournalRecord(self.topic, entry.partition % self.partitions, key, value))
        return out

    def accepted_by(self, stage: VerifyStage) -> list[JournalRecord]:
        """The sealed journal records of what ``stage`` accepted since the last call (its
        replay guard drained)."""
        return self.records(stage.replay_guard.drain(), dt.datetime.now(dt.UTC))

    def entry_of(self, key: bytes | None, value: bytes | None) -> SeenEntry:
        """The observation a journal record holds, or StateIntegrityError."""
        payload = self._sealer.open(self._store, key, value).payload
        if len(payload) < _PAYLOAD.size:
            raise StateIntegrityError(f"{self._store}: a sealed record of the wrong shape")
        event_time_us, partition, offset, scope_len = _PAYLOAD.unpack_from(payload)
        start = _PAYLOAD.size + scope_len
        scope, digest = payload[_PAYLOAD.size : start], payload[start : start + _DIGEST]
        if len(digest) != _DIGEST:
            raise StateIntegrityError(f"{self._store}: a sealed record of the wrong shape")
        topic = payload[start + _DIGEST :].decode("utf-8", "replace")
        return SeenEntry(scope.decode("utf-8", "replace"), digest, event_time_us, topic,
                         partition, offset)  # fmt: skip

    async def restore(
        self,
        settings: Settings,
        agency: str,
        partitions: Iterable[int],
        guards: Mapping[str, ReplayGuard],
    ) -> RestoreResult:
        """Read the journal partitions ``partitions`` to their end into ``guards`` (by
        scope), as ``agency``, which must be allowed to read the journal (else
        ``topics.errors.AccessDenied``). Committed records only: an aborted matcher
        transaction restores nothing."""
        result = RestoreResult()
        wanted = sorted({p % self.partitions for p in partitions})
        assignment = [TopicPartition(self.topic, p) for p in wanted]
        if not assignment:
            return result
        await asyncio.to_thread(require_topics, settings, agency, [self.topic])
        consumer = aio_consumer(
            settings,
            agency,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            consumer.assign(assignment)
            await consumer.seek_to_beginning(*assignment)
            ends = await consumer.end_offsets(assignment)
            remaining = {tp for tp in assignment if ends[tp] > 0}
            deadline = time.monotonic() + _RESTORE_TIMEOUT_S
            while remaining:
                if time.monotonic() > deadline:
                    log.error(
                        "replay journal: restore incomplete after %.0f s: %s",
                        _RESTORE_TIMEOUT_S,
                        sorted(tp.partition for tp in remaining),
                    )
                    break
                batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=10_000)
                for messages in batch.values():
                    for message in messages:
                        self._restore_one(message, guards, result)
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
        finally:
            await consumer.stop()
        log.info(
            "replay journal: %d entries read, %d restored, %d refused (partitions %s)",
            result.read, result.restored, len(result.refused), wanted,
        )  # fmt: skip
        return result

    def _restore_one(
        self, message: object, guards: Mapping[str, ReplayGuard], result: RestoreResult
    ) -> None:
        result.read += 1
        key = getattr(message, "key", None)
        value = getattr(message, "value", None)
        try:
            entry = self.entry_of(key, value)
        except StateIntegrityError as exc:
            result.refused.append((_consumed(message), exc.args[0]))
            return
        guard = guards.get(entry.scope)
        if guard is not None and guard.restore(entry):
            result.restored += 1


def _consumed(message: object) -> ConsumedRecord:
    headers = getattr(message, "headers", None) or ()
    return ConsumedRecord(
        getattr(message, "topic", ""), getattr(message, "partition", -1),
        getattr(message, "offset", -1), getattr(message, "timestamp", 0),
        getattr(message, "key", None), getattr(message, "value", None),
        tuple((name, value or b"") for name, value in headers),
    )  # fmt: skip
