"""The wire path out, without a broker: routing, edge normalisation, refusals, signing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from producers.agencies import CourtPublisher, PoliceUnitPublisher
from producers.errors import NotAllowed
from producers.events import OutgoingEvent
from producers.publisher import Publisher
from producers.routes import RoutingError, outgoing_event, route_for
from schemas.codec import default_codec
from schemas.edge import normalise_event
from schemas.errors import IdentifierError, SchemaValidationError
from schemas.headers import CE_ALTKEYS
from schemas.matchkey import MatchKeyer
from schemas.settings import Settings
from sign.events import EventVerifier
from sign.keystore import KeyStore
from tests.builders import Records, trust_set

COURT, POLICE, TRAFFIC = "BJ01", "110000000000", "110000110000"
ORDER = "cn.zf801.orders.v1.ExitRestrictionOrder"
RELEASE = "cn.zf801.orders.v1.OrderRelease"
CHECK_IN = "cn.zf801.sightings.v1.HotelCheckIn"
ENCOUNTER = "cn.zf801.sightings.v1.VehicleEncounter"
records = Records(7)


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    return trust_set(tmp_path_factory.mktemp("publisher"), (COURT, "SH01", POLICE, TRAFFIC))


def _publisher(keystore: KeyStore, agency: str) -> Publisher:
    settings = Settings(home=keystore.directory.parent)
    return Publisher(keystore.signer_for(agency), settings=settings)


def _order(id_number: str = "11010519491231002x") -> dict[str, Any]:
    order = records.person_order(COURT, "(2026)京01执7号", id_number)
    order["handler"]["phone"] = "+86 139 0013 9000"
    return order


def test_an_order_is_normalised_signed_and_keyed_by_its_subject(keystore: KeyStore) -> None:
    topic, signed = _publisher(keystore, COURT).prepare(outgoing_event(ORDER, _order()))
    assert topic == "zf801.orders.exit-restriction"
    assert signed.key == MatchKeyer().person("11010519491231002X")
    _, value = default_codec().decode(signed.value)
    assert value["subject"]["id_number"] == "11010519491231002X"
    assert value["case_number"] == "（2026）京01执7号"
    assert value["handler"]["phone"] == "13900139000"
    verified = EventVerifier(keystore.trust_store()).verify(signed.key, signed.value,
                                                            signed.headers)  # fmt: skip
    assert (verified.agency_code, verified.role) == (COURT, "court")


def test_a_vehicle_sighting_carries_its_vin_key_as_a_hint(keystore: KeyStore) -> None:
    plate, vin = records.plate(), records.vin()
    event = outgoing_event(ENCOUNTER, Records.vehicle_encounter(TRAFFIC, plate, vin, "PATROL"))
    _, signed = _publisher(keystore, TRAFFIC).prepare(event)
    keyer = MatchKeyer()
    assert signed.key == keyer.plate(plate)
    assert signed.header(CE_ALTKEYS) == keyer.vin(vin).hex().encode()


@pytest.mark.parametrize(
    ("agency", "schema", "record", "rule"),
    [
        (POLICE, ORDER, _order(), "may not write"),  # a police unit cannot issue an order
        (COURT, CHECK_IN, Records.hotel_check_in(POLICE, "11010519491231002X"), "may not write"),
        ("SH01", ORDER, _order(), "[rule sender]"),  # a court issues only its own orders
        # made out for SH01 with BJ01's case number, sent by BJ01: the sender is named,
        # not the case number that does not fit the court written in
        (
            COURT,
            ORDER,
            {**_order(), "enforcing_court_code": "SH01"},
            r"enforcing_court_code: 'SH01' is not the publishing agency BJ01 .*\[rule sender\]",
        ),
    ],
)
def test_refused_before_anything_is_sent(
    keystore: KeyStore, agency: str, schema: str, record: dict[str, Any], rule: str
) -> None:
    with pytest.raises(NotAllowed, match=rule):
        _publisher(keystore, agency).prepare(outgoing_event(schema, record))


def test_an_event_type_the_topic_does_not_carry_is_refused(keystore: KeyStore) -> None:
    event = outgoing_event(ORDER, _order())
    wrong = type(event)("orders-vehicle-search", ORDER, event.record, event.key)
    with pytest.raises(NotAllowed, match="does not carry"):
        _publisher(keystore, COURT).prepare(wrong)


@pytest.mark.parametrize(
    ("change", "error", "field"),
    [
        (lambda r: r["subject"].update(id_number="110105194912310021"), IdentifierError,
         "subject.id_number"),
        (lambda r: r.update(case_number="2016京01执123"), IdentifierError, "case_number"),
        (lambda r: r["handler"].update(phone="12345"), IdentifierError, "handler.phone"),
        (lambda r: r.update(police_requirements="x" * 5000), SchemaValidationError,
         "police_requirements"),
        (lambda r: r.update(enforcing_court_code="BJ01\u202e"), IdentifierError,
         "enforcing_court_code"),
    ],
)  # fmt: skip
def test_bad_fields_are_named_with_their_rule(
    keystore: KeyStore, change: Any, error: type[Exception], field: str
) -> None:
    record = _order("11010519491231002X")
    change(record)
    with pytest.raises(error, match=field.replace(".", r"\.")):
        _publisher(keystore, COURT).prepare(outgoing_event(ORDER, record))


def test_a_release_is_keyed_by_the_subject_given_with_it() -> None:
    order = _order("11010519491231002X")
    release = Records.release(order, "EXIT_RESTRICTION")
    event = outgoing_event(RELEASE, release, {"id_number": "11010519491231002x"})
    assert event.topic_id == "orders-exit-restriction"
    assert event.key == MatchKeyer().person("11010519491231002X")
    with pytest.raises(RoutingError, match="subject"):
        outgoing_event(RELEASE, release)
    with pytest.raises(RoutingError, match="order_kind"):
        route_for(RELEASE, {**release, "order_kind": "NOT_A_KIND"})


@pytest.mark.parametrize(
    ("schema", "record"),
    [
        ("cn.zf801.bus.v1.Hit", {}),  # the bus's own events are not published by agencies
        ("cn.zf801.sightings.v1.Nonsense", {}),
        (CHECK_IN, {"person": "not a mapping"}),
        (CHECK_IN, {}),
    ],
)
def test_unroutable_events_are_refused_with_a_clear_error(schema: str, record: Any) -> None:
    with pytest.raises(RoutingError):
        outgoing_event(schema, record)


def test_edge_normalisation_reaches_into_unions_and_arrays(tmp_path: Path) -> None:
    crossing = Records.border_crossing(POLICE, "11010519491231002x")
    crossing["destination_country_or_region"] = " tha "
    out = normalise_event("cn.zf801.sightings.v1.BorderCrossing", crossing)
    assert out["person"]["id_number"] == "11010519491231002X"
    assert out["destination_country_or_region"] == "THA"
    crossing["destination_country_or_region"] = "泰国"
    with pytest.raises(IdentifierError, match="country_or_region"):
        normalise_event("cn.zf801.sightings.v1.BorderCrossing", crossing)
    crossing["destination_country_or_region"] = None
    assert normalise_event("cn.zf801.sightings.v1.BorderCrossing", crossing)[
        "destination_country_or_region"] is None  # fmt: skip


class _Acknowledged:
    def __init__(self, topic: str, offset: int) -> None:
        self.topic, self.partition, self.offset = topic, 0, offset

    def get(self, timeout: float | None = None) -> _Acknowledged:
        return self


class _MemoryProducer:
    """What the broker would have been sent, acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]] = []

    def send(self, topic: str, *, key: bytes | None, value: bytes,
             headers: list[tuple[str, bytes]]) -> _Acknowledged:  # fmt: skip
        self.sent.append((topic, key, value, headers))
        return _Acknowledged(topic, len(self.sent) - 1)

    def close(self) -> None:
        pass


