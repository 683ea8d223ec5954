"""The dishonest-debtor list reaches its subscribers, against the real broker: listings
and removals in each subscriber's mirror, signed receipts back to the removing court, and
the bad input a subscriber must refuse (nothing wrong reaches a mirror)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from consumers.debtor_mirror import DebtorMirror
from consumers.debtor_subscriber import LISTING, REMOVAL, DebtorSubscriber
from consumers.removal_receipts import removal_statuses
from consumers.runtime import Runtime
from schemas.identifiers import credit_code_check_char
from schemas.matchkey import MatchKeyer
from sign.verify_stage import MemoryAuditSink, MemoryDeadLetterSink
from topics import clients

pytestmark = [pytest.mark.e2e]

RAIL = "SUB-RAIL12306"
REGISTRY = "SUB-SAMR"
_IDLE_S = 2.0


@pytest.fixture(scope="module")
def bus(bus_factory: Any) -> Any:
    return bus_factory()  # no worker: the list goes from the courts to the subscribers


class _Subscriber:
    """A subscriber as its process runs it: runtime, mirror file, follower."""

    def __init__(self, bus: Any, code: str, path: Path, **options: Any) -> None:
        self.dead_letters = MemoryDeadLetterSink()
        self.audit = MemoryAuditSink()
        self.runtime = Runtime.from_keystore(
            code, self.dead_letters, self.audit, settings=bus.settings, keystore=bus.keystore
        )
        self.mirror = DebtorMirror(path, create=True)
        self.follower = DebtorSubscriber(self.runtime, self.mirror, **options)
        self.state = self.follower.open_mirror()

    def catch_up(self) -> dict[str, int]:
        self.follower.run(until_idle_s=_IDLE_S)
        return self.follower.counts

    def refusals(self) -> list[tuple[str, str]]:
        return [(r.reason, r.detail) for r in self.dead_letters.rejections]

    def close(self) -> None:
        self.follower.close()
        self.mirror.close()


@pytest.fixture
def subscriber(bus: Any, tmp_path: Path) -> Iterator[Any]:
    made: list[_Subscriber] = []

    def make(code: str = RAIL, name: str = "mirror.sqlite", **options: Any) -> _Subscriber:
        sub = _Subscriber(bus, code, tmp_path / code / name, **options)
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.close()


def _credit_code(serial: int) -> str:
    first17 = f"91110105{serial:09d}"
    return first17 + credit_code_check_char(first17)


def _listing(court: str, case_abbr: str, debtor: dict[str, Any]) -> dict[str, Any]:
    return {
        "listing_id": str(uuid.uuid4()),
        "case_number": f"（2025）{case_abbr}执{uuid.uuid4().int % 9000 + 100}号",
        "filing_date": dt.date(2025, 3, 1),
        "enforcing_court_code": court,
        "debtor": {"kind": "NATURAL_PERSON", "name": "张三", "id_number": None,
                   "organisation_code": None, **debtor},
        "enforcement_status": "IN_PROGRESS",
        "amount_applied_for": Decimal("120000.00"),
        "dishonest_conduct": ["REFUSES_DESPITE_ABILITY"],
        "published_at": dt.datetime.now(dt.UTC),
    }  # fmt: skip


def _removal(
    listing: dict[str, Any], court: str | None = None, case: str | None = None
) -> dict[str, Any]:
    return {
        "listing_id": listing["listing_id"],
        "case_number": case or listing["case_number"],
        "enforcing_court_code": court or listing["enforcing_court_code"],
        "debtor": listing["debtor"],
        "reason": "PERFORMED",
        "removed_at": dt.datetime.now(dt.UTC),
    }


def _forge(bus: Any, court: str, schema: str, record: dict[str, Any], key: bytes) -> None:
    """Publish as ``court`` past the publisher's edge checks (a court system with a bug,
    or one that signs what it is given): signed, schema-valid, identifiers unchecked."""
    signed = bus.keystore.signer_for(court).signed_record(schema, record, key=key)
    producer = clients.kafka_producer(bus.settings, court)
    try:
        producer.send(bus.catalog.topic_name("dishonest-debtors"), key=signed.key,
                      value=signed.value, headers=list(signed.headers)).get(timeout=30)  # fmt: skip
    finally:
        producer.close()


def test_a_listing_reaches_the_mirror_and_its_removal_is_confirmed(
    bus: Any, records: Any, subscriber: Any
) -> None:
    person = _listing("BJ01", "京01", {"id_number": records.id_number()})
    code = _credit_code(records_serial(records))
    company = _listing("BJ01", "京01", {"kind": "LEGAL_PERSON", "name": "北京某某贸易有限公司",
                                        "organisation_code": code})  # fmt: skip
    bus.publish("BJ01", "DishonestDebtorListing", person)
    bus.publish("BJ01", "DishonestDebtorListing", company)
    rail = subscriber(RAIL)
    assert rail.state.rebuilt and "not found" in rail.state.reason
    rail.catch_up()
    assert rail.mirror.is_listed(person["debtor"]["id_number"])
    assert rail.mirror.is_listed(person["debtor"]["id_number"].lower())  # a spelling of it
    assert rail.mirror.is_listed(company["debtor"]["organisation_code"])
    found = rail.mirror.lookup(person["debtor"]["id_number"])
    assert found is not None and found.listing_id == person["listing_id"] and found.court == "BJ01"

    removal = bus.publish("BJ01", "DishonestDebtorRemoval", _removal(person))
    counts = rail.catch_up()
    assert not rail.mirror.is_listed(person["debtor"]["id_number"])
    assert rail.mirror.is_listed(company["debtor"]["organisation_code"])
    assert counts["receipts"] == 1 and rail.refusals() == []

    receipts = bus.read_topic("removal-receipts", "BJ01", idle_s=_IDLE_S)
    mine = [r for r, _, _ in receipts if r["removal_event_id"] == removal.event_id]
    assert [(r["subscriber_code"], str(r["listing_id"])) for r in mine] == [
        (RAIL, person["listing_id"])
    ]

    court = Runtime.from_keystore("BJ01", MemoryDeadLetterSink(), MemoryAuditSink(),
                                  settings=bus.settings, keystore=bus.keystore)  # fmt: skip
    statuses = {s.removal_event_id: s for s in removal_statuses(
        court, deadline=dt.timedelta(0), until_idle_s=_IDLE_S)}  # fmt: skip
    status = statuses[removal.event_id]
    assert set(status.confirmed) == {RAIL} and status.overdue == [REGISTRY]

    # The registry was down all along: back, it catches up and sends its receipt.
    registry = subscriber(REGISTRY)
    registry.catch_up()
    assert not registry.mirror.is_listed(person["debtor"]["id_number"])
    assert registry.mirror.is_listed(company["debtor"]["organisation_code"])
    statuses = {s.removal_event_id: s for s in removal_statuses(
        court, deadline=dt.timedelta(0), until_idle_s=_IDLE_S)}  # fmt: skip
    assert set(statuses[removal.event_id].confirmed) == {RAIL, REGISTRY}
    assert statuses[removal.event_id].overdue == []


def records_serial(records: Any) -> int:
    return int(records.id_number()[6:15]) % 10**9


def test_bad_input_is_refused_naming_the_field_and_the_rule(
    bus: Any, records: Any, subscriber: Any
) -> None:
    keyer = MatchKeyer(bus.settings.match_key_secret.get_secret_value().encode())
    good = _listing("BJ01", "京01", {"id_number": records.id_number()})
    bus.publish("BJ01", "DishonestDebtorListing", good)
    rail = subscriber(RAIL)
    rail.catch_up()
    assert rail.mirror.is_listed(good["debtor"]["id_number"])
    listed_before, receipts_before = rail.mirror.count(), rail.follower.counts["receipts"]

    valid_id = records.id_number()
    bad_id = valid_id[:17] + ("0" if valid_id[17] != "0" else "1")  # wrong check digit
    bad_person = _listing("BJ01", "京01", {"id_number": bad_id})
    _forge(bus, "BJ01", LISTING, bad_person, keyer.person(valid_id))
    code = _credit_code(records_serial(records))
    bad_code = code[:17] + ("0" if code[17] != "0" else "1")
    bad_company = _listing("BJ01", "京01", {"kind": "LEGAL_PERSON", "name": "某公司",
                                            "organisation_code": bad_code})  # fmt: skip
    _forge(bus, "BJ01", LISTING, bad_company, keyer.organisation(code))
    never_listed = _listing("BJ01", "京01", {"id_number": records.id_number()})
    bus.publish("BJ01", "DishonestDebtorRemoval", _removal(never_listed))
    wrong_listing = dict(_removal(good), listing_id=str(uuid.uuid4()))
    bus.publish("BJ01", "DishonestDebtorRemoval", wrong_listing)
    by_other_court = _removal(good, court="SH01", case="（2025）沪01执77号")
    bus.publish("SH01", "DishonestDebtorRemoval", by_other_court)

    counts = rail.catch_up()
    refusals = rail.refusals()
    assert counts["refused"] == 5, refusals
    details = [detail for _, detail in refusals]
    assert any(d.startswith("debtor.id_number") and "[rule id_number." in d for d in details)
    assert any(d.startswith("debtor.organisation_code") and "[rule credit_code." in d
               for d in details)  # fmt: skip
    unknown = [d for reason, d in refusals if reason == "UNKNOWN_LISTING"]
    assert len(unknown) == 2 and all("[rule removal.listing]" in d for d in unknown)
    assert any(never_listed["listing_id"] in d for d in unknown)
    other = [d for reason, d in refusals if reason == "AGENCY_MISMATCH"]
    assert len(other) == 1 and "SH01" in other[0] and "[rule removal.court]" in other[0]
    # Nothing wrong reached the mirror; the good listing stands; no receipt was sent.
    assert rail.mirror.count() == listed_before
    assert rail.mirror.is_listed(good["debtor"]["id_number"])
    assert not rail.mirror.is_listed(valid_id) and not rail.mirror.is_listed(code)
    assert counts["receipts"] == receipts_before
    assert len(rail.audit.rejections) == 5  # every refusal audited too


def test_a_restart_neither_loses_nor_repeats_and_a_lost_or_stale_mirror_is_rebuilt(
    bus: Any, records: Any, subscriber: Any
) -> None:
    first = _listing("BJ01", "京01", {"id_number": records.id_number()})
    bus.publish("BJ01", "DishonestDebtorListing", first)
    rail = subscriber(RAIL, "restart.sqlite")
    rail.catch_up()
    listed, path = rail.mirror.count(), rail.mirror.path
    rail.close()

    second = _listing("BJ01", "京01", {"id_number": records.id_number()})
    bus.publish("BJ01", "DishonestDebtorListing", second)
    again = subscriber(RAIL, "restart.sqlite")
    assert not again.state.rebuilt
    counts = again.catch_up()
    assert counts["read"] == 1 and again.mirror.count() == listed + 1  # only the new record
    again.close()

    path.unlink()
    rebuilt = subscriber(RAIL, "restart.sqlite")
    assert rebuilt.state.rebuilt and "not found" in rebuilt.state.reason
    rebuilt.catch_up()
    assert rebuilt.mirror.count() == listed + 1
    assert rebuilt.mirror.is_listed(first["debtor"]["id_number"])
    rebuilt.close()

    with DebtorMirror(path) as aged:  # as if the subscriber had been down for 31 days
        aged.touch(dt.datetime.now(dt.UTC) - dt.timedelta(days=31))
    stale = subscriber(RAIL, "restart.sqlite")
    assert stale.state.rebuilt and "delete.retention.ms" in stale.state.reason
    assert stale.mirror.count() == 0
    stale.catch_up()
    assert stale.mirror.count() == listed + 1


def test_removal_schema_names_are_the_list_topics_types(bus: Any) -> None:
    assert set(bus.catalog.get("dishonest-debtors").value_schemas) == {LISTING, REMOVAL}
