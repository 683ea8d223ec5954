"""The process pool of ``zf801 replay --verify --jobs N``: the records' checks (seal,
trust at their time and on arrival, envelope, schema, role, acceptance window) spread over
N processes, since an Ed25519 verify holds a core and the GIL.

The parent reads Kafka, keeps the order and the tally; each worker holds its own verify
stage, built from the same key store and settings and from the trust topic's records as
the parent read them (so both judge against one trust history), and returns a compact
verdict per record: the event id (None: refused), the refusal's reason and detail, and the
revocation on arrival. Verdicts are counted in the order the records were read, so the
report is the one a single process writes. Records the parent needs whole (the audit
chains, a court's alert topic judged by its addressing, the rematch's inputs) are judged
in the parent.
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

Raw = tuple[str, int, int, int, bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]
"""A consumed record: topic, partition, offset, timestamp (ms), key, value, headers."""
Verdict = tuple[int, str | None, tuple[str, str] | None, str | None]
"""offset, event id (None: refused), refusal (reason, detail), revocation on arrival."""

_BATCH = 256
_AHEAD_PER_WORKER = 4
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

    def judge(self, batch: list[Raw]) -> list[Verdict]:
        verdicts: list[Verdict] = []
        for raw in batch:
            verified, rejection, revoked = check_on_arrival(
                self.stage, self.dead, self.clock, self.runtime.trust, ConsumedRecord(*raw)
            )
            if rejection is not None:
                verdicts.append((raw[2], None, (rejection.reason, rejection.detail), None))
            elif verified is not None:
                verdicts.append((raw[2], verified.signature.event_id, None, revoked))
        return verdicts


def _start(agency: str, settings: Settings, trust: Sequence[tuple[Any, Any, Any]]) -> None:
    global _worker  # noqa: PLW0603 - one judge per pool process, built once
    _worker = _Worker(agency, settings, trust)


def _judge(batch: list[Raw]) -> list[Verdict]:
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
        self._ahead: deque[tuple[str, int, Future[list[Verdict]]]] = deque()

    def submit(self, message: Any) -> None:
        where = (message.topic, message.partition)
        if self._batch and where != (self._topic, self._partition):
            self._send()
        self._topic, self._partition = where
        self._batch.append((message.topic, message.partition, message.offset,
                            message.timestamp, message.key, message.value,
                            tuple(message.headers or ())))  # fmt: skip
        if len(self._batch) >= _BATCH:
            self._send()

    def _send(self) -> None:
        if not self._batch or self._topic is None or self._partition is None:
            return
        future = self._pool.submit(_judge, self._batch)
        self._ahead.append((self._topic, self._partition, future))
        self._batch = []
        while len(self._ahead) > self.jobs * _AHEAD_PER_WORKER:
            self._count_oldest()

    def _count_oldest(self) -> None:
        topic, partition, future = self._ahead.popleft()
        for offset, event_id, refusal, revoked in future.result():
            self.tally.add_verdict(topic, partition, offset, event_id, refusal, revoked=revoked)

    def drain(self) -> None:
        """Every record submitted is counted."""
        self._send()
        while self._ahead:
            self._count_oldest()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
