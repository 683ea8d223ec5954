"""Field-level rules for reading ``topics.yaml``: a duplicate-refusing YAML loader, a
problem collector, and small parsers that raise :class:`FieldError` naming the rule."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import yaml

from topics.errors import CatalogInvalid, CatalogProblem
from topics.spec import COURT_PLACEHOLDER, PLACEHOLDERS, PROVINCE_PLACEHOLDER, UNIT_PLACEHOLDER

__all__ = [
    "ID_PATTERN",
    "MAX_TOPIC_NAME",
    "FieldError",
    "Problems",
    "as_choice",
    "as_int",
    "as_mapping",
    "as_text",
    "as_text_list",
    "load_yaml",
    "required",
    "topic_name_problem",
]

_T = TypeVar("_T")

MAX_TOPIC_NAME = 249
ID_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
# The longest value each placeholder takes (a court code; a province_rules key; a unit code).
_LONGEST = {
    COURT_PLACEHOLDER: "X" * 16,
    PROVINCE_PLACEHOLDER: "national",
    UNIT_PLACEHOLDER: "0" * 12,
}
_LONGEST_WHAT = {
    COURT_PLACEHOLDER: " with a 16-character court code",
    PROVINCE_PLACEHOLDER: " with province 'national'",
    UNIT_PLACEHOLDER: " with a 12-digit unit code",
}


class FieldError(Exception):
    """One field breaks a rule; :class:`Problems` turns it into a :class:`CatalogProblem`."""


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys (plain YAML keeps the last one silently)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_duplicates,
)


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML text, refusing duplicate keys; a syntax error becomes :class:`CatalogInvalid`."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        problem = CatalogProblem("catalog", "", f"not valid YAML: {exc}")
        raise CatalogInvalid(source, (problem,)) from exc


class Problems:
    """Collects every problem of a catalog so that all are reported at once."""

    def __init__(self) -> None:
        self.items: list[CatalogProblem] = []

    def add(self, entry: str, field: str, message: str) -> None:
        self.items.append(CatalogProblem(entry, field, message))

    def field(self, entry: str, field: str, parse: Callable[[], _T]) -> _T | None:
        """Run ``parse``; if it breaks a rule, record the problem and return None."""
        try:
            return parse()
        except FieldError as exc:
            self.add(entry, field, str(exc))
            return None

    def unknown_fields(self, entry: str, data: Mapping[Any, Any], allowed: Iterable[str]) -> None:
        names = tuple(allowed)
        for name in data:
            if name not in names:
                self.add(entry, str(name), f"unknown field (allowed: {', '.join(names)})")

    def raise_if_any(self, source: str) -> None:
        if self.items:
            raise CatalogInvalid(source, tuple(self.items))


def required(data: Mapping[str, Any], field: str) -> Any:
    if field not in data:
        raise FieldError("missing (required)")
    return data[field]


def as_int(value: Any, minimum: int, maximum: int | None = None) -> int:
    # bool is an int in Python, and YAML 1.1 reads 'yes' as a bool: refuse both explicitly.
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(f"must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise FieldError(f"must be >= {minimum}{upper}, got {value}")
    return value


def as_text(value: Any, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FieldError(f"must be a non-empty string, got {value!r}")
    if pattern is not None and not pattern.fullmatch(value):
        raise FieldError(f"{value!r} is malformed: must match {pattern.pattern}")
    return value


def as_choice(value: Any, allowed: Iterable[str]) -> str:
    names = tuple(allowed)
    if not isinstance(value, str) or value not in names:
        raise FieldError(f"must be one of {', '.join(names)}, got {value!r}")
    return value


def as_mapping(value: Any) -> Mapping[Any, Any]:
    if not isinstance(value, dict):
        raise FieldError(f"must be a mapping, got {value!r}")
    return value


def as_text_list(value: Any, item: Callable[[Any], str], *, allow_empty: bool) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise FieldError(f"must be a list, got {value!r}")
    if not value and not allow_empty:
        raise FieldError("must not be empty")
    items = tuple(item(v) for v in value)
    duplicates = sorted({v for v in items if items.count(v) > 1})
    if duplicates:
        raise FieldError(f"lists {', '.join(duplicates)} more than once")
    return items


def topic_name_problem(name: str) -> str | None:
    """Why ``name`` (a topic name, or a template with one ``{court}``, ``{province}`` or
    ``{unit}``) is no valid Kafka name, or None."""
    placeholders = [p for p in PLACEHOLDERS if p in name]
    if sum(name.count(p) for p in PLACEHOLDERS) > 1:
        return f"{name!r} contains {' and '.join(placeholders)} more than once in all"
    concrete = name
    for placeholder in placeholders:
        concrete = concrete.replace(placeholder, _LONGEST[placeholder])
    if not _TOPIC_NAME.fullmatch(concrete):
        return (
            f"{name!r} is malformed: only [a-zA-Z0-9._-] (and one {COURT_PLACEHOLDER}, "
            f"{PROVINCE_PLACEHOLDER} or {UNIT_PLACEHOLDER}) allowed"
        )
    if concrete in (".", ".."):
        return f"{name!r} is not allowed as a Kafka topic name"
    if len(concrete) > MAX_TOPIC_NAME:
        longest = "".join(_LONGEST_WHAT[p] for p in placeholders)
        return f"{name!r} is {len(concrete)} characters{longest}; Kafka allows {MAX_TOPIC_NAME}"
    return None
