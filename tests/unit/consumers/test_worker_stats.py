"""The worker's Prometheus families: the lag gauge covers both of its batch loops, the
intake's topics as well as the sightings'."""

from __future__ import annotations

from typing import Any

from prometheus_client import generate_latest

from consumers.worker_stats import WorkerStats


class _Loop:
    committer = None

    def __init__(self, lag: list[tuple[str, int]]) -> None:
        self._lag = lag

    def lag(self) -> list[tuple[str, int]]:
        return self._lag


class _Deadlines:
    ticks = 3
    looked_up = 2

    def pending(self) -> tuple[int, int]:
        return 5, 1


def test_the_lag_gauge_names_the_intake_topics_and_the_sighting_topics() -> None:
    stats = WorkerStats(
        _Loop([("zf801.sightings.person", 4)]),  # type: ignore[arg-type]
        _Loop([("zf801.orders.locate-debtor", 7)]),  # type: ignore[arg-type]
        {}, deadlines=_Deadlines(), watchlist=Any, tracking=Any,  # type: ignore[arg-type]
    )  # fmt: skip
    text = generate_latest(stats.metrics.registry).decode()
    assert 'zf801_consumer_lag{processor="worker",topic="zf801.orders.locate-debtor"} 7.0' in text
    assert 'zf801_consumer_lag{processor="worker",topic="zf801.sightings.person"} 4.0' in text
    assert 'zf801_timers_pending{clock="control-end",processor="worker"} 5.0' in text
