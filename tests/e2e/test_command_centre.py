"""The command centre against the real broker with a scenario running through a
``zf801 worker``: headless Chromium (Debian's, through Selenium) loads the page, and the
figures it shows equal those computed here from the topics; a court's drill-down shows
that court's orders and hits, and no other court's; an unauthenticated request gets
nothing; every view is in the audit log; the worker's Prometheus endpoint is scraped and
parsed. Screenshots of the national view and of a drill-down are written under
``<pytest basetemp>/artifacts/command-centre`` (or ``$ZF801_TEST_ARTIFACTS``)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ops.centre.server import CommandCentre, page_address
from ops.centre.tokens import issue_token
from schemas.codec import default_codec
from schemas.event_types import ACKNOWLEDGEMENT, EXPIRY_NOTICE, HIT, ORDERS, RELEASE
from schemas.tls_layout import ADMIN_NAME
from tests import waiting
from tests.builders import Records
from topics import clients

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BORDER_BJ = "110000230000"
POLICE_GD = "440000000000"
COURTS = ("BJ01", "SH01", "GD01")
ACK_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def bus(bus_factory: Any) -> Iterator[Any]:
    bus = bus_factory(ack_timeout_s=ACK_TIMEOUT_S, metrics_port=0)
    bus.start()
    yield bus


@pytest.fixture(scope="module")
def scenario(bus: Any) -> dict[str, Any]:
    """Orders of three courts in three provinces, one released, one acknowledged; hits in
    two courts; a tampered sighting, dead-lettered."""
    records = Records(1616)
    beijing, guangzhou = records.id_number(), records.id_number("440104")
    exit_bj = records.person_order("BJ01", "（2026）京01执1601号", beijing)
    vehicle_bj = records.vehicle_order(
        "BJ01", "（2026）京01执1602号", records.plate(), records.vin()
    )
    locate_gd = records.person_order("GD01", "（2026）粤01执1603号", guangzhou)
    exit_sh = records.person_order("SH01", "（2026）沪01执1604号", records.id_number("310104"))
    bus.publish("BJ01", "ExitRestrictionOrder", exit_bj)
    bus.publish("BJ01", "VehicleSearchOrder", vehicle_bj)
    bus.publish("GD01", "LocateDebtorOrder", locate_gd)
    bus.publish("SH01", "ExitRestrictionOrder", exit_sh)
    bus.publish(
        "SH01",
        "OrderRelease",
        records.release(exit_sh, "EXIT_RESTRICTION"),
        {"id_number": exit_sh["subject"]["id_number"]},
    )
    bus.publish(
        BORDER_BJ,
        "OrderAcknowledgement",
        records.acknowledgement(exit_bj, "EXIT_RESTRICTION", BORDER_BJ),
    )
    bus.wait_orders_consumed()
    bus.publish(BORDER_BJ, "BorderCrossing", records.border_crossing(BORDER_BJ, beijing))
    bus.publish(POLICE_GD, "HotelCheckIn", records.hotel_check_in(POLICE_GD, guangzhou))
    topic, signed = bus.publisher(POLICE_GD).prepare(
        bus.event("HotelCheckIn", records.hotel_check_in(POLICE_GD, guangzhou))
    )
    tampered = bytearray(signed.value)
    tampered[-1] ^= 0x01
    bus.publisher(POLICE_GD).producer.send(
        topic, key=signed.key, value=bytes(tampered), headers=list(signed.headers)
    ).get(timeout=10)
    expected = waiting.wait_for(
        lambda: (found := from_topics(bus))["hits_total"] >= 2 and found["dead_letters"] and found,
        timeout_s=90,
    )
    return {"expected": expected, "gd_order": locate_gd["order_id"]}


def _read(bus: Any, topic_ids: list[tuple[str, str | None]]) -> list[tuple[str, dict[str, Any]]]:
    """Every record of the topics (read_committed), decoded: (type name, record)."""
    names = [bus.catalog.topic_name(topic_id, court) for topic_id, court in topic_ids]
    consumer = clients.kafka_consumer(
        bus.settings,
        ADMIN_NAME,
        *names,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
        group_id=None,
    )
    try:
        decoded = [default_codec().decode(m.value) for m in consumer]
    finally:
        consumer.close()
    return [(schema.full_name, record) for schema, record in decoded]


def from_topics(bus: Any) -> dict[str, Any]:
    """The figures, computed from the topics independently of the centre."""
    order_topics = [
        (t, None)
        for t in (
            "orders-exit-restriction",
            "orders-vehicle-search",
            "orders-locate-debtor",
            "order-acknowledgements",
        )
    ]
    now = dt.datetime.now(dt.UTC)
    orders, closed, acked = {}, set(), set()
    for name, record in _read(bus, order_topics):
        if name in ORDERS:
            orders[str(record["order_id"])] = (name.rsplit(".", 1)[1], record)
        elif name in (RELEASE, EXPIRY_NOTICE):
            closed.add(str(record["order_id"]))
        elif name == ACKNOWLEDGEMENT:
            acked.add(str(record["order_id"]))
    active = {
        oid: (kind, r)
        for oid, (kind, r) in orders.items()
        if oid not in closed and r["control_period_end"] > now
    }
    pending = [r for oid, (_, r) in active.items() if oid not in acked]
    hits = Counter(
        str(r["court_code"])
        for name, r in _read(bus, [("alerts", c) for c in COURTS])
        if name == HIT
    )
    letters = Counter(str(r["reason"]) for _, r in _read(bus, [("dead-letter", None)]))
    return {
        "active_total": len(active),
        "active": Counter(kind for kind, _ in active.values()),
        "pending": len(pending),
        "overdue": sum(now - r["issued_at"] > dt.timedelta(seconds=ACK_TIMEOUT_S) for r in pending),
        "hits_total": sum(hits.values()),
        "hits": hits,
        "dead_letters": dict(letters),
        "orders_of": Counter(r["enforcing_court_code"] for _, r in orders.values()),
    }


@pytest.fixture(scope="module")
def centre(bus: Any, scenario: dict[str, Any]) -> Iterator[CommandCentre]:
    centre = CommandCentre(bus.settings, port=0, refresh_s=0.5)
    centre.start()
    yield centre
    centre.stop()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = os.environ.get("ZF801_TEST_ARTIFACTS")
    base = Path(root) if root else tmp_path_factory.getbasetemp() / "artifacts"
    path = base / "command-centre"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's headless Chromium through its chromedriver; nothing is downloaded."""
    chromium = shutil.which("chromium") or (str(CHROMIUM) if CHROMIUM.exists() else None)
    driver_path = shutil.which("chromedriver") or (
        str(CHROMEDRIVER) if CHROMEDRIVER.exists() else None
    )
    if chromium is None or driver_path is None:
        pytest.skip(
            "no Chromium here: the browser test needs Debian's chromium and chromium-driver "
            "(apt-get install -y chromium chromium-driver; .ci/run installs them)"
        )
    pytest.importorskip("selenium", reason="selenium (the dev extra) drives the browser")
    from selenium import webdriver  # noqa: PLC0415 - only this test needs it
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,2200",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


