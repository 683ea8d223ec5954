"""The court's alert subscriber: reads, verifies and de-duplicates one court's alert stream.

A subscriber speaks for one court and reads only that court's topic: it is built from the
court's own identity (its certificate, from the key store), and the catalog's read rule
(``own-court``) is checked before any topic is opened; asking for another court's alerts
raises :class:`AlertAccessDenied`. On a shared broker the same rule must also be enforced
by broker ACLs (the catalog is their source); this library never offers a way around it.

Every alert is verified before it is shown, and believed only where its signed content
confirms its place (:func:`consumers.addressing.alert_problem`): hits, expiry notices and
overdue alerts must be signed by a bus processor, forwarded acknowledgements by a unit of
the police role and province that act on the order, and every alert must name this court
as its ``court_code``; a genuine alert for another court, copied into this stream, is
refused (dead letter and audit), never shown. The stream is read at ``read_committed``
(hits are written in transactions), and an alert id shown before is skipped, so a
redelivery never shows as a second alert.

Every read starts at the beginning of the stream, so a refused record would be refused,
dead-lettered and audited again on every read. The subscriber remembers what it refused
(:class:`RefusedPositions`, a small file per stream under the settings' home): a record
at a remembered position with the same content is passed over, never shown, and not
dead-lettered again.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer

from consumers.addressing import ALERT_WRITER_ROLES, alert_problem
from consumers.errors import AlertAccessDenied
from consumers.polling import poll_batches
from consumers.runtime import Runtime
from schemas.agencies import get_agency
from schemas.headers import CE_ID
from schemas.jsonmap import to_json
from sign.acceptance import AcceptancePolicy
from sign.verify_stage import VerifyStage

__all__ = ["ALERT_WRITER_ROLES", "Alert", "AlertSubscriber", "RefusedPositions"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Alert:
    """One verified alert."""

    event_id: str
    event_type: str
    signed_by: str
    offset: int
    record: Mapping[str, Any]
    document: Mapping[str, Any]
    """The record in the bus's JSON mapping (for ``--format json``)."""

    @property
    def kind(self) -> str:
        return self.event_type.rsplit(".", 1)[-1]


def _content_digest(message: Any) -> str:
    """What a record at a position holds (value and headers), so a remembered position of
    a topic deleted and created anew never passes over a different record."""
    digest = hashlib.sha256(message.value or b"")
    for name, value in message.headers or ():
        digest.update(b"\0" + name.encode("utf-8") + b"\0" + (value or b""))
    return digest.hexdigest()[:32]


@dataclass
class RefusedPositions:
    """The records of one alert stream this subscriber refused (dead-lettered and
    audited): partition, offset and content digest, the newest :attr:`limit` kept.

    Kept in a file so that it outlives the process: ``zf801 alerts`` is a new process on
    every read and reads the stream from its start. Losing the file (or an entry beyond
    the limit) only means a refusal is dead-lettered once more, under the same
    deterministic dead-letter id; it never hides an alert, since an entry matches only the
    same content at the same position."""

    path: Path | None
    limit: int = 10_000
    _entries: dict[tuple[int, int], str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None, limit: int = 10_000) -> RefusedPositions:
        """The positions stored at ``path`` (none if it is missing or unreadable)."""
        positions = cls(path, limit)
        if path is None or not path.is_file():
            return positions
        try:
            positions._entries = cls.from_bytes(path.read_bytes())
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("refused positions %s unreadable, starting empty: %s", path, exc)
        return positions

    @staticmethod
    def from_bytes(data: bytes) -> dict[tuple[int, int], str]:
        document = json.loads(data)
        return {(int(p), int(o)): str(d) for p, o, d in document["refused"]}

    def to_bytes(self) -> bytes:
        refused = [[p, o, d] for (p, o), d in self._entries.items()]
        return json.dumps({"version": 1, "refused": refused}).encode("utf-8")

    def __contains__(self, message: Any) -> bool:
        remembered = self._entries.get((message.partition, message.offset))
        return remembered is not None and remembered == _content_digest(message)

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, message: Any) -> None:
        """Remember a refused record and store the file at once (refusals are rare)."""
        self._entries[(message.partition, message.offset)] = _content_digest(message)
        while len(self._entries) > self.limit:
            del self._entries[next(iter(self._entries))]
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(self.path.name + ".tmp")
            partial.write_bytes(self.to_bytes())
            os.replace(partial, self.path)


