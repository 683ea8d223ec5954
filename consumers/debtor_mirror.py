"""A list subscriber's local mirror of the dishonest-debtor list (SQLite).

One row per listed debtor, under the match key the bus keys the list by
(:mod:`schemas.matchkey`): :meth:`DebtorMirror.is_listed` hashes the identifier it is
given and looks the key up, a primary-key read that takes microseconds. Each batch of
listings and removals is applied in one transaction with the offsets after it, so a
subscriber killed and restarted neither loses nor repeats a record. The removals the
mirror applied wait in an outbox (``receipts``) in that same transaction until their
signed receipts are sent, so a receipt is sent at least once, whatever the crash.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from consumers.errors import ConsumerError
from consumers.sqlite_store import open_database, write_transaction
from schemas.codec import default_codec
from schemas.errors import IdentifierError
from schemas.jsonmap import to_json
from schemas.matchkey import MatchKeyer

__all__ = [
    "DebtorMirror",
    "ListedDebtor",
    "MirrorError",
    "MirrorListing",
    "MirrorRemoval",
    "PendingReceipt",
]

_VERSION = 1
_SCHEMA = """
CREATE TABLE listings (
    match_key BLOB PRIMARY KEY, listing_id TEXT NOT NULL, court TEXT NOT NULL,
    event_id TEXT NOT NULL, value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE removed (
    listing_id TEXT PRIMARY KEY, court TEXT NOT NULL, removal_event_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE receipts (
    removal_event_id TEXT PRIMARY KEY, listing_id TEXT NOT NULL, court TEXT NOT NULL,
    removed_at TEXT NOT NULL, applied_at TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""


class MirrorError(ConsumerError):
    """The mirror file cannot be opened or is not a mirror of this version."""


@dataclass(frozen=True, slots=True)
class MirrorListing:
    """A verified listing to keep: ``value`` is the record's value as the court signed it
    (Avro single-object encoding), decoded only when a lookup asks for the listing."""

    match_key: bytes
    listing_id: str
    court: str
    event_id: str
    value: bytes


@dataclass(frozen=True, slots=True)
class MirrorRemoval:
    """A verified removal to apply; its receipt is queued in the same transaction."""

    match_key: bytes
    listing_id: str
    court: str
    event_id: str
    removed_at: dt.datetime


@dataclass(frozen=True, slots=True)
class PendingReceipt:
    """A removal applied whose receipt is not yet acknowledged by the broker."""

    removal_event_id: str
    listing_id: str
    court: str
    removed_at: dt.datetime
    applied_at: dt.datetime


@dataclass(frozen=True)
class ListedDebtor:
    """What the mirror holds for a listed debtor."""

    listing_id: str
    court: str
    event_id: str
    value: bytes

    @cached_property
    def listing(self) -> Mapping[str, Any]:
        """The listing as JSON-ready data (the value the court signed, decoded)."""
        schema, record = default_codec().decode(self.value)
        return to_json(schema, record)  # type: ignore[no-any-return]

    @property
    def case_number(self) -> str:
        return str(self.listing.get("case_number", ""))

    @property
    def name(self) -> str:
        return str((self.listing.get("debtor") or {}).get("name", ""))


class DebtorMirror:
    """The mirror at ``path``. Only its subscriber makes one (``create``: made if missing,
    :attr:`created` says whether it was); a check opens what is there, since an empty
    mirror made at a mistyped path would answer "not listed" for every debtor."""

    def __init__(
        self, path: Path | str, *, keyer: MatchKeyer | None = None, create: bool = False
    ) -> None:
        self.path = path = Path(path)
        self.created = not path.exists()
        if self.created and not create:
            raise MirrorError(
                f"mirror {path}: no mirror here (zf801 subscribe debtors makes it); an empty "
                "one would answer 'not listed' for every debtor"
            )
        self._keyer = keyer or MatchKeyer()
        try:
            self._db = open_database(
                path, "mirror", MirrorError, make_folders=create, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._prepare()
        except sqlite3.Error as exc:
            raise MirrorError(f"mirror {path}: cannot open: {exc}") from exc

    def _prepare(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            self._db.executescript(
                f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {_VERSION}; COMMIT;"
            )
        elif version != _VERSION:
            raise MirrorError(f"mirror {self.path}: version {version}, expected {_VERSION}")

    # --- lookups ----------------------------------------------------------------------
    def keys_of(self, identifier: str) -> list[bytes]:
        """The match keys ``identifier`` may stand for: a citizen ID number's person key,
        a credit or organisation code's key (both, for a value valid as either)."""
        keys, why = [], []
        for make in (self._keyer.person, self._keyer.organisation):
            try:
                keys.append(make(identifier, "identifier"))
            except IdentifierError as exc:
                why.append(f"{exc.reason} [rule {exc.rule}]")
        if not keys:
            raise IdentifierError(
                "identifier",
                "identifier.kind",
                f"neither a citizen ID number nor a credit or organisation code: {why[0]}; "
                f"{why[1]}",
            )
        return keys

    def is_listed(self, identifier: str) -> bool:
        """Whether the debtor with this ID number, credit code or organisation code is on
        the list now (an invalid identifier raises :class:`IdentifierError`)."""
        try:  # the common case first: a person, found under the person key
            if self.is_key_listed(self._keyer.person(identifier, "identifier")):
                return True
        except IdentifierError:
            pass
        return any(self.is_key_listed(key) for key in self.keys_of(identifier))

    def lookup(self, identifier: str) -> ListedDebtor | None:
        """The listing of the debtor with this identifier, or None if not listed."""
        for key in self.keys_of(identifier):
            row = self._row(key)
            if row is not None:
                return ListedDebtor(row[0], row[1], row[2], bytes(row[3]))
        return None

    def is_key_listed(self, match_key: bytes) -> bool:
        return (
            self._db.execute("SELECT 1 FROM listings WHERE match_key = ?", (match_key,)).fetchone()
            is not None
        )

    def _row(self, key: bytes) -> tuple[str, str, str, bytes] | None:
        return self._db.execute(  # type: ignore[no-any-return]
            "SELECT listing_id, court, event_id, value FROM listings WHERE match_key = ?",
            (key,),
        ).fetchone()

    def listing_of(self, match_key: bytes) -> tuple[str, str] | None:
        """(listing id, listing court) of the debtor under ``match_key``, or None."""
        row = self._db.execute(
            "SELECT listing_id, court FROM listings WHERE match_key = ?", (match_key,)
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def removed_by(self, listing_id: str) -> str | None:
        """The court that removed ``listing_id``, or None if it was never removed here."""
        row = self._db.execute(
            "SELECT court FROM removed WHERE listing_id = ?", (listing_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM listings").fetchone()[0])

    # --- the subscriber's side --------------------------------------------------------
    def offsets(self) -> dict[tuple[str, int], int]:
        rows = self._db.execute("SELECT topic, partition, next_offset FROM offsets")
        return {(topic, partition): offset for topic, partition, offset in rows}

    def apply(
        self,
        changes: Iterable[MirrorListing | MirrorRemoval],
        offsets: Mapping[tuple[str, int], int],
        *,
        now: dt.datetime,
    ) -> tuple[int, int]:
        """Apply listings and removals in order, with the offsets after them, in one
        transaction. Returns (listings kept, removals applied)."""
        listed = removed = 0
        with self._transaction():
            for change in changes:
                if isinstance(change, MirrorListing):
                    self._db.execute(
                        "INSERT OR REPLACE INTO listings VALUES (?, ?, ?, ?, ?)",
                        (change.match_key, change.listing_id, change.court, change.event_id,
                         change.value),
                    )  # fmt: skip
                    listed += 1
                    continue
                self._db.execute(
                    "DELETE FROM listings WHERE match_key = ? AND listing_id = ?",
                    (change.match_key, change.listing_id),
                )
                self._db.execute(
                    "INSERT OR IGNORE INTO removed VALUES (?, ?, ?)",
                    (change.listing_id, change.court, change.event_id),
                )
                self._db.execute(
                    "INSERT OR IGNORE INTO receipts VALUES (?, ?, ?, ?, ?, 0)",
                    (change.event_id, change.listing_id, change.court,
                     change.removed_at.isoformat(), now.isoformat()),
                )  # fmt: skip
                removed += 1
            self._db.executemany(
                "INSERT OR REPLACE INTO offsets VALUES (?, ?, ?)",
                [(topic, partition, offset) for (topic, partition), offset in offsets.items()],
            )
            self._set("caught_up_at", now.isoformat())
        return listed, removed

    def pending_receipts(self) -> list[PendingReceipt]:
        rows = self._db.execute(
            "SELECT removal_event_id, listing_id, court, removed_at, applied_at FROM receipts "
            "WHERE sent = 0 ORDER BY applied_at"
        )
        return [
            PendingReceipt(event, listing, court, dt.datetime.fromisoformat(removed),
                           dt.datetime.fromisoformat(applied))
            for event, listing, court, removed, applied in rows
        ]  # fmt: skip

    def mark_sent(self, removal_event_ids: Iterable[str]) -> None:
        with self._transaction():
            self._db.executemany(
                "UPDATE receipts SET sent = 1 WHERE removal_event_id = ?",
                [(event_id,) for event_id in removal_event_ids],
            )

    def caught_up_at(self) -> dt.datetime | None:
        """When the mirror last applied a batch or was last seen current (UTC)."""
        row = self._db.execute("SELECT value FROM meta WHERE name = 'caught_up_at'").fetchone()
        return None if row is None else dt.datetime.fromisoformat(row[0])

    def touch(self, now: dt.datetime) -> None:
        """Record that the mirror is current at ``now`` (nothing new on the list)."""
        with self._transaction():
            self._set("caught_up_at", now.isoformat())

    def reset(self) -> None:
        """Forget the list and the offsets (a rebuild from the topic's start); receipts
        already queued or sent are kept, so none is sent twice for one removal."""
        with self._transaction():
            for table in ("listings", "removed", "offsets", "meta"):
                self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names

    def _set(self, name: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def _transaction(self) -> AbstractContextManager[None]:
        return write_transaction(self._db)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> DebtorMirror:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
