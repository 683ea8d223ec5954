"""The process pool of ``zf801 replay --verify --jobs N``: the records' checks (seal,
trust at their time and on arrival, envelope, schema, role, acceptance window) spread over
N processes, since an Ed25519 verify holds a core and the GIL.

The parent reads Kafka, keeps the order and the tally; each worker holds its own verify
stage, built from the same key store and settings and from the trust topic's records as
the parent read them (so both judge against one trust history). Records go in batches of
one partition (topic and partition sent once a batch), and a compact verdict comes back
per record: the event id alone for a record that passed, else the event id (None:
refused), the refusal's reason and detail, and the revocation on arrival. Verdicts are
counted in the order the records were read, so the report is the one a single process
writes. Records the parent needs whole (the audit chains, a court's alert topic judged by
its addressing, the rematch's inputs) are judged in the parent.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from consumers.polling import batches_to_end
from consumers.runtime import Runtime
from ops.replay_check import ArrivalClock, ReplayTally
from ops.replay_judge import check_on_arrival, replay_stage
from schemas.agencies import get_agency
from schemas.settings import Settings
from sign.follower import TrustFollower
from sign.verify_stage import ConsumedRecord, MemoryAuditSink, MemoryDeadLetterSink, VerifyStage

__all__ = ["VerdictPool", "trust_records"]

Raw = tuple[int, int, bytes | None, bytes | None, Sequence[tuple[str, bytes]]]
"""A consumed record of the batch's partition: offset, timestamp (ms), key, value, headers."""
Batch = tuple[str, int, list[Raw]]
"""Records of one partition, in offset order: topic, partition, records."""
Verdict = str | tuple[str | None, tuple[str, str] | None, str | None]
"""The event id of a record that passed with no revocation on arrival (most records: one
string to send back), else (event id or None: refused, refusal (reason, detail),
revocation on arrival)."""

_BATCH = 1000
# Batches read ahead per worker: the workers take about 1.5 s to start (a fork server that
# imports the judging modules), and the reading goes on meanwhile (some 10 MB of records).
_AHEAD_PER_WORKER = 8
_TRUST_IDLE_S = 5.0

_worker: _Worker | None = None


class _Worker:
    def __init__(
        self, agency: str, settings: Settings, trust: Sequence[tuple[Any, Any, Any]]
    ) -> None:
        self.runtime = Runtime.from_keystore(
            agency, MemoryDeadLetterSink(), MemoryAuditSink(), settings=settings
        )
        follower = TrustFollower(self.runtime.trust, self.runtime.codec)
        for key, value, headers in trust:
            follower.apply(key, value, headers)
        self.dead = MemoryDeadLetterSink()
        self.clock = ArrivalClock()
        self.stage: VerifyStage = replay_stage(
            self.runtime, self.dead, self.clock, roles_by_topic=True
        )

    def judge(self, batch: Batch) -> list[Verdict]:
        """A verdict for each record of the batch, in its order."""
        topic, partition, raws = batch
        verdicts: list[Verdict] = []
        for offset, timestamp, key, value, headers in raws:
            kept = tuple((name, raw if raw is not None else b"") for name, raw in headers)
            record = ConsumedRecord(topic, partition, offset, timestamp, key, value, kept)
            verified, rejection, revoked = check_on_arrival(
                self.stage, self.dead, self.clock, self.runtime.trust, record
            )
            if rejection is not None:
                verdicts.append((None, (rejection.reason, rejection.detail), None))
            elif verified is not None and revoked is None:
                verdicts.append(verified.signature.event_id)
            elif verified is not None:
                verdicts.append((verified.signature.event_id, None, revoked))
        return verdicts


def _start(agency: str, settings: Settings, trust: Sequence[tuple[Any, Any, Any]]) -> None:
    global _worker  # noqa: PLW0603 - one judge per pool process, built once
    _worker = _Worker(agency, settings, trust)


def _judge(batch: Batch) -> list[Verdict]:
    if _worker is None:
        raise RuntimeError("the replay pool's worker was not started")
    return _worker.judge(batch)


def trust_records(runtime: Runtime) -> list[tuple[Any, Any, Any]]:
    """The trust topic's records, as the pool's workers apply them."""
    consumer = runtime.stream_reader(
        get_agency(runtime.agency_code), [runtime.catalog.topic_name("trust")], "replay.read",
        "zf801-replay-trust",
    )  # fmt: skip
    try:
        batches = batches_to_end(consumer, idle_s=_TRUST_IDLE_S)
        return [(m.key, m.value, list(m.headers or ())) for batch in batches for m in batch]
    finally:
        consumer.close()


class VerdictPool:
    """Judges records in ``jobs`` processes; :meth:`submit` each record in read order,
    :meth:`drain` before reading the tally."""

    def __init__(self, runtime: Runtime, tally: ReplayTally, jobs: int) -> None:
        self.tally = tally
        self.jobs = jobs
        # Not a fork of this process (its Kafka clients' threads and locks): a fork server
        # started clean, with the judging modules imported once for every worker.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        self._pool = ProcessPoolExecutor(
            max_workers=jobs, mp_context=context, initializer=_start,
            initargs=(runtime.agency_code, runtime.settings, trust_records(runtime)),
        )  # fmt: skip
        self._batch: list[Raw] = []
        self._topic: str | None = None
        self._partition: int | None = None
        self._ahead: deque[tuple[str, int, list[int], Future[list[Verdict]]]] = deque()

    def submit(self, message: Any) -> None:
        if self._batch and (message.partition != self._partition or message.topic != self._topic):
            self._send()
        self._topic, self._partition = message.topic, message.partition
        self._batch.append((message.offset, message.timestamp, message.key, message.value,
                            message.headers or ()))  # fmt: skip
        if len(self._batch) >= _BATCH:
            self._send()

    def _send(self) -> None:
        if not self._batch or self._topic is None or self._partition is None:
            return
        future = self._pool.submit(_judge, (self._topic, self._partition, self._batch))
        offsets = [raw[0] for raw in self._batch]
        self._ahead.append((self._topic, self._partition, offsets, future))
        self._batch = []
        while len(self._ahead) > self.jobs * _AHEAD_PER_WORKER:
            self._count_oldest()

    def _count_oldest(self) -> None:
        topic, partition, offsets, future = self._ahead.popleft()
        add = self.tally.add_verdict
        for offset, verdict in zip(offsets, future.result(), strict=True):
            if isinstance(verdict, str):
                add(topic, partition, offset, verdict, None)
            else:
                event_id, refusal, revoked = verdict
                add(topic, partition, offset, event_id, refusal, revoked=revoked)

    def drain(self) -> None:
        """Every record submitted is counted."""
        self._send()
        while self._ahead:
            self._count_oldest()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
