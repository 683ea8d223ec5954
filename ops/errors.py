"""Errors of the operator's side: the local broker's tools, processes and ports."""

from __future__ import annotations

from schemas.errors import BusError

__all__ = [
    "BrokerError",
    "BrokerStartError",
    "FetchError",
    "OpsError",
    "PortInUseError",
    "ToolMissingError",
]


class OpsError(BusError):
    """Base class of the errors raised by ``ops``."""


class ToolMissingError(OpsError):
    """A program the local broker needs (``java``, ``mvn``) is not on ``PATH``."""


class FetchError(OpsError):
    """Maven could not fetch the pinned Kafka jars."""


class BrokerError(OpsError):
    """The local broker could not be started, stopped or inspected."""


class BrokerStartError(BrokerError):
    """A node exited or did not answer an admin call in time; carries its log tail."""


class PortInUseError(BrokerError):
    """A port the local broker must listen on is held by another process."""