_PAGE_FIGURES = """
const text = (sel) => {
  const el = document.querySelector(sel);
  return el ? el.textContent : null;
};
const rows = (sel, key) => Object.fromEntries([...document.querySelectorAll(sel)].map(
  (tr) => [tr.dataset[key], tr.cells[tr.cells.length - 1].textContent]));
return {
  version: document.body.dataset.nationalVersion || null,
  active_total: text('#active-total'), pending: text('#pending'), overdue: text('#overdue'),
  hits_total: text('#hits-total'), queries_asked: text('#queries-asked'),
  kinds: rows('#kinds tr', 'kind'), dead_letters: rows('#dead-letters tr', 'reason'),
  provinces: Object.fromEntries([...document.querySelectorAll('#provinces tbody tr')].map(
    (tr) => [tr.dataset.province, [...tr.cells].slice(1).map((c) => c.textContent)])),
  health: text('#health-verdict'), groups: document.querySelectorAll('#groups tbody tr').length,
  error: document.getElementById('error').hidden ? null : text('#error'),
};
"""


def _shown(expected: dict[str, Any]) -> dict[str, Any]:
    """What the page must show for ``expected`` (its text, as the browser renders it)."""
    provinces = {"11": 0, "31": 0, "44": 0}
    return {
        "active_total": str(expected["active_total"]),
        "pending": str(expected["pending"]),
        "overdue": str(expected["overdue"]),
        "hits_total": str(expected["hits_total"]),
        "queries_asked": "0",
        "kinds": {
            kind: str(expected["active"].get(kind, 0))
            for kind in ("ExitRestrictionOrder", "LocateDebtorOrder", "VehicleSearchOrder")
        },
        "dead_letters": {k: str(v) for k, v in expected["dead_letters"].items()},
        "province_hits": {
            p: str(expected["hits"].get(c, 0))
            for p, c in zip(provinces, ("BJ01", "SH01", "GD01"), strict=True)
        },
    }


