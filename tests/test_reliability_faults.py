"""Reliability under network and server faults, against the fake Jira and GitHub servers.

Each Jira case: two stores start from the same full sync of the fake; the fake changes; the
reference store syncs with no fault, the other with the fault injected. A run that completes must leave the
store equal to the reference; a run that fails must say so in one line (source, what, what
to do) and leave items, transitions, milestones and watermark exactly as the last good run
left them; the next run without the fault then catches up with the reference.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from click.testing import CliRunner

import connectors.jira as jira_module
from sync.store import Store
from tests.fakes.github import STATUSES, FakeGitHub, make_board
from tests.fakes.jira import FakeJira
from tests.test_reliability_support import (
    JIRA_TOKEN,
    Sleeps,
    assert_one_line_error,
    change_some,
    github_connector,
    jira_connector,
    jira_issues,
    running,
    store_state,
    sync,
)

SEARCH = "search/jql"


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    # 150 issues: two search pages and one changelog call on a full sync.
    with running(FakeJira(jira_issues(150), token=JIRA_TOKEN)) as fake:
        yield fake


class Case:
    """Stores synced to the same point, then the fake changed; the reference is synced."""

    def __init__(self, jira: FakeJira) -> None:
        self.jira = jira
        self.ref, self.store = Store.memory(), Store.memory()
        assert sync(self.ref, jira_connector(jira), full=True).ok
        self.ref.conn.backup(self.store.conn)
        change_some(jira)
        assert sync(self.ref, jira_connector(jira)).ok
        self.expected = store_state(self.ref, "acme")
        self.last_good = store_state(self.store, "acme")
        assert self.expected["items"] != self.last_good["items"]  # the run has work to do
        self.log_start = len(jira.log)

    def requests(self, pattern: str = "") -> int:
        return sum(1 for r in self.jira.log[self.log_start :] if pattern in r.path)

    def run(self, *, sleeps: Sleeps | None = None, attempts: int | None = None, **kw: Any) -> Any:
        connector = jira_connector(self.jira, sleeps=sleeps, **kw)
        if attempts is not None:
            connector.http.max_attempts = attempts
        return sync(self.store, connector)

    def assert_complete(self) -> None:
        assert store_state(self.store, "acme") == self.expected

    def assert_untouched_then_recovers(self) -> None:
        assert store_state(self.store, "acme") == self.last_good
        self.jira.faults.clear()
        assert self.run().ok
        self.assert_complete()


# -- transient faults: the run completes and the store is right ---------------------------


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("status", {"status": 429, "headers": {"Retry-After": "0"}, "times": 3}),
        ("status", {"status": 429, "headers": {"Retry-After": "1"}, "times": 5}),
        ("status", {"status": 502, "times": 3}),
        ("status", {"status": 503, "times": 3}),
        ("status", {"status": 504, "times": 3}),
        ("reset", {"times": 3}),
        ("truncate", {"times": 3}),
        ("stall", {"seconds": 0.6, "times": 1}),
    ],
    ids=["429-retry-after-0", "429-retry-after-1", "502", "503", "504", "reset", "cut", "stall"],
)
def test_transient_fault_on_search_completes_correctly(
    jira: FakeJira, kind: str, options: dict[str, Any]
) -> None:
    case = Case(jira)
    sleeps = Sleeps()
    jira.faults.add(kind, path=SEARCH, **options)
    result = case.run(sleeps=sleeps, timeout=0.3)
    assert result.ok, result.error
    case.assert_complete()
    assert result.retries == options["times"]
    if "Retry-After" in options.get("headers", {}):
        assert sleeps == [float(options["headers"]["Retry-After"])] * options["times"]


def test_429_storm_without_retry_after_backs_off_and_completes(jira: FakeJira) -> None:
    case = Case(jira)
    sleeps = Sleeps()
    jira.faults.add("status", path=SEARCH, status=429, times=5)
    result = case.run(sleeps=sleeps)
    assert result.ok, result.error
    case.assert_complete()
    # Full-jitter exponential backoff: the n-th wait is within [0, 2^(n-1)] seconds.
    assert len(sleeps) == 5
    assert all(0 <= s <= 2**n for n, s in enumerate(sleeps))


def test_faults_on_every_kind_of_request_complete(jira: FakeJira) -> None:
    """Changelog, versions and search pages each fail once in a different way."""
    case = Case(jira)
    jira.faults.add("status", path="changelog/bulkfetch", status=503, times=2)
    jira.faults.add("reset", path=r"/project/ACME/version", times=1)
    jira.faults.add("truncate", path=SEARCH, times=1)
    result = case.run()
    assert result.ok, result.error
    case.assert_complete()
    assert result.retries == 4
    assert jira.faults.fired == 4


def test_fault_on_a_later_search_page_completes(jira: FakeJira) -> None:
    # The full sync reads two pages: cut the second one twice.
    ref, store = Store.memory(), Store.memory()
    assert sync(ref, jira_connector(jira), full=True).ok
    jira.at_search(1, lambda: jira.faults.add("truncate", path=SEARCH, times=2))
    result = sync(store, jira_connector(jira), full=True)
    assert result.ok, result.error
    assert result.retries == 2
    assert store_state(store, "acme") == store_state(ref, "acme")


# -- lasting faults: one clear line, the store as the last good run left it ---------------


@pytest.mark.parametrize(
    ("kind", "options", "needles"),
    [
        (
            "status",
            {"status": 429, "headers": {"Retry-After": "0"}, "times": 50},
            ["HTTP 429", "still rate limited", "try again later"],
        ),
        ("status", {"status": 429, "times": 50}, ["HTTP 429", "try again later"]),
        (
            "status",
            {"status": 429, "headers": {"Retry-After": "3600"}, "times": 50},
            ["gave up on POST", "try again later"],
        ),
        ("status", {"status": 503, "times": 50}, ["HTTP 503", "try again later"]),
        ("status", {"status": 500, "times": 1}, ["HTTP 500"]),
        ("reset", {"times": 50}, ["cannot reach", "check the url and network"]),
        ("truncate", {"times": 50}, ["cannot reach", "check the url and network"]),
        ("stall", {"seconds": 1.0, "times": 50}, ["timed out", "is the server up?"]),
        ("garbage", {"times": 1}, ["invalid or truncated JSON", "try again later"]),
        (
            "status",
            {"status": 200, "body": {"unexpected": True}, "times": 1},
            ["without an issue list"],
        ),
    ],
    ids=[
        "429-storm",
        "429-storm-no-retry-after",
        "429-retry-after-an-hour",
        "503-burst",
        "500",
        "reset",
        "cut-mid-body",
        "stall-past-timeout",
        "invalid-json-200",
        "wrong-json-200",
    ],
)
def test_lasting_fault_fails_in_one_line_and_keeps_the_store(
    jira: FakeJira, kind: str, options: dict[str, Any], needles: list[str]
) -> None:
    case = Case(jira)
    sleeps = Sleeps()
    jira.faults.add(kind, path=SEARCH, **options)
    result = case.run(sleeps=sleeps, attempts=3, timeout=0.3)
    assert_one_line_error(result, *needles)
    # Bounded: at most `attempts` tries of the failing request, and no waiting an hour.
    assert case.requests(SEARCH) <= 3
    assert sum(sleeps) <= 2 * 3
    case.assert_untouched_then_recovers()


def test_changelog_failure_after_search_keeps_the_store(jira: FakeJira) -> None:
    case = Case(jira)
    jira.faults.add("garbage", path="changelog/bulkfetch", times=1)
    result = case.run()
    assert_one_line_error(result, "invalid or truncated JSON", "changelog/bulkfetch")
    case.assert_untouched_then_recovers()


def test_failure_after_committed_pages_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages are committed as they come; a failure later keeps them, every row is either as
    before or as the reference, the watermark covers only what is committed, and the next
    run catches up."""
    # The connector hands over issues in batches of BULK_ISSUES (1,000) after fetching their
    # changelogs; batches of 100 let 300 issues show commits before the failure.
    monkeypatch.setattr(jira_module, "BULK_ISSUES", 100)
    with running(FakeJira(jira_issues(320), token=JIRA_TOKEN)) as jira:
        ref, store = Store.memory(), Store.memory()
        assert sync(ref, jira_connector(jira), full=True).ok
        ref.conn.backup(store.conn)
        before = {r["id"]: r for r in store_state(store, "acme")["items"]}
        change_some(jira, updated=280, added=0)
        assert sync(ref, jira_connector(jira)).ok
        after = {r["id"]: r for r in store_state(ref, "acme")["items"]}
        # From the 3rd search page on Jira fails: the first 200 issues are committed by then.
        jira.at_search(2, lambda: jira.faults.add("status", path=SEARCH, status=503, times=50))
        connector = jira_connector(jira)
        connector.http.max_attempts = 2
        result = sync(store, connector)
        assert_one_line_error(result, "HTTP 503")
        assert (result.seen, result.changed) == (200, 200)
        rows = {r["id"]: r for r in store_state(store, "acme")["items"]}
        assert sum(rows[i] == after[i] != before[i] for i in rows) == 200
        assert all(rows[i] in (before[i], after[i]) for i in rows)
        watermark = store.cursor("acme")["watermark"]
        newest = max(
            datetime.fromisoformat(r["updated_at"]) for i, r in rows.items() if r == after[i]
        )
        assert watermark is not None and watermark <= newest
        jira.faults.clear()
        assert sync(store, jira_connector(jira)).ok
        assert store_state(store, "acme") == store_state(ref, "acme")


