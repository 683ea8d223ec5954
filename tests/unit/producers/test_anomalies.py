"""Anomaly input checks at the edge: every bad input is refused with the field and the
rule named, and nothing is published (a recording producer stands in for Kafka here)."""

from __future__ import annotations

import datetime as dt
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from consumers.anomaly_log import escalation_id
from producers.anomalies import AnomalyDesk, AnomalyInputInvalid
from producers.errors import NotAllowed
from producers.publisher import Publisher
from producers.routes import outgoing_event
from schemas.codec import default_codec
from schemas.errors import BusError
from schemas.settings import Settings
from sign.keystore import KeyStore
from tests.builders import trust_set

NOW = dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.UTC)
POLICE = "110000000000"


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def send(self, topic: str, *, key: bytes, value: bytes, headers: Any) -> Any:
        self.sent.append((topic, value))
        metadata = SimpleNamespace(topic=topic, partition=0, offset=len(self.sent) - 1)
        return SimpleNamespace(get=lambda timeout: metadata)


@pytest.fixture
def producer() -> _Producer:
    return _Producer()


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    return trust_set(tmp_path_factory.mktemp("anomalies"), (POLICE, "BJ01", "BUS-AUDIT"))


def _desk(keystore: KeyStore, producer: _Producer, agency: str = POLICE) -> AnomalyDesk:
    publisher = Publisher(keystore.signer_for(agency), producer=producer,
                          settings=Settings(home=keystore.directory.parent))  # fmt: skip
    return AnomalyDesk(publisher, clock=lambda: NOW)


_GOOD = {"component": "旅馆业数据接口", "severity": "HIGH", "description": "推送中断40分钟"}


