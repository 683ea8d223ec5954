"""``zf801 publish`` on endless, huge and hostile input, and when the broker stops
acknowledging: memory stays bounded, lines are checked as they are read, output reaching
the terminal is sanitised, and the output says exactly which lines were acknowledged, so a
rerun with ``--skip-acknowledged`` sends the rest under the same event ids."""

from __future__ import annotations

import io
import json
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError

from ops.publish_input import MAX_SKIP_BYTES
from ops.publish_run import READ_AHEAD_LINES, PriorRun
from ops.terminal import printable
from schemas.codec import decode
from schemas.settings import Settings
from sign.verify_stage import MemoryAuditSink
from tests.unit.ops.publish_fakes import (
    Invoke,
    MemoryProducer,
    example_event,
    exit_order,
    json_lines,
    make_invoke,
)

ORDER = ["ExitRestrictionOrder", "--as", "BJ01"]


class EndlessStream(io.RawIOBase):
    """An endless input (``/dev/zero`` when ``line`` is empty, else ``line`` repeated,
    ending after ``end_after`` lines if given), which calls ``on_read`` with the number of
    lines handed out so far at each read."""

    def __init__(
        self,
        line: bytes = b"",
        on_read: Callable[[int], None] | None = None,
        end_after: int | None = None,
    ) -> None:
        self._line = line
        self._on_read = on_read
        self._end_after = end_after
        self.lines = 0
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def readline(self, size: int | None = -1) -> bytes:
        if self._on_read:
            self._on_read(self.lines)
        if self.lines == self._end_after:
            return b""
        limit = size if size and size > 0 else 1 << 20
        chunk = (self._line or b"\0" * limit)[:limit]
        self.lines += chunk.endswith(b"\n")
        self.bytes += len(chunk)
        return chunk


def _run_on(invoke: Invoke, stream: io.RawIOBase, *args: str) -> tuple[Any, int]:
    """Run with ``stream`` as stdin; (result, peak bytes allocated meanwhile)."""
    tracemalloc.start()
    try:
        result = invoke([*ORDER, *args], stream)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _orders(count: int, start: int = 1) -> str:
    return json_lines(*(exit_order(n) for n in range(start, start + count)))


def _rows(stdout: str) -> list[list[str]]:
    return [line.split("\t") for line in stdout.splitlines()]


# --- endless and hostile input ---------------------------------------------------------------
def test_dev_zero_is_abandoned_with_bounded_memory(
    invoke: Invoke, producer: MemoryProducer
) -> None:
    stream = EndlessStream()
    result, peak = _run_on(invoke, stream)
    assert result.exit_code == 1, result.output
    assert "line 1: longer than" in result.stderr and "not read" in result.stderr
    assert producer.sent == []
    assert stream.bytes < MAX_SKIP_BYTES + (4 << 20)  # it stopped reading
    assert peak < 32 << 20, f"peak {peak >> 20} MiB"


def test_endless_bad_lines_stop_at_max_bad(invoke: Invoke, producer: MemoryProducer) -> None:
    stream = EndlessStream(b"\x9f\x01garbage\n")
    result, peak = _run_on(invoke, stream, "--max-bad", "500")
    assert result.exit_code == 1
    assert result.stderr.count("not valid UTF-8") == 500
    assert "500 bad lines: the rest of the input is not read" in result.stderr
    assert stream.lines <= 500 + READ_AHEAD_LINES + 256  # read ahead by the checkers, no more
    assert producer.sent == [] and peak < 32 << 20


def test_skip_bad_sends_while_reading(invoke: Invoke, producer: MemoryProducer) -> None:
    """With --skip-bad events go out as lines are read: an endless stream is served."""
    order_line = json_lines(exit_order(1)).encode()
    seen: list[int] = []

    def watch(lines_read: int) -> None:
        if lines_read == 3000:
            seen.append(len(producer.sent))

    stream = EndlessStream(order_line, watch, end_after=3000)
    result = invoke([*ORDER, "--skip-bad"], stream)
    assert result.exit_code == 0, result.stderr
    assert seen and seen[0] >= 1000, seen  # sent while the input was still being read
    assert len(producer.sent) == 3000


