"""``zf801 keys``: the demo trust set, issuing, rotating and revoking agency keys and their
TLS identities (mutual TLS with the broker), and publishing certificates and revocations on
the trust topic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ops.errors import operator_message
from producers.publisher import kafka_producer
from schemas.agencies import get_agency, load_agencies
from schemas.errors import BusError
from schemas.identifiers import normalise_text
from schemas.settings import Settings, get_settings
from schemas.tls_layout import ADMIN_NAME, node_name
from sign.keystore import KeyEntry, KeyStore
from sign.tls_identity import BROKER_NODE_IDS
from sign.trust import REVOCATION_REASONS
from sign.trust_records import certificate_event, revocation_event
from topics.catalog import bus_catalog
from topics.clients import require_topics
from topics.errors import AccessDenied, BrokerUnreachable, ClientConfigError, TopicMissing

__all__ = ["keys_app"]

keys_app = typer.Typer(
    help=(
        "Agency keys and certificates (two roots: courts and the bus under the SPC root, "
        "police units under the MPS root). Private keys stay in the key store "
        "(ZF801_KEYS_PATH, default .zf801/keys), encrypted with ZF801_KEY_PASSPHRASE; "
        "certificates and revocations are published on the trust topic. Every agency, the "
        "admin and broker nodes 1-3 also get a TLS identity (a key of its own) for mutual TLS "
        "with the broker, under `<keys>/tls`."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

_console = Console()
_errors = Console(stderr=True)
_PROBE_TIMEOUT_MS = 3000
_REVOKE_AHEAD = timedelta(minutes=5)
"""How far ahead of this clock a revocation may start (a clock a little ahead of ours)."""

_Publish = Annotated[
    bool | None,
    typer.Option(
        "--publish/--no-publish",
        help="Publish to the trust topic (default: publish if the broker answers, else say so).",
    ),
]
_Agency = Annotated[str, typer.Option("--agency", help="Agency code, e.g. BJ01 or 110000230000.")]


def _fail(exc: Exception) -> typer.Exit:
    message = escape(operator_message(exc))
    _errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def _now() -> datetime:
    return datetime.now(UTC)


def _table(entries: list[KeyEntry], title: str, keystore: KeyStore) -> Table:
    table = Table(title=title)
    columns = ("agency", "role", "key id", "valid from", "valid until", "status", "tls identity")
    for column in columns:
        table.add_column(column, no_wrap=column in {"agency", "key id"})
    for entry in entries:
        status = "current" if entry.current else "rotated out"
        if entry.revocation is not None:
            status = f"revoked from {entry.revocation.revoked_at:%Y-%m-%d %H:%M:%S}Z"
        # A TLS identity belongs to the agency: shown on its current key's row.
        tls = "" if not entry.current else _yes_no(keystore.has_tls_identity(entry.agency_code))
        table.add_row(
            entry.agency_code,
            entry.role,
            entry.key_id,
            f"{entry.not_before:%Y-%m-%d}",
            f"{entry.not_after:%Y-%m-%d}",
            status,
            tls,
        )
    return table


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "[red]no[/]"


def _tls_line(keystore: KeyStore, agency_code: str, verb: str) -> str:
    return (
        f"TLS identity of {agency_code} {verb}: {keystore.tls_identity(agency_code).chain.parent}"
    )


def _publish(keystore: KeyStore, settings: Settings, wanted: bool | None, only: str = "") -> None:
    """Send every certificate and revocation (or those of key id ``only``) to the topic."""
    if wanted is False:
        return
    topic = bus_catalog(settings).topic_name("trust")
    try:
        producer = kafka_producer(
            settings,
            bootstrap_timeout_ms=_PROBE_TIMEOUT_MS,
            client_id="zf801-keys",
        )
    except Exception as exc:  # kafka-python raises NoBrokersAvailable and friends
        if wanted:
            raise BrokerUnreachable(f"trust topic {topic}: broker unreachable ({exc})") from exc
        _console.print(f"[yellow]not published[/] (broker unreachable: {exc}); "
                       "run `zf801 keys publish` when it is up")  # fmt: skip
        return
    signer = keystore.signer_for(settings.trust_publisher_agency)
    now = _now()
    records = [
        certificate_event(keystore.certificate(e.key_id), signer, now)
        for e in keystore.entries()
        if not only or e.key_id == only
    ]
    records += [
        revocation_event(r, signer, now)
        for r in keystore.revocations()
        if not only or r.key_id == only
    ]
    try:
        futures = [
            producer.send(topic, key=r.key, value=r.value, headers=list(r.headers)) for r in records
        ]
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close()
    _console.print(f"published {len(records)} trust record(s) to {topic}")


def _require_trust_topic(settings: Settings) -> None:
    """Before a trust set is made to be published: the trust topic must exist and take
    the operator's writes, asked within a few seconds; :class:`TopicMissing` or
    :class:`AccessDenied` says run `zf801 topics apply` first. A broker that does not
    answer (or, under mTLS, no admin TLS identity yet: ``keys init`` makes it) decides
    nothing here: publishing then reports it as before."""
    topic = bus_catalog(settings).topic_name("trust")
    probe = settings.model_copy(update={"connect_timeout_s": _PROBE_TIMEOUT_MS / 1000})
    try:
        require_topics(probe, ADMIN_NAME, [topic], "write")
    except TopicMissing as exc:
        raise TopicMissing(
            f"the trust topic {topic} does not exist: run `zf801 topics apply` first "
            "(nothing was generated)"
        ) from exc
    except AccessDenied as exc:
        hint = "run `zf801 topics apply` and `zf801 acls apply` first (nothing was generated)"
        raise AccessDenied(ADMIN_NAME, topic, "WRITE", hint) from exc
    except (BrokerUnreachable, ClientConfigError):
        return


@keys_app.command("init")
def init(
    force: Annotated[bool, typer.Option("--force", help="Replace an existing trust set.")] = False,
    publish: _Publish = None,
) -> None:
    """Create the demo trust set: both roots, the issuing CAs, and a key and certificate
    for every agency of the agency list (schemas/data/agencies.yaml).

    Unless --no-publish is given, the trust topic is checked first: when the broker
    answers that it is missing, nothing is generated and the command says to run `zf801
    topics apply` first."""
    settings = get_settings()
    keystore = KeyStore.from_settings(settings)
    try:
        if publish is not False and (force or not keystore.exists()):
            _require_trust_topic(settings)
        entries = keystore.init(load_agencies().agencies.values(), _now(), force=force)
        _console.print(_table(entries, f"trust set in {keystore.directory}", keystore))
        agencies = len({e.agency_code for e in entries})
        nodes = ", ".join(node_name(i) for i in BROKER_NODE_IDS)
        _console.print(
            f"TLS identities of {agencies} agencies, the admin ({ADMIN_NAME}) and broker "
            f"nodes {nodes} in {keystore.tls_layout.root}"
        )
        _publish(keystore, settings, publish)
    except BusError as exc:
        raise _fail(exc) from exc


@keys_app.command("issue")
def issue(agency: _Agency, publish: _Publish = None) -> None:
    """Issue the first key and certificate of an agency of the agency list, and its TLS
    identity."""
    settings = get_settings()
    keystore = KeyStore.from_settings(settings)
    try:
        known = get_agency(agency)
        entry = keystore.issue(known.code, known.name, str(known.role), _now())
        _console.print(_table([entry], "issued", keystore))
        _console.print(_tls_line(keystore, entry.agency_code, "issued"))
        _publish(keystore, settings, publish, only=entry.key_id)
    except (BusError, LookupError) as exc:
        raise _fail(exc) from exc


@keys_app.command("rotate")
def rotate(agency: _Agency, publish: _Publish = None) -> None:
    """A new key and certificate for an agency; the old certificate keeps verifying what the
    old key signed while it was valid. The agency's TLS identity is renewed too: its old
    files are replaced (clients pick the new ones up when they reconnect)."""
    settings = get_settings()
    keystore = KeyStore.from_settings(settings)
    try:
        entry = keystore.rotate(agency, _now())
        _console.print(_table([entry], "rotated", keystore))
        _console.print(_tls_line(keystore, entry.agency_code, "renewed (old files replaced)"))
        _publish(keystore, settings, publish, only=entry.key_id)
    except BusError as exc:
        raise _fail(exc) from exc


def _revocation_time(text: str, keystore: KeyStore, key_id: str) -> datetime:
    if text == "now":
        return _now()
    if text == "issued":
        return keystore.certificate(key_id).not_valid_before_utc
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"--at {text!r}: not RFC 3339, 'now' or 'issued'") from exc
    if when.tzinfo is None:
        raise typer.BadParameter(f"--at {text!r}: needs a UTC offset or 'Z'")
    if when > _now() + _REVOKE_AHEAD:
        # The TLS identity goes at once, and a key whose revocation lies years ahead (or
        # after its certificate's end) would go on signing as if it had not been revoked.
        raise typer.BadParameter(
            f"--at {text!r}: more than {_REVOKE_AHEAD.seconds // 60} minutes ahead; a "
            "revocation takes effect now or from an earlier time (revoke when the time comes)"
        )
    return when.astimezone(UTC)


def _revoked_tls_line(entry: KeyEntry) -> str:
    if not entry.current:
        return f"TLS identity of {entry.agency_code} kept: {entry.key_id} is not its current key"
    return (
        f"TLS identity of {entry.agency_code} removed; the broker cannot check TLS "
        "revocation: run `zf801 acls apply --prune` to remove its access"
    )


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Option("--key-id", help="The key id (zf801 keys list).")],
    at: Annotated[
        str,
        typer.Option(
            "--at",
            help="Events signed at or after this time fail: RFC 3339 (2026-11-27T05:00:00Z), "
            "'now', or 'issued' (everything the key ever signed).",
        ),
    ],
    reason: Annotated[
        str, typer.Option("--reason", help=f"One of {', '.join(sorted(REVOCATION_REASONS))}.")
    ] = "unspecified",
    by: Annotated[str, typer.Option("--by", help="The operator revoking the key.")] = "operator",
    publish: _Publish = None,
) -> None:
    """Revoke a key from a point in time; earlier signatures stay valid. Revoking an
    agency's current key also removes its TLS identity; the broker cannot check that
    revocation, so run `zf801 acls apply --prune` afterwards to remove the agency's access."""
    settings = get_settings()
    keystore = KeyStore.from_settings(settings)
    try:
        when = _revocation_time(at, keystore, key_id)
        by = normalise_text(by, "--by", "operator", "operator")
        entry = next((e for e in keystore.entries() if e.key_id == key_id), None)
        revocation = keystore.revoke(key_id, when, reason, _now(), by)
        _console.print(
            f"revoked {key_id} from {revocation.revoked_at.isoformat()} ({revocation.reason})"
        )
        if entry is not None:
            _console.print(_revoked_tls_line(entry))
        _publish(keystore, settings, publish, only=key_id)
    except BusError as exc:
        raise _fail(exc) from exc


