"""Case numbers (案号) and court/agency codes checked against the agency list."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.agencies import AgencyRole
from schemas.identifiers import (
    ENFORCEMENT_KINDS,
    CaseNumber,
    IdentifierError,
    check_case_number_court,
    normalise_agency_code,
    normalise_case_number,
    normalise_court_code,
    parse_case_number,
)

TODAY = dt.date(2026, 11, 27)


def _parse(value: object) -> CaseNumber:
    return parse_case_number(value, "order.case_number", today=TODAY)


def _case_rule(value: object) -> str:
    with pytest.raises(IdentifierError) as info:
        _parse(value)
    assert "order.case_number" in str(info.value)
    return info.value.rule


@pytest.mark.parametrize(
    ("raw", "parts"),
    [
        ("（2016）京01执123号", (2016, "京01", "执", 123)),
        ("(2016)京01执123号", (2016, "京01", "执", 123)),
        ("（2016) 京01 执 123 号", (2016, "京01", "执", 123)),
        ("（２０１６）京０１执１２３号", (2016, "京01", "执", 123)),
        ("(2020)沪0115执恢7号", (2020, "沪0115", "执恢", 7)),
        ("(2021)粤0304执保99999号", (2021, "粤0304", "执保", 99999)),
        ("(2019)京执异1号", (2019, "京", "执异", 1)),
        ("(2019)最高法执复45号", (2019, "最高法", "执复", 45)),
        ("(2019)最高法执监12号", (2019, "最高法", "执监", 12)),
        ("(2022)内01执协3号", (2022, "内01", "执协", 3)),
        ("(2022)黔0102执他3号", (2022, "黔0102", "执他", 3)),
        ("(2023)兵01执请2号", (2023, "兵01", "执请", 2)),
        ("(2018)京0105民初12345号", (2018, "京0105", "民初", 12345)),
        ("(2018)京0105刑初5号", (2018, "京0105", "刑初", 5)),
        ("(2024)京0105司惩8号", (2024, "京0105", "司惩", 8)),
        ("(2016)京01执0123号", (2016, "京01", "执", 123)),  # leading zero dropped
        ("(1949)京执1号", (1949, "京", "执", 1)),
        ("(2026)京执1号", (2026, "京", "执", 1)),
    ],
)
def test_case_number_parses(raw: str, parts: tuple[int, str, str, int]) -> None:
    case = _parse(raw)
    assert (case.year, case.court_abbr, case.kind, case.seq) == parts
    assert str(case) == f"（{parts[0]}）{parts[1]}{parts[2]}{parts[3]}号"
    assert normalise_case_number(raw, today=TODAY) == str(case)


def test_case_number_enforcement_flag() -> None:
    assert _parse("(2016)京01执123号").is_enforcement
    assert not _parse("(2016)京01民初123号").is_enforcement


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("(2016)京01执123", "case_number.format"),  # no 号
        ("2016京01执123号", "case_number.format"),
        ("(16)京01执123号", "case_number.format"),
        ("(2016)京001执123号", "case_number.format"),  # 3 digits
        ("(2016)京01执号", "case_number.format"),
        ("(2016)01执123号", "case_number.format"),
        ("(2016)港01执123号", "case_number.format"),  # not a court character
        ("(2016)蒙01执123号", "case_number.format"),  # Inner Mongolia is 内 in case numbers
        ("(2014)朝执字第123号", "case_number.format"),  # pre-2016 format
        ("(2016)京01执行123号", "case_number.kind"),
        ("(2016)京01刑核12345678号", "case_number.format"),
        ("(2016)京01执123456号", "case_number.seq"),
        ("(2016)京01执0号", "case_number.seq"),
        ("(1948)京01执1号", "case_number.year"),
        ("(2027)京01执1号", "case_number.year"),
        (None, "case_number.required"),
        ("", "case_number.required"),
        (2016, "case_number.type"),
        ("执" * 10_000, "case_number.length"),
        ("(2016)京01执\x00123号", "case_number.characters"),
        ("(2016)京01执123号\u202e", "case_number.characters"),
        ("(2016)京01执123号😀", "case_number.characters"),
        ("(2016)京01执123号; rm -rf /", "case_number.format"),
        ("【2016】京01执123号", "case_number.characters"),
    ],
)
def test_case_number_rejects(raw: object, rule: str) -> None:
    assert _case_rule(raw) == rule


def test_case_number_message_shows_the_public_number() -> None:
    with pytest.raises(IdentifierError) as info:
        _parse("(2016)京01执行123号")
    assert "'(2016)京01执行123号'" in str(info.value)
    assert "[rule case_number.kind]" in str(info.value)


court_chars = st.sampled_from("京津冀晋内辽吉黑沪苏浙皖闽赣鲁豫鄂湘粤桂琼渝川黔云藏陕甘青宁新军兵")
court_abbrs = st.one_of(
    st.just("最高法"),
    st.builds(
        lambda c, d: c + d,
        court_chars,
        st.sampled_from(["", "01", "02", "0105", "0304", "7101"]),
    ),
)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1949, TODAY.year),
    court_abbrs,
    st.sampled_from(sorted(ENFORCEMENT_KINDS)),
    st.integers(1, 99999),
    st.sampled_from([("（", "）"), ("(", ")"), ("(", "）")]),
    st.sampled_from(["", " "]),
)
def test_generated_case_numbers_parse_and_normalise_idempotently(
    year: int, abbr: str, kind: str, seq: int, brackets: tuple[str, str], space: str
) -> None:
    raw = f"{brackets[0]}{year}{brackets[1]}{space}{abbr}{kind}{space}{seq}号"
    case = _parse(raw)
    assert (case.year, case.court_abbr, case.kind, case.seq) == (year, abbr, kind, seq)
    normal = normalise_case_number(raw, today=TODAY)
    assert normalise_case_number(normal, today=TODAY) == normal == str(case)


# ---- court and agency codes ----
@pytest.mark.parametrize(
    ("raw", "expected"),
    [("BJ01", "BJ01"), ("bj0105", "BJ0105"), (" SPC ", "SPC"), ("ＧＤ０３０４", "GD0304")],
)
def test_court_code_accepts_courts_of_the_list(raw: str, expected: str) -> None:
    assert normalise_court_code(raw, "order.court_code") == expected


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("BJ99", "court_code.unknown"),
        ("110000230000", "court_code.unknown"),  # a border-control unit, not a court
        ("BUS-MATCHER", "court_code.unknown"),
        ("BJ_01", "court_code.format"),
        ("北京一中院", "court_code.format"),
        ("BJ01;DROP", "court_code.format"),
        ("X" * 40, "court_code.format"),
        (None, "court_code.required"),
        ("", "court_code.required"),
        ("A" * 10_000, "court_code.length"),
        ("BJ\x0001", "court_code.characters"),
        ("BJ01\u202e", "court_code.characters"),
    ],
)
def test_court_code_rejects(raw: object, rule: str) -> None:
    with pytest.raises(IdentifierError) as info:
        normalise_court_code(raw, "order.court_code")
    assert info.value.rule == rule
    assert str(info.value).startswith("order.court_code")


def test_agency_code_with_and_without_role() -> None:
    assert normalise_agency_code("110000230000") == "110000230000"
    assert normalise_agency_code("bus-matcher", role=AgencyRole.BUS) == "BUS-MATCHER"
    with pytest.raises(IdentifierError) as info:
        normalise_agency_code("110000230000", "ack.agency", role=AgencyRole.TRAFFIC_MANAGEMENT)
    assert info.value.rule == "agency_code.unknown"
    assert "border-control" in str(info.value)


def test_case_number_belongs_to_its_court() -> None:
    case = check_case_number_court("(2016)京01执123号", "BJ01", today=TODAY)
    assert case == CaseNumber(2016, "京01", "执", 123)
    assert check_case_number_court(case, "BJ01") is case
    assert check_case_number_court("(2020)最高法执监1号", "SPC", today=TODAY).court_abbr == "最高法"


def test_case_number_of_another_court_is_rejected() -> None:
    with pytest.raises(IdentifierError) as info:
        check_case_number_court("(2016)京01执123号", "BJ0105", "order.case_number", today=TODAY)
    err = info.value
    assert err.rule == "case_number.court"
    assert "order.case_number" in str(err) and "BJ0105" in str(err) and "京0105" in str(err)
