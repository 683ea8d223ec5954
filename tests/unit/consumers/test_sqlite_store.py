"""How the local SQLite stores open their files: private, and never through a device,
a folder or a link."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from consumers.errors import ConsumerError
from consumers.sqlite_store import open_database


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_and_its_folders_are_readable_by_this_user_alone(tmp_path: Path) -> None:
    path = tmp_path / "state" / "audit" / "index.sqlite"
    db = open_database(path, "--index", ConsumerError)
    db.execute("CREATE TABLE t (x)")
    db.execute("INSERT INTO t VALUES (1)")
    db.commit()
    db.close()
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700  # the folder that holds it; those above as they were


def test_a_database_open_to_others_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "mirror.sqlite"
    open_database(path, "mirror", ConsumerError).close()
    path.chmod(0o644)
    open_database(path, "mirror", ConsumerError).close()
    assert _mode(path) == 0o600


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (lambda p: p.mkdir(), "a folder, not a file"),
        (lambda p: p.symlink_to(p.with_name("elsewhere.sqlite")), "a symbolic link"),
        (os.mkfifo, "not a regular file"),
        (lambda p: p.write_text("not a database\n" * 100), "not a SQLite database"),
    ],
)
def test_what_is_no_database_file_is_refused_by_name(
    tmp_path: Path, make: object, rule: str
) -> None:
    path = tmp_path / "x.sqlite"
    make(path)  # type: ignore[operator]
    with pytest.raises(ConsumerError, match=rf"--index {path}: {rule}"):
        open_database(path, "--index", ConsumerError)
    assert not (tmp_path / "elsewhere.sqlite").exists()


def test_a_device_is_refused_and_no_journal_is_left_beside_it() -> None:
    with pytest.raises(ConsumerError, match=r"--mirror /dev/null: not a regular file"):
        open_database(Path("/dev/null"), "--mirror", ConsumerError)
    assert not Path("/dev/null-journal").exists()
    assert not Path("/dev/null-wal").exists()


def test_a_folder_the_user_named_is_not_made(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "index.sqlite"
    with pytest.raises(ConsumerError, match=r"--index .*: its folder .* does not exist"):
        open_database(path, "--index", ConsumerError, make_folders=False)
    assert not (tmp_path / "no").exists()
