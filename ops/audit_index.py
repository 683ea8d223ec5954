"""Who saw what: a local index of the audit topic, for ``zf801 audit search``.

Every operation a user performs through the bus (a publication, a query, an alert read, a
refused access) leaves a sealed audit record on the ``audit`` topic. Answering "who
looked at this person, from which client, when" by reading the whole topic each time
does not scale to years of records, so :class:`AuditIndex` keeps them in SQLite (WAL, no
server), following the topic: each search first indexes what was appended since the last
one, from the offsets the index stored with its rows (one transaction, so an interrupted
run neither loses nor doubles a record). Only records whose seal verified are indexed
(the reader refuses, and audits, the others).

The subjects a record is about are the identifiers named in its target and detail: ID
numbers (GB 11643, 18 characters) and unified social credit codes (GB 32100), so a
search by subject finds every query, order and refusal that named the person or company.
Records deleted by the topic's retention before they were indexed are reported as a gap,
never passed over in silence.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consumers.sqlite_store import open_database
from ops.errors import OpsError
from schemas.envelope import from_micros, to_micros

__all__ = ["AuditIndex", "AuditRow", "IndexGap", "SearchQuery", "subjects_named"]

_ID_NUMBER = re.compile(r"(?<![0-9A-Z])[1-9]\d{16}[\dX](?![0-9A-Z])")
_CREDIT_CODE = re.compile(
    r"(?<![0-9A-Z])[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}(?![0-9A-Z])"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    partition INTEGER NOT NULL, "offset" INTEGER NOT NULL, event_id TEXT NOT NULL,
    occurred_us INTEGER NOT NULL, agency TEXT NOT NULL, user TEXT NOT NULL,
    role TEXT NOT NULL, operation TEXT NOT NULL, target TEXT NOT NULL,
    result TEXT NOT NULL, detail TEXT, client_host TEXT NOT NULL,
    client_address TEXT NOT NULL, client_application TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    PRIMARY KEY (partition, "offset"));
CREATE INDEX IF NOT EXISTS entries_by_time ON entries (occurred_us);
CREATE INDEX IF NOT EXISTS entries_by_agency ON entries (agency, occurred_us);
CREATE INDEX IF NOT EXISTS entries_by_user ON entries (user, occurred_us);
CREATE TABLE IF NOT EXISTS subjects (
    subject TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
    PRIMARY KEY (subject, partition, "offset"));
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition));
"""


def subjects_named(*texts: str | None) -> set[str]:
    """The ID numbers and credit codes named in ``texts``."""
    found: set[str] = set()
    for text in texts:
        if text:
            upper = text.upper()
            found.update(_ID_NUMBER.findall(upper))
            found.update(_CREDIT_CODE.findall(upper))
    return found


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One indexed audit record."""

    partition: int
    offset: int
    event_id: str
    occurred_at: dt.datetime
    agency: str
    user: str
    role: str
    operation: str
    target: str
    result: str
    detail: str | None
    client_host: str
    client_address: str
    client_application: str
    sequence: int

    @classmethod
    def of(cls, partition: int, offset: int, event_id: str, record: Mapping[str, Any]) -> AuditRow:
        """The row of a verified audit record (its decoded value)."""
        client = record["client"]
        return cls(
            partition, offset, event_id, record["occurred_at"], str(record["agency_code"]),
            str(record["user"]), str(record["role"]), str(record["operation"]),
            str(record["target"]), str(record["result"]), record.get("result_detail"),
            str(client["host"]), str(client["address"]), str(client["application"]),
            int(record["sequence"]),
        )  # fmt: skip

    def document(self) -> dict[str, Any]:
        return {
            "occurred_at": self.occurred_at.isoformat(),
            "agency_code": self.agency,
            "user": self.user,
            "role": self.role,
            "operation": self.operation,
            "target": self.target,
            "result": self.result,
            "detail": self.detail,
            "client": {
                "host": self.client_host,
                "address": self.client_address,
                "application": self.client_application,
            },
            "subjects": sorted(subjects_named(self.target, self.detail)),
            "id": self.event_id,
            "position": f"{self.partition}@{self.offset}",
        }


@dataclass(frozen=True, slots=True)
class IndexGap:
    """Records of a partition deleted by retention before the index read them."""

    partition: int
    first: int
    last: int

    def __str__(self) -> str:
        return (
            f"audit partition {self.partition}: records {self.first}-{self.last} were deleted "
            "by the topic's retention before they were indexed"
        )


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What to look for; every given criterion must hold."""

    agency: str | None = None
    user: str | None = None
    subject: str | None = None
    operation: str | None = None
    """Exact, or a prefix ending in ``.`` (``alerts.``)."""
    result: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 100


