"""What the broker benchmarks share: a real broker (reached as the tests reach it: per side,
with the TLS material under ``ZF801_SECURITY=mtls``), an isolated catalog with its topics
and ACLs, a key store of the agencies a benchmark signs for, and a watchlist filled in bulk."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from aiokafka import TopicPartition

from consumers.tracking import LOOKED_BACK, OrderTrack
from consumers.watchlist import ActiveOrder, OrderKind, WatchEntry
from ops.deployment import Deployment
from schemas.envelope import to_micros
from schemas.identifiers import id_number_check_char
from schemas.matchkey import person_match_key
from schemas.settings import Settings, get_settings
from sign.state_seal import StateSealer
from tests.builders import trust_set
from topics.catalog import Catalog
from topics.clients import aio_consumer, aio_producer
from topics.partitioning import KeyPartitions

REPO_ROOT = Path(__file__).resolve().parents[2]
COURT = "BJ01"
POLICE = "110000000000"
MATCHER = "BUS-MATCHER"


def kafka_settings() -> Settings:
    """How the benchmarks reach a real broker: KAFKA_BOOTSTRAP_SERVERS if set (plaintext),
    else the checkout's local broker, started if need be; under ``ZF801_SECURITY=mtls`` its
    TLS material (and every client's) from the checkout's key store, created if missing."""
    settings = get_settings()
    if not settings.home.is_absolute():
        settings = settings.model_copy(update={"home": REPO_ROOT / settings.home})
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or os.environ.get(
        "ZF801_BOOTSTRAP_SERVERS"
    )
    if configured:
        plain = {"security": "plaintext", "bootstrap_servers": configured}
        return settings.model_copy(update=plain)
    local = Deployment.create(settings)
    if settings.security == "mtls":
        local.ensure_keys(dt.datetime.now(dt.UTC))  # before the broker: its identity is there
    local.start_broker()
    return local.settings.model_copy(update={"tls_path": settings.tls_dir.resolve()})


def bench_settings(base: Settings, **overrides: object) -> Settings:
    """``base`` for an isolated bus: a temporary home and a topic prefix of its own."""
    home = Path(tempfile.mkdtemp(prefix="zf801-bench-"))
    return base.model_copy(
        update={"home": home, "topic_prefix": f"bench{uuid.uuid4().hex[:8]}-", **overrides}
    )


def prepare(settings: Settings, agencies: Iterable[str] = (COURT, POLICE, MATCHER)) -> Catalog:
    """Create the key store (for ``agencies``) and the catalog's topics, with their ACLs
    under mTLS; return the catalog."""
    trust_set(settings.home, agencies)
    bus = Deployment.create(settings)
    bus.apply_topics()
    return bus.catalog


def id_numbers(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct valid citizen ID numbers (Beijing Chaoyang, born 1960-2010)."""
    out = []
    birth0 = dt.date(1960, 1, 1)
    for n in range(seed, seed + count):
        birth = birth0 + dt.timedelta(days=n % 18000)
        first17 = f"110105{birth:%Y%m%d}{n // 18000 % 1000:03d}"
        out.append(first17 + id_number_check_char(first17))
    return out


def active_order(order_id: str, kind: OrderKind = OrderKind.LOCATE_DEBTOR) -> ActiveOrder:
    now = dt.datetime.now(dt.UTC)
    micros = int(now.timestamp() * 1_000_000)
    day = 86_400_000_000
    return ActiveOrder(
        order_id=order_id,
        kind=kind,
        court_code=COURT,
        case_number="（2026）京01执1号",
        handler_name="王法官",
        handler_phone="13900139000",
        action_required="发现后立即通知承办人",
        start_us=micros - day,
        end_us=micros + 30 * day,
        issued_at_us=micros,
    )


def filler_entry() -> bytes:
    """A typical stored watchlist entry (one order), as the worker's table holds it."""
    return WatchEntry.empty().with_order(active_order(str(uuid.uuid4()))).to_bytes()


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def as_json(data: object) -> str:
    return json.dumps(data, ensure_ascii=False)


async def fill_tracked_orders(
    bus: Deployment, people: list[str], *, acknowledged: bool = True, ack_due_s: int = 300
) -> None:
    """An order on each person (order ids ``UUID(int=n + 1)``, in order), written straight
    to the worker's changelogs as the worker itself would have written them after taking
    those orders in: its watchlist entry and its tracking (looked back; acknowledged
    RECEIVED, or with ``acknowledged=False`` awaiting an acknowledgement due in
    ``ack_due_s``), sealed with the worker's state secret, on the partitions the worker
    computes."""
    catalog, settings = bus.catalog, bus.settings
    sealer = StateSealer(bus.keystore.state_secret(MATCHER))
    secret = settings.match_key_secret.get_secret_value().encode()
    now_us = to_micros(dt.datetime.now(dt.UTC))
    tables = {}
    for topic_id in ("watchlist-changelog", "order-tracking-changelog"):
        spec = catalog.get(topic_id)
        assert spec.changelog_of is not None
        store = f"{spec.changelog_of.application}/{spec.changelog_of.table}"
        tables[topic_id] = (spec.name, store, KeyPartitions(spec.partitions))
    producer = aio_producer(settings, MATCHER, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        pending = []
        for n, person in enumerate(people):
            order_id = str(uuid.UUID(int=n + 1))
            key = person_match_key(person, secret=secret)
            order = active_order(order_id).with_keys([key])
            track = OrderTrack(
                OrderKind.LOCATE_DEBTOR, COURT, order.issued_at_us,
                order.issued_at_us + ack_due_s * 1_000_000, (key,), end_us=order.end_us,
                case_number=order.case_number, status="RECEIVED" if acknowledged else None,
                noticed=frozenset({LOOKED_BACK}),  # as the worker records after its look-back
            )  # fmt: skip
            for topic_id, record_key, payload in (
                ("watchlist-changelog", key, WatchEntry.empty().with_order(order).to_bytes()),
                ("order-tracking-changelog", order_id.encode(), track.to_bytes()),
            ):
                topic, store, partition_of = tables[topic_id]
                value = sealer.seal(store, record_key, payload, now_us)
                pending.append(await producer.send(
                    topic, key=record_key, value=value, partition=partition_of(record_key)
                ))  # fmt: skip
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def plain_read(
    settings: Settings, topic: str, count: int, start: Mapping[int, int] | None = None
) -> float:
    """Records per second of a plain aiokafka read of ``count`` records of ``topic`` (six
    partitions) from ``start`` (offset per partition; the beginning when None): the floor
    the broker and the client alone set, against which a processor is measured."""
    consumer = aio_consumer(settings, MATCHER, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(6)]
        consumer.assign(partitions)
        if start is None:
            await consumer.seek_to_beginning(*partitions)
        else:
            for tp in partitions:
                consumer.seek(tp, start[tp.partition])
        started, got = time.perf_counter(), 0
        while got < count:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            got += sum(len(messages) for messages in batch.values())
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()
