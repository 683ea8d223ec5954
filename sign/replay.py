"""Replay protection: an event id is acted on once within the retention window.

A replay is a valid signed event copied onto a topic again: the copy has the same
``ce_id`` but lands at a *new* offset. A redelivery after a consumer crash (the offset
was not committed) brings the same event at the *same* (topic, partition, offset). So the
guard remembers, per event id, where it was first seen:

* id never seen                          -> NEW (remembered)
* id seen at the same topic/partition/offset -> REDELIVERY (allowed: the consumer's own
  idempotence, e.g. a hit id derived from order and sighting ids, absorbs it)
* id seen at another offset or topic     -> raises :class:`sign.errors.Replayed`
* event older than the guard's horizon   -> raises Replayed: the guard can no longer tell
  it from a replay. The horizon of a partition is its newest event time minus the window,
  raised further if the memory bound forced older ids out.

Only *verified* events may be recorded (the verify stage calls :meth:`observe` last), or a
forger could poison the guard with the id of a real event that is yet to come.

Memory: ids are kept as 90-bit BLAKE2b digests (Python ints, collision odds ~1e-15 at
2M ids), with a packed (topic-partition, offset) int, in time buckets (window/64, at most 60 s)
so expiry drops whole buckets. Measured ~150 bytes per id (``tests/bench/bench_sign.py``):
the default bound of 2,000,000 ids is ~300 MB. When the bound is hit, the oldest bucket
goes and the horizon rises: stated loudly by :attr:`horizon`, never silently.
The scope ``global`` (default) treats the same id on two topics as a replay; ``topic``
keeps one memory per topic, for consumers that legitimately see a forwarded event twice.
Not thread-safe: one guard per consumer loop (partitions are owned by one consumer).
"""

from __future__ import annotations

import enum
import hashlib
from collections import deque
from datetime import UTC, datetime, timedelta

from schemas.settings import Settings, get_settings
from sign.errors import Replayed

__all__ = ["ReplayGuard", "ReplayVerdict"]

_BUCKETS = 64
_MAX_BUCKET_S = 60.0
_OFFSET_BITS = 48


class ReplayVerdict(enum.Enum):
    NEW = "new"
    REDELIVERY = "redelivery"


class ReplayGuard:
    """Remembers verified event ids with where they were seen (see the module docstring)."""

    def __init__(self, window: timedelta, max_ids: int, scope: str = "global") -> None:
        if scope not in ("global", "topic"):
            raise ValueError(f"scope {scope!r}: must be 'global' or 'topic'")
        self.window = window
        self._window_s = window.total_seconds()
        self.max_ids = max_ids
        self.scope = scope
        # Small buckets keep eviction fine-grained when the memory bound, not age, decides.
        self._bucket_s = min(max(self._window_s / _BUCKETS, 1.0), _MAX_BUCKET_S)
        self._seen: dict[int, int] = {}
        self._buckets: dict[int, list[int]] = {}
        self._order: deque[int] = deque()  # bucket numbers, oldest first
        self._partitions: dict[tuple[str, int], int] = {}
        self._newest: dict[int, float] = {}  # partition index -> newest event time seen
        self._evicted_until = float("-inf")

    @classmethod
    def from_settings(cls, settings: Settings | None = None, scope: str = "global") -> ReplayGuard:
        """A guard sized by ``replay_window_s`` and ``replay_max_ids``."""
        settings = settings or get_settings()
        return cls(timedelta(seconds=settings.replay_window_s), settings.replay_max_ids, scope)

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def horizon(self) -> datetime | None:
        """Events older than this were forgotten for lack of memory (None: none were)."""
        if self._evicted_until == float("-inf"):
            return None
        return datetime.fromtimestamp(self._evicted_until, UTC)

    def observe(
        self, event_id: str, event_time: datetime, topic: str, partition: int, offset: int
    ) -> ReplayVerdict:
        """Record a verified event; raise Replayed if it was seen elsewhere."""
        tp = self._partition_index(topic, partition)
        when = event_time.timestamp()
        newest = self._newest.get(tp, when)
        limit = max(newest - self._window_s, self._evicted_until)
        if when < limit:
            raise Replayed(
                f"ce_id {event_id}: ce_time {event_time.isoformat()} is older than the replay "
                f"horizon {datetime.fromtimestamp(limit, UTC).isoformat()} of {topic}/{partition}"
            )
        digest = self._digest(event_id, topic)
        location = (tp << _OFFSET_BITS) | offset
        seen = self._seen.get(digest)
        if seen is not None:
            if seen == location:
                return ReplayVerdict.REDELIVERY
            first_topic, first_partition = self._location_name(seen >> _OFFSET_BITS)
            raise Replayed(
                f"ce_id {event_id}: first seen at {first_topic}/{first_partition}@"
                f"{seen & ((1 << _OFFSET_BITS) - 1)}, again at {topic}/{partition}@{offset}"
            )
        self._newest[tp] = max(newest, when)
        self._remember(digest, location, when)
        return ReplayVerdict.NEW

    def _digest(self, event_id: str, topic: str) -> int:
        data = event_id.encode("utf-8")
        if self.scope == "topic":
            data = topic.encode("utf-8") + b"\x00" + data
        return int.from_bytes(hashlib.blake2b(data, digest_size=12).digest()) >> 6

    def _partition_index(self, topic: str, partition: int) -> int:
        index = self._partitions.get((topic, partition))
        if index is None:
            index = self._partitions[(topic, partition)] = len(self._partitions)
        return index

    def _location_name(self, index: int) -> tuple[str, int]:
        for name, value in self._partitions.items():
            if value == index:
                return name
        return ("?", -1)

    def _remember(self, digest: int, location: int, when: float) -> None:
        bucket = int(when // self._bucket_s)
        ids = self._buckets.get(bucket)
        if ids is None:
            ids = self._buckets[bucket] = []
            self._order.append(bucket)
            if len(self._order) > 1 and bucket < self._order[-2]:
                self._order = deque(sorted(self._order))
        ids.append(digest)
        self._seen[digest] = location
        self._expire(when)

    def _expire(self, now: float) -> None:
        oldest_allowed = int((now - self._window_s) // self._bucket_s)
        # The newest bucket always stays: it holds the id just recorded.
        while len(self._order) > 1 and (
            self._order[0] < oldest_allowed or len(self._seen) > self.max_ids
        ):
            bucket = self._order.popleft()
            for digest in self._buckets.pop(bucket):
                self._seen.pop(digest, None)
            if bucket >= oldest_allowed:  # forced out by the memory bound, not by age
                self._evicted_until = max(self._evicted_until, (bucket + 1) * self._bucket_s)
