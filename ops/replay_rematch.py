"""``zf801 replay --rematch``: what the replay reads for the rematch (:mod:`ops.rematch`)
besides the topics asked for, and how the result is shown.

The rematch's inputs (the order intake topics and the sightings) are the bus's to read;
the hits it compares with are not: each court's alert topic is readable by that court
only (``topics/topics.yaml``, read-scope ``own-court``), and the transfer blocks by the
traffic-management units. So each alert topic is read as its court (``--alerts-as``),
the blocks as a traffic-management unit (``--blocks-as``), each with its own identity and
its own audited read; the hits of a court whose alerts were not read are counted as
unchecked, never as missing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import typer

from consumers.runtime import Runtime
from consumers.watchlist import OrderKind
from ops.cmd_inspect import TopicReader
from ops.cmd_inspect_view import View
from ops.deployment import SIGHTING_TOPIC_IDS
from ops.errors import OpsError
from ops.rematch import RematchTopics
from ops.rematch_result import Difference, RematchResult
from ops.terminal import printable
from producers.routes import ORDER_TOPICS
from schemas.agencies import get_agency
from topics.catalog import Catalog

__all__ = [
    "REMATCH_TOPIC_IDS",
    "RematchInputError",
    "check_rematch_readers",
    "foreign_readers",
    "rematch_topic_ids",
    "rematch_topics",
    "show_rematch",
]

REMATCH_TOPIC_IDS = (*ORDER_TOPICS.values(), *SIGHTING_TOPIC_IDS)
"""What the rules run over: orders, releases and expiry notices, and the sightings."""
ORDER_TOPIC_IDS = tuple(ORDER_TOPICS.values())


class RematchInputError(OpsError, ValueError):
    """A rematch option that cannot be used; the message names the option and the rule."""


def rematch_topic_ids(topic_ids: Sequence[str]) -> tuple[str, ...]:
    """The topics asked for, and the rematch's inputs if they were not among them."""
    return tuple(dict.fromkeys((*topic_ids, *REMATCH_TOPIC_IDS)))


def check_rematch_readers(
    rematch: bool, alert_readers: Sequence[str], blocks_reader: str | None
) -> None:
    """``--alerts-as`` names courts, ``--blocks-as`` an agency; both need ``--rematch``."""
    if (alert_readers or blocks_reader) and not rematch:
        raise RematchInputError("--alerts-as and --blocks-as are for --rematch")
    for code in alert_readers:
        if str(get_agency(code).role) != "court":
            raise RematchInputError(
                f"--alerts-as {code}: not a court; an alert topic is read by its own court"
            )


def rematch_topics(catalog: Catalog, alert_courts: Sequence[str], blocks: bool) -> RematchTopics:
    return RematchTopics(
        orders={
            catalog.topic_name(topic_id): OrderKind(kind) for kind, topic_id in ORDER_TOPICS.items()
        },
        sightings=frozenset(catalog.topic_name(topic_id) for topic_id in SIGHTING_TOPIC_IDS),
        vehicle_sightings=catalog.topic_name("sightings-vehicle"),
        alerts={catalog.topic_name("alerts", court): court for court in alert_courts},
        blocks=catalog.topic_name("vehicle-blocks") if blocks else None,
    )


@contextmanager
def foreign_readers(
    operation: str, alert_readers: Sequence[str], blocks_reader: str | None
) -> Iterator[list[TopicReader]]:
    """A reader of each court's alert topic as that court, and of the transfer blocks as
    ``blocks_reader``: each connected with its own identity, its read audited as its own."""
    with ExitStack() as stack:
        readers = []
        for court in dict.fromkeys(alert_readers):
            runtime = stack.enter_context(_connected(court))
            readers.append(TopicReader(runtime, "alerts", operation, court=court))
        if blocks_reader is not None:
            runtime = stack.enter_context(_connected(blocks_reader))
            readers.append(TopicReader(runtime, "vehicle-blocks", operation))
        yield readers


@contextmanager
def _connected(agency: str) -> Iterator[Runtime]:
    runtime = Runtime.connect(agency)
    try:
        yield runtime
    finally:
        runtime.close()


def _counts_row(result: RematchResult) -> tuple[str, ...]:
    blocks = f"{result.delivered_blocks}/{result.expected_blocks}" if result.blocks_checked else "-"
    return (str(result.orders), str(result.releases), str(result.expiries),
            str(result.sightings), str(result.expected_hits), str(result.delivered_hits),
            str(result.unchecked_hits), blocks)  # fmt: skip


REMATCH_VIEW = View(
    title="Rematch",
    columns=(
        "orders",
        "releases",
        "expiries",
        "sightings",
        "expected hits",
        "delivered hits",
        "unchecked hits",
        "blocks delivered/expected",
    ),
    row=_counts_row,
    document=lambda result: result.document(()),
)
DIFFERENCES_VIEW = View(
    title="Rematch differences",
    columns=("code", "topic", "partition", "offset", "order", "sighting", "detail"),
    row=lambda d: (
        d.code,
        d.position.topic,
        str(d.position.partition),
        str(d.position.offset),
        d.order_id,
        d.sighting_id,
        d.detail,
    ),
    document=Difference.document,
)


def show_rematch(result: RematchResult, document: Mapping[str, Any]) -> None:
    """The rematch's part of the table summary."""
    courts = ", ".join(document["courts_compared"]) or "none (no --alerts-as)"
    REMATCH_VIEW.table([result], f"hits compared for: {courts}; {len(result.breaks)} break(s), "
                       f"{len(result.notes)} note(s)")  # fmt: skip
    if result.differences:
        DIFFERENCES_VIEW.table(
            sorted(result.differences, key=lambda d: (not d.is_break, d.position)),
            "breaks: UNJUSTIFIED_HIT, MISSING_HIT, MISSING_BLOCK, UNACCOUNTED_BLOCK; "
            "notes: RACE, OUT_OF_RANGE",
        )
    if not document["courts_compared"]:
        typer.secho(
            f"rematch: no alert topic read; {printable(str(result.unchecked_hits))} expected "
            "hit(s) unchecked",
            fg="yellow",
        )