def test_cli_sync_failure_prints_one_error_line_and_exits_1(tmp_path: Any, jira: FakeJira) -> None:
    from cli import cli

    config = tmp_path / "pmsync.toml"
    config.write_text(
        f'[sources.acme]\nkind = "jira"\nurl = "{jira.url}"\nemail = "{jira.email}"\n'
        'token = "${RELIABILITY_JIRA_TOKEN}"\njql = "project = ACME"\ntimeout = 0.3\n',
        encoding="utf-8",
    )
    env = {"RELIABILITY_JIRA_TOKEN": jira.token}
    ok = CliRunner().invoke(cli, ["--config", str(config), "sync"], env=env)
    assert ok.exit_code == 0, ok.output
    jira.faults.add("garbage", path=SEARCH, times=5)
    change_some(jira)
    result = CliRunner().invoke(cli, ["--config", str(config), "sync"], env=env)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: acme: invalid or truncated JSON from POST")
    assert "Traceback" not in result.output + result.stderr


# -- GitHub ------------------------------------------------------------------------------


@pytest.fixture
def board() -> Iterator[FakeGitHub]:
    with running(make_board(150, seed=5)) as fake:
        yield fake


def _github_case(board: FakeGitHub) -> tuple[Store, Store, dict[str, Any]]:
    ref, store = Store.memory(), Store.memory()
    assert sync(ref, github_connector(board), full=True).ok
    ref.conn.backup(store.conn)
    project = board.project("acme", 1)
    for item in [i for i in project["_items"] if i["type"] == "ISSUE"][:10]:
        current = (item["_values"].get("Status") or {}).get("name")
        board.move(item, next(s for s in STATUSES if s != current))
    assert sync(ref, github_connector(board)).ok
    return ref, store, store_state(store, "board")


