"""End-to-end: the Jira connector through the sync engine against the local fake Jira."""

from __future__ import annotations

import base64
import json
import math
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import requests

import connectors.jira as jira_mod
from connectors.jira import JiraConnector, JiraSettings
from sync.engine import SourceResult, sync_source
from sync.model import StatusCategory, WorkItem
from sync.store import Store
from tests.fakes.jira import STATUSES, FakeJira, jira_time, make_issues, now_ms

SOURCE = "acme-jira"


def settings(fake: FakeJira, **kw: Any) -> JiraSettings:
    values: dict[str, Any] = {
        "kind": "jira",
        "url": fake.url,
        "email": fake.email if fake.flavor == "cloud" else None,
        "token": fake.token,
        "jql": "project = ACME",
        "board": 5,
    }
    values.update(kw)
    return JiraSettings(**values)


def connector(fake: FakeJira, **kw: Any) -> JiraConnector:
    return JiraConnector(SOURCE, settings(fake, **kw))


def sync(store: Store, fake: FakeJira, *, full: bool = False, **kw: Any) -> SourceResult:
    census_every = kw.pop("census_every", timedelta(hours=24))
    result = sync_source(store, connector(fake, **kw), full=full, census_every=census_every)
    assert result.status == "ok", result.error
    return result


def calls(fake: FakeJira) -> list[tuple[str, str]]:
    out = [(r.method, r.path) for r in fake.log]
    fake.log.clear()
    return out


def items(store: Store) -> dict[str, WorkItem]:
    return {i.key: i for i in store.items([SOURCE])}


def budget_full(n: int) -> int:
    return math.ceil(n / 100) + math.ceil(n / 1000) + 5


def budget_incremental(k: int) -> int:
    return math.ceil(k / 100) + math.ceil(k / 1000) + 3


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store.memory()
    yield s
    s.close()


@pytest.fixture
def cloud() -> Iterator[FakeJira]:
    with FakeJira(make_issues(250, seed=3)) as fake:
        yield fake


# -- Cloud ------------------------------------------------------------------------------------


def test_full_then_quiet_then_incremental_sync_within_the_request_budget(
    store: Store, cloud: FakeJira
) -> None:
    full = sync(store, cloud)
    assert (full.mode, full.new, full.seen, full.milestones) == ("full", 250, 250, 6)
    assert calls(cloud) == [
        ("GET", "/rest/api/2/serverInfo"),
        ("GET", "/rest/api/3/field"),
        ("POST", "/rest/api/3/search/jql"),
        ("POST", "/rest/api/3/search/jql"),
        ("POST", "/rest/api/3/search/jql"),
        ("POST", "/rest/api/3/changelog/bulkfetch"),
        ("GET", "/rest/api/3/project/ACME/version"),
        ("GET", "/rest/agile/1.0/board/5/sprint"),
    ]
    assert full.requests == 8 <= budget_full(250)
    stored = items(store)
    assert len(stored) == 250
    expected_transitions = sum(
        1 for i in cloud.issues for _at, its in i.history for it in its if it["field"] == "status"
    )
    assert len(store.transitions([SOURCE])) == expected_transitions
    # Every field agrees with the fake.
    for issue in cloud.issues:
        item = stored[issue.key]
        name, cat = STATUSES[issue.status_id]
        assert (item.id, item.title, item.status) == (str(issue.id), issue.fields["summary"], name)
        resolution = (issue.fields.get("resolution") or {}).get("name")
        expected = {"new": "todo", "indeterminate": "in_progress", "done": "done"}[cat]
        if resolution == "Won't Do":
            expected = "cancelled"
        assert item.category.value == expected
        assert item.estimate == issue.fields.get("customfield_10016")
        assert item.updated_at == datetime.fromtimestamp(issue.updated_ms / 1000, UTC)
        assert item.url == f"{cloud.url}/browse/{issue.key}"
        parent = issue.fields.get("parent")
        assert item.parent_id == (parent["id"] if parent else None)
        if cat == "done" and resolution == "Done":
            assert item.completed_at == datetime.fromtimestamp(issue.resolved_ms / 1000, UTC)
        versions = issue.fields["fixVersions"]
        if versions:
            assert item.milestone_id == f"version:{versions[0]['id']}"
        assert item.blocked == bool(issue.fields.get("customfield_10021"))
        assert item.kind == ("epic" if issue.fields["issuetype"]["name"] == "Epic" else item.kind)

    quiet = sync(store, cloud)
    assert (quiet.mode, quiet.new, quiet.changed) == ("incremental", 0, 0)
    assert calls(cloud) == [("POST", "/rest/api/3/search/jql")]
    assert quiet.requests == 1 <= 3

    todo = [i.key for i in cloud.issues if i.status_id == "10000"]
    started, dropped, renamed = todo[:3]
    cloud.update(started, status_id="3")
    cloud.update(dropped, status_id="10002", resolution="Won't Do")
    cloud.update(renamed, summary="Renamed")
    cloud.add("Fresh one")
    cloud.add("Fresh two", status_id="3")
    inc = sync(store, cloud)
    assert (inc.new, inc.changed) == (2, 3)
    assert calls(cloud) == [
        ("POST", "/rest/api/3/search/jql"),
        ("POST", "/rest/api/3/changelog/bulkfetch"),
        ("GET", "/rest/api/3/project/ACME/version"),
        ("GET", "/rest/agile/1.0/board/5/sprint"),
    ]
    assert inc.requests == 4 <= budget_incremental(5)
    stored = items(store)
    assert stored[started].category is StatusCategory.IN_PROGRESS
    assert stored[dropped].category is StatusCategory.CANCELLED
    assert stored[dropped].completed_at is None
    assert stored[renamed].title == "Renamed"
    assert stored["ACME-251"].title == "Fresh one"
    assert stored["ACME-252"].category is StatusCategory.IN_PROGRESS
    history = [t for t in store.transitions([SOURCE]) if t.item_id == stored[dropped].id]
    assert [(t.from_status, t.to_status, t.to_category) for t in history] == [
        ("To Do", "Done", StatusCategory.CANCELLED)
    ]


