"""A police unit fetches the enforcement case and the sealed documents an order delivered
to it cites, against the real broker: the bus forwards only cited documents, only to the
province the order was delivered to; a unit of another province reads none of them."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from consumers.document_delivery import DocumentForwarder
from consumers.document_fetch import fetch_order_papers
from consumers.runtime import Runtime
from schemas.errors import BusError
from sign.verify_stage import MemoryAuditSink, MemoryDeadLetterSink
from topics import clients

pytestmark = [pytest.mark.e2e]

BORDER_BJ = "110000230000"
BORDER_SH = "310000230000"
_IDLE_S = 2.0


def _runtime(bus: Any, code: str) -> Runtime:
    return Runtime.from_keystore(code, MemoryDeadLetterSink(), MemoryAuditSink(),
                                 settings=bus.settings, keystore=bus.keystore)  # fmt: skip


def _document(case_number: str, content: bytes, sha256: bytes | None = None) -> dict[str, Any]:
    return {
        "document_id": str(uuid.uuid4()), "case_number": case_number, "court_code": "BJ01",
        "kind": "RULING", "title": "执行裁定书", "issued_on": dt.date(2026, 1, 5),
        "media_type": "application/pdf", "size_bytes": len(content),
        "sha256": sha256 or hashlib.sha256(content).digest(), "content": content,
        "published_at": dt.datetime.now(dt.UTC),
    }  # fmt: skip


def _deliver_as_the_worker(bus: Any, order_id: str) -> None:
    """Copy the order, unchanged, from the intake to Beijing's delivery topic, as the
    worker does once the order book accepted it."""
    producer = clients.kafka_producer(bus.settings, "BUS-MATCHER")
    try:
        for message in bus.messages("orders-exit-restriction", idle_s=_IDLE_S):
            if order_id.encode() in message.value:
                topic = bus.catalog.topic_name("order-delivery-exit-restriction", province="11")
                producer.send(topic, key=message.key, value=message.value,
                              headers=list(message.headers)).get(timeout=30)  # fmt: skip
    finally:
        producer.close()


def test_a_unit_fetches_the_case_and_the_cited_documents_only(
    bus_factory: Any, records: Any, tmp_path: Path
) -> None:
    bus = bus_factory()
    case_number = f"（2026）京01执{uuid.uuid4().int % 9000 + 100}号"
    content = os.urandom(3 * 1024 * 1024)  # a 3 MiB ruling
    cited = _document(case_number, content)
    forged = _document(case_number, b"a different text", sha256=hashlib.sha256(b"x").digest())
    not_cited = _document(case_number, b"another document")
    for document in (cited, not_cited):
        bus.publish("BJ01", "JudicialDocument", document)
    # a digest that is not its content's: the edge refuses it, a court's own tooling may not
    bus.publisher("BJ01").publish(bus.event("JudicialDocument", forged), checked=True)
    case = {"case_number": case_number, "filing_date": dt.date(2026, 1, 2),
            "enforcing_court_code": "BJ01", "enforcing_court_name": None,
            "debtors": [{"kind": "NATURAL_PERSON", "name": "李四", "id_number": records.id_number(),
                         "organisation_code": None}],
            "enforcement_status": "IN_PROGRESS", "amount_applied_for": Decimal("1000.00"),
            "recorded_at": dt.datetime.now(dt.UTC)}  # fmt: skip
    bus.publish("BJ01", "EnforcementCase", case)
    order = records.person_order("BJ01", case_number, records.id_number())
    number = f"{case_number}之一"  # the court's number for it (文书编号), not its id on the bus
    order["sealed_documents"] = [
        {"kind": "RULING", "document_id": label, "sha256": hashlib.sha256(c).digest(),
         "title": "执行裁定书"}
        for label, c in ((number, content), (forged["document_id"], b"a different text"))
    ]  # fmt: skip
    bus.publish("BJ01", "ExitRestrictionOrder", order)
    _deliver_as_the_worker(bus, order["order_id"])

    forwarder = DocumentForwarder(_runtime(bus, "BUS-ROUTER"), tmp_path / "index.sqlite")
    forwarder.run(until_idle_s=5.0)
    assert forwarder.counts["forwarded"] == 1 and forwarder.counts["mismatched"] == 1

    police = _runtime(bus, BORDER_BJ)
    papers = fetch_order_papers(police, order["order_id"], tmp_path / "out")
    refused = [(r.reason, r.detail) for r in police.dead_letters.rejections]  # type: ignore[attr-defined]
    assert refused == []
    assert [(d.document_id, d.cited_as) for d in papers.documents] == [
        (cited["document_id"], number)  # found by its digest, saved under its own id
    ]
    assert papers.documents[0].path.name == cited["document_id"]
    assert papers.documents[0].path.read_bytes() == content
    assert papers.missing == [forged["document_id"]]
    assert papers.case is not None and papers.case["case_number"] == case_number
    forwarded = bus.messages("order-documents", province="11", idle_s=_IDLE_S)
    assert len(forwarded) == 1  # the forged and the uncited documents never reach the police

    with pytest.raises(BusError, match="not delivered to 310000230000"):
        fetch_order_papers(_runtime(bus, BORDER_SH), order["order_id"], tmp_path / "sh")
