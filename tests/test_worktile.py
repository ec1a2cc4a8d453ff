"""Worktile connector against `responses`: tenant token, HTTP-200 errors, paging, mapping."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from config.loader import load_config
from connectors.base import PublishTarget
from connectors.worktile import WorktileConnector, WorktileSettings
from sync.errors import ConfigError, PublishError, SourceError
from sync.model import StatusCategory

URL = "https://acme.worktile.example"
API = f"{URL}/open-api"
SECRET = "wt-s3cr3t-value"
PID = "5f1000000000000000000001"
TASKS_V2 = f"{API}/mission/projects/{PID}/tasks"
TASKS_V1 = f"{API}/mission/get-project-tasks-by-page"

sleeps: list[float] = []


def make(**kw: Any) -> WorktileConnector:
    values: dict[str, Any] = {
        "url": URL,
        "client_id": "cid",
        "client_secret": SECRET,
        "project": "WEB",
    }
    values.update(kw)
    c = WorktileConnector("wt", WorktileSettings(**values))
    c.clock = lambda: 1_780_000_000.0
    assert c.http is not None
    sleeps.clear()
    c.http.sleep = sleeps.append
    return c


def token(value: str = "wt-tok-0001", key: str = "tenant_access_token", **extra: Any) -> None:
    responses.post(f"{API}/tenant-access-token", json={key: value, **extra})


def projects() -> None:
    responses.get(
        f"{API}/mission/get-projects-by-page",
        json={"items": [{"_id": PID, "identifier": "WEB", "name": "官网项目"}], "has_more": False},
    )


def task(n: int, **kw: Any) -> dict[str, Any]:
    t: dict[str, Any] = {
        "_id": f"64a{n:021x}",
        "identifier": f"WEB-{n}",
        "title": f"任务 {n}",
        "project_id": PID,
        "task_state": {"name": "未开始", "type": 1},
        "state_type": 1,
        "properties": {},
        "created_at": 1_779_000_000,
        "updated_at": 1_779_900_000 + n,
    }
    t.update(kw)
    return t


def v2(tasks: list[dict[str, Any]], more: bool = False, users: Any = None) -> dict[str, Any]:
    return {
        "value": tasks,
        "references": {"users": users or [{"uid": "u-lin", "display_name": "林工"}]},
        "meta": {"has_more": more},
    }


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def calls_to(url: str) -> list[Any]:
    path = urlsplit(url).path
    return [c for c in responses.calls if urlsplit(c.request.url).path == path]


# -- settings -----------------------------------------------------------------------------


def test_url_accepts_the_team_host_with_or_without_open_api() -> None:
    base = {"client_id": "c", "client_secret": "s", "project": "P"}
    assert WorktileSettings(url="https://t.worktile.com/open-api/", **base).url == (
        "https://t.worktile.com"
    )
    assert WorktileSettings(url="https://t.worktile.com", **base).url == "https://t.worktile.com"
    with pytest.raises(ValueError, match="not an http"):
        WorktileSettings(url="t.worktile.com", **base)


def test_state_types_default_and_from_toml_strings() -> None:
    base = {"url": URL, "client_id": "c", "client_secret": "s", "project": "P"}
    assert WorktileSettings(**base).state_types == {
        0: StatusCategory.TODO,
        1: StatusCategory.TODO,
        2: StatusCategory.IN_PROGRESS,
        3: StatusCategory.DONE,
        4: StatusCategory.CANCELLED,
    }
    # TOML table keys are strings.
    custom = WorktileSettings(**base, state_types={"3": "done", "5": "in_progress"})
    assert custom.state_types == {3: StatusCategory.DONE, 5: StatusCategory.IN_PROGRESS}


# -- auth ---------------------------------------------------------------------------------


@responses.activate
def test_tenant_token_is_posted_and_sent_as_access_token() -> None:
    token()
    projects()
    c = make()
    assert c.check() == f"project 官网项目 ({PID})"
    (tok,) = calls_to(f"{API}/tenant-access-token")
    assert json.loads(tok.request.body) == {"client_id": "cid", "client_secret": SECRET}
    (listing,) = calls_to(f"{API}/mission/get-projects-by-page")
    assert query(listing) == {
        "page_index": ["0"],
        "page_size": ["100"],
        "access_token": ["wt-tok-0001"],
    }


@responses.activate
def test_token_under_access_token_or_data_is_accepted() -> None:
    responses.post(f"{API}/tenant-access-token", json={"data": {"access_token": "wt-tok-data"}})
    projects()
    c = make()
    c.project()
    assert query(calls_to(f"{API}/mission/get-projects-by-page")[0])["access_token"] == [
        "wt-tok-data"
    ]


@responses.activate
def test_expired_token_error_in_http_200_refreshes_once() -> None:
    token("wt-tok-0001")
    token("wt-tok-0002")
    responses.get(
        f"{API}/mission/get-projects-by-page",
        json={"ok": False, "error_code": 1103, "message": "令牌无效或已过期"},
    )
    projects()
    c = make()
    assert c.project()["id"] == PID
    used = [query(x)["access_token"] for x in calls_to(f"{API}/mission/get-projects-by-page")]
    assert used == [["wt-tok-0001"], ["wt-tok-0002"]]


@responses.activate
def test_token_rejected_twice_is_a_clear_error() -> None:
    token("wt-tok-0001")
    token("wt-tok-0002")
    for _ in range(2):
        responses.get(
            f"{API}/mission/get-projects-by-page",
            json={"ok": False, "error_code": 1103, "message": "令牌无效或已过期"},
        )
    with pytest.raises(SourceError) as err:
        make().check()
    text = str(err.value)
    assert text == (
        "wt: Worktile GET /open-api/mission/get-projects-by-page failed: error_code 1103"
        " 令牌无效或已过期 (HTTP 200); rejected again after fetching a new token; check client_id"
        " and client_secret"
    )
    assert "wt-tok" not in text


@responses.activate
def test_http_401_also_refreshes_the_token() -> None:
    token("wt-tok-0001")
    token("wt-tok-0002")
    responses.get(f"{API}/mission/get-projects-by-page", status=401, body="")
    projects()
    assert make().project()["id"] == PID
    assert len(calls_to(f"{API}/tenant-access-token")) == 2


@responses.activate
def test_bad_credentials_are_one_line_without_the_secret() -> None:
    responses.post(
        f"{API}/tenant-access-token",
        json={"ok": False, "error_code": 1101, "message": "应用凭证无效"},
    )
    with pytest.raises(SourceError) as err:
        make().check()
    assert str(err.value) == (
        "wt: cannot get a Worktile tenant token; client_id 'cid': error_code 1101 应用凭证无效"
        " (HTTP 200); check client_id, client_secret and url"
    )


@responses.activate
def test_other_http_200_errors_are_errors() -> None:
    token()
    projects()
    responses.get(TASKS_V2, json={"ok": False, "error_code": 2001, "message": "项目不存在"})
    with pytest.raises(SourceError) as err:
        list(make().fetch_items(None))
    assert str(err.value) == (
        f"wt: Worktile GET /open-api/mission/projects/{PID}/tasks failed: error_code 2001"
        " 项目不存在 (HTTP 200); see Worktile's message"
    )
    assert len(calls_to(f"{API}/tenant-access-token")) == 1  # not a token error: no refresh


@responses.activate
def test_429_html_page_is_retried_like_any_429() -> None:
    token()
    projects()
    html = "<html><head><title>429 Too Many Requests</title></head><body>nginx</body></html>"
    responses.get(TASKS_V2, status=429, body=html, content_type="text/html")
    responses.get(
        TASKS_V2, status=429, body=html, content_type="text/html", headers={"Retry-After": "2"}
    )
    responses.get(TASKS_V2, json=v2([task(1)]))
    c = make()
    assert [i.key for i in c.fetch_items(None)] == ["WEB-1"]
    assert len(sleeps) == 2 and sleeps[1] == 2.0
    assert c.http is not None and c.http.retries == 2


@responses.activate
def test_429_html_page_after_every_retry_is_one_line() -> None:
    token()
    projects()
    html = "<html><body><h1>429 Too Many Requests</h1></body></html>"
    for _ in range(8):
        responses.get(
            TASKS_V2, status=429, body=html, content_type="text/html", headers={"Retry-After": "0"}
        )
    with pytest.raises(SourceError) as err:
        list(make().fetch_items(None))
    text = str(err.value)
    assert "HTTP 429" in text and "<html" not in text and "\n" not in text


@responses.activate
def test_non_json_200_is_a_source_error() -> None:
    token()
    projects()
    responses.get(TASKS_V2, body="<html>login</html>", content_type="text/html")
    with pytest.raises(SourceError, match="invalid or truncated JSON"):
        list(make().fetch_items(None))


@responses.activate
def test_answer_without_a_list_is_a_source_error() -> None:
    token()
    projects()
    responses.get(TASKS_V2, json={"ok": True, "data": {"nothing": 1}})
    with pytest.raises(SourceError) as err:
        list(make().fetch_items(None))
    assert str(err.value) == (
        f"wt: unexpected answer from /open-api/mission/projects/{PID}/tasks (no task or project"
        " list); check url and tasks_api"
    )


# -- project ------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["WEB", "web", "官网项目", PID])
@responses.activate
def test_project_by_identifier_name_or_id(ref: str) -> None:
    token()
    responses.get(
        f"{API}/mission/get-projects-by-page",
        json={"items": [{"_id": "other", "identifier": "OPS", "name": "运维"}], "has_more": True},
    )
    projects()
    c = make(project=ref)
    assert c.project() == {"id": PID, "identifier": "WEB", "name": "官网项目"}
    assert c.state["project"] == {"ref": ref, "id": PID, "identifier": "WEB", "name": "官网项目"}
    pages = [query(x)["page_index"] for x in calls_to(f"{API}/mission/get-projects-by-page")]
    assert pages == [["0"], ["1"]]


@responses.activate
def test_unknown_project_is_a_clear_error() -> None:
    token()
    projects()
    with pytest.raises(SourceError) as err:
        make(project="NOPE").check()
    assert str(err.value) == (
        "wt: no Worktile project 'NOPE' visible to this app; check `project` (its id, identifier"
        " or exact name)"
    )


# -- tasks --------------------------------------------------------------------------------


@responses.activate
def test_v2_tasks_are_mapped_with_user_names_and_dates() -> None:
    token()
    projects()
    raw = task(
        7,
        task_state={"name": "已完成", "type": 3},
        state_type=3,
        properties={
            "assignee": {"value": "u-lin"},
            "start": {"value": {"date": 1754956800, "with_time": 0}},
            "due": {"date": 1755043200, "with_time": 0},
        },
        completed_at=1_779_950_000,
        parent_id="64a000000000000000000001",
        task_type={"name": "需求"},
    )
    responses.get(TASKS_V2, json=v2([raw]))
    (item,) = make().fetch_items(None)
    assert item.model_dump(exclude={"raw", "transitions"}) == {
        "source": "wt",
        "id": raw["_id"],
        "key": "WEB-7",
        "title": "任务 7",
        "url": None,
        "kind": "需求",
        "status": "已完成",
        "category": StatusCategory.DONE,
        "assignee": "林工",
        "priority": None,
        "labels": [],
        "parent_id": "64a000000000000000000001",
        "milestone_id": None,
        "start_date": date(2025, 8, 12),
        "due_date": date(2025, 8, 13),
        "created_at": datetime.fromtimestamp(1_779_000_000, UTC),
        "updated_at": datetime.fromtimestamp(1_779_900_007, UTC),
        "completed_at": datetime.fromtimestamp(1_779_950_000, UTC),
        "estimate": None,
        "progress": None,
        "blocked": False,
    }
    assert item.raw == raw
    assert "access_token" not in json.dumps(item.raw)


@responses.activate
def test_v1_tasks_endpoint_and_shape() -> None:
    token()
    projects()
    responses.get(
        TASKS_V1,
        json={
            "items": [task(1, properties={"assignee": {"value": "u-x"}})],
            "total": 2,
            "has_more": True,
        },
    )
    responses.get(TASKS_V1, json={"items": [task(2)], "total": 2, "has_more": False})
    items = list(make(tasks_api="v1").fetch_items(None))
    assert [(i.key, i.assignee) for i in items] == [("WEB-1", "u-x"), ("WEB-2", None)]
    calls = calls_to(TASKS_V1)
    assert [query(x)["project_id"] for x in calls] == [[PID], [PID]]
    assert [query(x)["page_index"] for x in calls] == [["0"], ["1"]]


@responses.activate
def test_state_type_decides_never_the_chinese_name() -> None:
    token()
    projects()
    states = [
        ({"name": "已完成", "type": 1}, StatusCategory.TODO),  # misleading name
        ({"name": "开发中", "type": 2}, StatusCategory.IN_PROGRESS),
        ({"name": "报废", "type": 3}, StatusCategory.DONE),
        ({"name": "已取消", "type": 4}, StatusCategory.CANCELLED),
        ({"name": "未开始", "type": "0"}, StatusCategory.TODO),
    ]
    responses.get(TASKS_V2, json=v2([task(n, task_state=s) for n, (s, _) in enumerate(states, 1)]))
    items = list(make().fetch_items(None))
    assert [i.category for i in items] == [c for _, c in states]
    assert [i.status for i in items] == ["已完成", "开发中", "报废", "已取消", "未开始"]


@responses.activate
def test_state_mapping_is_configurable_and_unknown_codes_are_noted() -> None:
    token()
    projects()
    tasks = [
        task(1, task_state={"name": "报废", "type": 3}),
        task(2, task_state={"name": "测试中", "type": 7}),
        task(3, task_state={"name": "挂起", "type": 9}),
        task(4, task_state=None, state_type=2),
    ]
    responses.get(TASKS_V2, json=v2(tasks))
    c = make(
        status_map={"报废": "cancelled"},
        state_types={"7": "in_progress", "3": "done", "2": "in_progress"},
        blocked_statuses=["挂起"],
    )
    items = list(c.fetch_items(None))
    assert [(i.category, i.blocked) for i in items] == [
        (StatusCategory.CANCELLED, False),
        (StatusCategory.IN_PROGRESS, False),
        (StatusCategory.TODO, True),
        (StatusCategory.IN_PROGRESS, False),
    ]
    assert c.notes[0] == (
        "unknown Worktile task_state.type 9 (state '挂起') counted as todo; map it with"
        " state_types or status_map"
    )


@responses.activate
def test_incremental_compares_updated_at_and_the_census_is_free() -> None:
    token()
    projects()
    old, new = task(1, updated_at=1_780_000_000), task(2, updated_at=1_790_000_100)
    responses.get(TASKS_V2, json=v2([old, new, task(3, is_deleted=1)]))
    c = make()
    since = datetime.fromtimestamp(1_790_000_000, UTC)
    assert [i.key for i in c.fetch_items(since)] == ["WEB-2"]
    assert c.notes == [
        "incremental by a full pass compared on updated_at (the Worktile API has no 'updated"
        " since' filter): 2 read, 1 updated since the last sync"
    ]
    before = len(responses.calls)
    assert list(c.fetch_ids() or []) == [old["_id"], new["_id"]]
    assert len(responses.calls) == before


@responses.activate
def test_census_pages_when_no_pass_ran() -> None:
    token()
    projects()
    responses.get(TASKS_V2, json=v2([task(1)], more=True))
    responses.get(TASKS_V2, json=v2([task(2)], more=False))
    assert list(make().fetch_ids() or []) == [task(1)["_id"], task(2)["_id"]]


@responses.activate
def test_paging_stops_on_total_or_a_short_page_without_has_more() -> None:
    token()
    projects()
    responses.get(TASKS_V1, json={"items": [task(1), task(2)], "total": 3})
    responses.get(TASKS_V1, json={"items": [task(3)], "total": 3})
    items = list(make(tasks_api="v1", page_size=2).fetch_items(None))
    assert [i.key for i in items] == ["WEB-1", "WEB-2", "WEB-3"]
    assert len(calls_to(TASKS_V1)) == 2


def test_no_milestones() -> None:
    assert list(make().fetch_milestones()) == []


# -- publishing is refused ----------------------------------------------------------------


def test_worktile_cannot_publish() -> None:
    assert WorktileConnector.Target is None
    assert "no endpoint to create a comment" in WorktileConnector.publish_unsupported_reason
    with pytest.raises(PublishError) as err:
        make().publish(PublishTarget(to="wt"), None, None)  # type: ignore[arg-type]
    assert str(err.value) == f"wt: {WorktileConnector.publish_unsupported_reason}"
    with pytest.raises(PublishError):
        make().render(PublishTarget(to="wt"), None)  # type: ignore[arg-type]


def test_config_with_a_worktile_publish_target_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WT_SECRET", SECRET)
    path = tmp_path / "pmsync.toml"
    path.write_text(
        """
[sources.wt]
kind = "worktile"
url = "https://acme.worktile.com"
client_id = "cid"
client_secret = "${WT_SECRET}"
project = "WEB"

[projects.web]
name = "Web"
sources = ["wt"]

[[projects.web.publish]]
to = "wt"
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == (
        "pmsync.toml: projects.web.publish[0]: worktile sources cannot publish reports: "
        + WorktileConnector.publish_unsupported_reason
    )


@responses.activate
def test_a_server_that_ignores_page_index_does_not_loop_forever() -> None:
    token()
    projects()
    for _ in range(2):
        responses.get(TASKS_V2, json=v2([task(1)], more=True))
    with pytest.raises(SourceError) as err:
        list(make().fetch_items(None))
    assert str(err.value) == (
        f"wt: /open-api/mission/projects/{PID}/tasks returned page 1 twice (page_index"
        " ignored?); stopping instead of looping"
    )
