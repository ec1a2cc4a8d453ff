"""Shared helpers of the reliability suite (tests/test_reliability_*.py); no tests here.

The suite runs pmsync against the local fake Jira and GitHub servers and checks the store
after every fault: either the run completed and the store matches a run that saw no fault,
or it failed with one clear line and the store is exactly as the last good run left it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from connectors.github import GitHubConnector, GitHubSettings
from connectors.jira import JiraConnector, JiraSettings
from sync.engine import SourceResult, sync_source
from sync.store import Store
from tests.conftest import store_rows
from tests.fakes.github import FakeGitHub
from tests.fakes.jira import FakeIssue, FakeJira, make_issues
from tests.fakes.server import FakeServer

# Fixed dates keep generated data identical between the fakes a test compares.
END_MS = int(datetime(2026, 11, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
JIRA_TOKEN = "jira-reliability-token-0001"
GITHUB_TOKEN = "ghp_reliability_token_0001"


S = TypeVar("S", bound=FakeServer)


@contextmanager
def running(server: S) -> Iterator[S]:
    """Start a fake server; stop it without waiting out its 0.5 s accept-loop poll."""
    server.start()
    try:
        yield server
    finally:
        httpd = server._httpd
        if httpd is not None:
            done = threading.Event()

            def shut() -> None:
                httpd.shutdown()
                done.set()

            threading.Thread(target=shut, daemon=True).start()
            address = httpd.server_address[:2]
            while not done.wait(0.005):  # a connection wakes the loop to see the request
                with suppress(OSError):
                    socket.create_connection(address, timeout=0.2).close()  # type: ignore[arg-type]
            server.stop()


def jira_issues(n: int, seed: int = 3) -> list[FakeIssue]:
    return make_issues(n, seed, end_ms=END_MS)


def jira_settings(fake: FakeJira, **kw: Any) -> JiraSettings:
    values: dict[str, Any] = {
        "url": fake.url,
        "email": fake.email,
        "token": fake.token,
        "jql": "project = ACME",
    }
    values.update(kw)
    return JiraSettings(**values)


class Sleeps(list[float]):
    """A stand-in for time.sleep that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def jira_connector(
    fake: FakeJira, *, sleeps: Sleeps | None = None, name: str = "acme", **kw: Any
) -> JiraConnector:
    """A Jira connector on `fake` whose retries do not really sleep."""
    connector = JiraConnector(name, jira_settings(fake, **kw))
    connector.http.sleep = sleeps if sleeps is not None else Sleeps()
    return connector


def github_connector(
    fake: FakeGitHub, *, sleeps: Sleeps | None = None, name: str = "board", **kw: Any
) -> GitHubConnector:
    settings = GitHubSettings(project="acme/1", token=fake.token, api_url=fake.url, **kw)
    return GitHubConnector(name, settings, sleep=sleeps if sleeps is not None else Sleeps())


def store_state(store: Store, source: str) -> dict[str, Any]:
    """What a sync must leave exactly right: items, transitions, milestones, watermark."""
    transitions = [
        tuple(r)
        for r in store.conn.execute(
            "SELECT * FROM transitions WHERE source = ? ORDER BY item_id, at, to_status",
            (source,),
        )
    ]
    milestones = [
        dict(r)
        for r in store.conn.execute(
            "SELECT source, id, name, start_date, due_date, state, url, deleted_at IS NULL"
            " FROM milestones WHERE source = ? ORDER BY id",
            (source,),
        )
    ]
    return {
        "items": store_rows(store, source),
        "transitions": transitions,
        "milestones": milestones,
        "watermark": store.cursor(source)["watermark"],
    }


def assert_one_line_error(result: SourceResult, *needles: str) -> None:
    """The run failed with one line that names the source and says what happened."""
    assert result.status == "failed"
    error = result.error or ""
    assert error.startswith(f"{result.source}: "), error
    assert "\n" not in error and "Traceback" not in error, error
    assert len(error) < 400, error
    for needle in needles:
        assert needle in error, (needle, error)


def sync(store: Store, connector: Any, **kw: Any) -> SourceResult:
    return sync_source(store, connector, **kw)


def file_bytes(path: Path) -> bytes:
    """The bytes of a SQLite file and its WAL (what a reader of the disk would see)."""
    out = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        p = Path(f"{path}{suffix}")
        if p.exists():
            out += p.read_bytes()
    return out


Mutation = Callable[[FakeJira], None]


def change_some(jira: FakeJira, *, updated: int = 12, added: int = 3) -> None:
    """Move `updated` issues along the workflow and create `added` new ones, now."""
    issues = sorted(jira.issues, key=lambda i: i.id)
    for issue in issues[1 : 1 + updated]:
        jira.update(issue.key, status_id="10002" if issue.status_id != "10002" else "3")
    for n in range(added):
        jira.add(f"Added {n}")
