"""Errors of the topic catalog and of ``zf801 topics apply``.

Every class derives from :class:`schemas.errors.BusError`; value-like errors also
inherit :class:`ValueError` (or :class:`LookupError` for lookups of unknown ids).
"""

# Names follow STYLE.md (``SignatureInvalid``-like), not an Error suffix.
# ruff: noqa: N818

from __future__ import annotations

from dataclasses import dataclass

from schemas.errors import BusError

__all__ = [
    "AccessDenied",
    "ApplyFailed",
    "BrokerUnreachable",
    "CatalogInvalid",
    "CatalogProblem",
    "ClientConfigError",
    "CourtCodeInvalid",
    "ProvinceCodeInvalid",
    "TopicMissing",
    "TopicsError",
    "UnitCodeInvalid",
    "UnknownRole",
    "UnknownTopic",
]


class TopicsError(BusError):
    """Base class of the errors of the ``topics`` package."""


@dataclass(frozen=True)
class CatalogProblem:
    """One rule a catalog file breaks: where (entry and field) and why."""

    entry: str  # e.g. "topics[3] (id 'alerts')" or "key-kinds.match-key" or "catalog"
    field: str  # e.g. "partitions"; "" when the problem is about the entry as a whole
    message: str  # the rule and the offending value

    def __str__(self) -> str:
        where = f"{self.entry}, field '{self.field}'" if self.field else self.entry
        return f"{where}: {self.message}"


class CatalogInvalid(TopicsError, ValueError):
    """The catalog file breaks one or more rules; every problem is listed."""

    def __init__(self, source: str, problems: tuple[CatalogProblem, ...]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"topic catalog {source} is invalid ({len(problems)} {noun}):\n{lines}")


class UnknownTopic(TopicsError, LookupError):
    """A catalog id (or a concrete topic name) that the catalog does not define."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(what)

    def __str__(self) -> str:
        return self.what


class UnknownRole(TopicsError, ValueError):
    """An agency role that the catalog does not define."""


class CourtCodeInvalid(TopicsError, ValueError):
    """A court code is missing, not allowed, or malformed where a topic name needs it."""


class ProvinceCodeInvalid(TopicsError, ValueError):
    """A province (a ``province_rules`` key: GB/T 2260 code or ``national``) is missing, not
    allowed, or malformed where a topic name needs it."""


class UnitCodeInvalid(TopicsError, ValueError):
    """A police unit's agency code is missing, not allowed, or malformed where a topic name
    needs it."""


class ApplyFailed(TopicsError):
    """The cluster refused a change that ``topics apply`` asked for."""


class ClientConfigError(TopicsError, ValueError):
    """A Kafka client cannot be built for an agency: its TLS identity, the brokers' CA or
    its passphrase is missing or wrong. The message names the agency, the file and the fix."""


class AccessDenied(TopicsError, PermissionError):
    """The brokers do not let ``agency`` do ``permission`` (READ, WRITE, DESCRIBE) on
    ``topic``: asked before subscribing, since a client subscribed to a forbidden topic
    only sees empty polls."""

    def __init__(self, agency: str, topic: str, permission: str, why: str) -> None:
        self.agency = agency
        self.topic = topic
        self.permission = permission
        super().__init__(
            f"agency {agency} may not {permission.lower()} topic {topic}: {why}; it needs the "
            f"ACL ALLOW {permission} on Topic:{topic} for User:{agency} (the ACLs derive from "
            "the catalog's read and write roles)"
        )


class TopicMissing(TopicsError, LookupError):
    """A topic a client needs is not on the cluster (or has no usable metadata)."""


class BrokerUnreachable(TopicsError, ConnectionError):
    """An agency's client could not get an answer from the brokers."""
