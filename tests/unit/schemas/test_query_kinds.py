"""Who answers each query kind, and the edge's rules on a query's times."""

from __future__ import annotations

import datetime as dt

import pytest

from schemas.edge import normalise_event
from schemas.envelope import format_time
from schemas.errors import IdentifierError
from schemas.jsonmap import from_json
from schemas.queries import (
    QUERY_KINDS,
    QueryKind,
    QueryKindError,
    kind_of_query,
    kind_of_result,
    query_kind,
    responders,
)
from schemas.registry import default_registry
from tests.builders import Records

BEIJING_PERSON = "110105198003121238"
GUANGDONG_PERSON = "440304199005216316"
JIANGSU_PERSON = "320102198001011235"


def _record(kind: str, subject: str, **fields: object) -> dict[str, object]:
    chosen = query_kind(kind)
    now = dt.datetime.now(dt.UTC)
    later = now + dt.timedelta(minutes=5)
    document = Records.query(
        kind, subject, correlation_id="0f8d7a52-1b3c-4d5e-8f90-1a2b3c4d5e6f",
        requested_at=format_time(now), deadline=format_time(later),
        **fields,
    )  # fmt: skip
    record: dict[str, object] = from_json(default_registry().get(chosen.query_schema), document)
    return record


@pytest.mark.parametrize("name", ["P5", "p5", "hotel-stays", "cn.zf801.query.v1.HotelStayQuery"])
def test_a_kind_is_found_by_code_name_or_schema(name: str) -> None:
    assert query_kind(name).code == "P5"


@pytest.mark.parametrize("name", ["P6", "", "hotels", "cn.zf801.police.v1.HotelStayResult"])
def test_an_unknown_kind_is_refused_naming_the_kinds(name: str) -> None:
    with pytest.raises(QueryKindError, match=r"P1 \(identity\).*P5 \(hotel-stays\)"):
        query_kind(name)


def test_each_kind_has_a_query_and_a_result_schema() -> None:
    registry = default_registry()
    for kind in QUERY_KINDS:
        assert kind_of_query(registry.get(kind.query_schema).full_name) is kind
        assert kind_of_result(registry.get(kind.result_schema).full_name) is kind
    assert kind_of_query("cn.zf801.orders.v1.LocateDebtorOrder") is None


@pytest.mark.parametrize("kind", QUERY_KINDS, ids=lambda kind: kind.code)
def test_a_purpose_is_permitted_or_refused_naming_the_field_and_the_rule(kind: QueryKind) -> None:
    for role in kind.purposes:
        assert kind.purpose_problem(role) is None
    problem = kind.purpose_problem("WITNESS")
    assert problem is not None
    assert problem.startswith("subject_role: ") and problem.endswith("[rule purpose]")
    assert all(role in problem for role in kind.purposes)


def test_a_nationwide_kind_goes_to_every_provincial_responder_of_its_role() -> None:
    assert responders(query_kind("P5"), _record("P5", BEIJING_PERSON)) == (
        "110000000000", "310000000000", "440000000000",
    )  # fmt: skip
    assert responders(query_kind("P3"), _record("P3", BEIJING_PERSON)) == (
        "110000230000", "310000230000", "440100230000", "440300230000",
    )  # fmt: skip
    assert responders(query_kind("P4"), _record("P4", BEIJING_PERSON)) == (
        "110000110000", "310000110000", "440000110000",
    )  # fmt: skip


def test_identity_goes_to_the_subjects_home_province_only() -> None:
    assert responders(query_kind("P1"), _record("P1", BEIJING_PERSON)) == ("110000000000",)
    assert responders(query_kind("P2"), _record("P2", GUANGDONG_PERSON)) == ("440000000000",)


def test_a_home_province_without_a_responder_asks_them_all() -> None:
    assert len(responders(query_kind("P1"), _record("P1", JIANGSU_PERSON))) == 3


def test_a_deadline_before_the_query_was_made_is_refused_at_the_edge() -> None:
    record = _record("P1", BEIJING_PERSON)
    record["deadline"] = record["requested_at"]
    with pytest.raises(IdentifierError, match=r"deadline.*deadline\.order"):
        normalise_event(query_kind("P1").query_schema, record)


def test_a_stays_period_must_end_after_it_starts() -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    record = _record("P5", BEIJING_PERSON)
    record["stays_from"], record["stays_until"] = start, start - dt.timedelta(days=1)
    with pytest.raises(IdentifierError, match=r"stays_until.*stays_period\.order"):
        normalise_event(query_kind("P5").query_schema, record)


def test_a_query_citing_another_courts_case_number_is_refused_at_the_edge() -> None:
    record = _record("P1", BEIJING_PERSON, case_number="（2026）沪01执5号")
    with pytest.raises(IdentifierError, match=r"case_number.*case_number\.court"):
        normalise_event(query_kind("P1").query_schema, record)
