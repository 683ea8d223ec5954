"""Catalog rules that tie fields or entries together: template scope, changelog names,
unique ids and names (templates expanded included), and co-partitioning of topics joined
by key."""

from __future__ import annotations

import string
from collections import defaultdict
from collections.abc import Sequence

from topics._fields import Problems, topic_name_problem
from topics.spec import (
    COURT_PLACEHOLDER,
    PROVINCE_PLACEHOLDER,
    UNIT_PLACEHOLDER,
    CleanupPolicy,
    ReadScope,
    TopicSpec,
)

__all__ = ["check_entry", "check_topics", "topic_label"]


def topic_label(index: int, topic_id: object) -> str:
    return f"topics[{index}] (id {topic_id!r})" if isinstance(topic_id, str) else f"topics[{index}]"


def check_entry(problems: Problems, entry: str, spec: TopicSpec) -> None:
    """Rules that tie several fields of one entry together."""
    isr = spec.min_insync_replicas
    if isr is not None and isr > spec.replication_factor:
        problems.add(
            entry,
            "min-insync-replicas",
            f"{isr} exceeds the replication factor {spec.replication_factor}",
        )
    _check_scope(problems, entry, spec)
    _check_compaction(problems, entry, spec)
    if not spec.value_schemas and spec.changelog_of is None:
        problems.add(entry, "value-schemas", "must not be empty (only a changelog topic has none)")
    if spec.changelog_of is not None and spec.name != spec.changelog_of.topic_name:
        problems.add(
            entry,
            "name",
            f"{spec.name!r} must be {spec.changelog_of.topic_name!r}, "
            "the changelog name of its changelog-of application and table",
        )


def _check_compaction(problems: Problems, entry: str, spec: TopicSpec) -> None:
    """Tombstone retention and compaction lag apply to compacted topics only."""
    if spec.cleanup_policy is CleanupPolicy.DELETE:
        for field, value in (
            ("delete-retention-ms", spec.delete_retention_ms),
            ("min-compaction-lag-ms", spec.min_compaction_lag_ms),
        ):
            if value is not None:
                problems.add(entry, field, "applies only to a compacted topic (cleanup-policy)")


_SCOPE_OF = (
    (COURT_PLACEHOLDER, "per-court", ReadScope.OWN_COURT),
    (PROVINCE_PLACEHOLDER, "per-province", ReadScope.PROVINCE_RULE),
    (UNIT_PLACEHOLDER, "per-unit", ReadScope.OWN_UNIT),
)


def _check_scope(problems: Problems, entry: str, spec: TopicSpec) -> None:
    """A per-court name reads own-court, a per-province name province-rule, a per-unit name
    own-unit, and back."""
    scope = spec.access.read_scope
    for placeholder, kind, wanted in _SCOPE_OF:
        templated = placeholder in spec.name
        if templated and scope is not wanted:
            problems.add(
                entry, "read-scope", f"a {kind} name ({placeholder}) must have read-scope {wanted}"
            )
        elif scope is wanted and not templated:
            problems.add(
                entry,
                "read-scope",
                f"{wanted} applies only to a {kind} name containing {placeholder}",
            )
    if scope is ReadScope.OWN_COURT and "court" not in spec.access.read:
        problems.add(entry, "read", "read-scope own-court needs role court among the readers")


def check_topics(topics: Sequence[TopicSpec], namespace: str) -> Problems:
    """Rules across entries: unique ids and names, co-partitioning. Returns the problems found."""
    problems = Problems()
    labels = [topic_label(i, t.id) for i, t in enumerate(topics)]
    _check_unique(problems, "id", [(lbl, t.id) for lbl, t in zip(labels, topics, strict=True)])
    # Kafka warns that '.' and '_' collide in metric names: treat them as the same name.
    _check_unique(
        problems,
        "name",
        [(lbl, t.name.replace(".", "_")) for lbl, t in zip(labels, topics, strict=True)],
    )
    for label, topic in zip(labels, topics, strict=True):
        problem = topic_name_problem(topic.name)
        if problem:
            problems.add(label, "name", problem)
        elif namespace and not topic.name.startswith((f"{namespace}.", f"{namespace}-")):
            problems.add(
                label, "name", f"{topic.name!r} must start with the namespace {namespace!r}"
            )
        for other in topics:
            clash = _collision(topic, other)
            if clash:
                problems.add(label, "name", clash)
    _check_co_partitioning(problems, topics)
    return problems


