"""Files named by users: bounded reads, writes that replace and never follow a link."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from schemas.files import (
    FileProblemError,
    check_replaceable,
    check_writable_file,
    read_limited,
    regular_size,
    write_replacing,
)
from tests.files import NOT_REGULAR, named_path


def test_read_limited_reads_a_regular_file_within_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"x" * 10)
    assert read_limited(path, "--input", 10) == b"x" * 10


@pytest.mark.parametrize(("name", "rule"), NOT_REGULAR)
def test_read_limited_refuses_what_is_no_bounded_regular_file(
    tmp_path: Path, name: str, rule: str
) -> None:
    path = named_path(tmp_path, name)
    with pytest.raises(FileProblemError, match=rf"--catalog .*{rule}"):
        read_limited(path, "--catalog", 1 << 20)


def test_read_limited_refuses_a_fifo_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FileProblemError, match=r"--catalog .*not a regular file"):
        read_limited(fifo, "--catalog", 1 << 20)


def test_read_limited_refuses_a_file_over_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 11)
    with pytest.raises(FileProblemError, match=r"--report .*11 bytes, more than 10"):
        read_limited(path, "--report", 10)


def test_read_limited_raises_the_callers_error(tmp_path: Path) -> None:
    class RefusedError(Exception):
        pass

    with pytest.raises(RefusedError, match="not found"):
        read_limited(tmp_path / "none", "--x", 1, RefusedError)


def test_write_replacing_replaces_a_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("victim")
    link = tmp_path / "report.json"
    link.symlink_to(victim)
    write_replacing(link, b"report", "--out")
    assert victim.read_text() == "victim"
    assert not link.is_symlink() and link.read_bytes() == b"report"


def test_write_replacing_creates_with_the_mode_asked(tmp_path: Path) -> None:
    path = tmp_path / "private.json"
    write_replacing(path, b"{}", "--out", mode=0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["private.json"]  # no temporary left


@pytest.mark.parametrize("target", ["folder", "/dev/null", "missing/x.json"])
def test_write_replacing_refuses_folders_devices_and_missing_folders(
    tmp_path: Path, target: str
) -> None:
    (tmp_path / "folder").mkdir()
    path = Path(target) if target.startswith("/") else tmp_path / target
    with pytest.raises(FileProblemError, match=r"--out .*(folder|not a regular file)"):
        write_replacing(path, b"x", "--out")
    assert os.path.exists("/dev/null")


@pytest.mark.parametrize("target", ["folder", "/dev/null", "missing/x.db", "link"])
def test_check_writable_file_refuses_what_a_store_must_not_open(
    tmp_path: Path, target: str
) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere.db")
    path = Path(target) if target.startswith("/") else tmp_path / target
    with pytest.raises(FileProblemError, match=r"--index "):
        check_writable_file(path, "--index")


def test_check_writable_file_accepts_an_absent_or_regular_file(tmp_path: Path) -> None:
    check_writable_file(tmp_path / "new.db", "--index")
    (tmp_path / "old.db").write_bytes(b"")
    check_writable_file(tmp_path / "old.db", "--index")


@pytest.mark.parametrize(("name", "rule"), NOT_REGULAR)
def test_regular_size_refuses_what_cannot_be_read_to_an_end(
    tmp_path: Path, name: str, rule: str
) -> None:
    with pytest.raises(FileProblemError, match=rf"document .*{rule}"):
        regular_size(named_path(tmp_path, name), "document")


def test_regular_size_is_the_size_of_a_file_or_of_the_file_a_link_names(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(b"x" * 7)
    (tmp_path / "link.pdf").symlink_to(tmp_path / "a.pdf")
    assert regular_size(tmp_path / "a.pdf", "document") == 7
    assert regular_size(tmp_path / "link.pdf", "document") == 7


def test_check_replaceable_allows_nothing_a_file_or_a_link_and_names_the_rule(
    tmp_path: Path,
) -> None:
    assert check_replaceable(tmp_path / "new.json", "--out") is None
    (tmp_path / "old.json").write_bytes(b"{}")
    (tmp_path / "link.json").symlink_to(tmp_path / "nowhere.json")
    found = check_replaceable(tmp_path / "old.json", "--out")
    assert found is not None and stat.S_ISREG(found.st_mode)
    found = check_replaceable(tmp_path / "link.json", "--out")
    assert found is not None and stat.S_ISLNK(found.st_mode)  # replaced later, not followed
    (tmp_path / "folder").mkdir()
    with pytest.raises(FileProblemError, match=r"--out .*: a folder, not a file; kept whole"):
        check_replaceable(tmp_path / "folder", "--out", rule="; kept whole")
    with pytest.raises(FileProblemError, match=r"--out /dev/null: not a regular file$"):
        check_replaceable(Path("/dev/null"), "--out")
    with pytest.raises(FileProblemError, match=r"--out .*: its folder .*missing does not exist"):
        check_replaceable(tmp_path / "missing" / "x.json", "--out")
