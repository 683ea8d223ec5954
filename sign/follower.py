"""Keeping a trust store current from the ``trust`` topic, without a restart.

:class:`TrustFollower` has one pure method, :meth:`TrustFollower.apply`, that takes a
consumed record (key, value, headers) and updates the trust store; it never raises. That
is what an asyncio / faust agent calls for each record of the trust topic. For threaded
consumers (kafka-python), :meth:`TrustFollower.start` runs the same ``apply`` in a daemon
thread that reads every partition from the beginning and keeps following;
:meth:`FollowerThread.wait_caught_up` tells a processor when the trust material that was
on the topic at start has been applied, so it can start verifying. The consumer comes
from the caller's factory (``sign`` builds no Kafka client): one already assigned every
partition of the topic and positioned at its beginning, such as
``topics.clients.kafka_reader``.

What is believed:
* a TrustCertificate is added only if its certificate chains to a local anchor now (the
  record's own signature adds nothing: a certificate is self-authenticating);
* a TrustRevocation must be a valid signed event of a ``bus``-role agency (the catalog's
  writers of the topic), since a forged revocation would silence an agency.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from schemas.codec import Codec, default_codec
from schemas.errors import BusError
from sign.chain import verify_chain
from sign.events import EventVerifier
from sign.trust import TrustStore
from sign.trust_records import parse_trust_value

__all__ = ["ConsumerFactory", "FollowerThread", "TrustConsumer", "TrustFollower"]

_log = logging.getLogger(__name__)
_REVOCATION_WRITERS = frozenset({"bus"})


class TrustConsumer(Protocol):
    """The part of a kafka-python consumer the follower thread uses; it arrives assigned
    every partition of the trust topic, positioned at the beginning."""

    def assignment(self) -> Any: ...
    def end_offsets(self, partitions: Any) -> Any: ...
    def poll(self, timeout_ms: int = ..., max_records: int | None = ...) -> Any: ...
    def position(self, partition: Any) -> Any: ...
    def close(self) -> None: ...


ConsumerFactory = Callable[[str], TrustConsumer]
"""Builds the consumer of a topic (raising if the topic cannot be read)."""


class TrustFollower:
    """Applies trust records to a :class:`TrustStore` (see the module docstring)."""

    def __init__(self, trust_store: TrustStore, codec: Codec | None = None) -> None:
        self.trust_store = trust_store
        self._codec = codec or default_codec()
        self._verifier = EventVerifier(trust_store)
        self.applied: Counter[str] = Counter()
        self._progress = threading.Condition()

    def apply(
        self, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]]
    ) -> str:
        """Apply one record; returns ``certificate``, ``revocation`` or ``refused: <why>``."""
        clean = [(name, raw if raw is not None else b"") for name, raw in headers]
        try:
            outcome = self._apply(key, value, clean)
        except (BusError, ValueError, KeyError) as exc:
            outcome = f"refused: {exc}"
            _log.warning("trust record %r refused: %s", key, exc)
        with self._progress:
            self.applied[outcome.split(":", 1)[0]] += 1
            self._progress.notify_all()
        return outcome

    def wait_applied(self, count: int, timeout: float) -> bool:
        """Block until ``count`` records (of any outcome) were applied, or the timeout."""
        with self._progress:
            return self._progress.wait_for(lambda: self.applied.total() >= count, timeout)

    def _apply(
        self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> str:
        if value is None:
            return "refused: a tombstone carries no trust material"
        schema, record = self._codec.decode(value)
        item = parse_trust_value(schema.full_name, record, datetime.now(UTC))
        if item.certificate is not None:
            store = self.trust_store
            verify_chain(item.certificate, store.anchors(), _by_subject(store.intermediates()))
            store.add_certificate(item.certificate)
            return "certificate"
        assert item.revocation is not None  # parse_trust_value returns one or the other
        self._verifier.verify(key, value, headers, allowed_roles=_REVOCATION_WRITERS)
        self.trust_store.add_revocation(item.revocation)
        return "revocation"

    def start(self, consumer_factory: ConsumerFactory, topic: str) -> FollowerThread:
        """Follow ``topic`` from the beginning in a daemon thread. The consumer is built
        here, in the caller's thread, so a topic that cannot be read fails the caller."""
        thread = FollowerThread(self, consumer_factory(topic), topic)
        thread.start()
        return thread


def _by_subject(certificates: list[Any]) -> dict[Any, list[Any]]:
    pool: dict[Any, list[Any]] = {}
    for certificate in certificates:
        pool.setdefault(certificate.subject, []).append(certificate)
    return pool


@dataclass(eq=False)
class FollowerThread:
    """A kafka-python consumer thread feeding :meth:`TrustFollower.apply`."""

    follower: TrustFollower
    consumer: TrustConsumer
    topic: str
    poll_timeout_ms: int = 500
    _stop: threading.Event = field(default_factory=threading.Event)
    _caught_up: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="zf801-trust", daemon=True)
        self._thread.start()

    def wait_caught_up(self, timeout: float) -> bool:
        """True once everything on the topic at start has been applied."""
        return self._caught_up.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        consumer = self.consumer
        try:
            partitions = sorted(consumer.assignment())
            end = consumer.end_offsets(partitions)
            while not self._stop.is_set():
                batches = consumer.poll(timeout_ms=self.poll_timeout_ms)
                for records in batches.values():
                    for message in records:
                        self.follower.apply(message.key, message.value, message.headers or [])
                if not self._caught_up.is_set() and all(
                    consumer.position(tp) >= end[tp] for tp in partitions
                ):
                    self._caught_up.set()
        except Exception as exc:  # reported to the owner; the thread must not die silently
            self.error = exc
            _log.exception("trust follower for %s stopped", self.topic)
        finally:
            consumer.close()
