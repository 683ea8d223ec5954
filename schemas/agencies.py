"""The agencies on the bus (courts, police units, the SPC's command system, the bus's
processors) and the provincial routing rules, loaded from data (``schemas/data/agencies.yaml``
by default, or a deployment's own file in the same format).

Routing is data, not code: which border-control, traffic-management and public-security
units receive the orders of a province's courts is a provincial rule in the file
(:meth:`AgencyList.units_serving_court`), as MISSION §3 lets provinces set local rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType

import yaml

from schemas.errors import AgencyListError, UnknownAgencyError
from schemas.files import read_limited
from schemas.regions import PROVINCES, Province

__all__ = [
    "AGENCY_LIST_FORMAT",
    "MAX_AGENCY_LIST_BYTES",
    "NATIONAL",
    "POLICE_ROLES",
    "Agency",
    "AgencyList",
    "AgencyRole",
    "agencies_in_province",
    "court_for_case_abbr",
    "courts",
    "get_agency",
    "load_agencies",
    "parse_agency_list",
    "police_units",
    "units_serving_court",
]

AGENCY_LIST_FORMAT = "zf801-agencies/1"
NATIONAL = "national"  # the province_rules key for courts without a province (the SPC)
MAX_AGENCY_LIST_BYTES = 16 << 20
"""Largest agency list file read (a larger one is refused unread): the packaged one is some
8 KB, a deployment's with every court and police unit of the country a few hundred KB, so
this bound leaves a wide margin and still keeps a wrong file from filling memory."""


class AgencyRole(StrEnum):
    """What an agency does on the bus."""

    COURT = "court"
    BORDER_CONTROL = "border-control"
    TRAFFIC_MANAGEMENT = "traffic-management"
    PUBLIC_SECURITY = "public-security"
    BUS = "bus"
    COMMAND_SYSTEM = "command-system"
    LIST_SUBSCRIBER = "list-subscriber"
    """An agency outside the courts and the police that enforces restrictions from the
    dishonest-debtor list (a ticketing gateway, a registry); enrolled by the court side."""


POLICE_ROLES: frozenset[AgencyRole] = frozenset(
    {AgencyRole.BORDER_CONTROL, AgencyRole.TRAFFIC_MANAGEMENT, AgencyRole.PUBLIC_SECURITY}
)

_CODE_PATTERNS: Mapping[AgencyRole, re.Pattern[str]] = MappingProxyType(
    {
        AgencyRole.COURT: re.compile(r"[A-Z0-9]{2,16}"),
        AgencyRole.BORDER_CONTROL: re.compile(r"[0-9]{12}"),
        AgencyRole.TRAFFIC_MANAGEMENT: re.compile(r"[0-9]{12}"),
        AgencyRole.PUBLIC_SECURITY: re.compile(r"[0-9]{12}"),
        AgencyRole.BUS: re.compile(r"BUS-[A-Z][A-Z0-9]{1,15}"),
        AgencyRole.COMMAND_SYSTEM: re.compile(r"SPC-[A-Z][A-Z0-9]{1,15}"),
        AgencyRole.LIST_SUBSCRIBER: re.compile(r"SUB-[A-Z][A-Z0-9]{1,15}"),
    }
)
_CASE_ABBR = re.compile(r"最高法|(?P<char>[\u4e00-\u9fff])(?P<digits>[0-9]{2}|[0-9]{4})?")


@dataclass(frozen=True, slots=True)
class Agency:
    """One agency. ``province`` is None for national bodies and the bus's processors;
    ``case_abbr`` (法院代字, e.g. 京01) is set for courts only."""

    code: str
    name: str
    role: AgencyRole
    province: Province | None
    case_abbr: str | None = None
    name_en: str = ""

    @property
    def source(self) -> str:
        """The CloudEvents ``ce_source`` of this agency: ``zf801:agency/<code>``."""
        return f"zf801:agency/{self.code}"

    @property
    def is_police(self) -> bool:
        return self.role in POLICE_ROLES


@dataclass(frozen=True)
class AgencyList:
    """A loaded, checked agency list with its provincial rules."""

    agencies: Mapping[str, Agency]
    rules: Mapping[str, Mapping[AgencyRole, tuple[str, ...]]]

    def get(self, code: str) -> Agency:
        """The agency with ``code``; :class:`UnknownAgencyError` if there is none."""
        try:
            return self.agencies[code]
        except (KeyError, TypeError):
            raise UnknownAgencyError(str(code)) from None

    def get_court(self, code: str) -> Agency:
        """The court with ``code``; :class:`UnknownAgencyError` for a non-court."""
        agency = self.get(code)
        if agency.role is not AgencyRole.COURT:
            raise UnknownAgencyError(code, f"is a {agency.role} agency, not a court")
        return agency

    def courts(self) -> tuple[Agency, ...]:
        return self.with_role(AgencyRole.COURT)

    def with_role(self, role: AgencyRole) -> tuple[Agency, ...]:
        return tuple(a for a in self.agencies.values() if a.role is role)

    def police_units(self, role: AgencyRole | None = None) -> tuple[Agency, ...]:
        """Every police unit, or those with ``role`` (a police role)."""
        if role is not None and role not in POLICE_ROLES:
            raise ValueError(f"{role} is not a police role")
        return tuple(a for a in self.agencies.values() if a.is_police and role in (None, a.role))

    def in_province(self, province_code: str) -> tuple[Agency, ...]:
        """Every agency seated in the province with this GB/T 2260 code."""
        return tuple(
            a for a in self.agencies.values() if a.province and a.province.code == province_code
        )

    def court_for_case_abbr(self, case_abbr: str) -> Agency:
        """The court whose case-number abbreviation (法院代字) is ``case_abbr``."""
        for agency in self.courts():
            if agency.case_abbr == case_abbr:
                return agency
        raise UnknownAgencyError(case_abbr, "is no court's case-number abbreviation")

    def provinces(self) -> tuple[str, ...]:
        """Every province_rules key (GB/T 2260 codes and ``national``), in list order."""
        return tuple(self.rules)

    def rule_province(self, court_code: str) -> str:
        """The province_rules key that governs this court's orders: the GB/T 2260 code of
        its province, or ``national`` for a court without one (the SPC)."""
        court = self.get_court(court_code)
        return court.province.code if court.province else NATIONAL

    def units_serving_court(self, court_code: str, role: AgencyRole) -> tuple[Agency, ...]:
        """The ``role`` police units that receive orders of this court (provincial rule)."""
        key = self.rule_province(court_code)
        if role not in POLICE_ROLES:
            raise ValueError(f"{role} is not a police role")
        return tuple(self.agencies[c] for c in self.rules.get(key, {}).get(role, ()))

    def provinces_served_by(self, unit_code: str) -> frozenset[str]:
        """The province_rules keys (GB/T 2260 codes or ``national``) naming this unit."""
        self.get(unit_code)
        return frozenset(
            key
            for key, by_role in self.rules.items()
            if any(unit_code in codes for codes in by_role.values())
        )


def _bad(where: str, problem: str) -> AgencyListError:
    return AgencyListError(f"agency list: {where}: {problem}")


def _text(entry: Mapping[str, object], key: str, where: str, *, optional: bool = False) -> str:
    value = entry.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise _bad(where, f"{key!r} must be a non-empty string (quote numeric codes)")
    return value


def _province(entry: Mapping[str, object], where: str) -> Province | None:
    code = entry.get("province")
    if code is None:
        return None
    if not isinstance(code, str) or code not in PROVINCES:
        raise _bad(where, f"province {code!r} is not a quoted 2-digit GB/T 2260 code")
    return PROVINCES[code]


def _parse_agency(entry: object, index: int) -> Agency:
    where = f"agencies[{index}]"
    if not isinstance(entry, dict):
        raise _bad(where, "must be a mapping")
    code = _text(entry, "code", where)
    where = f"agency {code!r}"
    try:
        role = AgencyRole(_text(entry, "role", where))
    except ValueError:
        raise _bad(where, f"role must be one of {', '.join(AgencyRole)}") from None
    if not _CODE_PATTERNS[role].fullmatch(code):
        raise _bad(where, f"code does not match {_CODE_PATTERNS[role].pattern} for {role}")
    province = _province(entry, where)
    case_abbr = _text(entry, "case_abbr", where, optional=True) or None
    agency = Agency(
        code=code,
        name=_text(entry, "name", where),
        role=role,
        province=province,
        case_abbr=case_abbr,
        name_en=_text(entry, "name_en", where, optional=True),
    )
    _check_court_fields(agency, where)
    if role in POLICE_ROLES and province is None:
        raise _bad(where, "a police unit needs its province")
    return agency


def _check_court_fields(agency: Agency, where: str) -> None:
    if agency.role is not AgencyRole.COURT:
        if agency.case_abbr is not None:
            raise _bad(where, "only courts have a case_abbr")
        return
    match = _CASE_ABBR.fullmatch(agency.case_abbr or "")
    if match is None:
        raise _bad(where, "a court needs a case_abbr such as 最高法, 京, 京01 or 京0105")
    if agency.province is None:
        if agency.case_abbr != "最高法":
            raise _bad(where, "only the SPC (case_abbr 最高法) has no province")
        return
    if match["char"] != agency.province.case_char:
        raise _bad(where, f"case_abbr must start with {agency.province.case_char}")
    expected = agency.province.iso + (match["digits"] or "")
    if agency.code != expected:
        raise _bad(where, f"court code must be {expected} (ISO 3166-2:CN + case_abbr digits)")


def _parse_rules(
    raw: object, agencies: Mapping[str, Agency]
) -> dict[str, dict[AgencyRole, tuple[str, ...]]]:
    if not isinstance(raw, dict):
        raise _bad("province_rules", "must be a mapping of province code to roles")
    rules: dict[str, dict[AgencyRole, tuple[str, ...]]] = {}
    for key, by_role in raw.items():
        where = f"province_rules[{key!r}]"
        if key != NATIONAL and (not isinstance(key, str) or key not in PROVINCES):
            raise _bad(where, "key must be a quoted GB/T 2260 province code or 'national'")
        if not isinstance(by_role, dict):
            raise _bad(where, "must map police roles to lists of unit codes")
        rules[key] = {}
        for role_name, codes in by_role.items():
            role = AgencyRole(role_name) if role_name in set(AgencyRole) else None
            if role not in POLICE_ROLES or not isinstance(codes, list):
                raise _bad(where, f"{role_name!r} must be a police role with a list of units")
            for code in codes:
                unit = agencies.get(code) if isinstance(code, str) else None
                if unit is None or unit.role is not role:
                    raise _bad(where, f"{code!r} is not a {role} unit in the list")
            rules[key][role] = tuple(codes)
    return rules


def _check_coverage(
    agencies: Mapping[str, Agency], rules: Mapping[str, Mapping[AgencyRole, tuple[str, ...]]]
) -> None:
    for court in (a for a in agencies.values() if a.role is AgencyRole.COURT):
        key = court.province.code if court.province else NATIONAL
        for role in sorted(POLICE_ROLES):
            if not rules.get(key, {}).get(role):
                raise _bad(f"province_rules[{key!r}]", f"names no {role} unit for {court.code}")


def parse_agency_list(document: object) -> AgencyList:
    """Check a parsed agency document and build the :class:`AgencyList`."""
    if not isinstance(document, dict) or document.get("format") != AGENCY_LIST_FORMAT:
        raise _bad("format", f"the document must declare format: {AGENCY_LIST_FORMAT}")
    entries = document.get("agencies")
    if not isinstance(entries, list) or not entries:
        raise _bad("agencies", "must be a non-empty list")
    agencies: dict[str, Agency] = {}
    abbrs: set[str] = set()
    for index, entry in enumerate(entries):
        agency = _parse_agency(entry, index)
        if agency.code in agencies:
            raise _bad(f"agency {agency.code!r}", "code appears twice")
        if agency.case_abbr is not None:
            if agency.case_abbr in abbrs:
                raise _bad(f"agency {agency.code!r}", f"case_abbr {agency.case_abbr} twice")
            abbrs.add(agency.case_abbr)
        agencies[agency.code] = agency
    rules = _parse_rules(document.get("province_rules"), agencies)
    _check_coverage(agencies, rules)
    frozen_rules = {k: MappingProxyType(v) for k, v in rules.items()}
    return AgencyList(MappingProxyType(agencies), MappingProxyType(frozen_rules))


def load_agencies(path: Path | None = None) -> AgencyList:
    """The agency list from ``path``, or the packaged ``schemas/data/agencies.yaml``
    (loaded once and cached). :class:`AgencyListError` if it is malformed, or ``path`` is
    no regular file (``/dev/zero``, a FIFO, a folder) of at most
    :data:`MAX_AGENCY_LIST_BYTES` (refused unread)."""
    if path is None:
        return _packaged()
    data = read_limited(path, "agency list", MAX_AGENCY_LIST_BYTES, AgencyListError)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AgencyListError(
            f"agency list {path}: not valid UTF-8 (byte {exc.start + 1})"
        ) from None
    return _load(text, str(path))


@lru_cache(maxsize=1)
def _packaged() -> AgencyList:
    resource = resources.files("schemas").joinpath("data", "agencies.yaml")
    return _load(resource.read_text(encoding="utf-8"), "schemas/data/agencies.yaml")


def _load(text: str, origin: str) -> AgencyList:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgencyListError(f"agency list {origin}: not valid YAML: {exc}") from exc
    except RecursionError:  # nested thousands deep: PyYAML composes it recursively
        raise AgencyListError(f"agency list {origin}: not valid YAML: nested too deeply") from None
    return parse_agency_list(document)


def get_agency(code: str) -> Agency:
    """The agency with ``code`` in the packaged list; :class:`UnknownAgencyError` if none."""
    return load_agencies().get(code)


def courts() -> tuple[Agency, ...]:
    """Every court in the packaged list."""
    return load_agencies().courts()


def police_units(role: AgencyRole | None = None) -> tuple[Agency, ...]:
    """Every police unit in the packaged list, or those with ``role``."""
    return load_agencies().police_units(role)


def agencies_in_province(province_code: str) -> tuple[Agency, ...]:
    """Every agency of the packaged list seated in the province (GB/T 2260 code)."""
    return load_agencies().in_province(province_code)


def court_for_case_abbr(case_abbr: str) -> Agency:
    """The court of the packaged list whose 法院代字 is ``case_abbr``."""
    return load_agencies().court_for_case_abbr(case_abbr)


def units_serving_court(court_code: str, role: AgencyRole) -> tuple[Agency, ...]:
    """The ``role`` units of the packaged list that receive this court's orders."""
    return load_agencies().units_serving_court(court_code, role)
