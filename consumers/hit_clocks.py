"""Hit confirmation clocks: a hit must be confirmed by both sides, the issuing court (the
order still stands and it wants action: ``HitConfirmation``) and the police unit that
reported the sighting (the encounter and the action taken: ``EncounterConfirmation``),
each within a time limit set per order kind and province (defaults like NCIC's: 10
minutes for the urgent kinds, a person to detain or stop at the border, 1 hour for the
routine one, a vehicle). A hit still awaiting a side when its limit passes is escalated
(``HitUnconfirmed``): at level 1 to the issuing court and its higher court, at level 2
(twice the limit) to the enforcement command system, for the court's province.

Pure rules and state, no Kafka: a clock lives in its order's tracking
(:class:`consumers.tracking.OrderTrack`), is started from the order ledger when the
matcher made the hit (sent as soon as the hit's transaction is committed: a worker
killed in between loses that hit's clock, never the hit), and is watched by
:class:`consumers.deadlines.Deadlines`, which marks each escalation sent in the tracking,
so a restarted worker neither loses a clock nor sends an escalation twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from consumers.watchlist import OrderKind
from schemas.agencies import AgencyList, AgencyRole

__all__ = [
    "COURT",
    "DEFAULT_LIMITS_S",
    "POLICE",
    "HitClock",
    "HitPolicy",
    "escalation_mark",
    "higher_court",
]

COURT, POLICE = "COURT", "POLICE"
DEFAULT_LIMITS_S: Mapping[OrderKind, float] = {
    OrderKind.EXIT_RESTRICTION: 600.0,  # urgent: stop the departure at the border port
    OrderKind.LOCATE_DEBTOR: 600.0,  # urgent: detain under the detention decision
    OrderKind.VEHICLE_SEARCH: 3600.0,  # routine: a vehicle does not leave the country
}
LEVELS = (1, 2)


@dataclass(frozen=True, slots=True)
class HitClock:
    """One hit's confirmations: when it was made, by whose sighting, and when each side
    confirmed (None: not yet)."""

    hit_id: str
    unit: str
    matched_us: int
    court_us: int | None = None
    police_us: int | None = None

    @property
    def awaiting(self) -> list[str]:
        return [side for side, at in ((COURT, self.court_us), (POLICE, self.police_us))
                if at is None]  # fmt: skip

    def confirmed(self, side: str, at_us: int) -> HitClock:
        if side == COURT:
            return self if self.court_us is not None else replace(self, court_us=at_us)
        return self if self.police_us is not None else replace(self, police_us=at_us)

    def to_json(self) -> list[Any]:
        return [self.hit_id, self.unit, self.matched_us, self.court_us, self.police_us]

    @classmethod
    def from_json(cls, data: list[Any]) -> HitClock:
        return cls(str(data[0]), str(data[1]), int(data[2]), data[3], data[4])


def escalation_mark(hit_id: str, level: int) -> str:
    """The :attr:`OrderTrack.noticed` mark of a hit's escalation at ``level``."""
    return f"unconfirmed:{hit_id}:{level}"


def higher_court(court: str, agencies: AgencyList) -> str | None:
    """The court above ``court``: the court whose code is the longest proper prefix of its
    code (BJ0105 -> BJ01 -> BJ), above a high court the SPC; None above the SPC."""
    codes = [c.code for c in agencies.courts()]
    above = [code for code in codes if code != court and court.startswith(code)]
    if above:
        return max(above, key=len)
    return "SPC" if court != "SPC" and "SPC" in codes else None


class HitPolicy:
    """The time limits (per kind, and per province and kind) and who hears of an
    unconfirmed hit. ``limits_s`` overrides the defaults: ``{"VEHICLE_SEARCH": 1800,
    "44/LOCATE_DEBTOR": 300}`` (a province's own rule before the national one)."""

    def __init__(self, agencies: AgencyList, limits_s: Mapping[str, float]) -> None:
        self._agencies = agencies
        self._limits: dict[tuple[str | None, OrderKind], int] = {
            (None, kind): int(seconds * 1_000_000) for kind, seconds in DEFAULT_LIMITS_S.items()
        }
        provinces = set(agencies.provinces())
        for name, seconds in limits_s.items():
            province, _, kind = name.rpartition("/")
            if kind not in OrderKind.__members__ or (province and province not in provinces):
                raise ValueError(
                    f"hit_confirm_s key {name!r}: must be KIND or PROVINCE/KIND, KIND one of "
                    f"{', '.join(OrderKind)}, PROVINCE a key of the province rules"
                )
            if seconds <= 0:
                raise ValueError(f"hit_confirm_s {name!r}: {seconds} must be > 0 seconds")
            self._limits[(province or None, OrderKind(kind))] = int(seconds * 1_000_000)
        commands = agencies.with_role(AgencyRole.COMMAND_SYSTEM)
        self.command = commands[0].code if commands else None

    def province_of(self, court: str) -> str:
        province = self._agencies.get(court).province
        return province.code if province else "national"

    def limit_us(self, kind: OrderKind, court: str) -> int:
        province = self.province_of(court)
        return self._limits.get((province, kind), self._limits[(None, kind)])

    def due_us(self, clock: HitClock, kind: OrderKind, court: str, level: int) -> int:
        return clock.matched_us + level * self.limit_us(kind, court)

    def addressees(self, court: str, level: int) -> list[str]:
        """Who hears of an unconfirmed hit at ``level``: the court and its higher court,
        then the command system."""
        if level == 1:
            above = higher_court(court, self._agencies)
            return [court, *([above] if above else [])]
        return [self.command] if self.command else []
