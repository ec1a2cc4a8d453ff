"""The SQLite store (DESIGN §4): one file, named migrations, tombstones instead of deletes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import sqlite_utils

from sync.errors import StoreError
from sync.model import Milestone, StatusCategory, Transition, WorkItem

MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = []


def migration(
    fn: Callable[[sqlite_utils.Database], None],
) -> Callable[[sqlite_utils.Database], None]:
    """Register a schema migration; they run once each, in definition order, by name."""
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_initial(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE items (
            source TEXT NOT NULL, id TEXT NOT NULL, key TEXT NOT NULL, url TEXT,
            title TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL, category TEXT NOT NULL,
            assignee TEXT, priority TEXT, labels TEXT NOT NULL DEFAULT '[]', parent_id TEXT,
            milestone_id TEXT, start_date TEXT, due_date TEXT, created_at TEXT, updated_at TEXT,
            completed_at TEXT, estimate REAL, progress REAL, blocked INTEGER NOT NULL DEFAULT 0,
            raw TEXT NOT NULL DEFAULT '{}', hash TEXT NOT NULL,
            first_seen_at TEXT NOT NULL, last_seen_at TEXT NOT NULL, deleted_at TEXT,
            PRIMARY KEY (source, id)
        )"""
    )
    db.execute(
        """
        CREATE TABLE milestones (
            source TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, start_date TEXT,
            due_date TEXT, state TEXT NOT NULL, url TEXT, deleted_at TEXT,
            PRIMARY KEY (source, id)
        )"""
    )
    db.execute(
        """
        CREATE TABLE transitions (
            source TEXT NOT NULL, item_id TEXT NOT NULL, at TEXT NOT NULL,
            from_status TEXT, to_status TEXT NOT NULL, from_category TEXT,
            to_category TEXT NOT NULL, observed INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (source, item_id, at, to_status)
        )"""
    )
    db.execute(
        """
        CREATE TABLE sync_runs (
            id INTEGER PRIMARY KEY, source TEXT NOT NULL, mode TEXT NOT NULL,
            started_at TEXT NOT NULL, ended_at TEXT, status TEXT NOT NULL,
            items_new INTEGER NOT NULL DEFAULT 0, items_changed INTEGER NOT NULL DEFAULT 0,
            items_tombstoned INTEGER NOT NULL DEFAULT 0, items_restored INTEGER NOT NULL DEFAULT 0,
            items_seen INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0,
            retries INTEGER NOT NULL DEFAULT 0, notes TEXT NOT NULL DEFAULT '[]', error TEXT
        )"""
    )
    db.execute(
        """
        CREATE TABLE cursors (
            source TEXT PRIMARY KEY, watermark TEXT, last_census_at TEXT,
            state TEXT NOT NULL DEFAULT '{}'
        )"""
    )
    db.execute(
        """
        CREATE TABLE snapshots (
            project TEXT NOT NULL, day TEXT NOT NULL, audience TEXT NOT NULL,
            total INTEGER NOT NULL, todo INTEGER NOT NULL, in_progress INTEGER NOT NULL,
            done INTEGER NOT NULL, cancelled INTEGER NOT NULL,
            estimate_total REAL NOT NULL, estimate_done REAL NOT NULL, taken_at TEXT NOT NULL,
            PRIMARY KEY (project, day, audience)
        )"""
    )
    db.execute(
        """
        CREATE TABLE publications (
            project TEXT NOT NULL, target TEXT NOT NULL, period TEXT NOT NULL,
            remote_id TEXT NOT NULL, content_hash TEXT NOT NULL, url TEXT,
            published_at TEXT NOT NULL,
            PRIMARY KEY (project, target, period)
        )"""
    )
    db.execute(
        """
        CREATE TABLE feedback (
            id INTEGER PRIMARY KEY, project TEXT NOT NULL, day TEXT NOT NULL,
            score INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5), comment TEXT,
            recorded_at TEXT NOT NULL
        )"""
    )


ITEM_COLUMNS = (
    "source",
    "id",
    "key",
    "url",
    "title",
    "kind",
    "status",
    "category",
    "assignee",
    "priority",
    "labels",
    "parent_id",
    "milestone_id",
    "start_date",
    "due_date",
    "created_at",
    "updated_at",
    "completed_at",
    "estimate",
    "progress",
    "blocked",
    "raw",
)


class Upserted(NamedTuple):
    new: int
    changed: int
    restored: int


