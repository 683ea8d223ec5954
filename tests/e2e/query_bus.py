"""A bus as the query e2e modules use it: police responders run in-process, each on its
own SQLite data source (and, when asked, keeping its province's sightings history there),
and courts asking through the query client."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from consumers.history_follower import SightingFollower
from consumers.query_client import QueryClient
from consumers.query_source import SqliteQuerySource
from consumers.responder import Responder
from consumers.responder_state import QuotaLimits, ResponderState
from consumers.runtime import Runtime
from schemas.agencies import get_agency
from schemas.settings import Settings
from tests.waiting import wait_group_members
from topics.acls import group_prefix

__all__ = ["QueryBus"]

_READY_S = 60.0

Rows = Mapping[str, Iterable[tuple[str, Mapping[str, Any]]]]
"""unit -> (row kind, row) loaded into its data source before it starts."""


@dataclasses.dataclass
class _Running:
    responder: Responder
    threads: list[threading.Thread]
    stop: threading.Event
    follower: SightingFollower | None
    history: SqliteQuerySource | None


class QueryBus:
    """One bus (own topics and ACLs) with an in-process responder per unit of ``units``,
    each on its own SQLite data source filled with ``data``, and a court's query client."""

    def __init__(self, bus: Any, root: Path, units: Iterable[str], data: Rows) -> None:
        self.bus = bus
        self.settings: Settings = bus.settings
        self.root = root
        self.running: dict[str, _Running] = {}
        for unit in units:
            with SqliteQuerySource(self.db(unit)) as source:
                for kind, row in data.get(unit, ()):
                    source.add(kind, row)

    def db(self, unit: str) -> Path:
        return self.root / f"{unit}.sqlite"

    def group(self, unit: str) -> str:
        return f"{group_prefix(self.bus.catalog, get_agency(unit))}responder"

    def start(
        self, unit: str, *, limits: QuotaLimits | None = None, follow_sightings: bool = False
    ) -> None:
        """Run ``unit``'s responder in a thread (and, with ``follow_sightings``, its
        sightings history in another, on a connection of its own, as the command does)."""
        runtime = Runtime.connect(unit, self.settings)
        state = ResponderState(
            self.root / f"{unit}-state-{uuid.uuid4().hex[:6]}.sqlite",
            limits or QuotaLimits.for_province(self.settings, unit[:2]),
        )
        responder = Responder(runtime, SqliteQuerySource(self.db(unit), create=False), state)
        stop = threading.Event()
        history = SqliteQuerySource(self.db(unit), create=False) if follow_sightings else None
        follower = SightingFollower(runtime, history) if history is not None else None
        runs = [responder.run] + ([follower.run] if follower is not None else [])
        threads = [threading.Thread(target=run, args=(stop.is_set,), daemon=True) for run in runs]
        for thread in threads:
            thread.start()
        self.running[unit] = _Running(responder, threads, stop, follower, history)
        self.wait_members(unit, 1)

    def stop(self, unit: str) -> None:
        running = self.running.pop(unit)
        running.stop.set()
        for thread in running.threads:
            thread.join(30)
        running.responder.close()
        running.responder.source.close()
        if running.history is not None:
            running.history.close()
        running.responder.rt.close()
        self.wait_members(unit, 0)

    def wait_members(self, unit: str, count: int) -> None:
        wait_group_members(self.settings, self.group(unit), count, _READY_S)

    @contextlib.contextmanager
    def client(self, court: str = "BJ01") -> Iterator[QueryClient]:
        with QueryClient(Runtime.connect(court, self.settings)) as client:
            yield client

    def results(self, court: str = "BJ01") -> list[dict[str, Any]]:
        return [record for record, _, _ in self.bus.read_topic("query-results", court, idle_s=2.0)]

    def close(self) -> None:
        for unit in list(self.running):
            self.stop(unit)
