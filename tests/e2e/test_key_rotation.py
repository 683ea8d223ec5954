"""Key rotation and revocation reach a running worker through the trust topic: no restart."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from consumers.watchlist import derive_id
from sign.keystore import KeyStore
from tests.builders import trust_set

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POLICE_BJ = "110000000000"
_ZF801 = Path(sys.executable).with_name("zf801")


def _keys(bus: Any, *args: str) -> str:
    result = subprocess.run(
        [str(_ZF801), "keys", *args], env=bus.worker_env(), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _applied_in_worker(bus: Any, record_key: str, outcome: str) -> bool:
    """The worker logs each trust record it applies (consumers.runtime)."""
    return f"trust record {record_key} applied: {outcome}" in bus.worker_log()


def _hits(bus: Any, order_id: str) -> list[Any]:
    return [
        a for a in bus.alerts("BJ01", until_idle_s=2.0)
        if a.kind == "Hit" and str(a.record["order_id"]) == order_id
    ]  # fmt: skip


def test_rotation_and_revocation_apply_to_a_running_worker(
    bus_factory: Any, records: Any, tmp_path: Path, wait_for: Any
) -> None:
    home = tmp_path / "home"
    trust_set(home)
    bus = bus_factory(home=home)
    bus.start()
    person = records.id_number()
    order = records.person_order("BJ01", "（2026）京01执900号", person)
    bus.publish("BJ01", "LocateDebtorOrder", order)
    bus.wait_orders_consumed()

    # Rotate the police unit's key after the worker started; sign with the new key.
    _keys(bus, "rotate", "--agency", POLICE_BJ, "--publish")
    bus.keystore = KeyStore.from_settings(bus.settings)
    bus._publishers.clear()
    new_key = bus.keystore.current_key_id(POLICE_BJ)
    wait_for(lambda: _applied_in_worker(bus, new_key, "certificate"))
    rotated = records.hotel_check_in(POLICE_BJ, person)
    bus.publish(POLICE_BJ, "HotelCheckIn", rotated)
    hits = wait_for(lambda: _hits(bus, order["order_id"]))
    assert {str(h.record["hit_id"]) for h in hits} == {
        derive_id(order["order_id"], rotated["sighting_id"])
    }

    # Revoke the new key from now on: what it signs afterwards is refused.
    revoked_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    _keys(bus, "revoke", "--key-id", new_key, "--at", revoked_at.isoformat(),
          "--reason", "key-compromise", "--publish")  # fmt: skip
    wait_for(lambda: _applied_in_worker(bus, f"{new_key}/revocation", "revocation"))
    late = records.hotel_check_in(POLICE_BJ, person)
    bus.publish(POLICE_BJ, "HotelCheckIn", late)

    def refused() -> list[dict[str, Any]]:
        return [
            rec for rec, _, _ in bus.read_topic("dead-letter")
            if rec["detail"].startswith("KEY_REVOKED")
        ]  # fmt: skip

    assert wait_for(refused)
    assert derive_id(order["order_id"], late["sighting_id"]) not in {
        str(h.record["hit_id"]) for h in _hits(bus, order["order_id"])
    }
