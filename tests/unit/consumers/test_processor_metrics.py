"""A processor's Prometheus registry: its counters read at scrape time, served over HTTP
and parsed back with prometheus_client's own parser."""

from __future__ import annotations

import urllib.request
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from consumers.metrics import ProcessorMetrics, gauge, outcome_counts, stage_families


class _Stage:
    def __init__(self) -> None:
        self.accepted = 0
        self.rejected: Counter[str] = Counter()


def test_counters_are_read_when_scraped() -> None:
    stage = _Stage()
    counts = {"read": 0, "forwarded": 0}
    metrics = ProcessorMetrics("history-forwarder")
    metrics.collect(lambda: [
        outcome_counts("history-forwarder", counts),
        *stage_families("history-forwarder", {"sightings": stage}),  # type: ignore[dict-item]
        gauge("zf801_timers_pending", "clocks", ["processor", "clock"],
              [(["history-forwarder", "control-end"], 4)]),
    ])  # fmt: skip
    port = metrics.serve(0)
    counts.update(read=7, forwarded=5)
    stage.accepted = 5
    stage.rejected.update({"SIGNATURE_INVALID": 2})
    metrics.hit_latency.observe(0.2)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        families = {f.name: f for f in text_string_to_metric_families(answer.read().decode())}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families.values() for s in family.samples
    }  # fmt: skip
    processor = ("processor", "history-forwarder")
    assert samples[("zf801_records_total", (("outcome", "read"), processor))] == 7
    assert samples[("zf801_records_total", (("outcome", "forwarded"), processor))] == 5
    assert samples[("zf801_records_verified_total", (("input", "sightings"), processor))] == 5
    assert (
        samples[
            (
                "zf801_verification_failures_total",
                (("input", "sightings"), processor, ("reason", "SIGNATURE_INVALID")),
            )
        ]
        == 2
    )
    assert samples[("zf801_timers_pending", (("clock", "control-end"), processor))] == 4
    assert samples[("zf801_hit_latency_seconds_count", (processor,))] == 1
    assert samples[("zf801_hit_latency_seconds_bucket", (("le", "0.25"), processor))] == 1
