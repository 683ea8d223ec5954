"""``--metrics-port``: the Prometheus endpoint of a long-running processor command
(worker, history forwarder, checkpointer, responder), one option and one way to start it."""

from __future__ import annotations

from typing import Annotated

import typer

from consumers.metrics import ProcessorMetrics
from ops.errors import OpsError
from schemas.settings import get_settings

__all__ = ["MetricsPort", "serve_metrics"]

MetricsPort = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=0,
        max=65535,
        help="Serve Prometheus metrics at http://ZF801_METRICS_HOST:PORT/metrics (0: any free "
        "port; default ZF801_METRICS_PORT; unset: no endpoint).",
    ),
]


def serve_metrics(metrics: ProcessorMetrics, port: int | None) -> None:
    """Start the endpoint when a port is given (here or in the settings) and say where."""
    settings = get_settings()
    chosen = settings.metrics_port if port is None else port
    if chosen is None:
        return
    try:
        bound = metrics.serve(chosen, settings.metrics_host)
    except OSError as exc:
        raise OpsError(
            f"--metrics-port {chosen}: cannot listen on {settings.metrics_host}: {exc.strerror}"
        ) from exc
    typer.echo(f"metrics: http://{settings.metrics_host}:{bound}/metrics", err=True)
