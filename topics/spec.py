"""Frozen values that describe one catalog topic: its key, its access policy, its Kafka
configuration. :mod:`topics.catalog` loads them from ``topics.yaml``."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from topics.errors import CourtCodeInvalid, ProvinceCodeInvalid, TopicsError, UnitCodeInvalid

__all__ = [
    "COURT_CODE_PATTERN",
    "COURT_PLACEHOLDER",
    "INFINITE_RETENTION_MS",
    "PLACEHOLDERS",
    "PROVINCE_PATTERN",
    "PROVINCE_PLACEHOLDER",
    "UNIT_CODE_PATTERN",
    "UNIT_PLACEHOLDER",
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
    "check_province",
    "check_unit_code",
    "template_value",
]

COURT_PLACEHOLDER = "{court}"
PROVINCE_PLACEHOLDER = "{province}"
UNIT_PLACEHOLDER = "{unit}"
PLACEHOLDERS = (COURT_PLACEHOLDER, PROVINCE_PLACEHOLDER, UNIT_PLACEHOLDER)
# Court codes are ASCII so that they can appear in Kafka topic names.
COURT_CODE_PATTERN = re.compile(r"^[A-Z0-9]{2,16}$")
# A key of the agency list's province_rules: a GB/T 2260 province code, or "national".
PROVINCE_PATTERN = re.compile(r"^(?:[0-9]{2}|national)$")
# A police unit's agency code (the police roles' pattern in schemas.agencies): 12 digits.
UNIT_CODE_PATTERN = re.compile(r"^[0-9]{12}$")
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
    PROVINCE_RULE = "province-rule"  # a reader reads a province's topic if its rule names it
    OWN_UNIT = "own-unit"  # a listed reader reads only the topic named for its own unit code


class KeyEncoding(StrEnum):
    BYTES = "bytes"
    UTF8 = "utf-8"


def _checked(
    value: str, pattern: re.Pattern[str], field: str, error: type[TopicsError], note: str = ""
) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise error(f"{field} {value!r} is malformed: must match {pattern.pattern}{note}")
    return value


def check_court_code(court: str) -> str:
    """Return ``court`` if it is a well-formed court code, else raise :class:`CourtCodeInvalid`."""
    return _checked(court, COURT_CODE_PATTERN, "court code", CourtCodeInvalid)


def check_province(province: str) -> str:
    """Return ``province`` if it is a well-formed province_rules key, else raise
    :class:`ProvinceCodeInvalid`."""
    return _checked(
        province, PROVINCE_PATTERN, "province", ProvinceCodeInvalid,
        " (a GB/T 2260 province code or national)",
    )  # fmt: skip


def check_unit_code(unit: str) -> str:
    """Return ``unit`` if it is a well-formed police unit code, else raise
    :class:`UnitCodeInvalid`."""
    return _checked(
        unit, UNIT_CODE_PATTERN, "unit code", UnitCodeInvalid, " (a police unit's agency code)"
    )


@dataclass(frozen=True)
class _Slot:
    """What one placeholder stands for: ``per`` in messages, the value's field name and
    pattern, its check and the error of a missing or superfluous value."""

    per: str
    field: str
    pattern: re.Pattern[str]
    check: Callable[[str], str]
    error: type[TopicsError]


_SLOTS = {
    COURT_PLACEHOLDER: _Slot(
        "court", "court code", COURT_CODE_PATTERN, check_court_code, CourtCodeInvalid
    ),
    PROVINCE_PLACEHOLDER: _Slot(
        "province", "province", PROVINCE_PATTERN, check_province, ProvinceCodeInvalid
    ),
    UNIT_PLACEHOLDER: _Slot(
        "unit", "unit code", UNIT_CODE_PATTERN, check_unit_code, UnitCodeInvalid
    ),
}


def template_value(template: str, name: str) -> str | None:
    """The court code, province or unit code that turns ``template`` (a name with one
    placeholder) into the Kafka topic ``name``; None if no well-formed value does."""
    for placeholder, slot in _SLOTS.items():
        if placeholder not in template:
            continue
        before, _, after = template.partition(placeholder)
        if len(name) < len(before + after) or not (
            name.startswith(before) and name.endswith(after)
        ):
            return None
        value = name[len(before) : len(name) - len(after)]
        return value if slot.pattern.fullmatch(value) else None
    return None


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
    """One catalog entry: a topic, or a template of one topic per court (``{court}`` in the
    name), per province (``{province}``) or per police unit (``{unit}``)."""

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
    delete_retention_ms: int | None = None  # compacted topics: how long a tombstone stays
    min_compaction_lag_ms: int | None = None  # compacted topics: no record compacted sooner

    @property
    def per_court(self) -> bool:
        return COURT_PLACEHOLDER in self.name

    @property
    def per_province(self) -> bool:
        return PROVINCE_PLACEHOLDER in self.name

    @property
    def per_unit(self) -> bool:
        return UNIT_PLACEHOLDER in self.name

    @property
    def is_template(self) -> bool:
        """Whether the entry stands for several topics (per court, province or unit)."""
        return self.per_court or self.per_province or self.per_unit

    @property
    def infinite_retention(self) -> bool:
        return self.retention_ms is None

    def name_for(
        self, court: str | None = None, *, province: str | None = None, unit: str | None = None
    ) -> str:
        """The Kafka topic name; ``court`` is required for a per-court template, ``province``
        for a per-province one and ``unit`` (a police unit's code) for a per-unit one, and
        each is refused elsewhere."""
        given = {COURT_PLACEHOLDER: court, PROVINCE_PLACEHOLDER: province, UNIT_PLACEHOLDER: unit}
        for placeholder, value in given.items():
            slot = _SLOTS[placeholder]
            if value is not None and placeholder not in self.name:
                raise slot.error(
                    f"topic {self.id!r} is not per {slot.per}: "
                    f"{slot.field} {value!r} is not allowed"
                )
        for placeholder, value in given.items():
            if placeholder not in self.name:
                continue
            slot = _SLOTS[placeholder]
            if value is None:
                raise slot.error(f"topic {self.id!r} is per {slot.per}: a {slot.field} is required")
            return self.name.replace(placeholder, slot.check(value))
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
        if self.delete_retention_ms is not None:
            configs["delete.retention.ms"] = str(self.delete_retention_ms)
        if self.min_compaction_lag_ms is not None:
            configs["min.compaction.lag.ms"] = str(self.min_compaction_lag_ms)
        return configs


@dataclass(frozen=True)
class ConcreteTopic:
    """A catalog entry resolved to one Kafka topic (a template expanded for one court, one
    province or one police unit)."""

    spec: TopicSpec
    court: str | None
    name: str
    province: str | None = None
    unit: str | None = None
