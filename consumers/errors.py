"""Errors of the stream processors, the court alert subscriber and the police unit's
notice subscriber."""

from __future__ import annotations

from schemas.errors import BusError

__all__ = [
    "AlertAccessDenied",
    "ConsumerError",
    "NotPoliceUnitError",
    "NoticeAccessDenied",
    "QueryRefused",
    "ResultsAccessDenied",
]


class ConsumerError(BusError):
    """A processor or subscriber cannot do what was asked."""


class AlertAccessDenied(ConsumerError, PermissionError):  # noqa: N818 - reads as a verdict
    """An agency asked for an alert stream it may not read."""


class NoticeAccessDenied(ConsumerError, PermissionError):  # noqa: N818 - reads as a verdict
    """An agency asked for a police unit's action notices it may not read."""


class NotPoliceUnitError(ConsumerError, ValueError):
    """A code given as a police unit is not one: not 12 digits, or not in the agency list
    as a police unit."""


class QueryRefused(ConsumerError, ValueError):  # noqa: N818 - reads as a verdict
    """A query the court's client will not send (a rule it breaks is named)."""


class ResultsAccessDenied(ConsumerError, PermissionError):  # noqa: N818 - reads as a verdict
    """An agency asked for a court's query results it may not read."""
