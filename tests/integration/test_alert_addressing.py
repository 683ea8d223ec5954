"""The attack on a court's alert stream, against the real broker: records that verify (real
keys, real signatures) but whose signed content does not belong on BJ01's stream are
written straight into it with a raw producer; the court's subscriber shows only the one
that does, and dead-letters each of the others with its precise reason."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from consumers.alerts import AlertSubscriber
from consumers.matcher import Matcher
from consumers.outgoing import Outgoing
from consumers.runtime import Runtime
from consumers.watchlist import ActiveOrder, OrderKind, WatchEntry
from ops.deployment import Deployment
from producers.publisher import Publisher
from producers.routes import outgoing_event
from schemas.envelope import KafkaRecord, to_micros
from schemas.matchkey import MatchKeyer
from schemas.settings import Settings
from sign.verify_stage import ConsumedRecord, MemoryAuditSink, MemoryDeadLetterSink, Rejection
from tests.builders import Records, deployed

if TYPE_CHECKING:
    from tests.conftest import KafkaClients

pytestmark = pytest.mark.integration

COURT, OTHER_COURT = "BJ01", "SH01"
BJ_POLICE, BJ_BORDER, BJ_TRAFFIC = "110000000000", "110000230000", "110000110000"
SH_BORDER = "310000230000"  # border control of another province
HOTEL = "cn.zf801.sightings.v1.HotelCheckIn"
HIT = "cn.zf801.bus.v1.Hit"
ACK = "cn.zf801.orders.v1.OrderAcknowledgement"


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, kafka_settings: Settings
) -> Iterator[Deployment]:
    """The catalog's topics (and, under mTLS, their ACLs) under a prefix of this module's
    own, and the keys it signs with."""
    home = tmp_path_factory.mktemp("addressing")
    with deployed(
        home,
        kafka_settings,
        (COURT, OTHER_COURT, "BUS-MATCHER", BJ_POLICE, BJ_BORDER, BJ_TRAFFIC, SH_BORDER),
        "addr",
    ) as deployment:
        yield deployment


def _runtime(deployment: Deployment, agency: str) -> Runtime:
    return Runtime.from_keystore(
        agency, MemoryDeadLetterSink(), MemoryAuditSink(), settings=deployment.settings,
        keystore=deployment.keystore,
    )  # fmt: skip


def _genuine_hits(deployment: Deployment) -> dict[str, Outgoing]:
    """One hit per court, made and signed by the bus's own matcher from a signed sighting
    of a person under orders of both courts."""
    keyer, records = MatchKeyer(), Records(801)
    person = records.id_number()
    now = to_micros(dt.datetime.now(dt.UTC))
    entry = WatchEntry.empty()
    for court in (COURT, OTHER_COURT):
        entry = entry.with_order(ActiveOrder(
            str(uuid.uuid4()), OrderKind.LOCATE_DEBTOR, court, "（2026）京01执1号", "王法官",
            "13900139000", "发现后立即通知承办人", now - 10**9, now + 10**9, now,
        ))  # fmt: skip
    watchlist = {keyer.person(person): entry}
    matcher_rt = _runtime(deployment, "BUS-MATCHER")
    matcher = Matcher(watchlist.get, matcher_rt.verify_stage(), matcher_rt.refuse,
                      matcher_rt.signer, matcher_rt.catalog, keyer=keyer)  # fmt: skip
    check_in = records.hotel_check_in(BJ_POLICE, person)
    topic, sighting = _signed(deployment, BJ_POLICE, HOTEL, check_in)
    consumed = ConsumedRecord(topic, 0, 0, int(dt.datetime.now(dt.UTC).timestamp() * 1000),
                              sighting.key, sighting.value, sighting.headers)  # fmt: skip
    result = matcher.process([consumed])
    hits = {item.topic: item for item in result.outgoing}
    alerts_of = deployment.catalog.topic_name
    return {court: hits[alerts_of("alerts", court=court)] for court in (COURT, OTHER_COURT)}


def _signed(
    deployment: Deployment, agency: str, schema: str, record: dict[str, Any]
) -> tuple[str, KafkaRecord]:
    """The record as ``agency``'s own system would sign it (nothing is sent)."""
    publisher = Publisher(deployment.keystore.signer_for(agency), catalog=deployment.catalog,
                          settings=deployment.settings)  # fmt: skip
    return publisher.prepare(outgoing_event(schema, record))


