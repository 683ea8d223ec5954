"""Per-unit topics (``{unit}``, read-scope ``own-unit``): the action notices of one police
unit are named for it, read by it alone, and a malformed or hostile unit code never
becomes a topic name."""

from __future__ import annotations

import re

import pytest

from schemas.agencies import _CODE_PATTERNS, POLICE_ROLES, AgencyList, AgencyRole
from topics._rules import _VALUE_SHAPES
from topics.acls import Operation, PatternKind, ResourceKind, desired_acls
from topics.catalog import Catalog
from topics.courts import unit_codes
from topics.errors import CourtCodeInvalid, ProvinceCodeInvalid, UnitCodeInvalid, UnknownTopic
from topics.spec import (
    COURT_CODE_PATTERN,
    COURT_PLACEHOLDER,
    PROVINCE_PATTERN,
    PROVINCE_PLACEHOLDER,
    UNIT_CODE_PATTERN,
    UNIT_PLACEHOLDER,
    ReadScope,
)

NOTICES = "action-notices"
UNIT_A, UNIT_B = "110000000000", "110105000000"  # two public-security units of Beijing
POLICE = ("border-control", "traffic-management", "public-security")


def test_the_unit_pattern_is_the_police_code_pattern_of_the_agency_list() -> None:
    for role in POLICE_ROLES:
        assert _CODE_PATTERNS[role].pattern == UNIT_CODE_PATTERN.pattern.strip("^$")


def test_a_unit_topic_is_named_for_the_unit(catalog: Catalog) -> None:
    spec = catalog.get(NOTICES)
    assert spec.per_unit and spec.is_template and not (spec.per_court or spec.per_province)
    assert spec.access.read_scope is ReadScope.OWN_UNIT
    assert catalog.topic_name(NOTICES, unit=UNIT_A) == f"zf801.police.action-notices.{UNIT_A}"
    prefixed = catalog.with_name_prefix("t-1-")
    assert prefixed.topic_name(NOTICES, unit=UNIT_A) == f"t-1-zf801.police.action-notices.{UNIT_A}"


@pytest.mark.parametrize(
    "hostile",
    [
        "11000000000",  # 11 digits
        "1100000000000",  # 13 digits
        "BJ01",  # a court code
        "11",  # a province
        "11000000000x",
        "110000000000.x",  # would reach another name
        "../110000000000",
        "110000000000\n",
        "１１００００００００００",  # full-width digits: str.isdigit but not [0-9]
        "",
    ],
)
def test_a_malformed_or_hostile_unit_code_is_refused_naming_the_field_and_rule(
    catalog: Catalog, hostile: str
) -> None:
    with pytest.raises(UnitCodeInvalid, match=r"unit code .* is malformed: must match \^\[0-9\]"):
        catalog.topic_name(NOTICES, unit=hostile)
    with pytest.raises(UnitCodeInvalid, match="malformed"):
        catalog.concrete_topics([], [], [hostile])


def test_a_unit_code_is_required_exactly_where_the_name_has_one(catalog: Catalog) -> None:
    with pytest.raises(UnitCodeInvalid, match="is per unit: a unit code is required"):
        catalog.topic_name(NOTICES)
    with pytest.raises(UnitCodeInvalid, match="is not per unit: unit code '110000000000'"):
        catalog.topic_name("trust", unit=UNIT_A)
    with pytest.raises(UnitCodeInvalid, match="is not per unit"):
        catalog.topic_name("alerts", "BJ01", unit=UNIT_A)
    with pytest.raises(ProvinceCodeInvalid, match="is not per province"):
        catalog.topic_name(NOTICES, province="11", unit=UNIT_A)
    with pytest.raises(CourtCodeInvalid, match="is not per court"):
        catalog.topic_name(NOTICES, "BJ01", unit=UNIT_A)


def test_concrete_topics_expand_the_unit_template_for_the_units_given(catalog: Catalog) -> None:
    topics = catalog.concrete_topics(["BJ01"], ["11"], [UNIT_A, UNIT_B, UNIT_A])
    notices = [t for t in topics if t.spec.id == NOTICES]
    assert [(t.name, t.unit, t.province, t.court) for t in notices] == [
        (f"zf801.police.action-notices.{UNIT_A}", UNIT_A, None, None),
        (f"zf801.police.action-notices.{UNIT_B}", UNIT_B, None, None),
    ]
    assert {t.unit for t in topics if not t.spec.per_unit} == {None}
    assert not [t for t in catalog.concrete_topics(["BJ01"], ["11"]) if t.spec.per_unit]