def test_typed_court_and_police_publishers_route_each_event(keystore: KeyStore) -> None:
    settings = Settings(home=keystore.directory.parent)
    producer = _MemoryProducer()
    court = CourtPublisher(Publisher(keystore.signer_for(COURT), settings=settings,
                                     producer=producer))  # type: ignore[arg-type]  # fmt: skip
    police = PoliceUnitPublisher(Publisher(keystore.signer_for(POLICE), settings=settings,
                                           producer=producer))  # type: ignore[arg-type]  # fmt: skip
    person = "11010519491231002X"
    order = records.person_order(COURT, "（2026）京01执8号", person)
    issued = court.issue_locate_debtor(order)
    assert (issued.topic, issued.offset) == ("zf801.orders.locate-debtor", 0)
    released = court.release_order(Records.release(order, "LOCATE_DEBTOR"), {"id_number": person})
    police.report_hotel_check_in(Records.hotel_check_in(POLICE, person))
    police.acknowledge_order(Records.acknowledgement(order, "LOCATE_DEBTOR", POLICE))
    topics = [topic for topic, *_ in producer.sent]
    assert topics == ["zf801.orders.locate-debtor", "zf801.orders.locate-debtor",
                      "zf801.sightings.person", "zf801.orders.acknowledgements"]  # fmt: skip
    # The release follows its order under the same key; the sighting shares it too.
    assert producer.sent[0][1] == producer.sent[1][1] == producer.sent[2][1]
    assert released.event_id != issued.event_id
    with pytest.raises(NotAllowed):
        court.issue_exit_restriction(
            {
                **_order(),
                "enforcing_court_code": "SH01",
                "case_number": "（2026）沪01执7号",
                "province_code": "31",
            }
        )
    assert len(producer.sent) == 4  # nothing sent for the refused order


