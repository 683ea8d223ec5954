"""What the worker keeps per order id: its acknowledgement state and deadline, the end of
its control period, the match keys it is indexed by (the order's record key first), and
whether it is closed (released or expired).

A closed order stays tracked: a copy of the order written after its release (a replay,
or a court system re-sending it) must never put it back on the watchlist, whatever its
``ce_id`` and however long ago the release was (within the orders' acceptance window,
after which the window refuses it anyway). See ``sign/REPLAY.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum

from consumers.hit_clocks import HitClock
from consumers.watchlist import OrderKind

__all__ = ["LOOKED_BACK", "PURGED", "Closure", "OrderTrack", "tracked"]

PURGED = "purged"
"""Noticed when an expired order's late window ended and it left the watchlist."""
LOOKED_BACK = "looked-back"
"""Noticed once the order's look-back hits are sent (:mod:`consumers.lookback`)."""


class Closure(StrEnum):
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True, slots=True)
class OrderTrack:
    """One order's tracking state (stored sealed in the ``order_tracking`` table)."""

    kind: OrderKind | None
    court: str
    issued_at_us: int
    deadline_us: int
    keys: tuple[bytes, ...]
    status: str | None = None
    closed: Closure | None = None
    closed_at_us: int | None = None
    end_us: int | None = None
    """The end of the control period (None for a closure of an order never seen)."""
    case_number: str = ""
    noticed: frozenset[str] = frozenset()
    """The notices already sent for this order (``overdue``, ``expiry``, ``warning``,
    ``purged``; :mod:`consumers.deadlines`): a restarted worker does not send them again."""
    renewals: int = 0
    """How often the court moved the end of the control period (renewed, or corrected,
    the order): each period has its own expiry and warning notices."""
    applied_us: int = 0
    """When the bus first applied the order (0: before this was kept): the sightings that
    arrived before are the look-back's, those after the matcher's."""
    clocks: tuple[HitClock, ...] = ()
    """The confirmation clocks of the order's hits (:mod:`consumers.hit_clocks`)."""

    def clock(self, hit_id: str) -> HitClock | None:
        return next((clock for clock in self.clocks if clock.hit_id == hit_id), None)

    def with_clock(self, clock: HitClock) -> OrderTrack:
        """The order with ``clock`` in place of the one of its hit (or added)."""
        others = tuple(c for c in self.clocks if c.hit_id != clock.hit_id)
        return replace(self, clocks=(*others, clock))

    @classmethod
    def closed_unknown(cls, closure: Closure, court: str, keys: tuple[bytes, ...], at_us: int
                       ) -> OrderTrack:  # fmt: skip
        """A closure that arrived before (or without) its order: kept so the order, if it
        ever arrives, is refused."""
        return cls(None, court, 0, 0, keys, None, closure, at_us)

    def close(self, closure: Closure, at_us: int, keys: tuple[bytes, ...] = ()) -> OrderTrack:
        if self.closed is not None:
            return self
        merged = tuple(dict.fromkeys((*self.keys, *keys)))
        return replace(self, closed=closure, closed_at_us=at_us, keys=merged)

    @property
    def in_late_window(self) -> bool:
        """Expired, and still on the watchlist for late sightings (not yet purged)."""
        return (
            self.closed is Closure.EXPIRED and self.kind is not None and PURGED not in self.noticed
        )

    def with_notice(self, notice: str) -> OrderTrack:
        return replace(self, noticed=self.noticed | {notice})

    def renewed(self, end_us: int, case_number: str, keys: tuple[bytes, ...]) -> OrderTrack:
        """The same order sent again: a new end is a new period, and its subject's ``keys``
        (a corrected subject) replace the old ones."""
        renewals = self.renewals + (end_us != self.end_us)
        return replace(self, end_us=end_us, case_number=case_number, renewals=renewals, keys=keys)

    def acknowledged(self, status: str) -> OrderTrack:
        return replace(self, status=status)

    def to_bytes(self) -> bytes:
        return json.dumps({
            "kind": self.kind.value if self.kind else None, "court": self.court,
            "issued_at_us": self.issued_at_us, "deadline_us": self.deadline_us,
            "keys": [key.hex() for key in self.keys], "status": self.status,
            "closed": self.closed.value if self.closed else None,
            "closed_at_us": self.closed_at_us, "end_us": self.end_us,
            "case_number": self.case_number, "noticed": sorted(self.noticed),
            "renewals": self.renewals, "applied_us": self.applied_us,
            "clocks": [clock.to_json() for clock in self.clocks],
        }, separators=(",", ":")).encode()  # fmt: skip

    @classmethod
    def from_bytes(cls, raw: bytes) -> OrderTrack:
        data = json.loads(raw)
        return cls(
            kind=OrderKind(data["kind"]) if data.get("kind") else None,
            court=data["court"],
            issued_at_us=data["issued_at_us"],
            deadline_us=data["deadline_us"],
            keys=tuple(bytes.fromhex(key) for key in data.get("keys", ())),
            status=data.get("status"),
            closed=Closure(data["closed"]) if data.get("closed") else None,
            closed_at_us=data.get("closed_at_us"),
            end_us=data.get("end_us"),
            case_number=data.get("case_number", ""),
            noticed=frozenset(data.get("noticed", ())),
            renewals=int(data.get("renewals", 0)),
            applied_us=int(data.get("applied_us", 0)),
            clocks=tuple(HitClock.from_json(item) for item in data.get("clocks", ())),
        )


def tracked(pairs: Iterable[tuple[bytes, bytes]]) -> Iterator[tuple[str, OrderTrack]]:
    """The (order id, tracking state) of each (key, value) pair of the tracking table,
    decoded once for every reader of one pass over it."""
    for raw_id, raw in pairs:
        yield raw_id.decode(), OrderTrack.from_bytes(raw)
