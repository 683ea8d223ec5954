"""The anomaly notices' domain names and the rule of who acknowledges whom (MISSION §3:
each side notifies the other within 24 hours of a system anomaly)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from enum import StrEnum
from typing import Final

__all__ = [
    "ACKNOWLEDGEMENT",
    "ACK_WINDOW",
    "ESCALATION",
    "NOTICE",
    "Side",
    "may_acknowledge",
    "side_of",
]

NOTICE: Final = "cn.zf801.bus.v1.AnomalyNotice"
ACKNOWLEDGEMENT: Final = "cn.zf801.bus.v1.AnomalyAcknowledgement"
ESCALATION: Final = "cn.zf801.bus.v1.AnomalyEscalation"

ACK_WINDOW = dt.timedelta(hours=24)
"""The 24-hour rule: a notice's ``acknowledge_by`` is its ``detected_at`` plus this."""


class Side(StrEnum):
    COURT = "court"
    POLICE = "police"
    BUS = "bus"


_SIDES: Mapping[str, Side] = {
    "court": Side.COURT,
    "command-system": Side.COURT,
    "border-control": Side.POLICE,
    "traffic-management": Side.POLICE,
    "public-security": Side.POLICE,
    "bus": Side.BUS,
}


def side_of(role: str) -> Side | None:
    """The side an agency role reports and acknowledges for; None: neither."""
    return _SIDES.get(role)


def may_acknowledge(reporter_role: str, acknowledger_role: str) -> bool:
    """Whether an agency of ``acknowledger_role`` acknowledges for the other side."""
    reporter, acknowledger = side_of(reporter_role), side_of(acknowledger_role)
    if acknowledger in (None, Side.BUS) or reporter is None:
        return False
    return reporter is Side.BUS or reporter is not acknowledger
