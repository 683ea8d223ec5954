"""The five query kinds (P1-P5) and who answers each: shared by the court's query client,
which must know whom to wait for, and the police responders, which must know what is
addressed to them. Both compute it from the query and the agency list alone, so they agree.

| kind | answered by | addressed to |
|---|---|---|
| P1 identity (``IdentityQuery``) | public security | the subject's home province |
| P2 exit-entry documents | public security (its exit-entry office) | the home province |
| P3 border crossings | border control | every province (nationwide) |
| P4 vehicles (``VehicleRegistrationQuery``) | traffic management | every province |
| P5 hotel stays (``HotelStayQuery``) | public security | every province |

The responders of a role are the units the agency list's ``national`` rule names for it:
one or more per province. A home-province query (P1, P2) goes to those of the province
that issued the subject's citizen ID number (its first two digits, where the household
was registered); when no responder sits there, it goes to all of them.

Each kind also states its permitted purposes: the procedural roles of a subject it may be
asked about (``subject_role``), after the opinion's table (e.g. P2 is for a defendant under
litigation preservation, P3 and P5 for a judgment debtor). A query for another purpose is
refused, with the reason, by every responder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from schemas.agencies import NATIONAL, AgencyList, AgencyRole, load_agencies
from schemas.errors import BusError

__all__ = [
    "QUERY_KINDS",
    "QueryKind",
    "QueryKindError",
    "kind_of_query",
    "kind_of_result",
    "query_kind",
    "responders",
]

_NS = "cn.zf801."


class QueryKindError(BusError, ValueError):
    """A name that is no query kind (P1-P5, their names or their schemas)."""


@dataclass(frozen=True, slots=True)
class QueryKind:
    """One of P1-P5."""

    code: str
    """``P1`` .. ``P5``."""
    name: str
    """The command-line name, e.g. ``hotel-stays``."""
    record: str
    """The stem of the query and result schemas, e.g. ``HotelStay``."""
    role: AgencyRole
    nationwide: bool
    purposes: frozenset[str]
    """The ``subject_role`` values a query of this kind may be made for."""
    title: str

    def purpose_problem(self, subject_role: str) -> str | None:
        """Why a query of this kind may not be made about a subject who is
        ``subject_role`` (naming the field and the rule), or None when it may."""
        if subject_role in self.purposes:
            return None
        allowed = ", ".join(sorted(self.purposes))
        return (
            f"subject_role: {self.code} ({self.name}) may be asked about a subject who is "
            f"{allowed}, not {subject_role} [rule purpose]"
        )

    @property
    def query_schema(self) -> str:
        return f"{_NS}query.v1.{self.record}Query"

    @property
    def result_schema(self) -> str:
        return f"{_NS}police.v1.{self.record}Result"


_DEBTOR = "JUDGMENT_DEBTOR"
_PRESERVED = "PRESERVATION_DEFENDANT"
_DEFENDANT = "DEFENDANT"

QUERY_KINDS: tuple[QueryKind, ...] = (
    QueryKind("P1", "identity", "Identity", AgencyRole.PUBLIC_SECURITY, False,
              frozenset({_DEFENDANT, _PRESERVED, _DEBTOR}), "identity 身份信息"),
    QueryKind("P2", "exit-entry-documents", "ExitEntryDocument", AgencyRole.PUBLIC_SECURITY,
              False, frozenset({_PRESERVED}), "exit-entry documents 出入境证件"),
    QueryKind("P3", "border-crossings", "BorderCrossing", AgencyRole.BORDER_CONTROL, True,
              frozenset({_DEBTOR}), "border crossings 出入境记录"),
    QueryKind("P4", "vehicles", "VehicleRegistration", AgencyRole.TRAFFIC_MANAGEMENT, True,
              frozenset({_PRESERVED, _DEBTOR}), "vehicles 车辆登记"),
    QueryKind("P5", "hotel-stays", "HotelStay", AgencyRole.PUBLIC_SECURITY, True,
              frozenset({_DEBTOR}), "hotel stays 旅馆住宿"),
)  # fmt: skip

_BY_NAME: Mapping[str, QueryKind] = MappingProxyType(
    {
        alias: kind
        for kind in QUERY_KINDS
        for alias in (kind.code, kind.code.lower(), kind.name, kind.query_schema)
    }
)
_BY_QUERY = MappingProxyType({kind.query_schema: kind for kind in QUERY_KINDS})
_BY_RESULT = MappingProxyType({kind.result_schema: kind for kind in QUERY_KINDS})


def query_kind(name: str) -> QueryKind:
    """The kind named ``name``: ``P1``..``P5``, ``identity``, ``hotel-stays``, ... or a
    query schema's full name."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        names = ", ".join(f"{k.code} ({k.name})" for k in QUERY_KINDS)
        raise QueryKindError(f"query kind {name!r} is not one of {names}") from None


def kind_of_query(schema_name: str) -> QueryKind | None:
    """The kind whose query schema is ``schema_name``, or None."""
    return _BY_QUERY.get(schema_name)


def kind_of_result(schema_name: str) -> QueryKind | None:
    """The kind whose result schema is ``schema_name``, or None."""
    return _BY_RESULT.get(schema_name)


def responders(
    kind: QueryKind, query: Mapping[str, Any], agencies: AgencyList | None = None
) -> tuple[str, ...]:
    """The codes of the units expected to answer ``query`` (a normalised record of
    ``kind``), in the agency list's order: see the module docstring."""
    agencies = agencies or load_agencies()
    units = agencies.rules.get(NATIONAL, {}).get(kind.role, ())
    if kind.nationwide:
        return tuple(units)
    home = _home_province(query)
    local = tuple(
        code
        for code in units
        if (province := agencies.get(code).province) is not None and province.code == home
    )
    return local or tuple(units)


def _home_province(query: Mapping[str, Any]) -> str | None:
    subject = query.get("subject")
    id_number = subject.get("id_number") if isinstance(subject, Mapping) else None
    return id_number[:2] if isinstance(id_number, str) and len(id_number) >= 2 else None
