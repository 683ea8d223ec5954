"""The cost of mutual TLS: publishing, matching and connecting, plaintext against mTLS.

Two single-node brokers of this run's own (a temp folder, free ports), one plaintext and
one with a TLS 1.3 listener per side, client authentication and ACLs, both fed from one
trust set (``tests.builders.trust_set``) and carrying the catalog's topics (and, under
mTLS, their ACLs). Every client is built by ``topics.clients`` as its agency. On each:

- the police publisher sends ``ZF801_BENCH_SIGHTINGS`` (default 50,000) hotel check-ins
  signed beforehand (``Publisher.send_prepared`` and a flush, ``acks=all``, idempotence),
  best of three interleaved rounds; and a tenth of them through ``Publisher.publish_all``
  (validate, sign, send, await every acknowledgement), best of three;
- BUS-MATCHER reads them with a plain aiokafka getmany loop and with the matcher (1% hit a
  watchlist of 100,000 subjects: verify, decode and sign on hit), best of three
  interleaved rounds, every hit counted;
- 20 fresh kafka-python admin clients of the police agency, alternating between the
  brokers, are timed from construction to their first metadata (median).

The last column divides the mTLS figure by the plaintext one: below 1, throughput that
TLS costs; above 1, set-up time it adds.

Both brokers are stopped at the end, whatever happens; their folder is removed on success
(kept, with the brokers' logs, on failure).
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from consumers.matcher import Matcher
from consumers.runtime import Runtime
from consumers.watchlist import WatchEntry
from ops.broker import LocalCluster
from ops.broker_config import BrokerSecurity, ClusterLayout
from ops.broker_fetch import fetch_kafka, kafka_libs_dir
from ops.deployment import Deployment, cluster_addresses
from producers.publisher import OutgoingEvent, Publisher
from schemas.envelope import KafkaRecord
from schemas.matchkey import person_match_key
from schemas.settings import Settings, get_settings
from sign.events import EventSigner
from sign.keystore import KeyStore
from sign.verify_stage import MemoryAuditSink, MemoryDeadLetterSink
from tests.bench import _bus
from tests.builders import Records, trust_set
from tests.kafka_io import free_ports
from topics import clients
from topics.catalog import bus_catalog

SIGHTINGS = int(os.environ.get("ZF801_BENCH_SIGHTINGS", "50000"))
ROUNDS = 3
CONNECTIONS = 20
HIT_SUBJECTS = 1000
HIT_EVERY = 100  # 1% of sightings hit
WATCHLIST = 100_000
PUBLISH_ALL = max(1, SIGHTINGS // 10)  # signing dominates: a tenth shows its share
_TOPIC = "sightings-person"
_SIGHTING = "cn.zf801.sightings.v1.HotelCheckIn"
_BATCH = 5000
_READ_LIMIT_S = 120.0
_PLAIN, _MTLS = "plaintext", "mTLS"

Prepared = list[tuple[str, KafkaRecord]]


@dataclass(frozen=True)
class _Broker:
    """One broker of this run and how the bus's clients reach it."""

    label: str
    cluster: LocalCluster
    settings: Settings


@dataclass(frozen=True)
class _Load:
    """The sightings every broker gets, and what the matcher needs to judge them."""

    events: list[OutgoingEvent]
    prepared: Prepared
    signer: EventSigner
    runtime: Runtime
    watch: dict[bytes, bytes]


def _clusters(home: Path, security: BrokerSecurity) -> tuple[LocalCluster, LocalCluster]:
    """A plaintext and an mTLS single node under ``home``, on six free ports."""
    checkout = get_settings()
    if not checkout.home.is_absolute():
        checkout = checkout.model_copy(update={"home": _bus.REPO_ROOT / checkout.home})
    fetch_kafka(checkout)
    ports = free_ports(6)

    def cluster(name: str, ports: list[int], security: BrokerSecurity | None) -> LocalCluster:
        layout = ClusterLayout.on_ports(
            home / name, host=checkout.broker_host, broker_ports=ports[:1],
            controller_ports=ports[1:2], police_ports=ports[2:3] or None,
            bus_ports=ports[3:4] or None, heap=checkout.broker_heap, security=security,
        )  # fmt: skip
        return LocalCluster(layout, kafka_libs_dir(checkout),
                            start_timeout_s=checkout.broker_start_timeout_s)  # fmt: skip

    return cluster("plaintext", ports[:2], None), cluster("mtls", ports[2:], security)


