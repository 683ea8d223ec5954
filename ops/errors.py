"""Errors of the operator's side: the local broker's tools, processes and ports, and how
any error a command meets reads to the operator (one line; what to do when the brokers
cannot be reached)."""

from __future__ import annotations

import re
from typing import Final

import aiokafka.errors
import kafka.errors

from schemas.errors import BusError
from schemas.settings import get_settings
from topics.errors import BrokerUnreachable

__all__ = [
    "KAFKA_ERRORS",
    "BrokerError",
    "BrokerStartError",
    "FetchError",
    "OpsError",
    "PortInUseError",
    "ToolMissingError",
    "operator_message",
]

KAFKA_ERRORS: Final = (kafka.errors.KafkaError, aiokafka.errors.KafkaError)
# What a broker that is down looks like to kafka-python and aiokafka.
_UNREACHABLE: Final = (
    BrokerUnreachable,
    kafka.errors.KafkaTimeoutError,
    kafka.errors.KafkaConnectionError,
    kafka.errors.MetadataEmptyBrokerList,
    aiokafka.errors.KafkaConnectionError,
    aiokafka.errors.KafkaTimeoutError,
)
_HINT: Final = (
    "start a local broker with `zf801 broker start` (or `make demo`), or set "
    "ZF801_BOOTSTRAP_SERVERS (under mTLS also ZF801_POLICE_BOOTSTRAP_SERVERS and "
    "ZF801_BUS_BOOTSTRAP_SERVERS) to a running cluster"
)


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


def operator_message(exc: BaseException) -> str:
    """``exc`` as one line for the operator; when it (or its cause) says the brokers did not
    answer, the line names the addresses tried and how to get a broker."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, KAFKA_ERRORS) and not message.startswith(type(exc).__name__):
        message = f"{type(exc).__name__}: {message}"
    if not _unreachable(exc):
        return message
    listeners = _listeners()
    if not any(address in message for address in listeners):
        message = f"cannot reach the Kafka brokers at {', '.join(listeners)}: {message}"
    return f"{message}; {_HINT}"


def _unreachable(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, _UNREACHABLE):
            return True
        exc = exc.__cause__
    return False


def _listeners() -> list[str]:
    """The bootstrap addresses of the settings (one per side under mTLS)."""
    settings = get_settings()
    servers = [settings.bootstrap_servers]
    if settings.security != "plaintext":
        servers += [settings.police_bootstrap_servers, settings.bus_bootstrap_servers]
    return list(dict.fromkeys(re.split(r"\s*,\s*", ",".join(servers))))
