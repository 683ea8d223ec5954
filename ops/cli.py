"""The ``zf801`` console script: one sub-command module per concern under ``ops/``."""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from ops.cmd_acls import acls_app
from ops.cmd_alerts import alerts
from ops.cmd_broker import broker_app
from ops.cmd_demo import demo
from ops.cmd_keys import keys_app
from ops.cmd_publish import publish
from ops.cmd_schemas import schemas_app
from ops.cmd_seal import register as register_seal
from ops.cmd_topics import topics_app
from ops.cmd_worker import worker
from ops.errors import KAFKA_ERRORS, operator_message
from schemas.errors import BusError

__all__ = ["app", "main"]


def _fail(exc: BaseException) -> NoReturn:
    """One red line on stderr and exit code 1, for every error a command lets escape."""
    typer.secho(f"error: {operator_message(exc)}", fg="red", err=True)
    raise typer.Exit(1) from exc


class _Commands(TyperGroup):
    """The root command group: the project's errors and Kafka's end a command with one
    line, never a traceback (issue 10)."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except (BusError, *KAFKA_ERRORS) as exc:
            _fail(exc)


app = typer.Typer(
    name="zf801",
    cls=_Commands,
    help="ZF801 court-police enforcement bus: broker, topics, schemas, keys, publishing, alerts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# Each command module registers itself on ``app`` below; one line per module.
app.add_typer(broker_app, name="broker")
app.add_typer(topics_app, name="topics")
app.add_typer(acls_app, name="acls")
app.add_typer(schemas_app, name="schemas")
app.add_typer(keys_app, name="keys")
register_seal(app)
app.command("worker")(worker)
app.command("alerts")(alerts)
app.command("publish")(publish)
app.command("demo")(demo)


def main() -> None:
    app()
