"""A court's query client refuses a correlation id it already asked under: the responders
answer an id once, so a second query under it would wait its whole deadline for nothing,
and its outbox entry would show the first query's answers as the second's."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from consumers.errors import QueryRefused
from consumers.query_client import QueryClient
from consumers.runtime import Runtime
from schemas.settings import Settings
from sign.keystore import KeyStore
from sign.verify_stage import MemoryAuditSink, MemoryDeadLetterSink
from tests.builders import Records

PERSON = "110105198003121238"


class _Publisher:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def publish_all(self, events: Any, **_: Any) -> list[Any]:
        self.sent.extend(events)
        raise AssertionError("nothing is published for a refused query")

    def close(self) -> None:
        return None


@pytest.fixture
def client(keystore: KeyStore, tmp_path: Path) -> QueryClient:
    """Court BJ01's client, its outbox under ``tmp_path``, publishing nowhere."""
    settings = Settings(home=tmp_path)
    runtime = Runtime.from_keystore("BJ01", MemoryDeadLetterSink(), MemoryAuditSink(),
                                    settings=settings, keystore=keystore)  # fmt: skip
    return QueryClient(runtime, publisher=_Publisher())  # type: ignore[arg-type]


def test_a_correlation_id_already_asked_is_refused_before_anything_is_sent(
    client: QueryClient,
) -> None:
    asked = str(uuid.uuid4())
    client.outbox.mkdir(parents=True)
    (client.outbox / f"{asked}.json").write_text(json.dumps({"kind": "P1"}))
    query = Records.query("P1", PERSON, correlation_id=asked)
    with pytest.raises(
        QueryRefused, match=rf"correlation_id: {asked} was already asked .*\[rule unique\]"
    ):
        client.ask_all("P1", [query], wait_s=1)
    assert client.publisher.sent == []  # type: ignore[attr-defined]
    assert json.loads((client.outbox / f"{asked}.json").read_text()) == {"kind": "P1"}  # kept


def test_no_query_and_an_endless_idle_wait_are_refused_by_name(client: QueryClient) -> None:
    with pytest.raises(QueryRefused, match=r"queries: none given; .*\[rule required\]"):
        client.ask_all("P1", [])
    for idle in (float("nan"), float("inf"), 0, -1):
        with pytest.raises(QueryRefused, match="idle_s: "):
            client.answers(str(uuid.uuid4()), idle_s=idle)


def test_an_id_already_asked_is_refused_in_any_spelling(client: QueryClient) -> None:
    asked = str(uuid.uuid4())
    client.outbox.mkdir(parents=True)
    (client.outbox / f"{asked}.json").write_text(json.dumps({"kind": "P1"}))
    query = Records.query("P1", PERSON, correlation_id=asked.upper())
    with pytest.raises(QueryRefused, match=rf"correlation_id: {asked} was already asked"):
        client.ask_all("P1", [query], wait_s=1)
    assert client.publisher.sent == []  # type: ignore[attr-defined]


def test_a_closed_client_asks_and_reads_nothing(client: QueryClient) -> None:
    """Used after close, the client's publisher sent the query (with a new producer) while
    its audit record could no longer be written."""
    client.close()
    with pytest.raises(QueryRefused, match=r"query client of court BJ01 is closed \[rule open\]"):
        client.ask_all("P1", [Records.query("P1", PERSON)], wait_s=1)
    with pytest.raises(QueryRefused, match=r"\[rule open\]"):
        client.answers(str(uuid.uuid4()))
    assert client.publisher.sent == []  # type: ignore[attr-defined]
