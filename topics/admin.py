"""Make a Kafka cluster match the topic catalog, through kafka-python's ``KafkaAdminClient``
(built by :mod:`topics.clients`, as the operator by default).

``read_cluster_state`` takes a snapshot, :func:`topics.plan.plan` (re-exported here)
compares it with the catalog, and :func:`apply` carries the plan out: it creates missing
topics, adds partitions and alters configs, and never deletes anything. Applying the
same catalog twice changes nothing the second time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError

from schemas.settings import Settings, get_settings
from schemas.tls_layout import ADMIN_NAME
from topics.clients import connection, kafka_admin
from topics.errors import ApplyFailed
from topics.plan import (
    MANAGED_CONFIGS,
    ClusterState,
    ObservedTopic,
    Plan,
    plan,
)

__all__ = [
    "ApplyResult",
    "ClusterState",
    "Plan",
    "TopicAdmin",
    "admin_client",
    "apply",
    "plan",
    "read_cluster_state",
]

_TOPIC_ALREADY_EXISTS = 36  # Kafka error code TOPIC_ALREADY_EXISTS
_READY_TIMEOUT_MS = 30_000
_POLL_INTERVAL_S = 0.1


class TopicAdmin(Protocol):
    """The part of ``kafka.KafkaAdminClient`` that topics apply uses."""

    def list_topics(self) -> Any: ...
    def describe_topics(self, topics: Any = None) -> Any: ...
    def describe_configs(self, config_resources: Any, *args: Any, **kwargs: Any) -> Any: ...
    def describe_cluster(self) -> Any: ...
    def create_topics(self, new_topics: Any, *args: Any, **kwargs: Any) -> Any: ...
    def create_partitions(self, topic_partitions: Any, *args: Any, **kwargs: Any) -> Any: ...
    def alter_configs(self, config_resources: Any, *args: Any, **kwargs: Any) -> Any: ...
    def wait_for_topics(self, topic_names: Any, timeout_ms: int = ...) -> Any: ...


@dataclass(frozen=True)
class ApplyResult:
    """What :func:`apply` did; ``failures`` holds (topic, reason) the cluster refused."""

    created: tuple[str, ...]
    created_elsewhere: tuple[str, ...]  # created concurrently by someone else: left as is
    partitions_added: tuple[str, ...]
    configs_altered: tuple[str, ...]
    failures: tuple[tuple[str, str], ...]

    @property
    def changed(self) -> bool:
        return bool(self.created or self.partitions_added or self.configs_altered)


@contextmanager
def admin_client(
    bootstrap_servers: str | None = None,
    client_id: str = "zf801-topics",
    *,
    settings: Settings | None = None,
    agency: str = ADMIN_NAME,
) -> Iterator[Any]:
    """An admin client of ``agency`` (the operator by default) for the cluster of
    ``settings`` (default: the process's), closed on exit; ``bootstrap_servers`` replaces
    the servers of the agency's listener. Connection failures are ApplyFailed."""
    settings = settings or get_settings()
    where = {"bootstrap_servers": bootstrap_servers} if bootstrap_servers else {}
    try:
        admin = kafka_admin(settings, agency, client_id=client_id, **where)
    except KafkaError as exc:
        servers = bootstrap_servers or connection(settings, agency).bootstrap_servers
        raise ApplyFailed(f"cannot reach Kafka at {servers}: {exc!r}") from exc
    try:
        yield admin
    finally:
        admin.close()


def read_cluster_state(admin: TopicAdmin, wanted: Callable[[str], bool]) -> ClusterState:
    """Snapshot of the live brokers and of the topics for which ``wanted(name)`` holds."""
    try:
        brokers = [b for b in admin.describe_cluster()["brokers"] if not b.get("is_fenced")]
        names = sorted(n for n in admin.list_topics() if wanted(n))
        described = admin.describe_topics(names) if names else []
        configs = _describe_managed_configs(admin, names)
    except KafkaError as exc:
        raise ApplyFailed(f"cannot read the cluster's topics: {exc!r}") from exc
    topics = {}
    for topic in described:
        if topic.get("error_code", 0) != 0 or not topic.get("partitions"):
            continue  # deleted or not ready between list and describe: treat as absent
        partitions = topic["partitions"]
        name = topic["name"]
        topics[name] = ObservedTopic(
            name=name,
            partitions=len(partitions),
            replication_factor=max(len(p["replica_nodes"]) for p in partitions),
            configs=configs.get(name, {}),
        )
    return ClusterState(broker_count=len(brokers), topics=topics)


def _describe_managed_configs(
    admin: TopicAdmin, names: list[str]
) -> Mapping[str, Mapping[str, str]]:
    if not names:
        return {}
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, name, list(MANAGED_CONFIGS)) for name in names
    ]
    described = admin.describe_configs(resources, config_filter="all").get("topic", {})
    return {
        name: {
            key: entry["value"] for key, entry in configs.items() if entry.get("value") is not None
        }
        for name, configs in described.items()
    }


