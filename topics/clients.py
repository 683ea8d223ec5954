"""The one place where the bus builds its Kafka clients, each speaking as one agency.

Every kafka-python producer, consumer and admin client, every aiokafka producer and
consumer and the faust application is built here from the settings and the name of the
agency it speaks for (an agency code, or :data:`schemas.tls_layout.ADMIN_NAME` for the
operator). With ``ZF801_SECURITY=plaintext`` a client connects to
``bootstrap_servers`` without TLS; with ``mtls`` it connects to the listener of its
agency's side (:data:`schemas.tls_layout.SIDE_OF_ROLE`) over TLS 1.3, presenting the
agency's TLS identity (:class:`schemas.tls_layout.TlsLayout` under ``settings.tls_dir``)
and trusting only the brokers' CA. Callers add their own settings (client id, isolation
level, batching) as keyword overrides; producers default to ``acks=all`` and idempotence
(DESIGN §5).

A client subscribed to a topic it may not read raises nothing (empty polls, log storms):
:func:`require_topics` asks the brokers first, with the agency's own connection, and
raises :class:`topics.errors.AccessDenied` or :class:`topics.errors.TopicMissing`.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError, for_code

from schemas.agencies import get_agency
from schemas.settings import Settings
from schemas.tls_layout import ADMIN_NAME, SIDE_OF_ROLE, Side, TlsLayout
from topics.errors import AccessDenied, BrokerUnreachable, ClientConfigError, TopicMissing

if TYPE_CHECKING:
    import faust

__all__ = [
    "ADMIN_ROLE",
    "Connection",
    "Operation",
    "TlsFiles",
    "aio_consumer",
    "aio_producer",
    "close_producer",
    "committed_offsets",
    "connection",
    "faust_app",
    "faust_broker_options",
    "kafka_admin",
    "kafka_consumer",
    "kafka_producer",
    "kafka_reader",
    "require_topics",
    "ssl_context",
    "topic_ids",
]

ADMIN_ROLE: Final = "admin"
"""The role of :data:`ADMIN_NAME`; it connects on the bus side."""
_ADMIN_SIDE: Final[Side] = "bus"

Operation = Literal["read", "write", "describe"]

# The bus's producer guarantees (DESIGN §5); a call site may add, never needs to repeat.
_PRODUCER_DEFAULTS: Final[Mapping[str, Any]] = {"acks": "all", "enable_idempotence": True}
# Every consumer reads committed records only: the matcher writes its hits, moved sightings
# and journal in transactions, and a record of an aborted one (a worker killed mid-batch)
# must never be acted on; its batch is redone, and acting on both is a duplicate.
_CONSUMER_DEFAULTS: Final[Mapping[str, Any]] = {"isolation_level": "read_committed"}
# Kafka error codes of a topic's metadata.
_UNKNOWN_TOPIC_OR_PARTITION: Final = 3
_TOPIC_AUTHORIZATION_FAILED: Final = 29
# What a broker without topic ids answers (or a response without the field).
_NO_TOPIC_ID: Final = frozenset({str(uuid.UUID(int=0)), "None"})


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """What a client presents (its chain and encrypted key) and whom it trusts."""

    chain: Path
    key: Path
    brokers_ca: Path
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Connection:
    """How one agency reaches the cluster; ``tls`` is None under plaintext."""

    agency: str
    role: str
    side: Side
    bootstrap_servers: str
    tls: TlsFiles | None = None

    @property
    def security_protocol(self) -> str:
        return "PLAINTEXT" if self.tls is None else "SSL"


def connection(settings: Settings, agency: str) -> Connection:
    """Where and how ``agency`` connects; :class:`ClientConfigError` when, under mtls,
    one of its TLS files is missing."""
    role = ADMIN_ROLE if agency == ADMIN_NAME else str(get_agency(agency).role)
    side = _ADMIN_SIDE if agency == ADMIN_NAME else SIDE_OF_ROLE[role]
    if settings.security == "plaintext":
        return Connection(agency, role, side, settings.bootstrap_servers)
    bootstrap = {
        "court": settings.bootstrap_servers,
        "police": settings.police_bootstrap_servers,
        "bus": settings.bus_bootstrap_servers,
    }[side]
    return Connection(agency, role, side, bootstrap, _tls_files(settings, agency))


def _tls_files(settings: Settings, agency: str) -> TlsFiles:
    layout = TlsLayout(settings.tls_dir)
    identity = layout.identity(agency)
    files = TlsFiles(identity.chain, identity.key, layout.brokers_ca,
                     settings.key_passphrase.get_secret_value())  # fmt: skip
    for path in (files.chain, files.key, files.brokers_ca):
        if not path.is_file():
            raise ClientConfigError(
                f"agency {agency} cannot connect with ZF801_SECURITY=mtls: {path} is missing. "
                "Create the TLS files with `zf801 keys init` (a new trust set), "
                f"`zf801 keys issue --agency {agency}` (an agency without keys) or "
                f"`zf801 keys rotate --agency {agency}` (renews its TLS identity), or point "
                "ZF801_TLS_PATH (or ZF801_KEYS_PATH) at the folder that holds them"
            )
    return files


def ssl_context(settings: Settings, agency: str) -> ssl.SSLContext | None:
    """The TLS 1.3 client context of ``agency`` (None under plaintext): its chain and key
    (decrypted with the key passphrase), the brokers' CA, host names checked."""
    tls = connection(settings, agency).tls
    return None if tls is None else _context(agency, tls)


