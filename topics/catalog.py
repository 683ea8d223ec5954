"""The topic catalog: every topic of the bus as a frozen :class:`TopicSpec`, loaded from the
language-neutral ``topics/topics.yaml``. Code refers to topics by catalog id and asks the
catalog for the Kafka name (``catalog.topic_name("alerts", court="BJ01")``,
``catalog.topic_name("order-delivery-exit-restriction", province="11")``,
``catalog.topic_name("action-notices", unit="110000000001")``) and for who may write and
read it."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from schemas.files import FileProblemError, read_limited
from schemas.settings import Settings, get_settings
from topics._load import parse_catalog_text
from topics._rules import check_topics
from topics.errors import CatalogInvalid, CatalogProblem, UnknownRole, UnknownTopic
from topics.spec import (
    AccessPolicy,
    ChangelogOf,
    CleanupPolicy,
    ConcreteTopic,
    CoPartitionGroup,
    KeyEncoding,
    KeyKind,
    ReadScope,
    TopicSpec,
    check_court_code,
    check_province,
    check_unit_code,
    template_value,
)

__all__ = [
    "DEFAULT_CATALOG_PATH",
    "MAX_CATALOG_BYTES",
    "AccessPolicy",
    "Catalog",
    "ChangelogOf",
    "CleanupPolicy",
    "CoPartitionGroup",
    "ConcreteTopic",
    "KeyEncoding",
    "KeyKind",
    "ReadScope",
    "TopicSpec",
    "bus_catalog",
    "default_catalog",
    "load_catalog",
]

DEFAULT_CATALOG_PATH = Path(__file__).with_name("topics.yaml")
MAX_CATALOG_BYTES = 16 << 20
"""Largest catalog file read (a larger one is refused unread): the bus's own is some 30 KB,
a deployment's a few hundred KB at most, so this bound leaves a wide margin and still keeps
a wrong file from filling memory."""
_WHAT = "topic catalog"
_NAME_PREFIX = re.compile(r"^[a-zA-Z0-9._-]*$")


@dataclass(frozen=True)
class Catalog:
    """Every topic of the bus, the agency roles, the key kinds and co-partition groups."""

    version: int
    namespace: str
    roles: tuple[str, ...]
    key_kinds: tuple[KeyKind, ...]
    co_partition_groups: tuple[CoPartitionGroup, ...]
    topics: tuple[TopicSpec, ...]
    _by_id: Mapping[str, TopicSpec] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", MappingProxyType({t.id: t for t in self.topics}))

    # --- lookups -------------------------------------------------------------------------
    def ids(self) -> tuple[str, ...]:
        """Every catalog id, in catalog order."""
        return tuple(self._by_id)

    def get(self, topic_id: str) -> TopicSpec:
        """The entry with this id; :class:`UnknownTopic` if there is none."""
        try:
            return self._by_id[topic_id]
        except KeyError:
            known = ", ".join(self._by_id)
            raise UnknownTopic(
                f"no topic with id {topic_id!r} in the catalog (known: {known})"
            ) from None

    def topic_name(
        self,
        topic_id: str,
        court: str | None = None,
        *,
        province: str | None = None,
        unit: str | None = None,
    ) -> str:
        """The Kafka name of a topic; ``court`` (a court code) is required exactly for
        per-court topics (``alerts``, ``query-results``), ``province`` (a ``province_rules``
        key) exactly for per-province ones (``order-delivery-*``), ``unit`` (a police unit's
        code) exactly for per-unit ones (``action-notices``)."""
        return self.get(topic_id).name_for(court, province=province, unit=unit)

    def concrete_topics(
        self, courts: Iterable[str], provinces: Iterable[str] = (), units: Iterable[str] = ()
    ) -> tuple[ConcreteTopic, ...]:
        """Every Kafka topic of the catalog, per-court templates expanded for ``courts``,
        per-province templates for ``provinces`` (the agency list's ``province_rules`` keys,
        :meth:`schemas.agencies.AgencyList.provinces`) and per-unit templates for ``units``
        (police unit codes, :func:`topics.courts.unit_codes`)."""
        codes = tuple(dict.fromkeys(check_court_code(c) for c in courts))
        keys = tuple(dict.fromkeys(check_province(p) for p in provinces))
        unit_codes = tuple(dict.fromkeys(check_unit_code(u) for u in units))
        result: list[ConcreteTopic] = []
        for spec in self.topics:
            if spec.per_court:
                result.extend(ConcreteTopic(spec, c, spec.name_for(c)) for c in codes)
            elif spec.per_province:
                result.extend(
                    ConcreteTopic(spec, None, spec.name_for(province=p), province=p) for p in keys
                )
            elif spec.per_unit:
                result.extend(
                    ConcreteTopic(spec, None, spec.name_for(unit=u), unit=u) for u in unit_codes
                )
            else:
                result.append(ConcreteTopic(spec, None, spec.name))
        return tuple(result)

    def resolve(self, topic_name: str) -> ConcreteTopic:
        """The catalog entry (and court, province or unit, for a templated topic) of a Kafka
        name."""
        for spec in self.topics:
            if not spec.is_template and spec.name == topic_name:
                return ConcreteTopic(spec, None, topic_name)
        for spec in self.topics:
            value = template_value(spec.name, topic_name) if spec.is_template else None
            if value is None:
                continue
            if spec.per_court:
                return ConcreteTopic(spec, value, topic_name)
            if spec.per_unit:
                return ConcreteTopic(spec, None, topic_name, unit=value)
            return ConcreteTopic(spec, None, topic_name, province=value)
        raise UnknownTopic(f"topic {topic_name!r} is not in the catalog")

    def in_namespace(self, topic_name: str) -> bool:
        """Whether a Kafka topic name is under this catalog's namespace (``zf801.``, ``zf801-``)."""
        return topic_name.startswith((f"{self.namespace}.", f"{self.namespace}-"))

    def co_partitioned(self, group: str) -> tuple[TopicSpec, ...]:
        """The members of a co-partition group (same partition count, same key kind)."""
        return tuple(t for t in self.topics if t.co_partition_group == group)

    # --- access --------------------------------------------------------------------------
    def may_write(self, role: str, topic_id: str) -> bool:
        """Whether an agency of ``role`` may produce to the topic (any court's, if per court)."""
        self._check_role(role)
        return role in self.get(topic_id).access.write

    def may_read(
        self,
        role: str,
        topic_id: str,
        court: str | None = None,
        *,
        province: str | None = None,
        unit: str | None = None,
        reader_court: str | None = None,
        reader_provinces: Collection[str] = (),
        reader_unit: str | None = None,
    ) -> bool:
        """Whether an agency of ``role`` may consume the topic.

        For a per-court topic, ``court`` names the topic read (required), and a reader of
        role ``court`` must give its own court code as ``reader_court``: under read-scope
        ``own-court`` it may read only the topic named for that court. For a per-province
        topic, ``province`` names the topic read (required); under read-scope
        ``province-rule`` a listed reader may read it only if ``province`` is among
        ``reader_provinces``, the provinces whose rule names the reader
        (:meth:`schemas.agencies.AgencyList.provinces_served_by`). For a per-unit topic,
        ``unit`` names the topic read (required); under read-scope ``own-unit`` a listed
        reader must give its own agency code as ``reader_unit`` and may read only the topic
        named for it.
        """
        self._check_role(role)
        spec = self.get(topic_id)
        # refuses a missing, superfluous or malformed value
        spec.name_for(court, province=province, unit=unit)
        if role not in spec.access.read:
            return False
        scope = spec.access.read_scope
        if scope is ReadScope.OWN_COURT and role == "court":
            return reader_court is not None and reader_court == court
        if scope is ReadScope.PROVINCE_RULE:
            return province in reader_provinces
        if scope is ReadScope.OWN_UNIT:
            return reader_unit is not None and reader_unit == unit
        return True

    def may_read_topic(
        self,
        role: str,
        topic_name: str,
        *,
        reader_court: str | None = None,
        reader_provinces: Collection[str] = (),
        reader_unit: str | None = None,
    ) -> bool:
        """:meth:`may_read` for a Kafka topic name (e.g. one a subscriber asks for)."""
        topic = self.resolve(topic_name)
        return self.may_read(
            role,
            topic.spec.id,
            topic.court,
            province=topic.province,
            unit=topic.unit,
            reader_court=reader_court,
            reader_provinces=reader_provinces,
            reader_unit=reader_unit,
        )

    def _check_role(self, role: str) -> None:
        if role not in self.roles:
            raise UnknownRole(f"agency role {role!r} is unknown (roles: {', '.join(self.roles)})")

    # --- variants ------------------------------------------------------------------------
    def with_name_prefix(self, prefix: str) -> Catalog:
        """The same catalog with every topic name (and the namespace and changelog application
        ids) prefixed, e.g. for tests that share one cluster without colliding."""
        if not _NAME_PREFIX.fullmatch(prefix):
            raise CatalogInvalid(
                "(name prefix)",
                (
                    CatalogProblem(
                        "catalog", "name prefix", f"{prefix!r} may use only [a-zA-Z0-9._-]"
                    ),
                ),
            )
        topics = tuple(_prefixed(t, prefix) for t in self.topics)
        namespace = prefix + self.namespace
        check_topics(topics, namespace).raise_if_any(f"(with name prefix {prefix!r})")
        return replace(self, namespace=namespace, topics=topics)


