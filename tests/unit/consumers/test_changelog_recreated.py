"""A worker's partition database built from a changelog since deleted and created again."""

from __future__ import annotations

from pathlib import Path

from consumers.sealed_table import discard_if_recreated

OLD = "5f1c1e0a-3a9b-4c2e-9f55-0e7b2d9a1c01"
NEW = "0b7f6d2e-8c41-4a4f-a3d6-1f2e3d4c5b6a"


def _database(tmp_path: Path) -> Path:
    path = tmp_path / "zf801-matcher" / "watchlist-3.db"
    path.mkdir(parents=True)
    (path / "CURRENT").write_text("MANIFEST-000001\n")
    return path


def test_a_database_of_the_same_changelog_is_kept(tmp_path: Path) -> None:
    path = _database(tmp_path)
    assert discard_if_recreated(path, OLD) is False  # the first open records the id
    assert discard_if_recreated(path, OLD) is False
    assert (path / "CURRENT").exists()


def test_a_database_of_another_topic_of_the_name_is_removed_and_the_new_id_kept(
    tmp_path: Path,
) -> None:
    path = _database(tmp_path)
    discard_if_recreated(path, OLD)
    assert discard_if_recreated(path, NEW) is True
    assert not path.exists()
    assert discard_if_recreated(path, NEW) is False  # from now on, the new one's
    assert path.with_name("watchlist-3.db.changelog-id").read_text() == NEW


def test_a_database_from_before_the_id_file_is_kept_and_given_one(tmp_path: Path) -> None:
    path = _database(tmp_path)  # no id file: built before they were kept
    assert discard_if_recreated(path, NEW) is False
    assert path.exists()
    assert path.with_name("watchlist-3.db.changelog-id").read_text() == NEW


def test_no_database_yet_only_the_id_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "zf801-matcher" / "order_tracking-0.db"
    assert discard_if_recreated(path, OLD) is False
    assert not path.exists()
    assert discard_if_recreated(path, NEW) is False  # nothing built from the old one
    assert path.with_name("order_tracking-0.db.changelog-id").read_text() == NEW
