"""Errors of the stream processors and the court alert subscriber."""

from __future__ import annotations

from schemas.errors import BusError

__all__ = ["AlertAccessDenied", "ConsumerError", "QueryRefused", "ResultsAccessDenied"]


class ConsumerError(BusError):
    """A processor or subscriber cannot do what was asked."""


class AlertAccessDenied(ConsumerError, PermissionError):  # noqa: N818 - reads as a verdict
    """An agency asked for an alert stream it may not read."""


class QueryRefused(ConsumerError, ValueError):  # noqa: N818 - reads as a verdict
    """A query the court's client will not send (a rule it breaks is named)."""


class ResultsAccessDenied(ConsumerError, PermissionError):  # noqa: N818 - reads as a verdict
    """An agency asked for a court's query results it may not read."""
