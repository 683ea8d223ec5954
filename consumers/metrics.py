"""Prometheus metrics of a long-running processor, on a port of its own.

Nothing here is on a hot path: the processors keep plain counters as they go (the
matcher's :class:`~consumers.matcher.MatchResult` totals, each verify stage's
``accepted`` and ``rejected``), and a collector reads them when Prometheus scrapes. The
one histogram, hit latency, is observed once per hit (hits are rare next to sightings),
after the batch that made them committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sign.verify_stage import VerifyStage

__all__ = [
    "HIT_LATENCY_BUCKETS_S",
    "ProcessorMetrics",
    "counter",
    "gauge",
    "outcome_counts",
    "stage_families",
]

log = logging.getLogger(__name__)

HIT_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_RETRIES = 3


def _items(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """The counts now; another thread may be adding a reason while we read."""
    for _ in range(_RETRIES):
        try:
            return list(counts.items())
        except RuntimeError:  # changed size during iteration: look again
            continue
    return []


def stage_families(processor: str, stages: Mapping[str, VerifyStage]) -> Iterator[Any]:
    """Records accepted per input and verification failures per input and reason."""
    accepted = CounterMetricFamily(
        "zf801_records_verified", "Records that passed verification, per input",
        labels=["processor", "input"],
    )  # fmt: skip
    failures = CounterMetricFamily(
        "zf801_verification_failures", "Records refused by verification, per input and reason",
        labels=["processor", "input", "reason"],
    )  # fmt: skip
    for name, stage in stages.items():
        accepted.add_metric([processor, name], stage.accepted)
        for reason, count in _items(stage.rejected):
            failures.add_metric([processor, name, reason], count)
    yield accepted
    yield failures


class _Collected(Collector):
    def __init__(self, collect: Callable[[], Iterable[Any]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Any]:
        return list(self._collect())


@dataclass
class ProcessorMetrics:
    """One processor's registry: what its collectors read at scrape time, and its hit
    latency histogram."""

    processor: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    hit_latency: Histogram = field(init=False)

    def __post_init__(self) -> None:
        self.hit_latency = Histogram(
            "zf801_hit_latency_seconds",
            "From the sighting reaching the bus to its hit committed",
            ["processor"], buckets=HIT_LATENCY_BUCKETS_S, registry=self.registry,
        ).labels(self.processor)  # fmt: skip

    def collect(self, families: Callable[[], Iterable[Any]]) -> None:
        """Read ``families`` (metric families built from the processor's counters) at
        every scrape."""
        self.registry.register(_Collected(families))

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``host``:``port`` (0: any free port) from a daemon thread;
        returns the port bound."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        bound = int(server.server_port)
        log.info("metrics of %s on http://%s:%d/metrics", self.processor, host, bound)
        return bound


def outcome_counts(processor: str, counts: Mapping[str, float]) -> CounterMetricFamily:
    """A processor's own tallies (records read, forwarded, answered...) as one counter."""
    return counter("zf801_records", "Records handled, per outcome", ["processor", "outcome"],
                   [([processor, name], value) for name, value in counts.items()])  # fmt: skip


_Values = Iterable[tuple[list[str], float]]


_Family = TypeVar("_Family", GaugeMetricFamily, CounterMetricFamily)


def _filled(family: _Family, values: _Values) -> _Family:
    for label_values, value in values:
        family.add_metric(label_values, value)
    return family


def gauge(name: str, documentation: str, labels: list[str], values: _Values) -> GaugeMetricFamily:
    return _filled(GaugeMetricFamily(name, documentation, labels=labels), values)


def counter(
    name: str, documentation: str, labels: list[str], values: _Values
) -> CounterMetricFamily:
    return _filled(CounterMetricFamily(name, documentation, labels=labels), values)
