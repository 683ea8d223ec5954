"""Catalog rules that tie fields or entries together: template scope, changelog names,
unique ids and names, and co-partitioning of topics joined by key."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from topics._fields import Problems, topic_name_problem
from topics.spec import COURT_CODE_PATTERN, COURT_PLACEHOLDER, ReadScope, TopicSpec

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
    if spec.is_template and spec.access.read_scope is not ReadScope.OWN_COURT:
        problems.add(
            entry,
            "read-scope",
            f"a per-court name ({COURT_PLACEHOLDER}) must have read-scope own-court",
        )
    if spec.access.read_scope is ReadScope.OWN_COURT:
        if not spec.is_template:
            problems.add(
                entry,
                "read-scope",
                f"own-court applies only to a per-court name containing {COURT_PLACEHOLDER}",
            )
        if "court" not in spec.access.read:
            problems.add(entry, "read", "read-scope own-court needs role court among the readers")
    if not spec.value_schemas and spec.changelog_of is None:
        problems.add(entry, "value-schemas", "must not be empty (only a changelog topic has none)")
    if spec.changelog_of is not None and spec.name != spec.changelog_of.topic_name:
        problems.add(
            entry,
            "name",
            f"{spec.name!r} must be {spec.changelog_of.topic_name!r}, "
            "the changelog name of its changelog-of application and table",
        )


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
            if (
                other.is_template
                and not topic.is_template
                and _template_matches(other.name, topic.name)
            ):
                problems.add(
                    label,
                    "name",
                    f"{topic.name!r} collides with the per-court topic "
                    f"{other.name!r} of {other.id!r}",
                )
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


def _template_matches(template: str, name: str) -> bool:
    before, after = template.split(COURT_PLACEHOLDER)
    if not (name.startswith(before) and name.endswith(after)) or len(name) < len(before + after):
        return False
    return COURT_CODE_PATTERN.fullmatch(name[len(before) : len(name) - len(after)]) is not None


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
