"""The court's alert subscriber: reads, verifies and de-duplicates one court's alert stream.

A subscriber speaks for one court and reads only that court's topic: it is built from the
court's own identity (its certificate, from the key store), and the catalog's read rule
(``own-court``) is checked before any topic is opened; asking for another court's alerts
raises :class:`AlertAccessDenied`. On a shared broker the same rule must also be enforced
by broker ACLs (the catalog is their source); this library never offers a way around it.

Every alert is verified before it is shown, and believed only where its signed content
confirms its place (:func:`consumers.addressing.alert_problem`): hits, expiry notices and
overdue alerts must be signed by a bus processor, forwarded acknowledgements by a unit of
the police role and province that act on the order, and every alert must name this court
as its ``court_code``; a genuine alert for another court, copied into this stream, is
refused (dead letter and audit), never shown. The stream is read at ``read_committed``
(hits are written in transactions), and an alert id shown before is skipped, so a
redelivery never shows as a second alert.

The reading, verifying and remembering of refusals is the owned-stream core's
(:mod:`consumers.own_stream`), shared with a police unit's action notices
(:mod:`consumers.notices`); this module gives it the court's topic, read rule and
addressing rule.
"""

from __future__ import annotations

from functools import partial

from consumers.addressing import ALERT_WRITER_ROLES, alert_problem
from consumers.errors import AlertAccessDenied
from consumers.own_stream import OwnStream, OwnStreamSubscriber, RefusedPositions, StreamRecord
from consumers.runtime import Runtime

__all__ = ["ALERT_WRITER_ROLES", "Alert", "AlertSubscriber", "RefusedPositions"]

Alert = StreamRecord
"""One verified alert."""


class AlertSubscriber(OwnStreamSubscriber):
    """Reads the alert topic of ``court``, as the agency of ``runtime``; ``refused``
    remembers the records it dead-lettered (default: a file per stream under the settings'
    home)."""

    def __init__(
        self, runtime: Runtime, court: str, refused: RefusedPositions | None = None
    ) -> None:
        stream = OwnStream(
            kind="alerts", topic=runtime.catalog.topic_name("alerts", court=court), owner=court,
            addressing=partial(alert_problem, court), denied=AlertAccessDenied,
            what=f"the alerts of court {court}", rule="a court reads only its own alert stream",
        )  # fmt: skip
        super().__init__(runtime, stream, refused=refused)
        self.court = court
