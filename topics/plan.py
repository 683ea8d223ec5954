"""What ``zf801 topics apply`` would change: a pure comparison of the catalog with a
snapshot of the cluster. Nothing here talks to Kafka, so every rule is unit-tested.

Rules: missing topics are created; managed configs that differ are altered; partitions
are only ever added (a decrease is a conflict); a replication factor that differs is a
conflict (it needs a reassignment); topics under the namespace that the catalog does not
list are reported as extras and never deleted. The replication factor and
``min.insync.replicas`` are capped to what the cluster can hold, and the caps are listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from topics.catalog import Catalog

__all__ = [
    "MANAGED_CONFIGS",
    "Capping",
    "ClusterState",
    "ConfigAlteration",
    "ConfigChange",
    "Conflict",
    "DesiredTopic",
    "ObservedTopic",
    "PartitionIncrease",
    "Plan",
    "desired_topics",
    "plan",
]

# The topic-level configs the catalog manages; everything else is left as the cluster has it.
MANAGED_CONFIGS = (
    "cleanup.policy",
    "retention.ms",
    "min.insync.replicas",
    "max.message.bytes",
    "delete.retention.ms",
    "min.compaction.lag.ms",
)


@dataclass(frozen=True)
class ObservedTopic:
    """A topic as the cluster has it."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]  # effective values of MANAGED_CONFIGS (defaults included)


@dataclass(frozen=True)
class ClusterState:
    """A snapshot of the cluster: live broker count and the topics of interest."""

    broker_count: int
    topics: Mapping[str, ObservedTopic]


@dataclass(frozen=True)
class DesiredTopic:
    """One Kafka topic as the catalog wants it on this cluster (caps applied)."""

    name: str
    topic_id: str
    court: str | None
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]
    province: str | None = None
    unit: str | None = None


@dataclass(frozen=True)
class Capping:
    """A catalog figure lowered to what the cluster can hold (fewer brokers than replicas)."""

    topic: str
    setting: str  # "replication-factor" or "min.insync.replicas"
    catalog: int
    effective: int


@dataclass(frozen=True)
class ConfigChange:
    key: str
    current: str | None
    desired: str


@dataclass(frozen=True)
class ConfigAlteration:
    topic: str
    changes: tuple[ConfigChange, ...]


@dataclass(frozen=True)
class PartitionIncrease:
    topic: str
    current: int
    desired: int


@dataclass(frozen=True)
class Conflict:
    """A difference that ``apply`` must not repair by itself."""

    topic: str
    setting: str
    current: str
    desired: str
    reason: str


@dataclass(frozen=True)
class Plan:
    broker_count: int
    desired: tuple[DesiredTopic, ...]
    creations: tuple[DesiredTopic, ...]
    alterations: tuple[ConfigAlteration, ...]
    partition_increases: tuple[PartitionIncrease, ...]
    conflicts: tuple[Conflict, ...]
    extras: tuple[str, ...]  # under the namespace, not in the catalog: reported, never deleted
    cappings: tuple[Capping, ...]

    @property
    def has_changes(self) -> bool:
        """Whether applying the plan would change the cluster."""
        return bool(self.creations or self.alterations or self.partition_increases)

    @property
    def unchanged(self) -> tuple[str, ...]:
        """Desired topics that exist and need nothing."""
        touched = {t.name for t in self.creations}
        touched |= {a.topic for a in self.alterations}
        touched |= {p.topic for p in self.partition_increases}
        touched |= {c.topic for c in self.conflicts}
        return tuple(t.name for t in self.desired if t.name not in touched)


