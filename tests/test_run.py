"""`pmsync run`: sync, then publish what is due, once; the CLI; two runs at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import connectors
from cli import cli
from sync.engine import run_sync
from sync.errors import SourceError
from sync.publish import error_lines, run, summary_lines
from sync.store import Store
from tests.conftest import make_item
from tests.test_publish import (
    ITEMS,
    NOW,
    PERIOD,
    TOKEN,
    MemoConnector,
    Remote,
    install_memo,
    memo_config,
)


@pytest.fixture
def memo(monkeypatch: pytest.MonkeyPatch) -> Iterator[Remote]:
    yield install_memo(monkeypatch)
    connectors.connector_class.cache_clear()


def pubs(store: Store) -> list[tuple[str, str, str]]:
    return [(p["target"], p["period"], p["remote_id"]) for p in store.publications("acme")]


# -- run() with a frozen clock ----------------------------------------------------------------


def test_two_runs_in_a_row_publish_once(tmp_path: Path, memo: Remote) -> None:
    config = memo_config(
        tmp_path,
        [{"to": "board", "thread": "s"}, {"to": "file", "directory": "site", "formats": ["md"]}],
    )
    store = Store.memory()
    first = run(config, store, now=NOW)
    assert first.ok
    assert [(r.source, r.status, r.new) for r in first.sync] == [("board", "ok", 5)]
    assert [(p.target, p.period, p.status) for p in first.publications] == [
        ("board", PERIOD, "published"),
        ("file", PERIOD, "published"),
    ]
    md = tmp_path / "site" / "acme-2026-11-02_2026-11-08.md"
    written = md.stat().st_mtime_ns
    second = run(config, store, now=NOW + timedelta(minutes=10))
    assert second.ok and second.publications == []
    assert [r.status for r in second.sync] == ["ok"]
    assert (memo.created, memo.edited) == (1, 0)
    assert md.stat().st_mtime_ns == written
    assert pubs(store) == [("board", PERIOD, "c1"), ("file", PERIOD, str(md.resolve()))]
    assert summary_lines(second) == [
        f"sync board: ok (0 new, 0 changed, 0 tombstoned, {second.sync[0].seconds:.1f}s)",
        "publish: nothing due",
    ]


def test_a_failed_publish_is_retried_by_the_next_run_and_succeeds_once(
    tmp_path: Path, memo: Remote
) -> None:
    config = memo_config(
        tmp_path,
        [{"to": "board", "thread": "s"}, {"to": "file", "directory": "site", "formats": ["json"]}],
    )
    store = Store.memory()
    memo.fail = 1
    first = run(config, store, now=NOW)
    assert not first.ok
    assert [(p.target, p.status) for p in first.publications] == [
        ("board", "failed"),
        ("file", "published"),
    ]
    assert error_lines(first) == [
        "acme → board: board: the tool answered 503 for token ***; try later"
    ]
    second = run(config, store, now=NOW + timedelta(minutes=5))
    assert second.ok
    assert [(p.target, p.status) for p in second.publications] == [("board", "published")]
    third = run(config, store, now=NOW + timedelta(minutes=10))
    assert third.publications == []
    assert (memo.created, memo.calls) == (1, ["s", "s"])


def test_a_changed_report_for_the_same_period_updates_in_place(
    tmp_path: Path, memo: Remote
) -> None:
    # Two Monday slots (09:00 and 10:00 Berlin) publish the same period, Nov 2..8.
    config = memo_config(tmp_path, [{"to": "board", "thread": "s"}], schedule="0 9,10 * * MON")
    store = Store.memory()
    first = run(config, store, now=datetime(2026, 11, 9, 8, 5, tzinfo=UTC))
    assert [(p.period, p.status, p.remote_id) for p in first.publications] == [
        (PERIOD, "published", "c1")
    ]
    assert "2/4 done" in memo.posts["c1"]
    at = datetime(2026, 11, 6, 9, 0, tzinfo=UTC)
    MemoConnector.items = [
        *ITEMS[:3],
        make_item(4, category="done", status="Done", completed_at=at, updated_at=at),
        ITEMS[4],
    ]
    second = run(config, store, now=datetime(2026, 11, 9, 9, 5, tzinfo=UTC))
    assert [(p.period, p.status, p.remote_id) for p in second.publications] == [
        (PERIOD, "updated", "c1")
    ]
    assert (memo.created, memo.edited) == (1, 1)
    assert "3/4 done" in memo.posts["c1"]
    # Same data at the next slot of the period: confirmed, nothing sent.
    third = run(config, store, now=datetime(2026, 11, 16, 7, 30, tzinfo=UTC))
    assert [p.status for p in third.publications] == []


def test_weekly_run_across_dst_publishes_once_per_week(tmp_path: Path, memo: Remote) -> None:
    config = memo_config(tmp_path, [{"to": "board", "thread": "s"}])
    store = Store.memory()
    last_week = "2026-10-05..2026-10-11"
    store.record_publication(
        "acme",
        "board",
        last_week,
        "c0",
        "sha256:x",
        None,
        at=datetime(2026, 10, 12, 7, 1, tzinfo=UTC),
    )
    memo.posts["c0"] = "earlier"
    now = datetime(2026, 10, 12, 9, 0, tzinfo=UTC)
    published = []
    while now < datetime(2026, 11, 4, tzinfo=UTC):
        outcome = run(config, store, now=now)
        assert outcome.ok
        published += [(now, p.period) for p in outcome.publications if p.status == "published"]
        now += timedelta(hours=3)
    assert published == [
        (datetime(2026, 10, 19, 9, 0, tzinfo=UTC), "2026-10-12..2026-10-18"),  # 07:00 UTC slot
        (datetime(2026, 10, 26, 9, 0, tzinfo=UTC), "2026-10-19..2026-10-25"),  # 08:00 UTC slot
        (datetime(2026, 11, 2, 9, 0, tzinfo=UTC), "2026-10-26..2026-11-01"),
    ]
    assert memo.created == 3


def test_a_due_project_whose_source_failed_waits_for_the_next_run(
    tmp_path: Path, memo: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = memo_config(tmp_path, [{"to": "board", "thread": "s"}])
    store = Store.memory()

    def down(self: Any, since: Any) -> Iterator[Any]:
        raise SourceError("board: 502 from the tool; try again later")

    monkeypatch.setattr(MemoConnector, "fetch_items", down)
    first = run(config, store, now=NOW)
    assert not first.ok
    assert [(p.target, p.status) for p in first.publications] == [("board", "held")]
    assert error_lines(first) == [
        "board: board: 502 from the tool; try again later",
        "acme → board: source 'board' failed to sync; the report waits for the next run",
    ]
    assert memo.calls == [] and store.publications() == []
    monkeypatch.undo()
    install_memo(monkeypatch)
    second = run(config, store, now=NOW + timedelta(minutes=10))
    assert second.ok and [p.status for p in second.publications] == ["published"]


def test_no_sync_publishes_from_the_store_alone(tmp_path: Path, memo: Remote) -> None:
    config = memo_config(tmp_path, [{"to": "board", "thread": "s"}])
    store = Store.memory()
    never = run(config, store, sync=False, now=NOW)
    assert [(p.status, p.error) for p in never.publications] == [
        ("failed", "project 'acme' has no synced data yet (board); run `pmsync sync` first")
    ]
    run_sync(config, store, now=NOW - timedelta(days=1))
    MemoConnector.items = []  # a sync now would tombstone everything
    outcome = run(config, store, sync=False, now=NOW)
    assert outcome.sync == []
    assert [p.status for p in outcome.publications] == ["published"]
    assert "2/4 done" in memo.posts["c1"]
    assert outcome.as_dict()["ok"] is True


def test_a_schedule_that_never_fires_fails_its_project_only(tmp_path: Path, memo: Remote) -> None:
    config = memo_config(tmp_path, [{"to": "board", "thread": "s"}], schedule="0 0 30 2 *")
    outcome = run(config, Store.memory(), now=NOW)
    assert [r.status for r in outcome.sync] == ["ok"]
    assert [(p.target, p.status, p.error) for p in outcome.publications] == [
        (
            "board",
            "failed",
            "acme: schedule '0 0 30 2 *' never fires (no such date); fix the cron expression",
        )
    ]
    assert not outcome.ok


def test_projects_without_a_schedule_are_never_due(tmp_path: Path, memo: Remote) -> None:
    config = memo_config(tmp_path, [{"to": "board", "thread": "s"}], schedule=None)
    outcome = run(config, Store.memory(), now=NOW)
    assert outcome.ok and outcome.publications == []


# -- the CLI ----------------------------------------------------------------------------------

CONFIG = """\
[store]
path = "pmsync.db"