class AuditIndex:
    """The SQLite index of one audit topic (see the module docstring)."""

    def __init__(self, path: Path, topic: str, *, make_folders: bool = True) -> None:
        self.path = path
        self.topic = topic
        self._db = open_database(path, "--index", OpsError, make_folders=make_folders)
        try:
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise OpsError(f"--index {path}: not an audit index ({exc})") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AuditIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def positions(self) -> dict[int, int]:
        """The next offset to index, per partition of the topic."""
        rows = self._db.execute(
            "SELECT partition, next_offset FROM positions WHERE topic = ?", (self.topic,)
        )
        return {int(partition): int(offset) for partition, offset in rows}

    def gaps(self, beginnings: Mapping[int, int]) -> list[IndexGap]:
        """What retention deleted before it was indexed, given each partition's first
        offset still on the topic (a partition never indexed has no gap: the index starts
        with what the topic keeps)."""
        positions = self.positions()
        return [
            IndexGap(partition, positions[partition], first - 1)
            for partition, first in sorted(beginnings.items())
            if partition in positions and positions[partition] < first
        ]

    def add(self, rows: Iterable[AuditRow], ends: Mapping[int, int]) -> int:
        """Index ``rows`` and move each partition's position to ``ends`` (the offset after
        the last record read, refused ones included), in one transaction; how many rows
        were new."""
        added = 0
        with self._db:
            for row in rows:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO entries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (row.partition, row.offset, row.event_id, to_micros(row.occurred_at),
                     row.agency, row.user, row.role, row.operation, row.target, row.result,
                     row.detail, row.client_host, row.client_address, row.client_application,
                     row.sequence),
                )  # fmt: skip
                added += cursor.rowcount
                self._db.executemany(
                    "INSERT OR IGNORE INTO subjects VALUES (?,?,?)",
                    [
                        (s, row.partition, row.offset)
                        for s in subjects_named(row.target, row.detail)
                    ],
                )
            self._db.executemany(
                "INSERT INTO positions VALUES (?,?,?) ON CONFLICT (topic, partition) "
                "DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
                [(self.topic, partition, offset) for partition, offset in ends.items()],
            )
        return added

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM entries").fetchone()[0])

    def search(self, query: SearchQuery) -> list[AuditRow]:
        """The matching records, oldest first (the newest ``query.limit`` of them)."""
        where, args = _conditions(query)
        sql = (
            "SELECT * FROM (SELECT e.* FROM entries e"  # noqa: S608 - constant clauses, values bound
            + (' JOIN subjects s USING (partition, "offset")' if query.subject else "")
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + ' ORDER BY e.occurred_us DESC, e.partition, e."offset" LIMIT ?)'
            + ' ORDER BY occurred_us, partition, "offset"'
        )
        with closing(self._db.execute(sql, (*args, query.limit))) as cursor:
            return [_row(values) for values in cursor]


def _conditions(query: SearchQuery) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []

    def add(clause: str, value: Any) -> None:
        where.append(clause)
        args.append(value)

    if query.subject:
        add("s.subject = ?", query.subject.strip().upper())
    if query.agency:
        add("e.agency = ?", query.agency)
    if query.user:
        add("e.user = ?", query.user)
    if query.result:
        add("e.result = ?", query.result.upper())
    if query.operation:
        if query.operation.endswith("."):
            add("substr(e.operation, 1, ?) = ?", len(query.operation))
            args.append(query.operation)
        else:
            add("e.operation = ?", query.operation)
    if query.since is not None:
        add("e.occurred_us >= ?", to_micros(query.since))
    if query.until is not None:
        add("e.occurred_us < ?", to_micros(query.until))
    return where, args


def _row(values: tuple[Any, ...]) -> AuditRow:
    (partition, offset, event_id, occurred_us, agency, user, role, operation, target,
     result, detail, host, address, application, sequence) = values  # fmt: skip
    occurred = from_micros(occurred_us)
    return AuditRow(partition, offset, event_id, occurred, agency, user, role, operation,
                    target, result, detail, host, address, application, sequence)  # fmt: skip


def rows_of(records: Iterable[Any]) -> Iterator[AuditRow]:
    """The rows of verified audit records read by a ``TopicReader``."""
    for record in records:
        yield AuditRow.of(record.partition, record.offset, record.event_id, record.record)
