"""Fixtures of the integration tests: access for an agency to a topic of the test's own.

A topic made by ``make_topic`` has a name no catalog entry gives, so under mTLS no ACL
covers it and only the admin reaches it. A test that connects to it as an agency asks for
the grant (``grant("BJ01", topic, "read")``); under plaintext there is nothing to grant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kafka import KafkaAdminClient

from schemas.agencies import get_agency
from schemas.settings import Settings
from topics.acl_admin import apply_acls
from topics.acls import AclBinding, AclPlan, Operation, PatternKind, ResourceKind, principal_of
from topics.clients import Operation as Access

Grant = Callable[[str, str, Access], None]

_OPERATIONS = {"read": Operation.READ, "write": Operation.WRITE, "describe": Operation.DESCRIBE}


@pytest.fixture
def grant(kafka_settings: Settings, kafka_admin: KafkaAdminClient) -> Iterator[Grant]:
    """Gives ``agency`` ``access`` (and DESCRIBE) to one topic under mTLS, as the catalog's
    ACLs give it to a catalog topic; revoked after the test."""
    granted: list[AclBinding] = []

    def give(agency: str, topic: str, access: Access) -> None:
        if kafka_settings.security != "mtls":
            return
        principal = principal_of(get_agency(agency))
        acls = tuple(
            AclBinding(principal, ResourceKind.TOPIC, topic, PatternKind.LITERAL, operation)
            for operation in {_OPERATIONS[access], Operation.DESCRIBE}
        )
        applied = apply_acls(kafka_admin, AclPlan(add=acls, extra=()), prune=False)
        granted.extend(applied.created)
        assert applied.failures == (), applied.failures

    yield give
    if granted:
        apply_acls(kafka_admin, AclPlan(add=(), extra=tuple(granted)), prune=True)
