"""The agency list a user names (``--agencies``): only a regular file of at most
:data:`MAX_AGENCY_LIST_BYTES` is read; anything else is an :class:`AgencyListError` naming
the file and the rule (``/dev/zero`` once filled memory)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from schemas.agencies import MAX_AGENCY_LIST_BYTES, load_agencies
from schemas.errors import AgencyListError
from tests.files import NOT_REGULAR, named_path

PACKAGED = Path(str(resources.files("schemas").joinpath("data", "agencies.yaml")))


@pytest.mark.parametrize(("name", "rule"), NOT_REGULAR)
def test_what_is_no_regular_file_is_refused_before_it_is_read(
    tmp_path: Path, name: str, rule: str
) -> None:
    path = named_path(tmp_path, name)
    with pytest.raises(AgencyListError) as info:
        load_agencies(path)
    assert str(info.value) == f"agency list {path}: {rule}"


def test_a_list_larger_than_the_bound_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as out:
        out.truncate(MAX_AGENCY_LIST_BYTES + 1)  # sparse: nothing to write
    with pytest.raises(AgencyListError, match=f"more than {MAX_AGENCY_LIST_BYTES:,}"):
        load_agencies(path)
    assert PACKAGED.stat().st_size * 100 < MAX_AGENCY_LIST_BYTES


def test_a_list_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(PACKAGED.read_bytes() + "# caf\u00e9\n".encode("latin-1"))
    with pytest.raises(AgencyListError, match=rf"agency list {path}: not valid UTF-8 \(byte"):
        load_agencies(path)


def test_yaml_nested_too_deeply_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("[" * 100_000, encoding="utf-8")
    with pytest.raises(AgencyListError, match="not valid YAML: nested too deeply"):
        load_agencies(path)
