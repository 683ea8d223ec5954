"""The topic catalog: its content, every validation rule, templates and access checks."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.queries import query_kind
from schemas.settings import Settings
from sign.acceptance import AcceptancePolicy
from topics.catalog import DEFAULT_CATALOG_PATH, Catalog, load_catalog
from topics.courts import court_codes, provinces
from topics.errors import (
    CatalogInvalid,
    CourtCodeInvalid,
    ProvinceCodeInvalid,
    UnknownRole,
    UnknownTopic,
)
from topics.spec import CleanupPolicy, ReadScope

REPO_ROOT = Path(__file__).resolve().parents[3]
AVRO_DIR = REPO_ROOT / "schemas" / "avro"
POLICE = {"border-control", "traffic-management", "public-security"}
ALL_ROLES = POLICE | {"court", "bus", "command-system"}
SUBSCRIBER = "list-subscriber"
MATCHER_GROUP = {
    "orders-exit-restriction",
    "orders-vehicle-search",
    "orders-locate-debtor",
    "sightings-person",
    "sightings-vehicle",
    "sightings-routed",
    "watchlist-changelog",
    "watchlist-updates",
}

DELIVERY = "order-delivery-exit-restriction"

# id -> (Kafka name, key kind, writers, readers), as the brief for the catalog states them.
EXPECTED: dict[str, tuple[str, str, set[str], set[str]]] = {
    "enforcement-cases": (
        "zf801.court.enforcement-cases",
        "case-number",
        {"court"},
        POLICE | {"bus", "command-system"},
    ),
    "dishonest-debtors": (
        "zf801.court.dishonest-debtors",
        "match-key",
        {"court"},
        POLICE | {"bus", "command-system", "court", SUBSCRIBER},
    ),
    "action-notices": (
        "zf801.police.action-notices.{unit}",
        "agency-code",
        {"bus"},
        POLICE,
    ),
    "encounter-confirmations": (
        "zf801.police.encounter-confirmations",
        "hit-id",
        POLICE,
        {"bus", "command-system"},
    ),
    "escalations": (
        "zf801.bus.escalations",
        "hit-id",
        {"bus"},
        {"command-system"},
    ),
    "order-documents": (
        "zf801.court.documents.{province}",
        "document-id",
        {"bus"},
        POLICE,
    ),
    "removal-receipts": (
        "zf801.court.removal-receipts.{court}",
        "listing-id",
        {SUBSCRIBER},
        {"court", "command-system"},
    ),
    "judicial-documents": (
        "zf801.court.judicial-documents",
        "document-id",
        {"court"},
        {"bus", "command-system"},
    ),
    "query-requests": ("zf801.query.requests", "correlation-id", {"court"}, POLICE | {"bus"}),
    "query-results": ("zf801.query.results.{court}", "correlation-id", POLICE | {"bus"}, {"court"}),
    # The intake: courts (and the bus, for expiry notices) write, only the bus reads.
    "orders-exit-restriction": (
        "zf801.orders.exit-restriction",
        "match-key",
        {"court", "bus"},
        {"bus"},
    ),
    "orders-vehicle-search": (
        "zf801.orders.vehicle-search",
        "match-key",
        {"court", "bus"},
        {"bus"},
    ),
    "orders-locate-debtor": ("zf801.orders.locate-debtor", "match-key", {"court", "bus"}, {"bus"}),
    # Delivery to the police side, per province (read-scope province-rule).
    "order-delivery-exit-restriction": (
        "zf801.orders.exit-restriction.{province}",
        "match-key",
        {"bus"},
        {"border-control"},
    ),
    "order-delivery-vehicle-search": (
        "zf801.orders.vehicle-search.{province}",
        "match-key",
        {"bus"},
        {"traffic-management"},
    ),
    "order-delivery-locate-debtor": (
        "zf801.orders.locate-debtor.{province}",
        "match-key",
        {"bus"},
        {"public-security"},
    ),
    "order-acknowledgements": ("zf801.orders.acknowledgements", "order-id", POLICE, {"bus"}),
    "sightings-person": ("zf801.sightings.person", "match-key", POLICE, {"bus"}),
    "sightings-vehicle": (
        "zf801.sightings.vehicle",
        "match-key",
        {"traffic-management", "public-security"},
        {"bus"},
    ),
    "sightings-routed": ("zf801.bus.sightings-routed", "match-key", {"bus"}, {"bus"}),
    # The bus forwards check-ins and crossings to the province of the reporting unit, for
    # the units answering P5 (public security) and P3 (border control) (province-rule).
    "sightings-history": (
        "zf801.sightings.history.{province}",
        "match-key",
        {"bus"},
        {"public-security", "border-control"},
    ),
    "vehicle-blocks": ("zf801.police.vehicle-blocks", "match-key", {"bus"}, {"traffic-management"}),
    "alerts": ("zf801.alerts.{court}", "order-id", {"bus"}, {"court"}),
    "hit-confirmations": (
        "zf801.alerts.confirmations",
        "hit-id",
        {"court"},
        {"bus", "command-system"},
    ),
    "trust": ("zf801.bus.trust", "key-id", {"bus"}, ALL_ROLES | {SUBSCRIBER}),
    "dead-letter": (
        "zf801.bus.dead-letter",
        "event-id",
        {"bus", "border-control", "traffic-management", "public-security", SUBSCRIBER},
        {"bus", "command-system"},
    ),
    "audit": ("zf801.bus.audit", "event-id", ALL_ROLES | {SUBSCRIBER}, {"bus", "command-system"}),
    "anomalies": ("zf801.bus.anomalies", "notice-id", ALL_ROLES, ALL_ROLES),
    "checkpoints": (
        "zf801.bus.checkpoints",
        "topic-partition",
        {"bus"},
        {"bus", "command-system"},
    ),
    "watchlist-changelog": ("zf801-matcher-watchlist-changelog", "match-key", {"bus"}, {"bus"}),
    "order-ledger": ("zf801-matcher-order_ledger-changelog", "order-id", {"bus"}, {"bus"}),
    "watchlist-updates": (
        "zf801-matcher-watchlist_updates-changelog",
        "match-key",
        {"bus"},
        {"bus"},
    ),
    "order-tracking-changelog": (
        "zf801-matcher-order_tracking-changelog",
        "order-id",
        {"bus"},
        {"bus"},
    ),
    "replay-journal": (
        "zf801-matcher-replay_journal-changelog",
        "journal-key",
        {"bus"},
        {"bus"},
    ),
}


def _document() -> dict[str, Any]:
    loaded = yaml.safe_load(DEFAULT_CATALOG_PATH.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _topic(document: dict[str, Any], topic_id: str) -> dict[str, Any]:
    return next(t for t in document["topics"] if t["id"] == topic_id)


def _load_edited(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Catalog:
    document = copy.deepcopy(_document())
    edit(document)
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "utf-8")
    return load_catalog(path)


# --- content ---------------------------------------------------------------------------


def test_catalog_holds_exactly_the_topics_of_the_brief(catalog: Catalog) -> None:
    assert set(catalog.ids()) == set(EXPECTED)
    for topic_id, (name, key, writers, readers) in EXPECTED.items():
        spec = catalog.get(topic_id)
        assert (spec.name, spec.key.name) == (name, key), topic_id
        assert set(spec.access.write) == writers, topic_id
        assert set(spec.access.read) == readers, topic_id


def test_value_schemas_are_the_named_records(catalog: Catalog) -> None:
    assert catalog.get("orders-exit-restriction").value_schemas == (
        "cn.zf801.orders.v1.ExitRestrictionOrder",
        "cn.zf801.orders.v1.OrderRelease",
        "cn.zf801.orders.v1.OrderExpiryNotice",
    )
    assert catalog.get("alerts").allows_schema("cn.zf801.bus.v1.Hit")
    assert not catalog.get("alerts").allows_schema("cn.zf801.orders.v1.ExitRestrictionOrder")
    assert catalog.get("query-results").value_schemas[0] == "cn.zf801.police.v1.IdentityResult"
    assert catalog.get("watchlist-changelog").value_schemas == ()
    assert catalog.get("order-tracking-changelog").value_schemas == ()
    assert catalog.get("replay-journal").value_schemas == ()


def test_the_replay_journal_outlives_the_widest_acceptance_window(catalog: Catalog) -> None:
    journal = catalog.get("replay-journal")
    assert journal.cleanup_policy is CleanupPolicy.DELETE  # no null or later record erases one
    widest = AcceptancePolicy.from_settings(Settings()).retention
    assert journal.retention_ms >= widest.total_seconds() * 1000


def test_production_figures(catalog: Catalog) -> None:
    for spec in catalog.topics:
        assert spec.replication_factor == 3, spec.id
        assert spec.min_insync_replicas == 2, spec.id
    compacted = {t.id for t in catalog.topics if t.cleanup_policy is CleanupPolicy.COMPACT}
    assert compacted == {
        "dishonest-debtors",
        "trust",
        "watchlist-changelog",
        "order-tracking-changelog",
    }
    assert catalog.get("trust").infinite_retention
    assert catalog.get("audit").infinite_retention
    assert catalog.get("dead-letter").retention_ms == 30 * 24 * 3600 * 1000
    assert catalog.get("dead-letter").kafka_configs() == {
        "cleanup.policy": "delete",
        "retention.ms": "2592000000",
        "min.insync.replicas": "2",
        "max.message.bytes": str(10 * 1024 * 1024),
    }
    # Records above the cluster's 1 MiB default: inline documents and dead letters only.
    large = {t.id: t.max_message_bytes for t in catalog.topics if t.max_message_bytes}
    assert large == {
        "judicial-documents": 6 * 1024 * 1024,
        "order-documents": 6 * 1024 * 1024,
        "dead-letter": 10 * 1024 * 1024,
    }
    assert "max.message.bytes" not in catalog.get("alerts").kafka_configs()
    assert catalog.get("trust").kafka_configs(min_insync_replicas=1)["retention.ms"] == "-1"


def test_matcher_topics_are_co_partitioned(catalog: Catalog) -> None:
    members = catalog.co_partitioned("matcher")
    assert {t.id for t in members} == MATCHER_GROUP
    assert {t.partitions for t in members} == {6}
    assert {t.key.name for t in members} == {"match-key"}
    assert catalog.get("sightings-person").key.length == 32


def test_watchlist_changelog_is_the_matcher_table_changelog(catalog: Catalog) -> None:
    changelog = catalog.get("watchlist-changelog").changelog_of
    assert changelog is not None
    assert (changelog.application, changelog.table) == ("zf801-matcher", "watchlist")
    assert changelog.topic_name == catalog.topic_name("watchlist-changelog")


def test_every_listed_schema_has_its_avsc_file(catalog: Catalog) -> None:
    if not AVRO_DIR.is_dir():
        pytest.skip("schemas/avro does not exist yet")
    missing = []
    for spec in catalog.topics:
        for full_name in spec.value_schemas:
            namespace, _, name = full_name.rpartition(".")
            family = namespace.split(".")[2]
            path = AVRO_DIR / family / f"{name}.avsc"
            if not path.is_file():
                missing.append(f"{spec.id}: {full_name} ({path.relative_to(REPO_ROOT)})")
                continue
            schema = json.loads(path.read_text(encoding="utf-8"))
            assert f"{schema['namespace']}.{schema['name']}" == full_name
    assert not missing, "schemas listed in topics.yaml without a file:\n" + "\n".join(missing)


def test_roles_are_the_agency_roles_of_the_agency_list(catalog: Catalog) -> None:
    agencies = pytest.importorskip("schemas.agencies")
    assert set(catalog.roles) == {str(role) for role in agencies.AgencyRole}


def test_court_codes_come_from_the_court_list() -> None:
    agencies = pytest.importorskip("schemas.agencies")
    codes = court_codes()
    assert codes == tuple(court.code for court in agencies.courts())
    assert codes  # the packaged list has courts


# --- validation ------------------------------------------------------------------------


def _set(topic_id: str, field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: _topic(d, topic_id).__setitem__(field, value)


def _delete(topic_id: str, field: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: _topic(d, topic_id).pop(field)


def _add_topic(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def edit(d: dict[str, Any]) -> None:
        entry = copy.deepcopy(_topic(d, "audit"))
        entry.update(fields)
        d["topics"].append(entry)

    return edit


_LONG = "zf801." + "x" * 244  # 250 characters

INVALID = [
    pytest.param(
        _set("audit", "max-message-bytes", 10),
        "id 'audit'",
        "max-message-bytes",
        ">= 1024",
        id="max-message-bytes-tiny",
    ),
    pytest.param(
        _set("audit", "max-message-bytes", 2**40),
        "id 'audit'",
        "max-message-bytes",
        "<=",
        id="max-message-bytes-huge",
    ),
    pytest.param(
        _set("audit", "max-message-bytes", "6MiB"),
        "id 'audit'",
        "max-message-bytes",
        "integer",
        id="max-message-bytes-text",
    ),
    pytest.param(
        lambda d: d.update(owner="x"), "catalog", "owner", "unknown field", id="top-unknown"
    ),
    pytest.param(
        _set("audit", "colour", "red"), "id 'audit'", "colour", "unknown field", id="unknown-field"
    ),
    pytest.param(
        _delete("audit", "partitions"), "id 'audit'", "partitions", "missing", id="missing"
    ),
    pytest.param(
        _set("audit", "partitions", 0), "id 'audit'", "partitions", ">= 1", id="partitions-0"
    ),
    pytest.param(
        _set("audit", "partitions", "6"), "id 'audit'", "partitions", "integer", id="partitions-str"
    ),
    pytest.param(
        _set("audit", "partitions", True),
        "id 'audit'",
        "partitions",
        "integer",
        id="partitions-bool",
    ),
    pytest.param(
        _set("audit", "replication-factor", 0),
        "id 'audit'",
        "replication-factor",
        ">= 1",
        id="rf-0",
    ),
    pytest.param(
        _set("audit", "min-insync-replicas", 4),
        "id 'audit'",
        "min-insync-replicas",
        "exceeds",
        id="isr>rf",
    ),
    pytest.param(
        _set("audit", "retention-ms", -1),
        "id 'audit'",
        "retention-ms",
        "infinite",
        id="retention--1",
    ),
    pytest.param(
        _set("audit", "retention-ms", "forever"),
        "id 'audit'",
        "retention-ms",
        "infinite",
        id="retention-word",
    ),
    pytest.param(
        _set("audit", "cleanup-policy", "compacted"),
        "id 'audit'",
        "cleanup-policy",
        "one of",
        id="cleanup",
    ),
    pytest.param(_set("audit", "key", "subject"), "id 'audit'", "key", "one of", id="key-kind"),
    pytest.param(
        _set("audit", "value-schemas", ["Audit Record"]),
        "id 'audit'",
        "value-schemas",
        "malformed",
        id="schema-name",
    ),
    pytest.param(
        _set("audit", "value-schemas", ["a.B", "a.B"]),
        "id 'audit'",
        "value-schemas",
        "more than once",
        id="schema-dup",
    ),
    pytest.param(
        _set("audit", "value-schemas", []),
        "id 'audit'",
        "value-schemas",
        "must not be empty",
        id="schema-empty",
    ),
    pytest.param(
        _set("audit", "write", ["judge"]), "id 'audit'", "write", "one of", id="role-unknown"
    ),
    pytest.param(
        _set("audit", "read", []), "id 'audit'", "read", "must not be empty", id="read-empty"
    ),
    pytest.param(
        _set("audit", "read-scope", "own-court"),
        "id 'audit'",
        "read-scope",
        "per-court name",
        id="scope-fixed",
    ),
    pytest.param(
        _set("audit", "read-scope", "mine"), "id 'audit'", "read-scope", "one of", id="scope-bad"
    ),
    pytest.param(
        _delete("alerts", "read-scope"),
        "id 'alerts'",
        "read-scope",
        "own-court",
        id="template-scope",
    ),
    pytest.param(
        _set("alerts", "read", ["bus"]),
        "id 'alerts'",
        "read",
        "role court",
        id="own-court-no-court",
    ),
    pytest.param(
        _set(DELIVERY, "read-scope", "all"),
        f"id '{DELIVERY}'",
        "read-scope",
        "per-province name",
        id="province-template-scope",
    ),
    pytest.param(
        _delete(DELIVERY, "read-scope"),
        f"id '{DELIVERY}'",
        "read-scope",
        "province-rule",
        id="province-template-no-scope",
    ),
    pytest.param(
        _set("audit", "read-scope", "province-rule"),
        "id 'audit'",
        "read-scope",
        "per-province name",
        id="province-scope-fixed",
    ),
    pytest.param(
        _set(DELIVERY, "name", "zf801.orders.{court}.{province}"),
        f"id '{DELIVERY}'",
        "name",
        "more than once",
        id="two-placeholders",
    ),
    pytest.param(
        _set(DELIVERY, "name", "zf801." + "a" * 236 + ".{province}"),
        f"id '{DELIVERY}'",
        "name",
        "province 'national'",
        id="province-template-long",
    ),
    pytest.param(
        _set(DELIVERY, "name", "zf801.alerts.{province}"),
        f"id '{DELIVERY}'",
        "name",
        "collides",
        id="province-court-collision",
    ),
    pytest.param(
        _set("action-notices", "read-scope", "province-rule"),
        "id 'action-notices'",
        "read-scope",
        "must have read-scope own-unit",
        id="unit-template-scope",
    ),
    pytest.param(
        _set("audit", "read-scope", "own-unit"),
        "id 'audit'",
        "read-scope",
        "per-unit name containing {unit}",
        id="unit-scope-fixed",
    ),
    pytest.param(
        _set("audit", "name", "zf801.police.action-notices.110000000000"),
        "id 'audit'",
        "name",
        "collides",
        id="unit-template-collision",
    ),
    pytest.param(
        _set("alerts", "name", "zf801.police.action-notices.{court}"),
        "id 'alerts'",
        "name",
        "'zf801.police.action-notices.000000000000' collides",
        id="unit-court-collision",
    ),
    pytest.param(
        _set(DELIVERY, "name", "zf801.police.action-notices.1100000000{province}"),
        f"id '{DELIVERY}'",
        "name",
        "'zf801.police.action-notices.110000000000' collides",
        id="unit-province-collision",
    ),
    pytest.param(
        _set("action-notices", "name", "zf801." + "a" * 232 + ".{unit}"),
        "id 'action-notices'",
        "name",
        "12-digit unit code",
        id="unit-template-long",
    ),
    pytest.param(
        _set("audit", "name", "zf801.orders.exit-restriction.national"),
        "id 'audit'",
        "name",
        "collides",
        id="province-template-collision",
    ),
    pytest.param(
        lambda d: d.update({"catalog-version": 2}),
        "catalog",
        "catalog-version",
        ">= 3",
        id="version-1",
    ),
    pytest.param(_set("audit", "id", "trust"), "id 'trust'", "id", "used by", id="dup-id"),
    pytest.param(
        _set("audit", "id", "Audit_Log"), "id 'Audit_Log'", "id", "malformed", id="bad-id"
    ),
    pytest.param(
        _set("audit", "name", "zf801.bus.trust"), "id 'audit'", "name", "used by", id="dup-name"
    ),
    pytest.param(
        _set("audit", "name", "zf801.bus_trust"),
        "id 'audit'",
        "name",
        "used by",
        id="dot-underscore",
    ),
    pytest.param(
        _set("audit", "name", "zf801.bus/audit"), "id 'audit'", "name", "malformed", id="name-chars"
    ),
    pytest.param(_set("audit", "name", _LONG), "id 'audit'", "name", "249", id="name-long"),
    pytest.param(
        _set("alerts", "name", "zf801." + "a" * 230 + ".{court}"),
        "id 'alerts'",
        "name",
        "16-character court",
        id="template-long",
    ),
    pytest.param(
        _set("alerts", "name", "zf801.{court}.{court}"),
        "id 'alerts'",
        "name",
        "more than once",
        id="placeholder-twice",
    ),
    pytest.param(
        _set("alerts", "name", "zf801.alerts.{region}"),
        "id 'alerts'",
        "name",
        "malformed",
        id="other-placeholder",
    ),
    pytest.param(
        _set("audit", "name", "other.bus.audit"), "id 'audit'", "name", "namespace", id="namespace"
    ),
    pytest.param(
        _set("audit", "name", "zf801.alerts.BJ01"),
        "id 'audit'",
        "name",
        "collides",
        id="template-collision",
    ),
    pytest.param(
        _set("sightings-person", "partitions", 3),
        "co-partition-groups.matcher",
        "partitions",
        "sightings-person=3",
        id="co-partitioning",
    ),
    pytest.param(
        _set("vehicle-blocks", "co-partition-group", "matcher"),
        "co-partition-groups.matcher",
        "partitions",
        "vehicle-blocks=3",
        id="co-partition-new-member",
    ),
    pytest.param(
        _set("audit", "co-partition-group", "joiner"),
        "id 'audit'",
        "co-partition-group",
        "one of",
        id="group-undeclared",
    ),
    pytest.param(
        _set("watchlist-changelog", "name", "zf801-matcher-table-changelog"),
        "id 'watchlist-changelog'",
        "name",
        "changelog name",
        id="changelog-name",
    ),
    pytest.param(
        _set("watchlist-changelog", "changelog-of", {"app": "x"}),
        "id 'watchlist-changelog'",
        "changelog-of",
        "unknown field",
        id="changelog-field",
    ),
    pytest.param(
        lambda d: d.update({"catalog-version": 4}),
        "catalog",
        "catalog-version",
        "<= 3",
        id="version",
    ),
    pytest.param(
        lambda d: d["key-kinds"]["match-key"].pop("length"),
        "key-kinds.match-key",
        "length",
        "missing",
        id="bytes-length",
    ),
    pytest.param(
        lambda d: d["key-kinds"]["order-id"].update(length=36),
        "key-kinds.order-id",
        "length",
        "fixed length",
        id="utf8-length",
    ),
    pytest.param(
        lambda d: d["key-kinds"]["order-id"].update(encoding="ascii"),
        "key-kinds.order-id",
        "encoding",
        "one of",
        id="encoding",
    ),
    pytest.param(lambda d: d.update(topics=[]), "catalog", "topics", "non-empty", id="no-topics"),
    pytest.param(
        _add_topic(id="audit-copy", name="zf801.bus.audit-copy", bogus=1),
        "id 'audit-copy'",
        "bogus",
        "unknown field",
        id="new-entry-unknown",
    ),
]


@pytest.mark.parametrize(("edit", "entry", "field", "message"), INVALID)
def test_invalid_catalog_names_entry_and_field(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], entry: str, field: str, message: str
) -> None:
    with pytest.raises(CatalogInvalid) as caught:
        _load_edited(tmp_path, edit)
    matching = [p for p in caught.value.problems if entry in p.entry and p.field == field]
    assert matching, f"no problem at {entry}/{field} in: {caught.value.problems}"
    assert any(message in p.message for p in matching), str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        _topic(d, "audit")["partitions"] = 0
        _topic(d, "trust")["cleanup-policy"] = "forever"
        _topic(d, "alerts")["write"] = ["nobody"]

    with pytest.raises(CatalogInvalid) as caught:
        _load_edited(tmp_path, edit)
    fields = {(p.entry, p.field) for p in caught.value.problems}
    index = {t["id"]: i for i, t in enumerate(_document()["topics"])}
    assert fields == {
        (f"topics[{index['audit']}] (id 'audit')", "partitions"),
        (f"topics[{index['trust']}] (id 'trust')", "cleanup-policy"),
        (f"topics[{index['alerts']}] (id 'alerts')", "write"),
    }
    assert "3 problems" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("catalog-version: 1\ncatalog-version: 1\n", "duplicate key 'catalog-version'"),
        ("topics: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "mapping at the top level"),
    ],
)
def test_malformed_yaml_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, "utf-8")
    with pytest.raises(CatalogInvalid, match=message):
        load_catalog(path)


def test_duplicate_key_inside_an_entry_is_refused(tmp_path: Path) -> None:
    text = DEFAULT_CATALOG_PATH.read_text("utf-8").replace(
        "    partitions: 1\n", "    partitions: 1\n    partitions: 6\n", 1
    )
    path = tmp_path / "dup.yaml"
    path.write_text(text, "utf-8")
    with pytest.raises(CatalogInvalid, match="duplicate key 'partitions'"):
        load_catalog(path)


def test_missing_file_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogInvalid, match="not found"):
        load_catalog(tmp_path / "absent.yaml")


# --- names and templates ---------------------------------------------------------------


def test_topic_names(catalog: Catalog) -> None:
    assert catalog.topic_name("orders-exit-restriction") == "zf801.orders.exit-restriction"
    assert catalog.topic_name("alerts", court="BJ01") == "zf801.alerts.BJ01"
    assert catalog.topic_name("query-results", "SH0115") == "zf801.query.results.SH0115"


@pytest.mark.parametrize(
    ("topic_id", "court", "message"),
    [
        ("alerts", None, "court code is required"),
        ("trust", "BJ01", "is not per court"),
        ("alerts", "bj01", "malformed"),
        ("alerts", "B", "malformed"),
        ("alerts", "BJ01.x", "malformed"),
    ],
)
def test_bad_court_codes_are_refused(
    catalog: Catalog, topic_id: str, court: str | None, message: str
) -> None:
    with pytest.raises(CourtCodeInvalid, match=message):
        catalog.topic_name(topic_id, court)


def test_unknown_id_is_refused(catalog: Catalog) -> None:
    with pytest.raises(UnknownTopic, match="no topic with id 'orders'"):
        catalog.topic_name("orders")


def test_templates_expand_for_every_court(catalog: Catalog) -> None:
    topics = catalog.concrete_topics(["BJ01", "SH01", "BJ01"])
    names = [t.name for t in topics]
    assert len(names) == len(set(names)) == 25 + 3 * 2
    assert [t.name for t in topics if t.spec.id == "alerts"] == [
        "zf801.alerts.BJ01",
        "zf801.alerts.SH01",
    ]
    assert {t.court for t in topics if t.spec.id == "query-results"} == {"BJ01", "SH01"}
    assert {t.court for t in topics if not t.spec.is_template} == {None}
    assert len(catalog.concrete_topics([])) == 25
    with pytest.raises(CourtCodeInvalid):
        catalog.concrete_topics(["bad code"])


def test_resolve_maps_a_topic_name_back_to_its_entry(catalog: Catalog) -> None:
    alerts = catalog.resolve("zf801.alerts.GD0304")
    assert (alerts.spec.id, alerts.court) == ("alerts", "GD0304")
    confirmations = catalog.resolve("zf801.alerts.confirmations")
    assert (confirmations.spec.id, confirmations.court) == ("hit-confirmations", None)
    with pytest.raises(UnknownTopic):
        catalog.resolve("zf801.alerts.bj01")
    with pytest.raises(UnknownTopic):
        catalog.resolve("__consumer_offsets")


def test_delivery_templates_expand_for_every_province(catalog: Catalog) -> None:
    topics = catalog.concrete_topics(["BJ01"], ["11", "31", "national", "11"])
    delivery = [t for t in topics if t.spec.id == DELIVERY]
    assert [(t.name, t.province, t.court) for t in delivery] == [
        ("zf801.orders.exit-restriction.11", "11", None),
        ("zf801.orders.exit-restriction.31", "31", None),
        ("zf801.orders.exit-restriction.national", "national", None),
    ]
    assert len(topics) == 25 + 3 * 1 + 5 * 3  # no unit given: no per-unit topic
    assert {t.province for t in topics if not t.spec.per_province} == {None}
    with pytest.raises(ProvinceCodeInvalid):
        catalog.concrete_topics([], ["Beijing"])
    with pytest.raises(CourtCodeInvalid, match="is not per court"):
        catalog.topic_name(DELIVERY, "BJ01", province="11")
    resolved = catalog.resolve("zf801.orders.locate-debtor.national")
    assert (resolved.spec.id, resolved.province, resolved.court) == (
        "order-delivery-locate-debtor",
        "national",
        None,
    )
    intake = catalog.resolve("zf801.orders.locate-debtor")
    assert (intake.spec.id, intake.province) == ("orders-locate-debtor", None)
    with pytest.raises(UnknownTopic):
        catalog.resolve("zf801.orders.locate-debtor.110")


@pytest.mark.parametrize(
    ("topic_id", "court", "province", "message"),
    [
        (DELIVERY, None, None, "a province is required"),
        ("trust", None, "11", "is not per province"),
        ("alerts", "BJ01", "11", "is not per province"),
        (DELIVERY, None, "1", "malformed"),
        (DELIVERY, None, "National", "malformed"),
        (DELIVERY, None, "11.x", "malformed"),
    ],
)
def test_bad_provinces_are_refused(
    catalog: Catalog, topic_id: str, court: str | None, province: str | None, message: str
) -> None:
    with pytest.raises(ProvinceCodeInvalid, match=message):
        catalog.topic_name(topic_id, court, province=province)


def test_the_province_placeholder_takes_every_key_of_the_province_rules(catalog: Catalog) -> None:
    agencies = pytest.importorskip("schemas.agencies")
    keys = provinces()
    assert keys == agencies.load_agencies().provinces()
    assert keys is not None and agencies.NATIONAL in keys
    for key in keys:
        assert catalog.topic_name(DELIVERY, province=key).endswith(f".{key}")


def test_name_prefix_variant(catalog: Catalog) -> None:
    prefixed = catalog.with_name_prefix("t-abc123-")
    assert prefixed.topic_name("alerts", "BJ01") == "t-abc123-zf801.alerts.BJ01"
    assert prefixed.namespace == "t-abc123-zf801"
    assert prefixed.in_namespace("t-abc123-zf801.bus.stray")
    assert not prefixed.in_namespace("zf801.bus.trust")
    changelog = prefixed.get("watchlist-changelog")
    assert changelog.changelog_of is not None
    assert changelog.changelog_of.topic_name == changelog.name
    assert catalog.topic_name("trust") == "zf801.bus.trust"  # the original is unchanged
    with pytest.raises(CatalogInvalid, match="may use only"):
        catalog.with_name_prefix("bad prefix/")
    with pytest.raises(CatalogInvalid, match="249"):
        catalog.with_name_prefix("p" * 220)


# --- access ----------------------------------------------------------------------------


def test_write_access(catalog: Catalog) -> None:
    assert catalog.may_write("court", "orders-exit-restriction")
    assert catalog.may_write("bus", "alerts")
    assert not catalog.may_write("court", "alerts")
    assert not catalog.may_write("border-control", "orders-exit-restriction")
    assert catalog.may_write("public-security", "query-results")
    assert not catalog.may_write("command-system", "trust")


def test_only_the_bus_reads_the_order_intake(catalog: Catalog) -> None:
    for topic_id in ("orders-exit-restriction", "orders-vehicle-search", "orders-locate-debtor"):
        assert catalog.may_read("bus", topic_id)
        for role in ALL_ROLES - {"bus"}:
            assert not catalog.may_read(role, topic_id), (role, topic_id)


def test_each_order_reaches_only_its_police_role_under_the_province_rule(catalog: Catalog) -> None:
    readers = {
        "order-delivery-exit-restriction": "border-control",
        "order-delivery-vehicle-search": "traffic-management",
        "order-delivery-locate-debtor": "public-security",
    }
    served = {"11", "national"}  # e.g. Beijing's border-control unit
    for topic_id, agency_role in readers.items():
        assert catalog.get(topic_id).access.read_scope is ReadScope.PROVINCE_RULE
        for role in ALL_ROLES:
            acting = role == agency_role
            assert (
                catalog.may_read(role, topic_id, province="11", reader_provinces=served) == acting
            )
            assert (
                catalog.may_read(role, topic_id, province="national", reader_provinces=served)
                == acting
            )
            assert not catalog.may_read(role, topic_id, province="31", reader_provinces=served)
            assert not catalog.may_read(role, topic_id, province="11")  # no rule names it
        assert catalog.may_write("bus", topic_id)
        assert not catalog.may_write("court", topic_id)
    name = catalog.topic_name(DELIVERY, province="31")
    assert catalog.may_read_topic("border-control", name, reader_provinces={"31"})
    assert not catalog.may_read_topic("border-control", name, reader_provinces=served)
    with pytest.raises(ProvinceCodeInvalid):
        catalog.may_read("border-control", DELIVERY, reader_provinces=served)


def test_the_sightings_history_is_read_per_province_by_the_roles_answering_p3_and_p5(
    catalog: Catalog,
) -> None:
    spec = catalog.get("sightings-history")
    answering = {str(query_kind(code).role) for code in ("P3", "P5")}
    assert set(spec.access.read) == answering == {"border-control", "public-security"}
    assert spec.access.read_scope is ReadScope.PROVINCE_RULE
    reports = catalog.get("sightings-person")
    assert spec.value_schemas == (
        "cn.zf801.sightings.v1.HotelCheckIn",
        "cn.zf801.sightings.v1.BorderCrossing",
    )
    assert set(spec.value_schemas) <= set(reports.value_schemas)
    assert (spec.key, spec.cleanup_policy) == (reports.key, CleanupPolicy.DELETE)
    # Queryable history outlives the sightings it copies; still not kept forever.
    assert reports.retention_ms is not None and spec.retention_ms is not None
    assert spec.retention_ms >= reports.retention_ms
    served = {"11", "national"}
    for role in ALL_ROLES:
        readable = catalog.may_read(role, spec.id, province="11", reader_provinces=served)
        assert readable == (role in answering), role
        assert not catalog.may_read(role, spec.id, province="31", reader_provinces=served)
    assert catalog.may_write("bus", spec.id)
    assert not any(catalog.may_write(role, spec.id) for role in POLICE | {"court"})


def test_a_court_reads_only_its_own_alerts_and_results(catalog: Catalog) -> None:
    for topic_id in ("alerts", "query-results"):
        assert catalog.get(topic_id).access.read_scope is ReadScope.OWN_COURT
        assert catalog.may_read("court", topic_id, "BJ01", reader_court="BJ01")
        assert not catalog.may_read("court", topic_id, "SH01", reader_court="BJ01")
        assert not catalog.may_read("court", topic_id, "BJ01")  # ownership not shown
        for role in POLICE | {"bus", "command-system"}:
            assert not catalog.may_read(role, topic_id, "BJ01", reader_court="BJ01")
    assert catalog.may_read_topic("court", "zf801.alerts.BJ01", reader_court="BJ01")
    assert not catalog.may_read_topic("court", "zf801.alerts.BJ01", reader_court="BJ0105")
    with pytest.raises(CourtCodeInvalid):
        catalog.may_read("court", "alerts", reader_court="BJ01")


def test_shared_topics_are_read_by_the_listed_roles(catalog: Catalog) -> None:
    for role in ALL_ROLES:
        assert catalog.may_read(role, "trust")
        assert catalog.may_read(role, "anomalies")
        assert catalog.may_write(role, "audit")
    assert not catalog.may_read("court", "audit")
    assert catalog.may_read("command-system", "dishonest-debtors")
    assert not catalog.may_read("court", "sightings-person")


def test_unknown_role_is_an_error(catalog: Catalog) -> None:
    with pytest.raises(UnknownRole, match="'judge'"):
        catalog.may_read("judge", "trust")
    with pytest.raises(UnknownRole):
        catalog.may_write("", "trust")


def test_the_debtor_list_keeps_removals_and_tombstones_for_its_subscribers(
    catalog: Catalog,
) -> None:
    configs = catalog.get("dishonest-debtors").kafka_configs()
    assert configs["cleanup.policy"] == "compact"
    assert configs["delete.retention.ms"] == str(30 * 24 * 3600 * 1000)
    assert configs["min.compaction.lag.ms"] == str(7 * 24 * 3600 * 1000)
    assert "delete.retention.ms" not in catalog.get("audit").kafka_configs()


def test_tombstone_retention_on_a_topic_that_is_not_compacted_is_refused(tmp_path: Path) -> None:
    text = DEFAULT_CATALOG_PATH.read_text("utf-8").replace(
        "    max-message-bytes: 6291456",
        "    delete-retention-ms: 1000\n    max-message-bytes: 6291456",
    )
    path = tmp_path / "tombstones.yaml"
    path.write_text(text, "utf-8")
    with pytest.raises(CatalogInvalid) as caught:
        load_catalog(path)
    assert "delete-retention-ms" in str(caught.value)
    assert "applies only to a compacted topic" in str(caught.value)
