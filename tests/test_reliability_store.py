"""Reliability of the store file: damaged or foreign files, read-only folders, a full disk.

Every case must end with one clear `error:` line (no traceback) and must not overwrite the
file: a damaged or foreign file keeps its bytes, and a store that could not be written
reopens with the rows the last good run left.
"""

from __future__ import annotations

import ctypes
import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli import cli
from config.loader import load_config
from sync import scope
from sync.engine import write_snapshots
from sync.store import Store
from tests.conftest import make_item
from tests.fakes.jira import FakeJira
from tests.test_reliability_support import (
    JIRA_TOKEN,
    change_some,
    file_bytes,
    jira_connector,
    jira_issues,
    running,
    store_state,
    sync,
)

TOKEN_ENV = "RELIABILITY_JIRA_TOKEN"


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(TOKEN_ENV, JIRA_TOKEN)
    monkeypatch.delenv("PMSYNC_DB", raising=False)
    yield


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with running(FakeJira(jira_issues(150), token=JIRA_TOKEN)) as fake:
        yield fake


def write_config(folder: Path, jira: FakeJira, store: Path) -> Path:
    config = folder / "pmsync.toml"
    config.write_text(
        f'[store]\npath = "{store}"\n\n'
        f'[sources.acme]\nkind = "jira"\nurl = "{jira.url}"\nemail = "{jira.email}"\n'
        f'token = "${{{TOKEN_ENV}}}"\njql = "project = ACME"\n\n'
        '[projects.acme]\nname = "ACME"\nsources = ["acme"]\n',
        encoding="utf-8",
    )
    return config


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def assert_one_error_line(result: Result, *needles: str, code: int = 1) -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output + result.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def synced_store(folder: Path, jira: FakeJira) -> Path:
    """A store file the fake was fully synced into, closed (its WAL checkpointed)."""
    db = folder / "pmsync.db"
    store = Store.open(db)
    assert sync(store, jira_connector(jira), full=True).ok
    store.close()
    return db


# -- damaged and foreign files ------------------------------------------------------------


def _garbage(path: Path, _: FakeJira) -> None:
    path.write_bytes(random.Random(1).randbytes(64 * 1024))


def _damaged_pages(path: Path, jira: FakeJira) -> None:
    synced_store(path.parent, jira)
    data = bytearray(path.read_bytes())
    rng = random.Random(2)
    for page in range(1, len(data) // 4096):  # every page but the schema page
        data[page * 4096 : page * 4096 + 256] = rng.randbytes(256)
    path.write_bytes(bytes(data))


def _truncated(path: Path, jira: FakeJira) -> None:
    synced_store(path.parent, jira)
    path.write_bytes(path.read_bytes()[:3000])


def _text(path: Path, _: FakeJira) -> None:
    path.write_text('[store]\npath = "pmsync.db"\n', encoding="utf-8")


def _foreign(path: Path, _: FakeJira) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
    conn.execute("INSERT INTO invoices (amount) VALUES (12.5)")
    conn.commit()
    conn.close()


def _newer(path: Path, jira: FakeJira) -> None:
    synced_store(path.parent, jira)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', '2030-01-01')")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (_garbage, ["not a usable pmsync store", "file is not a database"]),
        (_damaged_pages, ["malformed", "the file is damaged"]),
        (_truncated, ["pmsync.db"]),
        (_text, ["not a usable pmsync store"]),
        (_foreign, ["not a usable pmsync store", "no pmsync migrations table"]),
        (_newer, ["not a usable pmsync store", "newer pmsync"]),
    ],
    ids=["garbage", "damaged-pages", "truncated", "a-text-file", "foreign-sqlite", "newer-pmsync"],
)
def test_damaged_or_foreign_file_fails_in_one_line_and_keeps_its_bytes(
    tmp_path: Path, jira: FakeJira, make: Any, needles: list[str]
) -> None:
    db = tmp_path / "pmsync.db"
    make(db, jira)
    before = db.read_bytes()
    config = write_config(tmp_path, jira, db)
    report = tmp_path / "r.md"
    for args in (["sync"], ["status"], ["report", "acme", "-o", str(report)]):
        result = invoke(config, *args)
        assert_one_error_line(result, *needles)
        assert db.read_bytes() == before, args
    assert not report.exists()


def test_open_refuses_before_writing_anything(tmp_path: Path, jira: FakeJira) -> None:
    db = tmp_path / "other.db"
    _foreign(db, jira)
    before = file_bytes(db)
    with pytest.raises(Exception, match="no pmsync migrations table"):
        Store.open(db)
    assert file_bytes(db) == before
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("invoices",)]
    conn.close()


# -- a full disk --------------------------------------------------------------------------


def _fill(store: Store) -> None:
    """Leave the store one page of room: the next sizeable write fails with SQLITE_FULL."""
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count = {pages + 1}")


def test_full_disk_fails_the_run_in_one_line_and_keeps_the_rows(
    tmp_path: Path, jira: FakeJira
) -> None:
    db = synced_store(tmp_path, jira)
    store = Store.open(db)
    last_good = store_state(store, "acme")
    change_some(jira, updated=100, added=40)
    _fill(store)
    result = sync(store, jira_connector(jira))
    store.close()
    assert result.status == "failed"
    assert result.error is not None and "\n" not in result.error
    assert result.error.startswith(f"cannot use the store {db} (database or disk is full)")
    assert "free some disk space" in result.error
    store = Store.open(db)
    assert store_state(store, "acme") == last_good
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert sync(store, jira_connector(jira)).ok  # with room again, it catches up
    store.close()


