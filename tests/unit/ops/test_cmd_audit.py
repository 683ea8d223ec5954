"""``zf801 audit tail``: the hash-chain check over what was read, the filters, and the
span of a per-partition tail that every partition covers."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from ops.cli import app
from ops.cmd_audit import (
    AuditEntry,
    ChainWatch,
    audit_filter,
    chain_summaries,
    complete_tail,
    mark_breaks,
)
from ops.cmd_inspect import TopicRecord

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
ZERO = bytes(32)


def _chain(agency: str, count: int, *, start_ms: int = 0, step_ms: int = 10) -> list[AuditEntry]:
    """A chain as KafkaAuditSink writes it: sequence from 0, each previous_hash the digest
    of the record before."""
    entries: list[AuditEntry] = []
    previous = ZERO
    for sequence in range(count):
        digest = hashlib.sha256(f"{agency}-{start_ms}-{sequence}".encode()).digest()
        entries.append(AuditEntry(
            event_id=f"{agency}-{start_ms}-{sequence}", partition=sequence % 3, offset=sequence,
            timestamp_ms=start_ms + sequence * step_ms, digest=digest, sequence=sequence,
            previous_hash=previous, occurred_at=T0, agency_code=agency, user="u", role="r",
            operation="alerts.read", target="t", result="SUCCESS", detail=None, client_host="h",
        ))  # fmt: skip
        previous = digest
    return entries


def _breaks(entries: list[AuditEntry]) -> dict[str, str | None]:
    return {e.event_id: e.chain_break for e in mark_breaks(entries) if e.chain_break}


def test_whole_chains_of_several_agencies_and_restarts_have_no_break() -> None:
    entries = (
        _chain("BUS-MATCHER", 5) + _chain("BJ01", 4, start_ms=3) + _chain("BJ01", 3, start_ms=100)
    )
    assert _breaks(entries) == {}


def test_a_chain_read_from_its_middle_has_no_break() -> None:
    assert _breaks(_chain("BUS-MATCHER", 10)[4:]) == {}


def test_interleaved_chains_of_two_processes_of_one_agency_have_no_break() -> None:
    assert _breaks(_chain("BUS-AUDIT", 5) + _chain("BUS-AUDIT", 5, start_ms=5)) == {}


def test_a_missing_record_is_a_break_at_its_successor() -> None:
    entries = _chain("BUS-MATCHER", 6)
    del entries[3]
    assert list(_breaks(entries).items()) == [
        ("BUS-MATCHER-0-4", "previous hash of sequence 4 matches no record read (the chain of "
                            "BUS-MATCHER read so far ends at sequence 2)"),
    ]  # fmt: skip


def test_a_sequence_gap_with_a_linked_hash_is_a_break() -> None:
    entries = _chain("BJ01", 4)
    entries[2] = replace(entries[2], sequence=5)
    entries[3] = replace(entries[3], sequence=6)
    assert _breaks(entries) == {"BJ01-0-2": "sequence gap: 5 follows 1"}


def test_a_previous_hash_that_is_not_the_digest_of_the_previous_record_is_a_break() -> None:
    entries = _chain("BJ01", 4)
    entries[2] = replace(entries[2], previous_hash=hashlib.sha256(b"something else").digest())
    breaks = _breaks(entries)
    assert list(breaks) == ["BJ01-0-2"]
    assert "previous hash of sequence 2 matches no record read" in str(breaks["BJ01-0-2"])


def test_zero_hashes_out_of_place_and_forks_are_breaks() -> None:
    entries = _chain("BJ01", 3)
    entries[1] = replace(entries[1], previous_hash=ZERO)
    assert _breaks(entries)["BJ01-0-1"] == "sequence 1 has no previous hash"
    start = replace(_chain("SH01", 1)[0], previous_hash=b"\x01" * 32)
    assert _breaks([start]) == {"SH01-0-0": "sequence 0 has a previous hash"}
    chain = _chain("SH01", 2)
    twin = replace(chain[1], event_id="twin", digest=b"\x02" * 32, timestamp_ms=50)
    assert _breaks([*chain, twin]) == {
        "twin": "sequence 1 follows a record another one already follows"
    }


def test_the_watch_goes_on_checking_records_that_arrive_later() -> None:
    entries = _chain("BJ01", 5)
    watch = ChainWatch()
    mark_breaks(entries[:2], watch)
    assert watch.check(entries[2]).chain_break is None
    assert watch.check(entries[4]).chain_break is not None  # sequence 3 never came


def test_filters_by_agency_operation_prefix_and_result() -> None:
    entry = _chain("BJ01", 1)[0]
    assert audit_filter(None, None, None)(entry)
    assert audit_filter("BJ01", "alerts.", "success")(entry)
    assert audit_filter(None, "alerts.read", None)(entry)
    assert not audit_filter("SH01", None, None)(entry)
    assert not audit_filter(None, "alerts", None)(entry)
    assert not audit_filter(None, None, "DENIED")(entry)


def _record(partition: int, timestamp_ms: int) -> TopicRecord:
    return TopicRecord(event_id=f"{partition}-{timestamp_ms}", event_type="t", signed_by="s",
                       partition=partition, offset=0, timestamp_ms=timestamp_ms, value=b"",
                       record={}, document={})  # fmt: skip


def test_a_tail_is_cut_to_the_span_every_partition_covers() -> None:
    # Partition 0 read its last 3 from t=10 on, partition 1 its last 3 from t=40 on,
    # partition 2 holds only 2 records (read whole): records before t=40 may be missing
    # from partition 1, so they are dropped.
    records = [_record(0, t) for t in (10, 20, 30)] + [_record(1, t) for t in (40, 50, 60)]
    records += [_record(2, t) for t in (5, 45)]
    kept = complete_tail(records, 3)
    assert sorted(r.timestamp_ms for r in kept) == [40, 45, 50, 60]
    assert complete_tail(records[:2], 3) == records[:2]  # nothing cut: read whole


def test_chains_are_told_apart_by_their_hashes_with_their_spans_and_heads() -> None:
    first, second = _chain("BJ01", 4), _chain("BJ01", 3, start_ms=5)  # two live processes
    later = _chain("BUS-MATCHER", 6, start_ms=100)[2:]  # its start deleted by retention
    found = chain_summaries([*first, *second, *later])
    assert [(c.agency_code, c.first.sequence, c.last.sequence, c.records, c.breaks)
            for c in found] == [("BJ01", 0, 3, 4, []), ("BJ01", 0, 2, 3, []),
                                ("BUS-MATCHER", 2, 5, 4, [])]  # fmt: skip
    assert found[0].head == "genesis"
    assert found[2].head == "starts at sequence 2: its predecessor is not on the topic"


def test_a_writer_recording_what_other_agencies_did_keeps_one_chain_of_its_own() -> None:
    """The command centre records each viewer's agency in its one chain: the chain is the
    writer's, so neither the centre's chain nor the viewers' own chains break."""
    viewers = ["BJ01", "SPC-COMMAND", "110000110000", "BJ01"]
    centre = [
        replace(entry, agency_code=viewer, writer="SPC-COMMAND")
        for entry, viewer in zip(_chain("centre", 4, start_ms=5), viewers, strict=True)
    ]
    own = [replace(entry, writer="BJ01") for entry in _chain("BJ01", 3)]
    assert _breaks([*own, *centre]) == {}
    found = chain_summaries([*own, *centre])
    assert [(c.agency_code, c.records, c.breaks) for c in found] == [
        ("BJ01", 3, []), ("SPC-COMMAND", 4, [])
    ]  # fmt: skip
    forged = replace(centre[2], writer="BJ01")  # another writer cannot continue the chain
    assert _breaks([*own, *centre[:2], forged]) != {}


