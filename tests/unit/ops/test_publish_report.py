"""``zf801 publish --skip-acknowledged REPORT``: the report is read row by row, each row
bounded, and only from a regular file; anything else is refused naming the option and the
rule (``/dev/zero`` once grew the command to 21 GB)."""

from __future__ import annotations

import tracemalloc
import uuid
from pathlib import Path

import pytest

from ops.errors import OpsError
from ops.publish_run import MAX_REPORT_ROW_BYTES, UNACKNOWLEDGED, PriorRun
from tests.files import NOT_REGULAR, named_path
from tests.unit.ops.publish_fakes import Invoke, exit_order, json_lines

ORDER = ["ExitRestrictionOrder", "--as", "BJ01"]


@pytest.mark.parametrize(("name", "rule"), NOT_REGULAR)
def test_a_report_that_is_no_regular_file_is_refused_before_it_is_read(
    tmp_path: Path, name: str, rule: str
) -> None:
    path = named_path(tmp_path, name)
    with pytest.raises(OpsError) as info:
        PriorRun.read(path)
    assert str(info.value) == f"--skip-acknowledged {path}: {rule}"


def test_publish_refuses_dev_zero_as_a_report_with_its_usual_error(invoke: Invoke) -> None:
    result = invoke([*ORDER, "--skip-acknowledged", "/dev/zero"], json_lines(exit_order()))
    assert result.exit_code == 1
    assert "error: --skip-acknowledged /dev/zero: not a regular file" in result.stderr
    assert "unexpected" not in result.output and "Traceback" not in result.output


def test_a_row_longer_than_the_bound_is_refused_unread(tmp_path: Path) -> None:
    ack = f"{uuid.uuid4()}\tzf801.orders.exit-restriction\t0\t7\t1\n"
    report = tmp_path / "r.tsv"
    report.write_bytes(ack.encode() + b"x" * (MAX_REPORT_ROW_BYTES * 100) + b"\n")
    tracemalloc.start()
    try:
        with pytest.raises(OpsError, match=rf"row 2 is longer than {MAX_REPORT_ROW_BYTES} bytes"):
            PriorRun.read(report)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * MAX_REPORT_ROW_BYTES  # the long row was never held


def test_the_longest_legitimate_row_fits(tmp_path: Path) -> None:
    """Kafka's longest topic name (249) and 20-digit numbers fit well within the bound."""
    event_id = str(uuid.uuid4())
    row = f"{event_id}\t{'t' * 249}\t{'9' * 10}\t{'9' * 19}\t{'9' * 20}\n"
    assert len(row.encode()) < MAX_REPORT_ROW_BYTES // 4
    report = tmp_path / "r.tsv"
    report.write_text(row * 3, encoding="utf-8")
    assert PriorRun.read(report).acknowledged == {int("9" * 20)}


def test_a_large_report_is_read_row_by_row(tmp_path: Path) -> None:
    """A report of 200,000 rows (about 16 MB) is never held: naming the same few lines
    over and over, it costs what those lines cost."""
    event_id = str(uuid.uuid4())
    report = tmp_path / "r.tsv"
    with report.open("w", encoding="utf-8") as out:
        for row in range(200_000):
            out.write(f"{event_id}\tzf801.orders.exit-restriction\t3\t{row}\t{row % 3 + 1}\n")
    tracemalloc.start()
    try:
        prior = PriorRun.read(report)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert prior.acknowledged == {1, 2, 3}
    assert peak < 256 * 1024


@pytest.mark.parametrize(
    ("row", "rule"),
    [
        (b"\xff\xfe not text\n", "row 2 is not UTF-8 text"),
        ("{id}\tUNACKNOWLEDGED\t-\t-\t\u0661\u0662\n".encode(), "row 2 is not a report row"),
        (b"{id}\tUNACKNOWLEDGED\t-\t-\t+3\n", "row 2 is not a report row"),
        (b"{id}\tUNACKNOWLEDGED\t-\t-\n", "row 2 is not a report row"),
    ],
)
def test_a_row_that_is_not_one_is_named(tmp_path: Path, row: bytes, rule: str) -> None:
    event_id = str(uuid.uuid4())
    report = tmp_path / "r.tsv"
    first = f"{event_id}\t{UNACKNOWLEDGED}\t-\t-\t1\n".encode()
    report.write_bytes(first + row.replace(b"{id}", event_id.encode()))
    with pytest.raises(OpsError) as info:
        PriorRun.read(report)
    assert str(info.value).startswith(f"--skip-acknowledged {report}: {rule}")


def test_a_superscript_partition_is_not_an_acknowledgement(tmp_path: Path) -> None:
    report = tmp_path / "r.tsv"
    report.write_text(f"{uuid.uuid4()}\tzf801.orders.exit-restriction\t\u00b2\t7\t1\n", "utf-8")
    assert PriorRun.read(report).acknowledged == frozenset()


def test_crlf_rows_are_read(tmp_path: Path) -> None:
    ids = [str(uuid.uuid4()) for _ in range(2)]
    report = tmp_path / "r.tsv"
    report.write_bytes(
        f"{ids[0]}\tzf801.orders.exit-restriction\t0\t7\t1\r\n"
        f"{ids[1]}\t{UNACKNOWLEDGED}\t-\t-\t2\r\n".encode()
    )
    prior = PriorRun.read(report)
    assert prior.acknowledged == {1} and dict(prior.unacknowledged) == {2: ids[1]}
