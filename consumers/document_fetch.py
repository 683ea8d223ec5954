"""A police unit fetches what an order delivered to it rests on: the enforcement case and
the sealed documents it cites, each verified, the documents written to files.

The unit reads the delivery topics its role and provinces allow (the order, signed by
the court), the ``order-documents`` topics of its provinces (what the bus forwarded for
the orders delivered there: :mod:`consumers.document_delivery`) and the enforcement cases.
A document is kept only if its signature verifies, the order's court issued it, and both
its recorded SHA-256 and the SHA-256 of its content are the one the order cites (an order
names each document by the court's number, 文书编号, or by its id on the bus, and always
by its digest: the digest finds it). Its content is written to ``<out>/<document id>``
(the document's UUID, never a name taken from the order) as soon as it is checked and not
kept. Records are fetched one at a time, so one document at most is in memory. Every
fetch is audited.
"""

from __future__ import annotations

import getpass
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumers.delivery import DELIVERY_TOPIC_IDS
from consumers.document_delivery import DOCUMENT, DOCUMENTS_TOPIC_ID
from consumers.runtime import Runtime
from schemas.agencies import load_agencies
from schemas.errors import BusError
from schemas.event_types import ORDERS
from schemas.files import write_replacing
from schemas.identifiers import normalise_uuid
from schemas.jsonmap import to_json
from sign.acceptance import AcceptancePolicy
from sign.verify_stage import VerifiedEvent, VerifyStage

__all__ = ["FetchedDocument", "OrderPapers", "fetch_order_papers"]

_CASE = "cn.zf801.court.v1.EnforcementCase"


@dataclass(frozen=True)
class FetchedDocument:
    document_id: str
    """The document's id on the bus (a UUID: the file's name)."""
    cited_as: str
    """How the order names it (the court's number, or the same id)."""
    kind: str
    title: str
    path: Path
    size_bytes: int
    sha256: str


@dataclass
class OrderPapers:
    """The order (as JSON), its enforcement case (None if not found) and its documents."""

    order: dict[str, Any]
    case: dict[str, Any] | None = None
    documents: list[FetchedDocument] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Cited documents not (yet) forwarded to the unit, or refused."""


def fetch_order_papers(runtime: Runtime, order_id: str, out_dir: Path) -> OrderPapers:
    """The papers of order ``order_id`` (a UUID) for the police unit ``runtime`` speaks
    for."""
    order_id = normalise_uuid(order_id, "order_id")
    agencies = load_agencies()
    unit = agencies.get(runtime.agency_code)
    served = agencies.provinces_served_by(unit.code)
    catalog, role = runtime.catalog, str(unit.role)
    stage = runtime.verify_stage(roles_by_topic=False, acceptance=AcceptancePolicy.history(),
                                 skew_checked=False)  # fmt: skip
    topic_ids = (*DELIVERY_TOPIC_IDS.values(), DOCUMENTS_TOPIC_ID)
    readable = [
        (topic_id, p)
        for topic_id in topic_ids
        for p in sorted(served)
        if catalog.may_read(role, topic_id, province=p, reader_provinces=served)
    ]
    orders = [catalog.topic_name(t, province=p) for t, p in readable if t != DOCUMENTS_TOPIC_ID]
    documents = [catalog.topic_name(t, province=p) for t, p in readable if t == DOCUMENTS_TOPIC_ID]
    runtime.audit.record(
        user=getpass.getuser(), role=role, agency_code=unit.code, operation="documents.fetch",
        target=order_id, result="SUCCESS", detail=None,
    )  # fmt: skip
    order = _find_order(runtime, unit, orders, stage, order_id=order_id)
    if order is None:
        provinces = ", ".join(sorted(served)) or "none"
        raise BusError(f"order {order_id}: not delivered to {unit.code} (read {len(orders)} "
                       f"delivery topics, provinces {provinces})")  # fmt: skip
    record = order.payload
    result = OrderPapers(to_json(order.envelope.schema, record))
    cited = {bytes(d["sha256"]): str(d["document_id"]) for d in record["sealed_documents"]}
    court = record["enforcing_court_code"]
    out_dir.mkdir(parents=True, exist_ok=True)
    for verified in _verified(runtime, unit, documents, stage):
        doc = verified.payload
        document_id, recorded = str(doc["document_id"]), bytes(doc["sha256"])
        if verified.signature.event_type != DOCUMENT:
            continue
        if recorded not in cited and document_id not in cited.values():
            continue  # another order's
        content = doc.get("content") or b""
        digest = hashlib.sha256(content).digest()
        if doc["court_code"] != court or recorded != digest or recorded not in cited:
            runtime.refuse(verified, "DOCUMENT_MISMATCH", (
                f"sha256: document {document_id} is not the one order {order_id} of {court} "
                "cites (court, recorded digest and content digest must match) "
                "[rule document.citation]"))  # fmt: skip
            continue
        path = out_dir / document_id
        # court papers: this user's alone, and a link planted at the name is replaced
        write_replacing(path, content, "document", mode=0o600, error=BusError)
        result.documents.append(FetchedDocument(
            document_id, cited.pop(recorded), str(doc["kind"]), doc["title"], path,
            len(content), digest.hex(),
        ))  # fmt: skip
    result.missing = sorted(cited.values())
    result.case = _find_case(runtime, unit, stage, case_number=record["case_number"], court=court)
    return result


def _verified(
    runtime: Runtime,
    unit: Any,
    topics: list[str],
    stage: VerifyStage,
    *,
    key: bytes | None = None,
    timeout_s: float = 60.0,
) -> Iterator[VerifiedEvent]:
    """Every verified record of ``topics`` up to their ends as they are now (with ``key``:
    only records of that key, matched before any decode), one fetched at a time."""
    if not topics:
        return
    consumer = runtime.stream_reader(unit, tuple(topics), "documents.fetch",
                                     client_id=f"zf801-papers-{unit.code}")  # fmt: skip
    deadline = time.monotonic() + timeout_s
    try:
        assigned = list(consumer.assignment())
        ends = consumer.end_offsets(assigned)

        while any(consumer.position(tp) < ends[tp] for tp in assigned):
            if time.monotonic() > deadline:
                raise BusError(f"{', '.join(topics)}: not read to the end in {timeout_s:.0f} s")
            for messages in consumer.poll(timeout_ms=500, max_records=1).values():
                for message in messages:
                    if key is not None and message.key != key:
                        continue
                    verified = stage.check_record(message)
                    if verified is not None:
                        yield verified
    finally:
        consumer.close()


def _find_order(
    runtime: Runtime,
    unit: Any,
    topics: list[str],
    stage: VerifyStage,
    *,
    order_id: str,
) -> VerifiedEvent | None:
    found = None
    for verified in _verified(runtime, unit, topics, stage):
        record, signature = verified.payload, verified.signature
        if (signature.event_type in ORDERS and str(record.get("order_id")) == order_id
                and record["enforcing_court_code"] == signature.agency_code):  # fmt: skip
            found = verified
    return found


def _find_case(
    runtime: Runtime, unit: Any, stage: VerifyStage, *, case_number: str, court: str
) -> dict[str, Any] | None:
    topic = runtime.catalog.topic_name("enforcement-cases")
    case = None
    for verified in _verified(runtime, unit, [topic], stage, key=case_number.encode("utf-8")):
        signature = verified.signature
        if signature.event_type == _CASE and signature.agency_code == court:
            case = to_json(verified.envelope.schema, verified.payload)
    return case