def _acknowledgement(deployment: Deployment, unit: str) -> KafkaRecord:
    """An acknowledgement of an exit restriction of COURT, signed by ``unit``."""
    order = {"order_id": str(uuid.uuid4()), "enforcing_court_code": COURT}
    record = Records.acknowledgement(order, "EXIT_RESTRICTION", unit)
    return _signed(deployment, unit, ACK, record)[1]


def _write(kafka_clients: KafkaClients, topic: str, records: list[KafkaRecord]) -> None:
    """The attacker's raw producer: bytes as they are, no check of any kind (the admin's,
    a super user under mTLS: an attacker with write access to the broker)."""
    producer = kafka_clients.producer()
    try:
        for record in records:
            producer.send(topic, key=record.key, value=record.value, headers=list(record.headers))
        producer.flush()
    finally:
        producer.close()


def _event_id(record: KafkaRecord | ConsumedRecord) -> str:
    return next(value for name, value in record.headers if name == "ce_id").decode()


def test_only_what_the_signed_content_addresses_to_the_court_is_shown(
    deployment: Deployment, kafka_clients: KafkaClients
) -> None:
    hits = _genuine_hits(deployment)
    copied_hit = hits[OTHER_COURT].record  # (a) genuine, for SH01, copied byte for byte
    foreign_unit = _acknowledgement(deployment, SH_BORDER)  # (b) another province's unit
    wrong_role = _acknowledgement(deployment, BJ_TRAFFIC)  # (c) not the role acting on it
    own_hit = hits[COURT].record  # (d) genuine and addressed to BJ01
    stream = deployment.catalog.topic_name("alerts", court=COURT)
    assert hits[COURT].topic == stream
    _write(kafka_clients, stream, [copied_hit, foreign_unit, wrong_role, own_hit])

    runtime = _runtime(deployment, COURT)
    subscriber = AlertSubscriber(runtime, COURT)
    shown = list(subscriber.read(until_idle_s=3.0))

    [alert] = shown
    assert (alert.event_id, alert.kind, alert.signed_by) == (_event_id(own_hit), "Hit",
                                                             "BUS-MATCHER")  # fmt: skip
    assert alert.record["court_code"] == COURT
    assert alert.document["court_code"] == COURT
    expected = {
        _event_id(copied_hit): ("MISADDRESSED", "NOT_AUTHORISED",
            f"{HIT} names court_code {OTHER_COURT} but was read from the alert stream of "
            f"court {COURT}"),
        _event_id(foreign_unit): ("ROLE_NOT_ALLOWED", "NOT_AUTHORISED",
            f"unit {SH_BORDER} does not receive court {COURT}'s orders"),
        _event_id(wrong_role): ("ROLE_NOT_ALLOWED", "NOT_AUTHORISED",
            f"EXIT_RESTRICTION orders are acknowledged by border-control, not by {BJ_TRAFFIC} "
            f"(role traffic-management)"),
    }  # fmt: skip
    assert isinstance(runtime.dead_letters, MemoryDeadLetterSink)
    assert _by_event(runtime.dead_letters.rejections) == expected
    assert isinstance(runtime.audit, MemoryAuditSink)
    assert _by_event(runtime.audit.rejections) == expected
    [dead_hit] = [r for r in runtime.dead_letters.rejections if r.reason == "MISADDRESSED"]
    assert (dead_hit.record.topic, dead_hit.record.value) == (stream, copied_hit.value)

    # Read again: the shown hit is skipped as a duplicate, and each refused record is
    # passed over as refused before, not dead-lettered or audited a second time.
    assert list(subscriber.read(until_idle_s=3.0)) == []
    assert subscriber.duplicates == 1 and subscriber.refused_before == 3
    assert len(runtime.dead_letters.rejections) == 3


def _by_event(rejections: list[Rejection]) -> dict[str, tuple[str, str, str]]:
    return {
        _event_id(rejection.record): (rejection.reason, rejection.category, rejection.detail)
        for rejection in rejections
    }