@pytest.mark.parametrize(
    "inject",
    [
        lambda b: b.rate_limit_graphql(times=2),
        lambda b: b.secondary_limit(times=2, retry_after=0),
        lambda b: b.secondary_limit(times=2, status=429, retry_after=1),
        lambda b: b.gateway_timeout(times=2),
        lambda b: b.faults.add("status", path="graphql", status=503, times=2),
        lambda b: b.faults.add("reset", path="graphql", times=2),
        lambda b: b.faults.add("truncate", path="graphql", times=2),
        lambda b: b.faults.add("stall", path="graphql", seconds=0.6, times=1),
    ],
    ids=[
        "rate-limited-200",
        "secondary-403",
        "secondary-429",
        "502",
        "503",
        "reset",
        "cut",
        "stall",
    ],
)
def test_github_transient_fault_completes_correctly(board: FakeGitHub, inject: Any) -> None:
    ref, store, _ = _github_case(board)
    inject(board)
    connector = github_connector(board)
    connector.http.timeout = 0.3
    result = sync(store, connector)
    assert result.ok, result.error
    assert board.faults.fired >= 1
    assert store_state(store, "board") == store_state(ref, "board")


@pytest.mark.parametrize(
    ("inject", "needles"),
    [
        (
            lambda b: b.rate_limit_graphql(times=50, reset_in=7200),
            ["rate limit", "try again later"],
        ),
        (lambda b: b.secondary_limit(times=50), ["rate limit", "try again later"]),
        (lambda b: b.faults.add("status", path="graphql", status=503, times=50), ["HTTP 503"]),
        (lambda b: b.faults.add("reset", path="graphql", times=50), ["cannot reach"]),
        (lambda b: b.faults.add("garbage", path="graphql", times=1), ["invalid or truncated JSON"]),
        (
            lambda b: b.faults.add("stall", path="graphql", seconds=1.0, times=50),
            ["timed out"],
        ),
    ],
    ids=[
        "rate-limited-for-hours",
        "secondary-storm",
        "503-burst",
        "reset",
        "invalid-json",
        "stall",
    ],
)
def test_github_lasting_fault_fails_in_one_line_and_keeps_the_store(
    board: FakeGitHub, inject: Any, needles: list[str]
) -> None:
    ref, store, last_good = _github_case(board)
    inject(board)
    sleeps = Sleeps()
    connector = github_connector(board, sleeps=sleeps)
    connector.http.timeout = 0.3
    connector.http.max_attempts = 3
    result = sync(store, connector)
    assert_one_line_error(result, *needles)
    assert sum(sleeps) <= 300  # never sleeps past the cap (it refuses instead)
    assert store_state(store, "board") == last_good
    board.faults.clear()
    assert sync(store, github_connector(board)).ok
    assert store_state(store, "board") == store_state(ref, "board")