class AlertSubscriber:
    """Reads the alert topic of ``court``, as the court ``reader``; ``refused`` remembers
    the records it dead-lettered (default: a file per stream under the settings' home)."""

    def __init__(
        self, runtime: Runtime, court: str, refused: RefusedPositions | None = None
    ) -> None:
        reader = get_agency(runtime.agency_code)
        self._rt = runtime
        self._reader = reader
        self.topic = runtime.catalog.topic_name("alerts", court=court)
        if not runtime.catalog.may_read(
            str(reader.role), "alerts", court, reader_court=reader.code
        ):
            denied = (
                f"agency {reader.code} (role {reader.role}) may not read the alerts of court "
                f"{court}: a court reads only its own alert stream"
            )
            self._audit("DENIED", denied)
            raise AlertAccessDenied(denied)
        self.court = court
        # A court reads its stream's whole history: no acceptance window, and duplicates
        # are skipped by event id below rather than refused as replays.
        self._stage: VerifyStage = runtime.verify_stage(
            roles_by_topic=False, acceptance=AcceptancePolicy.history()
        )
        self._seen: set[str] = set()
        self.duplicates = 0
        state = runtime.settings.home / "state" / "alerts" / f"{self.topic}.refused.json"
        self.refused = refused if refused is not None else RefusedPositions.load(state)
        self.refused_before = 0
        """Records passed over because they were refused (and dead-lettered) before."""

    def _consumer(self) -> KafkaConsumer:
        """The stream from its start, read as the reader; the brokers are asked first
        whether the reader may read it (``AccessDenied``, audited as DENIED)."""
        return self._rt.stream_reader(
            self._reader, [self.topic], "alerts.read", client_id=f"zf801-alerts-{self.court}"
        )

    def read(
        self,
        *,
        until_idle_s: float | None = 5.0,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[Alert]:
        """Yield every verified alert from the start of the stream; with ``until_idle_s``
        stop once nothing new has arrived for that long, else follow until ``stop()``."""
        consumer = self._consumer()
        self._audit("SUCCESS", None)
        try:
            for messages in poll_batches(consumer, stop, until_idle_s=until_idle_s):
                for message in messages:
                    alert = self._accept(message)
                    if alert is not None:
                        yield alert
        finally:
            consumer.close()

    def _audit(self, result: str, detail: str | None) -> None:
        """Every read of an alert stream, and every refused one, is in the audit log."""
        self._rt.audit.record(
            user=getpass.getuser(),
            role=str(self._reader.role),
            agency_code=self._reader.code,
            operation="alerts.read",
            target=self.topic,
            result=result,
            detail=detail,
        )

    def _accept(self, message: Any) -> Alert | None:
        headers = list(message.headers or ())
        raw_id = next((value for name, value in headers if name == CE_ID), None)
        event_id = raw_id.decode("utf-8", "replace") if raw_id else ""
        if event_id in self._seen:
            self.duplicates += 1
            return None
        if message in self.refused:
            self.refused_before += 1
            return None
        verified = self._stage.check_record(message)
        if verified is None:  # refused: dead-lettered and audited by the stage
            self.refused.add(message)
            return None
        signature = verified.signature
        record = verified.payload
        problem = alert_problem(
            self.court, signature.event_type, signature.agency_code, signature.role, record
        )
        if problem is not None:
            self._rt.refuse(verified, *problem)
            self.refused.add(message)
            return None
        self._seen.add(event_id)
        return Alert(
            event_id=event_id,
            event_type=signature.event_type,
            signed_by=signature.agency_code,
            offset=message.offset,
            record=record,
            document=to_json(verified.envelope.schema, record),
        )
