"""The contract: Avro schemas, the single-object codec, the CloudEvents envelope,
identifier validation and subject match keys; also the bus's settings and error root."""

from schemas.errors import BusError, ConfigurationError
from schemas.settings import Settings, get_settings

__all__ = ["BusError", "ConfigurationError", "Settings", "get_settings"]
