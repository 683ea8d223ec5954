"""The bus gives a police unit the sealed documents an order delivered to it cites, and no
other document.

Courts publish judicial documents to ``judicial-documents``, which only the bus and the
command system read. The forwarder (``zf801 documents forward``, a bus processor) reads
that topic and the order intake (``orders-<kind>``). For each verified order it notes the
documents it cites (id and SHA-256) for the province whose rule governs the order's court,
the province whose delivery topic carries the order to the police
(:class:`consumers.delivery.OrderDelivery`); for each verified document, where its record
lies. When a cited document is there, issued by the
order's court with the SHA-256 the order carries, the forwarder copies its record,
unchanged (still signed by the court), to ``order-documents`` of that province
(``zf801.court.documents.<province>``, read-scope ``province-rule``): the broker lets only
the units that province's rule names read it. A document whose digest or court differs
from the citation is never forwarded (counted, logged). The index and the offsets are kept
in one SQLite transaction per batch; a document is fetched from its topic only to forward
it, one record at a time (never held twice).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from consumers.errors import ConsumerError
from consumers.polling import poll_batches
from consumers.runtime import Runtime
from consumers.sqlite_store import open_database, write_transaction
from producers.routes import ORDER_TOPICS
from schemas.agencies import AgencyList, AgencyRole, load_agencies
from schemas.errors import UnknownAgencyError
from schemas.event_types import ORDERS
from sign.acceptance import AcceptancePolicy
from sign.verify_stage import VerifiedEvent
from topics.clients import kafka_producer, kafka_reader

__all__ = ["DOCUMENT", "DOCUMENTS_TOPIC_ID", "DocumentForwarder"]

log = logging.getLogger(__name__)

DOCUMENT = "cn.zf801.court.v1.JudicialDocument"
DOCUMENTS_TOPIC_ID = "order-documents"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    document_id TEXT PRIMARY KEY, topic TEXT NOT NULL, partition INTEGER NOT NULL,
    offset INTEGER NOT NULL, sha256 BLOB NOT NULL, court TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS documents_by_digest ON documents (court, sha256);
CREATE TABLE IF NOT EXISTS citations (
    document_id TEXT NOT NULL, province TEXT NOT NULL, sha256 BLOB NOT NULL,
    court TEXT NOT NULL, state INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (document_id, province)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
"""
_WAITING, _FORWARDED, _MISMATCHED = 0, 1, -1


