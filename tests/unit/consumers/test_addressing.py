"""The rules that decide whether a verified alert or acknowledgement is believed where it
was found (agency codes from the real agency list, schemas/data/agencies.yaml)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from consumers import alerts
from consumers.addressing import ALERT_WRITER_ROLES, ack_problem, alert_problem
from tests.builders import Records

HIT = "cn.zf801.bus.v1.Hit"
EXPIRY = "cn.zf801.orders.v1.OrderExpiryNotice"
WARNING = "cn.zf801.orders.v1.OrderExpiryWarning"
UNCONFIRMED = "cn.zf801.bus.v1.HitUnconfirmed"
OVERDUE = "cn.zf801.orders.v1.OrderAckOverdue"
ACK = "cn.zf801.orders.v1.OrderAcknowledgement"

BJ_BORDER, BJ_TRAFFIC, BJ_POLICE = "110000230000", "110000110000", "110000000000"
BJ_CHAOYANG = "110105000000"  # a second Beijing public-security unit
SH_BORDER, SH_TRAFFIC = "310000230000", "310000110000"
GZ_BORDER, SZ_BORDER = "440100230000", "440300230000"  # both serve Guangdong's courts


def _ack(court: str, kind: str, unit: str) -> dict[str, Any]:
    order = {"order_id": str(uuid.uuid4()), "enforcing_court_code": court}
    return Records.acknowledgement(order, kind, unit)


@pytest.mark.parametrize(
    ("court", "kind", "unit", "role"),
    [
        ("BJ01", "EXIT_RESTRICTION", BJ_BORDER, "border-control"),
        ("BJ01", "VEHICLE_SEARCH", BJ_TRAFFIC, "traffic-management"),
        ("BJ01", "LOCATE_DEBTOR", BJ_POLICE, "public-security"),
        ("BJ0105", "LOCATE_DEBTOR", BJ_CHAOYANG, "public-security"),
        ("SH01", "VEHICLE_SEARCH", SH_TRAFFIC, "traffic-management"),
        ("GD03", "EXIT_RESTRICTION", GZ_BORDER, "border-control"),
        ("GD03", "EXIT_RESTRICTION", SZ_BORDER, "border-control"),
        ("SPC", "EXIT_RESTRICTION", SH_BORDER, "border-control"),  # national rule
    ],
)
def test_an_acknowledgement_by_a_unit_serving_the_courts_province_is_believed(
    court: str, kind: str, unit: str, role: str
) -> None:
    assert ack_problem(unit, role, _ack(court, kind, unit)) is None


@pytest.mark.parametrize(
    ("kind", "unit", "role", "acting"),
    [
        ("EXIT_RESTRICTION", BJ_TRAFFIC, "traffic-management", "border-control"),
        ("VEHICLE_SEARCH", BJ_POLICE, "public-security", "traffic-management"),
        ("LOCATE_DEBTOR", BJ_BORDER, "border-control", "public-security"),
    ],
)
def test_an_acknowledgement_by_a_role_not_acting_on_the_order_kind_is_refused(
    kind: str, unit: str, role: str, acting: str
) -> None:
    assert ack_problem(unit, role, _ack("BJ01", kind, unit)) == (
        "ROLE_NOT_ALLOWED",
        f"{kind} orders are acknowledged by {acting}, not by {unit} (role {role})",
    )


def test_an_acknowledgement_naming_another_unit_than_its_signer_is_refused() -> None:
    record = _ack("BJ01", "EXIT_RESTRICTION", SH_BORDER)
    assert ack_problem(BJ_BORDER, "border-control", record) == (
        "AGENCY_MISMATCH",
        f"acknowledging_unit_code {SH_BORDER} is not the signer {BJ_BORDER}",
    )


@pytest.mark.parametrize(
    ("court", "kind", "unit", "role"),
    [
        ("BJ01", "EXIT_RESTRICTION", SH_BORDER, "border-control"),
        ("BJ01", "VEHICLE_SEARCH", SH_TRAFFIC, "traffic-management"),
        ("SH01", "LOCATE_DEBTOR", BJ_CHAOYANG, "public-security"),
        ("GD01", "EXIT_RESTRICTION", BJ_BORDER, "border-control"),
    ],
)
def test_an_acknowledgement_by_a_unit_of_another_province_is_refused(
    court: str, kind: str, unit: str, role: str
) -> None:
    assert ack_problem(unit, role, _ack(court, kind, unit)) == (
        "ROLE_NOT_ALLOWED",
        f"unit {unit} does not receive court {court}'s orders",
    )


@pytest.mark.parametrize("court", ["XX99", BJ_POLICE])
def test_an_acknowledgement_naming_no_court_of_the_list_is_refused_not_raised(court: str) -> None:
    problem = ack_problem(BJ_BORDER, "border-control", _ack(court, "EXIT_RESTRICTION", BJ_BORDER))
    assert problem == (
        "ROLE_NOT_ALLOWED",
        f"court_code {court!r} is not a court of the agency list",
    )


def _alert(event_type: str, court: str) -> dict[str, Any]:
    """The fields the rules read of each alert type (the rest does not decide anything)."""
    if event_type == ACK:
        return _ack(court, "EXIT_RESTRICTION", BJ_BORDER)
    return {"order_id": str(uuid.uuid4()), "order_kind": "LOCATE_DEBTOR", "court_code": court}


_WRITERS = [(HIT, "BUS-MATCHER", "bus"), (EXPIRY, "BUS-MATCHER", "bus"),
            (OVERDUE, "BUS-MATCHER", "bus"), (ACK, BJ_BORDER, "border-control")]  # fmt: skip


@pytest.mark.parametrize(("event_type", "signer", "role"), _WRITERS)
def test_an_alert_for_this_court_from_its_writer_is_shown(
    event_type: str, signer: str, role: str
) -> None:
    assert alert_problem("BJ01", event_type, signer, role, _alert(event_type, "BJ01")) is None


@pytest.mark.parametrize(("event_type", "signer", "role"), _WRITERS)
def test_an_alert_addressed_to_another_court_is_misaddressed(
    event_type: str, signer: str, role: str
) -> None:
    assert alert_problem("BJ01", event_type, signer, role, _alert(event_type, "SH01")) == (
        "MISADDRESSED",
        f"{event_type} names court_code SH01 but was read from the alert stream of court BJ01",
    )


_POLICE_ROLES = "border-control, public-security, traffic-management"


@pytest.mark.parametrize(
    ("event_type", "signer", "role", "allowed"),
    [
        (HIT, BJ_POLICE, "public-security", "bus"),
        (HIT, "BJ01", "court", "bus"),
        (EXPIRY, BJ_BORDER, "border-control", "bus"),
        (OVERDUE, "SPC-COMMAND", "command-system", "bus"),
        (ACK, "BUS-MATCHER", "bus", _POLICE_ROLES),
        (ACK, "BJ01", "court", _POLICE_ROLES),
    ],
)
def test_an_alert_signed_by_a_role_that_does_not_write_its_type_is_refused(
    event_type: str, signer: str, role: str, allowed: str
) -> None:
    assert alert_problem("BJ01", event_type, signer, role, _alert(event_type, "BJ01")) == (
        "ROLE_NOT_ALLOWED",
        f"{event_type} on a court's alert stream is signed by {signer} (role {role}); "
        f"allowed: {allowed}",
    )


def test_the_signers_role_is_checked_before_the_address() -> None:
    problem = alert_problem("BJ01", HIT, BJ_POLICE, "public-security", _alert(HIT, "SH01"))
    assert problem is not None
    assert problem[0] == "ROLE_NOT_ALLOWED"


def test_a_record_that_is_no_alert_is_refused() -> None:
    order = Records().person_order("BJ01", "（2026）京01执1号", "11010519491231002X")
    order_type = "cn.zf801.orders.v1.ExitRestrictionOrder"
    assert alert_problem("BJ01", order_type, "BJ01", "court", order) == (
        "ROLE_NOT_ALLOWED",
        f"{order_type} (signed by BJ01, role court) is not an alert: a court's alert stream "
        f"carries only {HIT}, {UNCONFIRMED}, {OVERDUE}, {ACK}, {EXPIRY}, {WARNING}",
    )


@pytest.mark.parametrize(
    ("record_unit", "signer", "role", "expected"),
    [
        (SH_BORDER, SH_BORDER, "border-control",
         ("ROLE_NOT_ALLOWED", f"unit {SH_BORDER} does not receive court BJ01's orders")),
        (BJ_TRAFFIC, BJ_TRAFFIC, "traffic-management",
         ("ROLE_NOT_ALLOWED", f"EXIT_RESTRICTION orders are acknowledged by border-control, "
                              f"not by {BJ_TRAFFIC} (role traffic-management)")),
        (BJ_POLICE, BJ_BORDER, "border-control",
         ("AGENCY_MISMATCH", f"acknowledging_unit_code {BJ_POLICE} is not the signer {BJ_BORDER}")),
    ],
)  # fmt: skip
def test_an_acknowledgement_on_the_right_stream_must_also_pass_the_provincial_rule(
    record_unit: str, signer: str, role: str, expected: tuple[str, str]
) -> None:
    record = _ack("BJ01", "EXIT_RESTRICTION", record_unit)
    assert alert_problem("BJ01", ACK, signer, role, record) == expected


def test_the_alert_subscriber_still_exports_the_writer_roles() -> None:
    assert alerts.ALERT_WRITER_ROLES is ALERT_WRITER_ROLES
    assert "ALERT_WRITER_ROLES" in alerts.__all__
    assert dict(ALERT_WRITER_ROLES) == {
        HIT: {"bus"}, EXPIRY: {"bus"}, WARNING: {"bus"}, OVERDUE: {"bus"}, UNCONFIRMED: {"bus"},
        ACK: {"border-control", "traffic-management", "public-security"},
    }  # fmt: skip
