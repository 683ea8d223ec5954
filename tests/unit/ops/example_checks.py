"""What ``zf801 publish`` checks of one input document before anything is sent, without
keys or a broker: shared by the tests of ``zf801 schemas example`` and of the README's
JSON examples."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from ops.cmd_publish import _publishable
from ops.publish_input import check_text
from producers.events import OutgoingEvent
from producers.routes import SUBJECT_FIELD, outgoing_event, sender_field
from schemas.agencies import get_agency
from schemas.codec import default_codec
from schemas.edge import normalise_event
from schemas.edge_rules import TIME_HORIZONS
from schemas.jsonmap import from_json
from schemas.registry import RegisteredSchema, default_registry
from topics.catalog import bus_catalog

__all__ = ["PUBLISHABLE", "check_publishable"]

PUBLISHABLE: list[RegisteredSchema] = [
    schema for schema in default_registry() if _publishable(schema.full_name)
]
"""Every event type an agency may publish (``zf801 publish`` refuses the others)."""

_RELEASE = "cn.zf801.orders.v1.OrderRelease"


def _instants(value: Any, name: str = "") -> list[tuple[str, dt.datetime]]:
    if isinstance(value, dt.datetime):
        return [(name, value)]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _instants(item, key)]
    if isinstance(value, list):
        return [found for item in value for found in _instants(item, name)]
    return []


def check_publishable(
    schema: RegisteredSchema, document: dict[str, Any], now: dt.datetime | None = None
) -> OutgoingEvent:
    """The event ``zf801 publish`` would make of ``document``, after the same checks (text,
    JSON mapping, edge rules, codec, routing); the sending agency is a real agency whose
    role may write the event's topic, and no observation or issuance lies in the future."""
    document = copy.deepcopy(document)
    check_text(document, "")
    subject = document.pop(SUBJECT_FIELD) if schema.full_name == _RELEASE else None
    record = normalise_event(schema.full_name, from_json(schema, document))
    default_codec().validate(schema.full_name, record)
    event = outgoing_event(schema.full_name, record, subject)
    assert event.key, f"{schema.name}: no record key"
    sender = sender_field(schema.full_name, record)
    assert sender is not None, f"{schema.name}: no sending-agency field"
    agency = get_agency(record[sender])
    assert bus_catalog().may_write(str(agency.role), event.topic_id), (sender, agency.code)
    now = now or dt.datetime.now(dt.UTC)
    for name, when in _instants(record):
        if name not in TIME_HORIZONS:
            assert when <= now, f"{schema.name}.{name}: {when} is in the future"
    return event
