from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from config.loader import load_config
from sync.engine import SourceResult, run_lock, run_sync, sync_source
from sync.errors import LockedError, SourceError
from sync.model import StatusCategory
from sync.store import Store
from tests.conftest import T0, ListConnector, OrderedListConnector, make_item, store_rows

NOW = T0 + timedelta(days=1)


def sync(store: Store, connector: ListConnector, **kw) -> SourceResult:
    kw.setdefault("now", NOW)
    kw.setdefault("page_size", 10)
    return sync_source(store, connector, **kw)


def test_first_sync_is_full_then_incremental_with_overlap(store: Store) -> None:
    conn = ListConnector(items=[make_item(n) for n in range(25)])
    first = sync(store, conn)
    assert (first.mode, first.status, first.new, first.seen) == ("full", "ok", 25, 25)
    assert store.cursor("src")["watermark"] == T0 + timedelta(minutes=24)
    second = sync(store, conn)
    assert second.mode == "incremental"
    assert conn.calls[-1] == T0 + timedelta(minutes=24) - timedelta(minutes=5)
    # The overlap re-reads items 19..24; they are unchanged.
    assert (second.seen, second.new, second.changed) == (6, 0, 0)


@pytest.mark.parametrize("cls", [ListConnector, OrderedListConnector])
@pytest.mark.parametrize("kill_at", [0, 5, 10, 15, 29])
def test_killed_sync_resumes_to_the_same_store(cls: type[ListConnector], kill_at: int) -> None:
    items = [make_item(n) for n in range(30)]
    reference = Store.memory()
    sync(reference, cls(items=items))

    interrupted = Store.memory()
    conn = cls(items=items, fail_after=kill_at)
    result = sync(interrupted, conn)
    assert result.status == "failed" and "killed after" in (result.error or "")
    committed = len(interrupted.item_ids("src"))
    assert committed == kill_at // 10 * 10  # whole pages only
    if cls.ordered and committed:
        assert interrupted.cursor("src")["watermark"] == T0 + timedelta(minutes=committed - 1)
    else:
        assert interrupted.cursor("src")["watermark"] is None
    conn.fail_after = None
    assert sync(interrupted, conn).ok
    assert store_rows(interrupted) == store_rows(reference)
    count = interrupted.conn.execute("SELECT count(*) FROM items").fetchone()[0]
    assert count == 30


def test_changes_during_an_interrupted_run_are_not_lost() -> None:
    store = Store.memory()
    conn = OrderedListConnector(items=[make_item(n) for n in range(30)])
    sync(store, conn)
    # Items 3 and 40 change/appear; the next run dies after its first page.
    conn.put(make_item(3, title="Changed", updated_at=T0 + timedelta(hours=2)))
    conn.put(make_item(40, updated_at=T0 + timedelta(hours=3)))
    conn.fail_after = 0
    assert not sync(store, conn).ok
    conn.fail_after = None
    assert sync(store, conn).ok
    titles = {i.id: i.title for i in store.items(["src"])}
    assert titles["3"] == "Changed" and "40" in titles


def test_census_tombstones_vanished_and_restores_returning(store: Store) -> None:
    conn = ListConnector(items=[make_item(n) for n in range(5)])
    sync(store, conn)
    del conn.items["2"]
    later = NOW + timedelta(hours=25)
    result = sync(store, conn, now=later)
    assert (result.tombstoned, conn.census_calls) == (1, 1)
    assert store.item_ids("src") == {"0", "1", "3", "4"}
    row = store.conn.execute("SELECT deleted_at FROM items WHERE id = '2'").fetchone()
    assert row[0] == later.isoformat()
    # The census is not due again for 24 h: no second call.
    sync(store, conn, now=later + timedelta(hours=1))
    assert conn.census_calls == 1
    conn.put(make_item(2))
    result = sync(store, conn, full=True, now=later + timedelta(hours=2))
    assert (result.mode, result.restored) == ("full", 1)
    assert store.item_ids("src") == {"0", "1", "2", "3", "4"}


def test_full_sync_is_its_own_census(store: Store) -> None:
    conn = ListConnector(items=[make_item(n) for n in range(5)])
    sync(store, conn)
    del conn.items["4"]
    result = sync(store, conn, full=True)
    assert (result.tombstoned, conn.census_calls) == (1, 0)


