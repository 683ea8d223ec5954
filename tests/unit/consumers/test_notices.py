"""A police unit's notice subscriber: which records of its action-notices topic it shows and
which it refuses (dead letter and audit, once), with real keys and signatures (no broker);
and which codes name a police unit."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from consumers.action_notices import ACTION_NOTICE
from consumers.addressing import notice_problem
from consumers.errors import NoticeAccessDenied, NotPoliceUnitError
from consumers.notices import NoticeSubscriber, police_unit
from consumers.outgoing import OutgoingSigner
from consumers.own_stream import RefusedPositions
from consumers.runtime import Runtime
from schemas.codec import default_codec
from schemas.jsonmap import from_json
from schemas.registry import EXAMPLE_DIR, default_registry
from schemas.settings import Settings
from sign.keystore import KeyStore
from sign.verify_stage import ConsumedRecord, MemoryAuditSink, MemoryDeadLetterSink
from tests.unit.consumers.conftest import POLICE, TRAFFIC

UNIT = POLICE
OTHER_UNIT = "110105000000"  # another Beijing public-security unit
WARNING = "cn.zf801.orders.v1.OrderExpiryWarning"


def _example(full_name: str) -> dict[str, Any]:
    schema = default_registry().get(full_name)
    family = full_name.split(".")[2]
    path = EXAMPLE_DIR / family / f"{schema.name}.json"
    return dict(from_json(schema, json.loads(path.read_text(encoding="utf-8"))))


def _notice(**fields: Any) -> dict[str, Any]:
    return {**_example(ACTION_NOTICE), "notice_id": str(uuid.uuid4()),
            "reporting_unit_code": UNIT, **fields}  # fmt: skip


class _Topic:
    """The unit's action-notices topic as its subscriber meets it: records signed by any
    agency of the key store, at increasing offsets."""

    def __init__(self, keystore: KeyStore) -> None:
        self.keystore = keystore
        self.settings = Settings(home=keystore.directory.parent)
        self.dead_letters, self.audit = MemoryDeadLetterSink(), MemoryAuditSink()
        runtime = Runtime.from_keystore(
            UNIT, self.dead_letters, self.audit, settings=self.settings, keystore=keystore
        )
        self.subscriber = NoticeSubscriber(runtime, UNIT, refused=RefusedPositions(None))
        self.name = self.subscriber.topic
        self._offset = 0

    def signed(
        self, record: dict[str, Any], signer: str = "BUS-MATCHER", schema: str = ACTION_NOTICE
    ) -> ConsumedRecord:
        outgoing = OutgoingSigner(self.keystore.signer_for(signer), default_codec()).sign(
            self.name, schema, record, key=UNIT.encode(), event_id=str(uuid.uuid4()),
            now=dt.datetime.now(dt.UTC),
        )  # fmt: skip
        signed = outgoing.record
        return self.at(signed.key, signed.value, tuple(signed.headers))

    def at(self, key: bytes | None, value: bytes, headers: tuple[tuple[str, bytes], ...]
           ) -> ConsumedRecord:  # fmt: skip
        self._offset += 1
        now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        return ConsumedRecord(self.name, 0, self._offset, now_ms, key, value, headers)


@pytest.fixture
def topic(keystore: KeyStore) -> _Topic:
    return _Topic(keystore)


def test_a_notice_the_bus_signed_for_the_unit_is_shown(topic: _Topic) -> None:
    shown = topic.subscriber._accept(topic.signed(_notice()))
    assert shown is not None
    assert (shown.kind, shown.signed_by, shown.record["reporting_unit_code"]) == (
        "ActionNotice", "BUS-MATCHER", UNIT)  # fmt: skip
    assert shown.document["action"] == "DETAIN"
    assert topic.dead_letters.rejections == [] and topic.subscriber.refusals == []


def _flipped(topic: _Topic) -> ConsumedRecord:
    genuine = topic.signed(_notice())
    value = bytearray(genuine.value or b"")
    value[-1] ^= 0x01
    return topic.at(genuine.key, bytes(value), genuine.headers)


def _junk(topic: _Topic) -> ConsumedRecord:
    return topic.at(UNIT.encode(), b"\x00junk, no Avro", topic.signed(_notice()).headers)


def _oversized(topic: _Topic) -> ConsumedRecord:
    genuine = topic.signed(_notice())
    return topic.at(genuine.key, genuine.value or b"", (*genuine.headers, ("x-pad", b"x" * 70_000)))


def _headerless(topic: _Topic) -> ConsumedRecord:
    genuine = topic.signed(_notice())
    return topic.at(genuine.key, genuine.value or b"", ())


BAD_RECORDS: dict[str, tuple[Callable[[_Topic], ConsumedRecord], str]] = {
    "forged seal": (_flipped, "BAD_SIGNATURE"),
    "wrong signer role": (lambda t: t.signed(_notice(), signer=TRAFFIC), "ROLE_NOT_ALLOWED"),
    "wrong event type": (lambda t: t.signed(_example(WARNING), schema=WARNING), "ROLE_NOT_ALLOWED"),
    "another unit's notice": (
        lambda t: t.signed(_notice(reporting_unit_code=OTHER_UNIT)), "MISADDRESSED"),
    "junk bytes": (_junk, "BAD_SIGNATURE"),  # the seal covers the value
    "oversized": (_oversized, "OVERSIZED_HEADER"),
    "missing headers": (_headerless, "MISSING_HEADER"),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(BAD_RECORDS))
def test_a_bad_record_is_refused_dead_lettered_and_audited_once(topic: _Topic, kind: str) -> None:
    make, reason = BAD_RECORDS[kind]
    bad = make(topic)
    subscriber = topic.subscriber
    assert subscriber._accept(bad) is None
    [refusal] = subscriber.refusals
    assert (refusal.partition, refusal.offset) == (0, bad.offset)
    assert refusal.reason == reason, refusal
    [dead] = topic.dead_letters.rejections
    [audited] = topic.audit.rejections
    assert dead.reason == audited.reason == refusal.reason
    assert (dead.record.topic, dead.record.offset) == (topic.name, bad.offset)

    assert subscriber._accept(bad) is None  # the next read passes over it
    assert subscriber.refused_before == 1
    assert len(topic.dead_letters.rejections) == len(topic.audit.rejections) == 1


def test_the_rule_names_what_is_wrong_with_a_verified_record() -> None:
    notice = _notice()
    assert notice_problem(UNIT, ACTION_NOTICE, "BUS-MATCHER", "bus", notice) is None
    assert notice_problem(UNIT, ACTION_NOTICE, TRAFFIC, "traffic-management", notice) == (
        "ROLE_NOT_ALLOWED",
        f"{ACTION_NOTICE} on a unit's action-notices topic is signed by {TRAFFIC} "
        "(role traffic-management); allowed: bus",
    )
    reason, detail = notice_problem(UNIT, WARNING, "BUS-MATCHER", "bus", {}) or ("", "")
    assert reason == "ROLE_NOT_ALLOWED" and "is not an action notice" in detail
    assert notice_problem(OTHER_UNIT, ACTION_NOTICE, "BUS-MATCHER", "bus", notice) == (
        "MISADDRESSED",
        f"{ACTION_NOTICE} names reporting_unit_code {UNIT} but was read from the "
        f"action-notices topic of unit {OTHER_UNIT}",
    )


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        ("12345", "named by 12 digits"),
        ("11000000000X", "named by 12 digits"),
        ("BJ01", "named by 12 digits"),
        ("999999999999", "not in the agency list"),
    ],
)
def test_a_code_that_names_no_police_unit_is_refused_with_its_rule(code: str, rule: str) -> None:
    with pytest.raises(NotPoliceUnitError, match=rule):
        police_unit(code)


def test_a_police_unit_is_named_by_its_code() -> None:
    assert police_unit(UNIT).code == UNIT


@pytest.mark.parametrize("reader", [TRAFFIC, "BJ01", "BUS-MATCHER"])
def test_another_agency_may_not_read_the_units_notices(keystore: KeyStore, reader: str) -> None:
    audit = MemoryAuditSink()
    runtime = Runtime.from_keystore(reader, MemoryDeadLetterSink(), audit,
                                    settings=Settings(home=keystore.directory.parent),
                                    keystore=keystore)  # fmt: skip
    with pytest.raises(NoticeAccessDenied, match=f"may not read the action notices of unit {UNIT}"):
        NoticeSubscriber(runtime, UNIT)
    [denied] = audit.operations
    assert (denied["operation"], denied["result"], denied["agency_code"]) == (
        "notices.read", "DENIED", reader)  # fmt: skip


def test_a_redelivery_shows_once_and_a_forged_copy_of_a_shown_notice_is_refused(
    topic: _Topic,
) -> None:
    genuine = topic.signed(_notice())
    subscriber = topic.subscriber
    assert subscriber._accept(genuine) is not None
    again = topic.at(genuine.key, genuine.value or b"", genuine.headers)
    assert subscriber._accept(again) is None and subscriber.duplicates == 1
    value = bytearray(genuine.value or b"")
    value[-1] ^= 0x01  # the same event id, a changed value: not a redelivery
    assert subscriber._accept(topic.at(genuine.key, bytes(value), genuine.headers)) is None
    assert [r.reason for r in subscriber.refusals] == ["BAD_SIGNATURE"]
    assert len(topic.dead_letters.rejections) == 1
