"""The watchlist store's reads, in process: what a miss and a hit cost the matcher.

``ZF801_BENCH_STORE_KEYS`` watched keys (default 1,000,000) are written to the worker's
RocksDB store (:class:`consumers.sealed_table.SealedRocksStore`, a real faust table on
real files in a temporary folder) and to a plain dict of the same sealed values, the
in-memory store's layout. Then 200,000 misses (random keys) and 200,000 hits are looked
up through each: the dict, the RocksDB store behind its key index (the worker's path),
and the RocksDB store without the index. Best of 5 rounds. The key index's memory per
key is measured with tracemalloc while it is built.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time
import tracemalloc
from collections.abc import Callable

import faust

from consumers.sealed_table import SealedRocksStore, SealedTable
from sign.state_seal import StateSealer
from tests.bench import _bus

KEYS = int(os.environ.get("ZF801_BENCH_STORE_KEYS", "1000000"))
LOOKUPS = 200_000
_ROUNDS = 5


def _store(datadir: str) -> SealedRocksStore:
    app = faust.App("zf801-matcher", broker="kafka://127.0.0.1:1", store="rocksdb://",
                    datadir=datadir)  # fmt: skip
    table = SealedTable(
        app, sealer=StateSealer(b"b" * 32), name="watchlist", partitions=6,
        source_topic="updates", key_type=bytes, value_type=bytes, indexed=True,
    )  # fmt: skip
    store = table.sealed_store
    assert isinstance(store, SealedRocksStore)
    return store


def _ns_per_lookup(read: Callable[[bytes], bytes | None], keys: list[bytes]) -> float:
    best = float("inf")
    for _ in range(_ROUNDS):
        started = time.perf_counter()
        for key in keys:
            read(key)
        best = min(best, time.perf_counter() - started)
    return best / len(keys) * 1e9


def run() -> list[dict[str, object]]:
    entry = _bus.filler_entry()
    sealer = StateSealer(b"b" * 32)
    watched = [secrets.token_bytes(32) for _ in range(KEYS)]
    with tempfile.TemporaryDirectory(prefix="zf801-bench-store-") as datadir:
        store = _store(datadir)
        plain: dict[bytes, bytes] = {}
        for key in watched:
            sealed = sealer.seal("zf801-matcher/watchlist", key, entry, 1)
            store.write(key, sealed)
            plain[key] = sealed
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        asyncio.run(store.on_recovery_completed(set(), set()))  # builds the key index
        index_bytes = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        misses = [secrets.token_bytes(32) for _ in range(LOOKUPS)]
        hits = [watched[n * (KEYS // LOOKUPS or 1) % KEYS] for n in range(LOOKUPS)]
        rows = []
        for path, read in (
            ("dict (the memory store's layout)", plain.get),
            ("RocksDB behind the key index (the worker's path)", store.lookup),
            ("RocksDB, no index", store.raw),
        ):
            rows.append({
                "read": path, "keys": f"{KEYS:,}",
                "miss (ns)": f"{_ns_per_lookup(read, misses):,.0f}",
                "hit (ns)": f"{_ns_per_lookup(read, hits):,.0f}",
            })  # fmt: skip
        rows.append({
            "read": f"key index: {index_bytes / KEYS:.0f} bytes per key in memory",
            "keys": f"{KEYS:,}",
        })  # fmt: skip
        store._dbs.clear()
    return rows