def test_a_missing_record_and_a_fork_are_breaks_of_the_chain_they_sit_in() -> None:
    entries = _chain("SH01", 6)
    del entries[2]
    twin = replace(entries[3], event_id="twin", digest=b"\x02" * 32, timestamp_ms=45)
    found = chain_summaries([*entries, twin])
    assert [(c.first.sequence, c.last.sequence) for c in found] == [(0, 1), (3, 5), (4, 4)]
    assert found[1].breaks[0].startswith("sequence 3 (0@3): previous hash of sequence 3")
    assert found[2].breaks == [
        "sequence 4 (1@4): sequence 4 follows a record another one already follows"
    ]


# --- the operator's filters, refused before anything is read ----------------------------------
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["search", "--agency", "ZZ99"], "--agency 'ZZ99': agency code: is not in the agency list "
         "[rule agency_code.unknown]"),
        (["tail", "--agency", "B J"], "[rule agency_code.format]"),
        (["chains", "--agency", ""], "--agency: agency code: is empty [rule agency_code.required]"),
        (["search", "--user", "x" * 5000], "--user '<5000 characters>': user: is 5000 characters"),
        (["search", "--user", "  "], "--user: user: is empty [rule audit.user.required]"),
        (["search", "--subject", "11010519900101\u202e1234"], "[rule audit.subject.characters]"),
        (["search", "--operation", "query\x00ask"], "[rule audit.operation.characters]"),
        (["tail", "--result", "ok"], "--result 'OK': one of SUCCESS, FAILURE, DENIED (any case) "
         "[rule audit.result.unknown]"),
        (["search", "--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"],
         "--from 2026-01-02T00:00:00Z is after --to 2026-01-01T00:00:00Z"),
    ],
)  # fmt: skip
def test_a_bad_filter_is_refused_naming_the_option_and_the_rule(args: list[str], says: str) -> None:
    """Each is refused in one line, exit code 1, before any broker is reached (none runs
    here): a misspelt agency or result would otherwise find nothing and say nothing."""
    result = CliRunner().invoke(
        app, ["audit", *args, "--as", "BUS-AUDIT"], env={"ZF801_DEBUG": None}
    )
    assert result.exit_code == 1, result.output
    assert says in result.output and "Traceback" not in result.output
    assert "bootstrap" not in result.output.lower()


def test_a_personal_subject_is_masked_in_the_refusal() -> None:
    result = CliRunner().invoke(app, ["audit", "search", "--subject", "110105199001011234\x07"])
    assert result.exit_code == 1 and "110105199001011234" not in result.output, result.output