@keys_app.command("list")
def list_keys(
    agency: Annotated[str | None, typer.Option("--agency", help="Only this agency.")] = None,
) -> None:
    """Every key of the key store, current, rotated out or revoked, and whether each agency
    has a TLS identity."""
    keystore = KeyStore.from_settings(get_settings())
    wanted = None if agency is None else agency.strip().upper()
    try:
        entries = [e for e in keystore.entries()
                   if wanted is None or e.agency_code.upper() == wanted]  # fmt: skip
    except BusError as exc:
        raise _fail(exc) from exc
    if wanted is not None and not entries:  # a misspelt code must not look like "no keys"
        _errors.print(f"[bold red]error:[/] --agency {escape(repr(agency)[:40])}: no key of "
                      f"that agency in {keystore.directory} (zf801 keys list shows every "
                      "agency's)", highlight=False, soft_wrap=True)  # fmt: skip
        raise typer.Exit(1)
    _console.print(_table(entries, f"keys in {keystore.directory}", keystore))


@keys_app.command("publish")
def publish_all() -> None:
    """Publish every certificate and revocation to the trust topic (never private keys)."""
    settings = get_settings()
    try:
        _publish(KeyStore.from_settings(settings), settings, True)
    except BusError as exc:
        raise _fail(exc) from exc
