"""What a publisher sends and what the broker acknowledged."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["OutgoingEvent", "PublishedEvent"]


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """One event to publish: the catalog topic, its schema and record, and its key."""

    topic_id: str
    schema_name: str
    record: Mapping[str, Any]
    key: bytes | None
    court: str | None = None
    event_id: str | None = None
    time: dt.datetime | None = None
    traceparent: str | None = None
    alt_keys: tuple[bytes, ...] = ()
    """The subject's other match keys (a vehicle's VIN key), sent in ``ce_altkeys``."""


@dataclass(frozen=True, slots=True)
class PublishedEvent:
    """What the broker acknowledged."""

    event_id: str
    topic: str
    partition: int
    offset: int
