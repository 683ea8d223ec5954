"""The demo's order lifecycle phase (issue 15): what the police units were told at the
point of sighting (action notices), which orders were warned before their period ends,
a retroactive hit (a check-in reported before the court's order, found by the order's
look-back), a hit's confirmation clocks (the court confirms, the station does not: the
hit is escalated), and the 24-hour rule of an anomaly notice: a police unit's notice left
unacknowledged is escalated by the bus, then acknowledged late by the court side."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from consumers.action_notices import ACTION_TOPIC_ID
from consumers.alerts import Alert, AlertSubscriber
from consumers.anomaly_log import escalation_id
from consumers.runtime import Runtime
from ops.cmd_anomaly import read_anomalies
from ops.demo_play import Observed, read_catalog_topic
from ops.deployment import Deployment
from producers.anomalies import AnomalyDesk
from producers.publisher import Publisher
from producers.routes import outgoing_event
from schemas.agencies import load_agencies
from schemas.codec import default_codec
from schemas.identifiers import id_number_check_char
from sign.events import EventVerifier

__all__ = ["LifecycleRun", "lifecycle_table", "play_lifecycle"]

_REPORTER, _COURT, _BUS, _STATION = "110000000000", "BJ01", "BUS-AUDIT", "110105000000"
_HOTEL = "cn.zf801.sightings.v1.HotelCheckIn"
_LOCATE = "cn.zf801.orders.v1.LocateDebtorOrder"
_CONFIRMATION = "cn.zf801.bus.v1.HitConfirmation"
_WAIT_S = 60.0


@dataclass
class LifecycleRun:
    """What the phase saw."""

    actions: Counter[str] = field(default_factory=Counter)
    """Action notices by action, each verified as the bus's."""
    unverified_notices: int = 0
    warned: int = 0
    expiring_warned: bool = False
    late_hits: int = 0
    anomaly: str = ""
    anomaly_statuses: list[str] = field(default_factory=list)
    retroactive_hits: int = 0
    escalation: str = ""
    """The escalation of the hit the court confirmed and the station did not."""

    @property
    def hits(self) -> int:
        """The hits the phase itself made (beside the scenario's): the retroactive one and
        the live one the station left unconfirmed."""
        return self.retroactive_hits + (self.escalation not in ("", "no hit"))

    @property
    def passed(self) -> bool:
        return (
            sum(self.actions.values()) > 0
            and not self.unverified_notices
            and self.expiring_warned
            and self.retroactive_hits == 1
            and self.escalation == "level 1 to SPC, awaiting POLICE"
            and self.anomaly_statuses == ["OVERDUE", "ESCALATED", "ACKNOWLEDGED_LATE"]
        )


def play_lifecycle(bus: Deployment, observed: Observed, expiring_order: str) -> LifecycleRun:
    run = LifecycleRun(warned=len(observed.expiry_warnings),
                       expiring_warned=expiring_order in observed.expiry_warnings,
                       late_hits=sum(hit.late for hit in observed.hits.values()))  # fmt: skip
    _count_notices(bus, run)
    run.retroactive_hits = _retroactive_hit(bus)
    run.escalation = _escalated_hit(bus)
    _anomaly(bus, run)
    return run


def _retroactive_hit(bus: Deployment) -> int:
    """A station reports a check-in; then the court orders the person located: the order's
    look-back finds the check-in. The retroactive hits of that order on the court's stream."""
    id_number, now = _person(), dt.datetime.now(dt.UTC)
    order = _locate_order(id_number, now, _COURT, "（2026）京01执802号")
    _publish(bus, _STATION, _HOTEL, _check_in(id_number, now))
    _publish(bus, _COURT, _LOCATE, order)
    hits = _alerts(bus, _COURT, lambda a: a.kind == "Hit" and a.record["retroactive"]
                   and str(a.record["order_id"]) == order["order_id"])  # fmt: skip
    return len(hits)


def _escalated_hit(bus: Deployment) -> str:
    """The SPC orders a person located; a station checks the person in: a live hit. The
    SPC confirms it, the station does not: at its limit (the demo's, seconds) the hit is
    escalated to the SPC (above it, no court: the command system hears at twice the limit)."""
    id_number, now = _person(), dt.datetime.now(dt.UTC)
    order = _locate_order(id_number, now, "SPC", "（2026）最高法执803号")
    _publish(bus, "SPC", _LOCATE, order)
    bus.wait_orders_applied(_WAIT_S)
    _publish(bus, _STATION, _HOTEL, _check_in(id_number, dt.datetime.now(dt.UTC)))
    mine = str(order["order_id"])
    hits = _alerts(bus, "SPC", lambda a: a.kind == "Hit" and str(a.record["order_id"]) == mine)
    if not hits:
        return "no hit"
    hit = hits[0]
    _publish(bus, "SPC", _CONFIRMATION, {
        "hit_id": str(hit.record["hit_id"]), "court_code": "SPC", "confirmed_by": "执行指挥中心",
        "confirmed_at": dt.datetime.now(dt.UTC), "note": None, "order_id": mine,
    })  # fmt: skip
    found = _alerts(bus, "SPC", lambda a: a.kind == "HitUnconfirmed"
                    and str(a.record["order_id"]) == mine)  # fmt: skip
    if not found:
        return "none"
    record = found[0].record
    return (f"level {record['level']} to {record['addressed_to']}, awaiting "
            f"{', '.join(record['awaiting'])}")  # fmt: skip


