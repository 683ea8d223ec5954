"""What a worker has done, for Prometheus (read at scrape time) and for the operator
reading its log (every 30 s)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

from consumers.deadlines import Deadlines
from consumers.matcher import MatchResult
from consumers.metrics import ProcessorMetrics, counter, gauge, stage_families
from consumers.partition_loop import PartitionLoop
from consumers.sealed_table import SealedTable
from consumers.sighting_loop import SightingLoop
from sign.verify_stage import VerifyStage

__all__ = ["WorkerStats"]

log = logging.getLogger(__name__)


class WorkerStats:
    """The worker's counters, gauges and hit latency, read from its parts."""

    def __init__(
        self,
        loop: SightingLoop,
        intake: PartitionLoop,
        stages: Mapping[str, VerifyStage],
        *,
        deadlines: Deadlines,
        watchlist: SealedTable,
        tracking: SealedTable,
    ) -> None:
        self._loop = loop
        self._intake = intake
        self._stages = stages
        self._deadlines = deadlines
        self._watchlist = watchlist
        self._tracking = tracking
        self.journal_refused = 0
        """Replay journal records refused on restore (their seal did not check)."""
        self.metrics = ProcessorMetrics("worker")
        self.metrics.collect(self.families)

    def hits_committed(self, sighting_timestamps_ms: list[int]) -> None:
        """The hit latency of a committed batch's hits (one observation per hit)."""
        now_ms = time.time() * 1000
        for timestamp in sighting_timestamps_ms:
            self.metrics.hit_latency.observe(max(0.0, now_ms - timestamp) / 1000)

    def _totals(self) -> MatchResult:
        committer = self._loop.committer
        return committer.totals if committer is not None else MatchResult()

    def families(self) -> Iterator[Any]:
        """The worker's counters as Prometheus sees them, read at scrape time."""
        totals = self._totals()
        me = ["worker"]
        yield counter("zf801_sightings", "Sightings matched against the watchlist",
                      ["processor"], [(me, totals.seen)])  # fmt: skip
        yield counter("zf801_hits", "Hits signed and routed to courts",
                      ["processor"], [(me, totals.hits)])  # fmt: skip
        yield counter("zf801_transfers_blocked", "Vehicle transfers blocked",
                      ["processor"], [(me, totals.blocked)])  # fmt: skip
        yield from stage_families("worker", self._stages)
        yield gauge("zf801_consumer_lag", "Records of an input beyond the last commit",
                    ["processor", "topic"],
                    [(["worker", topic], lag)
                     for topic, lag in [*self._intake.lag(), *self._loop.lag()]])  # fmt: skip
        deadlines = self._deadlines
        yield counter("zf801_timer_ticks", "Timer ticks that looked for clocks due",
                      ["processor"], [(me, deadlines.ticks)])  # fmt: skip
        yield counter("zf801_clock_lookups", "Tracked orders the ticks looked up: the "
                      "clocks that fell due, never every order", ["processor"],
                      [(me, deadlines.looked_up)])  # fmt: skip
        ends, acks = deadlines.pending()
        clocks = [(["worker", "control-end"], ends), (["worker", "acknowledgement"], acks)]
        yield gauge("zf801_timers_pending", "Clocks watched: control-period ends and "
                    "acknowledgement deadlines", ["processor", "clock"], clocks)  # fmt: skip

    async def log_stats(self) -> None:
        """What the worker has done so far, for the operator reading its log."""
        if self._loop.committer is None:
            return
        totals = self._totals()
        refused = sum(sum(stage.rejected.values()) for stage in self._stages.values())
        watchlist, tracking = self._watchlist, self._tracking
        log.info(
            "stats: sightings %d, candidates %d, hits %d, blocked %d, refused %d; "
            "misses verified %d (failed %d); watchlist subjects %d, orders tracked %d; "
            "state records refused %d",
            totals.seen, totals.candidates, totals.hits, totals.blocked, refused,
            totals.sampled, totals.sample_rejected,
            watchlist.count(), tracking.count(),
            watchlist.refused_total + tracking.refused_total + self.journal_refused,
        )  # fmt: skip
        if totals.misrouted:
            log.warning(
                "sightings off their key's partition: %d of %d checked; a producer places "
                "sightings with another partitioner than murmur2 of the key (they are "
                "matched all the same: moved to their key's partition when another worker "
                "holds it; %d moved so far)",
                totals.misrouted, totals.routing_checked, totals.rerouted,
            )  # fmt: skip
