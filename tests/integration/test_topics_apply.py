"""``topics apply`` against the real broker: it creates the whole catalog, a second run
changes nothing, drift is repaired, extras are reported and kept, and --dry-run touches
nothing. Each test works on the catalog under its own name prefix and removes its topics."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import UnknownTopicOrPartitionError

from ops.deployment import Deployment
from schemas.settings import Settings
from schemas.tls_layout import ADMIN_NAME
from tests.waiting import wait_for
from topics.admin import ApplyResult, apply, plan, read_cluster_state
from topics.catalog import Catalog, load_catalog
from topics.clients import connection
from topics.plan import MANAGED_CONFIGS, Plan

pytestmark = pytest.mark.integration

COURTS = ("BJ01", "SH01")
PROVINCES = ("11", "national")
UNITS = ("110000000000", "310000000000")
ZF801 = Path(sys.executable).with_name("zf801")


@pytest.fixture
def catalog(kafka_admin: KafkaAdminClient, unique_name: Callable[..., str]) -> Iterator[Catalog]:
    """The catalog under a name prefix of its own; its topics are deleted after the test."""
    prefixed = load_catalog().with_name_prefix(unique_name("t") + "-")
    yield prefixed
    mine = [name for name in kafka_admin.list_topics() if prefixed.in_namespace(name)]
    if mine:
        with contextlib.suppress(UnknownTopicOrPartitionError):
            kafka_admin.delete_topics(mine)


def _plan(admin: KafkaAdminClient, catalog: Catalog) -> Plan:
    wanted = {t.name for t in catalog.concrete_topics(COURTS, PROVINCES, UNITS)}
    state = read_cluster_state(admin, lambda n: n in wanted or catalog.in_namespace(n))
    return plan(catalog, state, COURTS, PROVINCES, UNITS)


def _apply(admin: KafkaAdminClient, catalog: Catalog) -> ApplyResult:
    return apply(_plan(admin, catalog), admin)


def _brokers(admin: KafkaAdminClient) -> int:
    return len([b for b in admin.describe_cluster()["brokers"] if not b.get("is_fenced")])


def _partitions(admin: KafkaAdminClient, names: list[str]) -> dict[str, tuple[int, int]]:
    """Per topic: (partition count, replication factor), read straight from the cluster."""
    return {
        t["name"]: (len(t["partitions"]), len(t["partitions"][0]["replica_nodes"]))
        for t in admin.describe_topics(names)
        if t["error_code"] == 0
    }


def _configs(admin: KafkaAdminClient, name: str) -> dict[str, str]:
    resource = ConfigResource(ConfigResourceType.TOPIC, name, list(MANAGED_CONFIGS))
    described = admin.describe_configs([resource], config_filter="all")["topic"][name]
    return {key: entry["value"] for key, entry in described.items()}


def _create(admin: KafkaAdminClient, name: str, partitions: int, **configs: str) -> None:
    spec = {"num_partitions": partitions, "replication_factor": 1, "configs": configs}
    admin.create_topics({name: spec}, wait_for_metadata=True)


def _cli(settings: Settings, catalog: Catalog, *args: str) -> subprocess.CompletedProcess[str]:
    """``zf801 topics ...`` as the operator: the session's settings (security, TLS material)
    in its environment, ``--bootstrap`` the admin's listener (the bus side under mTLS)."""
    prefix = catalog.namespace.removesuffix("zf801")
    courts = [arg for court in COURTS for arg in ("--court", court)]
    courts += [arg for province in PROVINCES for arg in ("--province", province)]
    courts += [arg for unit in UNITS for arg in ("--unit", unit)]
    bootstrap = connection(settings, ADMIN_NAME).bootstrap_servers
    command = [str(ZF801), "topics", *args, "--bootstrap", bootstrap, "--name-prefix", prefix]
    env = {**Deployment.create(settings).worker_env(), "COLUMNS": "250", "NO_COLOR": "1"}
    return subprocess.run(
        [*command, *courts], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_apply_creates_every_catalog_topic_as_the_catalog_says(
    kafka_admin: KafkaAdminClient, catalog: Catalog
) -> None:
    result = _apply(kafka_admin, catalog)
    expected = catalog.concrete_topics(COURTS, PROVINCES, UNITS)
    assert sorted(result.created) == sorted(t.name for t in expected)
    assert result.failures == ()
    brokers = _brokers(kafka_admin)
    observed = _partitions(kafka_admin, [t.name for t in expected])
    for topic in expected:
        spec = topic.spec
        rf = min(spec.replication_factor, brokers)
        assert observed[topic.name] == (spec.partitions, rf), topic.name
        isr = min(spec.min_insync_replicas or 1, rf)
        wanted = spec.kafka_configs(min_insync_replicas=isr)
        actual = _configs(kafka_admin, topic.name)
        # A config the entry does not set (max.message.bytes) keeps the cluster's default.
        assert {key: actual[key] for key in wanted} == wanted, topic.name
    matcher = {observed[t.name][0] for t in catalog.co_partitioned("matcher")}
    assert matcher == {6}
    assert _configs(kafka_admin, catalog.topic_name("trust"))["cleanup.policy"] == "compact"


def test_second_apply_changes_nothing(kafka_admin: KafkaAdminClient, catalog: Catalog) -> None:
    first = _apply(kafka_admin, catalog)
    assert first.changed
    again = _plan(kafka_admin, catalog)
    assert not again.has_changes
    assert len(again.unchanged) == len(catalog.concrete_topics(COURTS, PROVINCES, UNITS))
    second = apply(again, kafka_admin)
    assert not second.changed
    assert second == ApplyResult((), (), (), (), ())


def test_drift_is_repaired(kafka_admin: KafkaAdminClient, catalog: Catalog) -> None:
    sightings = catalog.topic_name("sightings-person")
    trust = catalog.topic_name("trust")
    # Made by hand before apply: too few partitions, wrong retention.
    _create(kafka_admin, sightings, 2, **{"retention.ms": "60000"})
    _apply(kafka_admin, catalog)
    # Someone changes a managed config after apply.
    drift = ConfigResource(ConfigResourceType.TOPIC, trust, {"cleanup.policy": "delete"})
    kafka_admin.alter_configs([drift], incremental=True)
    # The controller has the change once alter_configs returns; the broker describing it
    # applies it from the metadata log a moment later (seen stale under load).
    wait_for(lambda: _configs(kafka_admin, trust)["cleanup.policy"] == "delete", timeout_s=10)
    repair = _plan(kafka_admin, catalog)
    assert [(a.topic, [c.key for c in a.changes]) for a in repair.alterations] == [
        (trust, ["cleanup.policy"])
    ]
    result = apply(repair, kafka_admin)
    assert result.configs_altered == (trust,)
    wait_for(lambda: _configs(kafka_admin, trust)["cleanup.policy"] == "compact", timeout_s=10)
    assert _partitions(kafka_admin, [sightings])[sightings][0] == 6
    assert _configs(kafka_admin, sightings)["retention.ms"] == "31536000000"
    assert not _plan(kafka_admin, catalog).has_changes


def test_extra_topics_are_reported_and_kept(
    kafka_admin: KafkaAdminClient, catalog: Catalog, kafka_settings: Settings
) -> None:
    stray = f"{catalog.namespace}.bus.retired-topic"
    _create(kafka_admin, stray, 1)
    p = _plan(kafka_admin, catalog)
    assert p.extras == (stray,)
    apply(p, kafka_admin)
    assert stray in kafka_admin.list_topics()
    assert _plan(kafka_admin, catalog).extras == (stray,)
    listing = _cli(kafka_settings, catalog, "list")
    assert listing.returncode == 0, listing.stderr
    assert stray in listing.stdout
    assert "not in the catalog" in listing.stdout


def test_dry_run_changes_nothing(
    kafka_admin: KafkaAdminClient, catalog: Catalog, kafka_settings: Settings
) -> None:
    audit = catalog.topic_name("audit")
    _create(kafka_admin, audit, 1, **{"retention.ms": "60000"})
    run = _cli(kafka_settings, catalog, "apply", "--dry-run")
    assert run.returncode == 0, run.stderr
    total = len(catalog.concrete_topics(COURTS, PROVINCES, UNITS))
    assert f"{total - 1} to create, 1 to add partitions to, 1 to alter" in run.stdout
    assert "Dry run: nothing was changed." in run.stdout
    mine = [n for n in kafka_admin.list_topics() if catalog.in_namespace(n)]
    assert mine == [audit]
    assert _partitions(kafka_admin, [audit])[audit][0] == 1
    assert _configs(kafka_admin, audit)["retention.ms"] == "60000"


def test_cli_apply_twice_then_list(
    kafka_admin: KafkaAdminClient, catalog: Catalog, kafka_settings: Settings
) -> None:
    total = len(catalog.concrete_topics(COURTS, PROVINCES, UNITS))
    first = _cli(kafka_settings, catalog, "apply")
    assert first.returncode == 0, first.stderr
    assert f"Applied: created {total}, added partitions to 0, altered configs of 0." in first.stdout
    second = _cli(kafka_settings, catalog, "apply")
    assert second.returncode == 0, second.stderr
    assert f"Nothing to change: the cluster matches the catalog ({total} topics)." in second.stdout
    listing = _cli(kafka_settings, catalog, "list")
    assert listing.returncode == 0, listing.stderr
    assert catalog.topic_name("alerts", "SH01") in listing.stdout
    assert "missing" not in listing.stdout


def test_more_partitions_than_the_catalog_is_a_conflict_left_alone(
    kafka_admin: KafkaAdminClient, catalog: Catalog, kafka_settings: Settings
) -> None:
    alerts = catalog.topic_name("alerts", "BJ01")
    _create(kafka_admin, alerts, 3)
    run = _cli(kafka_settings, catalog, "apply")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "conflict" in run.stdout
    assert _partitions(kafka_admin, [alerts])[alerts][0] == 3
    others = [t.name for t in catalog.concrete_topics(COURTS, PROVINCES, UNITS) if t.name != alerts]
    assert set(_partitions(kafka_admin, others)) == set(others)  # the rest was applied
