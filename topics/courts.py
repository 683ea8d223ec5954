"""The court codes for which per-court topics (``alerts``, ``query-results``) exist.

The court list is data kept in ``schemas.agencies``; this small bridge reads it when that
module is present, so the topic catalog itself stays free of court codes.
"""

from __future__ import annotations

import importlib

__all__ = ["court_codes"]

_AGENCIES_MODULE = "schemas.agencies"


def court_codes() -> tuple[str, ...] | None:
    """Every court code of the court list, in list order; None if there is no court list."""
    try:
        agencies = importlib.import_module(_AGENCIES_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name == _AGENCIES_MODULE:
            return None
        raise
    return tuple(dict.fromkeys(str(court.code) for court in agencies.courts()))
