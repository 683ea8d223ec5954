"""``zf801 subscribe debtors``, ``zf801 debtors check`` and ``zf801 debtors receipts`` as an
operator runs them, against the real broker (refusals through the real dead-letter and
audit sinks)."""

from __future__ import annotations

import datetime as dt
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ops.deployment import zf801_command

pytestmark = [pytest.mark.e2e]

SUBSCRIBER = "SUB-SAMR"


def _run(bus: Any, *arguments: str) -> subprocess.CompletedProcess[str]:
    """The command's run on a wide terminal (80 columns without one would cut the table's
    ids), its output with every line break and run of spaces made one space (long
    messages wrap anywhere)."""
    done = subprocess.run(
        zf801_command(*arguments), env={**bus.worker_env(), "COLUMNS": "300"},
        capture_output=True, text=True,
        timeout=180, check=False,
    )  # fmt: skip
    return subprocess.CompletedProcess(
        done.args, done.returncode, " ".join(done.stdout.split()), " ".join(done.stderr.split())
    )


def test_subscribe_check_and_receipts_from_the_command_line(
    bus_factory: Any, records: Any, tmp_path: Path
) -> None:
    bus = bus_factory()
    id_number = records.id_number()
    listing = {
        "listing_id": str(uuid.uuid4()),
        "case_number": "（2025）京01执501号",
        "filing_date": dt.date(2025, 3, 1),
        "enforcing_court_code": "BJ01",
        "debtor": {"kind": "NATURAL_PERSON", "name": "李四", "id_number": id_number,
                   "organisation_code": None},
        "enforcement_status": "IN_PROGRESS",
        "amount_applied_for": Decimal("5000.00"),
        "dishonest_conduct": ["EVADES_ENFORCEMENT"],
        "published_at": dt.datetime.now(dt.UTC),
    }  # fmt: skip
    bus.publish("BJ01", "DishonestDebtorListing", listing)
    foreign = {key: listing[key] for key in ("listing_id", "debtor")}
    foreign.update(case_number="（2025）沪01执9号", enforcing_court_code="SH01",
                   reason="PERFORMED", removed_at=dt.datetime.now(dt.UTC))  # fmt: skip
    bus.publish("SH01", "DishonestDebtorRemoval", foreign)  # not SH01's listing to remove
    mirror = tmp_path / "samr.sqlite"
    subscribe = ("subscribe", "debtors", "--as", SUBSCRIBER, "--mirror", str(mirror),
                 "--until-idle", "2")  # fmt: skip

    first = _run(bus, *subscribe)
    assert first.returncode == 0, first.stderr
    assert "not found: building it from the start" in first.stderr
    assert "1 listed" in first.stderr and "refused 1" in first.stderr, first.stderr
    dead = [rec for rec, _, _ in bus.read_topic("dead-letter", idle_s=2.0)
            if "[rule removal.court]" in rec["detail"]]  # fmt: skip
    assert len(dead) == 1 and "SH01" in dead[0]["detail"]

    listed = _run(bus, "debtors", "check", id_number, "--as", SUBSCRIBER, "--mirror", str(mirror))
    assert listed.returncode == 3 and "LISTED by BJ01" in listed.stdout, listed.stdout

    removal = {key: listing[key] for key in ("listing_id", "case_number", "enforcing_court_code",
                                             "debtor")}  # fmt: skip
    removal.update(reason="PERFORMED", removed_at=dt.datetime.now(dt.UTC))
    bus.publish("BJ01", "DishonestDebtorRemoval", removal)
    again = _run(bus, *subscribe)
    assert again.returncode == 0, again.stderr
    assert "resumes at its offsets" in again.stderr and "receipts sent 1" in again.stderr

    gone = _run(bus, "debtors", "check", id_number, "--as", SUBSCRIBER, "--mirror", str(mirror))
    assert gone.returncode == 0 and "not listed" in gone.stdout

    receipts = _run(bus, "debtors", "receipts", "--as", "BJ01", "--deadline", "1")
    # SUB-RAIL12306 never ran: overdue (exit 2); SUB-SAMR confirmed the removal.
    assert receipts.returncode == 2, receipts.stderr
    assert listing["listing_id"] in receipts.stdout and SUBSCRIBER in receipts.stdout
    assert "1 removals, 1 overdue receipts" in receipts.stdout
