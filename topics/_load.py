"""Strict reading of ``topics.yaml`` into frozen specs. Every problem is collected and
reported with the entry and field it concerns, so an operator fixes the file in one pass."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from topics._fields import (
    ID_PATTERN,
    FieldError,
    Problems,
    as_choice,
    as_int,
    as_mapping,
    as_text,
    as_text_list,
    load_yaml,
    required,
    topic_name_problem,
)
from topics._rules import check_entry, check_topics, topic_label
from topics.spec import (
    AccessPolicy,
    ChangelogOf,
    CleanupPolicy,
    CoPartitionGroup,
    KeyEncoding,
    KeyKind,
    ReadScope,
    TopicSpec,
)

__all__ = ["CatalogParts", "parse_catalog_text"]

# 2: per-province templates ({province}, read-scope province-rule);
# 3: per-unit templates ({unit}, read-scope own-unit).
SUPPORTED_VERSION = 3
_TOP_FIELDS = (
    "catalog-version",
    "namespace",
    "roles",
    "key-kinds",
    "co-partition-groups",
    "topics",
)
_NAMESPACE = re.compile(r"^[a-zA-Z0-9._-]+$")
_AVRO_FULL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_MAX_PARTITIONS = 2**31 - 1
_MIN_MESSAGE_BYTES = 1024
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_MAX_REPLICATION = 2**15 - 1  # Kafka's replication factor is an int16


@dataclass(frozen=True)
class CatalogParts:
    version: int
    namespace: str
    roles: tuple[str, ...]
    key_kinds: tuple[KeyKind, ...]
    groups: tuple[CoPartitionGroup, ...]
    topics: tuple[TopicSpec, ...]


@dataclass(frozen=True)
class _Context:
    roles: tuple[str, ...]
    key_kinds: Mapping[str, KeyKind]
    groups: tuple[str, ...]


def parse_catalog_text(text: str, source: str) -> CatalogParts:
    """Parse and validate the catalog; raise :class:`CatalogInvalid` listing every problem."""
    document = load_yaml(text, source)
    problems = Problems()
    if not isinstance(document, dict):
        problems.add("catalog", "", f"must be a mapping at the top level, got {document!r}")
        problems.raise_if_any(source)
    problems.unknown_fields("catalog", document, _TOP_FIELDS)
    field = problems.field
    version = field(
        "catalog",
        "catalog-version",
        lambda: as_int(required(document, "catalog-version"), SUPPORTED_VERSION, SUPPORTED_VERSION),
    )
    namespace = field(
        "catalog", "namespace", lambda: as_text(required(document, "namespace"), _NAMESPACE)
    )
    roles = field(
        "catalog",
        "roles",
        lambda: as_text_list(
            required(document, "roles"), lambda v: as_text(v, ID_PATTERN), allow_empty=False
        ),
    )
    kinds = _parse_key_kinds(problems, document)
    groups = _parse_groups(problems, document.get("co-partition-groups", {}))
    context = _Context(roles or (), {k.name: k for k in kinds}, tuple(g.name for g in groups))
    entries = field("catalog", "topics", lambda: _topic_entries(document))
    topics = []
    for index, data in enumerate(entries or ()):
        spec = _parse_topic(problems, index, data, context, namespace)
        if spec is not None:
            topics.append(spec)
    problems.items.extend(check_topics(tuple(topics), namespace or "").items)
    problems.raise_if_any(source)
    assert version is not None and namespace is not None and roles is not None
    return CatalogParts(version, namespace, roles, kinds, groups, tuple(topics))


def _topic_entries(document: Mapping[str, Any]) -> list[Any]:
    entries = required(document, "topics")
    if not isinstance(entries, list) or not entries:
        raise FieldError(f"must be a non-empty list of topic entries, got {entries!r}")
    return entries


def _parse_key_kinds(problems: Problems, document: Mapping[str, Any]) -> tuple[KeyKind, ...]:
    table = problems.field(
        "catalog", "key-kinds", lambda: as_mapping(required(document, "key-kinds"))
    )
    kinds = (_parse_key_kind(problems, name, data) for name, data in (table or {}).items())
    return tuple(kind for kind in kinds if kind is not None)


def _parse_key_kind(problems: Problems, name: Any, data: Any) -> KeyKind | None:
    entry = f"key-kinds.{name}"
    if not isinstance(name, str) or not ID_PATTERN.fullmatch(name) or not isinstance(data, dict):
        problems.add(entry, "", f"must be a mapping under a name matching {ID_PATTERN.pattern}")
        return None
    problems.unknown_fields(entry, data, ("encoding", "length", "description"))
    encoding = problems.field(
        entry, "encoding", lambda: KeyEncoding(as_choice(required(data, "encoding"), KeyEncoding))
    )
    length = None
    if encoding is KeyEncoding.BYTES:
        length = problems.field(entry, "length", lambda: as_int(required(data, "length"), 1))
    elif "length" in data:
        problems.add(entry, "length", "only a key of encoding 'bytes' has a fixed length")
    description = problems.field(
        entry, "description", lambda: as_text(required(data, "description"))
    )
    if encoding is None or description is None:
        return None
    return KeyKind(name, encoding, length, description)


def _parse_groups(problems: Problems, value: Any) -> tuple[CoPartitionGroup, ...]:
    table = problems.field("catalog", "co-partition-groups", lambda: as_mapping(value))
    groups = (_parse_group(problems, name, data) for name, data in (table or {}).items())
    return tuple(group for group in groups if group is not None)


def _parse_group(problems: Problems, name: Any, data: Any) -> CoPartitionGroup | None:
    entry = f"co-partition-groups.{name}"
    if not isinstance(name, str) or not ID_PATTERN.fullmatch(name) or not isinstance(data, dict):
        problems.add(entry, "", f"must be a mapping under a name matching {ID_PATTERN.pattern}")
        return None
    problems.unknown_fields(entry, data, ("description",))
    description = problems.field(
        entry, "description", lambda: as_text(required(data, "description"))
    )
    return None if description is None else CoPartitionGroup(name, description)


def _retention(value: Any) -> int | None:
    if value == "infinite":
        return None
    if isinstance(value, str) or (isinstance(value, int) and value < 1):
        raise FieldError(f'must be a number of milliseconds >= 1 or "infinite", got {value!r}')
    return as_int(value, 1)


def _topic_name(value: Any, namespace: str | None) -> str:
    name = as_text(value)
    problem = topic_name_problem(name)
    if problem:
        raise FieldError(problem)
    if namespace and not name.startswith((f"{namespace}.", f"{namespace}-")):
        raise FieldError(f"{name!r} must start with the namespace {namespace!r} and '.' or '-'")
    return name


def _changelog(value: Any) -> ChangelogOf:
    data = as_mapping(value)
    unknown = sorted(set(data) - {"application", "table"})
    if unknown:
        raise FieldError(
            f"unknown field(s) {', '.join(map(str, unknown))} (allowed: application, table)"
        )
    try:
        return ChangelogOf(as_text(required(data, "application")), as_text(required(data, "table")))
    except FieldError as exc:
        raise FieldError(f"application and table: {exc}") from exc


def _topic_fields(
    data: Mapping[str, Any], ctx: _Context, namespace: str | None
) -> dict[str, tuple[str, Callable[[], Any]]]:
    """Per YAML field of a topic entry: the TopicSpec attribute and the parser of its value."""

    def req(name: str) -> Any:
        return required(data, name)

    def optional(name: str, parse: Callable[[Any], Any], default: Any = None) -> Any:
        return parse(data[name]) if name in data else default

    def roles(name: str) -> frozenset[str]:
        return frozenset(
            as_text_list(req(name), lambda v: as_choice(v, ctx.roles), allow_empty=False)
        )

    return {
        "id": ("id", lambda: as_text(req("id"), ID_PATTERN)),
        "name": ("name", lambda: _topic_name(req("name"), namespace)),
        "description": ("description", lambda: as_text(req("description"))),
        "partitions": ("partitions", lambda: as_int(req("partitions"), 1, _MAX_PARTITIONS)),
        "replication-factor": (
            "replication_factor",
            lambda: as_int(req("replication-factor"), 1, _MAX_REPLICATION),
        ),
        "min-insync-replicas": (
            "min_insync_replicas",
            lambda: optional("min-insync-replicas", lambda v: as_int(v, 1, _MAX_REPLICATION)),
        ),
        "retention-ms": ("retention_ms", lambda: _retention(req("retention-ms"))),
        "cleanup-policy": (
            "cleanup_policy",
            lambda: CleanupPolicy(as_choice(req("cleanup-policy"), CleanupPolicy)),
        ),
        "key": ("key", lambda: ctx.key_kinds[as_choice(req("key"), ctx.key_kinds)]),
        "value-schemas": (
            "value_schemas",
            lambda: as_text_list(
                req("value-schemas"), lambda v: as_text(v, _AVRO_FULL_NAME), allow_empty=True
            ),
        ),
        "write": ("write", lambda: roles("write")),
        "read": ("read", lambda: roles("read")),
        "read-scope": (
            "read_scope",
            lambda: optional(
                "read-scope", lambda v: ReadScope(as_choice(v, ReadScope)), ReadScope.ALL
            ),
        ),
        "co-partition-group": (
            "co_partition_group",
            lambda: optional("co-partition-group", lambda v: as_choice(v, ctx.groups)),
        ),
        "changelog-of": ("changelog_of", lambda: optional("changelog-of", _changelog)),
        "max-message-bytes": (
            "max_message_bytes",
            lambda: optional(
                "max-message-bytes", lambda v: as_int(v, _MIN_MESSAGE_BYTES, _MAX_MESSAGE_BYTES)
            ),
        ),
        "delete-retention-ms": (
            "delete_retention_ms",
            lambda: optional("delete-retention-ms", lambda v: as_int(v, 0)),
        ),
        "min-compaction-lag-ms": (
            "min_compaction_lag_ms",
            lambda: optional("min-compaction-lag-ms", lambda v: as_int(v, 0)),
        ),
    }


def _parse_topic(
    problems: Problems, index: int, data: Any, ctx: _Context, namespace: str | None
) -> TopicSpec | None:
    if not isinstance(data, dict):
        problems.add(f"topics[{index}]", "", f"must be a mapping, got {data!r}")
        return None
    entry = topic_label(index, data.get("id"))
    fields = _topic_fields(data, ctx, namespace)
    problems.unknown_fields(entry, data, fields)
    problems_before = len(problems.items)  # an unknown field alone still yields a spec
    values: dict[str, Any] = {
        attr: problems.field(entry, name, parse) for name, (attr, parse) in fields.items()
    }
    if len(problems.items) > problems_before:  # this entry broke a rule: no spec
        return None
    access = AccessPolicy(values.pop("write"), values.pop("read"), values.pop("read_scope"))
    spec = TopicSpec(**values, access=access)
    check_entry(problems, entry, spec)
    return spec
