"""``zf801 command-centre``: the national command view, a live web page (:mod:`ops.centre`);
``zf801 command-centre token``: a viewer's signed token and the page's address with it."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import typer

from ops.centre.inputs import BadInput, checked_host
from ops.centre.server import CommandCentre, page_address
from ops.centre.tokens import MAX_LIFETIME_S
from ops.errors import operator_message
from schemas.errors import BusError
from schemas.identifiers import normalise_court_code
from schemas.settings import get_settings
from sign.keystore import KeyStore

__all__ = ["centre_app"]

centre_app = typer.Typer(
    help="The national command view: a live web page of the bus, per province and court.",
    no_args_is_help=False,
)

_Port = Annotated[
    int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free port).")
]


@centre_app.callback(invoke_without_command=True)
def command_centre(
    ctx: typer.Context,
    port: _Port = 8801,
    host: Annotated[
        str, typer.Option("--host", help="IP address to listen on (default: this host only).")
    ] = "127.0.0.1",
    reader: Annotated[
        str, typer.Option("--as", help="The bus identity that reads the bus's topics.")
    ] = "BUS-AUDIT",
    viewer: Annotated[
        str, typer.Option("--viewer", help="Print the page's address for this agency.")
    ] = "SPC-COMMAND",
) -> None:
    """Serve the command centre until stopped (Ctrl-C): active orders by kind, hits per
    minute, acknowledgements pending and overdue, query load and latency, dead letters by
    reason, consumer lag per processor, broker and worker health, nationally and per
    province; and a court's own orders and alerts for that court.

    Every figure is behind a viewer token signed with the viewer's own agency key (see
    `zf801 command-centre token`); a request without one gets nothing. Every view is in the
    audit log. The address printed carries a token for --viewer (the SPC's command system).
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = get_settings()
    try:
        checked_host(host)
        centre = CommandCentre(settings, host=host, port=port, reader=reader)
        address = page_address(
            f"http://{host}:{port}", KeyStore.from_settings(settings), viewer, MAX_LIFETIME_S
        )
    except (BusError, BadInput) as exc:
        typer.secho(f"error: {operator_message(exc)}", fg="red", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"command centre: {address}")
    centre.serve()


@centre_app.command("token")
def token(
    agency: Annotated[str, typer.Option("--as", help="The agency whose key signs the token.")],
    lifetime: Annotated[
        int,
        typer.Option("--lifetime", min=1, max=MAX_LIFETIME_S, help="Seconds the token is good."),
    ] = 3600,
    base: Annotated[
        str, typer.Option("--base", help="The centre's address.")
    ] = "http://127.0.0.1:8801",
    court: Annotated[
        str | None, typer.Option("--court", help="Open this court's drill-down.")
    ] = None,
) -> None:
    """Print the page's address with a viewer token of --as in its fragment: signed with
    that agency's current key from the key store, good for --lifetime seconds. A court's
    token opens that court's drill-down only; the national view is the SPC's."""
    try:
        if court is not None:
            court = normalise_court_code(court, "--court")
        address = urlsplit(base)
        if address.scheme not in ("http", "https") or not address.hostname:
            raise BadInput("--base", "address", f"{base[:40]!r} is not an http(s) address "
                           "such as http://127.0.0.1:8801")  # fmt: skip
        keystore = KeyStore.from_settings(get_settings())
        typer.echo(page_address(base.rstrip("/"), keystore, agency, lifetime, court))
    except (BusError, BadInput, KeyError) as exc:
        typer.secho(f"error: {operator_message(exc)}", fg="red", err=True)
        raise typer.Exit(1) from exc
