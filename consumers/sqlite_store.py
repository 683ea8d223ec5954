"""What the consumers' local SQLite stores share (a responder's data source and answer
log, a list subscriber's mirror): one write transaction, all or nothing."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

__all__ = ["write_transaction"]


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
