"""Changelog records as faust hands them to a table store's restore (a message with its
topic partition, inside an event), for the sealed-store tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

WATCHLIST_CHANGELOG = "zf801-matcher-watchlist-changelog"


class TP(NamedTuple):
    topic: str
    partition: int


@dataclass
class ChangelogMessage:
    key: bytes
    value: bytes | None
    partition: int = 0
    offset: int = 0
    topic: str = WATCHLIST_CHANGELOG
    timestamp: float = 0.0
    headers: Any = ()

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


@dataclass
class ChangelogEvent:
    message: ChangelogMessage

    @property
    def key(self) -> bytes:
        return self.message.key