def test_a_good_report_is_signed_and_carries_the_24_hour_deadline(
    keystore: KeyStore, producer: _Producer
) -> None:
    notice_id, published = _desk(keystore, producer).report(
        **_GOOD, detected_at=NOW - dt.timedelta(minutes=5)
    )
    [(topic, value)] = producer.sent
    assert (topic, published.topic) == ("zf801.bus.anomalies", "zf801.bus.anomalies")
    _, record = default_codec().decode(value)
    assert str(record["notice_id"]) == notice_id
    assert record["reporting_agency_code"] == POLICE
    assert record["acknowledge_by"] - record["detected_at"] == dt.timedelta(hours=24)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"severity": "SEVERE"}, r"severity: 'SEVERE' is not one of .* \[rule enum\]"),
        ({"severity": None}, r"severity: 'None' is not one of .* \[rule enum\]"),
        ({"component": None}, r"component: must be text, got null \[rule text\]"),
        ({"component": "   "}, r"component: must not be empty \[rule required\]"),
        ({"description": ""}, r"description: must not be empty \[rule required\]"),
        ({"component": "x" * 129}, r"component: 129 characters, at most 128 .*\[rule max-length\]"),
        ({"description": "长" * 2001}, r"description: 2001 characters, at most 2000"),
        ({"component": "接口\x1b[31m"}, r"component: .*U\+001B \[rule printable\]"),
        ({"description": "ok\u202eevil"}, r"description: .*U\+202E \[rule printable\]"),
        ({"description": "a\x00b"}, r"description: .*U\+0000 \[rule printable\]"),
        ({"detected_at": dt.datetime(2026, 11, 27, 5, 0)}, r"detected_at: .*\[rule instant\]"),
        ({"detected_at": "2026-11-27"}, r"detected_at: .*\[rule instant\]"),
        ({"detected_at": NOW + dt.timedelta(hours=1)}, r"detected_at: .*future \[rule past\]"),
        (
            {"detected_at": NOW - dt.timedelta(days=30, seconds=1)},
            r"detected_at: 2026-10-28T05:59:59\+00:00 is more than 30 days ago; .*24 hours"
            r".*\[rule recent\]",
        ),
        (
            {"detected_at": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)},
            r"detected_at: 2000-01-01T00:00:00\+00:00 is more than 30 days ago",
        ),
        (
            {"detected_at": dt.datetime(1, 1, 1, tzinfo=dt.UTC)},
            r"detected_at: 0001-01-01T00:00:00\+00:00 is before 1990-01-01 \[rule time.too_early\]",
        ),
    ],
)
def test_a_bad_report_is_refused_naming_field_and_rule_and_nothing_is_sent(
    keystore: KeyStore, producer: _Producer, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(AnomalyInputInvalid, match=message):
        _desk(keystore, producer).report(**{**_GOOD, **change})
    assert producer.sent == []


@pytest.mark.parametrize(
    "detected_at",
    [NOW - dt.timedelta(days=30), NOW + dt.timedelta(minutes=5), NOW - dt.timedelta(hours=25)],
)
def test_a_detection_within_the_bounds_is_reported(
    keystore: KeyStore, producer: _Producer, detected_at: dt.datetime
) -> None:
    """30 days back (a notice held back by a long outage) and a clock a few minutes ahead."""
    _desk(keystore, producer).report(**_GOOD, detected_at=detected_at)
    _, record = default_codec().decode(producer.sent[0][1])
    assert record["detected_at"] == detected_at


def test_an_escalation_is_published_under_a_fresh_random_id(
    keystore: KeyStore, producer: _Producer
) -> None:
    """No id another writer could spend first (see consumers.anomaly_log)."""
    desk = _desk(keystore, producer, "BUS-AUDIT")
    notice_id = "2b2f6484-0f0a-5dfa-88e4-d14a0051988a"
    first = desk.escalate(notice_id, POLICE, NOW - dt.timedelta(hours=1))
    second = desk.escalate(notice_id, POLICE, NOW - dt.timedelta(hours=1))
    assert first.event_id != second.event_id
    assert first.event_id != escalation_id(notice_id)
    assert uuid.UUID(first.event_id).version == 4


@pytest.mark.parametrize(
    ("notice_id", "note", "message"),
    [
        ("not-a-uuid", None, r"notice_id: 'not-a-uuid' is not a UUID \[rule uuid\]"),
        (None, None, r"notice_id: must be a UUID \[rule uuid\]"),
        ("0" * 5000, None, r"notice_id: must be a UUID \[rule uuid\]"),
        ("2b2f6484-0f0a-5dfa-88e4-d14a0051988a", "n" * 2001, r"note: 2001 characters"),
        ("2b2f6484-0f0a-5dfa-88e4-d14a0051988a", "\u2066x", r"note: .*U\+2066 \[rule printable\]"),
    ],
)
def test_a_bad_acknowledgement_is_refused_and_nothing_is_sent(
    keystore: KeyStore, producer: _Producer, notice_id: Any, note: Any, message: str
) -> None:
    with pytest.raises(AnomalyInputInvalid, match=message):
        _desk(keystore, producer, "BJ01").acknowledge(notice_id, "public-security", note=note)
    assert producer.sent == []


def test_the_reporters_own_side_may_not_acknowledge(
    keystore: KeyStore, producer: _Producer
) -> None:
    with pytest.raises(NotAllowed, match=r"notice_id .*\[rule other-side\]"):
        _desk(keystore, producer, POLICE).acknowledge(
            "2b2f6484-0f0a-5dfa-88e4-d14a0051988a", "border-control"
        )
    assert producer.sent == []
    _desk(keystore, producer, "BJ01").acknowledge(
        "2b2f6484-0f0a-5dfa-88e4-d14a0051988a", "border-control", note="已收到"
    )
    assert len(producer.sent) == 1


_ENCOUNTER = {
    "hit_id": "80ae7fdd-e369-5b1c-a6d7-878ae4601d08",
    "order_id": "ad5b6bc2-1441-5767-b817-48a2921a8ba1",
    "reporting_unit_code": POLICE,
    "action_taken": "DETAINED",
    "confirmed_at": NOW,
    "note": None,
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"action_taken": "SHOT"}, "action_taken"),
        ({"reporting_unit_code": "110000230000"}, r"reporting_unit_code: .*\[rule sender\]"),
        ({"hit_id": "not-a-uuid"}, "hit_id"),
        ({"order_id": None}, "order_id"),
        ({"note": "n" * 2001}, "note"),
        ({"note": "\u202e"}, "note"),
    ],
)
def test_a_confirmation_is_checked_at_the_edge_before_it_is_signed(
    keystore: KeyStore, producer: _Producer, change: dict[str, Any], message: str
) -> None:
    """The police side's EncounterConfirmation goes through the publisher's own checks."""
    publisher = _desk(keystore, producer).publisher
    record = {**_ENCOUNTER, **change}
    with pytest.raises(BusError, match=message):
        publisher.publish(outgoing_event("cn.zf801.bus.v1.EncounterConfirmation", record))
    assert producer.sent == []
