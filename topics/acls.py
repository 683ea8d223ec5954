"""Kafka ACLs as code: the grants the brokers' ``StandardAuthorizer`` needs
(``allow.everyone.if.no.acl.found=false``), derived from the catalog's ``write``/``read``
roles and the agency list, and compared with what a cluster has (:func:`plan_acls`);
:mod:`topics.acl_admin` reads and applies them through kafka-python.

A principal is ``User:<agency code>`` (the CN of the agency's TLS certificate). Broker
nodes and ``ZF801-ADMIN`` are super users and get none. Per agency: WRITE+DESCRIBE on each
topic its role writes, READ+DESCRIBE on each topic its role reads (a court reads only its
own per-court topic, a police unit only the per-province topics of the provinces whose
rule names it and only its own per-unit topic); READ on consumer groups PREFIXED
:func:`group_prefix`; the bus's processors WRITE+DESCRIBE on transactional ids PREFIXED
their application id; CLUSTER IdempotentWrite for every agency that writes. Only ACLs of
the list's principals on names under the catalog's namespace (and their IdempotentWrite)
are managed (:class:`AclScope`); any other grant that reaches the namespace, or a
cluster-wide grant to them, is reported, never touched.

Province rules. A topic ACL cannot say "the units the provincial rule names for this
court's orders", so the orders do not reach the police on the topics the courts write.
Those three order topics (one per kind, keyed by match key, co-partitioned with the
sightings for the matcher) are the intake: courts (and the bus, for its expiry notices)
write them and only the bus reads them. The bus forwards each order, release and expiry
notice it accepted, unchanged (still signed by the court, or by the bus), to
``<namespace>.orders.<kind>.{province}`` of the issuing court's province (a GB/T 2260
code, or ``national`` for a court without one: the keys of ``province_rules``), written
only by the bus (``consumers.delivery``). Read-scope ``province-rule`` grants a police
unit READ on a province's topic exactly when that province's rule names it
(:meth:`schemas.agencies.AgencyList.provinces_served_by`), so the broker itself keeps a
Beijing unit off Shanghai's orders. The sightings history works the same way: the bus
forwards each hotel check-in and border crossing, unchanged, to
``<namespace>.sightings.history.{province}`` of the reporting unit's province
(``consumers.sighting_history``), which only the public-security and border-control units
that province's rule names may read.

Own unit. What one police unit is told to do on a hit is for that unit alone: the bus
writes each action notice to ``<namespace>.police.action-notices.{unit}`` of the unit that
reported the sighting (``consumers.action_notices``), and read-scope ``own-unit`` grants
READ on that topic to that unit's principal only, so no other unit of its province (nor
of the rule's provinces) can read it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from schemas.agencies import Agency, AgencyList, AgencyRole
from topics.catalog import Catalog
from topics.errors import ApplyFailed, TopicsError
from topics.spec import ConcreteTopic

__all__ = [
    "CLUSTER_RESOURCE",
    "AclBinding",
    "AclInvalid",
    "AclPlan",
    "AclScope",
    "Operation",
    "PatternKind",
    "Permission",
    "ResourceKind",
    "access_matrix",
    "acl_scope",
    "desired_acls",
    "group_prefix",
    "plan_acls",
    "principal_of",
    "processor_application",
]

CLUSTER_RESOURCE = "kafka-cluster"  # the one CLUSTER resource name Kafka knows
_WILDCARD = "*"  # a LITERAL resource name or a principal name matching every one
# Agency codes never contain ".", so "<namespace>-<code>." prefixes never cover each other
# (with "-", SPC's "zf801-spc-" would cover SPC-COMMAND's "zf801-spc-command-").
_GROUP_END = "."


class AclInvalid(TopicsError, ValueError):  # noqa: N818 - STYLE.md names
    """The desired ACLs break a rule: one principal's group or transactional-id prefix covers
    another's (it could join that group), or an ACL falls outside the managed scope."""


class ResourceKind(StrEnum):
    TOPIC = "TOPIC"
    GROUP = "GROUP"
    TRANSACTIONAL_ID = "TRANSACTIONAL_ID"
    CLUSTER = "CLUSTER"


class PatternKind(StrEnum):
    LITERAL = "LITERAL"
    PREFIXED = "PREFIXED"


