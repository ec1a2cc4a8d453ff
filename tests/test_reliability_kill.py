"""Reliability across processes: a sync killed with SIGKILL, and two syncs at once.

A real `pmsync sync` runs in a subprocess against the fake Jira (in this process, with every
search page slowed down); it is killed at several points chosen from a seeded random
source. The next sync must leave the store exactly as an uninterrupted run does.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.loader import load_config
from sync.engine import run_sync
from sync.errors import EXIT_LOCKED
from sync.store import Store
from tests.fakes.jira import FakeJira
from tests.test_reliability_support import (
    JIRA_TOKEN,
    change_some,
    jira_issues,
    running,
    store_state,
)

TOKEN_ENV = "RELIABILITY_JIRA_TOKEN"
ISSUES = 1000  # ten search pages
# The CLI in a child process; issues are handed to the engine in batches of 100 (not 1,000)
# so that a run commits a page after each search page, and a kill lands between commits.
DRIVER = "import connectors.jira as j; j.BULK_ISSUES = 100; from cli import main; main()"
PAGE_DELAY = 0.15


def write_config(tmp: Path, jira: FakeJira) -> Path:
    config = tmp / "pmsync.toml"
    config.write_text(
        '[store]\npath = "pmsync.db"\n\n'
        f'[sources.acme]\nkind = "jira"\nurl = "{jira.url}"\nemail = "{jira.email}"\n'
        f'token = "${{{TOKEN_ENV}}}"\njql = "project = ACME"\n\n'
        '[projects.acme]\nname = "ACME"\nsources = ["acme"]\n',
        encoding="utf-8",
    )
    return config


def start_sync(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, TOKEN_ENV: JIRA_TOKEN}
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, "--config", str(config), "sync", *args],
        cwd=config.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def sync_in_process(config: Path) -> None:
    os.environ[TOKEN_ENV] = JIRA_TOKEN
    cfg = load_config(config)
    store = Store.open(cfg.store.path)
    try:
        (result,) = run_sync(cfg, store)
        assert result.ok, result.error
    finally:
        store.close()


def state_of(db: Path) -> dict[str, Any]:
    store = Store.open(db)
    try:
        return store_state(store, "acme")
    finally:
        store.close()


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture(autouse=True)
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, JIRA_TOKEN)


@pytest.fixture(scope="module")
def jira() -> Iterator[FakeJira]:
    with running(FakeJira(jira_issues(ISSUES), token=JIRA_TOKEN)) as fake:
        yield fake


@pytest.fixture(scope="module")
def reference(jira: FakeJira, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The store an uninterrupted full sync leaves."""
    tmp = tmp_path_factory.mktemp("reference")
    config = write_config(tmp, jira)
    sync_in_process(config)
    return state_of(tmp / "pmsync.db")


def kill_after(jira: FakeJira, proc: subprocess.Popen[str], pages: int, delay: float) -> None:
    """SIGKILL `proc` `delay` seconds after the fake starts serving its `pages`-th page."""

    def arm() -> None:
        timer = threading.Timer(delay, _kill, (proc,))
        timer.daemon = True
        timer.start()

    jira.at_search(pages, arm)


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)


@pytest.mark.parametrize("pages", [1, 3, 7])
def test_sync_killed_at_random_points_resumes_to_the_same_store(
    jira: FakeJira, reference: dict[str, Any], tmp_path: Path, pages: int
) -> None:
    rng = random.Random(pages)
    delay = rng.uniform(0, 2 * PAGE_DELAY)
    config = write_config(tmp_path, jira)
    jira.faults.add("stall", path="search/jql", seconds=PAGE_DELAY, times=10**6)
    try:
        proc = start_sync(config)
        kill_after(jira, proc, pages, delay)
        proc.wait(timeout=60)
    finally:
        jira.faults.clear()
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr.read())
    db = tmp_path / "pmsync.db"
    assert integrity(db) == "ok"
    killed = state_of(db)
    # The kill left at most the pages it had committed, each exactly as the reference has it.
    assert len(killed["items"]) < ISSUES
    ref_rows = {r["id"]: r for r in reference["items"]}
    assert all(ref_rows[r["id"]] == r for r in killed["items"])
    sync_in_process(config)  # the lock file a killed run leaves behind does not block it
    assert state_of(db) == reference


def test_incremental_sync_killed_midway_catches_up(tmp_path: Path) -> None:
    with running(FakeJira(jira_issues(400), token=JIRA_TOKEN)) as jira:
        ref_dir, dir_ = tmp_path / "ref", tmp_path / "run"
        ref_dir.mkdir()
        dir_.mkdir()
        ref_config, config = write_config(ref_dir, jira), write_config(dir_, jira)
        sync_in_process(ref_config)
        sync_in_process(config)
        change_some(jira, updated=300, added=20)
        sync_in_process(ref_config)
        jira.faults.add("stall", path="search/jql", seconds=PAGE_DELAY, times=10**6)
        try:
            proc = start_sync(config)
            kill_after(jira, proc, 2, 0.05)
            proc.wait(timeout=60)
        finally:
            jira.faults.clear()
        assert proc.returncode == -signal.SIGKILL
        assert integrity(dir_ / "pmsync.db") == "ok"
        sync_in_process(config)
        assert state_of(dir_ / "pmsync.db") == state_of(ref_dir / "pmsync.db")


class Gate:
    """Hold the fake's n-th search page (counted from now) until released."""

    def __init__(self, jira: FakeJira, page: int) -> None:
        self.reached, self.open = threading.Event(), threading.Event()

        def hold() -> None:
            self.reached.set()
            self.open.wait(60)

        jira.at_search(page, hold)

    def wait(self) -> None:
        assert self.reached.wait(60), "the sync never reached the gate"


def test_second_sync_while_one_runs_exits_75_and_nothing_is_corrupted(
    jira: FakeJira, reference: dict[str, Any], tmp_path: Path
) -> None:
    config = write_config(tmp_path, jira)
    gate = Gate(jira, 3)
    try:
        first = start_sync(config)
        gate.wait()  # the first run holds the lock and is reading page 3
        second = start_sync(config)
        _, err = second.communicate(timeout=60)
        assert first.poll() is None
    finally:
        gate.open.set()
    _, first_err = first.communicate(timeout=60)
    assert second.returncode == EXIT_LOCKED
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: another pmsync run is using"), err
    assert first.returncode == 0, first_err
    db = tmp_path / "pmsync.db"
    assert integrity(db) == "ok"
    assert state_of(db) == reference


def test_reading_the_store_while_a_sync_writes_it(
    jira: FakeJira, reference: dict[str, Any], tmp_path: Path
) -> None:
    """`pmsync status` (a reader) works during a sync and sees only committed pages."""
    config = write_config(tmp_path, jira)
    gate = Gate(jira, 5)
    try:
        proc = start_sync(config)
        gate.wait()  # pages 1-4 are committed; page 5 is on its way
        env = {**os.environ, TOKEN_ENV: JIRA_TOKEN}
        status = subprocess.run(
            [sys.executable, "-c", DRIVER, "--config", str(config), "status", "--json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.poll() is None
    finally:
        gate.open.set()
    proc.communicate(timeout=60)
    assert status.returncode == 0, status.stderr
    (source,) = json.loads(status.stdout)["sources"]
    assert source["items"] == 400
    assert proc.returncode == 0
    assert state_of(tmp_path / "pmsync.db") == reference