def apply(plan: Plan, admin: TopicAdmin) -> ApplyResult:
    """Carry out ``plan``: create, then add partitions, then alter configs. Never deletes.

    Refusals by the cluster are collected in :attr:`ApplyResult.failures`; a lost
    connection raises :class:`ApplyFailed`.
    """
    try:
        created, elsewhere, failures = _create(plan, admin)
        added = _add_partitions(plan, admin, failures)
        altered = _alter_configs(plan, admin, failures)
    except KafkaError as exc:
        raise ApplyFailed(f"applying the topic plan failed: {exc!r}") from exc
    return ApplyResult(created, elsewhere, added, altered, tuple(failures))


def _create(
    plan: Plan, admin: TopicAdmin
) -> tuple[tuple[str, ...], tuple[str, ...], list[tuple[str, str]]]:
    failures: list[tuple[str, str]] = []
    if not plan.creations:
        return (), (), failures
    request = {
        t.name: {
            "num_partitions": t.partitions,
            "replication_factor": t.replication_factor,
            "configs": dict(t.configs),
        }
        for t in plan.creations
    }
    response = admin.create_topics(request, raise_errors=False)
    created, elsewhere = [], []
    for result in response["topics"]:
        name, code = result["name"], result.get("error_code", 0)
        if code == 0:
            created.append(name)
        elif code == _TOPIC_ALREADY_EXISTS:
            elsewhere.append(name)
        else:
            failures.append((name, _reason(result)))
    if created:
        # Producers that start right after apply must find a leader for every partition.
        admin.wait_for_topics(created, timeout_ms=_READY_TIMEOUT_MS)
    return tuple(created), tuple(elsewhere), failures


def _add_partitions(
    plan: Plan, admin: TopicAdmin, failures: list[tuple[str, str]]
) -> tuple[str, ...]:
    if not plan.partition_increases:
        return ()
    request = {p.topic: p.desired for p in plan.partition_increases}
    response = admin.create_partitions(request, raise_errors=False)
    added = []
    for result in response.results:
        if result.error_code == 0:
            added.append(result.name)
        else:
            failures.append((result.name, f"error {result.error_code}: {result.error_message}"))
    if added:
        _wait_for_partition_counts(admin, {name: request[name] for name in added})
    return tuple(added)


def _wait_for_partition_counts(admin: TopicAdmin, wanted: Mapping[str, int]) -> None:
    """Return once metadata shows the new partitions (with leaders), so that producers
    started right after apply use them; the controller accepts before brokers know."""
    deadline = time.monotonic() + _READY_TIMEOUT_MS / 1000
    while True:
        described = admin.describe_topics(list(wanted))
        counts = {t["name"]: len(t.get("partitions") or ()) for t in described}
        if all(counts.get(name, 0) >= count for name, count in wanted.items()):
            admin.wait_for_topics(list(wanted), timeout_ms=_READY_TIMEOUT_MS)
            return
        if time.monotonic() > deadline:
            raise ApplyFailed(f"new partitions not visible after {_READY_TIMEOUT_MS} ms: {counts}")
        time.sleep(_POLL_INTERVAL_S)


def _alter_configs(
    plan: Plan, admin: TopicAdmin, failures: list[tuple[str, str]]
) -> tuple[str, ...]:
    if not plan.alterations:
        return ()
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, a.topic, {c.key: c.desired for c in a.changes})
        for a in plan.alterations
    ]
    # Incremental: only the keys named are set, every other topic config stays as it is.
    response = admin.alter_configs(resources, raise_on_unknown=False, incremental=True)
    altered = []
    for name, outcome in response.get("topic", {}).items():
        if outcome == "OK":
            altered.append(name)
        else:
            failures.append((name, str(outcome)))
    return tuple(altered)


def _reason(result: Mapping[str, Any]) -> str:
    message = result.get("error_message") or ""
    return f"error {result.get('error_code')}: {message}".rstrip(": ")
