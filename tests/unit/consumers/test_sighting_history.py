"""Which sightings the bus forwards to which province's history (consumers.sighting_history):
decided from the headers alone, each type and each kind of source, the copy unchanged."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import replace
from typing import Any

import pytest
from aiokafka.errors import CommitFailedError, IllegalStateError

from consumers.history_loop import HistoryForwarder, commit_held
from consumers.sighting_history import SightingHistory
from producers.publisher import Publisher
from producers.routes import outgoing_event
from schemas.agencies import load_agencies, parse_agency_list
from schemas.settings import Settings
from sign.verify_stage import ConsumedRecord
from tests.builders import Records, trust_set
from topics.catalog import Catalog, load_catalog

PS_BJ, CHAOYANG, BORDER_BJ = "110000000000", "110105000000", "110000230000"
PS_SH, BORDER_SZ, TRAFFIC_GD = "310000000000", "440300230000", "440000110000"
PERSON = "11010519491231002X"
NS = "cn.zf801.sightings.v1."
PREFIX = "t7-"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog().with_name_prefix(PREFIX)


@pytest.fixture(scope="module")
def history(catalog: Catalog) -> SightingHistory:
    return SightingHistory(catalog, load_agencies())


@pytest.fixture(scope="module")
def publish(tmp_path_factory: pytest.TempPathFactory, catalog: Catalog) -> Any:
    """Signs a sighting as a unit would publish it: the record as the bus reads it."""
    units = (PS_BJ, CHAOYANG, BORDER_BJ, PS_SH, BORDER_SZ, TRAFFIC_GD, "BJ01")
    home = tmp_path_factory.mktemp("history")
    keystore = trust_set(home, units)
    settings = Settings(home=home)

    def published(unit: str, schema: str, record: dict[str, Any]) -> ConsumedRecord:
        signer = keystore.signer_for(unit)
        topic, signed = Publisher(signer, catalog=catalog, settings=settings).prepare(
            outgoing_event(NS + schema, record)
        )
        return ConsumedRecord(
            topic, 2, 40, 0, signed.key, signed.value, tuple(signed.headers)
        )  # fmt: skip

    return published


def _encounter(unit: str) -> dict[str, Any]:
    return {
        "sighting_id": str(uuid.uuid4()), "reporting_unit_code": unit,
        "observed_at": dt.datetime.now(dt.UTC), "kind": "PATROL",
        "person": {"name": "李四", "id_number": PERSON}, "place": "北京市朝阳区建国路",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("unit", "schema", "province"),
    [
        (PS_BJ, "HotelCheckIn", "11"),
        (CHAOYANG, "HotelCheckIn", "11"),  # a unit no query addresses still reports
        (BORDER_BJ, "BorderCrossing", "11"),
        (PS_SH, "HotelCheckIn", "31"),
        (BORDER_SZ, "BorderCrossing", "44"),
        (TRAFFIC_GD, "HotelCheckIn", "44"),  # any police role may report a check-in
    ],
)
def test_a_check_in_or_crossing_goes_unchanged_to_its_units_province(
    history: SightingHistory, publish: Any, unit: str, schema: str, province: str
) -> None:
    builder = Records.hotel_check_in if schema == "HotelCheckIn" else Records.border_crossing
    read = publish(unit, schema, builder(unit, PERSON))
    copy = history.forward(read)
    assert copy is not None
    assert copy.topic == f"{PREFIX}zf801.sightings.history.{province}"
    assert (copy.record.key, copy.record.value, copy.record.headers) == (
        read.key, read.value, read.headers)  # fmt: skip
    assert copy.partition is None  # placed by its key, like every match-keyed record


def test_an_encounter_or_a_vehicle_is_not_history(history: SightingHistory, publish: Any) -> None:
    encounter = publish(PS_BJ, "PersonEncounter", _encounter(PS_BJ))
    vehicle = publish(
        TRAFFIC_GD, "VehicleEncounter",
        Records.vehicle_encounter(TRAFFIC_GD, "粤B12345", None, "PATROL"),
    )  # fmt: skip
    assert history.forward(encounter) is None
    assert history.forward(vehicle) is None
    # Nor does a vehicle's type become history when written to the person topic.
    assert history.forward(replace(vehicle, topic=encounter.topic)) is None


def _headers(read: ConsumedRecord, name: str, value: bytes | None) -> ConsumedRecord:
    """``read`` with header ``name`` set to ``value`` (removed for None)."""
    kept = tuple(h for h in read.headers if h[0] != name)
    return replace(read, headers=kept if value is None else (*kept, (name, value)))


@pytest.mark.parametrize(
    ("source", "why"),
    [
        (b"zf801:agency/BJ01", "a court"),
        (b"zf801:agency/BUS-MATCHER", "the bus"),
        (b"zf801:agency/990000000000", "no agency of the list"),
        (b"zf801:agency/110000000000 ", "not the exact source"),
        (b"", "empty"),
        (None, "missing"),
    ],
)
def test_a_source_that_is_no_police_unit_is_not_forwarded(
    history: SightingHistory, publish: Any, source: bytes | None, why: str
) -> None:
    read = publish(PS_BJ, "HotelCheckIn", Records.hotel_check_in(PS_BJ, PERSON))
    assert history.forward(_headers(read, "ce_source", source)) is None, why


def test_a_missing_or_repeated_header_is_not_forwarded(
    history: SightingHistory, publish: Any
) -> None:
    read = publish(PS_BJ, "HotelCheckIn", Records.hotel_check_in(PS_BJ, PERSON))
    assert history.forward(_headers(read, "ce_type", None)) is None
    for name in ("ce_source", "ce_type"):
        twice = replace(
            read, headers=(*read.headers, next(h for h in read.headers if h[0] == name))
        )
        assert history.forward(twice) is None, name
    # Which source a repeated header names is no matter: the record is no one's.
    shanghai = (*read.headers, ("ce_source", b"zf801:agency/310000000000"))
    assert history.forward(replace(read, headers=shanghai)) is None


def test_only_the_police_sightings_topic_is_forwarded_from_and_only_a_keyed_record(
    history: SightingHistory, catalog: Catalog, publish: Any
) -> None:
    read = publish(PS_BJ, "HotelCheckIn", Records.hotel_check_in(PS_BJ, PERSON))
    assert read.topic == catalog.topic_name("sightings-person")
    # A copy the matcher moved to another worker was forwarded where it was first read.
    assert history.forward(replace(read, topic=catalog.topic_name("sightings-routed"))) is None
    assert history.forward(replace(read, topic=catalog.topic_name("sightings-vehicle"))) is None
    assert history.forward(replace(read, key=None)) is None


def test_a_claimed_source_is_forwarded_for_the_responders_to_refuse(
    history: SightingHistory, publish: Any
) -> None:
    """No signature is checked on the hot path: a Shanghai unit's record claiming a
    Beijing unit goes to Beijing, whose responders' verify stage refuses it."""
    read = publish(PS_SH, "HotelCheckIn", Records.hotel_check_in(PS_SH, PERSON))
    claimed = _headers(read, "ce_source", b"zf801:agency/110000000000")
    copy = history.forward(claimed)
    assert copy is not None and copy.topic == f"{PREFIX}zf801.sightings.history.11"


