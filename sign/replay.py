"""Replay protection: an event id is acted on once while its time is acceptable.

A replay is a valid signed event copied onto a topic again: the copy has the same
``ce_id`` but lands at a *new* offset. A redelivery after a consumer crash (the offset
was not committed) brings the same event at the *same* (topic, partition, offset). So the
guard remembers, per event id, where it was first seen:

* id never seen                              -> NEW (remembered)
* id seen at the same topic/partition/offset -> REDELIVERY (allowed: the consumer's own
  idempotence, e.g. a hit id derived from order and sighting ids, absorbs it)
* id seen at another offset or topic         -> raises :class:`sign.errors.Replayed`

Ids are kept for ``window``: the widest acceptance window of the events the guard sees
(:mod:`sign.acceptance`), which refuses anything older before the guard is asked. The
guard's clock is the processor's own, never an event's ``ce_time``: an event stamped a
year ahead is refused by the acceptance window and, even when accepted, moves no
horizon, so it cannot make later genuine events look old.

Persistence: a guard built with ``journal_scope`` lists every NEW observation in
:meth:`drain` as a :class:`SeenEntry`; the processor writes those to its replay journal
(``consumers.replay_journal``) together with, or before, the effect, and a restarted
processor :meth:`restore`\\ s them, so a copy written after a restart is still a replay.

Only *verified* events may be recorded (the verify stage calls :meth:`observe` last), or a
forger could poison the guard with the id of a real event that is yet to come.

Memory: ids are kept as 90-bit BLAKE2b digests (Python ints, collision odds ~1e-15 at
2M ids), with a packed (topic-partition, offset) int, in time buckets (window/64, at most
60 s) so expiry drops whole buckets. Measured ~150 bytes per id (``tests/bench/bench_sign.py``):
the default bound of 2,000,000 ids is ~300 MB. When the bound is hit, the oldest bucket
goes and the horizon rises: events older than :attr:`horizon` are refused (``TOO_OLD``),
fail-safe and stated loudly, never silently accepted.
The scope ``global`` (default) treats the same id on two topics as a replay; ``topic``
keeps one memory per topic, for consumers that legitimately see a forwarded event twice.
Not thread-safe: one guard per consumer loop (partitions are owned by one consumer).
"""

from __future__ import annotations

import enum
import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas.settings import Settings, get_settings
from sign.acceptance import AcceptancePolicy
from sign.errors import Replayed, TooOld

__all__ = ["ReplayGuard", "ReplayVerdict", "SeenEntry"]

_BUCKETS = 64
_MAX_BUCKET_S = 60.0
_OFFSET_BITS = 48
_DIGEST_BYTES = 12


class ReplayVerdict(enum.Enum):
    NEW = "new"
    REDELIVERY = "redelivery"


