"""The subscriber's SQLite mirror: lookups by match key, one transaction per batch with its
offsets and receipts, reset for a rebuild."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from consumers.debtor_mirror import DebtorMirror, MirrorError, MirrorListing, MirrorRemoval
from schemas.codec import default_codec
from schemas.errors import IdentifierError
from schemas.identifiers import credit_code_check_char, id_number_check_char
from schemas.jsonmap import from_json
from schemas.matchkey import MatchKeyer
from schemas.registry import default_registry

LISTING = "cn.zf801.court.v1.DishonestDebtorListing"
EXAMPLES = Path(__file__).resolve().parents[3] / "schemas" / "examples" / "court"
KEYER = MatchKeyer(b"unit-test-secret-0123456789")
NOW = dt.datetime(2026, 4, 8, 9, 0, tzinfo=dt.UTC)
PERSON = "11010519491231002" + id_number_check_char("11010519491231002")
COMPANY = "91110105000000001" + credit_code_check_char("91110105000000001")


def _value() -> bytes:
    """An example listing as a court signs it (Avro single-object encoding)."""
    schema = default_registry().get(LISTING)
    document = json.loads((EXAMPLES / "DishonestDebtorListing.json").read_text("utf-8"))
    return default_codec().encode(LISTING, from_json(schema, document))


def _listing(identifier: str, listing_id: str = "L1", court: str = "BJ01") -> MirrorListing:
    person = identifier != COMPANY
    key = KEYER.person(identifier) if person else KEYER.organisation(identifier)
    return MirrorListing(key, listing_id, court, f"ev-{listing_id}", _value())


def test_listings_are_found_by_every_spelling_and_removals_queue_receipts(tmp_path: Path) -> None:
    with DebtorMirror(tmp_path / "m.sqlite", keyer=KEYER, create=True) as mirror:
        assert mirror.created
        person, company = _listing(PERSON), _listing(COMPANY, "L2")
        mirror.apply([person, company], {("t", 0): 2}, now=NOW)
        assert mirror.is_listed(PERSON) and mirror.is_listed(PERSON.lower())
        assert mirror.is_listed(COMPANY)
        found = mirror.lookup(PERSON)
        assert found is not None and (found.listing_id, found.court, found.name) == (
            "L1", "BJ01", "王建国")  # fmt: skip
        removal = MirrorRemoval(person.match_key, "L1", "BJ01", "ev-r1", NOW)
        assert mirror.apply([removal], {("t", 0): 3}, now=NOW) == (0, 1)
        assert not mirror.is_listed(PERSON) and mirror.removed_by("L1") == "BJ01"
        assert [p.removal_event_id for p in mirror.pending_receipts()] == ["ev-r1"]
        mirror.mark_sent(["ev-r1"])
        assert mirror.pending_receipts() == []
        assert mirror.offsets() == {("t", 0): 3} and mirror.caught_up_at() == NOW


def test_a_failed_batch_changes_neither_rows_nor_offsets(tmp_path: Path) -> None:
    with DebtorMirror(tmp_path / "m.sqlite", keyer=KEYER, create=True) as mirror:
        mirror.apply([_listing(PERSON)], {("t", 0): 1}, now=NOW)

        def broken():  # type: ignore[no-untyped-def]
            yield _listing(COMPANY, "L2")
            raise RuntimeError("crash mid-batch")

        with pytest.raises(RuntimeError):
            mirror.apply(broken(), {("t", 0): 9}, now=NOW)
        assert not mirror.is_listed(COMPANY) and mirror.offsets() == {("t", 0): 1}


def test_reset_forgets_the_list_and_offsets_but_keeps_receipts(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    with DebtorMirror(path, keyer=KEYER, create=True) as mirror:
        person = _listing(PERSON)
        mirror.apply([person], {("t", 0): 1}, now=NOW)
        mirror.apply([MirrorRemoval(person.match_key, "L1", "BJ01", "ev", NOW)], {}, now=NOW)
        mirror.reset()
        assert mirror.count() == 0 and mirror.offsets() == {} and mirror.caught_up_at() is None
        assert len(mirror.pending_receipts()) == 1
    with DebtorMirror(path, keyer=KEYER) as again:
        assert not again.created


def test_an_invalid_identifier_is_refused_naming_the_rule(tmp_path: Path) -> None:
    wrong = PERSON[:17] + ("0" if PERSON[17] != "0" else "1")
    rule = r"identifier: .*\[rule id_number.check_char\].*\[rule identifier.kind\]"
    with (
        DebtorMirror(tmp_path / "m.sqlite", keyer=KEYER, create=True) as mirror,
        pytest.raises(IdentifierError, match=rule),
    ):
        mirror.is_listed(wrong)


def test_the_mirror_opens_from_a_text_path_and_refuses_what_is_no_database(tmp_path: Path) -> None:
    text_path = str(tmp_path / "m.sqlite")  # as users write it
    with DebtorMirror(text_path, keyer=KEYER, create=True) as mirror:
        assert mirror.is_listed(PERSON) is False
    (tmp_path / "notes.txt").write_text("not a database\n" * 100)
    for path in (tmp_path / "notes.txt", tmp_path):
        with pytest.raises(MirrorError, match=rf"mirror {path}: (not a SQLite database|a folder)"):
            DebtorMirror(path, keyer=KEYER)


def test_a_check_opens_no_mirror_where_there_is_none(tmp_path: Path) -> None:
    """An empty mirror made at a mistyped path answered 'not listed' for a listed debtor."""
    with pytest.raises(MirrorError, match=r"no mirror here \(zf801 subscribe debtors makes it\)"):
        DebtorMirror(tmp_path / "SUB-RAIL123O6.sqlite", keyer=KEYER)
    with pytest.raises(MirrorError, match="no mirror here"):
        DebtorMirror(tmp_path / "no" / "such" / "m.sqlite", keyer=KEYER)
    assert list(tmp_path.iterdir()) == []  # neither a file nor a folder made
