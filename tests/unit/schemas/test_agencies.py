"""The agency list: the packaged demo set, lookups, provincial routing rules, and the
loader's refusal of malformed lists."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from schemas.agencies import (
    NATIONAL,
    POLICE_ROLES,
    Agency,
    AgencyRole,
    agencies_in_province,
    court_for_case_abbr,
    courts,
    get_agency,
    load_agencies,
    parse_agency_list,
    police_units,
    units_serving_court,
)
from schemas.errors import AgencyListError, BusError, UnknownAgencyError
from schemas.identifiers import parse_case_number

PACKAGED = Path(__file__).resolve().parents[3] / "schemas" / "data" / "agencies.yaml"


def _document() -> dict[str, object]:
    loaded = yaml.safe_load(PACKAGED.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_packaged_list_has_the_demo_set() -> None:
    court_list = courts()
    assert len(court_list) >= 6
    assert len({c.province.code for c in court_list if c.province}) >= 3
    assert get_agency("BJ01").name == "北京市第一中级人民法院"
    assert get_agency("BJ01").case_abbr == "京01"
    assert get_agency("SH0115").case_abbr == "沪0115"
    assert get_agency("GD0304").name == "深圳市福田区人民法院"
    assert get_agency("SPC").case_abbr == "最高法" and get_agency("SPC").province is None
    assert get_agency("SPC-COMMAND").role is AgencyRole.COMMAND_SYSTEM
    for code in ("BUS-MATCHER", "BUS-ROUTER", "BUS-AUDIT"):
        assert get_agency(code).role is AgencyRole.BUS


def test_every_province_with_courts_has_each_police_role() -> None:
    for province in {c.province.code for c in courts() if c.province}:
        roles = {a.role for a in agencies_in_province(province)}
        assert roles >= POLICE_ROLES, province


def test_agency_fields() -> None:
    unit = get_agency("110000230000")
    assert unit == Agency(
        code="110000230000",
        name="北京出入境边防检查总站",
        role=AgencyRole.BORDER_CONTROL,
        province=unit.province,
        name_en=unit.name_en,
    )
    assert unit.province is not None and (unit.province.code, unit.province.name) == (
        "11",
        "北京市",
    )
    assert unit.is_police and not get_agency("BJ01").is_police
    assert unit.source == "zf801:agency/110000230000"
    with pytest.raises(AttributeError):
        unit.code = "x"  # type: ignore[misc]


def test_unknown_agency_is_a_clear_error() -> None:
    with pytest.raises(UnknownAgencyError, match="'BJ99' is not in the agency list") as info:
        get_agency("BJ99")
    assert isinstance(info.value, BusError) and isinstance(info.value, LookupError)
    assert info.value.code == "BJ99"
    with pytest.raises(UnknownAgencyError, match="not a court"):
        load_agencies().get_court("110000000000")


def test_police_units_by_role() -> None:
    border = police_units(AgencyRole.BORDER_CONTROL)
    assert {a.code for a in border} == {
        "110000230000",
        "310000230000",
        "440100230000",
        "440300230000",
    }
    assert all(a.is_police for a in police_units())
    assert len(police_units()) == sum(len(police_units(r)) for r in POLICE_ROLES)
    with pytest.raises(ValueError, match="not a police role"):
        police_units(AgencyRole.COURT)


def test_routing_follows_the_provincial_rules() -> None:
    codes = {a.code for a in units_serving_court("GD0304", AgencyRole.BORDER_CONTROL)}
    assert codes == {"440100230000", "440300230000"}
    beijing = units_serving_court("BJ0105", AgencyRole.TRAFFIC_MANAGEMENT)
    assert [a.code for a in beijing] == ["110000110000"]
    assert [a.code for a in units_serving_court("SH01", AgencyRole.BORDER_CONTROL)] == [
        "310000230000"
    ]
    spc = units_serving_court("SPC", AgencyRole.BORDER_CONTROL)
    assert len(spc) == 4  # the national rule
    assert load_agencies().provinces_served_by("440300230000") == {"44", "national"}
    with pytest.raises(UnknownAgencyError):
        units_serving_court("110000230000", AgencyRole.BORDER_CONTROL)


def test_each_court_is_governed_by_its_provinces_rule_or_the_national_one() -> None:
    agencies = load_agencies()
    assert agencies.provinces() == ("11", "31", "44", NATIONAL)
    assert agencies.rule_province("BJ0105") == "11"
    assert agencies.rule_province("GD03") == "44"
    assert agencies.rule_province("SPC") == NATIONAL
    with pytest.raises(UnknownAgencyError):
        agencies.rule_province("110000230000")  # a police unit, not a court


def test_court_codes_follow_the_documented_scheme() -> None:
    for court in courts():
        assert court.case_abbr is not None
        if court.province is None:
            assert court.code == "SPC"
            continue
        digits = court.case_abbr[1:]
        assert court.code == court.province.iso + digits
        assert court.case_abbr[0] == court.province.case_char


def test_case_numbers_lead_back_to_their_court() -> None:
    case = parse_case_number("（2016）京01执123号")
    assert court_for_case_abbr(case.court_abbr).code == "BJ01"
    with pytest.raises(UnknownAgencyError):
        court_for_case_abbr("京99")


def test_loading_a_file_and_caching_the_packaged_one(tmp_path: Path) -> None:
    assert load_agencies() is load_agencies()
    path = tmp_path / "agencies.yaml"
    path.write_text(PACKAGED.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_agencies(path).agencies.keys() == load_agencies().agencies.keys()
    with pytest.raises(AgencyListError, match="not found"):
        load_agencies(tmp_path / "missing.yaml")
    path.write_text("agencies: [", encoding="utf-8")
    with pytest.raises(AgencyListError, match="not valid YAML"):
        load_agencies(path)


def _with_agency(**changes: object) -> dict[str, object]:
    doc = _document()
    entries = doc["agencies"]
    assert isinstance(entries, list)
    court = {"code": "BJ02", "role": "court", "province": "11", "case_abbr": "京02"}
    entries.append({**court, "name": "北京市第二中级人民法院", **changes})
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"format": "other"}, "format"),
        ({"format": "zf801-agencies/1", "agencies": []}, "non-empty list"),
        (_with_agency(), None),
        (_with_agency(code="BJ01", case_abbr="京01"), "appears twice"),
        (_with_agency(code="SPC2", province=None, case_abbr="最高法"), "case_abbr 最高法 twice"),
        (_with_agency(role="judge"), "role must be one of"),
        (_with_agency(code="BJ-02"), "code does not match"),
        (_with_agency(code="BJ03"), "court code must be BJ02"),
        (_with_agency(case_abbr="沪02"), "must start with 京"),
        (_with_agency(case_abbr=None), "needs a case_abbr"),
        (_with_agency(province=11), "quoted 2-digit"),
        (_with_agency(province="99"), "quoted 2-digit"),
        (_with_agency(province=None), "only the SPC"),
        (_with_agency(name=""), "'name' must be a non-empty string"),
        (_with_agency(code="1100002300", role="border-control", case_abbr=None), "code does"),
        (
            _with_agency(code="110000230001", role="border-control", case_abbr=None, province=None),
            "needs its province",
        ),
        (_with_agency(code="BUS-X1", role="bus", province=None), "only courts"),
    ],
)
def test_malformed_lists_are_refused(doc: dict[str, object], message: str | None) -> None:
    if message is None:
        assert parse_agency_list(doc).get("BJ02").case_abbr == "京02"
        return
    with pytest.raises(AgencyListError, match=message):
        parse_agency_list(doc)


def _with_rules(rules: object) -> dict[str, object]:
    doc = _document()
    doc["province_rules"] = rules
    return doc


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (None, "must be a mapping"),
        ({11: {}}, "quoted GB/T 2260"),
        ({"11": []}, "must map police roles"),
        ({"11": {"court": ["BJ01"]}}, "must be a police role"),
        ({"11": {"border-control": "110000230000"}}, "must be a police role with a list"),
        ({"11": {"border-control": ["110000110000"]}}, "is not a border-control unit"),
        ({"11": {"border-control": ["999999999999"]}}, "is not a border-control unit"),
    ],
)
def test_malformed_rules_are_refused(rules: object, message: str) -> None:
    with pytest.raises(AgencyListError, match=message):
        parse_agency_list(_with_rules(rules))


def test_a_province_with_courts_but_no_border_control_rule_is_refused() -> None:
    doc = _document()
    rules = doc["province_rules"]
    assert isinstance(rules, dict)
    del rules["31"]["border-control"]
    with pytest.raises(AgencyListError, match="names no border-control unit for SH"):
        parse_agency_list(doc)


def test_list_is_immutable() -> None:
    agencies = load_agencies()
    with pytest.raises(TypeError):
        agencies.agencies["X"] = get_agency("BJ01")  # type: ignore[index]
    with pytest.raises(TypeError):
        agencies.rules["11"][AgencyRole.BORDER_CONTROL] = ()  # type: ignore[index]
