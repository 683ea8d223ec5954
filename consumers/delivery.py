"""Delivery of orders to the police side, under the provincial rules.

Courts write orders and releases to the order intake (one topic per kind), which only the
bus reads: a topic ACL cannot follow the rule that says which units serve which courts.
After the order book accepted a record of the intake (an order, a release, the bus's own
expiry notice), the worker forwards it here, unchanged (same key, value and headers: still
signed by the court, or by the bus), to the delivery topic of its kind for the province of
the issuing court (``order-delivery-<kind>``, one topic per ``province_rules`` key; a court
without a province, the SPC, goes to ``national``). Only the units that province's rule
names may read it (read-scope ``province-rule``, enforced by the broker's ACLs).

A redelivered intake record is forwarded again as the same record (same ``ce_id``): the
police side de-duplicates by event id.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from consumers.outgoing import Outgoing
from consumers.watchlist import OrderKind
from schemas.agencies import AgencyList
from schemas.envelope import KafkaRecord
from sign.verify_stage import ConsumedRecord
from topics.catalog import Catalog

__all__ = ["DELIVERY_TOPIC_IDS", "OrderDelivery"]

DELIVERY_TOPIC_IDS: Mapping[OrderKind, str] = MappingProxyType(
    {
        OrderKind.EXIT_RESTRICTION: "order-delivery-exit-restriction",
        OrderKind.VEHICLE_SEARCH: "order-delivery-vehicle-search",
        OrderKind.LOCATE_DEBTOR: "order-delivery-locate-debtor",
    }
)
"""The catalog id of the per-province delivery topic of each order kind."""


class OrderDelivery:
    """Where an accepted order-intake record goes on the police side."""

    def __init__(self, catalog: Catalog, agencies: AgencyList) -> None:
        self._catalog = catalog
        self._agencies = agencies

    def topics(self) -> tuple[str, ...]:
        """Every delivery topic: each kind, each province of the rules."""
        return tuple(
            self._catalog.topic_name(topic_id, province=province)
            for topic_id in DELIVERY_TOPIC_IDS.values()
            for province in self._agencies.provinces()
        )

    def topic(self, kind: OrderKind, court: str) -> str:
        """The delivery topic of ``kind`` for the province whose rule governs ``court``
        (:class:`schemas.errors.UnknownAgencyError` for a court not in the agency list)."""
        province = self._agencies.rule_province(court)
        return self._catalog.topic_name(DELIVERY_TOPIC_IDS[kind], province=province)

    def forward(self, record: ConsumedRecord, kind: OrderKind, court: str) -> Outgoing:
        """``record`` as it was read from the intake, addressed to its delivery topic."""
        value = record.value if record.value is not None else b""
        return Outgoing(self.topic(kind, court), KafkaRecord(record.key, value, record.headers))