def test_resolve_maps_a_unit_topic_back_to_its_unit(catalog: Catalog) -> None:
    topic = catalog.resolve(f"zf801.police.action-notices.{UNIT_B}")
    assert (topic.spec.id, topic.unit, topic.province, topic.court) == (
        NOTICES, UNIT_B, None, None,
    )  # fmt: skip
    for stranger in ("zf801.police.action-notices.11", "zf801.police.action-notices.BJ01",
                     f"zf801.police.action-notices.{UNIT_A}0"):  # fmt: skip
        with pytest.raises(UnknownTopic):
            catalog.resolve(stranger)


def test_a_unit_reads_only_its_own_notices(catalog: Catalog) -> None:
    for role in POLICE:
        assert catalog.may_read(role, NOTICES, unit=UNIT_A, reader_unit=UNIT_A)
        assert not catalog.may_read(role, NOTICES, unit=UNIT_A, reader_unit=UNIT_B)
        assert not catalog.may_read(role, NOTICES, unit=UNIT_A)  # no identity, no access
        # a rule naming the reader for the unit's province gives nothing here
        assert not catalog.may_read(
            role, NOTICES, unit=UNIT_A, reader_unit=UNIT_B, reader_provinces={"11", "national"}
        )
    for role in ("court", "bus", "command-system"):
        assert not catalog.may_read(role, NOTICES, unit=UNIT_A, reader_unit=UNIT_A)
    name = catalog.topic_name(NOTICES, unit=UNIT_A)
    assert catalog.may_read_topic("public-security", name, reader_unit=UNIT_A)
    assert not catalog.may_read_topic("public-security", name, reader_unit=UNIT_B)
    with pytest.raises(UnitCodeInvalid):
        catalog.may_read("public-security", NOTICES, reader_unit=UNIT_A)
    assert catalog.may_write("bus", NOTICES) and not catalog.may_write("public-security", NOTICES)


def test_unit_codes_are_every_police_unit_of_the_agency_list(agencies: AgencyList) -> None:
    codes = unit_codes()
    assert codes == tuple(unit.code for unit in agencies.police_units())
    assert codes is not None and {UNIT_A, UNIT_B} <= set(codes)
    assert all(UNIT_CODE_PATTERN.fullmatch(code) for code in codes)


def _topic_acls(desired: frozenset, principal: str, topic: str) -> set[Operation]:
    return {
        acl.operation
        for acl in desired
        if acl.principal == principal
        and acl.resource_type is ResourceKind.TOPIC
        and acl.resource_name == topic
    }


def test_the_acls_give_each_unit_read_on_its_own_notice_topic_only(
    catalog: Catalog, agencies: AgencyList
) -> None:
    desired = desired_acls(catalog, agencies, [c.code for c in agencies.courts()])
    units = [unit.code for unit in agencies.police_units()]
    bus = {f"User:{a.code}" for a in agencies.with_role(AgencyRole.BUS)}
    for unit in units:
        topic = catalog.topic_name(NOTICES, unit=unit)
        readers = {
            acl.principal
            for acl in desired
            if acl.resource_name == topic and acl.operation is Operation.READ
        }
        assert readers == {f"User:{unit}"}, topic
        assert _topic_acls(desired, f"User:{unit}", topic) == {Operation.READ, Operation.DESCRIBE}
        writers = {
            acl.principal
            for acl in desired
            if acl.resource_name == topic and acl.operation is Operation.WRITE
        }
        assert writers == bus
    # Unit A of Beijing gets nothing on unit B's topic, though one rule names both.
    assert agencies.provinces_served_by(UNIT_A) & agencies.provinces_served_by(UNIT_B)
    assert not _topic_acls(desired, f"User:{UNIT_A}", catalog.topic_name(NOTICES, unit=UNIT_B))
    assert all(
        acl.pattern is PatternKind.LITERAL
        for acl in desired
        if "action-notices" in acl.resource_name
    )


@pytest.mark.parametrize(
    ("placeholder", "pattern", "samples"),
    [
        (COURT_PLACEHOLDER, COURT_CODE_PATTERN, ("BJ01", "00", "Z" * 16, "110000000000")),
        (PROVINCE_PLACEHOLDER, PROVINCE_PATTERN, ("11", "00", "99", "national")),
        (UNIT_PLACEHOLDER, UNIT_CODE_PATTERN, (UNIT_A, "0" * 12, "9" * 12)),
    ],
)
def test_the_collision_shapes_mirror_the_placeholder_patterns(
    placeholder: str, pattern: re.Pattern[str], samples: tuple[str, ...]
) -> None:
    """The collision rule compares shapes (a character class per position): each shape's
    smallest and largest names are well-formed values, and each sample has a shape."""
    shapes = _VALUE_SHAPES[placeholder]
    for shape in shapes:
        for pick in (min, max):
            assert pattern.fullmatch("".join(pick(chars) for chars in shape)), shape
    for sample in samples:
        assert any(
            len(shape) == len(sample)
            and all(c in chars for c, chars in zip(sample, shape, strict=True))
            for shape in shapes
        ), sample