class DocumentForwarder:
    """Forwards cited documents for the bus processor ``runtime`` speaks for; its index
    lives at ``index_path``."""

    def __init__(
        self, runtime: Runtime, index_path: Path, *, agencies: AgencyList | None = None
    ) -> None:
        self.rt = runtime
        self.agencies = agencies or load_agencies()
        catalog = runtime.catalog
        self.documents_topic = catalog.topic_name("judicial-documents")
        self.intake = tuple(catalog.topic_name(topic_id) for topic_id in ORDER_TOPICS.values())
        self._target = catalog.get(DOCUMENTS_TOPIC_ID)
        self._db = open_database(
            index_path, "document index", ConsumerError, wal=False, isolation_level=None,
            check_same_thread=False,
        )  # fmt: skip
        self._db.executescript(_SCHEMA)
        self._stage = runtime.verify_stage(
            roles_by_topic=False, acceptance=AcceptancePolicy.history(), skew_checked=False
        )
        self._producer: Any = None
        self._fetcher: KafkaConsumer | None = None
        self.counts = dict.fromkeys(("read", "cited", "documents", "forwarded", "mismatched"), 0)

    def run(
        self, stop: Callable[[], bool] = lambda: False, *, until_idle_s: float | None = None
    ) -> None:
        """Index and forward until ``stop()`` (or ``until_idle_s`` of quiet)."""
        rows = self._db.execute("SELECT topic, partition, next_offset FROM offsets")
        start = {(topic, partition): offset for topic, partition, offset in rows}
        reader = self.rt.stream_reader(
            self.agencies.get(self.rt.agency_code), (self.documents_topic, *self.intake),
            "documents.forward", client_id="zf801-document-forwarder", start=start,
        )  # fmt: skip
        try:
            for messages in poll_batches(reader, stop, until_idle_s=until_idle_s):
                self.index_batch(messages)
                self.forward_ready()
        finally:
            reader.close()
            self.close()

    def index_batch(self, messages: Sequence[Any]) -> None:
        """Note the batch's documents and citations, and the offsets after them."""
        with write_transaction(self._db):
            for message in messages:
                self._index(message)
                self._db.execute(
                    "INSERT OR REPLACE INTO offsets VALUES (?, ?, ?)",
                    (message.topic, message.partition, message.offset + 1),
                )
        self.counts["read"] += len(messages)

    def _index(self, message: Any) -> None:
        verified = self._stage.check_record(message)
        if verified is None:
            return
        event_type, record = verified.signature.event_type, verified.payload
        if not self._from_its_court(verified):
            return
        if message.topic == self.documents_topic and event_type == DOCUMENT:
            self._db.execute(
                "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?)",
                (str(record["document_id"]), message.topic, message.partition, message.offset,
                 bytes(record["sha256"]), record["court_code"]),
            )  # fmt: skip
            self.counts["documents"] += 1
        elif message.topic in self.intake and event_type in ORDERS:
            province = self.agencies.rule_province(record["enforcing_court_code"])
            for cited in record.get("sealed_documents") or ():
                self._db.execute(
                    "INSERT OR IGNORE INTO citations (document_id, province, sha256, court) "
                    "VALUES (?, ?, ?, ?)",
                    (str(cited["document_id"]), province, bytes(cited["sha256"]),
                     record["enforcing_court_code"]),
                )  # fmt: skip
                self.counts["cited"] += 1

    def _from_its_court(self, verified: VerifiedEvent) -> bool:
        """A court signed it, and the court it names (``court_code`` of a document,
        ``enforcing_court_code`` of an order) is that court; else it is refused."""
        signer = verified.signature.agency_code
        named = verified.payload.get("court_code", verified.payload.get("enforcing_court_code"))
        try:
            is_court = self.agencies.get(signer).role is AgencyRole.COURT
        except UnknownAgencyError:
            is_court = False
        if is_court and named == signer:
            return True
        if verified.signature.event_type in ORDERS or verified.signature.event_type == DOCUMENT:
            self.rt.refuse(verified, "AGENCY_MISMATCH", (
                f"court_code: {named!r} is not the signing court {signer} "
                "[rule sender]"))  # fmt: skip
        return False

    def forward_ready(self) -> int:
        """Forward every cited document that is indexed; mark digest or court mismatches.

        A citation names a document by the court's own number (文书编号) or by the
        document's id on the bus, and always by its SHA-256: the document forwarded is the
        one the citing court published with that digest, whatever its id. A document that
        has the cited id but another court or digest, while none has the cited digest, is
        a mismatch and never forwarded."""
        with write_transaction(self._db):
            mismatched = self._db.execute(
                "UPDATE citations SET state = ? WHERE state = ? AND EXISTS (SELECT 1 FROM "
                "documents d WHERE d.document_id = citations.document_id AND "
                "(d.sha256 != citations.sha256 OR d.court != citations.court)) AND NOT EXISTS "
                "(SELECT 1 FROM documents d WHERE d.court = citations.court AND "
                "d.sha256 = citations.sha256)",
                (_MISMATCHED, _WAITING),
            ).rowcount
        if mismatched:
            self.counts["mismatched"] += mismatched
            log.warning("%d cited document(s) differ from their citation: not forwarded",
                        mismatched)  # fmt: skip
        ready = self._db.execute(  # the latest copy when a court published one twice
            "SELECT c.document_id, c.province, d.topic, d.partition, MAX(d.offset) "
            "FROM citations c JOIN documents d ON d.court = c.court AND d.sha256 = c.sha256 "
            "WHERE c.state = ? GROUP BY c.document_id, c.province", (_WAITING,),
        ).fetchall()  # fmt: skip
        for document_id, province, topic, partition, offset in ready:
            record = self._fetch(topic, partition, offset)
            self._send(self._target.name_for(province=province), record)
            with write_transaction(self._db):
                self._db.execute(
                    "UPDATE citations SET state = ? WHERE document_id = ? AND province = ?",
                    (_FORWARDED, document_id, province),
                )
            self.counts["forwarded"] += 1
        return len(ready)

    def _fetch(self, topic: str, partition: int, offset: int) -> Any:
        if self._fetcher is None:
            self._fetcher = kafka_reader(self.rt.settings, self.rt.agency_code,
                                         self.documents_topic, client_id="zf801-document-fetch",
                                         max_poll_records=1, fetch_max_bytes=8 * 2**20,
                                         max_partition_fetch_bytes=8 * 2**20)  # fmt: skip
        tp = TopicPartition(topic, partition)
        self._fetcher.assign([tp])  # this partition alone, at the document's offset
        self._fetcher.seek(tp, offset)
        while True:
            for message in self._fetcher.poll(timeout_ms=1000).get(tp, ()):
                if message.offset == offset:
                    return message

    def _send(self, topic: str, message: Any) -> None:
        if self._producer is None:
            self._producer = kafka_producer(self.rt.settings, self.rt.agency_code,
                                            max_request_size=8 * 2**20)  # fmt: skip
        self._producer.send(topic, key=message.key, value=message.value,
                            headers=list(message.headers)).get(timeout=30)  # fmt: skip

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
        if self._producer is not None:
            self._producer.close()
        self._db.close()