class ItemGroup(NamedTuple):
    """Live items alike in what the counting rule reads (sync.scope), and how many there are."""

    kind: str
    labels: list[str]
    category: StatusCategory
    estimate: float | None
    blocked: bool
    count: int

    @property
    def is_container(self) -> bool:
        return self.kind.lower() == "epic"  # as WorkItem.is_container


def now_utc() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | date | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _d(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def item_row(item: WorkItem) -> dict[str, Any]:
    """Return the `items` columns of `item` (without bookkeeping), JSON-encoding lists and raw."""
    return {
        "source": item.source,
        "id": item.id,
        "key": item.key,
        "url": item.url,
        "title": item.title,
        "kind": item.kind,
        "status": item.status,
        "category": item.category.value,
        "assignee": item.assignee,
        "priority": item.priority,
        "labels": json_text(item.labels) if item.labels else "[]",
        "parent_id": item.parent_id,
        "milestone_id": item.milestone_id,
        "start_date": _iso(item.start_date),
        "due_date": _iso(item.due_date),
        "created_at": _iso(item.created_at),
        "updated_at": _iso(item.updated_at),
        "completed_at": _iso(item.completed_at),
        "estimate": item.estimate,
        "progress": item.progress,
        "blocked": int(item.blocked),
        "raw": json_text(item.raw, sort_keys=True),
    }


def json_text(value: Any, *, sort_keys: bool = False) -> str:
    """Compact UTF-8 JSON text (orjson: the raw JSON of every item passes through here)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0).decode()
    except TypeError:  # orjson refuses lone surrogates (an invalid escape in a source's JSON)
        return json.dumps(value, ensure_ascii=False, sort_keys=sort_keys, separators=(",", ":"))


def row_item(row: sqlite3.Row | dict[str, Any], *, with_raw: bool = False) -> WorkItem:
    """Rebuild a WorkItem from an `items` row (raw only when asked: it is the bulk of the row)."""
    return WorkItem.model_construct(
        source=row["source"],
        id=row["id"],
        key=row["key"],
        url=row["url"],
        title=row["title"],
        kind=row["kind"],
        status=row["status"],
        category=StatusCategory(row["category"]),
        assignee=row["assignee"],
        priority=row["priority"],
        labels=json.loads(row["labels"]),
        parent_id=row["parent_id"],
        milestone_id=row["milestone_id"],
        start_date=_d(row["start_date"]),
        due_date=_d(row["due_date"]),
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
        completed_at=_dt(row["completed_at"]),
        estimate=row["estimate"],
        progress=row["progress"],
        blocked=bool(row["blocked"]),
        raw=json.loads(row["raw"]) if with_raw else {},
        transitions=None,
    )


def store_failure(path: Path | None, exc: sqlite3.Error) -> StoreError:
    """One line for a failure of the SQLite file: what happened, to which file, what to do."""
    text = str(exc)
    low = text.lower()
    if "full" in low:  # "database or disk is full"
        hint = "free some disk space and run it again; what was committed before is kept"
    elif "readonly" in low or "read-only" in low or "unable to open" in low:
        hint = "check that the file and its folder are writable by this user"
    elif "malformed" in low or "not a database" in low:
        hint = "the file is damaged: restore a backup, or move it aside and `pmsync sync --full`"
    elif "locked" in low or "busy" in low:
        hint = "another program is holding it; try again when it ends"
    else:
        hint = "check the file and its disk"
    where = f"the store {path}" if path is not None else "the store"
    return StoreError(f"cannot use {where} ({text}); {hint}")


def _row_hash(row: dict[str, Any]) -> str:
    text = "\x1f".join([str(row[col]) for col in ITEM_COLUMNS])
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(value: Any) -> Any:
    """`value` with lone surrogates (from an invalid `\\ud800` escape in a source's JSON)
    replaced by U+FFFD: SQLite holds UTF-8, which cannot encode them."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _make_storable(row: dict[str, Any]) -> None:
    for col, value in row.items():
        if col == "raw":
            # Keep the source JSON exact: write the surrogate back as its JSON escape.
            row[col] = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
        else:
            row[col] = storable(value)


class Store:
    """The SQLite file: open it with `Store.open(path)`; every write method commits once."""

    def __init__(self, db: sqlite_utils.Database, path: Path | None) -> None:
        self.db = db
        self.conn: sqlite3.Connection = db.conn
        self.path = path

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str, *, readonly: bool = False) -> Store:
        """Open (creating with mode 0600) and migrate the store at `path`."""
        path = Path(path)
        if readonly and not path.exists():
            raise StoreError(f"store {path} does not exist yet; run `pmsync sync` first")
        if not path.exists():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise StoreError(f"cannot create store {path}: {exc.strerror}") from None
        try:
            conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            store = cls(sqlite_utils.Database(conn), path)
            store._configure()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) or "malformed" in str(exc):
                # Read-only, disk full, cannot open, or a damaged pmsync store.
                raise store_failure(path, exc) from None
            raise StoreError(
                f"{path} is not a usable pmsync store ({exc}); point --db at another file"
            ) from None
        return store

    @classmethod
    def memory(cls) -> Store:
        """An in-memory store (tests and the benchmark ceiling)."""
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        store = cls(sqlite_utils.Database(conn), None)
        store._configure()
        return store

    def _configure(self) -> None:
        self._refuse_foreign()
        self.conn.execute("PRAGMA foreign_keys = ON")
        if self.path is not None:
            if not self.db.table_names():  # a new file: items carry their raw JSON, so big pages
                self.conn.execute("PRAGMA page_size = 16384")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
        self._migrate()
        if self.path is not None:
            # WAL and shm files hold the same client data as the main file.
            for suffix in ("", "-wal", "-shm"):
                p = Path(f"{self.path}{suffix}")
                if p.exists():
                    os.chmod(p, 0o600)

    def _refuse_foreign(self) -> None:
        """Fail, before writing anything, on a database that is not a pmsync store."""
        tables = set(self.db.table_names())
        if tables - {"_migrations"} and "_migrations" not in tables:
            raise sqlite3.DatabaseError("it has tables but no pmsync migrations table")
        if "_migrations" in tables:
            done = {r[0] for r in self.conn.execute("SELECT name FROM _migrations")}
            unknown = done - {fn.__name__ for fn in MIGRATIONS}
            if unknown:
                raise sqlite3.DatabaseError(
                    f"it was written by a newer pmsync (migrations {sorted(unknown)})"
                )

    def _migrate(self) -> None:
        tables = set(self.db.table_names())
        if "_migrations" not in tables:
            self.conn.execute(
                "CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
        done = {r[0] for r in self.conn.execute("SELECT name FROM _migrations")}
        for fn in MIGRATIONS:
            if fn.__name__ in done:
                continue
            with self.transaction():
                fn(self.db)
                self.conn.execute(
                    "INSERT INTO _migrations VALUES (?, ?)", (fn.__name__, _iso(now_utc()))
                )

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one IMMEDIATE transaction: all of it commits, or none of it.

        A failure of the file itself (disk full, read-only, damaged) rolls back and becomes a
        one-line StoreError; constraint errors (bugs, bad input) pass through as they are.
        """
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    with suppress(sqlite3.Error):
                        self.conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError:
                raise store_failure(self.path, exc) from None
            raise

    # -- items ----------------------------------------------------------------------------

    def upsert_items(
        self,
        items: Sequence[WorkItem],
        *,
        now: datetime | None = None,
        watermark: datetime | None = None,
    ) -> Upserted:
        """Write a page of items in one transaction; return how many were new, changed, restored.

        An item seen again is restored if it was tombstoned. When its category changed and
        the source brought no history, the change is recorded as an observed transition.
        A `watermark` moves the source's cursor in the same transaction as the page.
        """
        if not items:
            return Upserted(0, 0, 0)
        now = now or now_utc()
        now_s = _iso(now)
        rows = [item_row(i) for i in items]
        by_key: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:
            try:
                row["hash"] = _row_hash(row)
            except UnicodeEncodeError:  # rare: only text with lone surrogates pays for this
                _make_storable(row)
                row["hash"] = _row_hash(row)
            by_key[(row["source"], row["id"])] = row  # a page may repeat an item: last wins
        new = changed = restored = 0
        with self.transaction():
            existing = self._existing(list(by_key))
            inserts, updates, seen, transitions = [], [], [], []
            for item in items:
                if by_key.get((item.source, item.id)) is None:
                    continue
                row = by_key.pop((item.source, item.id))
                old = existing.get((item.source, item.id))
                if old is None:
                    inserts.append({**row, "first_seen_at": now_s, "last_seen_at": now_s})
                    new += 1
                elif old["hash"] != row["hash"] or old["deleted_at"] is not None:
                    updates.append({**row, "last_seen_at": now_s})
                    if old["deleted_at"] is not None:
                        restored += 1
                    if old["hash"] != row["hash"]:
                        changed += 1
                    if item.transitions is None and old["category"] != row["category"]:
                        transitions.append(
                            (
                                item.source,
                                item.id,
                                _iso(item.updated_at or now),
                                old["status"],
                                row["status"],
                                old["category"],
                                row["category"],
                                1,
                            )
                        )
                else:
                    seen.append((now_s, item.source, item.id))
                for t in item.transitions or ():
                    transitions.append(
                        (
                            t.source,
                            t.item_id,
                            _iso(t.at),
                            t.from_status,
                            t.to_status,
                            t.from_category and t.from_category.value,
                            t.to_category.value,
                            0,
                        )
                    )
            cols = (*ITEM_COLUMNS, "hash", "first_seen_at", "last_seen_at")
            if inserts:
                self.conn.executemany(
                    f"INSERT INTO items ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [tuple(r[c] for c in cols) for r in inserts],
                )
            if updates:
                ucols = (*ITEM_COLUMNS[2:], "hash", "last_seen_at")
                self.conn.executemany(
                    f"UPDATE items SET {', '.join(f'{c} = ?' for c in ucols)}, deleted_at = NULL"
                    " WHERE source = ? AND id = ?",
                    [(*(r[c] for c in ucols), r["source"], r["id"]) for r in updates],
                )
            if seen:
                self.conn.executemany(
                    "UPDATE items SET last_seen_at = ? WHERE source = ? AND id = ?", seen
                )
            if transitions:
                sql = "INSERT OR IGNORE INTO transitions VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                try:
                    self.conn.executemany(sql, transitions)
                except UnicodeEncodeError:
                    self.conn.executemany(sql, [tuple(map(storable, t)) for t in transitions])
            if watermark is not None:
                self._write_cursor(items[0].source, watermark=watermark)
        return Upserted(new, changed, restored)

    def _existing(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], sqlite3.Row]:
        found: dict[tuple[str, str], sqlite3.Row] = {}
        by_source: dict[str, list[str]] = {}
        for source, id_ in keys:
            by_source.setdefault(source, []).append(id_)
        for source, ids in by_source.items():
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                sql = (
                    "SELECT source, id, hash, category, status, deleted_at FROM items"
                    f" WHERE source = ? AND id IN ({', '.join('?' * len(chunk))})"
                )
                for r in self.conn.execute(sql, (source, *chunk)):
                    found[(r["source"], r["id"])] = r
        return found

    def reconcile(
        self, source: str, live_ids: Iterable[str], *, now: datetime | None = None
    ) -> tuple[int, int]:
        """Tombstone items of `source` missing from `live_ids`, restore listed ones; return counts."""
        now_s = _iso(now or now_utc())
        with self.transaction():
            self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS _live (id TEXT PRIMARY KEY)")
            self.conn.execute("DELETE FROM _live")
            self.conn.executemany(
                "INSERT OR IGNORE INTO _live VALUES (?)", ((str(i),) for i in live_ids)
            )
            gone = self.conn.execute(
                "UPDATE items SET deleted_at = ? WHERE source = ? AND deleted_at IS NULL"
                " AND id NOT IN (SELECT id FROM _live)",
                (now_s, source),
            ).rowcount
            back = self.conn.execute(
                "UPDATE items SET deleted_at = NULL, last_seen_at = ? WHERE source = ?"
                " AND deleted_at IS NOT NULL AND id IN (SELECT id FROM _live)",
                (now_s, source),
            ).rowcount
            self.conn.execute("DELETE FROM _live")
        return gone, back

    def items(
        self, sources: Iterable[str], *, include_deleted: bool = False, with_raw: bool = False
    ) -> Iterator[WorkItem]:
        """Yield the stored items of `sources` (live only unless asked), ordered by source and key."""
        srcs = list(sources)
        if not srcs:
            return
        sql = f"SELECT * FROM items WHERE source IN ({', '.join('?' * len(srcs))})"
        if not include_deleted:
            sql += " AND deleted_at IS NULL"
        for row in self.conn.execute(sql + " ORDER BY source, key", srcs):
            yield row_item(row, with_raw=with_raw)

    def item_rows(self, sources: Iterable[str]) -> list[dict[str, Any]]:
        """Return every `items` row of `sources` as dicts (bookkeeping columns included)."""
        srcs = list(sources)
        sql = f"SELECT * FROM items WHERE source IN ({', '.join('?' * len(srcs))}) ORDER BY source, id"
        return [dict(r) for r in self.conn.execute(sql, srcs)]

    def item_groups(self, sources: Iterable[str]) -> list[ItemGroup]:
        """Group the live items of `sources` by kind, labels, category, estimate and flag.

        Snapshots count through these (a few hundred groups) rather than through one
        WorkItem per row, which at 100k items took seconds on every sync.
        """
        srcs = list(sources)
        if not srcs:
            return []
        cur = self.conn.execute(
            "SELECT kind, labels, category, estimate, blocked, count(*) FROM items"
            f" WHERE source IN ({', '.join('?' * len(srcs))}) AND deleted_at IS NULL"
            " GROUP BY kind, labels, category, estimate, blocked",
            srcs,
        )
        cur.row_factory = None
        return [
            ItemGroup(r[0], json.loads(r[1]), StatusCategory(r[2]), r[3], bool(r[4]), r[5])
            for r in cur
        ]

    def item_ids(self, source: str, *, include_deleted: bool = False) -> set[str]:
        sql = "SELECT id FROM items WHERE source = ?"
        if not include_deleted:
            sql += " AND deleted_at IS NULL"
        return {r[0] for r in self.conn.execute(sql, (source,))}

    # -- milestones and transitions -------------------------------------------------------

    def upsert_milestones(self, source: str, milestones: Iterable[Milestone]) -> int:
        """Replace the milestones of `source`: absent ones are tombstoned, never deleted."""
        rows = [
            tuple(
                map(
                    storable,
                    (m.source, m.id, m.name, _iso(m.start_date), _iso(m.due_date), m.state, m.url),
                )
            )
            for m in milestones
        ]
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO milestones (source, id, name, start_date, due_date, state, url)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, id) DO UPDATE SET"
                " name = excluded.name, start_date = excluded.start_date,"
                " due_date = excluded.due_date, state = excluded.state, url = excluded.url,"
                " deleted_at = NULL",
                rows,
            )
            ids = [r[1] for r in rows]
            self.conn.execute(
                "UPDATE milestones SET deleted_at = ? WHERE source = ? AND deleted_at IS NULL"
                f" AND id NOT IN ({', '.join('?' * len(ids))})",
                (_iso(now_utc()), source, *ids),
            )
        return len(rows)

    def milestones(self, sources: Iterable[str]) -> list[Milestone]:
        srcs = list(sources)
        sql = (
            f"SELECT * FROM milestones WHERE source IN ({', '.join('?' * len(srcs))})"
            " AND deleted_at IS NULL ORDER BY due_date IS NULL, due_date, name"
        )
        return [
            Milestone(
                source=r["source"],
                id=r["id"],
                name=r["name"],
                start_date=_d(r["start_date"]),
                due_date=_d(r["due_date"]),
                state=r["state"],
                url=r["url"],
            )
            for r in self.conn.execute(sql, srcs)
        ]

    def transitions(self, sources: Iterable[str]) -> list[Transition]:
        srcs = list(sources)
        sql = (
            f"SELECT * FROM transitions WHERE source IN ({', '.join('?' * len(srcs))}) ORDER BY at"
        )
        return [
            Transition.model_construct(
                source=r["source"],
                item_id=r["item_id"],
                at=_dt(r["at"]),
                from_status=r["from_status"],
                to_status=r["to_status"],
                from_category=r["from_category"] and StatusCategory(r["from_category"]),
                to_category=StatusCategory(r["to_category"]),
            )
            for r in self.conn.execute(sql, srcs)
        ]

    # -- cursors --------------------------------------------------------------------------

    def cursor(self, source: str) -> dict[str, Any]:
        """Return the source's watermark, last census time and connector state."""
        row = self.conn.execute("SELECT * FROM cursors WHERE source = ?", (source,)).fetchone()
        if row is None:
            return {"watermark": None, "last_census_at": None, "state": {}}
        return {
            "watermark": _dt(row["watermark"]),
            "last_census_at": _dt(row["last_census_at"]),
            "state": json.loads(row["state"]),
        }

    def set_cursor(
        self,
        source: str,
        *,
        watermark: datetime | None = None,
        last_census_at: datetime | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        """Move the given cursor fields (others keep their value); a watermark never goes back."""
        with self.transaction():
            self._write_cursor(
                source, watermark=watermark, last_census_at=last_census_at, state=state
            )

    def _write_cursor(
        self,
        source: str,
        *,
        watermark: datetime | None = None,
        last_census_at: datetime | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        cur = self.cursor(source)
        wm = cur["watermark"]
        if watermark is not None and (wm is None or watermark > wm):
            wm = watermark
        census = last_census_at or cur["last_census_at"]
        st = cur["state"] if state is None else state
        self.conn.execute(
            "INSERT INTO cursors (source, watermark, last_census_at, state) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (source) DO UPDATE SET watermark = excluded.watermark,"
            " last_census_at = excluded.last_census_at, state = excluded.state",
            (source, _iso(wm), _iso(census), json.dumps(st, sort_keys=True)),
        )

    # -- runs -----------------------------------------------------------------------------

    def start_run(self, source: str, mode: str) -> int:
        """Record a run as started; a run of this source still marked running was killed."""
        with self.transaction():
            self.conn.execute(
                "UPDATE sync_runs SET status = 'interrupted', ended_at = ?,"
                " error = 'the run ended without finishing (killed, or the machine stopped)'"
                " WHERE source = ? AND status = 'running'",
                (_iso(now_utc()), source),
            )
            cur = self.conn.execute(
                "INSERT INTO sync_runs (source, mode, started_at, status) VALUES (?, ?, ?, 'running')",
                (source, mode, _iso(now_utc())),
            )
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, **fields: Any) -> None:
        fields = {**fields, "ended_at": _iso(now_utc())}
        if "notes" in fields:
            fields["notes"] = json.dumps(fields["notes"], ensure_ascii=False)
        with self.transaction():
            self.conn.execute(
                f"UPDATE sync_runs SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                (*fields.values(), run_id),
            )

    def last_runs(self) -> dict[str, dict[str, Any]]:
        """Return the newest run per source, and the newest successful run's end as `last_ok_at`."""
        out: dict[str, dict[str, Any]] = {}
        for r in self.conn.execute(
            "SELECT * FROM sync_runs WHERE id IN (SELECT max(id) FROM sync_runs GROUP BY source)"
        ):
            out[r["source"]] = {**dict(r), "notes": json.loads(r["notes"]), "last_ok_at": None}
        for r in self.conn.execute(
            "SELECT source, max(ended_at) FROM sync_runs WHERE status = 'ok' GROUP BY source"
        ):
            if r[0] in out:
                out[r[0]]["last_ok_at"] = _dt(r[1])
        return out

    def last_synced_at(self, source: str) -> datetime | None:
        row = self.conn.execute(
            "SELECT max(ended_at) FROM sync_runs WHERE source = ? AND status = 'ok'", (source,)
        ).fetchone()
        return _dt(row[0])

    # -- snapshots ------------------------------------------------------------------------

    def write_snapshot(
        self, project: str, day: date, audience: str, counts: dict[str, Any]
    ) -> None:
        """Record (or replace) one day's counts for a project's burn-up history."""
        row = {
            "project": project,
            "day": day.isoformat(),
            "audience": audience,
            "taken_at": _iso(now_utc()),
            **counts,
        }
        cols = list(row)
        with self.transaction():
            self.conn.execute(
                f"INSERT OR REPLACE INTO snapshots ({', '.join(cols)})"
                f" VALUES ({', '.join('?' * len(cols))})",
                list(row.values()),
            )

    def snapshots(self, project: str, audience: str) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.conn.execute(
                "SELECT * FROM snapshots WHERE project = ? AND audience = ? ORDER BY day",
                (project, audience),
            )
        ]

    # -- publications and feedback --------------------------------------------------------

    def publication(self, project: str, target: str, period: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT * FROM publications WHERE project = ? AND target = ? AND period = ?",
            (project, target, period),
        ).fetchone()
        return None if row is None else {**dict(row), "published_at": _dt(row["published_at"])}

    def publications(self, project: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM publications", ()
        if project is not None:
            sql, args = sql + " WHERE project = ?", (project,)
        return [
            {**dict(r), "published_at": _dt(r["published_at"])}
            for r in self.conn.execute(sql + " ORDER BY published_at", args)
        ]

    def record_publication(
        self,
        project: str,
        target: str,
        period: str,
        remote_id: str,
        content_hash: str,
        url: str | None,
        at: datetime | None = None,
    ) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT OR REPLACE INTO publications VALUES (?, ?, ?, ?, ?, ?, ?)",
                (project, target, period, remote_id, content_hash, url, _iso(at or now_utc())),
            )

    def add_feedback(self, project: str, day: date, score: int, comment: str | None) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT INTO feedback (project, day, score, comment, recorded_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (project, day.isoformat(), score, comment, _iso(now_utc())),
            )

    def feedback(self, project: str) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.conn.execute(
                "SELECT project, day, score, comment FROM feedback WHERE project = ? ORDER BY day, id",
                (project,),
            )
        ]
