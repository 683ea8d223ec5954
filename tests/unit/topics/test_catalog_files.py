"""The catalog file a user names (``--catalog``): only a regular file of at most
:data:`MAX_CATALOG_BYTES` is read; anything else is a :class:`CatalogInvalid` naming the
file and the rule (``/dev/zero`` once filled memory)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.files import NOT_REGULAR, named_path
from topics.catalog import DEFAULT_CATALOG_PATH, MAX_CATALOG_BYTES, load_catalog
from topics.errors import CatalogInvalid


@pytest.mark.parametrize(("name", "rule"), NOT_REGULAR)
def test_what_is_no_regular_file_is_refused_before_it_is_read(
    tmp_path: Path, name: str, rule: str
) -> None:
    path = named_path(tmp_path, name)
    with pytest.raises(CatalogInvalid) as info:
        load_catalog(path)
    assert str(info.value) == f"topic catalog {path} is invalid (1 problem):\n  - catalog: {rule}"


def test_a_catalog_larger_than_the_bound_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as out:
        out.truncate(MAX_CATALOG_BYTES + 1)  # sparse: nothing to write
    with pytest.raises(CatalogInvalid, match=f"more than {MAX_CATALOG_BYTES:,}"):
        load_catalog(path)


def test_the_bound_is_far_above_the_real_catalog() -> None:
    assert DEFAULT_CATALOG_PATH.stat().st_size * 100 < MAX_CATALOG_BYTES


def test_a_catalog_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(DEFAULT_CATALOG_PATH.read_bytes() + "# caf\u00e9\n".encode("latin-1"))
    with pytest.raises(CatalogInvalid, match=r"catalog: not valid UTF-8 \(byte \d+\)"):
        load_catalog(path)


@pytest.mark.parametrize("text", ["[" * 100_000, "a:\n" + "- " * 100_000 + "x\n"])
def test_yaml_nested_too_deeply_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogInvalid, match="not valid YAML: nested too deeply"):
        load_catalog(path)


def test_a_symbolic_link_to_the_catalog_is_read(tmp_path: Path) -> None:
    link = tmp_path / "topics.yaml"
    os.symlink(DEFAULT_CATALOG_PATH, link)
    assert load_catalog(link).ids() == load_catalog().ids()
