"""The README's "The JSON form of every event" cannot rot: every event kind an agency may
publish has its example there, and each passes what ``zf801 publish`` checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from producers.routes import sender_field
from schemas.queries import kind_of_query
from schemas.registry import RegisteredSchema
from tests.unit.ops.example_checks import PUBLISHABLE, check_publishable

README = Path(__file__).parents[3] / "README.md"
SECTION = "## The JSON form of every event"


def _examples() -> dict[str, tuple[str, str]]:
    """Per ``### Name`` of the section: (its paragraph, its JSON block)."""
    text = README.read_text("utf-8")
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    found: dict[str, tuple[str, str]] = {}
    for block in section.split("\n### ")[1:]:
        name, _, body = block.partition("\n")
        match = re.search(r"\n```json\n(.*?)\n```", body, re.DOTALL)
        assert match is not None, f"README: {name} has no ```json block"
        found[name.strip()] = (body[: match.start()], match.group(1))
    return found


EXAMPLES = _examples()


def test_every_publishable_kind_has_its_example() -> None:
    assert set(EXAMPLES) == {schema.name for schema in PUBLISHABLE}


@pytest.mark.parametrize("schema", PUBLISHABLE, ids=[schema.name for schema in PUBLISHABLE])
def test_readme_example_passes_the_publish_checks(schema: RegisteredSchema) -> None:
    paragraph, block = EXAMPLES[schema.name]
    document = json.loads(block)
    event = check_publishable(schema, document)
    sender = sender_field(schema.full_name, event.record)
    assert sender is not None
    # The command line the paragraph shows sends it as the agency the example names (a
    # query with the query command, which checks it and keeps its outbox).
    command = " ".join(paragraph.split())
    kind = kind_of_query(schema.full_name)
    shown = (
        f"zf801 publish {schema.name}" if kind is None else f"zf801 query {kind.name}"
    ) + f" --as {event.record[sender]}"
    assert shown in command, command
