"""What every bus processor is built from: settings, catalog, its own signer, the trust
store and a verify-before-act stage whose refusals go to the dead-letter and audit
topics."""

from __future__ import annotations

import getpass
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from kafka import KafkaConsumer

from schemas.agencies import Agency, get_agency
from schemas.codec import Codec, default_codec
from schemas.settings import Settings, get_settings
from sign.acceptance import AcceptancePolicy
from sign.audit_chain import ChainSlot, claim_chain
from sign.events import EventSigner
from sign.follower import FollowerThread, TrustFollower
from sign.kafka_sinks import KafkaAuditSink, KafkaDeadLetterSink
from sign.keystore import KeyStore
from sign.replay import ReplayGuard
from sign.state_seal import StateSealer
from sign.trust import TrustStore
from sign.verify_stage import (
    AuditSink,
    ConsumedRecord,
    DeadLetterSink,
    Rejection,
    VerifiedEvent,
    VerifyStage,
)
from topics.catalog import Catalog, bus_catalog
from topics.clients import close_producer, kafka_producer, kafka_reader
from topics.errors import AccessDenied, UnknownTopic

__all__ = ["Runtime"]

log = logging.getLogger(__name__)

_TRUST_CATCH_UP_S = 15.0
_SINKS_CLOSE_S = 10.0


class _LoggingFollower(TrustFollower):
    """Logs every trust record it applies: operators (and tests) see a rotation or a
    revocation take effect in this process."""

    def apply(
        self, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]]
    ) -> str:
        outcome = super().apply(key, value, headers)
        log.info("trust record %s applied: %s", (key or b"").decode("ascii", "replace"), outcome)
        return outcome


class _AuditedOnly:
    """The dead-letter sink of an agency that may not write dead letters (the catalog keeps
    them for the bus's processors): a court reading its alerts records what it refused in
    the audit log only, where the verify stage's audit record names the record's place,
    the reason and the detail."""

    def write(self, rejection: Rejection) -> None:
        return None


