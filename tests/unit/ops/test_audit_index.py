"""The audit index behind ``zf801 audit search``: subjects, filters, positions, gaps."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ops.audit_index import AuditIndex, AuditRow, IndexGap, SearchQuery, subjects_named

T0 = dt.datetime(2026, 11, 28, 8, 0, tzinfo=dt.UTC)
PERSON = "110105198003121238"
COMPANY = "91110000100000589B"


def _row(offset: int, *, minutes: int = 0, partition: int = 0, **fields: object) -> AuditRow:
    values: dict[str, object] = {
        "event_id": f"id-{partition}-{offset}", "occurred_at": T0 + dt.timedelta(minutes=minutes),
        "agency": "BJ01", "user": "clerk", "role": "court", "operation": "query.ask",
        "target": "query", "result": "SUCCESS", "detail": None, "client_host": "court-pc",
        "client_address": "10.1.2.3", "client_application": "zf801 1.0", "sequence": offset,
    }  # fmt: skip
    values.update(fields)
    return AuditRow(partition=partition, offset=offset, **values)  # type: ignore[arg-type]


@pytest.fixture
def index(tmp_path: Path) -> AuditIndex:
    return AuditIndex(tmp_path / "audit.sqlite", "zf801.audit")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (f"query 1f (P1) about {PERSON}", {PERSON}),
        (f"order for {COMPANY.lower()} and 11010519800312123x", {COMPANY, "11010519800312123X"}),
        ("a 19-digit 1101051980031212381 is no ID number", set()),
        ("no subject here", set()),
    ],
)
def test_the_subjects_of_a_record_are_the_identifiers_it_names(text: str, found: set[str]) -> None:
    assert subjects_named(text, None) == found


def test_each_criterion_narrows_the_search(index: AuditIndex) -> None:
    index.add(
        [
            _row(0, target=f"query a (P1) about {PERSON}"),
            _row(1, minutes=1, agency="SH01", user="li", target=f"query b (P5) about {PERSON}"),
            _row(2, minutes=2, operation="alerts.read", target="zf801.alerts.BJ01"),
            _row(
                3,
                minutes=3,
                operation="alerts.read",
                target="zf801.alerts.SH01",
                result="DENIED",
                detail=f"{COMPANY}",
            ),
        ],
        {0: 4},
    )

    def targets(**criteria: object) -> list[str]:
        return [row.target for row in index.search(SearchQuery(**criteria))]  # type: ignore[arg-type]

    assert targets(subject=PERSON.lower()) == [f"query a (P1) about {PERSON}",
                                               f"query b (P5) about {PERSON}"]  # fmt: skip
    assert targets(subject=PERSON, agency="SH01") == [f"query b (P5) about {PERSON}"]
    assert targets(user="li") == [f"query b (P5) about {PERSON}"]
    assert targets(operation="alerts.") == ["zf801.alerts.BJ01", "zf801.alerts.SH01"]
    assert targets(operation="alerts") == []  # exact unless it ends with a dot
    assert targets(result="denied", subject=COMPANY) == ["zf801.alerts.SH01"]
    assert len(targets(since=T0 + dt.timedelta(minutes=1), until=T0 + dt.timedelta(minutes=3))) == 2
    assert targets(limit=1) == ["zf801.alerts.SH01"]  # the newest, shown oldest first


def test_a_record_read_twice_is_indexed_once_and_positions_only_move_forward(
    index: AuditIndex, tmp_path: Path
) -> None:
    assert index.add([_row(0), _row(1)], {0: 2, 1: 0}) == 2
    assert index.add([_row(1), _row(2)], {0: 1}) == 1  # an older end does not move it back
    index.close()
    reopened = AuditIndex(tmp_path / "audit.sqlite", "zf801.audit")
    assert reopened.positions() == {0: 2, 1: 0} and reopened.count() == 3
    first = reopened.search(SearchQuery())[0]
    assert first.client_address == "10.1.2.3" and first.occurred_at == T0
    assert first.document()["client"] == {"host": "court-pc", "address": "10.1.2.3",
                                          "application": "zf801 1.0"}  # fmt: skip


def test_records_deleted_before_they_were_indexed_are_a_gap(index: AuditIndex) -> None:
    index.add([_row(0)], {0: 10, 1: 5})
    gaps = index.gaps({0: 40, 1: 5, 2: 100})  # partition 2 never indexed: no gap
    assert gaps == [IndexGap(0, 10, 39)]
    assert "records 10-39 were deleted by the topic's retention" in str(gaps[0])
