"""The topic catalog of the ZF801 bus: every topic as a frozen spec loaded from the
language-neutral ``topics/topics.yaml``, with Kafka names, key kinds, allowed schemas and
who may write and read. Code refers to topics by catalog id, never by a literal name:
``default_catalog().topic_name("alerts", court="BJ01")``. ``topics.admin`` applies the
catalog to a cluster."""

from topics.catalog import Catalog, bus_catalog, default_catalog, load_catalog
from topics.errors import (
    ApplyFailed,
    CatalogInvalid,
    CatalogProblem,
    CourtCodeInvalid,
    TopicsError,
    UnknownRole,
    UnknownTopic,
)
from topics.spec import AccessPolicy, ConcreteTopic, KeyKind, ReadScope, TopicSpec

__all__ = [
    "AccessPolicy",
    "ApplyFailed",
    "Catalog",
    "CatalogInvalid",
    "CatalogProblem",
    "ConcreteTopic",
    "CourtCodeInvalid",
    "KeyKind",
    "ReadScope",
    "TopicSpec",
    "TopicsError",
    "UnknownRole",
    "UnknownTopic",
    "bus_catalog",
    "default_catalog",
    "load_catalog",
]
