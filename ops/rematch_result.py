"""What ``zf801 replay --rematch`` finds (:mod:`ops.rematch`): the difference codes, which
of them fail a replay, and the result with its report section."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "BREAK_CODES",
    "MISSING_BLOCK",
    "MISSING_HIT",
    "OUT_OF_RANGE",
    "RACE",
    "RACE_MARGIN_MS",
    "UNACCOUNTED_BLOCK",
    "UNJUSTIFIED_HIT",
    "Difference",
    "ExpectedHit",
    "Position",
    "RematchResult",
]

RACE_MARGIN_MS = 2_000
"""An order, release or control-period end this close to a sighting's arrival may have
been processed before or after it by the live bus: either outcome is right."""

UNJUSTIFIED_HIT = "UNJUSTIFIED_HIT"
MISSING_HIT = "MISSING_HIT"
UNACCOUNTED_BLOCK = "UNACCOUNTED_BLOCK"
MISSING_BLOCK = "MISSING_BLOCK"
RACE = "RACE"
OUT_OF_RANGE = "OUT_OF_RANGE"
BREAK_CODES = frozenset({UNJUSTIFIED_HIT, MISSING_HIT, UNACCOUNTED_BLOCK, MISSING_BLOCK})
"""The differences that fail a replay; ``RACE`` and ``OUT_OF_RANGE`` are notes."""


@dataclass(frozen=True, slots=True, order=True)
class Position:
    topic: str
    partition: int
    offset: int

    def text(self) -> str:
        return f"{self.topic} partition {self.partition} offset {self.offset}"

    def document(self) -> dict[str, object]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class ExpectedHit:
    hit_id: str
    order_id: str
    court: str
    sighting_id: str
    sighting: Position
    arrival_ms: int
    blocks: bool
    """The hit also blocks a transfer or mortgage registration."""


@dataclass(frozen=True, slots=True)
class Difference:
    """One difference between the rules and what was delivered (``code``), at the
    position of the record that shows it."""

    code: str
    position: Position
    order_id: str
    sighting_id: str
    detail: str

    @property
    def is_break(self) -> bool:
        return self.code in BREAK_CODES

    def document(self) -> dict[str, object]:
        return {
            "code": self.code,
            **self.position.document(),
            "order_id": self.order_id,
            "sighting_id": self.sighting_id,
            "detail": self.detail,
        }


@dataclass
class RematchResult:
    orders: int = 0
    releases: int = 0
    expiries: int = 0
    refused_orders: int = 0
    """Order-topic records the order book refused (they never entered the watchlist)."""
    sightings: int = 0
    expected_hits: int = 0
    delivered_hits: int = 0
    unchecked_hits: int = 0
    """Expected hits for courts whose alert topic was not read."""
    expected_blocks: int = 0
    delivered_blocks: int = 0
    blocks_checked: bool = False
    differences: list[Difference] = field(default_factory=list)

    @property
    def breaks(self) -> list[Difference]:
        return [d for d in self.differences if d.is_break]

    @property
    def notes(self) -> list[Difference]:
        return [d for d in self.differences if not d.is_break]

    def document(self, courts: Iterable[str]) -> dict[str, object]:
        return {
            "courts_compared": sorted(courts),
            "orders": self.orders,
            "releases": self.releases,
            "expiry_notices": self.expiries,
            "refused_order_records": self.refused_orders,
            "sightings": self.sightings,
            "expected_hits": self.expected_hits,
            "delivered_hits": self.delivered_hits,
            "unchecked_hits": self.unchecked_hits,
            "blocks_compared": self.blocks_checked,
            "expected_blocks": self.expected_blocks,
            "delivered_blocks": self.delivered_blocks,
            "race_margin_ms": RACE_MARGIN_MS,
            "breaks": [d.document() for d in self.breaks],
            "notes": [d.document() for d in self.notes],
        }
