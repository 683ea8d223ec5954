"""The command centre's web edge, without a broker: who may see what, what an
unauthenticated or refused request gets (nothing but the error), the audit record of every
view, and a clear error naming the field and rule for every bad input."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from ops.centre.tokens import issue_token
from ops.centre.web import centre_app
from schemas.settings import Settings
from sign.keystore import KeyStore
from sign.verify_stage import MemoryAuditSink

SECRET = "order-of-BJ01"


class _Figures:
    version = 1

    def view(self, court: str | None, now: datetime | None = None) -> dict[str, Any]:
        if court is None:
            return {"active_total": 3, "detail": "national"}
        return {"court": court, "orders": [SECRET] if court == "BJ01" else []}


@pytest.fixture(scope="module")
def keystore(settings: Settings) -> KeyStore:
    return KeyStore.from_settings(settings)


@pytest.fixture
def audit() -> MemoryAuditSink:
    return MemoryAuditSink()


@pytest.fixture
def client(keystore: KeyStore, audit: MemoryAuditSink) -> TestClient:
    return TestClient(centre_app(_Figures(), keystore.trust_store(), audit, "BUS-AUDIT"))


def _auth(keystore: KeyStore, agency: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(keystore, agency, 600)}"}


def test_a_court_sees_its_own_drill_down_and_it_is_audited(
    client: TestClient, keystore: KeyStore, audit: MemoryAuditSink
) -> None:
    answer = client.get("/api/courts/BJ01", headers=_auth(keystore, "BJ01"))
    assert answer.status_code == 200
    assert answer.json()["orders"] == [SECRET]
    (entry,) = audit.operations
    assert (entry["agency_code"], entry["operation"], entry["target"], entry["result"]) == (
        "BJ01", "command-centre.view", "court/BJ01", "SUCCESS",
    )  # fmt: skip


@pytest.mark.parametrize("viewer", ["GD01", "SPC-COMMAND", "SPC", "110000230000", "BUS-MATCHER"])
def test_no_one_sees_another_courts_drill_down(
    client: TestClient, keystore: KeyStore, audit: MemoryAuditSink, viewer: str
) -> None:
    for path in ("/api/courts/BJ01", "/api/courts/BJ01/stream"):
        answer = client.get(path, headers=_auth(keystore, viewer))
        assert answer.status_code == 403
        assert SECRET not in answer.text
        assert answer.json()["rule"] == "own-court"
        assert f"agency {viewer} may not see court BJ01's drill-down" in answer.json()["error"]
    assert [(e["agency_code"], e["result"]) for e in audit.operations] == [(viewer, "DENIED")] * 2


def test_the_national_view_is_the_spcs(client: TestClient, keystore: KeyStore) -> None:
    assert client.get("/api/national", headers=_auth(keystore, "SPC-COMMAND")).json() == {
        "active_total": 3, "detail": "national",
    }  # fmt: skip
    refused = client.get("/api/national", headers=_auth(keystore, "BJ01"))
    assert refused.status_code == 403
    assert refused.json()["rule"] == "national-view"
    assert "national" not in refused.json().get("detail", "")


@pytest.mark.parametrize(
    "path",
    [
        "/api/national",
        "/api/national/stream",
        "/api/courts/BJ01",
        "/api/courts/BJ01/stream",
        "/api/whoami",
    ],
)
@pytest.mark.parametrize(
    ("headers", "rule"),
    [
        ({}, "required"),
        ({"Authorization": ""}, "required"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "scheme"),
        ({"Authorization": "Bearer "}, "scheme"),
        ({"Authorization": "Bearer " + "A" * 5000}, "max-length"),
        ({"Authorization": "Bearer abc.def"}, "token"),
        ({"Authorization": "Bearer ../../etc/passwd"}, "token"),
    ],
)
def test_an_unauthenticated_request_gets_nothing(
    client: TestClient, audit: MemoryAuditSink, path: str, headers: dict[str, str], rule: str
) -> None:
    answer = client.get(path, headers=headers)
    assert answer.status_code == 401
    assert set(answer.json()) == {"error", "field", "rule"}
    assert answer.json()["field"] == "authorization"
    assert answer.json()["rule"] == rule
    assert SECRET not in answer.text
    assert "active_total" not in answer.text
    (entry,) = audit.operations
    assert (entry["user"], entry["result"]) == ("anonymous", "DENIED")


@pytest.mark.parametrize(
    ("court", "shown"),
    [
        ("bj01", "'bj01' must match"),
        ("B", "'B' must match"),
        ("BJ01%3Cscript%3E", "'BJ01<script>' must match"),
        ("A" * 300, "'AAAAAAAAAAAAAAAAAAAA...' must match"),
        ("%E6%B3%95%E9%99%A2", "'法院' must match"),
        ("BJ01%00", "must match"),
    ],
)
def test_a_bad_court_id_names_the_field_and_rule(
    client: TestClient, keystore: KeyStore, court: str, shown: str
) -> None:
    answer = client.get(f"/api/courts/{court}", headers=_auth(keystore, "BJ01"))
    assert answer.status_code == 400
    assert answer.json()["field"] == "court"
    assert answer.json()["rule"] == "pattern"
    assert shown in answer.json()["error"]


@pytest.mark.parametrize(
    ("query", "field", "rule"),
    [
        ("lang=fr", "lang", "one-of"),
        ("lang=" + "z" * 100, "lang", "max-length"),
        ("court=gd01", "court", "pattern"),
        ("court=BJ01%0A", "court", "pattern"),  # a regex's $ takes a trailing newline
        ("debug=1", "query parameter 'debug'", "unknown"),
        ("%3Cscript%3E=1", "query parameter '<script>'", "unknown"),
    ],
)
def test_the_page_checks_its_query(client: TestClient, query: str, field: str, rule: str) -> None:
    answer = client.get(f"/?{query}")
    assert answer.status_code == 400
    assert (answer.json()["field"], answer.json()["rule"]) == (field, rule)


def test_the_page_itself_holds_no_figures(client: TestClient) -> None:
    answer = client.get("/?lang=en&court=BJ01")
    assert answer.status_code == 200
    assert "data-figure" in answer.text
    assert SECRET not in answer.text
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert client.get("/static/vendor/uPlot.iife.min.js").status_code == 200


def test_api_routes_take_no_query(client: TestClient, keystore: KeyStore) -> None:
    answer = client.get("/api/national?x=1", headers=_auth(keystore, "SPC-COMMAND"))
    assert (answer.status_code, answer.json()["rule"]) == (400, "unknown")


def test_whoami(client: TestClient, keystore: KeyStore) -> None:
    me = client.get("/api/whoami", headers=_auth(keystore, "BJ01")).json()
    assert (me["agency"], me["court"], me["national"]) == ("BJ01", "BJ01", False)
    assert datetime.fromisoformat(me["expires"]) > datetime.now(UTC)


def test_the_centres_metrics_parse(client: TestClient, keystore: KeyStore) -> None:
    client.get("/api/national", headers=_auth(keystore, "SPC-COMMAND"))
    client.get("/api/national")
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    samples = {
        (s.labels["view"], s.labels["result"]): s.value
        for s in families["zf801_centre_views"].samples
        if s.name == "zf801_centre_views_total"
    }
    assert samples == {("national", "SUCCESS"): 1.0, ("national", "DENIED"): 1.0}
