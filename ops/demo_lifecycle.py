"""The demo's order lifecycle phase (issue 15): what the police units were told at the
point of sighting (action notices), which orders were warned before their period ends,
and the 24-hour rule of an anomaly notice: a police unit's notice left unacknowledged is
escalated by the bus, then acknowledged late by the court side."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from rich.table import Table

from consumers.action_notices import ACTION_TOPIC_ID
from consumers.anomaly_log import escalation_id
from consumers.runtime import Runtime
from ops.cmd_anomaly import read_anomalies
from ops.demo_play import Observed, read_catalog_topic
from ops.deployment import Deployment
from producers.anomalies import AnomalyDesk
from producers.publisher import Publisher
from schemas.agencies import load_agencies
from schemas.codec import default_codec
from sign.events import EventVerifier

__all__ = ["LifecycleRun", "lifecycle_table", "play_lifecycle"]

_REPORTER, _COURT, _BUS = "110000000000", "BJ01", "BUS-AUDIT"


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

    @property
    def passed(self) -> bool:
        return (
            sum(self.actions.values()) > 0
            and not self.unverified_notices
            and self.expiring_warned
            and self.anomaly_statuses == ["OVERDUE", "ESCALATED", "ACKNOWLEDGED_LATE"]
        )


def play_lifecycle(bus: Deployment, observed: Observed, expiring_order: str) -> LifecycleRun:
    run = LifecycleRun(warned=len(observed.expiry_warnings),
                       expiring_warned=expiring_order in observed.expiry_warnings,
                       late_hits=sum(hit.late for hit in observed.hits.values()))  # fmt: skip
    _count_notices(bus, run)
    _anomaly(bus, run)
    return run


def _count_notices(bus: Deployment, run: LifecycleRun) -> None:
    verifier = EventVerifier(bus.keystore.trust_store())
    for province in load_agencies().provinces():
        for message in read_catalog_topic(bus, ACTION_TOPIC_ID, province):
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
    table.add_row(f"anomaly {run.anomaly} of {_REPORTER}", " -> ".join(run.anomaly_statuses))
    return table
