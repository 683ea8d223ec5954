"""``zf801 notices`` as a police unit runs it, against the real broker and a ``zf801 worker``:
a hit the unit reported shows as its action notice; records forged onto its topic are
refused, named, dead-lettered and audited once across reads; a unit without the station's
key cannot read as the station, and the broker refuses its principal the station's topic."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.action_notices import ACTION_NOTICE, ACTION_TOPIC_ID
from consumers.outgoing import OutgoingSigner
from ops.deployment import zf801_command
from schemas.codec import default_codec
from tests.builders import Records, trust_set
from tests.kafka_io import broker_refuses_agency
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COURT, STATION, OTHER_UNIT = "BJ01", "110105000000", "110000000000"


@pytest.fixture(scope="module")
def bus(bus_factory: Any) -> Iterator[Any]:
    bus = bus_factory()
    bus.start()
    yield bus


def _run(bus: Any, *arguments: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``zf801 ARGUMENTS`` as a user runs it, on a wide terminal."""
    return subprocess.run(
        zf801_command(*arguments), env={**bus.worker_env(), "COLUMNS": "300", **env},
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def _flat(text: str) -> str:
    """``text`` with the error box's borders gone and every run of spaces made one (long
    messages wrap at any word)."""
    return " ".join(text.replace("│", " ").split())


def _hit_reported_by_the_station(bus: Any, records: Records) -> dict[str, Any]:
    """An order the station meets: the court hears of the hit; the station's notice."""
    order = records.person_order(COURT, "（2026）京01执1601号", records.id_number())
    bus.publish(COURT, "LocateDebtorOrder", order)
    bus.wait_orders_consumed()
    bus.publish(STATION, "HotelCheckIn",
                Records.hotel_check_in(STATION, order["subject"]["id_number"]))  # fmt: skip
    return order


def _forge(bus: Any, genuine: Any) -> list[tuple[bytes | None, bytes, list[Any]]]:
    """What an attacker with write access would put on the station's topic: the genuine
    notice with a byte of its value flipped, and a notice the bus's key really sealed that
    names another unit (copied from that unit's topic)."""
    flipped = bytearray(genuine.value)
    flipped[-1] ^= 0x01
    record = {**default_codec().decode(genuine.value)[1], "notice_id": str(uuid.uuid4()),
              "reporting_unit_code": OTHER_UNIT}  # fmt: skip
    signer = OutgoingSigner(bus.keystore.signer_for("BUS-MATCHER"), default_codec())
    other = signer.sign(
        bus.catalog.topic_name(ACTION_TOPIC_ID, unit=OTHER_UNIT), ACTION_NOTICE, record,
        key=OTHER_UNIT.encode(), event_id=record["notice_id"], now=record["issued_at"],
    ).record  # fmt: skip
    return [
        (genuine.key, bytes(flipped), list(genuine.headers)),
        (other.key, other.value, list(other.headers)),
    ]


def _audited(bus: Any, topic: str) -> list[dict[str, Any]]:
    return [
        rec for rec, _, _ in bus.read_topic("audit", idle_s=2.0)
        if rec["target"] == topic or rec["target"].startswith(f"{topic}/")
    ]  # fmt: skip


def test_the_station_reads_its_notice_and_forged_records_are_refused_once(
    bus: Any, records: Records, kafka_clients: Any
) -> None:
    order = _hit_reported_by_the_station(bus, records)
    topic = bus.catalog.topic_name(ACTION_TOPIC_ID, unit=STATION)
    [genuine] = wait_for(lambda: bus.messages(ACTION_TOPIC_ID, unit=STATION, idle_s=2.0),
                         timeout_s=90)  # fmt: skip
    producer = kafka_clients.producer()  # the attacker: raw bytes onto the station's topic
    try:
        for key, value, headers in _forge(bus, genuine):
            producer.send(topic, key=key, value=value, headers=headers)
        producer.flush()
    finally:
        producer.close()

    first = _run(bus, "notices", "--as", STATION, "--until-idle", "3")
    assert first.returncode == 0, first.stderr
    out, err = _flat(first.stdout), _flat(first.stderr)
    assert f"Action notices of police unit {STATION}" in out
    assert "DETAIN" in out and order["order_id"] in out
    assert "1 notice(s); 2 refused (dead-lettered and audited)" in out
    named = re.findall(r"refused: partition 0 offset (\d+): ([A-Z_]+): ", err)
    assert sorted(reason for _, reason in named) == ["BAD_SIGNATURE", "MISADDRESSED"], err
    assert f"{ACTION_NOTICE} names reporting_unit_code {OTHER_UNIT}" in err

    second = _run(bus, "notices", "--as", STATION, "--format", "json", "--until-idle", "3")
    assert second.returncode == 0, second.stderr
    [line] = second.stdout.splitlines()  # one JSON object per notice shown, nothing else
    shown = json.loads(line)
    assert (shown["type"], shown["signed_by"]) == (ACTION_NOTICE, "BUS-MATCHER")
    assert shown["record"]["reporting_unit_code"] == STATION
    assert shown["record"]["order_id"] == order["order_id"]
    err = _flat(second.stderr)
    assert "1 notice(s); 2 refused record(s) passed over (audited on an earlier read)" in err
    assert "refused: partition" not in err

    audited = _audited(bus, topic)
    refusals = [rec["target"] for rec in audited if rec["operation"] == "event.verify"]
    assert sorted(refusals) == sorted(f"{topic}/0@{offset}" for offset, _ in named), refusals
    reads = [rec for rec in audited if rec["operation"] == "notices.read"]
    assert len(reads) == 2  # each read audited, as the unit, with its client
    for read in reads:
        assert (read["agency_code"], read["role"], read["result"]) == (
            STATION, "public-security", "SUCCESS")  # fmt: skip
        assert read["user"] and read["client"]["application"]
    dead = [rec for rec, _, _ in bus.read_topic("dead-letter", idle_s=2.0)
            if rec["original"]["topic"] == topic]  # fmt: skip
    assert sorted((rec["original"]["offset"], rec["processor"]) for rec in dead) == sorted(
        (int(offset), STATION) for offset, _ in named
    )  # dead-lettered once each, by the unit that refused them
    assert sorted(rec["reason"] for rec in dead) == ["NOT_AUTHORISED", "SIGNATURE_INVALID"]


def test_another_unit_cannot_read_as_the_station_nor_its_topic(bus: Any, tmp_path: Path) -> None:
    """The other Beijing unit's machine holds its own key only: ``--as`` the station is
    refused before anything is read; as itself it reads its own (empty) topic; and past
    our library, the broker refuses its principal the station's topic."""
    trust_set(tmp_path, [OTHER_UNIT])
    refused = _run(bus, "notices", "--as", STATION, ZF801_HOME=str(tmp_path),
                   ZF801_KEYS_PATH=str(tmp_path / "keys"))  # fmt: skip
    assert refused.returncode == 2
    assert (
        f"Invalid value for '--as': no signing key and certificate of police unit {STATION}"
        in _flat(refused.stderr)
    )
    assert refused.stdout == ""

    own = _run(bus, "notices", "--as", OTHER_UNIT, "--until-idle", "2")
    assert own.returncode == 0, own.stderr
    assert "0 notice(s)" in _flat(own.stdout)

    if bus.settings.security != "mtls":
        pytest.skip("the session's broker runs without mTLS: no ACLs to enforce")
    station_topic = bus.catalog.topic_name(ACTION_TOPIC_ID, unit=STATION)
    assert broker_refuses_agency(bus.settings, OTHER_UNIT, station_topic)
