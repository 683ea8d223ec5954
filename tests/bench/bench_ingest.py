"""Order ingest: how fast a real ``zf801 worker`` takes orders into its watchlist.

``ORDERS`` signed locate-debtor orders are on the intake before the worker starts; the
figure is the time from the worker joining its group to every order verified, moved to
its order id's ledger partition, tracked, and entered in the watchlist under its key
(``Deployment.wait_orders_applied``). The same run reads the same intake with a plain
aiokafka consumer, the floor set by the broker and the client alone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time

from ops.deployment import Deployment
from producers.publisher import OutgoingEvent, Publisher
from schemas.matchkey import person_match_key
from tests.bench import _bus
from tests.builders import Records

ORDERS = int(os.environ.get("ZF801_BENCH_ORDERS", "20000"))
_ORDER = "cn.zf801.orders.v1.LocateDebtorOrder"


def _order(person: str) -> dict[str, object]:
    return Records().person_order(_bus.COURT, "（2026）京01执9号", person)


def run() -> list[dict[str, object]]:
    settings = _bus.bench_settings(_bus.kafka_settings())
    bus = Deployment.create(settings)
    bus.apply_topics()
    bus.ensure_keys(dt.datetime.now(dt.UTC))
    secret = settings.match_key_secret.get_secret_value().encode()
    court = Publisher(bus.keystore.signer_for(_bus.COURT), catalog=bus.catalog,
                      settings=settings)  # fmt: skip
    people = _bus.id_numbers(ORDERS, seed=3)
    court.publish_all([
        OutgoingEvent("orders-locate-debtor", _ORDER, _order(p), person_match_key(p, secret=secret))
        for p in people
    ])  # fmt: skip
    court.close()
    intake = bus.catalog.topic_name("orders-locate-debtor")
    plain = asyncio.run(_bus.plain_read(settings, intake, ORDERS))
    bus.start_worker()
    try:
        bus.wait_worker_ready(120)
        started = time.perf_counter()
        bus.wait_orders_applied(600)
        worker = ORDERS / (time.perf_counter() - started)
    finally:
        bus.stop_worker()
    return [
        {"reader": "plain aiokafka consumer of the intake", "orders": ORDERS,
         "orders/s": f"{plain:,.0f}", "ratio": "1.00"},
        {"reader": "zf801 worker: verified, tracked, in the watchlist", "orders": ORDERS,
         "orders/s": f"{worker:,.0f}", "ratio": f"{worker / plain:.3f}"},
    ]  # fmt: skip
