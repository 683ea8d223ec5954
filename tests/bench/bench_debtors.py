"""The dishonest-debtor list at a subscriber: snapshot into a mirror, lookups, removals.

``ZF801_BENCH_DEBTORS`` (default 100,000) signed listings of distinct persons are published
by a court to the real broker; then, in the same run:

- **snapshot**: a fresh subscriber (``consumers.debtor_subscriber``) reads the whole list
  into its SQLite mirror, verifying and checking every record; time, records/s, the
  mirror's size on disk and the process's peak RSS, next to a raw kafka-python loop
  reading the same records (no verify, no store): the ratio says what verify-before-act
  and the mirror cost;
- **is_listed**: lookups per second by ID number (half listed), next to a raw SQLite
  primary-key select of a precomputed key (the ratio is the HMAC and the normalisation);
- **removal propagation**: ``ZF801_BENCH_REMOVALS`` (default 200) removals published one by
  one while the subscriber follows; from the court's publish call to the mirror answering
  "not listed", p50 and p99.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import resource
import statistics
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

from consumers.debtor_mirror import DebtorMirror
from consumers.debtor_subscriber import DebtorSubscriber
from consumers.runtime import Runtime
from producers.publisher import Publisher
from producers.routes import outgoing_event
from schemas.matchkey import MatchKeyer
from sign.keystore import KeyStore
from tests.bench import _bus
from topics import clients

LISTINGS = int(os.environ.get("ZF801_BENCH_DEBTORS", "100000"))
REMOVALS = int(os.environ.get("ZF801_BENCH_REMOVALS", "200"))
SUBSCRIBER = "SUB-RAIL12306"
_LOOKUPS = 100_000
_LISTING = "cn.zf801.court.v1.DishonestDebtorListing"
_REMOVAL = "cn.zf801.court.v1.DishonestDebtorRemoval"


def _listing(id_number: str) -> dict[str, Any]:
    return {
        "listing_id": str(uuid.uuid4()),
        "case_number": "（2025）京01执123号",
        "filing_date": dt.date(2025, 3, 1),
        "enforcing_court_code": _bus.COURT,
        "debtor": {"kind": "NATURAL_PERSON", "name": "张三", "id_number": id_number,
                   "organisation_code": None},
        "enforcement_status": "IN_PROGRESS",
        "amount_applied_for": Decimal("120000.00"),
        "dishonest_conduct": ["REFUSES_DESPITE_ABILITY"],
        "published_at": dt.datetime.now(dt.UTC),
    }  # fmt: skip


def _publish_list(publisher: Publisher, people: list[str]) -> list[dict[str, Any]]:
    """Publish a listing per person in chunks (nothing held beyond a chunk's records);
    return the first ``REMOVALS`` listings."""
    listings = []
    for start in range(0, len(people), 5_000):
        chunk = [_listing(p) for p in people[start : start + 5_000]]
        publisher.send_prepared(publisher.prepare(outgoing_event(_LISTING, r)) for r in chunk)
        kept = chunk[: max(0, REMOVALS - len(listings))]  # the removals' listings only
        listings.extend({"listing_id": r["listing_id"], "debtor": r["debtor"]} for r in kept)
    publisher.flush()
    return listings


def _raw_read(settings: Any, topic: str) -> float:
    consumer = clients.kafka_reader(settings, SUBSCRIBER, topic, max_poll_records=2000)
    seen, started = 0, time.perf_counter()
    try:
        while seen < LISTINGS:
            for records in consumer.poll(timeout_ms=500).values():
                seen += len(records)
    finally:
        consumer.close()
    return LISTINGS / (time.perf_counter() - started)


def _snapshot(follower: DebtorSubscriber) -> float:
    consumer = follower.consumer()
    done = threading.Event()
    started = time.perf_counter()

    def on_batch(_: Any) -> None:
        if follower.counts["read"] >= LISTINGS:
            done.set()

    follower.run(done.is_set, on_batch=on_batch, consumer=consumer)
    return time.perf_counter() - started


def _lookups(mirror: DebtorMirror, people: list[str], keyer: MatchKeyer) -> tuple[float, float]:
    rng = random.Random(7)
    others = _bus.id_numbers(_LOOKUPS // 2, seed=10_000_000)
    asked = [rng.choice(people) for _ in range(_LOOKUPS // 2)] + others
    rng.shuffle(asked)
    started = time.perf_counter()
    hits = sum(mirror.is_listed(i) for i in asked)
    api = _LOOKUPS / (time.perf_counter() - started)
    assert hits == _LOOKUPS // 2, hits
    keys = [keyer.person(i) for i in asked]
    started = time.perf_counter()
    for key in keys:
        mirror.is_key_listed(key)
    return api, _LOOKUPS / (time.perf_counter() - started)


def _propagation(publisher: Publisher, follower: DebtorSubscriber,
                 listings: list[dict[str, Any]]) -> list[float]:  # fmt: skip
    stop = threading.Event()
    thread = threading.Thread(target=follower.run, args=(stop.is_set,), daemon=True)
    thread.start()
    watcher = DebtorMirror(follower.mirror.path)
    latencies = []
    try:
        for listing in listings[:REMOVALS]:
            removal = {"listing_id": listing["listing_id"], "case_number": "（2025）京01执123号",
                       "enforcing_court_code": _bus.COURT, "debtor": listing["debtor"],
                       "reason": "PERFORMED", "removed_at": dt.datetime.now(dt.UTC)}  # fmt: skip
            started = time.perf_counter()
            publisher.publish(outgoing_event(_REMOVAL, removal))
            while watcher.is_listed(listing["debtor"]["id_number"]):
                time.sleep(0.0005)
            latencies.append(time.perf_counter() - started)
    finally:
        stop.set()
        thread.join(timeout=30)
        watcher.close()
    return latencies


def run() -> list[dict[str, object]]:
    settings = _bus.bench_settings(_bus.kafka_settings())
    catalog = _bus.prepare(settings, (_bus.COURT, SUBSCRIBER))
    signer = KeyStore.from_settings(settings).signer_for(_bus.COURT)
    publisher = Publisher(signer, catalog=catalog, settings=settings,
                          producer_options={"linger_ms": 20, "batch_size": 512 * 1024})  # fmt: skip
    people = _bus.id_numbers(LISTINGS)
    listings = _publish_list(publisher, people)
    raw = _raw_read(settings, catalog.topic_name("dishonest-debtors"))
    runtime = Runtime.connect(SUBSCRIBER, settings)
    path = settings.home / "mirror.sqlite"
    keyer = MatchKeyer(settings.match_key_secret.get_secret_value().encode())
    try:
        mirror = DebtorMirror(path, keyer=keyer, create=True)
        follower = DebtorSubscriber(runtime, mirror, keyer=keyer)
        seconds = _snapshot(follower)
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        size_mib = sum(p.stat().st_size for p in path.parent.glob("mirror.sqlite*")) / 2**20
        assert follower.mirror.count() == LISTINGS, follower.counts
        api, raw_lookup = _lookups(follower.mirror, people, keyer)
        latencies = sorted(_propagation(publisher, follower, listings))
        follower.close()
    finally:
        runtime.close()
        publisher.close()
    rate = LISTINGS / seconds
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    return [
        {"loop": "raw kafka-python read of the list", "count": LISTINGS,
         "per second": f"{raw:,.0f}", "ratio to raw": "1.00", "figures": ""},
        {"loop": "snapshot into the mirror (verify, check, SQLite)", "count": LISTINGS,
         "per second": f"{rate:,.0f}", "ratio to raw": f"{rate / raw:.2f}",
         "figures": f"{seconds:.1f} s, {size_mib:.0f} MiB on disk, peak RSS {peak_mib:.0f} MiB"},
        {"loop": "raw SQLite key select", "count": _LOOKUPS,
         "per second": f"{raw_lookup:,.0f}", "ratio to raw": "1.00", "figures": ""},
        {"loop": "is_listed(id_number)", "count": _LOOKUPS, "per second": f"{api:,.0f}",
         "ratio to raw": f"{api / raw_lookup:.2f}", "figures": f"{1e6 / api:.1f} µs each"},
        {"loop": "removal: publish -> not listed", "count": len(latencies), "per second": "",
         "ratio to raw": "",
         "figures": f"p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"},
    ]  # fmt: skip
