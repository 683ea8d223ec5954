"""``zf801 replay``'s pure side: the options, the range of each partition and its
retention gap, the tally of the verify stage's verdicts (the trust history as it stood at
each record's time), and the report document."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ops.cli import app
from ops.cmd_audit import AuditEntry
from ops.replay_check import (
    REPORT_FORMAT,
    ArrivalClock,
    Gap,
    PartitionRange,
    ReplayInputError,
    ReplayTally,
    chains_in_range,
    check_bounds,
    check_out_path,
    parse_bound,
    partition_range,
    replay_topics,
    report_document,
    revoked_on_arrival,
    start_offset,
)
from schemas.envelope import build_record
from schemas.settings import Settings
from sign.acceptance import AcceptancePolicy
from sign.events import EventSigner
from sign.replay import ReplayGuard
from sign.trust import Revocation
from sign.trustset import TrustSet
from sign.verify_stage import ConsumedRecord, MemoryAuditSink, MemoryDeadLetterSink, VerifyStage
from topics.catalog import default_catalog

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)
REVOKED_AT = T0 + dt.timedelta(hours=2)
TOPIC = "zf801.sightings.person"
POLICE = "110105000000"


# --- options ---------------------------------------------------------------------------------
def test_a_bound_is_an_offset_or_a_time_with_its_zone() -> None:
    assert parse_bound("42", "--from") == 42
    assert parse_bound("2026-11-01T16:00:00+08:00", "--to") == T0
    with pytest.raises(ReplayInputError, match=r"--from '-1': an offset is 0 or more"):
        parse_bound("-1", "--from")
    with pytest.raises(ReplayInputError, match=r"--to '2026-11-01T08:00': a time needs its zone"):
        parse_bound("2026-11-01T08:00", "--to")
    with pytest.raises(ReplayInputError, match=r"--from 'yesterday': neither an offset"):
        parse_bound("yesterday", "--from")


@pytest.mark.parametrize("text", ["²", "١٢", "1_000", "0x10", "1e3", "４２"])
def test_an_offset_is_ascii_digits_only(text: str) -> None:
    """Digits str.isdigit takes but int() refuses (or reads as another number) are
    neither an offset nor a time."""
    with pytest.raises(ReplayInputError, match=r"neither an offset"):
        parse_bound(text, "--from")


def test_an_offset_beyond_kafkas_64_bits_is_refused() -> None:
    assert parse_bound(str(2**63 - 1), "--to") == 2**63 - 1
    with pytest.raises(ReplayInputError, match=r"--to '9223372036854775808': an offset is at most"):
        parse_bound(str(2**63), "--to")


def test_from_after_to_is_refused_when_both_are_of_one_kind() -> None:
    with pytest.raises(ReplayInputError, match=r"--from 9 is after --to 3"):
        check_bounds(9, 3)
    with pytest.raises(ReplayInputError, match=r"is not before --to"):
        check_bounds(T0, T0 - dt.timedelta(seconds=1))
    check_bounds(3, 3)
    check_bounds(T0, 3)  # a time and an offset: compared per partition, once resolved
    check_bounds(None, T0)


def test_topics_default_to_what_the_reader_may_read_and_named_ones_are_checked() -> None:
    catalog = default_catalog()
    everything = replay_topics(catalog, "command-system", None)
    assert "audit" in everything and "dead-letter" in everything
    assert "alerts" not in everything  # per court: no one Kafka name
    assert "orders-exit-restriction" not in everything  # only the bus reads it
    assert "replay-journal" not in replay_topics(catalog, "bus", None)  # sealed state
    assert replay_topics(catalog, "bus", ["audit", "trust", "audit"]) == ["audit", "trust"]
    with pytest.raises(ReplayInputError, match=r"--topics 'nope': no topic with id 'nope'"):
        replay_topics(catalog, "bus", ["nope"])
    with pytest.raises(ReplayInputError, match=r"--topics 'alerts': cannot be replayed"):
        replay_topics(catalog, "bus", ["alerts"])
    with pytest.raises(ReplayInputError, match=r"--topics 'order-ledger': .*sealed state"):
        replay_topics(catalog, "bus", ["order-ledger"])


def test_an_unwritable_out_path_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    check_out_path(tmp_path / "report.json")
    with pytest.raises(ReplayInputError, match=r"--out .*: a folder, not a file; the report"):
        check_out_path(tmp_path)
    with pytest.raises(ReplayInputError, match=r"--out .*: its folder .* does not exist"):
        check_out_path(tmp_path / "missing" / "report.json")
    os.mkfifo(tmp_path / "pipe")
    for special in (Path("/dev/null"), tmp_path / "pipe"):  # nothing there to seal
        with pytest.raises(ReplayInputError, match=r"--out .*: not a regular file"):
            check_out_path(special)
    (tmp_path / "elsewhere.json").write_text("{}")
    (tmp_path / "link.json").symlink_to(tmp_path / "elsewhere.json")
    check_out_path(tmp_path / "link.json")  # a link is replaced by the report, not followed


# --- ranges and retention --------------------------------------------------------------------
def test_a_range_inside_what_is_kept_has_no_gap() -> None:
    scope = partition_range(TOPIC, 0, 10, 50, 20, 31)
    assert scope == PartitionRange(TOPIC, 0, 20, 31, None)
    assert scope.size == 11
    assert partition_range(TOPIC, 1, 0, 5, None, None) == PartitionRange(TOPIC, 1, 0, 5, None)


def test_a_range_reaching_before_the_log_start_names_the_deleted_offsets() -> None:
    scope = partition_range(TOPIC, 2, 10, 50, None, None)
    assert (scope.first, scope.stop) == (10, 50)
    assert scope.gap == Gap(TOPIC, 2, 0, 9)
    assert scope.gap.describe() == f"{TOPIC} partition 2: offsets 0..9 deleted by retention"
    assert partition_range(TOPIC, 2, 10, 50, 4, 8) == PartitionRange(
        TOPIC, 2, 10, 10, Gap(TOPIC, 2, 4, 7)
    )
    assert partition_range(TOPIC, 2, 10, 50, 4, None).gap == Gap(TOPIC, 2, 4, 9)


def test_a_range_past_the_end_is_empty() -> None:
    assert partition_range(TOPIC, 0, 0, 5, 9, None).size == 0
    assert partition_range(TOPIC, 0, 0, 5, 3, 2).size == 0


def test_a_time_reaching_back_to_the_first_kept_record_starts_in_what_was_deleted() -> None:
    assert start_offset(None, 10, 50) == 50  # nothing at or after the time
    assert start_offset(10, 10, 50) == 0  # the deleted records may lie in the range
    assert start_offset(30, 10, 50) == 30
    assert partition_range(TOPIC, 0, 10, 50, start_offset(10, 10, 50), None).gap == Gap(
        TOPIC, 0, 0, 9
    )


# --- the verdicts, with the trust history as it stood ----------------------------------------
def _sighting(when: dt.datetime) -> dict[str, Any]:
    return {
        "sighting_id": str(uuid.uuid4()),
        "reporting_unit_code": POLICE,
        "observed_at": when,
        "person": {"name": "张三", "id_number": "11010519491231002X"},
        "hotel_name": "北京饭店",
        "hotel_address": "北京市东城区东长安街33号",
        "room": "1203",
        "checked_in_at": when,
        "expected_check_out": None,
        "registered_phone": None,
    }


@pytest.fixture(scope="module")
def police() -> tuple[TrustSet, EventSigner]:
    trust = TrustSet.create(T0 - dt.timedelta(days=30))
    key, _ = trust.issue(
        POLICE, "北京市公安局朝阳分局", "public-security",
        now=T0 - dt.timedelta(days=10), lifetime=dt.timedelta(days=365),
    )  # fmt: skip
    trust.revocations.append(Revocation(
        EventSigner(key, POLICE).key_id, REVOKED_AT, "key-compromise", REVOKED_AT
    ))  # fmt: skip
    return trust, EventSigner(key, POLICE)


def _record(signer: EventSigner, offset: int, signed_at: dt.datetime, written_at: dt.datetime,
            ) -> ConsumedRecord:  # fmt: skip
    record = signer.sign_record(build_record(
        "HotelCheckIn", _sighting(signed_at), key=bytes(32), source=f"zf801:agency/{POLICE}",
        time=signed_at,
    ))  # fmt: skip
    return ConsumedRecord(TOPIC, 0, offset, int(written_at.timestamp() * 1000), record.key,
                          record.value, tuple(record.headers))  # fmt: skip


def _judge(trust: TrustSet, records: list[ConsumedRecord]) -> ReplayTally:
    """As ``ops.cmd_replay`` judges: each record at the time it reached the bus (its Kafka
    timestamp) with the processors' windows, repeats left to the tally, refusals kept in
    memory, and a key revoked before the record arrived named."""
    dead, arrival, store = MemoryDeadLetterSink(), ArrivalClock(), trust.trust_store()
    stage = VerifyStage(
        store, ReplayGuard(dt.timedelta(days=1), 1000), dead, MemoryAuditSink(),
        verifier_agency="BUS-AUDIT", writer_roles={TOPIC: {"public-security"}},
        acceptance=AcceptancePolicy.from_settings(Settings(), replay_checked=False),
        clock=arrival,
    )  # fmt: skip
    tally = ReplayTally()
    tally.expect([PartitionRange(TOPIC, 0, 0, len(records))])
    for message in records:
        at = arrival.set(message.timestamp)
        verified = stage.check_record(message)
        rejection = dead.rejections.pop() if verified is None else None
        revoked = None if verified is None else revoked_on_arrival(store, verified, at)
        tally.add(message.topic, message.partition, message.offset, verified, rejection,
                  revoked=revoked)  # fmt: skip
    assert not dead.rejections
    return tally


def test_a_key_revoked_later_leaves_earlier_records_valid_and_fails_later_ones(
    police: tuple[TrustSet, EventSigner],
) -> None:
    trust, signer = police
    before, after = REVOKED_AT - dt.timedelta(hours=1), REVOKED_AT + dt.timedelta(minutes=1)
    tally = _judge(trust, [_record(signer, 0, before, before), _record(signer, 1, after, after)])
    assert [(b.offset, b.reason) for b in tally.breaks] == [(1, "KEY_REVOKED")]
    count = tally.counts[(TOPIC, 0)]
    assert (count.records, count.verified, count.breaks) == (2, 1, 1)
    assert not tally.clean


def test_a_back_dated_record_of_a_revoked_key_is_named_by_its_arrival(
    police: tuple[TrustSet, EventSigner],
) -> None:
    trust, signer = police
    back_dated = _record(signer, 0, REVOKED_AT - dt.timedelta(hours=1),
                         REVOKED_AT + dt.timedelta(hours=1))  # fmt: skip
    [found] = _judge(trust, [back_dated]).breaks
    assert (found.partition, found.offset, found.reason) == (0, 0, "KEY_REVOKED")
    assert "precedes the revocation, but the record reached the bus at" in found.detail


def test_each_record_meets_the_window_it_met_on_arrival(
    police: tuple[TrustSet, EventSigner],
) -> None:
    trust, signer = police
    signed = REVOKED_AT - dt.timedelta(hours=1, minutes=30)
    tally = _judge(trust, [
        # stored and forwarded 1 h later: within the sightings' 72 h, no fault
        _record(signer, 0, signed, signed + dt.timedelta(hours=1)),
        # a week later: the bus refused it then (TOO_OLD), so does the replay
        _record(signer, 1, signed - dt.timedelta(days=7), signed),
        # stamped 10 minutes ahead of its arrival: beyond the 300 s of clock drift
        _record(signer, 2, signed + dt.timedelta(minutes=10), signed),
    ])  # fmt: skip
    assert [(b.offset, b.reason) for b in tally.breaks] == [(1, "TOO_OLD"), (2, "CLOCK_AHEAD")]


def test_a_record_without_a_timestamp_is_judged_at_the_replays_own_time() -> None:
    clock = ArrivalClock()
    before = dt.datetime.now(dt.UTC)
    assert clock.set(-1) >= before and clock() == clock.at
    assert clock.set(0) == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def test_a_tampered_record_and_a_replayed_one_are_named_by_their_position(
    police: tuple[TrustSet, EventSigner],
) -> None:
    trust, signer = police
    when = T0
    good = _record(signer, 0, when, when)
    copy = replace(good, offset=5)
    assert good.value is not None
    tampered = _record(signer, 3, when, when)
    assert tampered.value is not None
    tampered = replace(tampered, value=tampered.value[:-1] + bytes([tampered.value[-1] ^ 1]))
    tally = _judge(trust, [good, tampered, copy])
    assert [(b.offset, b.reason) for b in tally.breaks] == [(3, "BAD_SIGNATURE"), (5, "REPLAYED")]
    assert "first seen at partition 0 offset 0" in tally.breaks[1].detail
    elsewhere = ReplayTally()
    assert elsewhere.add("other", 0, 9, None, None) is not None  # refused without a reason


def test_without_verify_records_are_only_counted() -> None:
    tally = ReplayTally(verify=False)
    tally.expect([PartitionRange(TOPIC, 0, 0, 2)])
    assert tally.add(TOPIC, 0, 0, None, None) is None
    assert tally.clean
    assert tally.counts[(TOPIC, 0)].document()["verified"] is None


# --- the report ------------------------------------------------------------------------------
def test_the_report_names_range_counts_breaks_chains_and_gaps(
    police: tuple[TrustSet, EventSigner],
) -> None:
    trust, signer = police
    after = REVOKED_AT + dt.timedelta(minutes=1)
    tally = _judge(trust, [_record(signer, 0, after, after)])
    tally.expect([partition_range("zf801.bus.audit", 1, 4, 9, None, None)])
    tally.add_chain_breaks(["BUS-AUDIT: sequence 5 (1@6): sequence gap: 5 follows 2"])
    document = report_document(
        reader="BUS-AUDIT", topic_ids=["sightings-person", "audit"],
        topics=[TOPIC, "zf801.bus.audit"], start=0, end=T0, verify=True,
        tally=tally, chains=[{"agency_code": "BUS-AUDIT", "breaks": ["x"]}],
        started=T0, finished=after,
    )  # fmt: skip
    assert json.loads(json.dumps(document)) == document
    assert document["format"] == REPORT_FORMAT and document["clean"] is False
    assert document["range"] == {"topic_ids": ["sightings-person", "audit"],
                                 "topics": [TOPIC, "zf801.bus.audit"], "from": 0,
                                 "to": T0.isoformat()}  # fmt: skip
    assert document["partitions"][1] == {
        "topic": TOPIC, "partition": 0, "from_offset": 0, "to_offset": 0, "records": 1,
        "verified": 0, "breaks": 1,
    }  # fmt: skip
    assert [b["reason"] for b in document["breaks"]] == ["KEY_REVOKED"]
    assert document["gaps"][0]["detail"] == (
        "zf801.bus.audit partition 1: offsets 0..3 deleted by retention"
    )
    assert document["chains"][0]["agency_code"] == "BUS-AUDIT"
    assert (document["reader"], document["records"]) == ("BUS-AUDIT", 1)


# --- the command, before it connects ---------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--topics", "nope"), "--topics 'nope': no topic with id 'nope'"),
        (("--from", "7", "--to", "2"), "--from 7 is after --to 2"),
        (("--to", "soon"), "--to 'soon': neither an offset"),
    ],
)
def test_bad_options_end_the_command_with_one_line_and_exit_code_1(
    tmp_path: Path, options: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["replay", "--verify", *options, "--out", str(out)])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and message in result.output
    assert not out.exists()


# --- audit chains that reach into the range --------------------------------------------------
def _chain(name: str, sequences: list[int], first_offset: int, start_ms: int) -> list[AuditEntry]:
    """Audit entries of one chain (partition 0), linked by hash; a sequence missing from
    ``sequences`` is a record never written (the next names the last one written)."""

    def digest(sequence: int) -> bytes:
        return hashlib.sha256(f"{name}/{sequence}".encode()).digest()

    return [
        AuditEntry(
            event_id=f"{name}-{sequence}", partition=0, offset=first_offset + index,
            timestamp_ms=start_ms + index, digest=digest(sequence), sequence=sequence,
            previous_hash=digest(sequences[index - 1]) if index else bytes(32), occurred_at=T0,
            agency_code="BUS-MATCHER", user="clerk", role="bus", operation="order.issue",
            target=f"order/{sequence}", result="SUCCESS", detail=None, client_host="h",
        )
        for index, sequence in enumerate(sequences)
    ]  # fmt: skip


def test_chains_that_started_before_the_range_are_checked_from_their_start() -> None:
    first = _chain("a", [0, 1, 2, 3], first_offset=0, start_ms=1000)
    second = _chain("b", [0, 1, 2, 5], first_offset=10, start_ms=2000)
    finished = _chain("c", [0, 1], first_offset=20, start_ms=500)  # wholly before the range
    before = [*finished, *first[:3], *second[:2]]
    in_range = [first[3], *second[2:]]
    found = chains_in_range(before, in_range)
    assert sorted((c.first.sequence, c.last.sequence, c.records) for c in found) == [
        (0, 3, 4), (0, 5, 4)
    ]  # fmt: skip
    assert [b for c in found for b in c.breaks] == ["sequence 5 (0@13): sequence gap: 5 follows 2"]
    # Without what came before, the second chain's first record in range looks out of place.
    alone = chains_in_range([], in_range)
    assert len([b for c in alone for b in c.breaks]) == 2


def test_a_record_its_reader_refuses_is_a_break_with_the_readers_reason() -> None:
    tally = ReplayTally()
    verified: Any = type("V", (), {"signature": type("S", (), {"event_id": "e1"})()})()
    misaddressed = ("MISADDRESSED", "court_code SH01 on the alert topic of BJ01")
    found = tally.add("zf801.alerts.BJ01", 0, 7, verified, None, refused=misaddressed)
    assert found is not None and (found.offset, found.reason) == (7, "MISADDRESSED")
    assert tally.add("zf801.alerts.BJ01", 0, 8, verified, None) is not None  # same ce_id
    count = tally.counts[("zf801.alerts.BJ01", 0)]
    assert (count.records, count.verified, count.breaks) == (2, 0, 2)
