"""The root of every error the bus raises, and the errors of the contract layer.

Every package has a small ``errors.py`` whose classes derive from :class:`BusError`,
so a caller can catch everything the bus raises with one ``except`` clause.
"""

from __future__ import annotations

__all__ = [
    "AgencyListError",
    "BusError",
    "ConfigurationError",
    "IdentifierError",
    "UnknownAgencyError",
]


class BusError(Exception):
    """Base class of every error raised by the bus."""


class ConfigurationError(BusError, ValueError):
    """A setting is missing or malformed."""


class IdentifierError(BusError, ValueError):
    """An identifier (ID number, credit or organisation code, plate, VIN, case number,
    phone number, court code) broke a rule.

    ``field`` is the event field (e.g. ``subject.id_number``), ``rule`` a stable rule id
    (e.g. ``id_number.check_char``), ``shown`` the value as it may appear in a message
    (masked where it is personal data). The raw value is never kept on the exception.
    """

    def __init__(self, field: str, rule: str, reason: str, shown: str | None = None) -> None:
        self.field = field
        self.rule = rule
        self.reason = reason
        self.shown = shown
        value = "" if shown is None else f" '{shown}'"
        super().__init__(f"{field}{value}: {reason} [rule {rule}]")

    def __reduce__(self) -> tuple[type[IdentifierError], tuple[str, str, str, str | None]]:
        return (type(self), (self.field, self.rule, self.reason, self.shown))


class UnknownAgencyError(BusError, LookupError):
    """An agency code is not in the agency list (or has another role than required)."""

    def __init__(self, code: str, reason: str = "is not in the agency list") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"agency {code!r} {reason}")

    def __reduce__(self) -> tuple[type[UnknownAgencyError], tuple[str, str]]:
        return (type(self), (self.code, self.reason))


class AgencyListError(ConfigurationError):
    """The agency list (``schemas/data/agencies.yaml`` or a deployment's own) is malformed."""
