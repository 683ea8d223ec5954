"""What a court's query client makes of the answers it got: who answered, who did not,
who was late, and the answers merged per subject; and what it refuses to ask."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from consumers.query_client import Answer, QueryOutcome, QueryRefused, prepared_query
from schemas.queries import QueryKindError, query_kind
from tests.builders import Records

DEADLINE = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _answer(unit: str, status: str, late: bool = False, **document: Any) -> Answer:
    return Answer(unit, status, DEADLINE, late, 0.01, f"id-{unit}", {"status": status, **document})


def _outcome(kind: str, expected: tuple[str, ...], *answers: Answer) -> QueryOutcome:
    outcome = QueryOutcome(query_kind(kind), "c0", {}, expected, DEADLINE)
    outcome.answers.update({answer.unit: answer for answer in answers})
    return outcome


def _stay(hotel: str, at: str) -> dict[str, Any]:
    return {"hotel_name": hotel, "hotel_address": "x", "checked_in_at": at}


def test_stays_from_every_province_are_merged_in_time_order_once() -> None:
    shared = _stay("B", "2026-01-02T00:00:00.000000Z")
    outcome = _outcome(
        "P5", ("A", "B", "C"),
        _answer("A", "FOUND", person={"name": "王", "id_number": "1"},
                stays=[shared, _stay("A", "2026-01-03T00:00:00.000000Z")]),
        _answer("C", "FOUND", person={"name": "王", "id_number": "1"},
                stays=[_stay("C", "2026-01-01T00:00:00.000000Z"), shared]),
    )  # fmt: skip
    assert [s["hotel_name"] for s in outcome.merged()["stays"]] == ["C", "B", "A"]
    assert outcome.merged()["person"] == {"name": "王", "id_number": "1"}
    assert outcome.missing == ("B",) and outcome.completeness == "2 of 3 answered"
    assert not outcome.complete and outcome.status == "FOUND"


def test_not_found_everywhere_is_not_found_and_refusals_alone_are_refused() -> None:
    assert _outcome("P1", ("A",), _answer("A", "NOT_FOUND")).status == "NOT_FOUND"
    assert _outcome("P1", ("A",), _answer("A", "REFUSED")).status == "REFUSED"
    assert (
        _outcome("P1", ("A", "B"), _answer("A", "REFUSED"), _answer("B", "NOT_FOUND")).status
        == "NOT_FOUND"
    )
    assert _outcome("P1", ("A",)).status == "PENDING"


def test_late_answers_are_named_and_a_refusals_answers_are_not_merged() -> None:
    vehicle = {"vin": "V1", "plate_number": "京A1"}
    outcome = _outcome(
        "P4", ("A", "B", "C"),
        _answer("A", "FOUND", vehicles=[vehicle]),
        _answer("B", "FOUND", late=True, vehicles=[vehicle, {"vin": "V0", "plate_number": "沪B2"}]),
        _answer("C", "REFUSED", vehicles=[{"vin": "V9"}], refusal_reason="quota"),
    )  # fmt: skip
    assert outcome.late == ("B",) and outcome.complete
    assert [v["vin"] for v in outcome.merged()["vehicles"]] == ["V0", "V1"]
    document = outcome.as_json()
    assert document["late"] == ["B"] and document["answers"][2]["refusal_reason"] == "quota"


def test_crossings_keep_the_first_person_and_phone_found() -> None:
    outcome = _outcome(
        "P3", ("A", "B"),
        _answer("A", "FOUND", person=None, registered_phone=None,
                crossings=[{"crossed_at": "2026-01-02T00:00:00.000000Z"}]),
        _answer("B", "FOUND", person={"name": "王"}, crossings=[], registered_phone="13812345678"),
    )  # fmt: skip
    merged = outcome.merged()
    assert merged["person"] == {"name": "王"} and merged["registered_phone"] == "13812345678"
    assert len(merged["crossings"]) == 1


_NOW = dt.datetime.now(dt.UTC)


def test_a_good_query_is_completed_with_its_deadline() -> None:
    record = prepared_query("P1", Records.query("P1", "11010519491231002X"), court="BJ01",
                            now=_NOW, wait_s=20)  # fmt: skip
    assert record["deadline"] == _NOW + dt.timedelta(seconds=20)


@pytest.mark.parametrize("kind", [None, 5, b"P1", ["P1"], "P9", ""])
def test_a_kind_that_is_none_of_p1_to_p5_is_refused_by_name(kind: Any) -> None:
    with pytest.raises(QueryKindError, match=r"is not one of P1 \(identity\)"):
        prepared_query(kind, Records.query("P1", "11010519491231002X"), court="BJ01", now=_NOW,
                       wait_s=20)  # fmt: skip


@pytest.mark.parametrize(
    ("wait_s", "rule"),
    [(float("nan"), "wait.range"), (float("inf"), "wait.range"), (-1, "wait.range"),
     (0, "wait.range"), (1e12, "wait.range"), ("10", "wait.type"), (True, "wait.type"),
     (None, "wait.type")],
)  # fmt: skip
def test_a_wait_that_is_no_sane_number_of_seconds_is_refused_naming_the_rule(
    wait_s: Any, rule: str
) -> None:
    with pytest.raises(QueryRefused, match=rf"^wait_s: .*\[rule {rule}\]$"):
        prepared_query("P1", Records.query("P1", "11010519491231002X"), court="BJ01", now=_NOW,
                       wait_s=wait_s)  # fmt: skip