@dataclass
class Runtime:
    """The shared pieces of one processor process (agency ``agency_code``)."""

    agency_code: str
    settings: Settings
    catalog: Catalog
    signer: EventSigner
    trust: TrustStore
    dead_letters: DeadLetterSink
    audit: AuditSink
    codec: Codec = field(default_factory=default_codec)
    trust_follower: FollowerThread | None = None
    keystore: KeyStore | None = None
    audit_chain: ChainSlot | None = None
    """The slot of this agency's audit chain the process holds (:mod:`sign.audit_chain`)."""
    sinks_producer: Any = None
    """The producer the dead letters and the audit records go out by (closed with the
    runtime: left open, its sender thread outlived the command)."""
    _writer_roles: dict[str, Collection[str]] = field(default_factory=dict, repr=False)

    @classmethod
    def connect(cls, agency_code: str, settings: Settings | None = None) -> Runtime:
        """A runtime whose refusals are dead-lettered and audited on the bus's topics."""
        settings = settings or get_settings()
        keystore = KeyStore.from_settings(settings)
        signer = keystore.signer_for(agency_code)
        catalog = bus_catalog(settings)
        producer = kafka_producer(
            settings,
            agency_code,
            client_id=f"zf801-{agency_code.lower()}-sinks",
            max_request_size=16 * 1024 * 1024,  # dead letters carry large originals
        )
        dead_letters: DeadLetterSink = KafkaDeadLetterSink(
            producer, catalog.topic_name("dead-letter"), signer
        )
        if not catalog.may_write(str(get_agency(agency_code).role), "dead-letter"):
            dead_letters = _AuditedOnly()
        chain = claim_chain(settings, agency_code)
        audit = KafkaAuditSink(producer, catalog.topic_name("audit"), signer, chain=chain)
        runtime = cls.from_keystore(
            agency_code, dead_letters, audit, settings=settings, keystore=keystore
        )
        runtime.audit_chain = chain
        runtime.sinks_producer = producer
        try:
            runtime.follow_trust_topic()
        except BaseException:  # e.g. AccessDenied on the trust topic: nothing left open
            producer.close()
            chain.release()
            raise
        return runtime

    def follow_trust_topic(self, timeout_s: float = _TRUST_CATCH_UP_S) -> None:
        """Keep the trust store current from the trust topic (new certificates, rotations,
        revocations) without a restart; returns once what is on the topic now is applied.
        Raises (``topics.errors``) when this agency may not read the trust topic."""
        if self.trust_follower is None:
            follower = _LoggingFollower(self.trust, self.codec)
            reader = partial(kafka_reader, self.settings, self.agency_code,
                             client_id="zf801-trust-follower")  # fmt: skip
            self.trust_follower = follower.start(reader, self.catalog.topic_name("trust"))
        self.trust_follower.wait_caught_up(timeout_s)

    def close(self) -> None:
        if self.trust_follower is not None:
            self.trust_follower.stop()
            self.trust_follower = None
        if self.sinks_producer is not None:
            producer, self.sinks_producer = self.sinks_producer, None
            close_producer(producer, _SINKS_CLOSE_S)
        if self.audit_chain is not None:
            self.audit_chain.release()
            self.audit_chain = None

    @classmethod
    def from_keystore(
        cls,
        agency_code: str,
        dead_letters: DeadLetterSink,
        audit: AuditSink,
        *,
        settings: Settings | None = None,
        keystore: KeyStore | None = None,
    ) -> Runtime:
        settings = settings or get_settings()
        keystore = keystore or KeyStore.from_settings(settings)
        return cls(
            agency_code=agency_code,
            settings=settings,
            catalog=bus_catalog(settings),
            signer=keystore.signer_for(agency_code),
            trust=keystore.trust_store(),
            dead_letters=dead_letters,
            audit=audit,
            keystore=keystore,
        )

    def writer_roles(self, topic: str) -> Collection[str]:
        """The roles the catalog lets write ``topic``; none for a topic not in the catalog,
        so a record read from an unknown topic is refused, never trusted."""
        roles = self._writer_roles.get(topic)
        if roles is None:
            try:
                roles = self.catalog.resolve(topic).spec.access.write
            except UnknownTopic:
                roles = ()
            self._writer_roles[topic] = roles  # the catalog never changes under a runtime
        return roles

    def state_sealer(self) -> StateSealer:
        """Seals this processor's own state records (tables, replay journal)."""
        keystore = self.keystore or KeyStore.from_settings(self.settings)
        return StateSealer(keystore.state_secret(self.agency_code))

    def verify_stage(
        self,
        *,
        roles_by_topic: bool = True,
        journal_scope: str | None = None,
        acceptance: AcceptancePolicy | None = None,
        skew_checked: bool = True,
        dead_letters: DeadLetterSink | None = None,
        audit: AuditSink | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> VerifyStage:
        """A verify-before-act stage for one input of this processor. With
        ``roles_by_topic`` the signer's role must be one the catalog lets write the topic;
        without, the caller checks roles itself (e.g. per event type). Event times are
        judged by ``acceptance`` (default: the settings' windows, ``sign/REPLAY.md``);
        a ``journal_scope`` makes the stage's replay guard list what it saw, for the
        processor's replay journal. Without ``skew_checked`` the record timestamp is not
        held against ``ce_time`` (``verify_max_skew_s``): a record the bus forwarded
        unchanged is timestamped when it was forwarded. ``dead_letters`` and ``audit``
        replace the runtime's sinks for this stage, and ``clock`` its clock (a replay
        judges each record at the time it reached the bus, and only reports)."""
        skew = self.settings.verify_max_skew_s if skew_checked else 0
        return VerifyStage(
            self.trust,
            ReplayGuard.from_settings(self.settings, journal_scope=journal_scope),
            dead_letters or self.dead_letters,
            audit or self.audit,
            verifier_agency=self.agency_code,
            writer_roles=self.writer_roles if roles_by_topic else None,
            max_skew=timedelta(seconds=skew) if skew else None,
            acceptance=acceptance or AcceptancePolicy.from_settings(self.settings),
            codec=self.codec,
            clock=clock,
        )

    def stream_reader(
        self,
        reader: Agency,
        topics: Sequence[str],
        operation: str,
        client_id: str,
        *,
        start: Mapping[tuple[str, int], int] | None = None,
    ) -> KafkaConsumer:
        """``topics`` from their start (or from the offsets ``start`` gives per topic and
        partition), read as ``reader`` (committed records only). When the brokers refuse
        them, the refusal is audited as DENIED under ``operation`` and raised
        (:class:`~topics.errors.AccessDenied`)."""
        try:
            return kafka_reader(
                self.settings, reader.code, *topics, start=start,
                auto_offset_reset="earliest",
                client_id=client_id,
            )  # fmt: skip
        except AccessDenied as exc:
            self.audit.record(
                user=getpass.getuser(), role=str(reader.role), agency_code=reader.code,
                operation=operation, target=", ".join(topics), result="DENIED",
                detail=str(exc),
            )  # fmt: skip
            raise

    def refuse(self, verified: VerifiedEvent, reason: str, detail: str) -> None:
        """Dead-letter and audit a verified record whose content may not be acted on."""
        self.refuse_record(verified.record, reason, detail)

    def refuse_record(
        self, record: ConsumedRecord, reason: str, detail: str, stage: str = "verify"
    ) -> None:
        """Dead-letter and audit a record that was not acted on (e.g. a state record
        whose seal failed on restore)."""
        rejection = Rejection(
            record=record,
            reason=reason,
            detail=detail,
            header=None,
            verifier=self.agency_code,
            rejected_at=datetime.now(UTC),
            stage=stage,
        )
        self.dead_letters.write(rejection)
        self.audit.write(rejection)
