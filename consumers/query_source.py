"""The reference data a police responder answers the P1-P5 queries from.

:class:`QuerySource` is the adapter a province implements over its own databases;
:class:`SqliteQuerySource` is the default: one SQLite file per answering unit (WAL
journal, no server), filled by ``zf801 responder load`` and, for a responder that follows
the sightings history, by :mod:`consumers.history_follower` (:class:`HistoryStore`).
Every row is checked against the result schema it belongs to before it is stored
(:mod:`consumers.query_rows`), so a responder never answers with a value the bus would
refuse.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from consumers.errors import ConsumerError
from consumers.query_rows import ROW_KINDS, CheckedRow, SourceRowError, check_row, max_items, micros
from consumers.sqlite_store import open_database, write_transaction
from schemas.edge import IDENTIFIER_RULES
from schemas.errors import BusError
from schemas.settings import Settings

__all__ = [
    "ROW_KINDS",
    "CheckedRow",
    "HistoryStore",
    "QuerySource",
    "QuerySourceError",
    "SourceRowError",
    "SqliteQuerySource",
    "check_row",
]


class QuerySource(Protocol):
    """Answers the P1-P5 queries from a police data store. Each method returns fragments of
    the result records in the bus's JSON mapping (:mod:`schemas.jsonmap`), or None / [] when
    nothing is on record. A province plugs in its own database by implementing these.
    Lists hold at most what the result schema allows (``zf801.maxItems``): the latest."""

    def identity(self, id_number: str) -> dict[str, Any] | None:
        """``IdentityResult.person``."""

    def traveller(self, id_number: str) -> dict[str, Any] | None:
        """``ExitEntryDocumentResult.person`` (the shape of ``BorderCrossingResult.person``),
        documents included; None without an identity on record."""

    def crossings(self, id_number: str) -> list[dict[str, Any]]:
        """``BorderCrossingResult.crossings`` items, ordered by ``crossed_at``."""

    def registered_phone(self, id_number: str) -> str | None:
        """``BorderCrossingResult.registered_phone``."""

    def vehicles(
        self,
        *,
        plate_number: str | None = None,
        owner_id_number: str | None = None,
        owner_organisation_code: str | None = None,
    ) -> list[dict[str, Any]]:
        """``VehicleRegistrationResult.vehicles`` items matching ANY given criterion, each
        once, ordered by VIN."""

    def hotel_stays(
        self, id_number: str, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> list[dict[str, Any]]:
        """``HotelStayResult.stays`` items checked in within [since, until], ordered by
        ``checked_in_at``."""

    def person_ref(self, id_number: str) -> dict[str, Any] | None:
        """``HotelStayResult.person`` (``name``, ``id_number``): from the identity, else from
        the name recorded with the latest stay."""

    def close(self) -> None:
        """Release the store."""


class HistoryStore(Protocol):
    """Where a responder following the sightings history keeps what it read: rows of the
    reports, each under its event id, and the position reached in each partition, stored
    together so that a restart neither loses nor repeats a report."""

    def history_offsets(self) -> dict[tuple[str, int], int]:
        """The next offset to read per (topic, partition) followed so far."""

    def add_history(
        self, rows: Iterable[tuple[str, CheckedRow]], offsets: Mapping[tuple[str, int], int]
    ) -> int:
        """In one transaction: store each (event id, row) whose event id is not held yet,
        and set the next offsets to read. Returns the number of rows stored."""


class QuerySourceError(ConsumerError):
    """The reference data store cannot be opened or is not one."""


# --- the SQLite store --------------------------------------------------------------------
_DDL = """
CREATE TABLE IF NOT EXISTS persons (
    id_number TEXT PRIMARY KEY, name TEXT NOT NULL, registered_phone TEXT, record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    document_type TEXT NOT NULL, document_number TEXT NOT NULL, id_number TEXT NOT NULL,
    record TEXT NOT NULL, PRIMARY KEY (document_type, document_number)
);
CREATE INDEX IF NOT EXISTS documents_by_person ON documents (id_number);
CREATE TABLE IF NOT EXISTS crossings (
    id_number TEXT NOT NULL, crossed_at INTEGER NOT NULL, direction TEXT NOT NULL,
    record TEXT NOT NULL, PRIMARY KEY (id_number, crossed_at, direction)
);
CREATE TABLE IF NOT EXISTS vehicles (
    vin TEXT PRIMARY KEY, plate_number TEXT NOT NULL, owner_id_number TEXT,
    owner_organisation_code TEXT, record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS vehicles_by_plate ON vehicles (plate_number);
CREATE INDEX IF NOT EXISTS vehicles_by_owner_id ON vehicles (owner_id_number)
    WHERE owner_id_number IS NOT NULL;
CREATE INDEX IF NOT EXISTS vehicles_by_owner_organisation ON vehicles (owner_organisation_code)
    WHERE owner_organisation_code IS NOT NULL;
CREATE TABLE IF NOT EXISTS hotel_stays (
    id_number TEXT NOT NULL, checked_in_at INTEGER NOT NULL, hotel_name TEXT NOT NULL,
    name TEXT, record TEXT NOT NULL, PRIMARY KEY (id_number, checked_in_at, hotel_name)
);
"""
# Version 2: the sightings history a responder follows (the event ids it stored, and how
# far it read each partition).
_HISTORY_DDL = """
CREATE TABLE IF NOT EXISTS history_events (event_id TEXT PRIMARY KEY, kind TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history_offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""
_MIGRATIONS = (_DDL, _HISTORY_DDL)
"""The script that takes a store from version i (``PRAGMA user_version``; 0 is a new
file) to version i + 1. Each only adds, so a store of any earlier version is brought up to
date when it is opened, its rows kept."""
_VERSION = len(_MIGRATIONS)
# A row already held under the same key is replaced (a check-out recorded later).
_INSERT: Mapping[str, str] = {
    "person": "INSERT OR REPLACE INTO persons VALUES (?, ?, ?, ?)",
    "document": "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?)",
    "crossing": "INSERT OR REPLACE INTO crossings VALUES (?, ?, ?, ?)",
    "vehicle": "INSERT OR REPLACE INTO vehicles VALUES (?, ?, ?, ?, ?)",
    "hotel_stay": "INSERT OR REPLACE INTO hotel_stays VALUES (?, ?, ?, ?, ?)",
}
_TABLES = {"person": "persons", "document": "documents", "crossing": "crossings",
           "vehicle": "vehicles", "hotel_stay": "hotel_stays"}  # fmt: skip
_UNIT_CODE = re.compile(r"[0-9A-Za-z-]{1,32}")


def _key(rule: str, value: str | None) -> str | None:
    """A lookup key in its stored (normalised) form; None when it cannot be on record."""
    if value is None:
        return None
    try:
        return IDENTIFIER_RULES[rule](value, rule)
    except BusError:
        return None


def _limit(kind: str) -> int:
    return max_items(kind) or 1000


def _bound(instant: dt.datetime | None, default: int) -> int:
    if instant is None:
        return default
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("since and until must be timezone-aware")
    return micros(instant)


class SqliteQuerySource:
    """A :class:`QuerySource` on one SQLite file in WAL mode: each lookup is one indexed
    query, and a responder may read while ``zf801 responder load`` writes.

    Crossings are keyed by (id_number, crossed_at, direction), stays by (id_number,
    checked_in_at, hotel_name), documents by (document_type, document_number), vehicles by
    VIN, persons by ID number: adding a row under a key held replaces the row, so a row
    loaded twice is kept once. One connection, used by one thread at a time (it may be
    opened in one thread and used in another, as a responder run in a thread does)."""

    rows_checked = True
    """Every fragment returned passed :func:`check_row` (the edge rules) when it was
    stored: a responder need not run them again on the answers it builds."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        if not create and not path.is_file():
            raise QuerySourceError(
                f"{path}: no reference data here (fill it with `zf801 responder load`)"
            )
        self._db = open_database(
            path, "reference data", QuerySourceError, isolation_level=None,
            check_same_thread=False,
        )  # fmt: skip
        try:
            # In WAL mode the file stays consistent through a crash; a power cut may lose the
            # last batches, which a load stores again when rerun.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._prepare(create)
        except (sqlite3.Error, QuerySourceError) as exc:
            self._db.close()
            if isinstance(exc, QuerySourceError):
                raise
            raise QuerySourceError(f"{path}: not a reference data store: {exc}") from exc

    def _prepare(self, create: bool) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if (version == 0 and not create) or not 0 <= version <= _VERSION:
            raise QuerySourceError(
                f"{self.path}: not a reference data store of this version ({version})"
            )
        if version < _VERSION:
            script = "".join(_MIGRATIONS[version:])
            self._db.executescript(
                f"BEGIN IMMEDIATE; {script} PRAGMA user_version = {_VERSION}; COMMIT;"
            )

    @staticmethod
    def default_path(settings: Settings, unit_code: str) -> Path:
        """Where a unit's store lives: ``<home>/responder/<unit_code>.sqlite``."""
        if not _UNIT_CODE.fullmatch(unit_code):
            raise ValueError(f"{unit_code!r} is not a unit code")
        return settings.home / "responder" / f"{unit_code}.sqlite"

    # --- writing
    def add(self, kind: str, row: Mapping[str, Any]) -> None:
        """Check and store one row (see :func:`check_row`)."""
        self.add_many(kind, (row,))

    def add_many(self, kind: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Check every row, then store them in one transaction; a bad row raises
        :class:`SourceRowError` and none of them is stored. Returns the number stored."""
        return self.add_checked([check_row(kind, row) for row in rows])

    def add_checked(self, rows: Iterable[CheckedRow]) -> int:
        """Store rows :func:`check_row` passed, in one transaction."""
        by_kind: dict[str, list[tuple[Any, ...]]] = {}
        for row in rows:
            by_kind.setdefault(row.kind, []).append(row.columns)
        with self._transaction():
            for kind, columns in by_kind.items():
                self._db.executemany(_INSERT[kind], columns)
        return sum(len(columns) for columns in by_kind.values())

    def add_history(
        self, rows: Iterable[tuple[str, CheckedRow]], offsets: Mapping[tuple[str, int], int]
    ) -> int:
        """:meth:`HistoryStore.add_history`. A report whose event id is held is not stored
        again: a copy read twice never overwrites what was stored since (a check-out)."""
        stored = 0
        with self._transaction():
            for event_id, row in rows:
                new = self._db.execute(
                    "INSERT OR IGNORE INTO history_events VALUES (?, ?)", (event_id, row.kind)
                )
                if new.rowcount:
                    self._db.execute(_INSERT[row.kind], row.columns)
                    stored += 1
            self._db.executemany(
                "INSERT OR REPLACE INTO history_offsets VALUES (?, ?, ?)",
                [(topic, partition, offset) for (topic, partition), offset in offsets.items()],
            )
        return stored

    def history_offsets(self) -> dict[tuple[str, int], int]:
        """:meth:`HistoryStore.history_offsets`."""
        rows = self._db.execute("SELECT topic, partition, next_offset FROM history_offsets")
        return {(topic, partition): offset for topic, partition, offset in rows}

    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        """One write transaction: everything in it is stored, or nothing."""
        return write_transaction(self._db)

    def counts(self) -> dict[str, int]:
        """Rows held per kind."""
        return {
            kind: self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for kind, table in _TABLES.items()
        }

    # --- lookups
    def _records(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        return [json.loads(text) for (text,) in self._db.execute(sql, params)]

    def identity(self, id_number: str) -> dict[str, Any] | None:
        found = self._records(
            "SELECT record FROM persons WHERE id_number = ?", _key("id_number", id_number)
        )
        return found[0] if found else None

    def traveller(self, id_number: str) -> dict[str, Any] | None:
        person = self.identity(id_number)
        if person is None:
            return None
        documents = self._records(
            "SELECT record FROM documents WHERE id_number = ?"
            " ORDER BY document_type, document_number LIMIT ?",
            person["id_number"],
            _limit("document"),
        )
        traveller = {name: person[name] for name in _TRAVELLER_FIELDS}
        return {**traveller, "documents": documents}

    def crossings(self, id_number: str) -> list[dict[str, Any]]:
        latest = self._records(
            "SELECT record FROM crossings WHERE id_number = ?"
            " ORDER BY crossed_at DESC, direction LIMIT ?",
            _key("id_number", id_number),
            _limit("crossing"),
        )
        return latest[::-1]

    def registered_phone(self, id_number: str) -> str | None:
        found = self._db.execute(
            "SELECT registered_phone FROM persons WHERE id_number = ?",
            (_key("id_number", id_number),),
        ).fetchone()
        return None if found is None else found[0]

    def vehicles(
        self,
        *,
        plate_number: str | None = None,
        owner_id_number: str | None = None,
        owner_organisation_code: str | None = None,
    ) -> list[dict[str, Any]]:
        return self._records(
            "SELECT record FROM vehicles WHERE vin IN ("
            " SELECT vin FROM vehicles WHERE plate_number = ?"
            " UNION SELECT vin FROM vehicles WHERE owner_id_number = ?"
            " UNION SELECT vin FROM vehicles WHERE owner_organisation_code = ?"
            ") ORDER BY vin LIMIT ?",
            _key("plate_number", plate_number),
            _key("id_number", owner_id_number),
            _key("organisation_code", owner_organisation_code),
            _limit("vehicle"),
        )

    def hotel_stays(
        self, id_number: str, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> list[dict[str, Any]]:
        latest = self._records(
            "SELECT record FROM hotel_stays WHERE id_number = ?"
            " AND checked_in_at BETWEEN ? AND ? ORDER BY checked_in_at DESC, hotel_name LIMIT ?",
            _key("id_number", id_number),
            _bound(since, -(2**63)),
            _bound(until, 2**63 - 1),
            _limit("hotel_stay"),
        )
        return latest[::-1]

    def person_ref(self, id_number: str) -> dict[str, Any] | None:
        key = _key("id_number", id_number)
        found = self._db.execute(
            "SELECT name FROM persons WHERE id_number = ?1 UNION ALL"
            " SELECT * FROM (SELECT name FROM hotel_stays WHERE id_number = ?1"
            " AND name IS NOT NULL ORDER BY checked_in_at DESC LIMIT 1) LIMIT 1",
            (key,),
        ).fetchone()
        return None if found is None else {"name": found[0], "id_number": key}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteQuerySource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_TRAVELLER_FIELDS = ("name", "sex", "birth_date", "id_number", "photo", "photo_sha256",
                     "photo_media_type")  # fmt: skip
"""The fields an identity shares with ``ExitEntryDocumentResult.person``."""