def test_the_topics_are_those_of_the_provinces_where_police_units_sit(
    history: SightingHistory,
) -> None:
    assert history.topics() == tuple(
        f"{PREFIX}zf801.sightings.history.{p}" for p in ("11", "31", "44")
    )


def test_a_unit_of_a_province_without_a_rule_has_no_history(catalog: Catalog) -> None:
    """Its province has no topic: forwarding there would fail the batch's transaction."""
    document = {
        "format": "zf801-agencies/1",
        "agencies": [
            {"code": "BJ01", "role": "court", "province": "11", "case_abbr": "京01",
             "name": "北京市第一中级人民法院"},
            {"code": PS_BJ, "role": "public-security", "province": "11", "name": "北京市公安局"},
            {"code": "110000230000", "role": "border-control", "province": "11", "name": "边检"},
            {"code": "110000110000", "role": "traffic-management", "province": "11",
             "name": "交管"},
            {"code": "120000000000", "role": "public-security", "province": "12",
             "name": "天津市公安局"},
        ],
        "province_rules": {"11": {"public-security": [PS_BJ], "border-control": ["110000230000"],
                                  "traffic-management": ["110000110000"]}},
    }  # fmt: skip
    history = SightingHistory(catalog, parse_agency_list(document))
    headers = (("ce_type", f"{NS}HotelCheckIn".encode()),)
    tianjin = (*headers, ("ce_source", b"zf801:agency/120000000000"))
    beijing = (*headers, ("ce_source", f"zf801:agency/{PS_BJ}".encode()))
    assert history.topic_for(tianjin) is None
    assert history.topic_for(beijing) == f"{PREFIX}zf801.sightings.history.11"
    assert history.topics() == (f"{PREFIX}zf801.sightings.history.11",)


