"""A police unit's notice subscriber: reads, verifies and de-duplicates the action notices
the bus sent the unit (:mod:`consumers.action_notices`), the police counterpart of the
court's alert subscriber (:mod:`consumers.alerts`).

A unit reads only its own ``action-notices`` topic (read-scope ``own-unit``), with its own
identity; only an ``ActionNotice`` signed by the bus and naming the unit as its reporting
unit is shown (:func:`consumers.addressing.notice_problem`). Anything else on the topic is
refused: dead-lettered and audited once, passed over on later reads
(:mod:`consumers.own_stream`).
"""

from __future__ import annotations

from functools import partial

from consumers.action_notices import ACTION_TOPIC_ID
from consumers.addressing import NOTICE_WRITER_ROLES, notice_problem
from consumers.errors import NoticeAccessDenied, NotPoliceUnitError
from consumers.own_stream import OwnStream, OwnStreamSubscriber, RefusedPositions, StreamRecord
from consumers.runtime import Runtime
from schemas.agencies import Agency, AgencyList, load_agencies
from schemas.errors import UnknownAgencyError
from topics.spec import UNIT_CODE_PATTERN

__all__ = ["NOTICE_WRITER_ROLES", "Notice", "NoticeSubscriber", "police_unit"]

Notice = StreamRecord
"""One verified action notice."""


def police_unit(code: str, agencies: AgencyList | None = None) -> Agency:
    """The police unit ``code`` names; :class:`NotPoliceUnitError` naming the rule it breaks
    (a 12-digit police agency code, in the agency list as a police unit)."""
    if not UNIT_CODE_PATTERN.fullmatch(code):
        raise NotPoliceUnitError(
            f"{code!r} is not a police unit code: a police unit is named by 12 digits"
        )
    try:
        agency = (agencies or load_agencies()).get(code)
    except UnknownAgencyError as exc:
        raise NotPoliceUnitError(f"{code} is not in the agency list: no such police unit") from exc
    if not agency.is_police:
        raise NotPoliceUnitError(f"{code} is a {agency.role} agency, not a police unit")
    return agency


class NoticeSubscriber(OwnStreamSubscriber):
    """Reads the action-notices topic of police unit ``unit``, as the agency of ``runtime``;
    ``refused`` remembers the records it dead-lettered (default: a file per topic under the
    settings' home, in ``state/notices``)."""

    def __init__(
        self, runtime: Runtime, unit: str, refused: RefusedPositions | None = None
    ) -> None:
        police_unit(unit)
        stream = OwnStream(
            kind="notices", topic=runtime.catalog.topic_name(ACTION_TOPIC_ID, unit=unit),
            owner=unit, addressing=partial(notice_problem, unit), denied=NoticeAccessDenied,
            what=f"the action notices of unit {unit}",
            rule="a police unit reads only its own notices",
        )  # fmt: skip
        super().__init__(runtime, stream, refused=refused)
        self.unit = unit
