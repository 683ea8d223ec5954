"""ACLs as code on the real catalog and agency list: who gets which grant, the plan against
a fake cluster, and ``apply_acls`` driving a fake admin client that speaks kafka-python's
ACL types (no broker: the authorizer itself is exercised in tests/integration)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
)
from kafka.errors import InvalidRequestError, NoError, SecurityDisabledError

from schemas.agencies import POLICE_ROLES, AgencyList, AgencyRole
from schemas.event_types import EXPIRY_NOTICE
from topics.acl_admin import apply_acls, read_acls
from topics.acls import (
    CLUSTER_RESOURCE,
    AclBinding,
    AclInvalid,
    AclScope,
    Operation,
    PatternKind,
    Permission,
    ResourceKind,
    access_matrix,
    acl_scope,
    desired_acls,
    group_prefix,
    plan_acls,
    processor_application,
)
from topics.catalog import Catalog, load_catalog
from topics.errors import ApplyFailed

ORDER_TOPIC_OF = {
    AgencyRole.BORDER_CONTROL: "orders-exit-restriction",
    AgencyRole.TRAFFIC_MANAGEMENT: "orders-vehicle-search",
    AgencyRole.PUBLIC_SECURITY: "orders-locate-debtor",
}
ORDER_TOPICS = frozenset(ORDER_TOPIC_OF.values())
DELIVERY_OF = {
    role: topic_id.replace("orders-", "order-delivery-")
    for role, topic_id in ORDER_TOPIC_OF.items()
}
DELIVERY_TOPICS = frozenset(DELIVERY_OF.values())
BORDER_BJ = "110000230000"


@pytest.fixture(scope="module")
def courts(agencies: AgencyList) -> tuple[str, ...]:
    return tuple(c.code for c in agencies.courts())


@pytest.fixture(scope="module")
def desired(catalog: Catalog, agencies: AgencyList, courts: tuple[str, ...]) -> frozenset:
    return desired_acls(catalog, agencies, courts)


def user(code: str) -> str:
    return f"User:{code}"


def principals(agencies: AgencyList, role: AgencyRole) -> set[str]:
    return {user(a.code) for a in agencies.with_role(role)}


def topic_ids(catalog: Catalog, desired, principal: str, operation: Operation) -> set[str]:
    """The catalog ids of the topics ``principal`` may ``operation``."""
    return {
        catalog.resolve(acl.resource_name).spec.id
        for acl in desired
        if acl.principal == principal
        and acl.resource_type is ResourceKind.TOPIC
        and acl.operation is operation
    }


def holders(desired, topic: str, operation: Operation) -> set[str]:
    return {
        acl.principal
        for acl in desired
        if acl.resource_type is ResourceKind.TOPIC
        and acl.resource_name == topic
        and acl.operation is operation
    }


# --- who gets what ---------------------------------------------------------------------------


def test_a_court_writes_the_order_topics_and_reads_only_its_own_alerts(catalog, desired):
    written = topic_ids(catalog, desired, user("BJ01"), Operation.WRITE)
    assert written >= ORDER_TOPICS
    assert holders(desired, catalog.topic_name("alerts", "BJ01"), Operation.READ) == {user("BJ01")}
    assert user("BJ01") not in holders(
        desired, catalog.topic_name("alerts", "SH01"), Operation.READ
    )
    assert user("BJ01") not in holders(
        desired, catalog.topic_name("alerts", "SH01"), Operation.WRITE
    )


def test_every_court_reads_exactly_its_own_per_court_topics(catalog, agencies, desired):
    for court in agencies.courts():
        per_court = {
            acl.resource_name
            for acl in desired
            if acl.principal == user(court.code)
            and acl.operation is Operation.READ
            and acl.resource_type is ResourceKind.TOPIC
            and catalog.resolve(acl.resource_name).court is not None
        }
        assert per_court == {
            catalog.topic_name("alerts", court.code),
            catalog.topic_name("query-results", court.code),
            catalog.topic_name("removal-receipts", court.code),
        }


def test_a_read_or_write_comes_with_describe_on_the_same_topic(desired):
    grants = {(a.principal, a.resource_name) for a in desired if a.operation is Operation.DESCRIBE}
    for acl in desired:
        if acl.resource_type is ResourceKind.TOPIC:
            assert (acl.principal, acl.resource_name) in grants
            assert acl.pattern is PatternKind.LITERAL and acl.permission is Permission.ALLOW


def test_only_the_bus_reads_the_order_intake(catalog, agencies, desired):
    bus = principals(agencies, AgencyRole.BUS)
    for topic_id in ORDER_TOPICS:
        assert holders(desired, catalog.topic_name(topic_id), Operation.READ) == bus


@pytest.mark.parametrize("role", sorted(ORDER_TOPIC_OF))
def test_each_police_unit_reads_its_kind_for_the_provinces_its_rule_names(
    catalog, agencies, desired, role
):
    delivery = DELIVERY_OF[role]
    for unit in agencies.with_role(role):
        read = {
            catalog.resolve(acl.resource_name)
            for acl in desired
            if acl.principal == user(unit.code)
            and acl.resource_type is ResourceKind.TOPIC
            and acl.operation is Operation.READ
        }
        orders = {t for t in read if t.spec.id in ORDER_TOPICS | DELIVERY_TOPICS}
        assert {t.spec.id for t in orders} == {delivery}
        assert {t.province for t in orders} == agencies.provinces_served_by(unit.code)
        assert not topic_ids(catalog, desired, user(unit.code), Operation.WRITE) & (
            ORDER_TOPICS | DELIVERY_TOPICS
        )


def test_a_beijing_border_unit_reads_beijing_exit_restrictions_not_shanghais(catalog, desired):
    def readers(province: str) -> set[str]:
        name = catalog.topic_name("order-delivery-exit-restriction", province=province)
        return holders(desired, name, Operation.READ)

    assert user(BORDER_BJ) in readers("11")
    assert user(BORDER_BJ) in readers("national")  # the SPC's orders: its rule names it
    assert user(BORDER_BJ) not in readers("31")
    assert user(BORDER_BJ) not in readers("44")
    assert readers("31") == {user("310000230000")}
    assert readers("44") == {user("440100230000"), user("440300230000")}
    # Nor another kind's delivery, even of its own province.
    for topic_id in ("order-delivery-vehicle-search", "order-delivery-locate-debtor"):
        assert user(BORDER_BJ) not in holders(
            desired, catalog.topic_name(topic_id, province="11"), Operation.READ
        )


def test_only_the_bus_writes_the_delivery_topics(catalog, agencies, desired):
    bus = principals(agencies, AgencyRole.BUS)
    for topic_id in DELIVERY_TOPICS:
        for province in agencies.provinces():
            name = catalog.topic_name(topic_id, province=province)
            assert holders(desired, name, Operation.WRITE) == bus


def test_a_provinces_sightings_history_is_read_by_the_p3_and_p5_units_its_rule_names(
    catalog, agencies, desired
):
    def readers(province: str) -> set[str]:
        name = catalog.topic_name("sightings-history", province=province)
        return holders(desired, name, Operation.READ)

    answering = {AgencyRole.BORDER_CONTROL, AgencyRole.PUBLIC_SECURITY}
    for province in agencies.provinces():
        named = {
            user(code)
            for role, codes in agencies.rules[province].items()
            if role in answering
            for code in codes
        }
        assert readers(province) == named, province
        name = catalog.topic_name("sightings-history", province=province)
        assert holders(desired, name, Operation.WRITE) == principals(agencies, AgencyRole.BUS)
    assert readers("11") == {user("110000000000"), user("110105000000"), user(BORDER_BJ)}
    assert user(BORDER_BJ) not in readers("31") | readers("44")
    for unit in agencies.with_role(AgencyRole.TRAFFIC_MANAGEMENT):
        assert "sightings-history" not in topic_ids(
            catalog, desired, user(unit.code), Operation.READ
        )


@pytest.mark.parametrize(
    ("role", "sightings"),
    [
        (AgencyRole.BORDER_CONTROL, {"sightings-person"}),
        (AgencyRole.TRAFFIC_MANAGEMENT, {"sightings-person", "sightings-vehicle"}),
        (AgencyRole.PUBLIC_SECURITY, {"sightings-person", "sightings-vehicle"}),
    ],
)
def test_each_police_role_writes_exactly_its_sightings_and_acknowledgements(
    catalog, agencies, desired, role, sightings
):
    # Besides: answers to the courts' queries, the audit log, anomaly notices, the dead
    # letters of the queries their responders refuse and the confirmations of their hits.
    everyone = {"query-results", "audit", "anomalies", "dead-letter", "encounter-confirmations"}
    for principal in principals(agencies, role):
        written = topic_ids(catalog, desired, principal, Operation.WRITE)
        assert written == sightings | {"order-acknowledgements"} | everyone


def test_only_bus_processors_write_hits_notices_blocks_and_dead_letters(
    catalog, agencies, courts, desired
):
    bus = principals(agencies, AgencyRole.BUS)
    assert len(bus) == 3
    bus_only = [catalog.topic_name("alerts", c) for c in courts]
    bus_only += [catalog.topic_name(t) for t in ("vehicle-blocks", "trust")]
    for topic in bus_only:
        assert holders(desired, topic, Operation.WRITE) == bus, topic
    police = {p for role in POLICE_ROLES for p in principals(agencies, role)}
    subscribers = principals(agencies, AgencyRole.LIST_SUBSCRIBER)
    dead_letter_writers = holders(desired, catalog.topic_name("dead-letter"), Operation.WRITE)
    assert dead_letter_writers == bus | police | subscribers
    # Expiry notices also travel on the order topics, which courts write (their orders):
    # there a court-signed notice is refused by the order book (ROLE_NOT_ALLOWED).
    courts_and_bus = bus | principals(agencies, AgencyRole.COURT)
    for spec in catalog.topics:
        if spec.allows_schema(EXPIRY_NOTICE) and not spec.is_template:
            assert spec.id in ORDER_TOPICS
            assert holders(desired, spec.name, Operation.WRITE) == courts_and_bus


def test_nobody_but_the_bus_writes_or_reads_changelogs(catalog, agencies, desired):
    bus = principals(agencies, AgencyRole.BUS)
    changelogs = [spec.name for spec in catalog.topics if spec.changelog_of is not None]
    assert len(changelogs) == 5
    for topic in changelogs:
        assert holders(desired, topic, Operation.WRITE) == bus
        assert holders(desired, topic, Operation.READ) == bus


def test_group_prefixes_one_per_agency_and_none_covers_another(catalog, agencies, desired):
    groups = {a.principal: a for a in desired if a.resource_type is ResourceKind.GROUP}
    assert set(groups) == {user(code) for code in agencies.agencies}
    assert all(
        g.pattern is PatternKind.PREFIXED and g.operation is Operation.READ for g in groups.values()
    )
    assert groups[user("BJ01")].resource_name == "zf801-bj01."
    assert groups[user("BUS-MATCHER")].resource_name == "zf801-matcher"
    assert processor_application(catalog) == "zf801-matcher"
    # With "-" as the end, SPC's prefix would cover the command system's groups.
    spc = group_prefix(catalog, agencies.get("SPC"))
    assert not group_prefix(catalog, agencies.get("SPC-COMMAND")).startswith(spc)
    assert "zf801-matcher-sightings".startswith(group_prefix(catalog, agencies.get("BUS-ROUTER")))


def test_transactional_ids_only_for_the_bus_prefixed_by_its_application(catalog, agencies, desired):
    txn = [a for a in desired if a.resource_type is ResourceKind.TRANSACTIONAL_ID]
    assert {a.principal for a in txn} == principals(agencies, AgencyRole.BUS)
    assert {(a.resource_name, a.pattern) for a in txn} == {("zf801-matcher", PatternKind.PREFIXED)}
    assert {a.operation for a in txn} == {Operation.WRITE, Operation.DESCRIBE}


def test_idempotent_write_for_exactly_the_agencies_that_write(desired):
    cluster = {a for a in desired if a.resource_type is ResourceKind.CLUSTER}
    assert {(a.resource_name, a.operation) for a in cluster} == {
        (CLUSTER_RESOURCE, Operation.IDEMPOTENT_WRITE)
    }
    writers = {a.principal for a in desired if a.operation is Operation.WRITE}
    assert {a.principal for a in cluster} == writers


def test_the_name_prefix_reaches_topics_groups_and_transactional_ids(agencies, courts):
    prefixed = load_catalog().with_name_prefix("t1-")
    acls = desired_acls(prefixed, agencies, courts)
    scope = acl_scope(prefixed, agencies)
    assert scope.namespace == "t1-zf801"
    assert all(scope.manages(a) for a in acls)
    names = {a.resource_name for a in acls if a.resource_type is not ResourceKind.CLUSTER}
    assert all(n.startswith("t1-zf801") for n in names)
    assert "t1-zf801-bj01." in names and "t1-zf801-matcher" in names


def test_per_court_topics_only_for_the_courts_given(catalog, agencies):
    acls = desired_acls(catalog, agencies, ["BJ01"])
    topics = {a.resource_name for a in acls if a.resource_type is ResourceKind.TOPIC}
    assert {catalog.resolve(t).court for t in topics} == {None, "BJ01"}
    assert holders(acls, catalog.topic_name("alerts", "BJ01"), Operation.READ) == {user("BJ01")}
    assert topic_ids(catalog, acls, user("SH01"), Operation.WRITE) >= ORDER_TOPICS


def test_a_processor_prefix_covering_an_agencys_groups_is_refused(catalog, agencies, courts):
    watch = catalog.get("watchlist-changelog")
    assert watch.changelog_of is not None
    clash = replace(watch, changelog_of=replace(watch.changelog_of, application="zf801-bj01"))
    broken = replace(catalog, topics=tuple(clash if t is watch else t for t in catalog.topics))
    with pytest.raises(AclInvalid, match="covers"):
        desired_acls(broken, agencies, courts)


def test_access_matrix_marks_reads_and_writes(catalog, desired):
    matrix = access_matrix(desired)
    assert matrix[user("BJ01")][catalog.topic_name("alerts", "BJ01")] == "R"
    assert catalog.topic_name("alerts", "SH01") not in matrix[user("BJ01")]
    assert matrix[user("BUS-MATCHER")][catalog.topic_name("trust")] == "RW"
    assert matrix[user("110000230000")][catalog.topic_name("sightings-person")] == "W"


# --- the plan ---------------------------------------------------------------------------------


def acl(principal: str, name: str, operation=Operation.READ, **kw) -> AclBinding:
    kind = kw.pop("kind", ResourceKind.TOPIC)
    pattern = kw.pop("pattern", PatternKind.LITERAL)
    return AclBinding(principal, kind, name, pattern, operation, **kw)


STRANGERS = (
    acl("User:BJ01", "zf801.alerts.SH01"),  # ours, under the namespace, not desired: extra
    acl("User:BJ01", "zf801.bus.audit", permission=Permission.DENY),  # a DENY: extra
    acl("User:intruder", "zf801.alerts.BJ01"),  # someone else under the namespace: unmanaged
    acl("User:*", "zf801.bus.trust"),  # every principal: unmanaged
    acl("User:intruder", "*"),  # a wildcard resource: unmanaged
    acl("User:intruder", "zf8", pattern=PatternKind.PREFIXED),  # covers the namespace
    acl("User:BJ01", CLUSTER_RESOURCE, Operation.ALTER, kind=ResourceKind.CLUSTER),  # unmanaged
)
UNRELATED = (  # outside the namespace, reaching nothing in it: neither touched nor reported
    acl("User:BJ01", "other.team.topic"),
    acl("User:*", "other.team.topic"),
    acl("User:BJ01", "t1-zf801.alerts.BJ01"),  # a prefixed test run's
    acl("User:other", "other.team.topic"),
    acl("User:other", CLUSTER_RESOURCE, Operation.ALTER, kind=ResourceKind.CLUSTER),
)


@pytest.fixture(scope="module")
def scope(catalog, agencies) -> AclScope:
    return acl_scope(catalog, agencies)


def test_plan_adds_the_missing_and_reports_extras_and_unmanaged(desired, scope):
    present = sorted(desired)[5:]
    plan = plan_acls(desired, [*present, *STRANGERS, *UNRELATED], scope)
    assert plan.add == tuple(sorted(desired)[:5])
    assert set(plan.extra) == set(STRANGERS[:2])
    assert set(plan.unmanaged) == set(STRANGERS[2:])
    assert len(plan.unchanged) == len(desired) - 5
    assert plan.has_changes(prune=False)


def test_plan_of_a_matching_cluster_is_empty(desired, scope):
    plan = plan_acls(desired, [*desired, *UNRELATED], scope)
    assert (plan.add, plan.extra, plan.unmanaged) == ((), (), ())
    assert not plan.has_changes(prune=True)


def test_plan_refuses_desired_acls_outside_the_scope(desired, scope):
    with pytest.raises(AclInvalid, match="outside"):
        plan_acls({*desired, acl("User:BJ01", "other.team.topic")}, (), scope)


# --- apply through a fake admin client -----------------------------------------------------------


def kafka_acl(b: AclBinding, resource_type=None) -> ACL:
    pattern = ResourcePattern(
        resource_type or ResourceType[b.resource_type.name],
        b.resource_name,
        ACLResourcePatternType[b.pattern.name],
    )
    return ACL(
        b.principal,
        b.host,
        ACLOperation[b.operation.name],
        ACLPermissionType[b.permission.name],
        pattern,
    )


class FakeAdmin:
    """Holds kafka-python ACL objects; a change shows only after ``lag`` describes, like
    the authorizer's delay; ``refuse`` names principals whose creations fail."""

    def __init__(self, acls=(), *, lag: int = 0, refuse: frozenset[str] = frozenset()) -> None:
        self.acls: list[ACL] = list(acls)
        self.shown: list[ACL] = list(acls)
        self.lag, self.countdown, self.refuse = lag, 0, refuse
        self.describes = self.creates = self.deletes = 0

    def describe_acls(self, acl_filter):
        assert acl_filter.resource_pattern.resource_type is ResourceType.ANY
        self.describes += 1
        if self.countdown:
            self.countdown -= 1
        else:
            self.shown = list(self.acls)
        return list(self.shown), NoError

    def create_acls(self, acls):
        self.creates += 1
        result = {"succeeded": [], "failed": []}
        for a in acls:
            if a.principal in self.refuse:
                result["failed"].append(InvalidRequestError)
            else:
                self.acls.append(a)
                result["succeeded"].append(a)
        self.countdown = self.lag
        return result

    def delete_acls(self, filters):
        self.deletes += 1
        results = []
        for f in filters:
            matching = [a for a in self.acls if a == f]
            self.acls = [a for a in self.acls if a != f]
            results.append((f, matching, NoError))
        self.countdown = self.lag
        return results


