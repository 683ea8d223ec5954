"""The ``zf801`` console script: one sub-command module per concern under ``ops/``."""

from __future__ import annotations

import typer

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

__all__ = ["app", "main"]

app = typer.Typer(
    name="zf801",
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