class Operation(StrEnum):
    """Kafka ACL operations (all of them, so that any ACL read back can be represented)."""

    ALL = "ALL"
    READ = "READ"
    WRITE = "WRITE"
    CREATE = "CREATE"
    DELETE = "DELETE"
    ALTER = "ALTER"
    DESCRIBE = "DESCRIBE"
    CLUSTER_ACTION = "CLUSTER_ACTION"
    DESCRIBE_CONFIGS = "DESCRIBE_CONFIGS"
    ALTER_CONFIGS = "ALTER_CONFIGS"
    IDEMPOTENT_WRITE = "IDEMPOTENT_WRITE"
    CREATE_TOKENS = "CREATE_TOKENS"
    DESCRIBE_TOKENS = "DESCRIBE_TOKENS"


class Permission(StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"  # never desired; a DENY found under the namespace is an extra


@dataclass(frozen=True, order=True)
class AclBinding:
    """One ACL: ``principal`` may (or may not) do ``operation`` on a resource."""

    principal: str
    resource_type: ResourceKind
    resource_name: str
    pattern: PatternKind
    operation: Operation
    permission: Permission = Permission.ALLOW
    host: str = _WILDCARD

    @property
    def resource(self) -> str:
        """``TOPIC zf801.alerts.BJ01`` or ``GROUP zf801-bj01.*`` (a prefix ends in ``*``)."""
        star = "*" if self.pattern is PatternKind.PREFIXED else ""
        return f"{self.resource_type} {self.resource_name}{star}"

    def __str__(self) -> str:
        host = "" if self.host == _WILDCARD else f" from {self.host}"
        return f"{self.principal} {self.permission} {self.operation} {self.resource}{host}"


def principal_of(agency: Agency) -> str:
    return f"User:{agency.code}"


def processor_application(catalog: Catalog) -> str:
    """The bus processors' application id (``zf801-matcher``, name prefix applied): their
    consumer group and the prefix of their groups and transactional ids."""
    changelog = catalog.get("watchlist-changelog").changelog_of
    if changelog is None:
        raise ApplyFailed("catalog entry 'watchlist-changelog' names no changelog-of application")
    return changelog.application


def group_prefix(catalog: Catalog, agency: Agency) -> str:
    """The prefix of the consumer groups ``agency`` may use: the processors' application id
    for the bus, ``<namespace>-<code lower>.`` (e.g. ``zf801-bj01.``) for everyone else."""
    if agency.role is AgencyRole.BUS:
        return processor_application(catalog)
    return f"{catalog.namespace}-{agency.code.lower()}{_GROUP_END}"


_Grant = tuple[ResourceKind, str, PatternKind, tuple[Operation, ...]]
_WRITES = (Operation.WRITE, Operation.DESCRIBE)
_READS = (Operation.READ, Operation.DESCRIBE)


def desired_acls(
    catalog: Catalog, agencies: AgencyList, courts: Iterable[str]
) -> frozenset[AclBinding]:
    """Every ACL the catalog's access rules give the agencies; per-court topics for
    ``courts``, per-province topics for every province of the agency list's rules,
    per-unit topics for every police unit of the list."""
    units = [unit.code for unit in agencies.police_units()]
    topics = catalog.concrete_topics(courts, agencies.provinces(), units)
    acls: set[AclBinding] = set()
    for agency in agencies.agencies.values():
        grants = _topic_grants(catalog, agencies, agency, topics)
        prefix = group_prefix(catalog, agency)
        grants.append((ResourceKind.GROUP, prefix, PatternKind.PREFIXED, (Operation.READ,)))
        if agency.role is AgencyRole.BUS:
            app = processor_application(catalog)
            grants.append((ResourceKind.TRANSACTIONAL_ID, app, PatternKind.PREFIXED, _WRITES))
        if any(Operation.WRITE in ops for *_, ops in grants):
            idempotent = (Operation.IDEMPOTENT_WRITE,)
            grants.append((ResourceKind.CLUSTER, CLUSTER_RESOURCE, PatternKind.LITERAL, idempotent))
        principal = principal_of(agency)
        acls.update(
            AclBinding(principal, kind, name, pattern, op)
            for kind, name, pattern, ops in grants
            for op in ops
        )
    _check_prefixes_disjoint(acls)
    return frozenset(acls)


def _topic_grants(
    catalog: Catalog, agencies: AgencyList, agency: Agency, topics: Iterable[ConcreteTopic]
) -> list[_Grant]:
    """The topic grants of one agency: what its role writes, what it may read."""
    role = str(agency.role)
    served = agencies.provinces_served_by(agency.code)
    grants: list[_Grant] = []
    for topic in topics:
        if catalog.may_write(role, topic.spec.id):
            grants.append((ResourceKind.TOPIC, topic.name, PatternKind.LITERAL, _WRITES))
        readable = catalog.may_read(
            role, topic.spec.id, topic.court, province=topic.province, unit=topic.unit,
            reader_court=agency.code, reader_provinces=served, reader_unit=agency.code,
        )  # fmt: skip
        if readable:
            grants.append((ResourceKind.TOPIC, topic.name, PatternKind.LITERAL, _READS))
    return grants


def _check_prefixes_disjoint(acls: Iterable[AclBinding]) -> None:
    owners: dict[tuple[ResourceKind, str], set[str]] = defaultdict(set)
    for acl in acls:
        if acl.pattern is PatternKind.PREFIXED:
            owners[(acl.resource_type, acl.resource_name)].add(acl.principal)
    for (kind, name), holders in owners.items():
        for (other_kind, other), others in owners.items():
            if kind is other_kind and other != name and other.startswith(name):
                strangers = others - holders
                if strangers:
                    raise AclInvalid(
                        f"{kind} prefix {name!r} of {sorted(holders)} covers {other!r} of "
                        f"{sorted(strangers)}"
                    )


@dataclass(frozen=True)
class AclScope:
    """What ``apply`` may touch: ACLs of ``principals`` on names under ``namespace``."""

    namespace: str
    principals: frozenset[str]

    def under_namespace(self, name: str) -> bool:
        return name.startswith((f"{self.namespace}.", f"{self.namespace}-"))

    def manages(self, acl: AclBinding) -> bool:
        if acl.principal not in self.principals:
            return False
        if acl.resource_type is ResourceKind.CLUSTER:
            return acl.operation is Operation.IDEMPOTENT_WRITE
        return self.under_namespace(acl.resource_name)

    def concerns(self, acl: AclBinding) -> bool:
        """Whether an unmanaged ACL still bears on the bus: it may reach our namespace (a
        stranger's grant in it, a wildcard name, a covering prefix), or it is a cluster-wide
        grant to one of our principals or to every principal."""
        if acl.resource_type is ResourceKind.CLUSTER:
            return acl.principal in self.principals or acl.principal.endswith(f":{_WILDCARD}")
        name = acl.resource_name
        if acl.pattern is PatternKind.LITERAL:
            return name == _WILDCARD or self.under_namespace(name)
        return self.under_namespace(name) or f"{self.namespace}.".startswith(name)


def acl_scope(catalog: Catalog, agencies: AgencyList) -> AclScope:
    return AclScope(catalog.namespace, frozenset(map(principal_of, agencies.agencies.values())))


@dataclass(frozen=True)
class AclPlan:
    """Desired vs cluster. ``extra``: managed ACLs not desired (removed only with prune);
    ``unmanaged``: ACLs that bear on the bus but are not ours to change (reported)."""

    add: tuple[AclBinding, ...]
    extra: tuple[AclBinding, ...]
    unchanged: tuple[AclBinding, ...] = ()
    unmanaged: tuple[AclBinding, ...] = ()

    def has_changes(self, prune: bool) -> bool:
        return bool(self.add or (prune and self.extra))


def plan_acls(
    desired: Iterable[AclBinding], existing: Iterable[AclBinding], scope: AclScope
) -> AclPlan:
    """Compare the desired ACLs with every ACL the cluster has; pure, no Kafka."""
    want, have = frozenset(desired), frozenset(existing)
    outside = sorted(str(acl) for acl in want if not scope.manages(acl))
    if outside:
        raise AclInvalid(f"desired ACLs outside the scope {scope.namespace!r}: {outside[:3]}")
    return AclPlan(
        add=tuple(sorted(want - have)),
        extra=tuple(sorted(acl for acl in have - want if scope.manages(acl))),
        unchanged=tuple(sorted(want & have)),
        unmanaged=tuple(sorted(a for a in have if not scope.manages(a) and scope.concerns(a))),
    )


def access_matrix(acls: Iterable[AclBinding]) -> Mapping[str, Mapping[str, str]]:
    """principal -> topic -> ``R``, ``W`` or ``RW``, from the ALLOW topic ACLs."""
    marks: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for acl in acls:
        if acl.resource_type is ResourceKind.TOPIC and acl.permission is Permission.ALLOW:
            mark = {Operation.READ: "R", Operation.WRITE: "W"}.get(acl.operation)
            if mark:
                marks[acl.principal][acl.resource_name].add(mark)
    return {
        principal: {topic: "".join(sorted(m)) for topic, m in topics.items()}
        for principal, topics in marks.items()
    }
