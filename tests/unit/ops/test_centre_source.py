"""The command centre counts a record only if its seal verifies: a forged or altered
order on a topic its writer may write moves no figure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

import ops.centre.source as source_module
from ops.centre.source import TopicSource
from producers.publisher import OutgoingEvent, Publisher
from schemas.matchkey import person_match_key
from schemas.settings import Settings
from sign.keystore import KeyStore
from tests.builders import Records


@dataclass
class _Message:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def _signed_order(settings: Settings, seed: int) -> tuple[dict[str, Any], _Message]:
    records = Records(seed)
    order = records.person_order("BJ01", "（2026）京01执1601号", records.id_number())
    signer = KeyStore.from_settings(settings).signer_for("BJ01")
    publisher = Publisher(signer, settings=settings)
    secret = settings.match_key_secret.get_secret_value().encode()
    key = person_match_key(order["subject"]["id_number"], secret=secret)
    event = OutgoingEvent(
        "orders-exit-restriction", "cn.zf801.orders.v1.ExitRestrictionOrder", order, key
    )
    topic, record = publisher.prepare(event)
    message = _Message(topic, 0, seed, 0, record.key, record.value, list(record.headers))
    return order, message


def test_only_records_whose_seal_verifies_are_counted(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    genuine, signed = _signed_order(settings, 1)
    _, altered = _signed_order(settings, 2)
    tampered = bytearray(altered.value)
    tampered[-1] ^= 0x01
    altered.value = bytes(tampered)
    unsigned = _Message(signed.topic, 0, 3, 0, signed.key, signed.value, [])
    batches = [[signed, altered, unsigned]]
    monkeypatch.setattr(source_module, "kafka_reader", lambda *a, **k: object())
    monkeypatch.setattr(source_module, "court_codes", lambda: ())
    monkeypatch.setattr(source_module, "batches_to_end", lambda *a, **k: batches)
    source = TopicSource(settings)
    source._open()
    assert source.refresh()
    assert set(source.tally.orders) == {str(genuine["order_id"])}
    assert source.unverified == 2