def desired_topics(
    catalog: Catalog,
    courts: Iterable[str],
    broker_count: int,
    provinces: Iterable[str] = (),
    units: Iterable[str] = (),
) -> tuple[tuple[DesiredTopic, ...], tuple[Capping, ...]]:
    """Every catalog topic (templates expanded for ``courts``, ``provinces`` and ``units``)
    with its effective figures."""
    if broker_count < 1:
        raise ValueError(f"broker count must be >= 1, got {broker_count}")
    desired: list[DesiredTopic] = []
    cappings: list[Capping] = []
    for topic in catalog.concrete_topics(courts, provinces, units):
        spec = topic.spec
        rf = min(spec.replication_factor, broker_count)
        if rf < spec.replication_factor:
            cappings.append(Capping(topic.name, "replication-factor", spec.replication_factor, rf))
        isr = spec.min_insync_replicas
        if isr is not None and isr > rf:
            cappings.append(Capping(topic.name, "min.insync.replicas", isr, rf))
            isr = rf
        configs = spec.kafka_configs(min_insync_replicas=isr)
        desired.append(
            DesiredTopic(
                topic.name,
                spec.id,
                topic.court,
                spec.partitions,
                rf,
                configs,
                topic.province,
                topic.unit,
            )
        )
    return tuple(desired), tuple(cappings)


def plan(
    catalog: Catalog,
    cluster: ClusterState,
    courts: Iterable[str] = (),
    provinces: Iterable[str] = (),
    units: Iterable[str] = (),
) -> Plan:
    """Compare the catalog (per-court topics expanded for ``courts``, per-province ones for
    ``provinces``, per-unit ones for ``units``) with the cluster."""
    desired, cappings = desired_topics(catalog, courts, cluster.broker_count, provinces, units)
    creations: list[DesiredTopic] = []
    alterations: list[ConfigAlteration] = []
    increases: list[PartitionIncrease] = []
    conflicts: list[Conflict] = []
    for want in desired:
        have = cluster.topics.get(want.name)
        if have is None:
            creations.append(want)
            continue
        conflicts.extend(_replication_conflicts(want, have))
        if have.partitions < want.partitions:
            increases.append(PartitionIncrease(want.name, have.partitions, want.partitions))
        changes = _config_changes(want, have)
        if changes:
            alterations.append(ConfigAlteration(want.name, changes))
    wanted = {t.name for t in desired}
    extras = sorted(n for n in cluster.topics if catalog.in_namespace(n) and n not in wanted)
    return Plan(
        broker_count=cluster.broker_count,
        desired=desired,
        creations=tuple(creations),
        alterations=tuple(alterations),
        partition_increases=tuple(increases),
        conflicts=tuple(conflicts),
        extras=tuple(extras),
        cappings=cappings,
    )


def _replication_conflicts(want: DesiredTopic, have: ObservedTopic) -> list[Conflict]:
    conflicts = []
    if have.partitions > want.partitions:
        conflicts.append(
            Conflict(
                want.name,
                "partitions",
                str(have.partitions),
                str(want.partitions),
                "Kafka cannot remove partitions; apply never decreases them "
                "(raise the catalog figure or recreate the topic by hand)",
            )
        )
    if have.replication_factor != want.replication_factor:
        conflicts.append(
            Conflict(
                want.name,
                "replication-factor",
                str(have.replication_factor),
                str(want.replication_factor),
                "changing it needs a partition reassignment, which apply does not do",
            )
        )
    return conflicts


def _config_changes(want: DesiredTopic, have: ObservedTopic) -> tuple[ConfigChange, ...]:
    changes = []
    for key, wanted in want.configs.items():
        value = wanted
        if key == "min.insync.replicas":
            # Never ask for more in-sync replicas than the topic really has: acks=all
            # writes would then fail. A replication conflict is reported separately.
            value = str(min(int(wanted), have.replication_factor))
        current = have.configs.get(key)
        if current is None or _normalised(key, current) != _normalised(key, value):
            changes.append(ConfigChange(key, current, value))
    return tuple(changes)


def _normalised(key: str, value: str) -> str:
    if key == "cleanup.policy":
        # "delete,compact" and "compact,delete" are the same policy.
        return ",".join(sorted(part.strip() for part in value.split(",")))
    try:
        return str(int(value))
    except ValueError:
        return value.strip()
