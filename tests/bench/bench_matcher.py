"""Matcher throughput against a large watchlist, next to a plain aiokafka consume loop.

Both loops read the same topic of signed sightings from the real broker in the same run:
the plain loop only counts records; the matcher loop looks every record's key up in a
watchlist of ``ZF801_BENCH_SUBJECTS`` subjects (default 1,000,000), and verifies, decodes
and turns into signed hits the 1% that hit; the last loop also commits each batch's hits
and offsets in a Kafka transaction, as the worker does. The watchlist is filled directly
(as the worker's table holds it after recovery), so its memory per subject is measured
too. ``ZF801_BENCH_LARGE=1`` adds a 10,000,000-subject watchlist.

Sampled misses: the matcher again at ``verify_misses_every`` = 0 (never), 1000 and 100,
each verifying one miss in N in full with a sample stage of its own, interleaved with a
plain loop, best of three rounds (the ratios are against that plain loop). Every
miss is a genuinely signed sighting (its own event id, signed over its own key), so a
sampled miss costs what a good one costs: signature, envelope, decode, replay guard.
One run (2 cores Xeon 2.5 GHz, 1,000,000 subjects): 0.57 of the plain loop at 0 and at
1000 (the difference is below the noise), 0.51 at 100; ~190 µs per verified miss, so the
default of 1000 adds ~0.2 µs per sighting.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import os
import pstats
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition

from consumers.history_loop import HistoryForwarder
from consumers.matcher import Matcher, MatchResult
from consumers.runtime import Runtime
from consumers.sighting_history import SightingHistory
from consumers.sighting_loop import BatchCommitter
from consumers.watchlist import WatchEntry
from producers.publisher import OutgoingEvent, Publisher
from schemas.agencies import load_agencies
from schemas.headers import CE_ID, SIGNATURE_HEADERS
from schemas.matchkey import person_match_key
from schemas.settings import Settings
from sign.events import EventSigner
from sign.keystore import KeyStore
from sign.verify_stage import MemoryAuditSink, MemoryDeadLetterSink
from tests.bench import _bus
from tests.builders import Records
from topics.acls import processor_application
from topics.clients import aio_consumer, aio_producer

SIGHTINGS = int(os.environ.get("ZF801_BENCH_SIGHTINGS", "200000"))
SUBJECTS = int(os.environ.get("ZF801_BENCH_SUBJECTS", "1000000"))
HIT_SUBJECTS = 1000
HIT_EVERY = 100  # 1% of sightings hit
SAMPLE_EVERY = (0, 1000, 100)  # verify_misses_every of the sampled-misses rows
SAMPLE_ROUNDS = 3
BATCH = 5000
_PARTITIONS = 6  # the catalog's sightings-person (co-partitioned with the watchlist)


_sighting = Records.hotel_check_in


def _signed_miss(signer: EventSigner, template: Any) -> tuple[bytes, bytes, list[Any]]:
    """The template sighting under a random key and an event id of its own, signed: a
    miss that verifies, and that no replay guard takes for a copy of another."""
    key = os.urandom(32)
    unsigned = [
        (name, str(uuid.uuid4()).encode() if name == CE_ID else value)
        for name, value in template.headers
        if name not in SIGNATURE_HEADERS
    ]
    return key, template.value, signer.sign(key, template.value, unsigned)


def _watchlist(subjects: int, hit_keys: list[bytes]) -> tuple[dict[bytes, bytes], float]:
    """A watchlist of ``subjects`` entries (each a distinct bytes value), and its bytes
    per subject as measured by the process's resident memory."""
    gc.collect()
    before = _bus.rss_bytes()
    filler = _bus.filler_entry()
    watch: dict[bytes, bytes] = {}
    for key in hit_keys:
        watch[key] = WatchEntry.empty().with_order(_bus.active_order(str(uuid.uuid4()))).to_bytes()
    for n in range(subjects - len(hit_keys)):
        watch[os.urandom(32)] = filler[:-2] + n.to_bytes(4, "little").hex()[:2].encode()
    gc.collect()
    return watch, (_bus.rss_bytes() - before) / subjects