def _brokers(home: Path, keystore: KeyStore, stack: ExitStack) -> list[_Broker]:
    """Both brokers started (stopped by ``stack``), with the catalog's topics and ACLs."""
    common = Settings(home=home, topic_prefix=f"benchtls{uuid.uuid4().hex[:8]}-")
    mtls = common.model_copy(update={"security": "mtls", "tls_path": keystore.tls_layout.root})
    security = BrokerSecurity.from_settings(mtls)
    assert security is not None
    plain_cluster, mtls_cluster = _clusters(home, security)
    for cluster in (plain_cluster, mtls_cluster):
        stack.callback(cluster.stop)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(LocalCluster.start, (plain_cluster, mtls_cluster)))
    brokers = [
        _Broker(_PLAIN, plain_cluster, common.model_copy(
            update={"security": "plaintext", **cluster_addresses(plain_cluster)})),
        _Broker(_MTLS, mtls_cluster, mtls.model_copy(update=cluster_addresses(mtls_cluster))),
    ]  # fmt: skip
    for broker in brokers:
        Deployment.create(broker.settings).apply_topics()
    return brokers


def _load(settings: Settings, keystore: KeyStore) -> _Load:
    """SIGHTINGS check-ins, one in HIT_EVERY of a watched person, prepared once (the same
    signed bytes go to both brokers), and a watchlist with one order per watched person."""
    secret = settings.match_key_secret.get_secret_value().encode()
    people = _bus.id_numbers(HIT_SUBJECTS)
    strangers = _bus.id_numbers(SIGHTINGS, seed=100_000)
    events = []
    for n, stranger in enumerate(strangers):
        person = people[(n // HIT_EVERY) % HIT_SUBJECTS] if n % HIT_EVERY == 0 else stranger
        events.append(OutgoingEvent(_TOPIC, _SIGHTING, Records.hotel_check_in(_bus.POLICE, person),
                                    person_match_key(person, secret=secret)))  # fmt: skip
    signer = keystore.signer_for(_bus.POLICE)
    preparer = Publisher(signer, settings=settings)
    prepared = [preparer.prepare(event) for event in events]
    filler = _bus.filler_entry()
    watch = {os.urandom(32): filler for _ in range(WATCHLIST - HIT_SUBJECTS)}
    for person in people:
        order = _bus.active_order(str(uuid.uuid4()))
        watch[person_match_key(person, secret=secret)] = (
            WatchEntry.empty().with_order(order).to_bytes()
        )
    runtime = Runtime.from_keystore(_bus.MATCHER, MemoryDeadLetterSink(), MemoryAuditSink(),
                                    settings=settings, keystore=keystore)  # fmt: skip
    return _Load(events, prepared, signer, runtime, watch)


def _publisher(broker: _Broker, load: _Load) -> Publisher:
    """The police publisher on ``broker``, connected before any clock starts."""
    publisher = Publisher(load.signer, settings=broker.settings)
    publisher.producer.partitions_for(publisher.catalog.topic_name(_TOPIC))
    return publisher


def _send_prepared(broker: _Broker, load: _Load) -> float:
    with _publisher(broker, load) as police:
        started = time.perf_counter()
        police.send_prepared(load.prepared)
        police.flush()
        return time.perf_counter() - started


def _publish_all(broker: _Broker, load: _Load) -> float:
    with _publisher(broker, load) as police:
        started = time.perf_counter()
        published = police.publish_all(load.events[:PUBLISH_ALL])
        seconds = time.perf_counter() - started
    if len(published) != PUBLISH_ALL:
        raise RuntimeError(f"{broker.label}: {len(published)} of {PUBLISH_ALL} acknowledged")
    return seconds


async def _read(broker: _Broker, on_batch: Callable[[list[Any]], None]) -> float:
    """Seconds for BUS-MATCHER to read SIGHTINGS records of the topic from its beginning,
    handing each batch to ``on_batch``."""
    topic = bus_catalog(broker.settings).topic_name(_TOPIC)
    partitions = clients.require_topics(broker.settings, _bus.MATCHER, [topic], "read")[topic]
    consumer = clients.aio_consumer(
        broker.settings, _bus.MATCHER, group_id=None, enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024, client_id="zf801-bench-tls",
    )  # fmt: skip
    await consumer.start()
    try:
        assignment = [TopicPartition(topic, partition) for partition in partitions]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        seen, started = 0, time.perf_counter()
        while seen < SIGHTINGS:
            if time.perf_counter() - started > _READ_LIMIT_S:
                raise RuntimeError(f"{broker.label}: only {seen} of {SIGHTINGS} records arrived")
            batch = await consumer.getmany(timeout_ms=1000, max_records=_BATCH)
            records = [message for messages in batch.values() for message in messages]
            seen += len(records)
            on_batch(records)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def _plain_loop(broker: _Broker, load: _Load) -> float:
    return asyncio.run(_read(broker, lambda records: None))


def _matcher_loop(broker: _Broker, load: _Load) -> float:
    runtime, get = load.runtime, load.watch.get

    def lookup(key: bytes) -> WatchEntry | None:
        raw = get(key)
        return WatchEntry.from_bytes(raw) if raw else None

    matcher = Matcher(lookup, runtime.verify_stage(), runtime.refuse, runtime.signer,
                      runtime.catalog, codec=runtime.codec, verify_misses_every=0)  # fmt: skip
    hits = 0

    def match(records: list[Any]) -> None:
        nonlocal hits
        hits += matcher.process(records).hits

    seconds = asyncio.run(_read(broker, match))
    expected = math.ceil(SIGHTINGS / HIT_EVERY)
    if hits != expected:
        raise RuntimeError(f"{broker.label}: the matcher found {hits} hits, not {expected}")
    return seconds


def _best(
    brokers: Sequence[_Broker],
    load: _Load,
    measure: Callable[[_Broker, _Load], float],
    rounds: int = ROUNDS,
) -> dict[str, float]:
    """The shortest of ``rounds`` measurements per broker, the brokers taking turns."""
    best = {broker.label: math.inf for broker in brokers}
    for _ in range(rounds):
        for broker in brokers:
            best[broker.label] = min(best[broker.label], measure(broker, load))
    return best


def _connect_ms(brokers: Sequence[_Broker]) -> tuple[dict[str, float], float]:
    """Median ms from a police admin client's construction to its first metadata, per
    broker (taking turns); and the median ms of building the police TLS context alone."""
    times: dict[str, list[float]] = {broker.label: [] for broker in brokers}
    contexts = []
    for n in range(CONNECTIONS):
        for broker in brokers:
            started = time.perf_counter()
            admin = clients.kafka_admin(broker.settings, _bus.POLICE,
                                        client_id=f"zf801-bench-connect-{n}")  # fmt: skip
            times[broker.label].append(time.perf_counter() - started)
            admin.close()
            if broker.settings.security == "mtls":
                started = time.perf_counter()
                clients.ssl_context(broker.settings, _bus.POLICE)
                contexts.append(time.perf_counter() - started)
    medians = {label: 1000 * statistics.median(values) for label, values in times.items()}
    return medians, 1000 * statistics.median(contexts)


def _row(measure: str, unit: str, figures: Mapping[str, float], digits: int) -> dict[str, object]:
    plain, mtls = figures[_PLAIN], figures[_MTLS]
    return {
        "measure": measure,
        "unit": unit,
        _PLAIN: f"{plain:,.{digits}f}",
        _MTLS: f"{mtls:,.{digits}f}",
        "mTLS / plaintext": f"{mtls / plain:.2f}",
    }


def _rate(seconds: Mapping[str, float], records: int = SIGHTINGS) -> dict[str, float]:
    return {label: records / value for label, value in seconds.items()}


def _measure(brokers: Sequence[_Broker], load: _Load) -> list[dict[str, object]]:
    # The first round fills each topic with exactly SIGHTINGS records for the readers.
    sent = {broker.label: _send_prepared(broker, load) for broker in brokers}
    plain = _best(brokers, load, _plain_loop)
    matched = _best(brokers, load, _matcher_loop)
    sent = {label: min(sent[label], more) for label, more in
            _best(brokers, load, _send_prepared, ROUNDS - 1).items()}  # fmt: skip
    published = _best(brokers, load, _publish_all)
    connect, context = _connect_ms(brokers)
    n, best = f"{SIGHTINGS:,}", f"best of {ROUNDS}"
    return [
        _row(f"Publisher.send_prepared + flush, {n} signed sightings, {best}", "msg/s",
             _rate(sent), 0),
        _row(f"Publisher.publish_all: validate, sign, send, acks; {PUBLISH_ALL:,} sightings, "
             f"{best}", "msg/s", _rate(published, PUBLISH_ALL), 0),
        _row(f"plain aiokafka getmany loop as {_bus.MATCHER}, {best}", "msg/s", _rate(plain), 0),
        _row(f"matcher: lookup; verify, decode, sign on hit ({WATCHLIST:,} subjects, "
             f"{math.ceil(SIGHTINGS / HIT_EVERY)} hits), {best}", "msg/s", _rate(matched), 0),
        _row(f"connection set-up: kafka-python admin of {_bus.POLICE} to first metadata, "
             f"median of {CONNECTIONS}", "ms", connect, 1),
        {"measure": "  of which building the TLS context (chain, encrypted key, brokers' CA)",
         "unit": "ms", _PLAIN: "-", _MTLS: f"{context:.1f}", "mTLS / plaintext": "-"},
    ]  # fmt: skip


def run() -> list[dict[str, object]]:
    home = Path(tempfile.mkdtemp(prefix="zf801-bench-tls-"))
    keystore = trust_set(home)
    with ExitStack() as stack:
        brokers = _brokers(home, keystore, stack)
        rows = _measure(brokers, _load(brokers[0].settings, keystore))
    shutil.rmtree(home, ignore_errors=True)
    return rows
