"""What the command centre shows, computed from the records on the topics: pure, fed one
decoded record at a time (:meth:`Tally.observe`), asked for a view at a time.

An order is *active* from its record until its release, the bus's expiry notice or the
end of its control period; it is *pending* while no police unit has acknowledged it, and
*overdue* when pending longer than the bus's acknowledgement timeout. Orders and queries
count for the province of their court (``national`` for the SPC).
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.agencies import NATIONAL, AgencyList, load_agencies
from schemas.errors import BusError
from schemas.event_types import ACKNOWLEDGEMENT, EXPIRY_NOTICE, HIT, ORDERS, OVERDUE, RELEASE
from schemas.queries import QUERY_KINDS
from schemas.regions import province as region

__all__ = ["LATENCY_BUCKETS_MS", "ORDER_KINDS", "Tally"]

ORDER_KINDS = tuple(sorted(name.rsplit(".", 1)[1] for name in ORDERS))
LATENCY_BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
_DEAD_LETTER = "cn.zf801.bus.v1.DeadLetter"
_QUERIES = frozenset(kind.query_schema for kind in QUERY_KINDS)
_RESULTS = frozenset(kind.result_schema for kind in QUERY_KINDS)
_HIT_MINUTES = 60
_COURT_ITEMS = 200


@dataclass(slots=True)
class _Order:
    order_id: str
    kind: str
    court: str
    province: str
    case_number: str
    issued: datetime
    ends: datetime
    closed: str = ""  # RELEASED or EXPIRED
    acknowledged: str = ""  # the first unit's status

    def active(self, now: datetime) -> bool:
        return not self.closed and self.ends > now


def _histogram(values_ms: list[float]) -> dict[str, list[int]]:
    """Counts per bucket (upper bounds in ms, then one for everything slower)."""
    counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    for value in values_ms:
        counts[bisect.bisect_left(LATENCY_BUCKETS_MS, value)] += 1
    return {"buckets_ms": list(LATENCY_BUCKETS_MS), "counts": counts}


@dataclass
class Tally:
    """Every figure of the centre, kept up to date from the records it is shown."""

    ack_timeout: timedelta
    agencies: AgencyList = field(default_factory=load_agencies)
    orders: dict[str, _Order] = field(default_factory=dict)
    _early: dict[str, dict[str, str]] = field(
        default_factory=lambda: {"closed": {}, "acknowledged": {}}
    )
    hits: list[tuple[datetime, str, float, dict[str, Any]]] = field(default_factory=list)
    overdue_alerts: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: Counter[str] = field(default_factory=Counter)
    queries: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    answered_ms: dict[str, float] = field(default_factory=dict)
    records: int = 0
    _placed: dict[tuple[str, int, int], str] = field(default_factory=dict)
    """Where each order counted was read: a dead letter naming that place takes it out."""
    _refused: set[tuple[str, int, int]] = field(default_factory=set)
    """Places the processors dead-lettered (read before the order at that place came)."""

    def province_of(self, court: str) -> str:
        try:
            return self.agencies.rule_province(court)
        except BusError:  # a court not in this deployment's list (or not a court)
            return NATIONAL

    def observe(
        self,
        type_name: str,
        record: Mapping[str, Any],
        place: tuple[str, int, int] | None = None,
    ) -> None:
        """Take one decoded record (``type_name``: its Avro full name; ``place``: topic,
        partition and offset it was read at) into account. An order the processors
        refused (a dead letter names its place: a forged key, another court's name) is
        not counted, whichever of the two is read first."""
        self.records += 1
        if type_name in ORDERS:
            if place is not None and place in self._refused:
                return
            self._order(type_name.rsplit(".", 1)[1], record, place)
        elif type_name in (RELEASE, EXPIRY_NOTICE):
            closed = "RELEASED" if type_name == RELEASE else "EXPIRED"
            self._close(str(record["order_id"]), closed)
        elif type_name == ACKNOWLEDGEMENT:
            self._acknowledge(str(record["order_id"]), str(record["status"]))
        elif type_name == HIT:
            self._hit(record)
        elif type_name == OVERDUE:
            self.overdue_alerts.append(dict(record))
        elif type_name == _DEAD_LETTER:
            self.dead_letters[str(record["reason"])] += 1
            self._refuse(record.get("original"))
        elif type_name in _QUERIES:
            court = str(record["requesting_court_code"])
            self.queries.setdefault(str(record["correlation_id"]), (record["requested_at"], court))
        elif type_name in _RESULTS:
            self._answer(str(record["correlation_id"]), record["answered_at"])

    def _refuse(self, original: Mapping[str, Any] | None) -> None:
        if not original:
            return
        place = (str(original["topic"]), int(original["partition"]), int(original["offset"]))
        self._refused.add(place)
        order_id = self._placed.pop(place, None)
        if order_id is not None:
            self.orders.pop(order_id, None)

    def _order(
        self, kind: str, record: Mapping[str, Any], place: tuple[str, int, int] | None
    ) -> None:
        order_id, court = str(record["order_id"]), str(record["enforcing_court_code"])
        if order_id in self.orders:
            return  # a copy: the first one counts
        if place is not None:
            self._placed[place] = order_id
        order = _Order(
            order_id, kind, court, self.province_of(court), str(record["case_number"]),
            record["issued_at"], record["control_period_end"],
        )  # fmt: skip
        order.closed = self._early["closed"].pop(order_id, "")
        order.acknowledged = self._early["acknowledged"].pop(order_id, "")
        self.orders[order_id] = order

    def _close(self, order_id: str, how: str) -> None:
        self._first(order_id, "closed", how)

    def _acknowledge(self, order_id: str, status: str) -> None:
        self._first(order_id, "acknowledged", status)

    def _first(self, order_id: str, attribute: str, value: str) -> None:
        """Set an order's ``attribute`` once; kept for the order when it comes later (the
        acknowledgements have a topic of their own, read in no order with the orders)."""
        order = self.orders.get(order_id)
        if order is None:
            self._early[attribute].setdefault(order_id, value)
        elif not getattr(order, attribute):
            setattr(order, attribute, value)

    def _hit(self, record: Mapping[str, Any]) -> None:
        matched: datetime = record["matched_at"]
        latency = (matched - record["summary"]["observed_at"]).total_seconds() * 1000
        court = str(record["court_code"])
        entry = {
            "order_id": str(record["order_id"]), "kind": str(record["summary"]["kind"]),
            "place": str(record["summary"]["place"]), "case_number": str(record["case_number"]),
            "at": matched.isoformat(),
        }  # fmt: skip
        self.hits.append((matched, court, max(0.0, latency), entry))

    def _answer(self, correlation_id: str, answered: datetime) -> None:
        asked = self.queries.get(correlation_id)
        if asked is not None and correlation_id not in self.answered_ms:
            self.answered_ms[correlation_id] = (answered - asked[0]).total_seconds() * 1000

    # --- views ---------------------------------------------------------------------------
    def _pending(self, order: _Order, now: datetime) -> tuple[bool, bool]:
        pending = order.active(now) and not order.acknowledged
        return pending, pending and now - order.issued > self.ack_timeout

    def _per_minute(self, hits: list[tuple[datetime, str, float, dict[str, Any]]],
                    now: datetime) -> list[list[int]]:  # fmt: skip
        """[minute start (unix s), hits] for the last hour, oldest first."""
        end = int(now.timestamp()) // 60 * 60
        counts: Counter[int] = Counter(int(at.timestamp()) // 60 * 60 for at, *_ in hits)
        return [[m, counts.get(m, 0)] for m in range(end - 60 * (_HIT_MINUTES - 1), end + 60, 60)]

    def national(self, now: datetime) -> dict[str, Any]:
        """The national view: totals, then one row per province."""
        provinces: dict[str, dict[str, Any]] = defaultdict(_province_row)
        active: Counter[str] = Counter()
        pending = overdue = 0
        for order in self.orders.values():
            row = provinces[order.province]
            if order.active(now):
                active[order.kind] += 1
                row["active"] += 1
            late, over = self._pending(order, now)
            pending, overdue = pending + late, overdue + over
            row["pending"] += late
            row["overdue"] += over
        for _, court, _, _ in self.hits:
            provinces[self.province_of(court)]["hits"] += 1
        for _, court in self.queries.values():
            provinces[self.province_of(court)]["queries"] += 1
        latencies = list(self.answered_ms.values())
        return {
            "active": {kind: active.get(kind, 0) for kind in ORDER_KINDS},
            "active_total": sum(active.values()),
            "pending": pending,
            "overdue": overdue,
            "hits_total": len(self.hits),
            "hits_per_minute": self._per_minute(self.hits, now),
            "hit_latency": _histogram([h[2] for h in self.hits]),
            "queries": {
                "asked": len(self.queries),
                "answered": len(latencies),
                "latency": _histogram(latencies),
            },
            "dead_letters": dict(sorted(self.dead_letters.items())),
            "provinces": [
                {"province": code, **_names(code), **provinces[code]}
                for code in sorted(provinces, key=lambda c: (-provinces[c]["pending"], c))
            ],
        }

    def court(self, code: str, now: datetime) -> dict[str, Any]:
        """One court's drill-down: its orders (newest first) and its alerts."""
        mine = sorted(
            (o for o in self.orders.values() if o.court == code),
            key=lambda o: o.issued, reverse=True,
        )  # fmt: skip
        orders = []
        for order in mine[:_COURT_ITEMS]:
            late, over = self._pending(order, now)
            state = order.closed or ("ACTIVE" if order.active(now) else "ENDED")
            orders.append({
                "order_id": order.order_id, "kind": order.kind, "case_number": order.case_number,
                "state": state, "acknowledged": order.acknowledged or ("OVERDUE" if over else
                                                                        "PENDING" if late else ""),
                "ends": order.ends.isoformat(),
            })  # fmt: skip
        hits = [entry for _, court, _, entry in self.hits if court == code]
        overdue = [
            {"order_id": str(a["order_id"]), "kind": "OVERDUE", "place": str(a["awaited_role"]),
             "case_number": "", "at": a["detected_at"].isoformat()}
            for a in self.overdue_alerts if a["court_code"] == code
        ]  # fmt: skip
        alerts = sorted(hits + overdue, key=lambda a: a["at"], reverse=True)[:_COURT_ITEMS]
        return {
            "court": code,
            "orders_total": len(mine),
            "active_total": sum(o.active(now) for o in mine),
            "orders": orders,
            "hits_total": len(hits),
            "alerts": alerts,
        }


def _names(code: str) -> dict[str, str]:
    if code == NATIONAL:
        return {"name": "全国", "iso": "CN"}
    try:
        found = region(code)
    except (KeyError, ValueError):
        return {"name": code, "iso": code}
    return {"name": found.name, "iso": found.iso}


def _province_row() -> dict[str, Any]:
    return {"active": 0, "pending": 0, "overdue": 0, "hits": 0, "queries": 0}