async def _produce(settings: Settings, topic: str, records: list[tuple[bytes, bytes, Any]]) -> None:
    # The police unit's connection, tuned for bulk loading rather than the bus's guarantees.
    producer = aio_producer(
        settings, _bus.POLICE, linger_ms=20, max_batch_size=512 * 1024, acks=1,
        enable_idempotence=False,
    )  # fmt: skip
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=key, value=value, headers=headers)
            for key, value, headers in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _consume(
    settings: Settings, topic: str, on_batch: Callable[[dict[Any, list[Any]]], Any]
) -> float:
    consumer = aio_consumer(
        settings, _bus.MATCHER, group_id=None, enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )  # fmt: skip
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(_PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen, started = 0, time.perf_counter()
        while seen < SIGHTINGS:
            batch = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
            seen += sum(len(messages) for messages in batch.values())
            result = on_batch(batch)
            if asyncio.iscoroutine(result):
                await result
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def _setup() -> tuple[Any, ...]:
    settings = _bus.bench_settings(_bus.kafka_settings())
    catalog = _bus.prepare(settings)
    keystore = KeyStore.from_settings(settings)
    runtime = Runtime.from_keystore(
        _bus.MATCHER, MemoryDeadLetterSink(), MemoryAuditSink(), settings=settings,
        keystore=keystore,
    )  # fmt: skip
    people = _bus.id_numbers(HIT_SUBJECTS)
    secret = settings.match_key_secret.get_secret_value().encode()
    hit_keys = [person_match_key(p, secret=secret) for p in people]
    police_signer = keystore.signer_for(_bus.POLICE)
    police = Publisher(police_signer, catalog=catalog, settings=settings)
    topic = catalog.topic_name("sightings-person")
    _, template = police.prepare(
        OutgoingEvent("sightings-person", "cn.zf801.sightings.v1.HotelCheckIn",
                      _sighting(_bus.POLICE, people[0]), hit_keys[0])
    )  # fmt: skip
    records = []
    for n in range(SIGHTINGS):
        if n % HIT_EVERY == 0:
            who = (n // HIT_EVERY) % HIT_SUBJECTS
            _, signed = police.prepare(
                OutgoingEvent("sightings-person", "cn.zf801.sightings.v1.HotelCheckIn",
                              _sighting(_bus.POLICE, people[who]), hit_keys[who])
            )  # fmt: skip
            records.append((hit_keys[who], signed.value, list(signed.headers)))
        else:
            records.append(_signed_miss(police_signer, template))
    asyncio.run(_produce(settings, topic, records))
    return settings, catalog, runtime, hit_keys, topic


def _matcher(
    runtime: Runtime, catalog: Any, watch: dict[bytes, bytes], verify_misses_every: int = 0
) -> Matcher:
    get = watch.get

    def lookup(key: bytes) -> WatchEntry | None:
        raw = get(key)
        return WatchEntry.from_bytes(raw) if raw else None

    return Matcher(
        lookup, runtime.verify_stage(), runtime.refuse, runtime.signer, catalog,
        codec=runtime.codec, verify_misses_every=verify_misses_every,
        sample_stage=runtime.verify_stage() if verify_misses_every else None,
    )  # fmt: skip


def _sampled_rows(
    setup: tuple[Any, ...], watch: dict[bytes, bytes], subjects: int
) -> list[dict[str, object]]:
    """The matcher at each of SAMPLE_EVERY and a plain loop, interleaved, SAMPLE_ROUNDS
    rounds, the best of each: drift and other load hit every setting alike."""
    settings, catalog, runtime, _, topic = setup
    best = {every: float("inf") for every in (None, *SAMPLE_EVERY)}  # None: plain loop
    totals = {every: MatchResult() for every in SAMPLE_EVERY}
    for _ in range(SAMPLE_ROUNDS):
        best[None] = min(best[None], asyncio.run(_consume(settings, topic, lambda b: None)))
        for every in SAMPLE_EVERY:
            matcher, total = _matcher(runtime, catalog, watch, every), MatchResult()

            def match(
                batch: dict[Any, list[Any]], matcher: Matcher = matcher, total: MatchResult = total
            ) -> None:
                result = matcher.process([m for ms in batch.values() for m in ms])
                total.hits += result.hits
                total.sampled += result.sampled
                total.sample_rejected += result.sample_rejected

            best[every] = min(best[every], asyncio.run(_consume(settings, topic, match)))
            totals[every] = total
    plain = best[None]
    rows = [_row(f"plain loop, best of {SAMPLE_ROUNDS} interleaved with:", plain, plain, 0)]
    for every in SAMPLE_EVERY:
        total = totals[every]
        label = f"  matcher, verify_misses_every={every}" + (" (never)" if not every else "")
        rows.append(_row(label, best[every], plain, subjects, hits=total.hits,
                         **{"misses verified": total.sampled,
                            "refused": total.sample_rejected}))  # fmt: skip
    return rows


def _row(
    loop: str, seconds: float, plain: float, subjects: int, **extra: object
) -> dict[str, object]:
    return {
        "loop": loop,
        "subjects": f"{subjects:,}",
        "sightings": f"{SIGHTINGS:,}",
        "msg/s": f"{SIGHTINGS / seconds:,.0f}",
        "ratio to plain": f"{plain / seconds:.2f}",
        **extra,
    }


def _profile_rows(profile: cProfile.Profile) -> list[dict[str, object]]:
    stats = pstats.Stats(profile)
    total = sum(entry[2] for entry in stats.stats.values())  # type: ignore[attr-defined]
    top = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:8]  # type: ignore[attr-defined]
    return [
        {"loop": f"  profile, matcher loop: {100 * entry[2] / total:.1f}% own time in",
         "function": f"{func[2]} ({os.path.basename(func[0])}:{func[1]})"}
        for func, entry in top
    ]  # fmt: skip


def _measure(setup: tuple[Any, ...], subjects: int) -> list[dict[str, object]]:
    settings, catalog, runtime, hit_keys, topic = setup
    watch, per_subject = _watchlist(subjects, hit_keys)
    plain = asyncio.run(_consume(settings, topic, lambda batch: None))
    rows = [_row("plain aiokafka getmany loop", plain, plain, 0)]

    matcher = _matcher(runtime, catalog, watch)
    hits = 0

    def match(batch: dict[Any, list[Any]]) -> None:
        nonlocal hits
        hits += matcher.process([m for ms in batch.values() for m in ms]).hits

    profile = cProfile.Profile()
    seconds = asyncio.run(_consume(settings, topic, match))
    rows.append(_row("matcher: lookup; verify, decode, sign on hit", seconds, plain, subjects,
                     hits=hits, **{"bytes/subject": f"{per_subject:.0f}"}))  # fmt: skip

    async def committed() -> float:
        # Transactional id and group under the processors' application id, as the worker's
        # (the prefixes the matcher's ACLs give it under mTLS).
        app = processor_application(catalog)
        producer = aio_producer(
            settings, _bus.MATCHER, transactional_id=f"{app}-bench-{uuid.uuid4().hex[:8]}",
            linger_ms=2,
        )  # fmt: skip
        await producer.start()
        try:
            committer = BatchCommitter(
                _matcher(runtime, catalog, watch), producer, f"{app}-bench-{uuid.uuid4().hex[:8]}"
            )
            return await _consume(settings, topic, committer.process)
        finally:
            await producer.stop()

    seconds = asyncio.run(committed())
    rows.append(_row("matcher + hits and offsets in one transaction per batch", seconds,
                     plain, subjects))  # fmt: skip
    seconds = asyncio.run(_forwarded(settings, catalog, runtime, topic))
    rows.append(_row("sightings history forwarder (its own loop)", seconds, plain, 0))
    rows.extend(_sampled_rows(setup, watch, subjects))
    matcher = _matcher(runtime, catalog, watch)
    profile.enable()
    asyncio.run(_consume(settings, topic, match))
    profile.disable()
    rows.extend(_profile_rows(profile))
    watch.clear()
    gc.collect()
    return rows


async def _forwarded(settings: Settings, catalog: Any, runtime: Runtime, topic: str) -> float:
    """The worker's history forwarder over the same sightings. Every one is a police unit's
    hotel check-in, so every one is copied: the worst case (check-ins and crossings are a
    share of the sightings)."""
    history = SightingHistory(catalog, load_agencies())
    forwarder = HistoryForwarder(runtime, topic, history.forward, history.topics(), "unused")
    producer = aio_producer(settings, _bus.MATCHER, linger_ms=20)
    await producer.start()
    try:
        seconds = await _consume(settings, topic, lambda batch: forwarder.forward_batch(
            producer, [m for ms in batch.values() for m in ms]))  # fmt: skip
    finally:
        await producer.stop()
    assert forwarder.forwarded == SIGHTINGS, forwarder.forwarded
    return seconds


def run() -> list[dict[str, object]]:
    setup = _setup()
    rows = _measure(setup, SUBJECTS)
    if os.environ.get("ZF801_BENCH_LARGE") == "1":
        rows.extend(_measure(setup, 10_000_000))
    return rows
