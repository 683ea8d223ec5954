"""The JSON form of a record read into its Python form (schemas.jsonmap.from_json)."""

from __future__ import annotations

import json

import pytest

from schemas.errors import SchemaValidationError
from schemas.jsonmap import from_json
from schemas.registry import EXAMPLE_DIR, default_registry


def _example(name: str) -> dict[str, object]:
    schema = default_registry().get(name)
    loaded = json.loads((EXAMPLE_DIR / schema.family / f"{name}.json").read_text("utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_an_optional_field_that_cannot_be_read_says_why_not_only_its_type() -> None:
    """``content`` is null or bytes: bad base64 in it is named as such (it was left as a
    string, to be refused as "expected bytes, got str")."""
    schema = default_registry().get("JudicialDocument")
    document = {**_example("JudicialDocument"), "content": "not base64!"}
    with pytest.raises(SchemaValidationError, match=r"content: cannot read bytes from JSON"):
        from_json(schema, document)
    assert from_json(schema, {**_example("JudicialDocument"), "content": None})["content"] is None
