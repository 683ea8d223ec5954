"""Fixtures of the ``zf801 publish`` tests: a key store, an in-memory producer and audit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.agencies import load_agencies
from schemas.settings import Settings
from sign.keystore import KeyStore
from sign.verify_stage import MemoryAuditSink
from tests.unit.ops.publish_fakes import Invoke, MemoryProducer, make_invoke


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    keys = tmp_path_factory.mktemp("keys") / "store"
    settings = Settings(keys_path=keys, topic_prefix="")
    KeyStore.from_settings(settings).init(load_agencies().agencies.values(), datetime.now(UTC))
    return settings


@pytest.fixture
def producer() -> MemoryProducer:
    return MemoryProducer()


@pytest.fixture
def audit() -> MemoryAuditSink:
    return MemoryAuditSink()


@pytest.fixture
def invoke(settings: Settings, producer: MemoryProducer, audit: MemoryAuditSink) -> Invoke:
    return make_invoke(settings, producer, audit)