def test_incremental_search_is_bounded_by_the_watermark_in_epoch_ms(
    store: Store, cloud: FakeJira
) -> None:
    sync(store, cloud)
    calls(cloud)
    watermark = store.cursor(SOURCE)["watermark"]
    sync(store, cloud)
    body = json.loads(cloud.requests_to("search/jql")[-1].body)
    since = watermark - timedelta(minutes=5)
    assert body["jql"] == (
        f"(project = ACME) AND updated >= {int(since.timestamp() * 1000)}"
        " ORDER BY updated ASC, key ASC"
    )
    assert body["maxResults"] == 100
    assert "startAt" not in body and "summary" in body["fields"]


@pytest.mark.parametrize("since_format", ["user-timezone", "epoch"])
def test_issue_updated_a_minute_ago_is_picked_up_for_a_user_in_los_angeles(
    store: Store, since_format: str
) -> None:
    with FakeJira(make_issues(40, seed=5), user_timezone="America/Los_Angeles") as fake:
        sync(store, fake, since_format=since_format)
        # The newest issue changed a minute ago, so the watermark is a minute old too.
        fake.update("ACME-1", at_ms=now_ms() - 60_000, summary="Seen?")
        fake.update("ACME-2", at_ms=now_ms() - 60_000 + 5, summary="Also seen?")
        sync(store, fake, since_format=since_format)
        fake.update("ACME-3", at_ms=now_ms() - 30_000, summary="A minute later")
        calls(fake)
        result = sync(store, fake, since_format=since_format)
        assert items(store)["ACME-3"].title == "A minute later"
        assert result.changed == 1
        jql = json.loads(fake.requests_to("search/jql")[-1].body)["jql"]
        paths = [p for _m, p in calls(fake)]
        if since_format == "user-timezone":
            assert paths[0] == "/rest/api/3/myself"
            assert '"' in jql  # a wall time in the user's zone
            # Control: the same instant written as a UTC wall time, the timezone trap peers
            # fell into, misses the issue (Los Angeles is 7-8 hours behind UTC).
            since = store.cursor(SOURCE)["watermark"] - timedelta(minutes=5)
            naive = f'(project = ACME) AND updated >= "{since:%Y-%m-%d %H:%M}"'
            found = _search_keys(fake, naive)
            assert "ACME-3" not in found
        else:
            assert "/rest/api/3/myself" not in paths
            assert '"' not in jql


