"""Court codes and agency codes, checked against the agency list (data), and the check
that a case number belongs to the enforcing court."""

from __future__ import annotations

import datetime as dt

from schemas.agencies import AgencyList, AgencyRole, load_agencies
from schemas.errors import UnknownAgencyError
from schemas.identifiers._text import Kind, fail, prepare
from schemas.identifiers.case_number import CaseNumber, parse_case_number

__all__ = ["check_case_number_court", "normalise_agency_code", "normalise_court_code"]

_COURT = Kind("court code", "court_code", None)
_AGENCY = Kind("agency code", "agency_code", None)
_CASE = Kind("case number (案号)", "case_number", None)


def normalise_court_code(
    value: object, field: str = "court_code", *, agencies: AgencyList | None = None
) -> str:
    """The court code (ASCII upper case) of a court in the agency list, or an error.

    Rules: ``court_code.format`` (``^[A-Z0-9]{2,16}$``), ``court_code.unknown`` (not a
    court in the list), plus ``.required``, ``.type``, ``.characters``, ``.length``.
    """
    return _lookup(value, field, _COURT, AgencyRole.COURT, agencies)


def normalise_agency_code(
    value: object,
    field: str = "agency_code",
    *,
    role: AgencyRole | None = None,
    agencies: AgencyList | None = None,
) -> str:
    """The code of an agency in the list (with ``role`` if given), or an error.

    Rules: ``agency_code.format``, ``agency_code.unknown``, plus the common ones.
    """
    return _lookup(value, field, _AGENCY, role, agencies)


def _lookup(
    value: object, field: str, kind: Kind, role: AgencyRole | None, agencies: AgencyList | None
) -> str:
    text = prepare(value, field, kind).upper()
    if not all(ch.isascii() and (ch.isalnum() or ch == "-") for ch in text) or len(text) > 32:
        reason = "must be ASCII letters, digits and hyphens (courts: ^[A-Z0-9]{2,16}$)"
        fail(kind, field, "format", reason, text)
    try:
        agency = (agencies or load_agencies()).get(text)
    except UnknownAgencyError:
        fail(kind, field, "unknown", "is not in the agency list", text)
    if role is not None and agency.role is not role:
        fail(kind, field, "unknown", f"is a {agency.role} agency, not {role}", text)
    return text


def check_case_number_court(
    case_number: CaseNumber | object,
    court_code: str,
    field: str = "case_number",
    *,
    agencies: AgencyList | None = None,
    today: dt.date | None = None,
) -> CaseNumber:
    """The parsed case number if it carries the court's case-number abbreviation
    (法院代字), e.g. （2016）京01执123号 for BJ01; rule ``case_number.court`` otherwise.

    ``court_code`` must already be a known court (see :func:`normalise_court_code`).
    """
    case = (
        case_number
        if isinstance(case_number, CaseNumber)
        else parse_case_number(case_number, field, today=today)
    )
    court = (agencies or load_agencies()).get_court(court_code)
    if case.court_abbr != court.case_abbr:
        reason = (
            f"was filed at the court with abbreviation {case.court_abbr}, "
            f"not at {court.code} ({court.case_abbr})"
        )
        fail(_CASE, field, "court", reason, str(case))
    return case