def test_strict_mode_sends_nothing_until_the_last_line_is_checked(
    invoke: Invoke, producer: MemoryProducer
) -> None:
    sent_at_end: list[int] = []
    text = _orders(1500).encode()

    class Watched(io.BytesIO):
        def readline(self, size: int | None = -1) -> bytes:
            line = super().readline(size)
            if not line:
                sent_at_end.append(len(producer.sent))
            return line

    result = invoke(ORDER, Watched(text))
    assert result.exit_code == 0, result.stderr
    assert sent_at_end[0] == 0 and len(producer.sent) == 1500
    assert [int(row[4]) for row in _rows(result.stdout)] == list(range(1, 1501))


@pytest.mark.parametrize(
    "key", ["\x1b[2J\x1b[31mcleared", "name\r\rover", "\u202eevil", "bell\x07", "\x9b31m"]
)
def test_hostile_keys_and_values_reach_the_terminal_escaped(
    invoke: Invoke, producer: MemoryProducer, key: str
) -> None:
    order = exit_order()
    order[key] = 1
    result = invoke(ORDER, json_lines(order))
    assert result.exit_code == 1 and producer.sent == []
    assert printable(key) in result.stderr
    assert not any(ch in result.stderr for ch in "\x1b\r\u202e\x07\x9b")


def test_printable_escapes_what_does_not_print() -> None:
    assert printable("王建国 ok\t") == "王建国 ok\t"
    assert printable("a\x1b[0mb\u200b\u2028\ud800") == "a\\x1b[0mb\\u200b\\u2028\\ud800"
    assert printable("x\ny") == "x\\x0ay" and printable("x\ny", keep_newlines=True) == "x\ny"


# --- event ids -------------------------------------------------------------------------------
def _event_ids(producer: MemoryProducer) -> list[str]:
    return [dict(headers)["ce_id"].decode() for _, _, _, headers in producer.sent]


def test_id_from_gives_the_same_line_the_same_event_id(
    invoke: Invoke, producer: MemoryProducer
) -> None:
    checkin = example_event("sightings", "HotelCheckIn")
    args = ["HotelCheckIn", "--as", "110105000000", "--id-from", "sighting_id"]
    assert invoke(args, json_lines(checkin)).exit_code == 0
    assert invoke(args, json_lines(checkin)).exit_code == 0
    first, second = _event_ids(producer)
    assert first == second == str(uuid.UUID(checkin["sighting_id"]))


def test_id_from_a_text_field_derives_a_uuid_and_a_missing_field_is_named(
    invoke: Invoke, producer: MemoryProducer
) -> None:
    assert invoke([*ORDER, "--id-from", "case_number"], json_lines(exit_order())).exit_code == 0
    assert uuid.UUID(_event_ids(producer)[0]).version == 5
    producer.sent.clear()
    result = invoke([*ORDER, "--id-from", "subject.passport"], json_lines(exit_order()))
    assert result.exit_code == 1 and producer.sent == []
    assert "subject.passport: --id-from" in result.stderr and "id_from.present" in result.stderr


def test_a_line_may_carry_its_own_event_id(invoke: Invoke, producer: MemoryProducer) -> None:
    own = str(uuid.uuid4())
    assert invoke(ORDER, json_lines(exit_order() | {"ce_id": own})).exit_code == 0
    assert _event_ids(producer) == [own]
    producer.sent.clear()
    for bad in ("not-a-uuid", 17):
        result = invoke(ORDER, json_lines(exit_order() | {"ce_id": bad}))
        assert (
            result.exit_code == 1
            and "ce_id" in result.stderr
            and "[rule ce_id.uuid]" in result.stderr
        )