def test_failed_census_keeps_items_and_fails_the_run(store: Store) -> None:
    conn = ListConnector(items=[make_item(n) for n in range(3)])
    sync(store, conn)

    def broken() -> list[str]:
        raise SourceError("src: HTTP 503 from GET /ids")

    conn.fetch_ids = broken  # type: ignore[method-assign]
    result = sync(store, conn, now=NOW + timedelta(days=2))
    assert result.status == "failed" and result.error == "src: HTTP 503 from GET /ids"
    assert store.item_ids("src") == {"0", "1", "2"}


def test_run_is_recorded_with_counts_and_redacted_error(store: Store) -> None:
    conn = ListConnector(items=[make_item(1)])

    def leaky(since):
        raise SourceError("src: token s3cr3t-value rejected")
        yield

    conn.fetch_items = leaky  # type: ignore[method-assign]
    result = sync(store, conn, redact=lambda s: s.replace("s3cr3t-value", "***"))
    assert result.error == "src: token *** rejected"
    row = store.conn.execute("SELECT status, error, mode FROM sync_runs").fetchone()
    assert tuple(row) == ("failed", "src: token *** rejected", "full")


def test_unexpected_exception_fails_only_that_source(tmp_path: Path) -> None:
    cfg = _csv_config(tmp_path, rows=3, extra_source=True)
    (tmp_path / "missing.csv").unlink()
    store = Store.open(tmp_path / "pmsync.db")
    results = run_sync(load_config(cfg), store, now=NOW)
    assert [(r.source, r.status) for r in results] == [("good", "ok"), ("bad", "failed")]
    assert "not found" in (results[1].error or "")
    assert store.item_ids("good") == {"K-0", "K-1", "K-2", "K-E"}


def test_snapshots_written_per_project_and_audience(tmp_path: Path) -> None:
    cfg = _csv_config(tmp_path, rows=4)
    store = Store.open(tmp_path / "pmsync.db")
    run_sync(load_config(cfg), store, now=datetime(2026, 11, 20, 23, 30, tzinfo=UTC))
    client = store.snapshots("acme", "client")
    internal = store.snapshots("acme", "internal")
    # 23:30 UTC is already the next day in Berlin.
    assert [s["day"] for s in client] == ["2026-11-21"]
    assert (client[0]["total"], client[0]["done"], client[0]["estimate_done"]) == (3, 1, 2.0)
    assert (internal[0]["total"], internal[0]["done"]) == (4, 1)


def test_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    db = tmp_path / "pmsync.db"
    with run_lock(db), pytest.raises(LockedError, match="another pmsync run"), run_lock(db):
        pass
    with run_lock(db):  # released
        pass


def test_second_concurrent_sync_process_exits_75(tmp_path: Path) -> None:
    cfg = _csv_config(tmp_path, rows=2)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from sync.engine import run_lock
            with run_lock({str(tmp_path / "pmsync.db")!r}):
                print("locked", flush=True)
                time.sleep(30)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        env = {**os.environ, "PMSYNC_CONFIG": str(cfg)}
        second = subprocess.run(
            [sys.executable, "-m", "cli", "sync"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert second.returncode == 75
        assert second.stderr.strip().startswith("error: another pmsync run is using")
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        holder.kill()
        holder.wait()


def _csv_config(tmp_path: Path, *, rows: int, extra_source: bool = False) -> Path:
    lines = ["key,title,status,labels,estimate,type"]
    for n in range(rows):
        status = "Done" if n == 0 else "To Do"
        labels = "internal" if n == rows - 1 else ""
        lines.append(f"K-{n},Task {n},{status},{labels},2,task")
    lines.append("K-E,An epic,To Do,,,epic")
    (tmp_path / "good.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "missing.csv").write_text("key,title\n")
    text = textwrap.dedent("""
        [sources.good]
        kind = "csv"
        path = "good.csv"
    """)
    if extra_source:
        text += '\n[sources.bad]\nkind = "csv"\npath = "missing.csv"\n'
    text += textwrap.dedent("""
        [projects.acme]
        name = "ACME"
        sources = ["good"]
        timezone = "Europe/Berlin"
    """)
    path = tmp_path / "pmsync.toml"
    path.write_text(text)
    return path


def test_category_and_date_types_survive_the_engine(store: Store) -> None:
    item = make_item(1, category=StatusCategory.DONE, due_date=date(2026, 12, 1))
    sync(store, ListConnector(items=[item]))
    back = next(store.items(["src"]))
    assert back.category is StatusCategory.DONE and back.due_date == date(2026, 12, 1)
