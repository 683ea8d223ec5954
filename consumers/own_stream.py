"""Reading a stream an agency owns: a court's alerts, a police unit's action notices.

One subscriber core for both. It reads the stream from its start as the owner (its own
certificate, from the key store), after the catalog's read rule (``own-court``,
``own-unit``) said it may; on a shared broker the broker ACLs enforce the same rule. Every
record is verified, then believed only where its signed content confirms its place (a
:data:`Addressing` rule: which event types, signed by which role, naming which owner);
anything else is refused: dead-lettered (where the reader's role may write dead letters)
and audited, never shown. A verified record shown before (same event id) is skipped, so
a redelivery never shows twice; a forged copy of it is refused like any forgery.

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

from consumers.errors import ConsumerError
from consumers.polling import poll_batches
from consumers.runtime import Runtime
from schemas.agencies import Agency, get_agency
from schemas.jsonmap import to_json
from sign.acceptance import AcceptancePolicy
from sign.verify_stage import DeadLetterSink, Rejection, VerifyStage

__all__ = [
    "Addressing",
    "OwnStream",
    "OwnStreamSubscriber",
    "Refusal",
    "RefusedPositions",
    "StreamRecord",
]

log = logging.getLogger(__name__)

Addressing = Callable[[str, str, str, Mapping[str, Any]], tuple[str, str] | None]
"""Why a verified record (event type, signer agency, signer role, decoded record) must not
be shown to the stream's owner: a (reason code, detail) pair, or None to show it."""


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One verified record of an owned stream, shown to its owner."""

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


@dataclass(frozen=True, slots=True)
class Refusal:
    """A record refused in this read: where it was and why (for the operator's summary)."""

    partition: int
    offset: int
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class OwnStream:
    """What a subscriber reads and how it judges it: the topic, named for ``owner``; the
    addressing rule its records must pass; and, for a reader the catalog's read rule
    refuses, the error raised, naming ``what`` is read and the ``rule``."""

    kind: str
    """``alerts``, ``notices``: the audited operation is ``<kind>.read``, and the records
    refused are remembered under ``state/<kind>`` of the settings' home."""
    topic: str
    owner: str
    addressing: Addressing
    denied: type[ConsumerError]
    what: str
    rule: str


def _content_digest(message: Any) -> str:
    """What a record at a position holds (value and headers), so a remembered position of
    a topic deleted and created anew never passes over a different record."""
    digest = hashlib.sha256(message.value or b"")
    for name, value in message.headers or ():
        digest.update(b"\0" + name.encode("utf-8") + b"\0" + (value or b""))
    return digest.hexdigest()[:32]


@dataclass
class RefusedPositions:
    """The records of one stream this subscriber refused (dead-lettered and audited):
    partition, offset and content digest, the newest :attr:`limit` kept.

    Kept in a file so that it outlives the process: ``zf801 alerts`` and ``zf801 notices``
    are a new process on every read and read the stream from its start. Losing the file
    (or an entry beyond the limit) only means a refusal is dead-lettered once more, under
    the same deterministic dead-letter id; it never hides a record, since an entry matches
    only the same content at the same position."""

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


@dataclass
class _NotingDeadLetters:
    """The runtime's dead-letter sink, also noting each refusal of the verify stage for the
    read's summary."""

    sink: DeadLetterSink
    refusals: list[Refusal]

    def write(self, rejection: Rejection) -> None:
        record = rejection.record
        self.refusals.append(
            Refusal(record.partition, record.offset, rejection.reason, rejection.detail)
        )
        self.sink.write(rejection)


class OwnStreamSubscriber:
    """Reads ``stream`` as the agency of ``runtime``; ``refused`` remembers the records it
    dead-lettered (default: a file per stream under the settings' home)."""

    def __init__(
        self,
        runtime: Runtime,
        stream: OwnStream,
        *,
        refused: RefusedPositions | None = None,
    ) -> None:
        self._rt = runtime
        self._reader: Agency = get_agency(runtime.agency_code)
        self.stream = stream
        self.topic = stream.topic
        self._operation = f"{stream.kind}.read"
        reader = self._reader
        if not runtime.catalog.may_read_topic(
            str(reader.role), self.topic, reader_court=reader.code, reader_unit=reader.code
        ):
            denied = (
                f"agency {reader.code} (role {reader.role}) may not read {stream.what}: "
                f"{stream.rule}"
            )
            self._audit("DENIED", denied)
            raise stream.denied(denied)
        self.refusals: list[Refusal] = []
        """The records refused in this subscriber's reads (not those passed over)."""
        # An owner reads its stream's whole history: no acceptance window, and duplicates
        # are skipped by event id below rather than refused as replays.
        self._stage: VerifyStage = runtime.verify_stage(
            roles_by_topic=False,
            acceptance=AcceptancePolicy.history(),
            dead_letters=_NotingDeadLetters(runtime.dead_letters, self.refusals),
        )
        self._seen: set[str] = set()
        self.duplicates = 0
        state = runtime.settings.home / "state" / stream.kind / f"{self.topic}.refused.json"
        self.refused = refused if refused is not None else RefusedPositions.load(state)
        self.refused_before = 0
        """Records passed over because they were refused (and dead-lettered) before."""

    def _consumer(self) -> KafkaConsumer:
        """The stream from its start, read as the reader; the brokers are asked first
        whether the reader may read it (``AccessDenied``, audited as DENIED)."""
        return self._rt.stream_reader(
            self._reader, [self.topic], self._operation,
            client_id=f"zf801-{self.stream.kind}-{self.stream.owner}",
        )  # fmt: skip

    def read(
        self,
        *,
        until_idle_s: float | None = 5.0,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[StreamRecord]:
        """Yield every verified record from the start of the stream; with ``until_idle_s``
        stop once nothing new has arrived for that long, else follow until ``stop()``."""
        consumer = self._consumer()
        self._audit("SUCCESS", None)
        try:
            for messages in poll_batches(consumer, stop, until_idle_s=until_idle_s):
                for message in messages:
                    shown = self._accept(message)
                    if shown is not None:
                        yield shown
        finally:
            consumer.close()

    def _audit(self, result: str, detail: str | None) -> None:
        """Every read of an owned stream, and every refused one, is in the audit log."""
        self._rt.audit.record(
            user=getpass.getuser(),
            role=str(self._reader.role),
            agency_code=self._reader.code,
            operation=self._operation,
            target=self.topic,
            result=result,
            detail=detail,
        )

    def _accept(self, message: Any) -> StreamRecord | None:
        """The record to show, or None: refused (now or on an earlier read) or shown
        before. Verified before the event id is trusted, so a forged copy of a record
        shown before is refused, not passed over as a redelivery."""
        if message in self.refused:
            self.refused_before += 1
            return None
        verified = self._stage.check_record(message)
        if verified is None:  # refused: dead-lettered and audited by the stage
            self.refused.add(message)
            return None
        signature = verified.signature
        record = verified.payload
        problem = self.stream.addressing(
            signature.event_type, signature.agency_code, signature.role, record
        )
        if problem is not None:
            self.refusals.append(Refusal(message.partition, message.offset, *problem))
            self._rt.refuse(verified, *problem)
            self.refused.add(message)
            return None
        event_id = str(signature.event_id)
        if event_id in self._seen:
            self.duplicates += 1
            return None
        self._seen.add(event_id)
        return StreamRecord(
            event_id=event_id,
            event_type=signature.event_type,
            signed_by=signature.agency_code,
            offset=message.offset,
            record=record,
            document=to_json(verified.envelope.schema, record),
        )
