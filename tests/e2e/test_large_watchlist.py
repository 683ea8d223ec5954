"""A worker holding a large watchlist: its idle ticks look at no tracked order, and a
sighting of one of them is still matched.

The orders are written straight to the worker's changelogs, sealed as the worker seals
them (``tests.bench._bus.fill_tracked_orders``, as ``make bench``'s restart benchmark does
at 1,000,000). The issue's 1,000,000 is scaled down to ``TRACKED`` (20,000 by default;
``ZF801_TEST_TRACKED_ORDERS``) for the CI's time: at 100,000 this test took 80 s here,
at 1,000,000 the start alone takes six to nine minutes (``make bench``, bench_latency).
A tick's work does not depend on the count, and the counters below would show every
order looked at.
What is asserted is the work a tick does (the worker's own counters), not time.
"""

from __future__ import annotations

import asyncio
import os
import re
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from consumers.watchlist import derive_id
from tests.bench import _bus
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TRACKED = int(os.environ.get("ZF801_TEST_TRACKED_ORDERS", "20000"))
_START_S = 600.0
_IDLE_TICKS = 5


def _scrape(bus: Any) -> dict[str, float]:
    """The worker's counters and gauges, by sample name (and clock, for the timers)."""
    log = Path(bus.log_path).read_text(encoding="utf-8", errors="replace")
    port = re.search(r"metrics: http://127\.0\.0\.1:(\d+)/metrics", log)
    assert port, "the worker did not say where its metrics are"
    with urllib.request.urlopen(f"http://127.0.0.1:{port[1]}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            clock = sample.labels.get("clock")
            samples[f"{sample.name}[{clock}]" if clock else sample.name] = sample.value
    return samples


def test_a_worker_tracking_many_orders_ticks_without_looking_at_them_and_still_matches(
    bus_factory: Any, records: Any
) -> None:
    bus = bus_factory(metrics_port=0)
    people = _bus.id_numbers(TRACKED, seed=29)
    # not acknowledged yet: both clocks of every order are watched, none due in this test
    asyncio.run(_bus.fill_tracked_orders(bus, people, acknowledged=False, ack_due_s=3600))
    watched, unwatched = people[TRACKED // 2], _bus.id_numbers(1, seed=TRACKED + 29)[0]
    sightings = [records.hotel_check_in("110000000000", p) for p in (watched, unwatched)]
    bus.publisher("110000000000").publish_all([bus.event("HotelCheckIn", s) for s in sightings])

    bus.start_worker()
    bus.wait_worker_ready(_START_S)
    bus.wait_sightings_matched(_START_S)
    order_id = str(uuid.UUID(int=TRACKED // 2 + 1))  # the fill's order ids
    hits = [r for r, _, kind in bus.read_topic("alerts", _bus.COURT, idle_s=2.0) if kind == "Hit"]
    assert [str(h["hit_id"]) for h in hits] == [derive_id(order_id, sightings[0]["sighting_id"])]

    # every order's clocks indexed (a part at a time, while the matcher already runs)
    indexed = wait_for(
        lambda: (s := _scrape(bus))["zf801_timers_pending[control-end]"] == TRACKED and s,
        timeout_s=_START_S,
    )
    assert indexed["zf801_timers_pending[acknowledgement]"] == TRACKED
    # Every deadline lies minutes or days ahead: the ticks that follow look at no order.
    after = wait_for(
        lambda: (
            (s := _scrape(bus))["zf801_timer_ticks_total"]
            >= indexed["zf801_timer_ticks_total"] + _IDLE_TICKS
            and s
        ),
        timeout_s=60,
    )
    assert after["zf801_clock_lookups_total"] == indexed["zf801_clock_lookups_total"] == 0
    assert after["zf801_hits_total"] == 1
