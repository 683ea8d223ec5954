"""Applying ACLs to a cluster: reading the ones it has and creating or deleting ours
through kafka-python's admin client, then waiting until the authorizer shows the change.
The ACLs themselves, and what they should be, are :mod:`topics.acls`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import KafkaError, NoError, SecurityDisabledError

from topics.acls import AclBinding, AclPlan, Operation, PatternKind, Permission, ResourceKind
from topics.errors import ApplyFailed

__all__ = ["AclAdmin", "AclApplyResult", "apply_acls", "read_acls"]


class AclAdmin(Protocol):
    """The part of ``kafka.KafkaAdminClient`` that the ACL functions use."""

    def describe_acls(self, acl_filter: Any) -> Any: ...
    def create_acls(self, acls: Any) -> Any: ...
    def delete_acls(self, acl_filters: Any) -> Any: ...


@dataclass(frozen=True)
class AclApplyResult:
    created: tuple[AclBinding, ...]
    deleted: tuple[AclBinding, ...]
    failures: tuple[tuple[AclBinding, str], ...]  # refused, or not shown before the timeout


def _to_kafka(acl: AclBinding) -> ACL:
    pattern = ResourcePattern(
        ResourceType[acl.resource_type.name],
        acl.resource_name,
        ACLResourcePatternType[acl.pattern.name],
    )
    return ACL(
        principal=acl.principal,
        host=acl.host,
        operation=ACLOperation[acl.operation.name],
        permission_type=ACLPermissionType[acl.permission.name],
        resource_pattern=pattern,
    )


def _from_kafka(acl: Any) -> AclBinding | None:
    pattern = acl.resource_pattern
    try:
        return AclBinding(
            acl.principal,
            ResourceKind(pattern.resource_type.name),
            pattern.resource_name,
            PatternKind(pattern.pattern_type.name),
            Operation(acl.operation.name),
            Permission(acl.permission_type.name),
            acl.host,
        )
    except ValueError:  # USER and DELEGATION_TOKEN resources: never ours
        return None


def read_acls(admin: AclAdmin) -> frozenset[AclBinding]:
    """Every TOPIC, GROUP, TRANSACTIONAL_ID and CLUSTER ACL of the cluster."""
    everything = ACLFilter(
        principal=None,
        host=None,
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )
    try:
        found, _ = admin.describe_acls(everything)
    except SecurityDisabledError as exc:
        raise ApplyFailed(
            "the cluster has no authorizer (authorizer.class.name): ACLs cannot be read or set"
        ) from exc
    except KafkaError as exc:
        raise ApplyFailed(f"cannot read the cluster's ACLs: {exc!r}") from exc
    return frozenset(b for b in map(_from_kafka, found) if b is not None)


def apply_acls(
    admin: AclAdmin,
    plan: AclPlan,
    prune: bool,
    *,
    timeout_s: float = 30.0,
    poll_s: float = 0.2,
) -> AclApplyResult:
    """Create ``plan.add`` (and delete ``plan.extra`` when ``prune``), then poll until the
    cluster shows the change: the authorizer takes about a second to publish it."""
    failures: list[tuple[AclBinding, str]] = []
    try:
        created = _create(admin, plan.add, failures)
        deleted = _delete(admin, plan.extra, failures) if prune else ()
    except KafkaError as exc:
        raise ApplyFailed(f"applying the ACL plan failed: {exc!r}") from exc
    failures.extend(_await_shown(admin, created, deleted, timeout_s, poll_s))
    return AclApplyResult(created, deleted, tuple(failures))


def _error_name(error: Any) -> str:
    return str(getattr(error, "__name__", error))


def _create(
    admin: AclAdmin, acls: tuple[AclBinding, ...], failures: list[tuple[AclBinding, str]]
) -> tuple[AclBinding, ...]:
    if not acls:
        return ()
    request = [_to_kafka(acl) for acl in acls]
    response = admin.create_acls(request)
    succeeded = set(response["succeeded"])
    # kafka-python lists the failures' errors in request order, without their ACLs.
    refused = [acl for acl, k in zip(acls, request, strict=True) if k not in succeeded]
    failures.extend(
        (acl, _error_name(error)) for acl, error in zip(refused, response["failed"], strict=False)
    )
    return tuple(acl for acl, k in zip(acls, request, strict=True) if k in succeeded)


def _delete(
    admin: AclAdmin, acls: tuple[AclBinding, ...], failures: list[tuple[AclBinding, str]]
) -> tuple[AclBinding, ...]:
    if not acls:
        return ()
    # A concrete ACL is an exact filter: it matches that one ACL and nothing else.
    response = admin.delete_acls([_to_kafka(acl) for acl in acls])
    deleted = []
    for acl, (_, _, error) in zip(acls, response, strict=True):
        if error is NoError:
            deleted.append(acl)
        else:
            failures.append((acl, _error_name(error)))
    return tuple(deleted)


def _await_shown(
    admin: AclAdmin,
    created: tuple[AclBinding, ...],
    deleted: tuple[AclBinding, ...],
    timeout_s: float,
    poll_s: float,
) -> list[tuple[AclBinding, str]]:
    if not created and not deleted:
        return []
    deadline = time.monotonic() + timeout_s
    while True:
        current = read_acls(admin)
        missing = [acl for acl in created if acl not in current]
        lingering = [acl for acl in deleted if acl in current]
        if not missing and not lingering:
            return []
        if time.monotonic() >= deadline:
            return [(acl, f"not shown by the cluster after {timeout_s:g} s") for acl in missing] + [
                (acl, f"still shown by the cluster after {timeout_s:g} s") for acl in lingering
            ]
        time.sleep(poll_s)
