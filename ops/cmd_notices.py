"""``zf801 notices``: a police unit reads, verifies and shows its own action notices, the
police counterpart of ``zf801 alerts``."""

from __future__ import annotations

from typing import Annotated

import typer

from consumers.errors import NotPoliceUnitError
from consumers.notices import Notice, NoticeSubscriber, police_unit
from consumers.runtime import Runtime
from ops.stream_view import OutputFormat, StreamView, idle_limit, show
from schemas.settings import MAX_IDLE_S, Settings, get_settings
from schemas.tls_layout import TlsLayout
from sign.errors import KeyStoreError
from sign.keystore import KeyStore

_IDLE_S = 5.0
"""How long a read waits once idle by default."""

__all__ = ["notices", "notices_view", "reading_unit", "unit_option"]

_AS = "'--as'"


def unit_option(code: str) -> str:
    """``--as``: a 12-digit police unit code of the agency list (checked before anything
    is read)."""
    try:
        police_unit(code)
    except NotPoliceUnitError as exc:
        raise typer.BadParameter(str(exc), param_hint=_AS) from exc
    return code


def reading_unit(code: str, settings: Settings) -> str:
    """``code`` once the key store holds what the unit reads with: its signing key and
    certificate (the audit records it signs) and, under mTLS, its TLS identity (what the
    brokers' ACLs know it by). A unit reads its notices as itself, never as another."""
    keystore = KeyStore.from_settings(settings)
    try:
        keystore.certificate(keystore.current_key_id(code))
        keystore.signer_for(code)
    except (KeyStoreError, OSError, ValueError) as exc:
        raise typer.BadParameter(
            f"no signing key and certificate of police unit {code} in {keystore.directory}: "
            f"a unit reads its own notices with its own key ({exc})",
            param_hint=_AS,
        ) from exc
    tls = TlsLayout(settings.tls_dir)
    if settings.security == "mtls" and not tls.identity(code).exists():
        raise typer.BadParameter(
            f"no TLS identity of police unit {code} in {tls.root}: under mTLS "
            f"a unit reads its own notices connected as itself",
            param_hint=_AS,
        )
    return code


def notices(
    unit: Annotated[
        str,
        typer.Option(
            "--as",
            callback=unit_option,
            help="The police unit (12-digit code) whose notices to read.",
        ),
    ],
    follow: Annotated[bool, typer.Option("--follow", help="Keep reading new notices.")] = False,
    until_idle: Annotated[
        float | None,
        typer.Option(
            "--until-idle",
            min=0.1,
            max=MAX_IDLE_S,
            help="Stop after this many idle seconds (default 5; not with --follow).",
        ),
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table, or json: one JSON object per line.")
    ] = OutputFormat.table,
) -> None:
    """Show the verified action notices of one police unit: what it is to do about each
    hit it reported (detain, seize the vehicle, stop the departure, report only, or for a
    concealed order only contact the court). A unit reads only its own notices, as itself:
    its key (and under mTLS its TLS identity) must be in the key store.

    Only an ActionNotice signed by the bus and naming the unit is shown. Anything else on
    the topic is refused: dead-lettered and audited the first time it is read, counted and
    named in the summary, and passed over on later reads (remembered per topic under
    ZF801_HOME, in state/notices). Every read is audited.

    Exit codes: 0 read to the end (or followed until stopped); 1 the read failed (access
    denied, brokers unreachable); 2 a bad option."""
    idle = idle_limit(follow, until_idle, _IDLE_S)  # before connecting
    settings = get_settings()
    reading_unit(unit, settings)
    subscriber = NoticeSubscriber(Runtime.connect(unit, settings), unit)
    show(notices_view(unit), subscriber, output, idle)


def notices_view(unit: str) -> StreamView:
    return StreamView(f"Action notices of police unit {unit}", "notice", _COLUMNS, _cells)


_COLUMNS = ("action", "court", "order", "case", "handler", "documents", "sighting")


def _cells(notice: Notice) -> tuple[str, ...]:
    """The row of one notice (a concealed order's names the court only); its text comes
    from records, so the caller escapes it."""
    record = notice.record
    handler = record.get("handler")
    contact = f"{handler['name']} {handler['phone']}" if handler else ""
    documents = ", ".join(str(d["document_id"]) for d in record.get("documents") or ())
    return (
        str(record["action"]),
        str(record["court_code"]),
        str(record.get("order_id") or ""),
        str(record.get("case_number") or ""),
        contact,
        documents,
        str(record["sighting_id"]),
    )
