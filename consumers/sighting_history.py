"""The sightings history: the bus forwards the police side's hotel check-ins and border
crossings to their province, so that the responders answering P5 (hotel stays) and P3
(border crossings) there answer from every one reported, not only from what was loaded.

Sightings reach the bus on ``sightings-person``, which only the bus may read: no police
unit reads the nation's sightings. The bus's forwarder (``zf801 history-forwarder``,
:class:`consumers.history_loop.HistoryForwarder`, a process and consumer group of its own,
off the matcher's path) forwards each record it reads there whose type the ``sightings-history``
topic carries, unchanged (key, value and headers: still signed by the reporting unit), to
that topic for the province of the reporting unit (its ``ce_source``), at least once. Only
the units that province's rule names for the roles answering P3 and P5 may read it
(read-scope ``province-rule``); their responders verify and keep what is theirs
(:mod:`consumers.history_follower`).

Every police sighting passes here, so the decision is made on the headers alone: no decode,
no signature check. A record without a key, of a type the history does not carry, from a
source that is no police unit of a province with a rule, or with its ``ce_source`` or
``ce_type`` missing or repeated (which every reader refuses) is not forwarded. A record
that only claims a unit's ``ce_source`` is forwarded, and refused by the responders:
their verify stage finds that its signature is not that unit's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from consumers.outgoing import Outgoing
from schemas.agencies import AgencyList
from schemas.envelope import KafkaRecord
from schemas.headers import CE_SOURCE, CE_TYPE
from topics.catalog import Catalog

if TYPE_CHECKING:
    from consumers.matcher import ConsumedSighting

__all__ = ["HISTORY_SOURCE_ID", "HISTORY_TOPIC_ID", "SightingHistory"]

HISTORY_TOPIC_ID = "sightings-history"
"""The catalog id of the per-province history topic."""
HISTORY_SOURCE_ID = "sightings-person"
"""The catalog id of the topic the police side reports the forwarded sightings to."""


class SightingHistory:
    """Where a sighting read from the police side is forwarded: the history topic of its
    reporting unit's province, or nowhere."""

    def __init__(self, catalog: Catalog, agencies: AgencyList) -> None:
        spec = catalog.get(HISTORY_TOPIC_ID)
        self.source_topic = catalog.topic_name(HISTORY_SOURCE_ID)
        self._types = frozenset(name.encode() for name in spec.value_schemas)
        ruled = set(agencies.provinces())
        self._topics: dict[bytes, str] = {
            unit.source.encode(): spec.name_for(province=unit.province.code)
            for unit in agencies.police_units()
            if unit.province is not None and unit.province.code in ruled
        }
        """``ce_source`` of each police unit -> the history topic of its province."""

    def topics(self) -> tuple[str, ...]:
        """Every history topic a sighting can be forwarded to."""
        return tuple(sorted(set(self._topics.values())))

    def topic_for(self, headers: Iterable[tuple[str, bytes]]) -> str | None:
        """The history topic of a record with these headers, or None (see the module
        docstring)."""
        source = kind = None
        for name, value in headers:
            if name == CE_SOURCE:
                if source is not None:
                    return None
                source = value
            elif name == CE_TYPE:
                if kind is not None:
                    return None
                kind = value
        if source is None or kind not in self._types:
            return None
        return self._topics.get(source)

    def forward(self, message: ConsumedSighting) -> Outgoing | None:
        """The copy of ``message`` to publish, unchanged, to its history topic; None when it
        is not forwarded (read from another topic, or see :meth:`topic_for`)."""
        if message.topic != self.source_topic or message.key is None:
            return None
        topic = self.topic_for(message.headers or ())
        if topic is None:
            return None
        record = KafkaRecord(message.key, message.value or b"", tuple(message.headers))
        return Outgoing(topic, record)
