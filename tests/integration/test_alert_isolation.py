"""A court reads only its own alert stream, through the library and through the CLI."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from consumers.alerts import AlertSubscriber
from consumers.errors import AlertAccessDenied
from consumers.runtime import Runtime
from ops.deployment import Deployment
from schemas.codec import default_codec
from schemas.settings import Settings
from sign.verify_stage import MemoryAuditSink, MemoryDeadLetterSink
from tests.builders import trust_set

if TYPE_CHECKING:
    from tests.conftest import KafkaClients

pytestmark = pytest.mark.integration

_ZF801 = Path(sys.executable).with_name("zf801")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("isolation")
    trust_set(home)
    return home


def _runtime(home: Path, agency: str) -> Runtime:
    settings = Settings(home=home)
    return Runtime.from_keystore(
        agency, MemoryDeadLetterSink(), MemoryAuditSink(), settings=settings
    )


@pytest.mark.parametrize(
    ("reader", "court"),
    [("BJ01", "SH01"), ("SH01", "BJ01"), ("110000000000", "BJ01"), ("BUS-MATCHER", "BJ01")],
)
def test_library_refuses_another_agencys_alert_stream(home: Path, reader: str, court: str) -> None:
    runtime = _runtime(home, reader)
    with pytest.raises(AlertAccessDenied, match=f"may not read the alerts of court {court}"):
        AlertSubscriber(runtime, court)
    assert isinstance(runtime.audit, MemoryAuditSink)
    [denied] = runtime.audit.operations
    assert (denied["operation"], denied["result"], denied["agency_code"]) == (
        "alerts.read", "DENIED", reader)  # fmt: skip
    assert denied["target"] == f"zf801.alerts.{court}"


def test_library_opens_only_the_readers_own_topic(home: Path) -> None:
    subscriber = AlertSubscriber(_runtime(home, "BJ01"), "BJ01")
    assert subscriber.topic == "zf801.alerts.BJ01"


def test_cli_refuses_another_courts_alert_stream_and_audits_both_reads(
    home: Path, kafka_settings: Settings, kafka_clients: KafkaClients
) -> None:
    deployment = Deployment.create(kafka_settings.model_copy(
        update={"home": home, "topic_prefix": f"iso{uuid.uuid4().hex[:8]}-"}
    ))  # fmt: skip
    deployment.apply_topics()  # and, under mTLS, the catalog's ACLs: BJ01 reads as itself
    env = deployment.worker_env()
    try:
        refused = subprocess.run(
            [str(_ZF801), "alerts", "--court", "SH01", "--as", "BJ01", "--until-idle", "1"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert refused.returncode == 1
        assert "may not read the alerts of court SH01" in refused.stderr
        assert "Alerts of court" not in refused.stdout
        allowed = subprocess.run(
            [str(_ZF801), "alerts", "--court", "BJ01", "--until-idle", "1"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert allowed.returncode == 0, allowed.stderr
        assert "0 alert(s)" in allowed.stdout
        audit = _read_all(kafka_clients, deployment.catalog.topic_name("audit"))
        reads = sorted((r["agency_code"], r["target"].rsplit(".", 1)[1], r["result"])
                       for r in audit if r["operation"] == "alerts.read")  # fmt: skip
        assert reads == [("BJ01", "BJ01", "SUCCESS"), ("BJ01", "SH01", "DENIED")]
    finally:
        deployment.remove_run()


def _read_all(kafka_clients: KafkaClients, topic: str) -> list[dict[str, Any]]:
    consumer = kafka_clients.consumer(topic, group_id=None, auto_offset_reset="earliest",
                                      consumer_timeout_ms=3000)  # fmt: skip
    try:
        return [default_codec().decode(message.value)[1] for message in consumer]
    finally:
        consumer.close()