def _on_page(figures: dict[str, Any]) -> dict[str, Any]:
    return {
        **{
            k: figures[k]
            for k in (
                "active_total",
                "pending",
                "overdue",
                "hits_total",
                "queries_asked",
                "kinds",
                "dead_letters",
            )
        },
        "province_hits": {p: row[3] for p, row in figures["provinces"].items()},
    }


def test_the_page_shows_the_figures_on_the_topics(
    browser: Any, centre: CommandCentre, bus: Any, scenario: dict[str, Any], artifacts: Path
) -> None:
    browser.get(page_address(centre.address, bus.keystore, "SPC-COMMAND", 600))
    assert "#token" not in browser.current_url  # the page took the token out of its address
    figures: dict[str, Any] = {}

    def matches() -> bool:
        figures.update(browser.execute_script(_PAGE_FIGURES))
        assert figures["error"] is None, figures["error"]
        return bool(figures["version"] and figures["health"] and figures["groups"]) and (
            _on_page(figures) == _shown(from_topics(bus))
        )

    try:
        waiting.wait_for(matches, timeout_s=60)
    finally:
        browser.save_screenshot(str(artifacts / "national.png"))
    # What the scenario made, as the topics (and so the page) hold it: SH01's order was
    # released, BJ01's exit restriction acknowledged; the tampered sighting dead-lettered.
    assert (figures["active_total"], figures["pending"], figures["overdue"]) == ("3", "2", "2")
    assert figures["hits_total"] == "2"
    assert figures["kinds"]["ExitRestrictionOrder"] == "1"
    assert figures["dead_letters"] == {"SIGNATURE_INVALID": "1"}
    assert figures["provinces"]["11"][:2] == ["2", "1"]  # Beijing: 2 active, 1 pending

    browser.find_element("id", "lang").click()
    assert browser.find_element("css selector", "[data-label=hits_per_minute]").text == (
        "Hits per minute"
    )
    assert browser.execute_script("return document.querySelectorAll('.uplot').length") == 3


def test_a_court_sees_its_own_drill_down_only(
    browser: Any, centre: CommandCentre, bus: Any, scenario: dict[str, Any], artifacts: Path
) -> None:
    expected = scenario["expected"]
    browser.get(page_address(centre.address, bus.keystore, "GD01", 600))

    def shown() -> Any:
        text = browser.find_element("id", "court-orders-total").text
        return text == str(expected["orders_of"]["GD01"]) and {
            "orders": text,
            "hits": browser.find_element("id", "court-hits-total").text,
            "order_rows": browser.execute_script(
                "return [...document.querySelectorAll('#court-orders tbody tr')]"
                ".map((tr) => tr.dataset.order)"
            ),
            "national_hidden": browser.find_element("id", "national").get_attribute("hidden"),
        }

    try:
        seen = waiting.wait_for(shown, timeout_s=30)
    finally:
        browser.save_screenshot(str(artifacts / "court-GD01.png"))
    assert seen["hits"] == str(expected["hits"]["GD01"])
    assert seen["order_rows"] == [scenario["gd_order"]]
    assert seen["national_hidden"] is not None  # a court does not see the national view

    # GD01 asking for BJ01's drill-down, in the page and at the API: refused, nothing shown.
    browser.get(page_address(centre.address, bus.keystore, "GD01", 600, court="BJ01"))
    error = waiting.wait_for(lambda: browser.find_element("id", "error").text)
    assert "agency GD01 may not see court BJ01's drill-down" in error
    assert (
        browser.find_element("id", "court-orders").find_elements("css selector", "tbody tr") == []
    )


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _zf801(bus: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("zf801")), *args],
        env={**bus.worker_env(), "COLUMNS": "300"}, capture_output=True, text=True,
        timeout=180, check=False,
    )  # fmt: skip