def _search_keys(fake: FakeJira, jql: str) -> set[str]:
    auth = "Basic " + base64.b64encode(f"{fake.email}:{fake.token}".encode()).decode()
    r = requests.post(
        f"{fake.url}/rest/api/3/search/jql",
        json={"jql": jql, "fields": ["summary"], "maxResults": 100},
        headers={"Authorization": auth},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return {i["key"] for i in r.json()["issues"]}


@pytest.mark.parametrize("token_mode", ["keyset", "offset"])
def test_an_issue_updated_while_pages_are_read_loses_no_other_issue(
    store: Store, token_mode: str
) -> None:
    with FakeJira(make_issues(350, seed=7), token_mode=token_mode) as fake:
        oldest = min(fake.issues, key=lambda i: i.updated_ms)
        # Before page 3 is served, an issue page 1 already returned changes: it moves to the
        # end of `ORDER BY updated ASC`.
        fake.at_search(3, lambda: fake.update(oldest.key, status_id="10001"))
        result = sync(store, fake)
        stored = items(store)
        assert len(stored) == 350 and result.tombstoned == 0
        assert stored[oldest.key].status == "In Review"
        assert any("changed while the sync was reading" in n for n in result.notes)
        assert result.requests <= budget_full(350) + 2  # the id check: one id page and one fetch


def test_offset_tokens_really_would_skip_an_issue(store: Store) -> None:
    # Control for the test above: paging naively through the offset-token fake misses one.
    with FakeJira(make_issues(350, seed=7), token_mode="offset") as fake:
        oldest = min(fake.issues, key=lambda i: i.updated_ms)
        fake.at_search(3, lambda: fake.update(oldest.key, status_id="10001"))
        auth = "Basic " + base64.b64encode(f"{fake.email}:{fake.token}".encode()).decode()
        seen: set[str] = set()
        token = None
        while True:
            body: dict[str, Any] = {
                "jql": "project = ACME ORDER BY updated ASC, key ASC",
                "fields": ["summary"],
                "maxResults": 100,
            }
            if token:
                body["nextPageToken"] = token
            page = requests.post(
                f"{fake.url}/rest/api/3/search/jql",
                json=body,
                headers={"Authorization": auth},
                timeout=10,
            ).json()
            seen |= {i["key"] for i in page["issues"]}
            token = page.get("nextPageToken")
            if not token:
                break
        assert len(seen) == 349


def test_issues_deleted_and_added_while_pages_are_read(store: Store, cloud: FakeJira) -> None:
    sync(store, cloud)
    newest = max(cloud.issues, key=lambda i: i.updated_ms)
    cloud.at_search(2, lambda: cloud.delete(newest.key))
    cloud.at_search(2, lambda: cloud.add("Created mid-run"))
    result = sync(store, cloud, full=True)
    stored = items(store)
    assert newest.key not in stored
    assert result.tombstoned == 1
    assert "ACME-251" in stored and len(stored) == 250


def test_census_after_deletions_uses_id_only_pages(store: Store) -> None:
    with FakeJira(make_issues(5300, seed=2)) as fake:
        sync(store, fake)
        fake.delete("ACME-7")
        fake.delete("ACME-4000")
        calls(fake)
        result = sync(store, fake, census_every=timedelta(0))
        assert result.tombstoned == 2
        census = [json.loads(r.body) for r in fake.requests_to("search/jql")][1:]
        assert [c["fields"] for c in census] == [["id"], ["id"]]
        assert [c["maxResults"] for c in census] == [5000, 5000]
        assert census[0]["jql"] == "(project = ACME) ORDER BY created ASC, key ASC"
        assert result.requests == 3  # the incremental page and two census pages
        assert len(items(store)) == 5298


def test_full_sync_request_budget_for_larger_projects(store: Store) -> None:
    n = 2345
    with FakeJira(make_issues(n, seed=11)) as fake:
        result = sync(store, fake)
        bodies = [json.loads(r.body) for r in fake.requests_to("changelog/bulkfetch")]
        counted = Counter(p for _m, p in calls(fake))
        assert counted["/rest/api/3/search/jql"] == math.ceil(n / 100)
        assert counted["/rest/api/3/changelog/bulkfetch"] == math.ceil(n / 1000)
        assert result.requests <= budget_full(n)
        assert [len(b["issueIdsOrKeys"]) for b in bodies] == [1000, 1000, 345]
        assert bodies[0]["fieldIds"] == ["status", "resolution"]


def test_incremental_budget_with_a_hundred_changes_and_the_overlap(store: Store) -> None:
    with FakeJira(make_issues(1200, seed=10)) as fake:
        sync(store, fake)
        todo = [i.key for i in fake.issues if i.status_id == "10000"][:100]
        for key in todo:
            fake.update(key, status_id="3")
        calls(fake)
        result = sync(store, fake)
        assert result.changed == 100
        # Two search pages (the 100 changes and the overlap's re-read), one history call,
        # versions and sprints.
        assert result.requests == 5 == budget_incremental(100)


def test_empty_census_tombstones_nothing(store: Store, cloud: FakeJira) -> None:
    sync(store, cloud)
    result = sync_source(
        store,
        connector(cloud, jql="project = ACME AND labels = nothing-has-this"),
        census_every=timedelta(0),
    )
    assert result.status == "failed"
    assert "census found no issues" in (result.error or "")
    assert len(items(store)) == 250


def test_eventual_consistency_is_covered_by_the_overlap(store: Store) -> None:
    with FakeJira(make_issues(30, seed=9)) as fake:
        sync(store, fake)
        fake.lag_ms = 120_000  # search lags two minutes behind writes
        fake.update("ACME-5", at_ms=now_ms() - 30_000, summary="Indexed late")
        fake.update("ACME-6", at_ms=now_ms() - 300_000, summary="Indexed")
        sync(store, fake)
        assert items(store)["ACME-5"].title != "Indexed late"
        fake.lag_ms = 0
        sync(store, fake)
        assert items(store)["ACME-5"].title == "Indexed late"


def test_rate_limit_bursts_are_waited_out(store: Store, cloud: FakeJira) -> None:
    reset = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%MZ")
    cloud.faults.add(
        "status",
        status=429,
        times=3,
        path="search/jql",
        headers={
            "Retry-After": "0",
            "X-RateLimit-Reset": reset,
            "RateLimit-Reason": "jira-burst-based",
        },
        body={"errorMessages": ["Rate limit exceeded."]},
    )
    cloud.faults.add("status", status=503, times=2, path="bulkfetch", headers={"Retry-After": "0"})
    result = sync(store, cloud)
    assert result.new == 250
    assert result.retries == 5
    assert any("jira-burst-based ×3" in n and "HTTP 503 ×2" in n for n in result.notes)


def test_truncated_page_is_retried_and_garbage_fails_clearly(store: Store, cloud: FakeJira) -> None:
    cloud.faults.add("truncate", path="search/jql")
    first = sync(store, cloud)
    assert first.new == 250 and first.retries == 1
    cloud.faults.add("garbage", path="search/jql", times=10)
    result = sync_source(store, connector(cloud))
    assert result.status == "failed"
    assert result.error is not None and "invalid or truncated JSON" in result.error


@pytest.mark.parametrize(
    ("status", "kw", "expected"),
    [
        (401, {"token": "wrong-token-1234"}, "Jira rejected the credentials (HTTP 401"),
        (403, {}, "Jira denied access to the issue search (HTTP 403"),
        (404, {"projects": ["NOPE"]}, "the versions of project NOPE not found (HTTP 404"),
        (410, {"flavor": "datacenter"}, "Jira has removed the endpoint GET"),
        (400, {"jql": "project = ACME AND nonsense = 1"}, "Jira rejected the issue search"),
    ],
)
def test_errors_are_one_line_naming_the_source_and_what_to_check(
    store: Store, cloud: FakeJira, status: int, kw: dict[str, Any], expected: str
) -> None:
    if status == 403:
        cloud.faults.add(
            "status",
            status=403,
            path="search/jql",
            body={"errorMessages": ["You do not have permission."], "errors": {}},
        )
    result = sync_source(store, connector(cloud, **kw))
    assert result.status == "failed"
    error = result.error or ""
    assert error.startswith(f"{SOURCE}: ") and expected in error
    assert "\n" not in error and cloud.token not in error and "wrong-token-1234" not in error
    hints = {
        401: "check `email` and `token`",
        403: "Browse projects",
        404: "check `url`",
        410: 'set flavor = "cloud"',
        400: "check `jql`",
    }
    assert hints[status] in error


def test_custom_fields_are_found_by_schema_type_whatever_their_ids(store: Store) -> None:
    ids = {
        "story_points": "customfield_12345",
        "sprint": "customfield_12346",
        "flagged": "customfield_12347",
    }
    with FakeJira(make_issues(60, seed=4, custom=ids), custom_fields=ids) as fake:
        sync(store, fake)
        body = json.loads(fake.requests_to("search/jql")[0].body)
        assert {"customfield_12345", "customfield_12346", "customfield_12347"} <= set(
            body["fields"]
        )
        # The decoys (a float named Budget, a date picker named Go-live date) are not asked for.
        assert "customfield_10900" not in body["fields"]
        assert "customfield_10901" not in body["fields"]
        stored = items(store)
        for issue in fake.issues:
            assert stored[issue.key].estimate == issue.fields["customfield_12345"]
        state = store.cursor(SOURCE)["state"]
        assert state["fields"]["story_points"] == ["customfield_12345"]


def test_field_overrides_skip_discovery(store: Store, cloud: FakeJira) -> None:
    fields = {
        "story_points": "customfield_10016",
        "sprint": [],
        "start_date": [],
        "flagged": "customfield_10021",
        "epic_link": [],
    }
    sync(store, cloud, fields=fields)
    assert "/rest/api/3/field" not in [p for _m, p in calls(cloud)]
    assert items(store)["ACME-2"].estimate == cloud.issue("ACME-2").fields["customfield_10016"]


def test_status_map_and_cancelled_resolutions_are_configurable(
    store: Store, cloud: FakeJira
) -> None:
    cloud.update("ACME-2", status_id="10003")  # "Erledigt": a localised done status
    cloud.update("ACME-3", status_id="10002", resolution="Duplicate")
    sync(
        store,
        cloud,
        status_map={"In Review": "todo"},
        cancelled_resolutions=["Won't Do"],
        blocked_statuses=["In Progress"],
    )
    stored = items(store)
    assert stored["ACME-2"].category is StatusCategory.DONE
    assert stored["ACME-3"].category is StatusCategory.DONE  # Duplicate no longer cancels
    review = [i for i in cloud.issues if i.status_id == "10001"]
    assert review and all(stored[i.key].category is StatusCategory.TODO for i in review)
    progress = [i for i in cloud.issues if i.status_id == "3"]
    assert progress and all(stored[i.key].blocked for i in progress)


def test_check_reports_who_and_where(cloud: FakeJira) -> None:
    conn = connector(cloud)
    assert conn.check() == "Pat Manager (Jira Cloud, timezone UTC)"


# -- Data Center ------------------------------------------------------------------------------


@pytest.fixture
def dc() -> Iterator[FakeJira]:
    with FakeJira(make_issues(300, seed=6, flavor="datacenter"), flavor="datacenter") as fake:
        yield fake


def test_data_center_full_and_incremental_sync(store: Store, dc: FakeJira) -> None:
    full = sync(store, dc)
    assert full.new == 300
    paths = [p for _m, p in calls(dc)]
    assert "/rest/api/3/search/jql" not in paths and "/rest/api/2/search" in paths
    searches = [r for r in dc.log if r.path == "/rest/api/2/search"]
    assert all(r.headers["authorization"] == f"Bearer {dc.token}" for r in dc.log)
    del searches
    stored = items(store)
    epics = {i.key: str(i.id) for i in dc.issues if i.fields["issuetype"]["name"] == "Epic"}
    for issue in dc.issues:
        item = stored[issue.key]
        link = issue.fields.get("customfield_10101")
        assert item.parent_id == (epics[link] if link else None)
        sprint = issue.fields.get("customfield_10104")
        if sprint and not issue.fields["fixVersions"]:
            sid = int(sprint[0].split("[id=")[1].split(",")[0])
            assert item.milestone_id == f"sprint:{sid}"
        assert item.estimate == issue.fields.get("customfield_10106")
    expected = sum(
        1 for i in dc.issues for _at, its in i.history for it in its if it["field"] == "status"
    )
    assert len(store.transitions([SOURCE])) == expected

    dc.update("ACME-20", status_id="10002")
    dc.add("New on DC")
    calls(dc)
    inc = sync(store, dc)
    assert (inc.new, inc.changed) == (1, 1)
    stored = items(store)
    assert stored["ACME-20"].category is StatusCategory.DONE
    assert stored["ACME-301"].title == "New on DC"
    search = next(r for r in dc.log if r.path == "/rest/api/2/search")
    assert "ORDER BY updated DESC, key DESC" in (search.arg("jql") or "")
    assert search.arg("startAt") == "0"


def test_data_center_truncated_changelog_is_completed_per_issue(store: Store) -> None:
    issues = make_issues(80, seed=6, flavor="datacenter")
    with FakeJira(issues, flavor="datacenter", embedded_changelog_cap=1) as fake:
        sync(store, fake)
        long = [i for i in fake.issues if len(i.history) > 1]
        fetched = {r.path.rsplit("/", 1)[1] for r in fake.log if "/rest/api/2/issue/" in r.path}
        assert fetched == {str(i.id) for i in long}
        expected = sum(len(i.history) for i in fake.issues)
        assert len(store.transitions([SOURCE])) == expected


def test_data_center_paging_survives_deletes_and_updates_mid_run(
    store: Store, dc: FakeJira
) -> None:
    sync(store, dc)
    by_age = sorted(dc.issues, key=lambda i: i.updated_ms, reverse=True)
    read_first, unread = by_age[5], by_age[250]
    # After page 1 (the newest 100), an issue already read is deleted: every later offset
    # shifts back by one. After page 2, an issue not read yet changes and jumps to the front.
    # A skipped issue would be missing from this full pass and so tombstoned.
    dc.at_search(2, lambda: dc.delete(read_first.key))
    dc.at_search(3, lambda: dc.update(unread.key, summary="Moved to the front"))
    result = sync(store, dc, full=True)
    stored = items(store)
    assert (len(stored), result.tombstoned) == (300, 0)
    assert stored[unread.key].title == "Moved to the front"
    starts = [int(r.arg("startAt") or 0) for r in dc.requests_to("/rest/api/2/search")][-6:]
    assert 99 in starts  # stepped back by the one deleted issue
    census = sync(store, dc, census_every=timedelta(0))
    assert census.tombstoned == 1 and read_first.key not in items(store)


def test_data_center_deep_paging_re_anchors_before_the_result_window(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jira_mod, "DC_WINDOW", 150)
    with FakeJira(
        make_issues(500, seed=8, flavor="datacenter"), flavor="datacenter", result_window=200
    ) as fake:
        result = sync(store, fake)
        assert result.new == 500
        starts = [int(r.arg("startAt") or 0) for r in fake.requests_to("/rest/api/2/search")]
        assert max(starts) < 200
        # Control: the window is real.
        r = requests.get(
            f"{fake.url}/rest/api/2/search",
            params={"jql": "project = ACME", "startAt": 200, "maxResults": 100},
            headers={"Authorization": f"Bearer {fake.token}"},
            timeout=10,
        )
        assert r.status_code == 400


def test_data_center_census_and_budget(store: Store, dc: FakeJira) -> None:
    sync(store, dc)
    dc.delete("ACME-3")
    calls(dc)
    result = sync(store, dc, census_every=timedelta(0))
    assert result.tombstoned == 1
    census = [
        r for r in dc.log if r.path == "/rest/api/2/search" and r.arg("fields") == "id,created"
    ]
    assert len(census) == 1 and census[0].arg("maxResults") == "1000"


def test_dates_in_other_offsets_parse_to_utc() -> None:
    assert jira_time(0) == "1970-01-01T00:00:00.000+0000"
    assert jira_mod.parse_time("2015-04-11T15:22:00.000+10:00") == datetime(
        2015, 4, 11, 5, 22, tzinfo=UTC
    )
    assert jira_mod.parse_date("2026-03-01") == date(2026, 3, 1)
