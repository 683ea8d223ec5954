"""Records above Kafka's 1 MiB default go through where the catalog allows them: an inline
judicial document of 3 MiB is published and read back whole."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ops.deployment import Deployment
from producers import Publisher, outgoing_event
from schemas.codec import default_codec
from schemas.settings import Settings
from tests.builders import trust_set

if TYPE_CHECKING:
    from tests.conftest import KafkaClients

pytestmark = pytest.mark.integration

DOCUMENT = "cn.zf801.court.v1.JudicialDocument"


def test_a_three_mebibyte_document_is_published_and_read_back(
    kafka_settings: Settings, kafka_clients: KafkaClients, tmp_path: Path
) -> None:
    settings = kafka_settings.model_copy(
        update={"home": tmp_path, "topic_prefix": f"big{uuid.uuid4().hex[:8]}-"}
    )
    trust_set(tmp_path, ["BJ01"])
    deployment = Deployment.create(settings)
    deployment.apply_topics()  # and, under mTLS, the catalog's ACLs: BJ01 writes as itself
    content = os.urandom(3 * 1024 * 1024)
    document = {
        "document_id": str(uuid.uuid4()), "case_number": "（2026）京01执1号",
        "court_code": "BJ01", "kind": "RULING", "title": "执行裁定书",
        "issued_on": dt.date(2026, 11, 27), "media_type": "application/pdf",
        "size_bytes": len(content), "sha256": hashlib.sha256(content).digest(),
        "content": content, "published_at": dt.datetime.now(dt.UTC),
    }  # fmt: skip
    try:
        with Publisher(deployment.keystore.signer_for("BJ01"), catalog=deployment.catalog,
                       settings=settings) as court:  # fmt: skip
            published = court.publish(outgoing_event(DOCUMENT, document))
        consumer = kafka_clients.consumer(
            published.topic, group_id=None, auto_offset_reset="earliest",
            consumer_timeout_ms=5000,
        )  # fmt: skip
        try:
            [message] = list(consumer)
        finally:
            consumer.close()
        _, record = default_codec().decode(message.value)
        assert record["content"] == content
        assert record["sha256"] == hashlib.sha256(content).digest()
    finally:
        deployment.remove_run()
