"""The topic catalog of the ZF801 bus: every topic as a frozen spec loaded from the
language-neutral ``topics/topics.yaml``, with Kafka names, key kinds, allowed schemas and
who may write and read. Code refers to topics by catalog id, never by a literal name:
``default_catalog().topic_name("alerts", court="BJ01")``. ``topics.admin`` applies the
catalog to a cluster; ``topics.clients`` builds every Kafka client of the bus, each
connected as one agency, and checks its access to topics before it subscribes."""

from topics.catalog import Catalog, bus_catalog, default_catalog, load_catalog
from topics.errors import (
    AccessDenied,
    ApplyFailed,
    BrokerUnreachable,
    CatalogInvalid,
    CatalogProblem,
    ClientConfigError,
    CourtCodeInvalid,
    ProvinceCodeInvalid,
    TopicMissing,
    TopicsError,
    UnitCodeInvalid,
    UnknownRole,
    UnknownTopic,
)
from topics.spec import AccessPolicy, ConcreteTopic, KeyKind, ReadScope, TopicSpec

__all__ = [
    "AccessDenied",
    "AccessPolicy",
    "ApplyFailed",
    "BrokerUnreachable",
    "Catalog",
    "CatalogInvalid",
    "CatalogProblem",
    "ClientConfigError",
    "ConcreteTopic",
    "CourtCodeInvalid",
    "KeyKind",
    "ProvinceCodeInvalid",
    "ReadScope",
    "TopicMissing",
    "TopicSpec",
    "TopicsError",
    "UnitCodeInvalid",
    "UnknownRole",
    "UnknownTopic",
    "bus_catalog",
    "default_catalog",
    "load_catalog",
]
