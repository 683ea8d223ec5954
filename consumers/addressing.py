"""Whether a verified record's signed content confirms where it was found.

A good signature proves who wrote a record, not where it belongs: a genuine hit for one
court, copied byte for byte into another court's alert topic, still verifies. These rules
read the decoded record and say why it must not be acted on there, or None: the signer's
role must be the one that writes the record's type, the court a record names
(``court_code``) must own the stream it was read from, and an acknowledgement must come
from a unit of the role and province that act on the order (the provincial rules of the
agency list). A police unit's action notice must be an ``ActionNotice`` signed by the bus
that names the unit reading it. Pure functions, no Kafka: the worker, the court's alert
subscriber and the unit's notice subscriber share them. Each problem is a (reason code,
detail) pair for the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from consumers.action_notices import ACTION_NOTICE
from consumers.deadlines import ACK_ROLES
from consumers.watchlist import OrderKind
from schemas.agencies import POLICE_ROLES, AgencyRole, load_agencies
from schemas.errors import UnknownAgencyError
from schemas.event_types import (
    ACKNOWLEDGEMENT,
    EXPIRY_NOTICE,
    EXPIRY_WARNING,
    HIT,
    HIT_UNCONFIRMED,
    OVERDUE,
)

__all__ = [
    "ALERT_WRITER_ROLES",
    "NOTICE_WRITER_ROLES",
    "ack_problem",
    "alert_problem",
    "notice_problem",
]


_BUS = frozenset({AgencyRole.BUS.value})
_POLICE = frozenset(role.value for role in POLICE_ROLES)
ALERT_WRITER_ROLES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        HIT: _BUS,
        EXPIRY_NOTICE: _BUS,
        EXPIRY_WARNING: _BUS,
        OVERDUE: _BUS,
        HIT_UNCONFIRMED: _BUS,
        ACKNOWLEDGEMENT: _POLICE,
    }
)
"""Who may sign each kind of alert a court receives (every kind not listed is refused)."""

NOTICE_WRITER_ROLES: Mapping[str, frozenset[str]] = MappingProxyType({ACTION_NOTICE: _BUS})
"""Who may sign what a police unit reads on its action-notices topic: the bus's matcher
(its identity is a bus agency, ``zf801 worker --as``), and nothing else."""

_ADDRESSED_BY_COURT_CODE = frozenset({HIT, EXPIRY_NOTICE, EXPIRY_WARNING, OVERDUE, ACKNOWLEDGEMENT})
"""Alert types whose ``court_code`` names the court whose stream they belong on."""


def ack_problem(
    signer_agency: str, signer_role: str, record: Mapping[str, Any]
) -> tuple[str, str] | None:
    """Why an ``OrderAcknowledgement`` signed by ``signer_agency`` (role ``signer_role``)
    must not be believed, or None: it must come from the police role that acts on the
    order's kind (``ROLE_NOT_ALLOWED``), name its signer as ``acknowledging_unit_code``
    (``AGENCY_MISMATCH``), and the unit must receive the orders of the court it names
    under the provincial rules (``ROLE_NOT_ALLOWED``; also when that court is not in the
    agency list, so no unit receives its orders)."""
    kind = OrderKind(record["order_kind"])
    role = ACK_ROLES[kind]
    if signer_role != role:
        return "ROLE_NOT_ALLOWED", (
            f"{kind} orders are acknowledged by {role}, not by {signer_agency} (role {signer_role})"
        )
    if record["acknowledging_unit_code"] != signer_agency:
        return "AGENCY_MISMATCH", (
            f"acknowledging_unit_code {record['acknowledging_unit_code']} is not the signer "
            f"{signer_agency}"
        )
    court = record["court_code"]
    try:
        serving = load_agencies().units_serving_court(court, AgencyRole(role))
    except UnknownAgencyError:
        return "ROLE_NOT_ALLOWED", f"court_code {court!r} is not a court of the agency list"
    if signer_agency not in {unit.code for unit in serving}:
        return "ROLE_NOT_ALLOWED", f"unit {signer_agency} does not receive court {court}'s orders"
    return None


def alert_problem(
    court: str,
    event_type: str,
    signer_agency: str,
    signer_role: str,
    record: Mapping[str, Any],
) -> tuple[str, str] | None:
    """Why a record of ``event_type`` read from the alert stream of ``court`` must not be
    shown to that court, or None: its type must be an alert and its signer's role the one
    that writes it (``ROLE_NOT_ALLOWED``), its ``court_code`` must be ``court``
    (``MISADDRESSED``), and an acknowledgement must pass :func:`ack_problem`."""
    problem = _writer_problem(
        "a court's alert stream", "an alert", ALERT_WRITER_ROLES, event_type,
        signer_agency=signer_agency, signer_role=signer_role,
    )  # fmt: skip
    if problem is not None:
        return problem
    if event_type in _ADDRESSED_BY_COURT_CODE and record["court_code"] != court:
        return "MISADDRESSED", (
            f"{event_type} names court_code {record['court_code']} but was read from the "
            f"alert stream of court {court}"
        )
    if event_type == HIT_UNCONFIRMED and record["addressed_to"] != court:
        return "MISADDRESSED", (
            f"{event_type} is addressed to {record['addressed_to']} but was read from the "
            f"alert stream of court {court}"
        )
    if event_type == ACKNOWLEDGEMENT:
        return ack_problem(signer_agency, signer_role, record)
    return None


def _writer_problem(
    stream: str,
    kind: str,
    writers: Mapping[str, frozenset[str]],
    event_type: str,
    *,
    signer_agency: str,
    signer_role: str,
) -> tuple[str, str] | None:
    """``ROLE_NOT_ALLOWED`` unless ``event_type`` is a ``kind`` that belongs on ``stream``
    (a key of ``writers``) and is signed by one of the roles that write it."""
    allowed = writers.get(event_type)
    if allowed is None:
        return "ROLE_NOT_ALLOWED", (
            f"{event_type} (signed by {signer_agency}, role {signer_role}) is not {kind}: "
            f"{stream} carries only {', '.join(sorted(writers))}"
        )
    if signer_role not in allowed:
        return "ROLE_NOT_ALLOWED", (
            f"{event_type} on {stream} is signed by {signer_agency} "
            f"(role {signer_role}); allowed: {', '.join(sorted(allowed))}"
        )
    return None


def notice_problem(
    unit: str,
    event_type: str,
    signer_agency: str,
    signer_role: str,
    record: Mapping[str, Any],
) -> tuple[str, str] | None:
    """Why a record of ``event_type`` read from the action-notices topic of police unit
    ``unit`` must not be shown to that unit, or None: it must be an ``ActionNotice`` signed
    by the bus (``ROLE_NOT_ALLOWED``) and name ``unit`` as its ``reporting_unit_code``
    (``MISADDRESSED``: a genuine notice of another unit, copied here)."""
    problem = _writer_problem(
        "a unit's action-notices topic", "an action notice", NOTICE_WRITER_ROLES, event_type,
        signer_agency=signer_agency, signer_role=signer_role,
    )  # fmt: skip
    if problem is None and record["reporting_unit_code"] != unit:
        return "MISADDRESSED", (
            f"{event_type} names reporting_unit_code {record['reporting_unit_code']} but was "
            f"read from the action-notices topic of unit {unit}"
        )
    return problem