def _check_unique(problems: Problems, field: str, values: list[tuple[str, str]]) -> None:
    holders: dict[str, list[str]] = defaultdict(list)
    for label, value in values:
        holders[value].append(label)
    for labels in holders.values():
        if len(labels) > 1:
            for label in labels:
                others = ", ".join(other for other in labels if other != label)
                problems.add(label, field, f"the same {field} is used by {others}")


_Shape = tuple[frozenset[str], ...]  # per position of a name, the characters allowed there


def _literal(text: str) -> _Shape:
    return tuple(frozenset(char) for char in text)


_DIGITS = frozenset(string.digits)
_COURT_CHARS = _DIGITS | frozenset(string.ascii_uppercase)
# Every value a placeholder takes, as shapes; they mirror the patterns of topics.spec
# (COURT_CODE_PATTERN, PROVINCE_PATTERN, UNIT_CODE_PATTERN).
_VALUE_SHAPES: dict[str, tuple[_Shape, ...]] = {
    COURT_PLACEHOLDER: tuple((_COURT_CHARS,) * n for n in range(2, 17)),
    PROVINCE_PLACEHOLDER: ((_DIGITS,) * 2, _literal("national")),
    UNIT_PLACEHOLDER: ((_DIGITS,) * 12,),
}


def _shapes(name: str) -> tuple[_Shape, ...]:
    """The shapes of every Kafka name of an entry: one for a fixed name, one per value
    shape of its placeholder for a template."""
    for placeholder, values in _VALUE_SHAPES.items():
        if placeholder in name:
            before, _, after = name.partition(placeholder)
            return tuple(_literal(before) + value + _literal(after) for value in values)
    return (_literal(name),)


def _common_name(shape: _Shape, other: _Shape) -> str | None:
    """A name both shapes take, or None if there is none."""
    if len(shape) != len(other):
        return None
    chars = []
    for allowed, other_allowed in zip(shape, other, strict=True):
        common = allowed & other_allowed
        if not common:
            return None
        chars.append(min(common))
    return "".join(chars)


def _collision(topic: TopicSpec, other: TopicSpec) -> str | None:
    """Why a Kafka name of ``topic`` could also be one of ``other``'s template, or None: a
    fixed name matching the template, or two templates sharing a name (a two-digit province
    and a 12-digit unit code are well-formed court codes). Exact: every placeholder value is
    a string of fixed length over a character class, compared position by position."""
    if other is topic or not other.is_template:
        return None
    for shape in _shapes(topic.name):
        for other_shape in _shapes(other.name):
            name = _common_name(shape, other_shape)
            if name is not None:
                return f"{name!r} collides with the templated topic {other.name!r} of {other.id!r}"
    return None


def _check_co_partitioning(problems: Problems, topics: Sequence[TopicSpec]) -> None:
    members: dict[str, list[TopicSpec]] = defaultdict(list)
    for topic in topics:
        if topic.co_partition_group is not None:
            members[topic.co_partition_group].append(topic)
    for group, specs in members.items():
        entry = f"co-partition-groups.{group}"
        if len({s.partitions for s in specs}) > 1:
            counts = ", ".join(f"{s.id}={s.partitions}" for s in specs)
            problems.add(
                entry,
                "partitions",
                f"members must have the same partition count (co-partitioned joins), got {counts}",
            )
        if len({s.key.name for s in specs}) > 1:
            kinds = ", ".join(f"{s.id}={s.key.name}" for s in specs)
            problems.add(entry, "key", f"members must have the same key kind, got {kinds}")
