"""Jira connector units: settings, JQL bounds, parsing, fields, statuses, milestones, limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
import responses
from pydantic import ValidationError

from connectors import connector_class
from connectors.base import PublishTarget
from connectors.http import HttpError
from connectors.jira import (
    JiraConnector,
    JiraHttp,
    JiraSettings,
    JiraTarget,
    local_bound,
    parse_sprint,
    parse_time,
    slim_fields,
    split_order,
)
from sync.engine import sync_source
from sync.errors import ConfigError, SourceError
from sync.model import StatusCategory
from sync.store import Store
from tests.fakes.jira import DEFAULT_SPRINTS, FakeJira, make_issues, sprint_json, version_json

LA = ZoneInfo("America/Los_Angeles")


def settings(**kw: Any) -> JiraSettings:
    values: dict[str, Any] = {
        "kind": "jira",
        "url": "https://acme.atlassian.net/",
        "email": "pm@acme.example",
        "token": "secret-token-123",
        "jql": "project = ACME ORDER BY rank",
    }
    values.update(kw)
    return JiraSettings(**values)


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store.memory()
    yield s
    s.close()


# -- settings and targets ----------------------------------------------------------------------


def test_registered_under_its_entry_point() -> None:
    assert connector_class("jira") is JiraConnector


def test_settings_validate_url_jql_and_overrides() -> None:
    s = settings(fields={"story_points": "customfield_10016", "sprint": ["customfield_1"]})
    assert s.url == "https://acme.atlassian.net"
    assert s.fields.story_points == ["customfield_10016"] and s.fields.start_date is None
    with pytest.raises(ValidationError, match="not an http"):
        settings(url="acme.atlassian.net")
    with pytest.raises(ValidationError, match="needs a restriction"):
        settings(jql="ORDER BY key DESC")
    with pytest.raises(ValidationError):
        settings(fields={"storypoints": "x"})
    with pytest.raises(ConfigError, match="token is empty"):
        JiraConnector("j", settings(token=""))


def test_auth_is_basic_with_email_and_bearer_without() -> None:
    cloud = JiraConnector("j", settings())
    assert cloud.http.session.auth == ("pm@acme.example", "secret-token-123")
    assert "Authorization" not in cloud.http.session.headers
    dc = JiraConnector("j", settings(email=None, url="https://jira.corp.example/jira"))
    assert dc.http.session.auth is None
    assert dc.http.session.headers["Authorization"] == "Bearer secret-token-123"
    assert dc.http.redact("token secret-token-123") == "token ***"


def test_target_options() -> None:
    assert JiraTarget(issue=" acme-12 ").issue == "ACME-12"
    assert JiraTarget(issue="10042").property_key == "com.pmsync.status-report"
    for bad in ("ACME", "12-ACME", "ACME-1; DROP"):
        with pytest.raises(ValidationError, match="issue must be an issue key"):
            JiraTarget(issue=bad)
    conn = JiraConnector("j", settings(flavor="cloud"))
    with pytest.raises(ConfigError, match="publish target 'j': issue: Field required"):
        conn._target(PublishTarget(to="j"))
    with pytest.raises(ConfigError, match="board: Extra inputs are not permitted"):
        conn._target(PublishTarget(to="j", issue="A-1", board=3))


# -- JQL ---------------------------------------------------------------------------------------


def test_split_order_is_quote_aware() -> None:
    assert split_order("project = A ORDER BY rank") == "project = A"
    assert split_order('summary ~ "order by me" order  by created') == 'summary ~ "order by me"'
    assert split_order("project = BORDER") == "project = BORDER"
    assert split_order("  reorder = 1 ") == "reorder = 1"


def test_local_bound_is_the_users_wall_time_floored_to_the_minute() -> None:
    since = datetime(2026, 7, 1, 18, 30, 59, 900000, tzinfo=UTC)
    assert local_bound(since, LA) == '"2026-07-01 11:30"'  # PDT, UTC-7
    assert local_bound(since, ZoneInfo("Asia/Shanghai")) == '"2026-07-02 02:30"'
    assert local_bound(since, ZoneInfo("UTC")) == '"2026-07-01 18:30"'


def test_local_bound_never_reads_later_than_since_across_dst_changes() -> None:
    # 2026-11-01 01:00-02:00 happens twice in Los Angeles; 2026-03-08 02:00-03:00 not at all.
    for start in (datetime(2026, 11, 1, 7, 0, tzinfo=UTC), datetime(2026, 3, 8, 9, 0, tzinfo=UTC)):
        for minutes in range(0, 4 * 60, 7):
            since = start + timedelta(minutes=minutes, seconds=13)
            text = local_bound(since, LA).strip('"')
            wall = datetime.strptime(text, "%Y-%m-%d %H:%M")
            readings = {wall.replace(tzinfo=LA, fold=f).astimezone(UTC) for f in (0, 1)}
            assert all(r <= since for r in readings), (since, text)
            assert since - min(readings) < timedelta(hours=1, minutes=2), (since, text)
    # The first 01:30 of the fall-back night (PDT) is written an hour earlier.
    assert local_bound(datetime(2026, 11, 1, 8, 30, tzinfo=UTC), LA) == '"2026-11-01 00:30"'
    # The second one (PST) may stay: both readings are at or before it.
    assert local_bound(datetime(2026, 11, 1, 9, 30, tzinfo=UTC), LA) == '"2026-11-01 01:30"'


def test_epoch_bound_falls_back_to_the_users_timezone_when_refused(store: Store) -> None:
    with FakeJira(make_issues(30, seed=1), user_timezone="America/Los_Angeles") as fake:
        s = settings(url=fake.url, email=fake.email, token=fake.token, jql="project = ACME")
        assert sync_source(store, JiraConnector("j", s)).status == "ok"
        fake.epoch_dates = False
        fake.update("ACME-4", summary="After the switch")
        first = sync_source(store, JiraConnector("j", s))
        assert first.status == "ok", first.error
        assert any("refused an epoch-millisecond" in n for n in first.notes)
        assert store.cursor("j")["state"]["bound"] == "user-timezone"
        assert {i.key: i.title for i in store.items(["j"])}["ACME-4"] == "After the switch"
        fake.log.clear()
        assert sync_source(store, JiraConnector("j", s)).status == "ok"
        jql = json.loads(fake.requests_to("search/jql")[0].body)["jql"]
        assert 'updated >= "' in jql


def test_a_wrong_jql_does_not_switch_the_bound(store: Store) -> None:
    with FakeJira(make_issues(10, seed=1)) as fake:
        s = settings(url=fake.url, email=fake.email, token=fake.token, jql="project = ACME")
        assert sync_source(store, JiraConnector("j", s)).status == "ok"
        bad = settings(url=fake.url, email=fake.email, token=fake.token, jql="projekt = ACME")
        result = sync_source(store, JiraConnector("j", bad))
        assert result.status == "failed" and "Field 'projekt' does not exist" in (
            result.error or ""
        )
        assert "bound" not in store.cursor("j")["state"]


# -- parsing ------------------------------------------------------------------------------------


def test_parse_time_reads_every_jira_form() -> None:
    expected = datetime(2025, 1, 9, 16, 20, 31, 512000, tzinfo=UTC)
    assert parse_time("2025-01-09T16:20:31.512+0000") == expected
    assert parse_time("2025-01-09T17:20:31.512+0100") == expected
    assert parse_time("2025-01-09T16:20:31.512Z") == expected
    assert parse_time(1736439631.512) == expected
    assert parse_time(1736439631512) == expected
    assert parse_time("2025-01-09T16:20:31") == datetime(2025, 1, 9, 16, 20, 31, tzinfo=UTC)
    assert parse_time("yesterday") is None and parse_time(None) is None and parse_time("") is None


def test_parse_sprint_reads_cloud_objects_and_old_server_strings() -> None:
    old = (
        "com.atlassian.greenhopper.service.sprint.Sprint@1a2b[id=48,rapidViewId=58,state=CLOSED,"
        "name=Sprint 4,startDate=2015-04-11T15:22:00.000+10:00,endDate=<null>,sequence=48]"
    )
    parsed = parse_sprint(old)
    assert parsed is not None
    assert (parsed["id"], parsed["state"], parsed["name"], parsed["endDate"]) == (
        48,
        "closed",
        "Sprint 4",
        None,
    )
    assert parse_sprint({"id": 37, "state": "active"}) == {"id": 37, "state": "active"}
    assert parse_sprint("Sprint@1[name=x]") is None
    assert parse_sprint("Sprint@1[id=abc]") is None
    assert parse_sprint(42) is None


def test_raw_keeps_values_without_urls_or_avatars() -> None:
    fields = {
        "status": {
            "self": "https://x/rest/api/3/status/3",
            "iconUrl": "https://x/i.png",
            "name": "In Progress",
            "id": "3",
            "statusCategory": {"self": "https://x/c/4", "id": 4, "key": "indeterminate"},
        },
        "assignee": {
            "accountId": "a1",
            "displayName": "Mia",
            "avatarUrls": {"48x48": "https://x/a.png"},
            "emailAddress": "mia@x",
        },
        "parent": {"id": "1", "key": "A-1", "fields": {"summary": "Epic"}},
        "fixVersions": [{"self": "https://x/v/1", "id": "1", "name": "1.0", "released": False}],
        "customfield_10020": [
            {"id": 37, "name": "S4", "state": "active", "boardId": 5, "goal": "g"}
        ],
        "customfield_10021": [{"self": "https://x/o/1", "id": "10019", "value": "Impediment"}],
        "labels": ["a"],
        "summary": "Title",
    }
    slim = slim_fields(fields, ("fixVersions", "customfield_10020", "customfield_10021"))
    assert "https://" not in json.dumps(slim)
    assert slim["status"] == {
        "id": "3",
        "name": "In Progress",
        "statusCategory": {"key": "indeterminate"},
    }
    assert slim["assignee"] == {"accountId": "a1", "displayName": "Mia"}
    assert slim["parent"] == {"id": "1", "key": "A-1"}
    assert slim["customfield_10020"] == [{"id": 37, "name": "S4", "state": "active", "boardId": 5}]
    assert slim["customfield_10021"] == [{"id": "10019", "value": "Impediment"}]
    assert (slim["labels"], slim["summary"]) == (["a"], "Title")


# -- flavour, gateway, errors ---------------------------------------------------------------------


def test_cloud_hosts_need_no_server_info_request() -> None:
    conn = JiraConnector("j", settings())
    with responses.RequestsMock():  # any request would fail the test
        assert conn.flavor == "cloud" and conn.ordered is True
        assert conn._browse_base() == "https://acme.atlassian.net"


@responses.activate
def test_the_gateway_links_to_the_site_it_serves() -> None:
    gateway = "https://api.atlassian.com/ex/jira/11223344-aaaa-bbbb-cccc-1234567890ab"
    responses.get(
        f"{gateway}/rest/api/3/serverInfo",
        json={"baseUrl": "https://acme.atlassian.net", "deploymentType": "Cloud"},
    )
    conn = JiraConnector("j", settings(url=gateway, email=None))
    assert conn.flavor == "cloud"
    assert conn._browse_base() == "https://acme.atlassian.net"
    assert conn.state["site_url"] == "https://acme.atlassian.net"
    assert len(responses.calls) == 1


@responses.activate
def test_data_center_is_detected_from_server_info_once() -> None:
    responses.get(
        "https://jira.corp.example/jira/rest/api/2/serverInfo",
        json={"baseUrl": "https://jira.corp.example/jira", "deploymentType": "Server"},
    )
    conn = JiraConnector("j", settings(url="https://jira.corp.example/jira", email=None))
    assert conn.flavor == "datacenter" and conn.rest == "rest/api/2" and conn.ordered is False
    again = JiraConnector("j", settings(url="https://jira.corp.example/jira", email=None))
    again.state = dict(conn.state)
    assert again.flavor == "datacenter"
    assert len(responses.calls) == 1


def test_401_messages_name_the_credentials_to_check() -> None:
    error = HttpError("j", "GET", "https://x/rest/api/3/myself", 401, "")
    cloud = JiraConnector("j", settings())
    text = str(cloud._explain(error, "the current user"))
    assert text == (
        "j: Jira rejected the credentials (HTTP 401 on the current user); check `email` and"
        " `token` (an API token of that Atlassian account; tokens expire)"
    )
    dc = JiraConnector("j", settings(email=None, url="https://jira.corp.example"))
    assert "a Data Center personal access token" in str(dc._explain(error, "the current user"))
    assert isinstance(dc._explain(error, "x"), SourceError)


def test_rate_limit_reasons_are_counted_and_iso_resets_understood() -> None:
    http = JiraHttp("https://x", source="j")
    response = requests.Response()
    response.status_code = 429
    reset = (datetime.now(UTC) + timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%S%z")
    response.headers.update({"X-RateLimit-Reset": reset, "RateLimit-Reason": "jira-quota-based"})
    assert http.should_retry(response)
    assert 80 < (http.retry_delay(response) or 0) <= 90
    response.headers["Retry-After"] = "7"
    assert http.retry_delay(response) == 7
    assert http.limit_reasons == {"jira-quota-based": 1}
    response.status_code = 400
    assert not http.should_retry(response)


# -- fields, statuses, milestones -------------------------------------------------------------------


def test_a_status_seen_only_in_history_is_looked_up_once(store: Store) -> None:
    with FakeJira(make_issues(1, seed=1)) as fake:
        conn = JiraConnector(
            "j", settings(url=fake.url, email=fake.email, token=fake.token, jql="project = ACME")
        )
        conn.state["statuses"] = {"10000": ["To Do", "new"]}
        assert conn._status_category("10001", "In Review") is StatusCategory.IN_PROGRESS
        assert conn._status_category("10002", "Done") is StatusCategory.DONE
        assert conn._status_category("999", "Gone") is StatusCategory.TODO
        assert [r.path for r in fake.log] == ["/rest/api/2/serverInfo", "/rest/api/3/status"]


def test_milestones_are_paged_cached_and_refreshed(store: Store) -> None:
    versions = [
        version_json(
            20000 + n,
            f"v{n}",
            released=n < 10,
            release=f"2026-{n % 12 + 1:02d}-01",
            archived=n == 11,
        )
        for n in range(120)
    ]
    sprints = [sprint_json(100 + n, f"S{n}", "closed", "2026-01-05T09:00:00.000Z", "2026-01-19T09:00:00.000Z") for n in range(75)]  # fmt: skip
    with FakeJira(make_issues(20, seed=1), versions=versions, sprints=sprints) as fake:
        s = settings(
            url=fake.url, email=fake.email, token=fake.token, jql="project = ACME", board=5
        )
        first = sync_source(store, JiraConnector("j", s))
        assert first.milestones == 195
        version_pages = [r.arg("startAt") for r in fake.requests_to("/version")]
        sprint_pages = [
            (r.arg("startAt"), r.arg("maxResults")) for r in fake.requests_to("/sprint")
        ]
        assert version_pages == ["0", "50", "100"]
        assert sprint_pages == [("0", "50"), ("50", "50")]
        by_id = {m.id: m for m in store.milestones(["j"])}
        assert by_id["version:20000"].state == "closed" and by_id["version:20011"].state == "closed"
        assert by_id["version:20012"].state == "open"
        assert by_id["version:20012"].due_date == date(2026, 1, 1)
        assert by_id["sprint:100"].start_date == date(2026, 1, 5)
        assert by_id["version:20000"].url == f"{fake.url}/projects/ACME/versions/20000"
        # A quiet run reuses the cached milestones: one request in all.
        fake.log.clear()
        quiet = sync_source(store, JiraConnector("j", s))
        assert quiet.requests == 1 and quiet.milestones == 195
        # Once the cache is too old, a quiet run reads them again.
        stale = settings(url=fake.url, email=fake.email, token=fake.token, jql="project = ACME",
                         board=5, milestones_max_age_hours=0)  # fmt: skip
        fake.sprints[5] = DEFAULT_SPRINTS
        again = sync_source(store, JiraConnector("j", stale))
        assert again.milestones == 123
        assert "sprint:100" not in {m.id for m in store.milestones(["j"])}


def test_field_discovery_prefers_schema_types_and_keeps_all_candidates() -> None:
    conn = JiraConnector("j", settings(flavor="cloud"))
    fields = [
        {
            "id": "customfield_1",
            "name": "Story Points",
            "schema": {
                "type": "number",
                "custom": "com.atlassian.jira.plugin.system.customfieldtypes:float",
            },
        },
        {
            "id": "customfield_2",
            "name": "Story point estimate",
            "schema": {"type": "number", "custom": "com.pyxis.greenhopper.jira:jsw-story-points"},
        },
        {
            "id": "customfield_3",
            "name": "Budget",
            "schema": {
                "type": "number",
                "custom": "com.atlassian.jira.plugin.system.customfieldtypes:float",
            },
        },
        {
            "id": "customfield_4",
            "name": "Target start",
            "schema": {
                "type": "date",
                "custom": "com.atlassian.jpo:jpo-custom-field-baseline-start",
            },
        },
        {
            "id": "customfield_5",
            "name": "Start date",
            "schema": {
                "type": "date",
                "custom": "com.atlassian.jira.plugin.system.customfieldtypes:datepicker",
            },
        },
        {
            "id": "customfield_6",
            "name": "Sprint",
            "schema": {"type": "array", "custom": "com.pyxis.greenhopper.jira:gh-sprint"},
        },
        {
            "id": "customfield_7",
            "name": "Flagged",
            "schema": {
                "type": "array",
                "custom": "com.atlassian.jira.plugin.system.customfieldtypes:multicheckboxes",
            },
        },
        {
            "id": "customfield_8",
            "name": "Epic Link",
            "schema": {"type": "any", "custom": "com.pyxis.greenhopper.jira:gh-epic-link"},
        },
        {"id": "summary", "name": "Summary", "schema": {"type": "string", "system": "summary"}},
    ]
    with responses.RequestsMock() as mock:
        mock.get("https://acme.atlassian.net/rest/api/3/field", json=fields)
        found = conn._discover_fields()
    assert found == {
        "story_points": ["customfield_2", "customfield_1"],
        "sprint": ["customfield_6"],
        "start_date": ["customfield_5", "customfield_4"],
        "flagged": ["customfield_7"],
        "epic_link": ["customfield_8"],
    }


def test_items_without_optional_fields_still_convert() -> None:
    conn = JiraConnector("j", settings(flavor="cloud"))
    conn._fields = {c: [] for c in ("story_points", "sprint", "start_date", "flagged", "epic_link")}
    item = conn._item({"id": "7", "key": "A-7", "fields": {}}, None)
    assert (item.title, item.category, item.status, item.kind) == (
        "A-7",
        StatusCategory.TODO,
        "todo",
        "task",
    )
    weird = {
        "id": "8",
        "key": "A-8",
        "fields": {
            "summary": 123,
            "status": {"name": "Closed", "statusCategory": {"key": "done"}},
            "resolution": {"name": "won't do"},
            "labels": "not-a-list",
            "assignee": "someone",
            "updated": "garbage",
            "issuetype": {"name": "Initiative", "hierarchyLevel": 2},
        },
    }
    item = conn._item(weird, [])
    assert (item.title, item.category, item.labels, item.assignee) == (
        "123",
        StatusCategory.CANCELLED,
        [],
        None,
    )
    assert item.kind == "epic" and item.updated_at is None and item.transitions == []


def test_the_documented_config_loads(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from config.loader import load_config

    monkeypatch.setenv("JIRA_API_TOKEN", "env-token-9876")
    path = tmp_path / "pmsync.toml"
    path.write_text(
        """
[sources.acme-jira]
kind = "jira"
url = "https://acme.atlassian.net"
email = "pm@acme.example"
token = "${JIRA_API_TOKEN}"
jql = "project = ACME"
board = 5

[sources.acme-jira.fields]
story_points = "customfield_10016"
sprint = []

[projects.acme]
name = "ACME"
sources = ["acme-jira"]

[[projects.acme.publish]]
to = "acme-jira"
issue = "ACME-1"
""",
        encoding="utf-8",
    )
    config = load_config(path)
    jira = config.sources["acme-jira"]
    assert isinstance(jira, JiraSettings)
    assert jira.token.get_secret_value() == "env-token-9876" and "env-token-9876" in config.secrets
    assert (jira.fields.story_points, jira.fields.sprint, jira.fields.flagged) == (
        ["customfield_10016"],
        [],
        None,
    )
    path.write_text(path.read_text().replace('issue = "ACME-1"', 'issue = "first one"'))
    with pytest.raises(ConfigError, match="issue must be an issue key"):
        load_config(path)