def test_refusals_at_the_real_centre_are_audited(centre: CommandCentre, bus: Any) -> None:
    # an audit record in BJ01's own chain, before the centre records BJ01's views in its own
    read = _zf801(bus, "alerts", "--court", "BJ01", "--until-idle", "1", "--format", "json")
    assert read.returncode == 0, read.stderr
    status, body = _get(f"{centre.address}/api/national")
    assert (status, body["field"], body["rule"]) == (401, "authorization", "required")
    assert "active_total" not in body
    token = issue_token(bus.keystore, "BJ01", 600)
    status, body = _get(f"{centre.address}/api/courts/GD01", {"Authorization": f"Bearer {token}"})
    assert (status, body["rule"]) == (403, "own-court")
    assert "orders" not in body

    def audited() -> Any:
        views = [
            (r["agency_code"], r["target"], r["result"])
            for name, r in _read(bus, [("audit", None)])
            if r["operation"] == "command-centre.view"
        ]
        wanted = {
            ("BJ01", "court/GD01", "DENIED"),
            ("SPC-COMMAND", "national", "SUCCESS"),
            ("GD01", "court/GD01", "SUCCESS"),
            ("BUS-AUDIT", "national", "DENIED"),
        }
        return wanted <= set(views) and views

    assert waiting.wait_for(audited, timeout_s=30)
    # The centre records each viewer's agency in the one chain of its own: BJ01's own chain
    # (its alerts read, just before) and the centre's have no break.
    chains = _zf801(bus, "audit", "chains", "--as", "BUS-AUDIT", "--format", "json")
    assert chains.returncode == 0, chains.stdout + chains.stderr
    found = [json.loads(line) for line in chains.stdout.splitlines() if line.startswith("{")]
    assert found and not [c for c in found if c["breaks"]]


def test_the_workers_metrics_are_scraped_and_parsed(bus: Any, scenario: dict[str, Any]) -> None:
    log = Path(bus.log_path).read_text(encoding="utf-8", errors="replace")
    port = re.search(r"metrics: http://127\.0\.0\.1:(\d+)/metrics", log)
    assert port, "the worker did not say where its metrics are"
    with urllib.request.urlopen(f"http://127.0.0.1:{port[1]}/metrics", timeout=10) as answer:
        families = {f.name: f for f in text_string_to_metric_families(answer.read().decode())}

    def sample(family: str, name: str, **labels: str) -> float:
        return sum(
            s.value
            for s in families[family].samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    hits = scenario["expected"]["hits_total"]
    assert sample("zf801_hits", "zf801_hits_total", processor="worker") == hits
    assert sample("zf801_hit_latency_seconds", "zf801_hit_latency_seconds_count") == hits
    assert sample("zf801_sightings", "zf801_sightings_total") >= 3
    # The tampered sighting, refused by the sightings stage (and dead-lettered).
    assert (
        sample(
            "zf801_verification_failures", "zf801_verification_failures_total", input="sightings"
        )
        == 1
    )
    assert sample("zf801_records_verified", "zf801_records_verified_total", input="orders") >= 5
    assert {s.labels["clock"] for s in families["zf801_timers_pending"].samples} == {
        "control-end",
        "acknowledgement",
    }
    assert "zf801_consumer_lag" in families
