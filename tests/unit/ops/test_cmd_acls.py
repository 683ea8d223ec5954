"""``zf801 acls plan | apply | list`` against a fake admin client holding kafka-python ACL
objects (no broker; the authorizer itself is exercised in tests/integration)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from kafka.errors import SecurityDisabledError
from typer.testing import CliRunner

import ops.cmd_acls
from ops.cli import app
from schemas.agencies import load_agencies
from tests.unit.topics.test_acls import STRANGERS, UNRELATED, FakeAdmin, kafka_acl
from topics.acl_admin import read_acls
from topics.acls import AclBinding, Operation, PatternKind, ResourceKind, desired_acls
from topics.catalog import load_catalog

runner = CliRunner()
NO_PREFIX = ["--name-prefix", ""]


@pytest.fixture(scope="module")
def desired() -> frozenset[AclBinding]:
    agencies = load_agencies()
    return desired_acls(load_catalog(), agencies, [c.code for c in agencies.courts()])


@pytest.fixture
def cluster(monkeypatch):
    """The fake cluster the command talks to; the test may replace ``holder[0]``."""
    holder = [FakeAdmin()]

    @contextmanager
    def fake_admin(bootstrap):
        yield holder[0]

    monkeypatch.setattr(ops.cmd_acls, "_admin", fake_admin)
    return holder


def run(args: list[str], code: int = 0) -> str:
    result = runner.invoke(app, ["acls", *args], env={"COLUMNS": "200"})
    assert result.exit_code == code, result.output
    return result.output


def test_help_names_every_command_and_the_scope():
    out = run(["--help"])
    for word in ("plan", "apply", "list", "--prune", "namespace"):
        assert word in out


def test_plan_against_an_empty_cluster_sums_up_per_principal(cluster, desired):
    out = run(["plan", *NO_PREFIX])
    assert f"{len(desired)} to add, 0 extra, 0 present, 0 unmanaged." in out
    assert "ACLs per principal" in out and "User:BUS-MATCHER" in out
    assert cluster[0].acls == []  # plan changes nothing


def test_plan_details_lists_each_acl_with_its_operations(cluster):
    out = run(["plan", "--details", *NO_PREFIX])
    assert "TOPIC zf801.alerts.BJ01" in out and "READ, DESCRIBE" in out
    assert "GROUP zf801-bj01.*" in out


def test_offline_matrix_needs_no_cluster(cluster, desired):
    class Unreachable(FakeAdmin):
        def describe_acls(self, acl_filter):
            raise AssertionError("--offline must not contact the cluster")

    cluster[0] = Unreachable()
    out = run(["plan", "--offline", "--matrix", *NO_PREFIX])
    assert "Access matrix" in out
    assert "zf801.alerts.{court}" in out and "R (own)" in out
    assert "zf801.orders.exit-restriction.{province}" in out and "R (rule)" in out
    assert f"{len(desired)} ACLs desired for 28 principals" in out


def test_dry_run_changes_nothing(cluster, desired):
    out = run(["apply", "--dry-run", *NO_PREFIX])
    assert "Dry run" in out and f"{len(desired)} to add" in out
    assert cluster[0].creates == 0


def test_apply_creates_everything_then_has_nothing_to_change(cluster, desired):
    out = run(["apply", "--timeout", "1", *NO_PREFIX])
    assert f"created {len(desired)}, deleted 0" in out
    assert read_acls(cluster[0]) == desired
    again = run(["apply", *NO_PREFIX])
    assert "Nothing to change" in again and cluster[0].creates == 1


def test_extras_are_reported_and_deleted_only_with_prune(cluster, desired):
    cluster[0] = FakeAdmin(map(kafka_acl, [*desired, *STRANGERS, *UNRELATED]))
    out = run(["apply", *NO_PREFIX])
    assert "2 extra" in out and "--prune` deletes them" in out and "unmanaged" in out
    assert cluster[0].deletes == 0
    out = run(["apply", "--prune", "--timeout", "1", *NO_PREFIX])
    assert "deleted 2" in out
    assert read_acls(cluster[0]) == desired | set(STRANGERS[2:]) | set(UNRELATED)


def test_refused_acls_exit_2_and_are_named(cluster):
    cluster[0] = FakeAdmin(refuse=frozenset({"User:SH01"}))
    out = run(["apply", "--timeout", "1", *NO_PREFIX], code=2)
    assert "failed:" in out and "User:SH01" in out and "InvalidRequestError" in out


def test_no_authorizer_is_an_error_with_exit_1(cluster):
    class NoAuthorizer(FakeAdmin):
        def describe_acls(self, acl_filter):
            raise SecurityDisabledError("no authorizer")

    cluster[0] = NoAuthorizer()
    out = run(["plan", *NO_PREFIX], code=1)
    assert "no authorizer" in out


def test_list_shows_each_state(cluster, desired):
    missing = sorted(desired)[0]
    present = [a for a in desired if a != missing]
    cluster[0] = FakeAdmin(map(kafka_acl, [*present, *STRANGERS, *UNRELATED]))
    out = run(["list", *NO_PREFIX])
    for state in ("present", "missing", "extra", "unmanaged"):
        assert state in out
    assert "User:intruder" in out and "User:other" not in out
    assert "1 to add, 2 extra" in out


def test_the_name_prefix_defaults_to_the_settings(cluster, fresh_settings, monkeypatch):
    monkeypatch.setenv("ZF801_TOPIC_PREFIX", "t1-")
    out = run(["plan", "--offline"])
    assert "namespace 't1-zf801'" in out


def test_court_option_limits_per_court_topics(cluster):
    run(["apply", "--court", "BJ01", "--timeout", "1", *NO_PREFIX])
    names = {a.resource_name for a in read_acls(cluster[0])}
    assert "zf801.alerts.BJ01" in names and "zf801.alerts.SH01" not in names
    group = AclBinding(
        "User:SH01", ResourceKind.GROUP, "zf801-sh01.", PatternKind.PREFIXED, Operation.READ
    )
    assert group in read_acls(cluster[0])
