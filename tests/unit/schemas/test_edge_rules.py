"""The edge's text, time and cross-field rules (schemas.edge_rules, schemas.edge):
each hostile value is refused naming its field and rule, each honest one accepted."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from schemas.edge import normalise_event
from schemas.edge_rules import check_date, check_text
from schemas.errors import IdentifierError
from tests.builders import Records

ORDER = "cn.zf801.orders.v1.ExitRestrictionOrder"
VEHICLE_ORDER = "cn.zf801.orders.v1.VehicleSearchOrder"
RELEASE = "cn.zf801.orders.v1.OrderRelease"
CROSSING = "cn.zf801.sightings.v1.BorderCrossing"
NOW = dt.datetime.now(dt.UTC)
records = Records(11)


def _order(court: str = "BJ01", case_number: str = "（2026）京01执7号") -> dict[str, Any]:
    return records.person_order(court, case_number, records.id_number())


def _refused(schema: str, record: dict[str, Any], field: str, rule: str) -> IdentifierError:
    with pytest.raises(IdentifierError) as info:
        normalise_event(schema, record)
    assert (info.value.field, info.value.rule) == (field, rule)
    assert field in str(info.value) and rule in str(info.value)
    return info.value


# ---- text ----
@pytest.mark.parametrize(
    "hostile",
    ["\u200b", "\u2028", "\u2029", "\ufeff", "\r", "\n", "\t", "\x00", "\x7f", "\x85",
     "\u202e", "\u2066", "\ue000", "\u0378"],
)  # fmt: skip
def test_a_short_text_field_refuses_control_and_format_characters(hostile: str) -> None:
    record = _order()
    record["subject"]["name"] = f"李{hostile}四"
    error = _refused(ORDER, record, "subject.name", "text.characters")
    assert f"U+{ord(hostile):04X}" in str(error)
    assert "李" not in str(error)  # a name is personal data: not echoed


@pytest.mark.parametrize(
    "name", ["李四", "Anne-Marie O'Brien", "阿卜杜拉·买买提", "Zoë Ångström", "张 三"]
)
def test_a_short_text_field_accepts_names(name: str) -> None:
    record = _order()
    record["subject"]["name"] = name
    assert normalise_event(ORDER, record)["subject"]["name"] == name


def test_the_rule_covers_nested_and_array_text_fields() -> None:
    record = _order()
    record["sealed_documents"][0]["title"] = "执行裁定书\u200b"
    _refused(ORDER, record, "sealed_documents[0].title", "text.characters")
    record = _order()
    record["handler"]["name"] = "王\u2028法官"
    _refused(ORDER, record, "handler.name", "text.characters")


def test_free_text_may_hold_lf_and_tab_and_nothing_else() -> None:
    record = _order()
    record["police_requirements"] = "阻止出境\n\t并通知承办人"
    assert normalise_event(ORDER, record)["police_requirements"] == "阻止出境\n\t并通知承办人"
    for hostile in ("\r", "\u200b", "\u2028", "\ufeff", "\x00", "\u202e"):
        record["police_requirements"] = f"阻止出境{hostile}并通知承办人"
        _refused(ORDER, record, "police_requirements", "text.characters")


def test_check_text_decides_free_text_by_the_field_name() -> None:
    assert check_text("a\nb", "reason") == "a\nb"
    assert check_text("a\nb", "person.address") == "a\nb"
    with pytest.raises(IdentifierError, match=r"text\.characters"):
        check_text("a\nb", "person.name")


# ---- time ----
@pytest.mark.parametrize(
    ("field", "when", "rule"),
    [
        ("issued_at", dt.datetime(1, 1, 1, tzinfo=dt.UTC), "time.too_early"),
        ("issued_at", dt.datetime(1969, 12, 31, tzinfo=dt.UTC), "time.too_early"),
        ("issued_at", dt.datetime(9999, 12, 31, tzinfo=dt.UTC), "time.too_late"),
        ("issued_at", dt.datetime(2099, 1, 1, tzinfo=dt.UTC), "time.too_late"),
        ("issued_at", dt.timedelta(minutes=6), "time.too_late"),
        ("control_period_start", dt.datetime(1, 1, 1, tzinfo=dt.UTC), "time.too_early"),
        ("control_period_end", dt.datetime(9999, 1, 1, tzinfo=dt.UTC), "time.too_late"),
        ("control_period_end", dt.timedelta(days=3660), "time.too_late"),
    ],
)
def test_implausible_instants_are_refused(
    field: str, when: dt.datetime | dt.timedelta, rule: str
) -> None:
    """An offset is from the clock when the test runs (the suite may run for minutes)."""
    record = _order()
    record[field] = dt.datetime.now(dt.UTC) + when if isinstance(when, dt.timedelta) else when
    _refused(ORDER, record, field, rule)


@pytest.mark.parametrize(
    ("field", "when"),
    [
        ("issued_at", NOW + dt.timedelta(minutes=4)),
        ("issued_at", dt.datetime(1990, 1, 1, tzinfo=dt.UTC)),
        ("control_period_end", NOW + dt.timedelta(days=5 * 365)),
        ("control_period_start", NOW + dt.timedelta(days=1)),
    ],
)
def test_plausible_instants_are_accepted(field: str, when: dt.datetime) -> None:
    record = _order()
    record[field] = when
    assert normalise_event(ORDER, record)[field] == when


def test_the_clock_is_injectable() -> None:
    record = _order()
    record["issued_at"] = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)
    later = dt.datetime(2099, 1, 1, 0, 1, tzinfo=dt.UTC)
    assert normalise_event(ORDER, record, now=later)["issued_at"] == record["issued_at"]


def test_an_observation_in_the_far_future_is_refused() -> None:
    crossing = Records.border_crossing("110000230000", records.id_number())
    crossing["observed_at"] = dt.datetime(2099, 6, 1, tzinfo=dt.UTC)
    _refused(CROSSING, crossing, "observed_at", "time.too_late")
    crossing = Records.border_crossing("110000230000", records.id_number())
    assert normalise_event(CROSSING, crossing)["observed_at"] == crossing["observed_at"]


@pytest.mark.parametrize("gap", [dt.timedelta(0), -dt.timedelta(days=1)])
def test_a_control_period_must_end_after_it_starts(gap: dt.timedelta) -> None:
    record = _order()
    record["control_period_end"] = record["control_period_start"] + gap
    _refused(ORDER, record, "control_period_end", "control_period.order")


def test_a_birth_date_lies_from_1900_to_today() -> None:
    assert check_date(dt.date(1949, 12, 31), "person.birth_date") == dt.date(1949, 12, 31)
    for bad in (dt.date(1899, 12, 31), dt.date.today() + dt.timedelta(days=2)):
        with pytest.raises(IdentifierError, match=r"person\.birth_date.*date\.birth_date"):
            check_date(bad, "person.birth_date")
    assert check_date(dt.date(2040, 1, 1), "documents[0].valid_until") == dt.date(2040, 1, 1)


# ---- case number and province belong to the court ----
@pytest.mark.parametrize(
    ("court", "case_number"),
    [("BJ01", "（2026）沪01执7号"), ("BJ01", "（2026）京执7号"), ("BJ01", "（2026）京0105执7号"),
     ("SH01", "（2026）京01执7号"), ("SPC", "（2026）京01执7号")],
)  # fmt: skip
def test_a_case_number_of_another_court_is_refused(court: str, case_number: str) -> None:
    _refused(ORDER, _order(court, case_number), "case_number", "case_number.court")


@pytest.mark.parametrize(
    ("court", "case_number"),
    [
        ("BJ01", "(2026)京01执7号"),
        ("SH0115", "（2025）沪0115执恢3号"),
        ("SPC", "（2020）最高法执监1号"),
    ],
)
def test_a_case_number_of_the_enforcing_court_is_accepted(court: str, case_number: str) -> None:
    assert normalise_event(ORDER, _order(court, case_number))["enforcing_court_code"] == court


def test_a_release_carries_a_case_number_of_the_releasing_court() -> None:
    release = Records.release(_order(), "EXIT_RESTRICTION")
    assert normalise_event(RELEASE, release)["releasing_court_code"] == "BJ01"
    release["case_number"] = "（2026）沪01执7号"
    _refused(RELEASE, release, "case_number", "case_number.court")


def test_a_province_code_other_than_the_courts_is_refused() -> None:
    record = _order()
    record["province_code"] = "31"
    error = _refused(ORDER, record, "province_code", "province_code.court")
    assert "BJ01" in str(error)
    record["province_code"] = "11"
    assert normalise_event(ORDER, record)["province_code"] == "11"


@pytest.mark.parametrize("province_code", ["11", "31", "44"])
def test_the_spc_may_name_any_province(province_code: str) -> None:
    record = _order("SPC", "（2026）最高法执7号")
    record["province_code"] = province_code
    assert normalise_event(ORDER, record)["province_code"] == province_code


# ---- organisation codes in their customary hyphenated form ----
def _vehicle_order(organisation_code: str) -> dict[str, Any]:
    record = records.vehicle_order("BJ01", "（2026）京01执9号", records.plate(), records.vin())
    owner = {"kind": "LEGAL_PERSON", "name": "北京某某科技有限公司", "id_number": None,
             "organisation_code": organisation_code}  # fmt: skip
    record["subject"]["owner"] = owner
    return record


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("12345678-8", "123456788"), ("１２３４５６７８－８", "123456788"), ("123456788", "123456788"),
     ("91110000600037341L", "91110000600037341L")],
)  # fmt: skip
def test_a_hyphenated_organisation_code_is_accepted(raw: str, expected: str) -> None:
    out = normalise_event(VEHICLE_ORDER, _vehicle_order(raw))
    assert out["subject"]["owner"]["organisation_code"] == expected


@pytest.mark.parametrize(
    ("raw", "rule"),
    [("12345678-9", "organisation_code.check_char"), ("1234567#-8", "organisation_code.format"),
     ("12345678-88", "organisation_code.length"), ("9111000060003734", "credit_code.length")],
)  # fmt: skip
def test_a_bad_organisation_code_names_the_organisation_code_rule(raw: str, rule: str) -> None:
    _refused(VEHICLE_ORDER, _vehicle_order(raw), "subject.owner.organisation_code", rule)


# ---- blank text and more ordered times ----
@pytest.mark.parametrize("blank", ["", " ", "\u3000\n"])
@pytest.mark.parametrize("field", ["police_requirements", "subject.name", "handler.name"])
def test_a_required_text_field_must_not_be_blank(field: str, blank: str) -> None:
    record = _order()
    holder = record
    *parents, name = field.split(".")
    for parent in parents:
        holder = holder[parent]
    holder[name] = blank
    _refused(ORDER, record, field, "text.blank")


def test_an_optional_text_field_may_be_empty() -> None:
    stay = {**Records.hotel_check_in("110000110000", records.id_number()), "room": ""}
    assert normalise_event("cn.zf801.sightings.v1.HotelCheckIn", stay)["room"] == ""
    _refused("cn.zf801.sightings.v1.HotelCheckIn", {**stay, "hotel_name": " "}, "hotel_name",
             "text.blank")  # fmt: skip


def test_a_hotel_check_out_comes_after_the_check_in() -> None:
    stay = Records.hotel_check_in("110000110000", records.id_number())
    stay["expected_check_out"] = stay["checked_in_at"] - dt.timedelta(days=1)
    _refused("cn.zf801.sightings.v1.HotelCheckIn", stay, "expected_check_out", "check_out.order")


def _query(**times: dt.datetime) -> dict[str, Any]:
    from schemas.jsonmap import from_json  # noqa: PLC0415 - the one test that needs it
    from schemas.registry import default_registry  # noqa: PLC0415

    document = Records.query("P1", records.id_number())
    document.update(
        correlation_id="6f1c4d8e-2b0a-4f57-9a51-0d6c2e7b8f10",
        requested_at=NOW.isoformat(),
        deadline=(NOW + dt.timedelta(1)).isoformat(),
    )
    record = from_json(default_registry().get(QUERY), document)
    record.update(times)
    return record


QUERY = "cn.zf801.query.v1.IdentityQuery"


def test_a_query_waits_at_most_thirty_days_and_states_its_justification() -> None:
    assert normalise_event(QUERY, _query())["reason"]
    _refused(QUERY, _query(deadline=NOW + dt.timedelta(days=31)), "deadline", "deadline.horizon")
    _refused(QUERY, {**_query(), "reason": "  "}, "reason", "text.blank")
    _refused(QUERY, {**_query(), "legal_basis": ""}, "legal_basis", "text.blank")


# ---- documents, amounts and court dates ----
def _example(name: str) -> dict[str, Any]:
    from ops.cmd_schemas import example_document  # noqa: PLC0415 - the examples as shipped
    from schemas.jsonmap import from_json  # noqa: PLC0415
    from schemas.registry import default_registry  # noqa: PLC0415

    schema = default_registry().get(name)
    return from_json(schema, example_document(schema))


DOCUMENT = "cn.zf801.court.v1.JudicialDocument"
LISTING = "cn.zf801.court.v1.DishonestDebtorListing"


def test_a_document_carried_inline_is_what_its_size_and_digest_say() -> None:
    import hashlib  # noqa: PLC0415

    document = _example(DOCUMENT)
    content = b"%PDF-1.7 ruling"
    document.update(content=content, size_bytes=len(content),
                    sha256=hashlib.sha256(content).digest())  # fmt: skip
    assert normalise_event(DOCUMENT, document)["size_bytes"] == len(content)
    _refused(DOCUMENT, {**document, "sha256": bytes(32)}, "sha256", "sha256.content")
    _refused(DOCUMENT, {**document, "size_bytes": 5}, "size_bytes", "size_bytes.content")
    by_reference = {**document, "content": None}
    _refused(DOCUMENT, {**by_reference, "size_bytes": -1}, "size_bytes", "size_bytes.range")
    _refused(DOCUMENT, {**by_reference, "size_bytes": 2**62}, "size_bytes", "size_bytes.range")
    future = dt.date.today() + dt.timedelta(days=400)
    _refused(DOCUMENT, {**document, "issued_on": future}, "issued_on", "date.court")


@pytest.mark.parametrize("amount", ["0.00", "-5.00"])
def test_an_amount_applied_for_is_more_than_nothing(amount: str) -> None:
    from decimal import Decimal  # noqa: PLC0415

    listing = _example(LISTING)
    assert normalise_event(LISTING, listing)
    _refused(LISTING, {**listing, "amount_applied_for": Decimal(amount)}, "amount_applied_for",
             "amount.range")  # fmt: skip


@pytest.mark.parametrize("amount", ["NaN", "sNaN", "-Infinity"])
def test_an_amount_that_is_no_number_is_left_to_the_schema_rule(amount: str) -> None:
    """Compared with 0, a NaN raised InvalidOperation; the schema's decimal rule names it."""
    from decimal import Decimal  # noqa: PLC0415

    listing = {**_example(LISTING), "amount_applied_for": Decimal(amount)}
    assert normalise_event(LISTING, listing)["amount_applied_for"].is_nan() == ("NaN" in amount)


@pytest.mark.parametrize("filed", [dt.date(1800, 1, 1), dt.date(2099, 1, 1)])
def test_a_case_is_filed_between_1949_and_today(filed: dt.date) -> None:
    _refused(LISTING, {**_example(LISTING), "filing_date": filed}, "filing_date", "date.court")
