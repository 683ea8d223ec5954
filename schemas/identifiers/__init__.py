"""Identifier validation and normalisation at the edge, before anything is encoded.

Every ``normalise_*``/``parse_*`` function takes the raw value and the event field it
came from, and returns the normalised value or raises :class:`IdentifierError` whose
message names the field, the value (masked where it is personal data) and the rule.
"""

from schemas.errors import IdentifierError
from schemas.identifiers._text import MAX_INPUT_CHARS, normalise_text, normalise_uuid
from schemas.identifiers.case_number import (
    CASE_KINDS,
    ENFORCEMENT_KINDS,
    MAX_CASE_SEQ,
    CaseNumber,
    normalise_case_number,
    parse_case_number,
)
from schemas.identifiers.citizen import (
    EARLIEST_BIRTH_DATE,
    birth_date_of,
    china_today,
    id_number_check_char,
    mask_id_number,
    normalise_id_number,
)
from schemas.identifiers.court import (
    check_case_number_court,
    normalise_agency_code,
    normalise_court_code,
)
from schemas.identifiers.organisation import (
    CREDIT_CODE_ALPHABET,
    credit_code_check_char,
    normalise_credit_code,
    normalise_organisation_code,
    normalise_party_code,
    organisation_code_check_char,
)
from schemas.identifiers.phone import mask_phone, normalise_phone
from schemas.identifiers.vehicle import (
    PlateKind,
    PlateNumber,
    normalise_plate_number,
    normalise_vin,
    parse_plate_number,
    vin_check_digit,
)

__all__ = [
    "CASE_KINDS",
    "CREDIT_CODE_ALPHABET",
    "EARLIEST_BIRTH_DATE",
    "ENFORCEMENT_KINDS",
    "MAX_CASE_SEQ",
    "MAX_INPUT_CHARS",
    "CaseNumber",
    "IdentifierError",
    "PlateKind",
    "PlateNumber",
    "birth_date_of",
    "check_case_number_court",
    "china_today",
    "credit_code_check_char",
    "id_number_check_char",
    "mask_id_number",
    "mask_phone",
    "normalise_agency_code",
    "normalise_case_number",
    "normalise_court_code",
    "normalise_credit_code",
    "normalise_id_number",
    "normalise_organisation_code",
    "normalise_party_code",
    "normalise_phone",
    "normalise_plate_number",
    "normalise_text",
    "normalise_uuid",
    "normalise_vin",
    "organisation_code_check_char",
    "parse_case_number",
    "parse_plate_number",
    "vin_check_digit",
]