def test_full_disk_through_the_cli(
    tmp_path: Path, jira: FakeJira, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = synced_store(tmp_path, jira)
    config = write_config(tmp_path, jira, db)
    store = Store.open(db)
    last_good = store_state(store, "acme")
    store.close()
    change_some(jira, updated=100, added=40)
    real_open = Store.open.__func__  # type: ignore[attr-defined]

    def open_full(cls: type[Store], path: Any, **kw: Any) -> Store:
        opened = real_open(cls, path, **kw)
        _fill(opened)
        return opened

    monkeypatch.setattr(Store, "open", classmethod(open_full))
    result = invoke(config, "sync")
    assert_one_error_line(result, "database or disk is full", "free some disk space")
    monkeypatch.undo()
    store = Store.open(db)
    assert store_state(store, "acme") == last_good
    store.close()


# -- read-only folders and files -------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
PR_CAPBSET_DROP = 24
# CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER: without them root obeys file modes.
DAC_CAPS = (1, 2, 3)


def _drop_dac_caps() -> None:
    for cap in DAC_CAPS:
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _can_drop_caps() -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", "pass"], preexec_fn=_drop_dac_caps, capture_output=True
    )
    return probe.returncode == 0


def run_as_plain_user(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a child that file modes apply to, even when the tests run as root."""
    preexec = None
    if os.geteuid() == 0:
        if not _can_drop_caps():
            pytest.skip("running as root without the right to drop capabilities")
        preexec = _drop_dac_caps
    return subprocess.run(
        [sys.executable, "-c", "from cli import main; main()", "--config", str(config), *args],
        cwd=config.parent,
        env={**os.environ, TOKEN_ENV: JIRA_TOKEN},
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=preexec,
    )


def assert_one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "store"
    folder.mkdir()
    yield folder
    os.chmod(folder, 0o700)


def test_read_only_folder_without_a_store(read_only: Path, jira: FakeJira) -> None:
    config = write_config(read_only.parent, jira, read_only / "pmsync.db")
    os.chmod(read_only, 0o500)
    proc = run_as_plain_user(config, "sync")
    assert_one_line(proc, "cannot create the lock file", "Permission denied", "writable")
    assert os.listdir(read_only) == []


@pytest.mark.parametrize("command", ["sync", "status"])
def test_read_only_folder_with_a_store(read_only: Path, jira: FakeJira, command: str) -> None:
    db = synced_store(read_only, jira)
    config = write_config(read_only.parent, jira, db)
    assert invoke(config, "sync").exit_code == 0  # leaves its lock file, as every run does
    change_some(jira)
    before = file_bytes(db)
    os.chmod(read_only, 0o500)
    proc = run_as_plain_user(config, command)
    assert_one_line(proc, f"cannot use the store {db}", "writable")
    assert file_bytes(db) == before


def test_read_only_store_file(tmp_path: Path, jira: FakeJira) -> None:
    db = synced_store(tmp_path, jira)
    config = write_config(tmp_path, jira, db)
    change_some(jira)
    store = Store.open(db)
    last_good = store_state(store, "acme")
    store.close()
    os.chmod(db, 0o400)
    try:
        proc = run_as_plain_user(config, "sync")
    finally:
        os.chmod(db, 0o600)
    assert_one_line(proc, "readonly database", "writable")
    store = Store.open(db)
    assert store_state(store, "acme") == last_good
    store.close()


# -- snapshots count through grouped rows ----------------------------------------------------


def test_snapshot_counts_from_groups_equal_counting_every_item(tmp_path: Path) -> None:
    """`Store.item_groups` (what write_snapshots counts) gives the same numbers as counting
    every live WorkItem, for both audiences, with labels, epics, estimates and tombstones."""
    rng = random.Random(4)
    store = Store.memory()
    items = [
        make_item(
            n,
            kind=rng.choice(("story", "task", "Epic", "bug")),
            labels=rng.sample(["internal", "INTERNAL", "ux", "change-request"], rng.randrange(3)),
            category=rng.choice(list(scope.StatusCategory)),
            estimate=rng.choice((None, 0.5, 1.0, 3.0, 8.0)),
            blocked=rng.random() < 0.1,
        )
        for n in range(600)
    ]
    store.upsert_items(items)
    store.reconcile("src", [i.id for i in items[:550]])
    config = tmp_path / "pmsync.toml"
    config.write_text(
        '[sources.src]\nkind = "csv"\npath = "x.csv"\n\n'
        '[projects.p]\nname = "P"\nsources = ["src"]\ninternal_labels = ["internal"]\n',
        encoding="utf-8",
    )
    project = load_config(config).projects["p"]
    live = list(store.items(["src"]))
    groups = store.item_groups(["src"])
    assert sum(g.count for g in groups) == len(live) == 550
    for audience in ("client", "internal"):
        expected = scope.counts(i for i in live if scope.in_scope(i, project, audience))
        weighted = [
            g for g in groups if scope.in_scope(g, project, audience) for _ in range(g.count)
        ]
        assert scope.counts(weighted) == expected
    # And through the engine: the snapshots it writes have exactly those numbers.
    write_snapshots(store, load_config(config), ["p"], datetime(2026, 11, 20, 12, tzinfo=UTC))
    for audience in ("client", "internal"):
        (snap,) = store.snapshots("p", audience)
        expected = scope.counts(i for i in live if scope.in_scope(i, project, audience))
        assert {k: snap[k] for k in expected} == expected
