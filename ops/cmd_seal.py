"""``zf801 seal FILE --agency CODE`` and ``zf801 verify-seal FILE``: electronic seals on
documents (rulings, assistance notices, detention decisions, judgments)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ops.terminal import printable
from schemas.errors import BusError
from schemas.settings import get_settings
from sign.errors import SignError
from sign.keystore import KeyStore
from sign.seal import describe_seal, seal_document, seal_path_for, verify_seal

__all__ = ["register"]

_console = Console()
_errors = Console(stderr=True)
_File = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The document.")
]


def _shown(text: object) -> str:
    """``text`` for a Rich line: a file name may hold ``[`` or control characters."""
    return escape(printable(str(text)))


def seal(
    document: _File,
    agency: Annotated[str, typer.Option("--agency", help="Sealing agency code, e.g. BJ01.")],
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Replace a FILE.seal.json that is already there (without it the command "
            "refuses and keeps it: it may be another agency's seal).",
        ),
    ] = False,
) -> None:
    """Seal a document with the agency's current key: writes FILE.seal.json beside it.

    An existing FILE.seal.json is kept and the command refused unless --replace is given;
    a symbolic link there is replaced, never written through. A third party verifies the
    seal with OpenSSL alone: see sign/SEAL-OPENSSL.md."""
    keystore = KeyStore.from_settings(get_settings())
    target = seal_path_for(document)
    try:
        previous = describe_seal(target)  # refuses a folder or a device there
        if previous is not None and not replace:
            raise SignError(
                f"seal {target}: already exists ({previous}); it is kept. Give --replace "
                "to replace it"
            )
        key_id = keystore.current_key_id(agency)
        path = seal_document(
            document,
            keystore.private_key(key_id),
            keystore.chain_of(key_id),
            agency,
            datetime.now(UTC),
            replace=replace,
        )
    except BusError as exc:
        _errors.print(f"[bold red]error:[/] {_shown(exc)}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from exc
    if previous is not None:
        _errors.print(
            f"[yellow]note:[/] replaced the seal that was at {_shown(path)} ({_shown(previous)})",
            highlight=False,
            soft_wrap=True,
        )
    _console.print(f"sealed {_shown(document)} by {_shown(agency)} (key {key_id}): {_shown(path)}")


def verify(
    document: _File,
    seal_file: Annotated[
        Path | None, typer.Option("--seal", help="The seal (default: FILE.seal.json).")
    ] = None,
) -> None:
    """Verify a sealed document: hash, signature, chain to the local anchors, agency,
    validity and revocation at the signing time. Exit 1 with the reason if it fails."""
    keystore = KeyStore.from_settings(get_settings())
    try:
        check = verify_seal(document, keystore.trust_store(), seal_file)
    except BusError as exc:
        reason, text = getattr(exc, "reason", "ERROR"), str(exc)
        said = text if text.startswith(f"{reason}:") else f"{reason}: {text}"
        _errors.print(f"[bold red]seal refused[/] {_shown(said)}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from exc
    _console.print(
        f"[green]seal OK[/]: {_shown(document)} sealed by {check.agency_code} ({check.role}), key "
        f"{check.key_id}, at {check.signed_at.isoformat()}, sha256 {check.sha256}"
    )


def register(app: typer.Typer) -> None:
    """Add ``seal`` and ``verify-seal`` to the root app (one line in ops/cli.py)."""
    app.command("seal")(seal)
    app.command("verify-seal")(verify)
