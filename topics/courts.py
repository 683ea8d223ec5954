"""The court codes for which per-court topics (``alerts``, ``query-results``) exist, the
provinces for which per-province topics (``order-delivery-*``) exist, and the police units
for which per-unit topics (``action-notices``) exist.

The court list, the police units and the provincial rules are data kept in
``schemas.agencies``; this small bridge reads them when that module is present, so the
topic catalog itself stays free of court codes, provinces and unit codes.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["court_codes", "provinces", "unit_codes"]

_AGENCIES_MODULE = "schemas.agencies"


def court_codes() -> tuple[str, ...] | None:
    """Every court code of the court list, in list order; None if there is no court list."""
    agencies = _agencies()
    if agencies is None:
        return None
    return tuple(dict.fromkeys(str(court.code) for court in agencies.courts()))


def provinces() -> tuple[str, ...] | None:
    """Every key of the agency list's ``province_rules`` (GB/T 2260 codes, ``national``),
    in list order; None if there is no agency list."""
    agencies = _agencies()
    return None if agencies is None else tuple(agencies.load_agencies().provinces())


def unit_codes() -> tuple[str, ...] | None:
    """Every police unit's code in the agency list, in list order; None if there is no
    agency list."""
    agencies = _agencies()
    if agencies is None:
        return None
    return tuple(str(unit.code) for unit in agencies.load_agencies().police_units())


def _agencies() -> ModuleType | None:
    try:
        return importlib.import_module(_AGENCIES_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name == _AGENCIES_MODULE:
            return None
        raise
