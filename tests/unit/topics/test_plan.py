"""The pure plan of ``topics apply`` against fake cluster snapshots, and ``apply`` driving a
recording fake admin client (no broker: the real one is in tests/integration)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from topics.admin import ApplyResult, apply
from topics.catalog import Catalog
from topics.plan import (
    ClusterState,
    ConfigChange,
    DesiredTopic,
    ObservedTopic,
    PartitionIncrease,
    Plan,
    desired_topics,
    plan,
)

COURTS = ("BJ01", "SH01")
FIXED_TOPICS = 25
PROVINCE_TEMPLATES = 5  # the three order deliveries, the sightings history, the documents
UNIT_TEMPLATES = 1  # the action notices
PER_COURT_TEMPLATES = 3  # alerts, query results and removal receipts


def _observed(topic: DesiredTopic, **changes: Any) -> ObservedTopic:
    observed = ObservedTopic(
        topic.name, topic.partitions, topic.replication_factor, dict(topic.configs)
    )
    return replace(observed, **changes)


def _matching(catalog: Catalog, brokers: int, courts: tuple[str, ...] = COURTS) -> ClusterState:
    desired, _ = desired_topics(catalog, courts, brokers)
    return ClusterState(brokers, {t.name: _observed(t) for t in desired})


def _with(state: ClusterState, *observed: ObservedTopic) -> ClusterState:
    return ClusterState(state.broker_count, {**state.topics, **{o.name: o for o in observed}})


def _desired(
    catalog: Catalog, topic_id: str, brokers: int, court: str | None = None
) -> DesiredTopic:
    desired, _ = desired_topics(catalog, COURTS, brokers)
    name = catalog.topic_name(topic_id, court)
    return next(t for t in desired if t.name == name)


def test_empty_single_broker_cluster_creates_everything_with_capped_figures(
    catalog: Catalog,
) -> None:
    p = plan(catalog, ClusterState(1, {}), COURTS)
    assert len(p.creations) == len(p.desired) == FIXED_TOPICS + PER_COURT_TEMPLATES * len(COURTS)
    assert p.has_changes
    assert {(t.replication_factor, t.configs["min.insync.replicas"]) for t in p.creations} == {
        (1, "1")
    }
    alerts = next(t for t in p.creations if t.name == "zf801.alerts.SH01")
    assert (alerts.topic_id, alerts.court, alerts.partitions) == ("alerts", "SH01", 1)
    assert alerts.configs == {
        "cleanup.policy": "delete",
        "retention.ms": "-1",
        "min.insync.replicas": "1",
    }
    capped = {(c.setting, c.catalog, c.effective) for c in p.cappings}
    assert capped == {("replication-factor", 3, 1), ("min.insync.replicas", 2, 1)}
    assert len(p.cappings) == 2 * len(p.desired)
    assert not (p.alterations or p.partition_increases or p.conflicts or p.extras)


def test_per_province_topics_are_planned_for_the_provinces_given(catalog: Catalog) -> None:
    p = plan(catalog, ClusterState(3, {}), COURTS, ("11", "national"))
    assert (
        len(p.creations)
        == FIXED_TOPICS + PER_COURT_TEMPLATES * len(COURTS) + PROVINCE_TEMPLATES * 2
    )
    delivery = next(t for t in p.creations if t.name == "zf801.orders.exit-restriction.national")
    assert (delivery.topic_id, delivery.court, delivery.province) == (
        "order-delivery-exit-restriction",
        None,
        "national",
    )
    assert (delivery.partitions, delivery.configs["retention.ms"]) == (3, "-1")
    assert delivery.configs["cleanup.policy"] == "delete"


def test_per_unit_topics_are_planned_for_the_units_given(catalog: Catalog) -> None:
    units = ("110000000000", "110105000000")
    p = plan(catalog, ClusterState(3, {}), COURTS, (), units)
    assert len(p.creations) == (
        FIXED_TOPICS + PER_COURT_TEMPLATES * len(COURTS) + UNIT_TEMPLATES * len(units)
    )
    notices = [t for t in p.creations if t.topic_id == "action-notices"]
    assert [(t.name, t.unit, t.province, t.court) for t in notices] == [
        (f"zf801.police.action-notices.{u}", u, None, None) for u in units
    ]


def test_three_brokers_get_the_catalog_figures_uncapped(catalog: Catalog) -> None:
    p = plan(catalog, ClusterState(3, {}), COURTS)
    assert p.cappings == ()
    assert {(t.replication_factor, t.configs["min.insync.replicas"]) for t in p.desired} == {
        (3, "2")
    }


def test_two_brokers_cap_replication_but_not_min_isr(catalog: Catalog) -> None:
    p = plan(catalog, ClusterState(2, {}), ())
    assert {(c.setting, c.effective) for c in p.cappings} == {("replication-factor", 2)}
    assert {t.configs["min.insync.replicas"] for t in p.desired} == {"2"}


def test_cluster_that_matches_needs_nothing(catalog: Catalog) -> None:
    p = plan(catalog, _matching(catalog, 1), COURTS)
    assert not p.has_changes
    assert p.unchanged == tuple(t.name for t in p.desired)
    assert not (p.creations or p.alterations or p.partition_increases or p.conflicts)


def test_config_drift_is_altered_key_by_key(catalog: Catalog) -> None:
    trust = _desired(catalog, "trust", 1)
    drifted = _observed(
        trust,
        configs={"cleanup.policy": "delete", "retention.ms": "-1", "min.insync.replicas": "1"},
    )
    p = plan(catalog, _with(_matching(catalog, 1), drifted), COURTS)
    assert [a.topic for a in p.alterations] == ["zf801.bus.trust"]
    assert p.alterations[0].changes == (ConfigChange("cleanup.policy", "delete", "compact"),)
    assert "zf801.bus.trust" not in p.unchanged


def test_a_config_the_cluster_does_not_report_is_set(catalog: Catalog) -> None:
    audit = _desired(catalog, "audit", 1)
    bare = _observed(audit, configs={"cleanup.policy": "delete", "retention.ms": "-1"})
    p = plan(catalog, _with(_matching(catalog, 1), bare), COURTS)
    assert p.alterations[0].changes == (ConfigChange("min.insync.replicas", None, "1"),)


def test_equivalent_values_are_not_drift(catalog: Catalog) -> None:
    audit = _desired(catalog, "audit", 1)
    same = _observed(
        audit,
        configs={"cleanup.policy": " delete", "retention.ms": "-1", "min.insync.replicas": "01"},
    )
    assert not plan(catalog, _with(_matching(catalog, 1), same), COURTS).has_changes


def test_cleanup_policy_order_does_not_matter(catalog: Catalog) -> None:
    both = replace(catalog.get("audit"), cleanup_policy="compact,delete")  # type: ignore[arg-type]
    variant = replace(catalog, topics=tuple(both if t.id == "audit" else t for t in catalog.topics))
    audit = _desired(variant, "audit", 1)
    reordered = _observed(audit, configs={**audit.configs, "cleanup.policy": "delete,compact"})
    assert not plan(variant, _with(_matching(variant, 1), reordered), COURTS).has_changes


def test_fewer_partitions_are_increased(catalog: Catalog) -> None:
    sightings = _desired(catalog, "sightings-person", 1)
    p = plan(catalog, _with(_matching(catalog, 1), _observed(sightings, partitions=2)), COURTS)
    assert p.partition_increases == (PartitionIncrease("zf801.sightings.person", 2, 6),)
    assert p.conflicts == ()


def test_more_partitions_are_a_conflict_never_a_decrease(catalog: Catalog) -> None:
    alerts = _desired(catalog, "alerts", 1, "BJ01")
    p = plan(catalog, _with(_matching(catalog, 1), _observed(alerts, partitions=4)), COURTS)
    assert p.partition_increases == ()
    assert not p.has_changes
    [conflict] = p.conflicts
    assert (conflict.topic, conflict.setting, conflict.current, conflict.desired) == (
        "zf801.alerts.BJ01",
        "partitions",
        "4",
        "1",
    )
    assert "never decreases" in conflict.reason


def test_other_replication_factor_is_a_conflict_and_min_isr_follows_the_real_one(
    catalog: Catalog,
) -> None:
    state = _matching(catalog, 3)
    audit = _desired(catalog, "audit", 3)
    single = _observed(
        audit, replication_factor=1, configs={**audit.configs, "min.insync.replicas": "1"}
    )
    p = plan(catalog, _with(state, single), COURTS)
    assert [(c.topic, c.setting, c.current, c.desired) for c in p.conflicts] == [
        ("zf801.bus.audit", "replication-factor", "1", "3")
    ]
    # min.insync.replicas 2 on a 1-replica topic would refuse every acks=all write.
    assert p.alterations == ()


def test_extras_under_the_namespace_are_reported_never_planned_for_deletion(
    catalog: Catalog,
) -> None:
    def stray(name: str) -> ObservedTopic:
        return ObservedTopic(name, 1, 1, {"cleanup.policy": "delete"})

    state = _with(
        _matching(catalog, 1),
        stray("zf801.orders.old-kind"),
        stray("zf801.alerts.GD01"),  # a court that is not in the court list given
        stray("zf801-matcher-__assignor-__leader"),
        stray("__consumer_offsets"),
        stray("someone.else"),
    )
    p = plan(catalog, state, COURTS)
    assert p.extras == (
        "zf801-matcher-__assignor-__leader",
        "zf801.alerts.GD01",
        "zf801.orders.old-kind",
    )
    assert not p.has_changes


def test_prefixed_catalog_sees_only_its_own_extras(catalog: Catalog) -> None:
    prefixed = catalog.with_name_prefix("t-1-")
    state = _with(
        _matching(catalog, 1),
        ObservedTopic("t-1-zf801.bus.stray", 1, 1, {}),
        ObservedTopic("t-2-zf801.bus.stray", 1, 1, {}),
    )
    p = plan(prefixed, state, COURTS)
    assert p.extras == ("t-1-zf801.bus.stray",)
    assert len(p.creations) == len(p.desired)
    assert all(t.name.startswith("t-1-zf801") for t in p.creations)


def test_broker_count_must_be_positive(catalog: Catalog) -> None:
    with pytest.raises(ValueError, match="broker count"):
        plan(catalog, ClusterState(0, {}), COURTS)


# --- apply, driving a recording fake admin client ----------------------------------------


class _RecordingAdmin:
    """Answers like kafka-python's KafkaAdminClient and records each call."""

    def __init__(self, create_codes: dict[str, int] | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.create_codes = create_codes or {}

    def create_topics(self, new_topics: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("create_topics", new_topics))
        return {
            "topics": [
                {"name": n, "error_code": self.create_codes.get(n, 0), "error_message": "no"}
                for n in new_topics
            ]
        }

    def wait_for_topics(self, topic_names: list[str], timeout_ms: int = 0) -> None:
        self.calls.append(("wait_for_topics", list(topic_names)))

    def create_partitions(self, topic_partitions: dict[str, int], **kwargs: Any) -> Any:
        self.calls.append(("create_partitions", topic_partitions))
        results = [
            SimpleNamespace(name=n, error_code=0, error_message=None) for n in topic_partitions
        ]
        return SimpleNamespace(results=results)

    def alter_configs(self, config_resources: list[Any], **kwargs: Any) -> dict[str, Any]:
        self.calls.append(
            ("alter_configs", [(r.name, r.configs, kwargs) for r in config_resources])
        )
        return {"topic": {r.name: "OK" for r in config_resources}}

    def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        # Only after create_partitions: the new counts, as the brokers would show them.
        self.calls.append(("describe_topics", topics))
        counts = next(arg for name, arg in self.calls if name == "create_partitions")
        return [{"name": n, "partitions": [{}] * counts[n]} for n in topics]

    def list_topics(self) -> list[str]:
        raise AssertionError("apply must not list the cluster again")

    describe_configs = describe_cluster = list_topics


def _drifted_plan(catalog: Catalog) -> Plan:
    state = _matching(catalog, 1)
    trust = _desired(catalog, "trust", 1)
    person = _desired(catalog, "sightings-person", 1)
    topics = dict(state.topics)
    del topics["zf801.bus.audit"]
    topics[trust.name] = _observed(trust, configs={**trust.configs, "retention.ms": "1000"})
    topics[person.name] = _observed(person, partitions=3)
    return plan(catalog, ClusterState(1, topics), COURTS)


def test_apply_creates_adds_partitions_and_alters_only_what_the_plan_says(
    catalog: Catalog,
) -> None:
    admin = _RecordingAdmin()
    result = apply(_drifted_plan(catalog), admin)
    assert result == ApplyResult(
        created=("zf801.bus.audit",),
        created_elsewhere=(),
        partitions_added=("zf801.sightings.person",),
        configs_altered=("zf801.bus.trust",),
        failures=(),
    )
    assert result.changed
    names = [name for name, _ in admin.calls]
    assert names == [
        "create_topics",
        "wait_for_topics",
        "create_partitions",
        "describe_topics",
        "wait_for_topics",
        "alter_configs",
    ]
    assert admin.calls[0][1] == {
        "zf801.bus.audit": {
            "num_partitions": 3,
            "replication_factor": 1,
            "configs": {
                "cleanup.policy": "delete",
                "retention.ms": "-1",
                "min.insync.replicas": "1",
            },
        }
    }
    assert admin.calls[2][1] == {"zf801.sightings.person": 6}
    [(topic, configs, kwargs)] = admin.calls[5][1]
    assert (topic, configs) == ("zf801.bus.trust", {"retention.ms": "-1"})
    assert kwargs["incremental"] is True  # other topic configs stay untouched


def test_apply_of_an_empty_plan_calls_nothing(catalog: Catalog) -> None:
    admin = _RecordingAdmin()
    result = apply(plan(catalog, _matching(catalog, 1), COURTS), admin)
    assert admin.calls == []
    assert not result.changed


def test_apply_reports_refusals_and_concurrent_creations(catalog: Catalog) -> None:
    p = plan(catalog, ClusterState(1, {}), ())
    admin = _RecordingAdmin({"zf801.bus.audit": 36, "zf801.bus.trust": 42})
    result = apply(p, admin)
    assert result.created_elsewhere == ("zf801.bus.audit",)
    assert result.failures == (("zf801.bus.trust", "error 42: no"),)
    assert len(result.created) == FIXED_TOPICS - 2
    assert admin.calls[1] == ("wait_for_topics", list(result.created))
