"""``zf801 seal FILE --agency CODE`` and ``zf801 verify-seal FILE``: electronic seals on
documents (rulings, assistance notices, detention decisions, judgments)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from schemas.errors import BusError
from schemas.settings import get_settings
from sign.keystore import KeyStore
from sign.seal import seal_document, verify_seal

__all__ = ["register"]

_console = Console()
_errors = Console(stderr=True)
_File = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The document.")
]


def seal(
    document: _File,
    agency: Annotated[str, typer.Option("--agency", help="Sealing agency code, e.g. BJ01.")],
) -> None:
    """Seal a document with the agency's current key: writes FILE.seal.json beside it.

    A third party verifies it with OpenSSL alone: see sign/SEAL-OPENSSL.md."""
    keystore = KeyStore.from_settings(get_settings())
    try:
        key_id = keystore.current_key_id(agency)
        path = seal_document(
            document,
            keystore.private_key(key_id),
            keystore.chain_of(key_id),
            agency,
            datetime.now(UTC),
        )
    except BusError as exc:
        _errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from exc
    _console.print(f"sealed {document} by {agency} (key {key_id}): {path}")


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
        _errors.print(f"[bold red]seal refused[/] {said}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from exc
    _console.print(
        f"[green]seal OK[/]: {document} sealed by {check.agency_code} ({check.role}), key "
        f"{check.key_id}, at {check.signed_at.isoformat()}, sha256 {check.sha256}"
    )


def register(app: typer.Typer) -> None:
    """Add ``seal`` and ``verify-seal`` to the root app (one line in ops/cli.py)."""
    app.command("seal")(seal)
    app.command("verify-seal")(verify)
