"""What a query responder remembers across restarts: the queries it answered (so a query
a court sends again under the same correlation id, or one read again after a crash, is
answered once)
and, from them, how much of each quota is used.

One SQLite file per responding unit (WAL), written once per batch of answers after the
broker acknowledged them, and before the batch's offsets are committed. A crash after
the acknowledgement and before this write is the one window where a query read again
would be answered again; the answer's event id is derived from the correlation id and the
unit, so the court's client still shows it once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from consumers.errors import ConsumerError
from consumers.sqlite_store import open_database, write_transaction
from schemas.agencies import Agency
from schemas.settings import QueryQuota, Settings

__all__ = ["Answered", "QuotaLimits", "ResponderState"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answered (
    correlation_id TEXT NOT NULL,
    court TEXT NOT NULL,
    status TEXT NOT NULL,
    answered_us INTEGER NOT NULL,
    PRIMARY KEY (court, correlation_id)
);
CREATE INDEX IF NOT EXISTS answered_by_time ON answered (answered_us);
"""


@dataclass(frozen=True, slots=True)
class Answered:
    """One query this unit answered (FOUND, NOT_FOUND or REFUSED)."""

    correlation_id: str
    court: str
    status: str
    answered_us: int


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """How many answers (refusals excluded) one unit gives within ``window_us``: to one
    court, and in all. 0 is no limit."""

    per_court: int
    per_unit: int
    window_us: int

    @classmethod
    def for_province(cls, settings: Settings, province: str | None) -> QuotaLimits:
        own = settings.query_quotas.get(province or "", QueryQuota())
        per_court, per_unit = own.per_court, own.per_unit
        return cls(
            per_court=settings.query_quota_per_court if per_court is None else per_court,
            per_unit=settings.query_quota_per_unit if per_unit is None else per_unit,
            window_us=int(settings.query_quota_window_s * 1_000_000),
        )


class ResponderState:
    """The answered queries of one unit (``path``) and the quota use they add up to."""

    def __init__(self, path: Path, limits: QuotaLimits) -> None:
        self.path = path
        self.limits = limits
        self._db = open_database(
            path, "answer log", ConsumerError, isolation_level=None,
            check_same_thread=False,
        )  # fmt: skip
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._answers: deque[tuple[int, str]] = deque()  # (answered_us, court), in order
        self._per_court: dict[str, int] = {}

    @classmethod
    def for_unit(cls, settings: Settings, unit: Agency, path: Path | None = None) -> ResponderState:
        """The state of ``unit`` at ``path`` (default: ``<home>/state/responder/<code>.sqlite``)
        with the quota limits of its province."""
        province = unit.province.code if unit.province else None
        default = settings.home / "state" / "responder" / f"{unit.code}.sqlite"
        return cls(path or default, QuotaLimits.for_province(settings, province))

    def load(self, now_us: int) -> None:
        """Count the answers still inside the quota window (after a restart)."""
        rows = self._db.execute(
            "SELECT answered_us, court FROM answered WHERE answered_us > ? AND status != "
            "'REFUSED' ORDER BY answered_us",
            (now_us - self.limits.window_us,),
        )
        for answered_us, court in rows:
            self._count(answered_us, court)

    def answered(self, court: str, correlation_id: str) -> bool:
        """Whether this unit answered ``court``'s query ``correlation_id`` (a correlation id
        is the asking court's: another court reusing it is another query)."""
        row = self._db.execute(
            "SELECT 1 FROM answered WHERE court = ? AND correlation_id = ?",
            (court, correlation_id),
        ).fetchone()
        return row is not None

    def over_quota(self, court: str, now_us: int) -> str | None:
        """Why one more answer to ``court`` now would exceed a quota, or None."""
        self._expire(now_us)
        hours = self.limits.window_us / 3_600_000_000
        window = f"{hours:g} h" if hours >= 1 else f"{self.limits.window_us / 1e6:g} s"
        if self.limits.per_court and self._per_court.get(court, 0) >= self.limits.per_court:
            return (
                f"quota: court {court} has had {self.limits.per_court} answers from this "
                f"unit within {window}"
            )
        if self.limits.per_unit and len(self._answers) >= self.limits.per_unit:
            return f"quota: this unit has given {self.limits.per_unit} answers within {window}"
        return None

    def take(self, court: str, now_us: int) -> None:
        """Count an answer about to be given (before the next query's quota check)."""
        self._count(now_us, court)

    def record(self, answers: Iterable[Answered]) -> None:
        """Remember answers the broker acknowledged (one transaction)."""
        rows = [(a.correlation_id, a.court, a.status, a.answered_us) for a in answers]
        with write_transaction(self._db, "BEGIN"):
            self._db.executemany("INSERT OR IGNORE INTO answered VALUES (?, ?, ?, ?)", rows)

    def close(self) -> None:
        self._db.close()

    def _count(self, answered_us: int, court: str) -> None:
        self._answers.append((answered_us, court))
        self._per_court[court] = self._per_court.get(court, 0) + 1

    def _expire(self, now_us: int) -> None:
        oldest = now_us - self.limits.window_us
        while self._answers and self._answers[0][0] <= oldest:
            _, court = self._answers.popleft()
            left = self._per_court[court] - 1
            if left:
                self._per_court[court] = left
            else:
                del self._per_court[court]