def _prefixed(spec: TopicSpec, prefix: str) -> TopicSpec:
    changelog = spec.changelog_of
    if changelog is not None:
        changelog = ChangelogOf(prefix + changelog.application, changelog.table)
    return replace(spec, name=prefix + spec.name, changelog_of=changelog)


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load and validate a catalog file (default: ``topics/topics.yaml`` of this package).

    Raises :class:`CatalogInvalid` listing every problem, each with its entry and field;
    a file that is no regular file (``/dev/zero``, a folder) or is larger than
    :data:`MAX_CATALOG_BYTES` is refused before it is read.
    """
    source = Path(path) if path is not None else DEFAULT_CATALOG_PATH
    text = _catalog_text(source)
    try:
        parts = parse_catalog_text(text, str(source))
    except RecursionError:  # YAML nested thousands deep: PyYAML composes it recursively
        problem = CatalogProblem("catalog", "", "not valid YAML: nested too deeply")
        raise CatalogInvalid(str(source), (problem,)) from None
    return Catalog(
        parts.version, parts.namespace, parts.roles, parts.key_kinds, parts.groups, parts.topics
    )


def _catalog_text(source: Path) -> str:
    """The text of the catalog file ``source``; :class:`CatalogInvalid` when it is no
    regular file (a device such as ``/dev/zero``, a FIFO, a folder, a missing file), is
    larger than :data:`MAX_CATALOG_BYTES` (refused unread) or is not UTF-8."""
    try:
        data = read_limited(source, _WHAT, MAX_CATALOG_BYTES)
    except FileProblemError as exc:
        # read_limited says "topic catalog <path>: <rule>"; CatalogInvalid names the file
        rule = str(exc).removeprefix(f"{_WHAT} {source}: ")
        raise CatalogInvalid(str(source), (CatalogProblem("catalog", "", rule),)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = CatalogProblem("catalog", "", f"not valid UTF-8 (byte {exc.start + 1})")
        raise CatalogInvalid(str(source), (problem,)) from None


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    """The bus's catalog, loaded once per process."""
    return load_catalog()


def bus_catalog(settings: Settings | None = None) -> Catalog:
    """The catalog the processes of this deployment use: the default catalog, its names
    prefixed with ``settings.topic_prefix`` when one is set (isolated test runs)."""
    prefix = (settings or get_settings()).topic_prefix
    return default_catalog().with_name_prefix(prefix) if prefix else default_catalog()