[sources.board]
kind = "memo"
token = "${MEMO_TOKEN}"

[projects.acme]
name = "ACME Relaunch"
client = "ACME Corp"
sources = ["board"]
schedule = "0 0 * * *"
timezone = "UTC"

[[projects.acme.publish]]
to = "board"
thread = "status"

[[projects.acme.publish]]
to = "file"
directory = "site"
formats = ["md"]
"""


@pytest.fixture
def workdir(tmp_path: Path, memo: Remote) -> Iterator[Path]:
    (tmp_path / "pmsync.toml").write_text(CONFIG)
    yield tmp_path


def invoke(workdir: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(workdir / "pmsync.toml"), *args])
    return result.exit_code, result.stdout, result.stderr


def current_period() -> str:
    # "0 0 * * *" in UTC: today's midnight slot publishes yesterday.
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    return f"{yesterday}..{yesterday}"


def test_cli_run_quiet_is_silent_and_a_second_run_publishes_nothing(
    workdir: Path, memo: Remote
) -> None:
    assert invoke(workdir, "run", "--quiet") == (0, "", "")
    assert memo.created == 1
    period = current_period()
    assert (workdir / "site" / f"acme-{period.replace('..', '_')}.md").is_file()
    code, out, err = invoke(workdir, "run")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("sync board: ok (0 new, 0 changed, 0 tombstoned, ")
    assert lines[1:] == ["publish: nothing due"]
    assert memo.created == 1


def test_cli_run_reports_failures_in_json_exits_1_and_the_next_run_recovers(
    workdir: Path, memo: Remote
) -> None:
    memo.fail = 1
    code, out, err = invoke(workdir, "run", "--json")
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False
    assert [(p["target"], p["status"]) for p in data["publications"]] == [
        ("board", "failed"),
        ("file", "published"),
    ]
    assert data["sync"][0]["source"] == "board" and data["sync"][0]["status"] == "ok"
    assert err.splitlines()[-1] == (
        "error: acme → board: board: the tool answered 503 for token ***; try later"
    )
    assert TOKEN not in out + err
    assert invoke(workdir, "run", "--quiet") == (0, "", "")
    assert (memo.created, memo.calls) == (1, ["status", "status"])


def test_cli_publish_dry_run_then_publish_then_unchanged(workdir: Path, memo: Remote) -> None:
    period = current_period()
    code, out, err = invoke(workdir, "sync")
    assert code == 0
    code, out, err = invoke(workdir, "publish", "acme", "--to", "board", "--dry-run")
    assert (code, err) == (0, "")
    head, body = out.split("\n", 1)
    assert head == f"=== board ({period}): would send ==="
    assert body.startswith(f"[status] ACME Relaunch {period} (client, en): 2/4 done; generated ")
    assert memo.calls == [] and not (workdir / "site").exists()
    assert invoke(workdir, "publish", "acme", "--to", "board") == (
        0,
        f"board ({period}): published memo://status/c1\n",
        "",
    )
    assert invoke(workdir, "publish", "acme") == (
        0,
        f"board ({period}): unchanged memo://status/c1\n"
        f"file ({period}): published "
        f"{(workdir / 'site' / ('acme-' + period.replace('..', '_') + '.md')).resolve().as_uri()}\n",
        "",
    )
    code, out, _ = invoke(workdir, "publish", "acme", "--dry-run", "--json")
    assert [(r["target"], r["status"], r["payload"]) for r in json.loads(out)] == [
        ("board", "unchanged", None),
        ("file", "unchanged", None),
    ]
    assert memo.created == 1


def test_cli_publish_explicit_period_and_usage_errors(workdir: Path, memo: Remote) -> None:
    invoke(workdir, "sync")
    code, out, _ = invoke(workdir, "publish", "acme", "--to", "board", "--period", PERIOD)
    assert (code, out) == (0, f"board ({PERIOD}): published memo://status/c1\n")
    assert invoke(workdir, "publish", "acme", "--to", "fax") == (
        2,
        "",
        "error: project 'acme' has no publish target 'fax' (targets: board, file)\n",
    )
    assert invoke(workdir, "publish", "nope")[0::2] == (
        2,
        "error: unknown project 'nope' (configured: acme)\n",
    )
    assert invoke(workdir, "publish", "acme", "--period", "soon")[0] == 2


def test_cli_status_shows_the_next_due_time(workdir: Path, memo: Remote) -> None:
    invoke(workdir, "sync")
    code, out, _ = invoke(workdir, "status", "--json")
    assert code == 0
    [project] = json.loads(out)["projects"]
    today = datetime.now(UTC).date()
    assert project["due"] == ["board", "file"]
    assert project["next_due_at"] == f"{today.isoformat()}T00:00:00+00:00"
    invoke(workdir, "run", "--no-sync", "--quiet")
    code, out, _ = invoke(workdir, "status", "--json")
    [project] = json.loads(out)["projects"]
    tomorrow = today + timedelta(days=1)
    assert project["due"] == []
    assert project["next_due_at"] == f"{tomorrow.isoformat()}T00:00:00+00:00"
    assert project["next_due_local"] == f"{tomorrow.isoformat()} 00:00 UTC"
    code, out, _ = invoke(workdir, "status")
    assert f"acme     0 0 * * *  -        {tomorrow.isoformat()} 00:00 UTC" in out


def test_cli_json_logs_one_object_per_line_without_secrets(workdir: Path, memo: Remote) -> None:
    memo.fail = 1
    code, _, err = invoke(workdir, "--log-format", "json", "run", "--quiet")
    assert code == 1
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    events = {r.get("event"): r for r in records if r.get("event")}
    assert events["run"]["ok"] is False and events["run"]["publications"] == {
        "failed": 1,
        "published": 1,
    }
    failed = [r for r in records if r.get("event") == "publication" and r["status"] == "failed"]
    assert failed[0]["target"] == "board" and failed[0]["level"] == "error"
    assert isinstance(failed[0]["seconds"], float)
    assert any(r["logger"] == "pmsync.sync" and "board" in r["msg"] for r in records)
    assert TOKEN not in err


# -- two runs at once -------------------------------------------------------------------------


def test_cli_run_meets_a_held_lock_with_75(workdir: Path, memo: Remote) -> None:
    from sync.engine import run_lock

    db = workdir / "pmsync.db"
    with run_lock(db):
        assert invoke(workdir, "run", "--quiet") == (75, "", "")
        assert invoke(workdir, "run") == (
            75,
            "",
            f"error: another pmsync run is using {db} (lock file {db}.lock); try again when"
            " it ends\n",
        )
    assert memo.calls == []
    assert invoke(workdir, "run", "--quiet") == (0, "", "")


def test_two_runs_started_together_one_works_the_other_exits_75(tmp_path: Path) -> None:
    # The CSV export is a FIFO: whichever run takes the lock blocks reading it until the test
    # writes it, so the other one meets a held lock, deterministically.
    fifo = tmp_path / "export.csv"
    os.mkfifo(fifo)
    (tmp_path / "pmsync.toml").write_text(
        '[sources.export]\nkind = "csv"\npath = "export.csv"\n\n'
        '[projects.acme]\nname = "ACME"\nsources = ["export"]\nschedule = "0 0 * * *"\n\n'
        '[[projects.acme.publish]]\nto = "file"\ndirectory = "site"\nformats = ["json"]\n'
    )
    cmd = [sys.executable, "-c", "import cli; cli.main()", "--config", "pmsync.toml", "run"]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    try:
        while all(p.poll() is None for p in procs):
            assert time.monotonic() - started < 60, "neither run finished"
            time.sleep(0.05)
        loser = next(p for p in procs if p.poll() is not None)
        winner = next(p for p in procs if p is not loser)
        out, err = loser.communicate()
        assert loser.returncode == 75
        assert out == ""
        assert err == (
            f"error: another pmsync run is using {tmp_path / 'pmsync.db'} (lock file"
            f" {tmp_path / 'pmsync.db'}.lock); try again when it ends\n"
        )
        assert winner.poll() is None  # still working (reading the export)
        with fifo.open("w") as fh:
            fh.write("key,title,status\nA-1,First,Done\nA-2,Second,Open\n")
        out, err = winner.communicate(timeout=60)
        assert winner.returncode == 0, err
        assert out.splitlines()[0].startswith("sync export: ok (2 new, 0 changed, 0 tombstoned, ")
        assert len(list((tmp_path / "site").glob("acme-*.json"))) == 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    # The lock is released: the next run goes ahead (and has nothing due).
    fifo.unlink()
    fifo.write_text("key,title,status\nA-1,First,Done\nA-2,Second,Open\n")
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[-1] == "publish: nothing due"
