"""GitHub connector: rate limits (in HTTP 200 and as 403/429), timeouts and error answers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.github import GitHubConnector, GitHubSettings
from sync.errors import SourceError
from tests.fakes.github import FakeGitHub, make_board

TOKEN = "ghp_faketoken123"


class Sleeps:
    """A recording sleep with a matching fake clock, so waits cost no real time."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.now = 1000.0

    def __call__(self, seconds: float) -> None:
        self.calls.append(round(seconds))
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    server = make_board(250, seed=5, number=3)
    with server:
        yield server


def connector(fake: FakeGitHub, sleeps: Sleeps | None = None, **kw: Any) -> GitHubConnector:
    sleeps = sleeps or Sleeps()
    settings = GitHubSettings(**{"project": "acme/3", "token": TOKEN, "api_url": fake.url, **kw})
    return GitHubConnector("board", settings, sleep=sleeps, clock=sleeps.clock)


def visible(fake: FakeGitHub) -> int:
    return sum(1 for i in fake.project("acme", 3)["_items"] if i["type"] != "REDACTED")


def firsts(fake: FakeGitHub) -> list[int]:
    return [json.loads(r.body)["variables"]["first"] for r in fake.requests_to("graphql$")]


# -- primary limits inside HTTP 200 ----------------------------------------------------------------


def test_rate_limited_in_http_200_waits_for_the_reset(fake: FakeGitHub) -> None:
    sleeps = Sleeps()
    fake.rate_limit_graphql(times=2, reset_in=30)
    c = connector(fake, sleeps)
    assert sum(1 for _ in c.fetch_items(None)) == visible(fake)
    # Until x-ratelimit-reset (epoch seconds, so 29-30 s away) plus one second.
    assert len(sleeps.calls) == 2 and all(s in (30, 31) for s in sleeps.calls)
    assert (c.http.retries, c.http.requests) == (2, 5)


def test_rate_limit_variant_with_remaining_not_zero_is_also_waited_out(fake: FakeGitHub) -> None:
    # githubkit#271: type RATE_LIMIT, code graphql_rate_limit, x-ratelimit-remaining not 0.
    sleeps = Sleeps()
    fake.rate_limit_graphql(kind="RATE_LIMIT", reset_in=12)
    c = connector(fake, sleeps)
    assert sum(1 for _ in c.fetch_items(None)) == visible(fake)
    assert len(sleeps.calls) == 1 and 11 <= sleeps.calls[0] <= 13


def test_a_reset_beyond_the_wait_cap_fails_with_one_line(fake: FakeGitHub) -> None:
    sleeps = Sleeps()
    fake.rate_limit_graphql(reset_in=3600)
    with pytest.raises(SourceError) as err:
        list(connector(fake, sleeps).fetch_items(None))
    assert str(err.value).startswith("board: GitHub GraphQL rate limit exceeded; waiting ")
    assert str(err.value).endswith("cap: try again later")
    assert sleeps.calls == []


def test_endless_rate_limit_gives_up_after_max_attempts(fake: FakeGitHub) -> None:
    sleeps = Sleeps()
    fake.rate_limit_graphql(times=50, reset_in=0)
    with pytest.raises(SourceError, match="still rate limited by GitHub after 8 attempts"):
        list(connector(fake, sleeps).fetch_items(None))
    assert len(sleeps.calls) == 8


# -- secondary limits (403/429) ------------------------------------------------------------------


def test_secondary_limit_403_honours_retry_after(fake: FakeGitHub) -> None:
    sleeps = Sleeps()
    fake.secondary_limit(retry_after=7)
    c = connector(fake, sleeps)
    assert sum(1 for _ in c.fetch_items(None)) == visible(fake)
    assert sleeps.calls == [7]


def test_secondary_limit_without_retry_after_waits_a_minute(fake: FakeGitHub) -> None:
    sleeps = Sleeps()
    fake.secondary_limit(status=429)
    c = connector(fake, sleeps)
    assert sum(1 for _ in c.fetch_items(None)) == visible(fake)
    assert sleeps.calls == [60]


def test_403_with_quota_spent_waits_for_the_reset(fake: FakeGitHub) -> None:
    sleeps = Sleeps()
    fake.faults.add(
        "status",
        status=403,
        path="graphql",
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 20)},
        body={"message": "API rate limit exceeded"},
    )
    c = connector(fake, sleeps)
    assert sum(1 for _ in c.fetch_items(None)) == visible(fake)
    assert len(sleeps.calls) == 1 and 19 <= sleeps.calls[0] <= 21


def test_a_permission_403_is_not_retried(fake: FakeGitHub) -> None:
    sleeps = Sleeps()
    fake.faults.add(
        "status",
        status=403,
        path="graphql",
        body={"message": "Resource not accessible by personal access token"},
    )
    with pytest.raises(SourceError) as err:
        list(connector(fake, sleeps).fetch_items(None))
    assert str(err.value) == (
        "board: GitHub denied access (HTTP 403: Resource not accessible by personal access"
        " token); grant read:project (project to publish, repo for private repositories) to the"
        " token, and check the organisation's policy on tokens"
    )
    assert sleeps.calls == []
    assert len(fake.requests_to("graphql")) == 1


def test_bad_credentials_name_no_secret(fake: FakeGitHub) -> None:
    c = GitHubConnector(
        "board",
        GitHubSettings(project="acme/3", token="ghp_wrongtoken999", api_url=fake.url),
        sleep=lambda s: None,
    )
    with pytest.raises(SourceError) as err:
        list(c.fetch_items(None))
    assert str(err.value) == (
        "board: GitHub refused the credentials (HTTP 401: Bad credentials); check the"
        " environment variable holding the GitHub token"
    )
    assert fake.log[0].headers["authorization"] == "Bearer ghp_wrongtoken999"


