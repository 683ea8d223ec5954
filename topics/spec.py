"""Frozen values that describe one catalog topic: its key, its access policy, its Kafka
configuration. :mod:`topics.catalog` loads them from ``topics.yaml``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from topics.errors import CourtCodeInvalid

__all__ = [
    "COURT_CODE_PATTERN",
    "COURT_PLACEHOLDER",
    "INFINITE_RETENTION_MS",
    "AccessPolicy",
    "ChangelogOf",
    "CleanupPolicy",
    "CoPartitionGroup",
    "ConcreteTopic",
    "KeyEncoding",
    "KeyKind",
    "ReadScope",
    "TopicSpec",
    "check_court_code",
]

COURT_PLACEHOLDER = "{court}"
# Court codes are ASCII so that they can appear in Kafka topic names.
COURT_CODE_PATTERN = re.compile(r"^[A-Z0-9]{2,16}$")
# What Kafka's ``retention.ms`` takes for "keep forever".
INFINITE_RETENTION_MS = -1


class CleanupPolicy(StrEnum):
    """Kafka ``cleanup.policy`` values the catalog allows."""

    DELETE = "delete"
    COMPACT = "compact"
    COMPACT_DELETE = "compact,delete"


class ReadScope(StrEnum):
    """Which topics of an entry a listed reader may read."""

    ALL = "all"
    OWN_COURT = "own-court"  # role court reads only the topic named for its own court


class KeyEncoding(StrEnum):
    BYTES = "bytes"
    UTF8 = "utf-8"


def check_court_code(court: str) -> str:
    """Return ``court`` if it is a well-formed court code, else raise :class:`CourtCodeInvalid`."""
    if not isinstance(court, str) or not COURT_CODE_PATTERN.fullmatch(court):
        raise CourtCodeInvalid(
            f"court code {court!r} is malformed: must match {COURT_CODE_PATTERN.pattern}"
        )
    return court


@dataclass(frozen=True)
class KeyKind:
    """What a record key holds, e.g. ``match-key`` (32 raw bytes) or ``order-id`` (UTF-8)."""

    name: str
    encoding: KeyEncoding
    length: int | None  # exact byte length for ``bytes`` keys
    description: str


@dataclass(frozen=True)
class CoPartitionGroup:
    """Topics joined by key partition by partition: same partition count, same key kind."""

    name: str
    description: str


@dataclass(frozen=True)
class ChangelogOf:
    """The stream-processor table whose changelog a topic is."""

    application: str
    table: str

    @property
    def topic_name(self) -> str:
        # The naming rule of faust (and Kafka Streams): <application>-<table>-changelog.
        return f"{self.application}-{self.table}-changelog"


@dataclass(frozen=True)
class AccessPolicy:
    """Which agency roles may produce to and consume from a topic."""

    write: frozenset[str]
    read: frozenset[str]
    read_scope: ReadScope = ReadScope.ALL


@dataclass(frozen=True)
class TopicSpec:
    """One catalog entry: a topic, or a per-court topic template (``{court}`` in the name)."""

    id: str
    name: str
    description: str
    partitions: int
    replication_factor: int
    min_insync_replicas: int | None
    retention_ms: int | None  # None: keep forever
    cleanup_policy: CleanupPolicy
    key: KeyKind
    value_schemas: tuple[str, ...]
    access: AccessPolicy
    co_partition_group: str | None = None
    changelog_of: ChangelogOf | None = None
    max_message_bytes: int | None = None  # None: the cluster's default (1 MiB)

    @property
    def is_template(self) -> bool:
        return COURT_PLACEHOLDER in self.name

    @property
    def infinite_retention(self) -> bool:
        return self.retention_ms is None

    def name_for(self, court: str | None = None) -> str:
        """The Kafka topic name; ``court`` is required for a per-court template, else refused."""
        if self.is_template:
            if court is None:
                raise CourtCodeInvalid(f"topic {self.id!r} is per court: a court code is required")
            return self.name.replace(COURT_PLACEHOLDER, check_court_code(court))
        if court is not None:
            raise CourtCodeInvalid(
                f"topic {self.id!r} is not per court: court code {court!r} is not allowed"
            )
        return self.name

    def allows_schema(self, full_name: str) -> bool:
        """Whether a value of this Avro full name (the event's ``ce_type``) may be on the topic."""
        return full_name in self.value_schemas

    def kafka_configs(self, *, min_insync_replicas: int | None = None) -> dict[str, str]:
        """The topic-level Kafka configs the catalog manages, as the admin API takes them.

        ``min_insync_replicas`` overrides the catalog value (``apply`` caps it on small clusters).
        """
        retention = INFINITE_RETENTION_MS if self.retention_ms is None else self.retention_ms
        configs = {"cleanup.policy": str(self.cleanup_policy), "retention.ms": str(retention)}
        isr = self.min_insync_replicas if min_insync_replicas is None else min_insync_replicas
        if isr is not None:
            configs["min.insync.replicas"] = str(isr)
        if self.max_message_bytes is not None:
            configs["max.message.bytes"] = str(self.max_message_bytes)
        return configs


@dataclass(frozen=True)
class ConcreteTopic:
    """A catalog entry resolved to one Kafka topic (a template expanded for one court)."""

    spec: TopicSpec
    court: str | None
    name: str