def _person() -> str:
    now = dt.datetime.now(dt.UTC)
    first17 = f"110105{1990 + now.second % 10}0101{now.microsecond % 1000:03d}"
    return first17 + id_number_check_char(first17)


def _check_in(id_number: str, now: dt.datetime) -> dict[str, Any]:
    return {
        "sighting_id": str(uuid.uuid4()), "reporting_unit_code": _STATION, "observed_at": now,
        "person": {"name": "钱七", "id_number": id_number}, "hotel_name": "如家酒店（朝阳店）",
        "hotel_address": "北京市朝阳区建国路88号", "room": "0801", "checked_in_at": now,
        "expected_check_out": None, "registered_phone": "13800138000",
    }  # fmt: skip


def _publish(bus: Deployment, agency: str, schema: str, record: dict[str, Any]) -> None:
    with Publisher(bus.keystore.signer_for(agency), settings=bus.settings) as publisher:
        publisher.publish(outgoing_event(schema, record))


def _alerts(bus: Deployment, court: str, wanted: Callable[[Alert], bool]) -> list[Alert]:
    """The wanted alerts of ``court``'s stream, once there are any (or none, in time)."""
    runtime = Runtime.connect(court, bus.settings)
    try:
        subscriber = AlertSubscriber(runtime, court)
        deadline = time.monotonic() + _WAIT_S
        while time.monotonic() < deadline:
            found = [alert for alert in subscriber.read(until_idle_s=1.0) if wanted(alert)]
            if found:
                return found
        return []
    finally:
        runtime.close()


def _locate_order(id_number: str, now: dt.datetime, court: str, case: str) -> dict[str, Any]:
    return {
        "order_id": str(uuid.uuid4()), "case_number": case, "enforcing_court_code": court,
        "handler": {"name": "王法官", "phone": "13900139000"},
        "subject": {"name": "钱七", "id_number": id_number},
        "control_period_start": now - dt.timedelta(days=1),
        "control_period_end": now + dt.timedelta(days=90),
        "police_requirements": "发现后立即控制并通知承办人",
        "sealed_documents": [{"kind": "DETENTION_DECISION", "document_id": f"{case}之一",
                              "sha256": bytes(32), "title": "拘留决定书"}],
        "province_code": "11", "issued_at": now,
    }  # fmt: skip


def _count_notices(bus: Deployment, run: LifecycleRun) -> None:
    verifier = EventVerifier(bus.keystore.trust_store())
    for unit in load_agencies().police_units():
        for message in read_catalog_topic(bus, ACTION_TOPIC_ID, unit=unit.code):
            signature = verifier.verify(message.key, message.value, list(message.headers))
            if signature.role != "bus":
                run.unverified_notices += 1
                continue
            run.actions[default_codec().decode(message.value)[1]["action"]] += 1


def _anomaly(bus: Deployment, run: LifecycleRun) -> None:
    """A notice detected 25 hours ago: overdue, escalated once, acknowledged late."""
    runtime = {code: Runtime.connect(code, bus.settings) for code in (_REPORTER, _COURT, _BUS)}
    desks = {code: AnomalyDesk(Publisher(rt.signer, settings=bus.settings))
             for code, rt in runtime.items()}  # fmt: skip
    try:
        run.anomaly, _ = desks[_REPORTER].report(
            component="旅馆业治安管理信息系统接口", severity="HIGH",
            description="入住数据推送中断，已恢复并补传（演示）",
            detected_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=25),
        )  # fmt: skip
        case = read_anomalies(runtime[_COURT]).cases[run.anomaly]
        run.anomaly_statuses.append(case.status(dt.datetime.now(dt.UTC)).value)
        desks[_BUS].escalate(case.notice_id, case.reported_by, case.acknowledge_by,
                             escalation_id(case.notice_id))  # fmt: skip
        case = read_anomalies(runtime[_COURT]).cases[run.anomaly]
        run.anomaly_statuses.append(case.status(dt.datetime.now(dt.UTC)).value)
        desks[_COURT].acknowledge(case.notice_id, case.reporter_role, note="已收到（演示）")
        case = read_anomalies(runtime[_COURT]).cases[run.anomaly]
        run.anomaly_statuses.append(case.status(dt.datetime.now(dt.UTC)).value)
    finally:
        for desk in desks.values():
            desk.publisher.close()
        for rt in runtime.values():
            rt.close()


def lifecycle_table(run: LifecycleRun) -> Table:
    table = Table(title="order lifecycle: action notices, expiry warnings, anomaly (24 h rule)")
    table.add_column("what")
    table.add_column("seen")
    actions = ", ".join(f"{action} {n}" for action, n in sorted(run.actions.items()))
    table.add_row("action notices to the reporting units", actions or "none")
    table.add_row("action notices not the bus's", str(run.unverified_notices))
    table.add_row("orders warned before their period ends", str(run.warned))
    table.add_row("the expiring order warned", "yes" if run.expiring_warned else "NO")
    table.add_row("late sightings (hits flagged late)", str(run.late_hits))
    table.add_row("retroactive hits (a check-in before the order)", str(run.retroactive_hits))
    table.add_row("a hit the court confirmed, the station not", run.escalation)
    table.add_row(f"anomaly {run.anomaly} of {_REPORTER}", " -> ".join(run.anomaly_statuses))
    return table