# -- timeouts: 502/504, smaller pages --------------------------------------------------------------


def test_repeated_502_retries_then_halves_the_page(fake: FakeGitHub) -> None:
    sleeps = Sleeps()
    fake.gateway_timeout(times=2)
    c = connector(fake, sleeps)
    ids = [i.id for i in c.fetch_items(None)]
    assert len(ids) == len(set(ids)) == visible(fake)
    # 502, retried as is, 502 again, then 50 items a page until the end.
    assert firsts(fake) == [100, 100, 50, 50, 50, 50, 50]
    assert sleeps.calls == [2, 4]
    assert any("page size lowered to 50" in n for n in c.notes)


def test_a_single_504_is_retried_with_the_same_page(fake: FakeGitHub) -> None:
    fake.gateway_timeout(status=504)
    c = connector(fake)
    assert sum(1 for _ in c.fetch_items(None)) == visible(fake)
    assert firsts(fake) == [100, 100, 100, 100]


def test_timeout_message_in_http_200_counts_as_a_timeout(fake: FakeGitHub) -> None:
    fake.gateway_timeout(status=200, times=2)
    c = connector(fake)
    assert sum(1 for _ in c.fetch_items(None)) == visible(fake)
    assert firsts(fake)[:3] == [100, 100, 50]


def test_endless_timeouts_fail_with_one_line(fake: FakeGitHub) -> None:
    fake.gateway_timeout(times=50)
    with pytest.raises(SourceError) as err:
        list(connector(fake).fetch_items(None))
    assert str(err.value) == (
        "board: GitHub kept timing out on board pages (HTTP 502) even at 10 items per page;"
        " try again later"
    )
    assert firsts(fake) == [100, 100, 50, 25, 12, 10, 10]


def test_502_on_a_plain_query_uses_backoff_not_the_hour_long_reset(fake: FakeGitHub) -> None:
    sleeps = Sleeps()
    fake.faults.add(
        "status",
        status=502,
        path="graphql",
        headers={"x-ratelimit-reset": str(int(time.time()) + 3000)},
    )
    c = connector(fake, sleeps)
    assert c.check().startswith("pm-bot on board 'Website relaunch'")
    assert len(sleeps.calls) == 1 and sleeps.calls[0] <= 1


# -- broken answers ----------------------------------------------------------------------------------


def test_a_connection_cut_mid_body_is_retried_then_a_clear_error(fake: FakeGitHub) -> None:
    fake.faults.add("truncate", path="graphql", times=8)
    with pytest.raises(
        SourceError,
        match=r"^board: cannot reach http://127\.0\.0\.1:\d+/graphql: Connection broken; check the url and network$",
    ):
        list(connector(fake).fetch_items(None))
    assert len(fake.requests_to("graphql")) == 8


def test_a_cut_that_heals_loses_nothing(fake: FakeGitHub) -> None:
    fake.faults.add("truncate", path="graphql", times=2)
    assert sum(1 for _ in connector(fake).fetch_items(None)) == visible(fake)


def test_an_html_answer_is_a_clear_error(fake: FakeGitHub) -> None:
    fake.faults.add("garbage", path="graphql")
    with pytest.raises(
        SourceError,
        match=r"^board: invalid or truncated JSON from POST .*/graphql \(17 bytes\); try again later$",
    ):
        list(connector(fake).fetch_items(None))


def test_other_graphql_errors_fail_the_page_loudly(fake: FakeGitHub) -> None:
    fake.faults.add(
        "status",
        status=200,
        path="graphql",
        body={
            "data": None,
            "errors": [
                {
                    "type": "MAX_NODE_LIMIT_EXCEEDED",
                    "message": "This query requests up to 600,000 possible nodes which exceeds"
                    " the maximum limit of 500,000.",
                }
            ],
        },
    )
    with pytest.raises(SourceError) as err:
        list(connector(fake).fetch_items(None))
    assert str(err.value) == (
        "board: GitHub refused the query as too large (This query requests up to 600,000"
        " possible nodes which exceeds the maximum limit of 500,000.); lower page_size"
    )


def test_missing_scope_on_read_is_named(fake: FakeGitHub) -> None:
    fake.faults.add(
        "status",
        status=200,
        path="graphql",
        body={
            "data": {"repositoryOwner": {"__typename": "Organization", "projectV2": None}},
            "errors": [
                {
                    "type": "INSUFFICIENT_SCOPES",
                    "message": "Your token has not been granted the required scopes to execute"
                    " this query. The 'projectV2' field requires one of the following scopes:"
                    " ['read:project'], but your token has only been granted the: ['repo']"
                    " scopes.",
                }
            ],
        },
    )
    with pytest.raises(SourceError) as err:
        list(connector(fake).fetch_items(None))
    message = str(err.value)
    assert message.startswith("board: GitHub denied the query (Your token has not been granted")
    assert message.endswith("; grant read:project (and repo for private repositories) to the token")


# -- writes are spaced -------------------------------------------------------------------------------


def test_writes_are_spaced_at_least_a_second_apart(fake: FakeGitHub) -> None:
    sleeps = Sleeps()
    c = connector(fake, sleeps)
    c.http.space_write()
    sleeps.now += 0.25
    c.http.space_write()
    sleeps.now += 5
    c.http.space_write()
    assert sleeps.calls == [1]  # 0.75 s, rounded
    assert c.http.waited == 0  # spacing is not a retry
