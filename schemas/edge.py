"""Identifier normalisation at the edge, driven by the schemas themselves.

Each identifier field in ``schemas/avro`` carries a ``zf801.identifier`` property naming
its rule (``id_number``, ``plate_number``, ``case_number``, ...). :func:`normalise_event`
walks a record along its schema and replaces every such value by its normalised form, or
raises :class:`~schemas.errors.IdentifierError` naming the field path (e.g.
``subject.id_number``) and the rule. Publishers call it before encoding, so nothing with
a malformed identifier is ever published.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from schemas.errors import ConfigurationError, IdentifierError
from schemas.identifiers import (
    normalise_agency_code,
    normalise_case_number,
    normalise_court_code,
    normalise_credit_code,
    normalise_id_number,
    normalise_organisation_code,
    normalise_phone,
    normalise_plate_number,
    normalise_vin,
)
from schemas.regions import province
from schemas.registry import Registry, default_registry

__all__ = ["IDENTIFIER_RULES", "normalise_event"]

_Normaliser = Callable[[object, str], str]


def _organisation(value: object, field: str) -> str:
    """An 18-character unified social credit code, or a 9-character organisation code."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and len(text) > 9:
        return normalise_credit_code(text, field)
    return normalise_organisation_code(text, field)


def _province(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise IdentifierError(field, "province_code.type", f"{field}: must be a string")
    try:
        return province(value.strip()).code
    except KeyError as exc:
        raise IdentifierError(
            field, "province_code.unknown", f"{field}: {value!r} is not a province code"
        ) from exc


def _country_or_region(value: object, field: str) -> str:
    """An ISO 3166-1 alpha-3 code (HKG, MAC and TWN for the regions), upper-cased."""
    text = value.strip().upper() if isinstance(value, str) else ""
    if not (len(text) == 3 and text.isascii() and text.isalpha()):
        raise IdentifierError(
            field,
            "country_or_region.format",
            f"{field}: must be an ISO 3166-1 alpha-3 code such as THA or HKG",
        )
    return text


IDENTIFIER_RULES: Mapping[str, _Normaliser] = {
    "id_number": normalise_id_number,
    "plate_number": normalise_plate_number,
    "vin": normalise_vin,
    "case_number": normalise_case_number,
    "phone": normalise_phone,
    "court_code": normalise_court_code,
    "agency_code": normalise_agency_code,
    "unit_code": normalise_agency_code,
    "organisation_code": _organisation,
    "province_code": _province,
    "country_or_region": _country_or_region,
}
"""The normaliser of each ``zf801.identifier`` rule name used in the schemas."""


@lru_cache(maxsize=4)
def _named_types(registry: Registry) -> dict[str, Any]:
    named: dict[str, Any] = {}

    def collect(node: Any, namespace: str) -> None:
        if isinstance(node, list):
            for branch in node:
                collect(branch, namespace)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind in ("record", "enum", "fixed"):
                namespace = node.get("namespace", namespace)
                name = node["name"]
                named[name if "." in name else f"{namespace}.{name}"] = node
                for item in node.get("fields", ()):
                    collect(item["type"], namespace)
            elif kind == "array":
                collect(node["items"], namespace)
            elif kind == "map":
                collect(node["values"], namespace)

    for schema in registry:
        collect(dict(schema.raw), schema.full_name.rsplit(".", 1)[0])
    return named


class _Walker:
    def __init__(self, named: Mapping[str, Any]) -> None:
        self._named = named

    def walk(self, node: Any, value: Any, path: str) -> Any:
        if isinstance(node, str):
            resolved = self._named.get(node)
            return value if resolved is None else self.walk(resolved, value, path)
        if isinstance(node, list):
            return self._union(node, value, path)
        if isinstance(node, dict):
            return self._typed(node, value, path)
        return value

    def _typed(self, node: Mapping[str, Any], value: Any, path: str) -> Any:
        kind = node.get("type")
        rule = node.get("zf801.identifier")
        if rule is not None and isinstance(value, str):
            normaliser = IDENTIFIER_RULES.get(rule)
            if normaliser is None:
                raise ConfigurationError(f"schema field {path}: unknown identifier rule {rule!r}")
            return normaliser(value, path)
        if kind == "record" and isinstance(value, Mapping):
            out = dict(value)
            for item in node["fields"]:
                name = item["name"]
                if name in out:
                    out[name] = self.walk(item["type"], out[name], _join(path, name))
            return out
        if kind == "array" and isinstance(value, list):
            return [self.walk(node["items"], item, f"{path}[{i}]") for i, item in enumerate(value)]
        if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind in self._named):
            return self.walk(kind, value, path)
        return value

    def _union(self, branches: list[Any], value: Any, path: str) -> Any:
        if value is None:
            return None
        for branch in branches:
            if branch == "null":
                continue
            resolved = self._named.get(branch, branch) if isinstance(branch, str) else branch
            if _shape_fits(resolved, value):
                return self.walk(resolved, value, path)
        return value


def _shape_fits(node: Any, value: Any) -> bool:
    kind = node.get("type") if isinstance(node, dict) else node
    if kind == "record":
        return isinstance(value, Mapping)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    return True


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def normalise_event(
    schema_name: str, record: Mapping[str, Any], registry: Registry | None = None
) -> dict[str, Any]:
    """A copy of ``record`` with every identifier field normalised (see module docstring)."""
    registry = registry or default_registry()
    schema = registry.get(schema_name)
    result = _Walker(_named_types(registry)).walk(dict(schema.raw), record, "")
    return dict(result)
