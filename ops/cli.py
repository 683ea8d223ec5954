"""The ``zf801`` console script: one sub-command module per concern under ``ops/``."""

from __future__ import annotations

import faulthandler
import os
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from ops.cmd_acls import acls_app
from ops.cmd_alerts import alerts
from ops.cmd_anomaly import anomaly_app
from ops.cmd_audit import audit_app
from ops.cmd_blocks import blocks
from ops.cmd_broker import broker_app
from ops.cmd_centre import centre_app
from ops.cmd_deadletters import deadletters
from ops.cmd_debtors import debtors_app
from ops.cmd_demo import demo
from ops.cmd_documents import documents_app
from ops.cmd_keys import keys_app
from ops.cmd_notices import notices
from ops.cmd_publish import publish
from ops.cmd_query import answers, query
from ops.cmd_replay import replay
from ops.cmd_responder import responder_app
from ops.cmd_schemas import schemas_app
from ops.cmd_seal import register as register_seal
from ops.cmd_status import status
from ops.cmd_subscribe import subscribe_app
from ops.cmd_topics import topics_app
from ops.cmd_worker import checkpointer, history_forwarder, worker
from ops.deployment import STACKS_SIGNAL
from ops.errors import KAFKA_ERRORS, operator_message
from ops.terminal import printable
from schemas.errors import BusError
from schemas.settings import settings_problem

__all__ = ["app", "main"]


_DEBUG = "ZF801_DEBUG"


def _fail(message: str, exc: BaseException) -> NoReturn:
    """One red line on stderr and exit code 1, for every error a command lets escape."""
    typer.secho(f"error: {printable(message)}", fg="red", err=True)
    raise typer.Exit(1) from exc


class _Commands(TyperGroup):
    """The root command group: the project's errors and Kafka's end a command with one
    line, never a traceback (issue 10); so does any other error (a defect), with its type,
    unless ZF801_DEBUG is set, which lets its traceback through."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except (BusError, *KAFKA_ERRORS) as exc:
            _fail(operator_message(exc), exc)
        except (typer.Exit, typer.Abort, TyperException):  # usage errors, exits: typer's own
            raise
        except (KeyboardInterrupt, BrokenPipeError) as exc:
            _fail("interrupted" if isinstance(exc, KeyboardInterrupt) else "output closed", exc)
        except Exception as exc:
            problem = settings_problem(exc)
            if problem is not None:
                _fail(problem, exc)
            if os.environ.get(_DEBUG):
                raise
            detail = " ".join(str(exc).split())[:500]
            _fail(
                f"unexpected {type(exc).__name__}: {detail} (a defect: please report it; "
                f"{_DEBUG}=1 shows the traceback)",
                exc,
            )


app = typer.Typer(
    name="zf801",
    cls=_Commands,
    help="ZF801 court-police enforcement bus: broker, topics, keys, publishing, alerts, queries.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Markdown: a help paragraph reflows to the terminal (rich keeps the docstring's line
    # breaks); the mode reaches every sub-command from here.
    rich_markup_mode="markdown",
)

# Each command module registers itself on ``app`` below; one line per module.
app.add_typer(broker_app, name="broker")
app.add_typer(topics_app, name="topics")
app.add_typer(acls_app, name="acls")
app.add_typer(schemas_app, name="schemas")
app.add_typer(keys_app, name="keys")
register_seal(app)
app.command("worker")(worker)
app.command("history-forwarder")(history_forwarder)
app.command("checkpointer")(checkpointer)
app.command("alerts")(alerts)
app.command("notices")(notices)
app.command("publish")(publish)
app.command("query")(query)
app.command("answers")(answers)
app.add_typer(responder_app, name="responder")
app.add_typer(subscribe_app, name="subscribe")
app.add_typer(debtors_app, name="debtors")
app.add_typer(documents_app, name="documents")
app.command("demo")(demo)
app.command("deadletters")(deadletters)
app.command("blocks")(blocks)
app.add_typer(audit_app, name="audit")
app.add_typer(anomaly_app, name="anomaly")
app.command("replay")(replay)
app.command("status")(status)
app.add_typer(centre_app, name="command-centre")


def main() -> None:
    # every thread's stack to stderr on this signal (see STACKS_SIGNAL)
    faulthandler.register(STACKS_SIGNAL, all_threads=True)
    app()