_UTC = dt.UTC
_HOSTILE: list[tuple[str, str, Any, str]] = [
    ("another court's case number", "case_number",
     lambda r: r.update(case_number="（2026）沪01执7号"), "case_number.court"),
    ("a province other than the court's", "province_code",
     lambda r: r.update(province_code="31"), "province_code.court"),
    ("zero-width space", "subject.name", lambda r: r["subject"].update(name="李\u200b四"),
     "text.characters"),
    ("line separator", "subject.name", lambda r: r["subject"].update(name="李\u2028四"),
     "text.characters"),
    ("paragraph separator", "handler.name", lambda r: r["handler"].update(name="王\u2029法官"),
     "text.characters"),
    ("byte order mark", "subject.name", lambda r: r["subject"].update(name="\ufeff李四"),
     "text.characters"),
    ("carriage return", "subject.name", lambda r: r["subject"].update(name="李\r四"),
     "text.characters"),
    ("line feed", "sealed_documents[0].title",
     lambda r: r["sealed_documents"][0].update(title="执行\n裁定书"), "text.characters"),
    ("a control character", "subject.name", lambda r: r["subject"].update(name="李\x07四"),
     "text.characters"),
    ("year 0001", "control_period_start",
     lambda r: r.update(control_period_start=dt.datetime(1, 1, 1, tzinfo=_UTC)),
     "time.too_early"),
    ("year 1969", "issued_at",
     lambda r: r.update(issued_at=dt.datetime(1969, 7, 20, tzinfo=_UTC)), "time.too_early"),
    ("year 9999", "control_period_end",
     lambda r: r.update(control_period_end=dt.datetime(9999, 12, 31, tzinfo=_UTC)),
     "time.too_late"),
    ("a control period ending before its start", "control_period_end",
     lambda r: r.update(control_period_end=r["control_period_start"] - dt.timedelta(hours=1)),
     "control_period.order"),
    ("issued in 2099", "issued_at",
     lambda r: r.update(issued_at=dt.datetime(2099, 1, 1, tzinfo=_UTC)), "time.too_late"),
    ("observed in 2099", "observed_at",
     lambda r: r.update(observed_at=dt.datetime(2099, 1, 1, tzinfo=_UTC)), "time.too_late"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("field", "change", "rule"),
    [pytest.param(field, change, rule, id=label) for label, field, change, rule in _HOSTILE],
)
def test_each_hostile_variant_of_a_valid_event_is_refused_and_nothing_is_sent(
    keystore: KeyStore, field: str, change: Any, rule: str
) -> None:
    sighting = field == "observed_at"
    agency, schema = (POLICE, CHECK_IN) if sighting else (COURT, ORDER)
    record = Records.hotel_check_in(POLICE, "11010519491231002X") if sighting else _order()
    settings = Settings(home=keystore.directory.parent)
    producer = _MemoryProducer()
    publisher = Publisher(keystore.signer_for(agency), settings=settings,
                          producer=producer)  # type: ignore[arg-type]  # fmt: skip
    publisher.publish(outgoing_event(schema, record))  # the valid event goes out
    assert len(producer.sent) == 1
    change(record)
    with pytest.raises(IdentifierError) as info:
        publisher.publish(outgoing_event(schema, record))
    assert (info.value.field, info.value.rule) == (field, rule)
    assert field in str(info.value)
    assert len(producer.sent) == 1  # nothing sent for the hostile variant


def test_a_hyphenated_organisation_code_is_published_without_its_hyphen(
    keystore: KeyStore,
) -> None:
    order = records.vehicle_order(COURT, "（2026）京01执9号", records.plate(), records.vin())
    order["subject"]["owner"] = {"kind": "LEGAL_PERSON", "name": "北京某某科技有限公司",
                                 "id_number": None, "organisation_code": "12345678-8"}  # fmt: skip
    event = outgoing_event("cn.zf801.orders.v1.VehicleSearchOrder", order)
    _, signed = _publisher(keystore, COURT).prepare(event)
    _, value = default_codec().decode(signed.value)
    assert value["subject"]["owner"]["organisation_code"] == "123456788"


_PERSON = {"id_number": "11010519491231002X"}
_OBJECT = "record: expected a JSON object"
_SHAPES: list[tuple[str, Any, str]] = [
    ("null", lambda c: c.issue_exit_restriction(None),
     f"{_OBJECT} (ExitRestrictionOrder), got null"),
    ("array", lambda c: c.issue_vehicle_search([]), f"{_OBJECT} (VehicleSearchOrder), got array"),
    ("string", lambda c: c.issue_locate_debtor("x"), f"{_OBJECT} (LocateDebtorOrder), got string"),
    ("empty", lambda c: c.issue_exit_restriction({}), "order_id: required field is missing"),
    ("null subject", lambda c: c.issue_exit_restriction({**_order(), "subject": None}),
     "subject"),
    ("string subject",
     lambda c: c.issue_exit_restriction({**_order(), "subject": "11010519491231002X"}), "subject"),
    ("null release", lambda c: c.release_order(None, _PERSON),
     f"{_OBJECT} (OrderRelease), got null"),
    ("float order id", lambda c: c.release_order({"order_id": 1.5}, _PERSON),
     "order_id: expected a UUID"),
    ("string release subject",
     lambda c: c.release_order(Records.release(_order(), "EXIT_RESTRICTION"), "110105194912310"),
     "subject: expected an object with id_number (a person) or plate_number/vin (a vehicle), "
     "got string"),
    ("no release subject",
     lambda c: c.release_order(Records.release(_order(), "EXIT_RESTRICTION"), None),
     "subject: an OrderRelease is keyed by its order's subject"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "message"), [pytest.param(call, message, id=label) for label, call, message in _SHAPES]
)
def test_the_typed_publishers_name_the_field_of_a_hostile_shape_and_send_nothing(
    keystore: KeyStore, call: Any, message: str
) -> None:
    producer = _MemoryProducer()
    publisher = Publisher(keystore.signer_for(COURT), settings=Settings(
        home=keystore.directory.parent), producer=producer)  # type: ignore[arg-type]  # fmt: skip
    with pytest.raises((RoutingError, SchemaValidationError, IdentifierError)) as info:
        call(CourtPublisher(publisher))
    assert message in str(info.value)
    assert "TypeError" not in str(info.value) and "KeyError" not in str(info.value)
    assert producer.sent == []


@pytest.mark.parametrize("record", [None, [1], "order", 7], ids=["null", "array", "string", "int"])
def test_a_record_that_is_no_object_is_refused_by_the_publisher_itself(
    keystore: KeyStore, record: Any
) -> None:
    with pytest.raises(
        RoutingError, match=r"^record: expected a JSON object \(ExitRestrictionOrder\)"
    ):
        _publisher(keystore, COURT).prepare(
            OutgoingEvent("orders-exit-restriction", ORDER, record, b"k")
        )


def test_arguments_of_the_wrong_kind_are_named_not_tripped_over(keystore: KeyStore) -> None:
    """Publisher(None), publish(None), CourtPublisher(None), AnomalyDesk(None) and
    normalise_event(None) ended in bare AttributeError or TypeError from deep inside."""
    from producers import CourtPublisher  # noqa: PLC0415
    from producers.anomalies import AnomalyDesk  # noqa: PLC0415
    from producers.errors import WrongArgument  # noqa: PLC0415
    from schemas.edge import normalise_event  # noqa: PLC0415
    from schemas.errors import SchemaValidationError  # noqa: PLC0415

    with pytest.raises(WrongArgument, match=r"signer: an EventSigner .* got NoneType \[rule"):
        Publisher(None)  # type: ignore[arg-type]
    publisher = _publisher(keystore, COURT)
    with pytest.raises(WrongArgument, match=r"event: an OutgoingEvent"):
        publisher.publish(None)  # type: ignore[arg-type]
    with pytest.raises(WrongArgument, match=r"events: a list of OutgoingEvent"):
        publisher.publish_all(None)  # type: ignore[arg-type]
    for wrapper in (CourtPublisher, AnomalyDesk):
        with pytest.raises(WrongArgument, match=r"publisher: a Publisher is needed"):
            wrapper(None)  # type: ignore[arg-type]
    with pytest.raises(SchemaValidationError, match=r"expected a record \(a mapping\), got null"):
        normalise_event(ORDER, None)  # type: ignore[arg-type]
