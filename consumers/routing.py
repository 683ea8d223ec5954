"""Where a sighting is matched: on the partition of each match key it carries.

The watchlist entry of a key lives in the partition :func:`topics.partitioning.partition_of`
gives the key (:mod:`consumers.watch_updates`), and a worker holds the watchlist
partitions faust assigned it. A sighting carries one key or several (a vehicle's plate
key as its record key and its VIN key in ``ce_altkeys``), and it arrives on whatever
partition its producer chose. So for each key the matcher asks :class:`Placement`: is
that key's partition one this worker holds (look it up here), or another worker's (move
the sighting there)? A worker that holds every partition never computes a partition,
and a producer with another partitioner (librdkafka's CRC32) costs a move, never a miss.

A moved sighting is the original record, unchanged and still signed by its police unit,
written by the bus to ``sightings-routed`` on the key's partition, with one header the
signature does not cover, ``zf801_route``: the original's topic, partition and offset
(:class:`Origin`; a hit refers to the original, and the replay guard sees the original's
place, so every copy of one sighting is the same sighting) and which of the sighting's
keys to look up there. Only the bus may write that topic; a ``zf801_route`` header on
any other topic is ignored, and dropped when the sighting is moved.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from topics.partitioning import KeyPartitions

__all__ = ["ROUTE_HEADER", "Origin", "Placement"]

ROUTE_HEADER = "zf801_route"
_MAX_KEYS = 16


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a moved sighting was first read, and which of its keys (by index in
    ``[record key, *ce_altkeys]``) to look up where it was moved."""

    topic: str
    partition: int
    offset: int
    indexes: tuple[int, ...]

    def header(self) -> bytes:
        indexes = ",".join(str(index) for index in self.indexes)
        return f"{self.topic}/{self.partition}/{self.offset}/{indexes}".encode()

    @classmethod
    def parse(cls, raw: bytes | None) -> Origin:
        """Raises ValueError on anything but a header :meth:`header` wrote."""
        if raw is None:
            raise ValueError(f"no {ROUTE_HEADER} header")
        topic, partition, offset, indexes = raw.decode("ascii").rsplit("/", 3)
        keys = tuple(int(index) for index in indexes.split(","))
        if not topic or int(partition) < 0 or int(offset) < 0:
            raise ValueError(f"{ROUTE_HEADER} {raw!r}: not a place")
        if not keys or any(not 0 <= index < _MAX_KEYS for index in keys):
            raise ValueError(f"{ROUTE_HEADER} {raw!r}: key indexes out of range")
        return cls(topic, int(partition), int(offset), keys)


class Placement:
    """The watchlist partitions this worker holds, and the partition of each key."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.partition_of = KeyPartitions(partitions)
        self._held: frozenset[int] | None = None  # None: every partition

    def hold(self, partitions: Iterable[int]) -> None:
        """The watchlist partitions faust assigned this worker (on every assignment)."""
        held = frozenset(partitions)
        self._held = None if held >= frozenset(range(self.partitions)) else held

    @property
    def holds_all(self) -> bool:
        return self._held is None

    def split(self, keys: Sequence[bytes]) -> tuple[list[int], dict[int, list[int]]]:
        """The indexes of ``keys`` to look up here, and per other partition those to
        look up there."""
        held = self._held
        if held is None:
            return list(range(len(keys))), {}
        here: list[int] = []
        elsewhere: dict[int, list[int]] = {}
        for index, key in enumerate(keys):
            partition = self.partition_of(key)
            if partition in held:
                here.append(index)
            else:
                elsewhere.setdefault(partition, []).append(index)
        return here, elsewhere
