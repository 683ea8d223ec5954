"""A small demo scenario (30 orders, 200 sightings) through the real broker and a
``zf801 worker`` subprocess under a topic prefix of its own: the hits that arrive are
exactly the expected ones, and every special case comes out as it must."""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka.errors import KafkaError
from rich.console import Console

from ops.demo import DemoOptions, DemoOutcome, run_demo
from ops.scenario import Forgery
from schemas.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def outcome(
    kafka_settings: Settings, kafka_clients: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[DemoOutcome, str]]:
    home = tmp_path_factory.mktemp("zf801-demo")
    prefix = f"e2edemo{uuid.uuid4().hex[:8]}-"
    settings = kafka_settings.model_copy(update={"home": home, "keys_path": home / "keys"})
    options = DemoOptions(
        seed=2026, orders=30, sightings=200, ack_timeout_s=10.0, prefix=prefix,
        remove_earlier_runs=False, start_broker=False,
    )  # fmt: skip
    output = io.StringIO()
    result = run_demo(options, settings, Console(file=output, width=160))
    yield result, output.getvalue()
    admin = kafka_clients.admin()
    try:
        with contextlib.suppress(KafkaError):
            admin.delete_topics([t for t in admin.list_topics() if t.startswith(prefix)])
    finally:
        admin.close()


def test_hits_are_exactly_the_expected_ones(outcome: tuple[DemoOutcome, str]) -> None:
    result, log = outcome
    observed, expected = result.observed, result.expected
    assert len(expected.hits) > 10
    assert set(observed.hits) == expected.hit_ids, log
    for hit_id, hit in observed.hits.items():
        wanted = next(h for h in expected.hits if h.hit_id == hit_id)
        assert (hit.court, hit.order_id, hit.sighting_id) == (
            wanted.court,
            wanted.order_id,
            wanted.sighting_id,
        )
        assert hit.signed_by == "BUS-MATCHER"
    assert observed.hits_elsewhere == [] and observed.refused_alerts == 0
    assert result.verdict.passed, [c for c in result.verdict.checks if not c.passed]


def test_special_cases(outcome: tuple[DemoOutcome, str]) -> None:
    result, _ = outcome
    scenario, observed, expected = result.scenario, result.observed, result.expected
    special = scenario.special
    hit_orders = {hit.order_id for hit in observed.hits.values()}
    # One subject, two courts: the check-in reached both.
    hotel = special.two_court_sightings[0]
    assert len({h.court for h in observed.hits.values() if h.sighting_id == hotel}) == 2
    # Released orders never hit.
    assert hit_orders.isdisjoint(special.released_orders)
    # Transfer and mortgage attempts on seized vehicles: blocked, signed by the bus.
    assert observed.blocked == expected.blocked
    assert {s for _, s in observed.blocked} >= set(special.blocked_sightings)
    assert observed.blocked_unverified == 0
    # The expired order: no hit, an expiry notice to the court and on the police side.
    assert special.expired_order not in hit_orders
    assert special.expired_order in observed.expiry_court
    assert special.expired_order in observed.expiry_police
    # The order no unit acknowledged: an overdue alert; the others were forwarded.
    assert special.unacknowledged_order in observed.overdue
    assert observed.acknowledgements == expected.acknowledgements
    # Forged sightings: no hit, dead-lettered with the reason of their forgery.
    forged = {scenario.sighting(i).forgery: i for i in special.forged_sightings}
    assert observed.dead_letters[forged[Forgery.TAMPERED_VALUE]] == "SIGNATURE_INVALID"
    assert observed.dead_letters[forged[Forgery.UNTRUSTED_KEY]] == "CERTIFICATE_UNTRUSTED"
    assert {h.sighting_id for h in observed.hits.values()}.isdisjoint(special.forged_sightings)


def test_the_worker_ran_and_stopped(outcome: tuple[DemoOutcome, str]) -> None:
    result, _ = outcome
    log = Path(result.worker_log).read_text("utf-8", "replace")
    assert "matcher follows sighting partitions" in log
    assert [phase for phase, _ in result.timings][-1] == "stopping the worker"
