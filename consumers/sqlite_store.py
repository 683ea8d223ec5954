"""What the local SQLite stores share (a responder's data source and answer log, a list
subscriber's mirror, the document index, the audit index): how a database file is opened,
and one write transaction, all or nothing."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from schemas.files import check_writable_file

__all__ = ["open_database", "write_transaction"]

_PRIVATE = 0o600


def open_database(
    path: Path,
    what: str,
    error: type[Exception],
    *,
    wal: bool = True,
    make_folders: bool = True,
    **options: Any,
) -> sqlite3.Connection:
    """The SQLite database at ``path``, created if missing with its folders. These files
    hold personal data (who was queried, people, documents, debtors): a new one is made
    readable by this user alone (SQLite gives its journal the same mode), and one found
    open to others is narrowed to that. A folder, a device (``/dev/null``), a FIFO or a
    symbolic link at ``path`` is refused before SQLite opens it (it would write a journal
    beside it), and so is a file that is no SQLite database: ``error`` names ``what`` and
    the rule. Without ``make_folders`` (a path the user named), a missing folder is
    refused rather than made."""
    if make_folders and not path.parent.exists():
        try:
            path.parent.mkdir(mode=0o700, parents=True)
        except OSError as exc:
            raise error(f"{what} {path}: cannot make its folder: {exc.strerror}") from None
    check_writable_file(path, what, error)
    # No descriptor of an existing database is opened here: closing one would release
    # the POSIX locks another connection of this process holds on the file (SQLite's own
    # opens know this; a bare open does not), so the mode is set by path.
    try:
        if path.exists():
            if stat.S_IMODE(path.stat().st_mode) & 0o077:
                path.chmod(_PRIVATE)
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, _PRIVATE))
    except FileExistsError:
        pass  # made meanwhile by another process: SQLite opens it as it is
    except OSError as exc:
        raise error(f"{what} {path}: cannot be opened: {exc.strerror}") from None
    try:
        db: sqlite3.Connection = sqlite3.connect(path, **options)
    except sqlite3.Error as exc:
        raise error(f"{what} {path}: cannot be opened: {exc}") from None
    try:
        db.execute("PRAGMA journal_mode=WAL" if wal else "PRAGMA schema_version")
    except sqlite3.Error as exc:
        db.close()
        raise error(f"{what} {path}: not a SQLite database, or a damaged one ({exc})") from None
    return db


@contextlib.contextmanager
def write_transaction(db: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """Everything written inside is stored, or nothing (``db`` in autocommit mode, i.e.
    opened with ``isolation_level=None``)."""
    db.execute(begin)
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
