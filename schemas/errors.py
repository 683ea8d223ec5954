"""The root of every error the bus raises, and the errors of the contract layer.

Every package has a small ``errors.py`` whose classes derive from :class:`BusError`,
so a caller can catch everything the bus raises with one ``except`` clause.
"""

from __future__ import annotations

__all__ = ["BusError", "ConfigurationError"]


class BusError(Exception):
    """Base class of every error raised by the bus."""


class ConfigurationError(BusError, ValueError):
    """A setting is missing or malformed."""