def test_read_acls_round_trips_every_kind_and_skips_user_resources(desired):
    user_acl = kafka_acl(acl("User:a", "User:b"), resource_type=ResourceType.USER)
    admin = FakeAdmin([*map(kafka_acl, desired), *map(kafka_acl, STRANGERS), user_acl])
    assert read_acls(admin) == desired | set(STRANGERS)


def test_read_acls_without_an_authorizer_says_so():
    class NoAuthorizer(FakeAdmin):
        def describe_acls(self, acl_filter):
            raise SecurityDisabledError("no authorizer")

    with pytest.raises(ApplyFailed, match="no authorizer"):
        read_acls(NoAuthorizer())


def test_apply_creates_the_missing_and_waits_until_the_cluster_shows_them(desired, scope):
    admin = FakeAdmin(map(kafka_acl, sorted(desired)[:10]), lag=2)
    plan = plan_acls(desired, read_acls(admin), scope)
    result = apply_acls(admin, plan, prune=False, timeout_s=5, poll_s=0)
    assert result.failures == ()
    assert set(result.created) == desired - set(sorted(desired)[:10])
    assert admin.describes >= 1 + 3  # the plan's read, two lagging polls, the one that shows
    assert read_acls(admin) == desired


def test_extras_stay_without_prune_and_only_extras_go_with_it(desired, scope):
    cluster = [*desired, *STRANGERS, *UNRELATED]
    admin = FakeAdmin(map(kafka_acl, cluster))
    plan = plan_acls(desired, read_acls(admin), scope)
    kept = apply_acls(admin, plan, prune=False, timeout_s=1, poll_s=0)
    assert (kept.created, kept.deleted, admin.creates, admin.deletes) == ((), (), 0, 0)
    pruned = apply_acls(admin, plan, prune=True, timeout_s=1, poll_s=0)
    assert set(pruned.deleted) == set(STRANGERS[:2]) and pruned.failures == ()
    assert read_acls(admin) == desired | set(STRANGERS[2:]) | set(UNRELATED)


def test_refused_creations_are_failures_with_the_error(desired, scope):
    admin = FakeAdmin(refuse=frozenset({"User:SH01"}))
    plan = plan_acls(desired, read_acls(admin), scope)
    result = apply_acls(admin, plan, prune=False, timeout_s=1, poll_s=0)
    refused = {a for a in desired if a.principal == "User:SH01"}
    assert {b for b, _ in result.failures} == refused
    assert {reason for _, reason in result.failures} == {"InvalidRequestError"}
    assert set(result.created) == desired - refused


def test_changes_the_cluster_never_shows_fail_after_the_timeout(desired, scope):
    admin = FakeAdmin(lag=10**9)
    plan = plan_acls(desired, read_acls(admin), scope)
    result = apply_acls(admin, plan, prune=False, timeout_s=0.05, poll_s=0.01)
    assert len(result.failures) == len(desired)
    assert all("not shown by the cluster after 0.05 s" in r for _, r in result.failures)