class _Producer:
    """Records what is sent; the brokers' acknowledgement fails when ``failing``."""

    def __init__(self, failing: bool = False) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, int | None, list[Any]]] = []
        self._failing = failing

    async def send(
        self, topic: str, value: bytes | None, key: bytes | None, partition: int | None, *,
        headers: list[Any],
    ) -> asyncio.Future[None]:  # fmt: skip
        self.sent.append((topic, value, key, partition, headers))
        acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._failing:
            acknowledged.set_exception(OSError("NOT_ENOUGH_REPLICAS"))
        else:
            acknowledged.set_result(None)
        return acknowledged


def _forwarder(history: SightingHistory) -> HistoryForwarder:
    runtime: Any = None  # forward_batch does not touch it
    return HistoryForwarder(runtime, history.source_topic, history.forward, history.topics(), "g")


def test_the_forwarder_sends_each_copy_and_counts_what_the_brokers_acknowledged(
    history: SightingHistory, publish: Any
) -> None:
    check_in = publish(PS_BJ, "HotelCheckIn", Records.hotel_check_in(PS_BJ, PERSON))
    crossing = publish(BORDER_SZ, "BorderCrossing", Records.border_crossing(BORDER_SZ, PERSON))
    encounter = publish(PS_BJ, "PersonEncounter", _encounter(PS_BJ))
    forwarder, producer = _forwarder(history), _Producer()
    sent = asyncio.run(forwarder.forward_batch(producer, [check_in, encounter, crossing]))  # type: ignore[arg-type]
    assert sent == 2 and (forwarder.read, forwarder.forwarded) == (3, 2)
    history_of = f"{PREFIX}zf801.sightings.history."
    assert [(t, v, k, h) for t, v, k, _, h in producer.sent] == [
        (history_of + "11", check_in.value, check_in.key, list(check_in.headers)),
        (history_of + "44", crossing.value, crossing.key, list(crossing.headers)),
    ]


def test_a_copy_the_brokers_refuse_raises_before_the_batch_counts_as_forwarded(
    history: SightingHistory, publish: Any
) -> None:
    check_in = publish(PS_BJ, "HotelCheckIn", Records.hotel_check_in(PS_BJ, PERSON))
    forwarder = _forwarder(history)
    with pytest.raises(OSError, match="NOT_ENOUGH_REPLICAS"):
        asyncio.run(forwarder.forward_batch(_Producer(failing=True), [check_in]))  # type: ignore[arg-type]
    assert (forwarder.read, forwarder.forwarded) == (0, 0)  # its offsets are not committed


class _Consumer:
    """Holds ``held`` partitions; its commit fails like aiokafka's after a rebalance."""

    def __init__(self, held: set[str], refuse: Exception | None = None) -> None:
        self.held, self.refuse = held, refuse
        self.committed: list[dict[str, int]] = []

    def assignment(self) -> set[str]:
        return self.held

    async def commit(self, offsets: dict[str, int]) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.committed.append(offsets)


def test_a_partition_moved_by_a_rebalance_is_not_committed_and_stops_nothing() -> None:
    moved = _Consumer({"p0"})
    asyncio.run(commit_held(moved, {"p0": 5, "p1": 9}))  # type: ignore[arg-type]
    assert moved.committed == [{"p0": 5}]
    gone = _Consumer(set())
    asyncio.run(commit_held(gone, {"p1": 9}))  # type: ignore[arg-type]
    assert gone.committed == []
    for refusal in (CommitFailedError("rebalanced"), IllegalStateError("not assigned")):
        asyncio.run(commit_held(_Consumer({"p0"}, refusal), {"p0": 5}))  # type: ignore[arg-type]
