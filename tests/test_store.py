from __future__ import annotations

import json
import sqlite3
import stat
from datetime import date
from pathlib import Path

import pytest

from sync.errors import StoreError
from sync.model import Milestone, StatusCategory, Transition
from sync.store import MIGRATIONS, Store
from tests.conftest import T0, make_item


def test_new_store_file_is_private_wal_and_migrated(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "pmsync.db"
    s = Store.open(path)
    s.upsert_items([make_item(1)])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(f"{path}-wal").stat().st_mode) == 0o600
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    names = [r[0] for r in s.conn.execute("SELECT name FROM _migrations ORDER BY rowid")]
    assert names == [fn.__name__ for fn in MIGRATIONS]
    s.close()
    # Reopening applies nothing twice.
    again = Store.open(path)
    assert again.conn.execute("SELECT count(*) FROM _migrations").fetchone()[0] == len(MIGRATIONS)
    again.close()


def test_foreign_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a usable pmsync store"):
        Store.open(path)
    assert path.read_bytes() == before


def test_garbage_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable pmsync store"):
        Store.open(path)
    assert path.read_bytes() == b"this is not sqlite" * 100


def test_store_from_newer_pmsync_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pmsync.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO _migrations VALUES ('m999_future', 'x')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer pmsync"):
        Store.open(path)


def test_upsert_counts_new_changed_and_unchanged(store: Store) -> None:
    assert store.upsert_items([make_item(1), make_item(2)]) == (2, 0, 0)
    assert store.upsert_items([make_item(1), make_item(2)]) == (0, 0, 0)
    assert store.upsert_items([make_item(1, title="Renamed"), make_item(3)]) == (1, 1, 0)
    rows = {r["id"]: r for r in store.item_rows(["src"])}
    assert rows["1"]["title"] == "Renamed"
    assert json.loads(rows["1"]["raw"]) == {"n": 1}
    assert rows["1"]["first_seen_at"] <= rows["1"]["last_seen_at"]


def test_raw_changes_count_as_changes(store: Store) -> None:
    store.upsert_items([make_item(1)])
    assert store.upsert_items([make_item(1, raw={"n": 1, "extra": True})]) == (0, 1, 0)


def test_round_trip_preserves_every_field(store: Store) -> None:
    item = make_item(
        7,
        url="https://x/7",
        kind="bug",
        status="In Review",
        category=StatusCategory.IN_PROGRESS,
        assignee="Wang Lei",
        priority="High",
        labels=["a", "客户"],
        parent_id="1",
        milestone_id="m1",
        start_date=date(2026, 11, 1),
        due_date=date(2026, 11, 30),
        completed_at=None,
        estimate=3.5,
        progress=0.4,
        blocked=True,
    )
    store.upsert_items([item])
    back = next(store.items(["src"], with_raw=True))
    assert back.model_dump() == item.model_dump()


def test_observed_transition_recorded_when_category_changes(store: Store) -> None:
    store.upsert_items([make_item(1)])
    store.upsert_items([make_item(1, status="Done", category=StatusCategory.DONE)])
    [t] = store.transitions(["src"])
    assert (t.from_status, t.to_status) == ("To Do", "Done")
    assert (t.from_category, t.to_category) == (StatusCategory.TODO, StatusCategory.DONE)
    assert t.at == make_item(1).updated_at


def test_source_history_is_kept_and_not_duplicated(store: Store) -> None:
    history = [
        Transition(
            source="src",
            item_id="1",
            at=T0,
            from_status="To Do",
            to_status="Done",
            from_category=StatusCategory.TODO,
            to_category=StatusCategory.DONE,
        ),
    ]
    item = make_item(1, status="Done", category=StatusCategory.DONE, transitions=history)
    store.upsert_items([item])
    store.upsert_items([item.model_copy(update={"title": "again"})])
    assert len(store.transitions(["src"])) == 1


def test_reconcile_tombstones_and_restores_without_deleting(store: Store) -> None:
    store.upsert_items([make_item(1), make_item(2), make_item(3)])
    assert store.reconcile("src", ["1", "3"]) == (1, 0)
    assert store.item_ids("src") == {"1", "3"}
    assert store.item_ids("src", include_deleted=True) == {"1", "2", "3"}
    assert store.reconcile("src", ["1", "2", "3"]) == (0, 1)
    assert store.item_ids("src") == {"1", "2", "3"}


def test_reappearing_item_in_a_page_is_restored(store: Store) -> None:
    store.upsert_items([make_item(1)])
    store.reconcile("src", [])
    assert store.upsert_items([make_item(1)]) == (0, 0, 1)
    assert store.item_ids("src") == {"1"}


def test_milestones_absent_are_tombstoned(store: Store) -> None:
    m1 = Milestone(source="src", id="m1", name="Beta", due_date=date(2026, 12, 1))
    m2 = Milestone(source="src", id="m2", name="Launch")
    store.upsert_milestones("src", [m1, m2])
    store.upsert_milestones("src", [m1])
    assert [m.id for m in store.milestones(["src"])] == ["m1"]
    assert store.conn.execute("SELECT count(*) FROM milestones").fetchone()[0] == 2


def test_watermark_never_moves_back(store: Store) -> None:
    store.set_cursor("src", watermark=T0)
    store.set_cursor("src", watermark=T0.replace(year=2025))
    assert store.cursor("src")["watermark"] == T0


def test_feedback_and_publications(store: Store) -> None:
    store.add_feedback("acme", date(2026, 11, 20), 4, "Clear report")
    assert store.feedback("acme") == [
        {"project": "acme", "day": "2026-11-20", "score": 4, "comment": "Clear report"}
    ]
    with pytest.raises(sqlite3.IntegrityError):
        store.add_feedback("acme", date(2026, 11, 20), 6, None)
    store.record_publication("acme", "jira", "p1", "c-1", "h1", "https://x/c-1")
    store.record_publication("acme", "jira", "p1", "c-1", "h2", "https://x/c-1")
    assert [p["content_hash"] for p in store.publications("acme")] == ["h2"]