# --- the broker stops acknowledging ----------------------------------------------------------
def test_a_failure_mid_run_reports_each_line_and_a_rerun_sends_the_rest_once(
    settings: Settings, tmp_path: Path
) -> None:
    producer = MemoryProducer(fail_after=1200)
    audit = MemoryAuditSink()
    source = tmp_path / "orders.jsonl"
    source.write_text(_orders(5000), encoding="utf-8")
    first = make_invoke(settings, producer, audit)([*ORDER, str(source)])
    assert first.exit_code == 1
    rows = _rows(first.stdout)
    acknowledged = [int(r[4]) for r in rows if r[1] != "UNACKNOWLEDGED"]
    unacknowledged = {int(r[4]): r[0] for r in rows if r[1] == "UNACKNOWLEDGED"}
    assert acknowledged == list(range(1, 1201))
    assert unacknowledged and min(unacknowledged) == 1201
    assert "1200 line(s) acknowledged" in first.stderr and "--skip-acknowledged" in first.stderr
    successes = [op for op in audit.operations if op["result"] == "SUCCESS"]
    assert sum(len(op["detail"].split()) for op in successes) == 1200  # each one audited
    report = tmp_path / "report.tsv"
    report.write_text(first.stdout, encoding="utf-8")

    again = MemoryProducer()
    second = make_invoke(settings, again, audit)(
        [*ORDER, str(source), "--skip-acknowledged", str(report)]
    )
    assert second.exit_code == 0, second.stderr
    lines_sent = [int(r[4]) for r in _rows(second.stdout)]
    assert lines_sent == list(range(1201, 5001))
    resent = dict(zip(lines_sent, _event_ids(again), strict=True))
    assert all(resent[line] == event_id for line, event_id in unacknowledged.items())
    order_ids = {decode(value)[1]["order_id"] for _, _, value, _ in again.sent}
    assert len(order_ids) == 3800
    assert "1200 line(s) skipped as acknowledged before" in second.stderr


def test_no_line_is_reported_published_before_its_audit_record_is_acknowledged(
    settings: Settings,
) -> None:
    class AuditDown(MemoryAuditSink):
        def settle(self, timeout_s: float | None = None) -> None:
            raise KafkaTimeoutError("Failed to update metadata after 8.0 secs.")

    producer = MemoryProducer()
    result = make_invoke(settings, producer, AuditDown())([*ORDER], _orders(3))
    assert result.exit_code == 1
    assert [r[1] for r in _rows(result.stdout)] == ["UNACKNOWLEDGED"] * 3
    assert "the audit records were not acknowledged" in result.stderr
    assert "Traceback" not in result.output


def test_a_report_that_is_not_one_is_refused(invoke: Invoke, tmp_path: Path) -> None:
    report = tmp_path / "report.tsv"
    report.write_text("published 3 event(s)\n", encoding="utf-8")
    result = invoke([*ORDER, "--skip-acknowledged", str(report)], _orders(1))
    assert result.exit_code == 1 and "row 1 is not a report row" in result.stderr


def test_prior_run_reads_acknowledged_and_unacknowledged_rows(tmp_path: Path) -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    report = tmp_path / "r.tsv"
    report.write_text(
        f"{ids[0]}\tzf801.orders.exit-restriction\t0\t7\t1\n"
        f"{ids[1]}\tUNACKNOWLEDGED\t-\t-\t2\n\n"
        f"{ids[2]}\tUNACKNOWLEDGED\t-\t-\t3\n",
        encoding="utf-8",
    )
    prior = PriorRun.read(report)
    assert prior.acknowledged == {1}
    assert dict(prior.unacknowledged) == {2: ids[1], 3: ids[2]}
    assert json.dumps(sorted(prior.acknowledged)) == "[1]"


def test_audit_records_name_every_published_event_in_runs_of_40(
    invoke: Invoke, audit: MemoryAuditSink
) -> None:
    result = invoke(ORDER, _orders(1500))
    assert result.exit_code == 0, result.stderr
    published = [op for op in audit.operations if op["result"] == "SUCCESS"]
    named = [entry for op in published for entry in op["detail"].split()]
    assert [entry.split("=")[1] for entry in named] == [row[0] for row in _rows(result.stdout)]
    assert max(len(op["detail"].split()) for op in published) == 40
    assert all(len(op["detail"]) <= 2000 and len(op["target"]) <= 256 for op in published)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_checked_in_parallel_or_not_the_output_is_in_input_order(
    invoke: Invoke, producer: MemoryProducer, workers: str
) -> None:
    bad = exit_order(7)
    bad["subject"]["id_number"] = "110105198003121230"  # wrong check character
    text = _orders(600) + json_lines(bad) + _orders(600, start=601)
    result = invoke([*ORDER, "--skip-bad", "--workers", workers], text)
    assert result.exit_code == 1
    assert [int(row[4]) for row in _rows(result.stdout)] == [n for n in range(1, 1202) if n != 601]
    assert result.stderr.startswith("line 601: subject.id_number")
    order_ids = [str(decode(value)[1]["order_id"]) for _, _, value, _ in producer.sent]
    assert order_ids == [str(exit_order(n)["order_id"]) for n in range(1, 1201)]