@dataclass(frozen=True, slots=True)
class SeenEntry:
    """One remembered event: what the replay journal stores and a restart restores."""

    scope: str
    digest: bytes
    event_time_us: int
    topic: str
    partition: int
    offset: int


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ReplayGuard:
    """Remembers verified event ids with where they were seen (see the module docstring)."""

    def __init__(
        self,
        window: timedelta,
        max_ids: int,
        scope: str = "global",
        *,
        journal_scope: str | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if scope not in ("global", "topic"):
            raise ValueError(f"scope {scope!r}: must be 'global' or 'topic'")
        self.window = window
        self._window_s = window.total_seconds()
        self.max_ids = max_ids
        self.scope = scope
        self.journal_scope = journal_scope
        self._clock = clock
        # Small buckets keep eviction fine-grained when the memory bound, not age, decides.
        self._bucket_s = min(max(self._window_s / _BUCKETS, 1.0), _MAX_BUCKET_S)
        self._seen: dict[int, int] = {}
        self._buckets: dict[int, list[int]] = {}
        self._order: deque[int] = deque()  # bucket numbers, oldest first
        self._partitions: dict[tuple[str, int], int] = {}
        self._names: list[tuple[str, int]] = []
        self._evicted_until = float("-inf")
        self._pending: list[SeenEntry] = []
        self.restored = 0

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        scope: str = "global",
        *,
        journal_scope: str | None = None,
    ) -> ReplayGuard:
        """A guard that remembers ids for the widest acceptance window of the settings,
        bounded by ``replay_max_ids``."""
        settings = settings or get_settings()
        window = AcceptancePolicy.from_settings(settings).retention
        return cls(window, settings.replay_max_ids, scope, journal_scope=journal_scope)

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def horizon(self) -> datetime | None:
        """Events older than this were forgotten for lack of memory (None: none were)."""
        if self._evicted_until == float("-inf"):
            return None
        return datetime.fromtimestamp(self._evicted_until, UTC)

    def observe(
        self,
        event_id: str,
        event_time: datetime,
        topic: str,
        partition: int,
        offset: int,
        *,
        now: datetime | None = None,
    ) -> ReplayVerdict:
        """Record a verified event; raise Replayed if it was seen elsewhere, TooOld if it
        is older than what the guard still remembers."""
        when = event_time.timestamp()
        now_s = (now or self._clock()).timestamp()
        limit = max(now_s - self._window_s, self._evicted_until)
        if when < limit:
            raise TooOld(
                f"ce_id {event_id}: ce_time {event_time.isoformat()} is older than the replay "
                f"guard's horizon {datetime.fromtimestamp(limit, UTC).isoformat()}"
            )
        raw = self._raw_digest(event_id, topic)
        digest = int.from_bytes(raw) >> 6
        location = (self._partition_index(topic, partition) << _OFFSET_BITS) | offset
        seen = self._seen.get(digest)
        if seen is not None:
            if seen == location:
                return ReplayVerdict.REDELIVERY
            first_topic, first_partition = self._names[seen >> _OFFSET_BITS]
            raise Replayed(
                f"ce_id {event_id}: first seen at {first_topic}/{first_partition}@"
                f"{seen & ((1 << _OFFSET_BITS) - 1)}, again at {topic}/{partition}@{offset}"
            )
        self._remember(digest, location, when, now_s)
        if self.journal_scope is not None:
            self._pending.append(
                SeenEntry(self.journal_scope, raw, int(when * 1_000_000), topic, partition, offset)
            )
        return ReplayVerdict.NEW

    def drain(self) -> list[SeenEntry]:
        """The observations not yet journaled, oldest first; the list is emptied."""
        pending, self._pending = self._pending, []
        return pending

    def restore(self, entry: SeenEntry, *, now: datetime | None = None) -> bool:
        """Remember a journaled observation (False: outside the window, or the id is
        already known here)."""
        when = entry.event_time_us / 1_000_000
        now_s = (now or self._clock()).timestamp()
        if when < now_s - self._window_s or len(entry.digest) != _DIGEST_BYTES:
            return False
        digest = int.from_bytes(entry.digest) >> 6
        if digest in self._seen:
            return False
        location = (self._partition_index(entry.topic, entry.partition) << _OFFSET_BITS) | (
            entry.offset
        )
        self._remember(digest, location, when, now_s)
        self.restored += 1
        return True

    def _raw_digest(self, event_id: str, topic: str) -> bytes:
        data = event_id.encode("utf-8")
        if self.scope == "topic":
            data = topic.encode("utf-8") + b"\x00" + data
        return hashlib.blake2b(data, digest_size=_DIGEST_BYTES).digest()

    def _partition_index(self, topic: str, partition: int) -> int:
        index = self._partitions.get((topic, partition))
        if index is None:
            index = self._partitions[(topic, partition)] = len(self._names)
            self._names.append((topic, partition))
        return index

    def _remember(self, digest: int, location: int, when: float, now: float) -> None:
        bucket = int(when // self._bucket_s)
        ids = self._buckets.get(bucket)
        if ids is None:
            ids = self._buckets[bucket] = []
            self._order.append(bucket)
            if len(self._order) > 1 and bucket < self._order[-2]:
                self._order = deque(sorted(self._order))
        ids.append(digest)
        self._seen[digest] = location
        self._expire(now, bucket)

    def _expire(self, now: float, keep: int) -> None:
        oldest_allowed = int((now - self._window_s) // self._bucket_s)
        while self._order and (self._order[0] < oldest_allowed or len(self._seen) > self.max_ids):
            if self._order[0] == keep and len(self._order) == 1:
                break  # the bucket that holds the id just recorded stays
            bucket = self._order.popleft()
            for digest in self._buckets.pop(bucket):
                self._seen.pop(digest, None)
            if bucket >= oldest_allowed:  # forced out by the memory bound, not by age
                self._evicted_until = max(self._evicted_until, (bucket + 1) * self._bucket_s)