def _context(agency: str, tls: TlsFiles) -> ssl.SSLContext:
    # One context for all three libraries: kafka-python's own would accept TLS 1.2.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    # The brokers' CA is the bus's issuing CA, not a root: trust it as the anchor (as Java
    # does), so a certificate from another branch of the same root never passes for a broker.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    try:
        context.load_verify_locations(cafile=tls.brokers_ca)
        context.load_cert_chain(tls.chain, tls.key, password=tls.password)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ClientConfigError(
            f"agency {agency}: cannot load its TLS identity ({tls.chain}, {tls.key}) or the "
            f"brokers' CA ({tls.brokers_ca}): {exc}. A wrong ZF801_KEY_PASSPHRASE reads as "
            f"a bad decrypt; else reissue with `zf801 keys issue --agency {agency}`"
        ) from exc
    return context


def _options(settings: Settings, agency: str, *presets: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a kafka-python or aiokafka client (both take the same
    connection settings), then each preset in turn (call-site overrides last)."""
    conn = connection(settings, agency)
    options: dict[str, Any] = {
        "bootstrap_servers": conn.bootstrap_servers,
        "client_id": f"zf801-{agency.lower()}",
    }
    if conn.tls is not None:
        options |= {"security_protocol": "SSL", "ssl_context": _context(agency, conn.tls)}
    for preset in presets:
        options |= preset
    return options


def _bounded_waits(settings: Settings, producer: bool = False) -> dict[str, Any]:
    """kafka-python waits 30-60 s for a broker that is down; a command fails within
    ``settings.connect_timeout_s`` instead (bootstrap, and a producer's metadata wait).
    Call sites may override."""
    limit_ms = int(settings.connect_timeout_s * 1000)
    waits = {"bootstrap_timeout_ms": limit_ms}
    return waits | {"max_block_ms": limit_ms} if producer else waits


def kafka_producer(settings: Settings, agency: str, **overrides: Any) -> KafkaProducer:
    """A kafka-python producer of ``agency`` (``acks=all``, idempotence);
    :class:`BrokerUnreachable`, naming the agency and the servers, when none answers."""
    options = _options(
        settings, agency, _PRODUCER_DEFAULTS, _bounded_waits(settings, True), overrides
    )
    try:
        return KafkaProducer(**options)
    except KafkaError as exc:
        raise BrokerUnreachable(
            f"agency {agency} could not connect a producer to {options['bootstrap_servers']}: "
            f"{exc!r}"
        ) from exc


def close_producer(producer: KafkaProducer, timeout_s: float | None = None) -> None:
    """Close ``producer``, waiting at most ``timeout_s`` for records still in flight
    (None: until they are acknowledged or their delivery timeout passes). kafka-python's
    ``close(timeout)`` raises from its flush before it would force its sender thread to
    stop (and its ``__del__`` tries again at exit, printing a traceback): then the sender
    is stopped, which aborts the records still pending, and the producer closed again."""
    try:
        producer.close(timeout=timeout_s)
        return
    except KafkaTimeoutError:
        pass
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()
        sender.join(5.0)
    try:
        producer.close(timeout=1.0)
    except KafkaTimeoutError:
        producer._closed = True  # nothing left to wait for


def kafka_consumer(
    settings: Settings, agency: str, *topics: str, **overrides: Any
) -> KafkaConsumer:
    """A kafka-python consumer of ``agency`` (committed records only), subscribed to
    ``topics`` (if any) once :func:`require_topics` has found them readable."""
    if topics:
        require_topics(settings, agency, topics, "read")
    return KafkaConsumer(
        *topics,
        **_options(settings, agency, _CONSUMER_DEFAULTS, _bounded_waits(settings), overrides),
    )


def kafka_reader(
    settings: Settings,
    agency: str,
    *topics: str,
    start: Mapping[tuple[str, int], int] | None = None,
    **overrides: Any,
) -> KafkaConsumer:
    """A kafka-python consumer of ``agency`` without a group (committed records only),
    assigned every partition of each of ``topics`` (checked readable first) and
    positioned at the offset ``start`` gives for a (topic, partition) (where the reader
    keeps its own positions), at the beginning elsewhere."""
    partitions = require_topics(settings, agency, topics, "read")
    reader = {"group_id": None, "enable_auto_commit": False}
    consumer = KafkaConsumer(
        **_options(
            settings, agency, _CONSUMER_DEFAULTS, _bounded_waits(settings), reader, overrides
        )
    )
    assignment = [TopicPartition(t, p) for t, numbers in partitions.items() for p in numbers]
    consumer.assign(assignment)
    start = start or {}
    fresh = [tp for tp in assignment if (tp.topic, tp.partition) not in start]
    if fresh:  # none given would seek every partition
        consumer.seek_to_beginning(*fresh)
    for tp in assignment:
        if (tp.topic, tp.partition) in start:
            consumer.seek(tp, start[(tp.topic, tp.partition)])
    return consumer


def kafka_admin(settings: Settings, agency: str = ADMIN_NAME, **overrides: Any) -> KafkaAdminClient:
    """A kafka-python admin client; by default the operator's (a super user under mtls)."""
    return KafkaAdminClient(**_options(settings, agency, _bounded_waits(settings), overrides))


def aio_producer(settings: Settings, agency: str, **overrides: Any) -> AIOKafkaProducer:
    """An aiokafka producer of ``agency`` (``acks=all``, idempotence); call ``start()``."""
    return AIOKafkaProducer(**_options(settings, agency, _PRODUCER_DEFAULTS, overrides))


def aio_consumer(
    settings: Settings, agency: str, *topics: str, **overrides: Any
) -> AIOKafkaConsumer:
    """An aiokafka consumer of ``agency`` (committed records only: aiokafka's own default
    reads uncommitted ones), subscribed to ``topics`` (if any, checked readable first; the
    check blocks briefly); call ``start()``."""
    if topics:
        require_topics(settings, agency, topics, "read")
    return AIOKafkaConsumer(*topics, **_options(settings, agency, _CONSUMER_DEFAULTS, overrides))


def faust_broker_options(settings: Settings, agency: str) -> dict[str, Any]:
    """The ``faust.App`` settings that connect it as ``agency``: the broker URL and,
    under mtls, ``broker_credentials`` wrapping a ready SSL context (KAFKA-NOTES)."""
    conn = connection(settings, agency)
    options: dict[str, Any] = {"broker": f"kafka://{conn.bootstrap_servers}"}
    if conn.tls is not None:
        import faust  # noqa: PLC0415 - about a second to import; only the worker needs it

        options["broker_credentials"] = faust.SSLCredentials(_context(agency, conn.tls))
    return options


def faust_app(settings: Settings, agency: str, app_id: str, **options: Any) -> faust.App:
    """The faust application ``app_id``, connected as ``agency``; ``options`` are the
    application's own settings (stores, timeouts, serializers)."""
    import faust  # noqa: PLC0415 - see faust_broker_options

    return faust.App(app_id, **faust_broker_options(settings, agency), **options)


def require_topics(
    settings: Settings, agency: str, topics: Iterable[str], operation: Operation = "read"
) -> dict[str, tuple[int, ...]]:
    """The partitions of each topic, once the brokers, asked as ``agency``, say that it
    exists and that ``agency`` may ``operation`` it.

    One Metadata request through an admin client on the agency's own connection
    (kafka-python asks for each topic's authorised operations, KIP-430). A topic the
    agency may not even describe answers TOPIC_AUTHORIZATION_FAILED, one it may describe
    but not read lacks READ among its operations: both raise :class:`AccessDenied`. Without
    an authoriser (plaintext) every operation is listed, so only existence is checked:
    :class:`TopicMissing`. :class:`BrokerUnreachable` when no answer comes.
    """
    names = list(dict.fromkeys(topics))
    found = {str(topic["name"]): topic for topic in _describe(settings, agency, names)}
    return {name: _partitions(agency, name, found.get(name), operation) for name in names}


def topic_ids(settings: Settings, agency: str, topics: Iterable[str]) -> dict[str, str]:
    """The id (KIP-516) of each of ``topics`` the brokers describe to ``agency``: a topic
    deleted and created again under its name has a new one. Topics not described are left
    out; :class:`BrokerUnreachable` when no answer comes."""
    described = _describe(settings, agency, list(dict.fromkeys(topics)))
    ids = {str(topic["name"]): str(topic.get("topic_id")) for topic in described
           if not topic.get("error_code")}  # fmt: skip
    return {name: topic_id for name, topic_id in ids.items() if topic_id not in _NO_TOPIC_ID}


def committed_offsets(
    settings: Settings, agency: str, group: str, *, client_id: str
) -> dict[tuple[str, int], int]:
    """The offsets ``group`` has committed, per (topic, partition), as the brokers have
    them now (read as ``agency``)."""
    admin = kafka_admin(settings, agency, client_id=client_id)
    try:
        found = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in found.items()}


def _describe(settings: Settings, agency: str, names: list[str]) -> list[dict[str, Any]]:
    """One Metadata request for ``names`` on the agency's own connection."""
    try:
        admin = kafka_admin(settings, agency, client_id=f"zf801-{agency.lower()}-access")
        try:
            return list(admin.describe_topics(names))
        finally:
            admin.close()
    except KafkaError as exc:
        raise BrokerUnreachable(
            f"agency {agency} got no answer about topics {', '.join(names)} from "
            f"{connection(settings, agency).bootstrap_servers}: {exc!r}"
        ) from exc


def _partitions(
    agency: str, name: str, topic: Mapping[str, Any] | None, operation: Operation
) -> tuple[int, ...]:
    """The partition ids of one described topic, or the error its metadata calls for."""
    permission = operation.upper()
    code = int(topic.get("error_code", 0)) if topic is not None else _UNKNOWN_TOPIC_OR_PARTITION
    if code == _TOPIC_AUTHORIZATION_FAILED:
        why = "the brokers refuse it the topic's metadata (TOPIC_AUTHORIZATION_FAILED)"
        raise AccessDenied(agency, name, permission, why)
    if code != 0 or topic is None or not topic.get("partitions"):
        reason = for_code(code).__name__ if code else "no partitions"
        raise TopicMissing(
            f"topic {name} is not usable by agency {agency} ({reason}): create the "
            "catalog's topics with `zf801 topics apply`"
        )
    allowed = topic.get("authorized_operations")
    if allowed is not None and permission not in allowed:
        why = f"the brokers allow it only {', '.join(sorted(allowed)) or 'nothing'}"
        raise AccessDenied(agency, name, permission, why)
    return tuple(sorted(int(p["partition_index"]) for p in topic["partitions"]))
