"""PingCode connector against `responses`: auth, path family, paging, mapping, errors, publish."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from config.schema import Config, ProjectSettings
from connectors.base import Publication, PublishTarget
from connectors.pingcode import (
    PingCodeConnector,
    PingCodeSettings,
    content_hashes,
    expiry,
    report_html,
    unix_date,
)
from sync.errors import PublishError, SourceError
from sync.model import StatusCategory, WorkItem
from sync.report import Report, build_report
from sync.store import Store

URL = "https://pc.example/open"
SECRET = "s3cr3t-client-value"
PID = "5eb600000000000000000001"
NOW = 1_780_000_000.0


def make(**kw: Any) -> PingCodeConnector:
    values: dict[str, Any] = {
        "url": URL,
        "client_id": "cid",
        "client_secret": SECRET,
        "project": "HBR",
        "api_family": "pjm",
    }
    values.update(kw)
    c = PingCodeConnector("pc", PingCodeSettings(**values))
    c.clock = lambda: NOW
    assert c.http is not None
    c.http.sleep = lambda s: sleeps.append(s)
    sleeps.clear()
    return c


sleeps: list[float] = []


def token(value: str = "tok-aaaa-1", expires_in: int | None = int(NOW) + 30 * 86400) -> None:
    body: dict[str, Any] = {"access_token": value, "token_type": "Bearer"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    responses.get(f"{URL}/v1/auth/token", json=body)


def project(fam: str = "pjm") -> None:
    responses.get(
        f"{URL}/v1/{fam}/projects",
        json={"page_index": 0, "page_size": 100, "total": 1, "values": [
            {"id": PID, "identifier": "HBR", "name": "官网改版"}
        ]},
    )  # fmt: skip


def page(values: list[dict[str, Any]], total: int | None = None, index: int = 0) -> dict[str, Any]:
    return {
        "page_index": index,
        "page_size": 100,
        "total": len(values) if total is None else total,
        "values": values,
    }


def wi(n: int, **kw: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": f"6efc{n:020x}",
        "identifier": f"HBR-{n}",
        "title": f"工作项 {n}",
        "type": "story",
        "html_url": f"https://acme.pingcode.com/pjm/workitems/s{n}",
        "state": {"id": "st1", "name": "待处理", "type": "pending"},
        "created_at": 1_779_000_000,
        "updated_at": 1_779_900_000 + n,
        "is_deleted": 0,
    }
    item.update(kw)
    return item


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def calls_to(path: str) -> list[Any]:
    return [c for c in responses.calls if urlsplit(c.request.url).path == path]


# -- helpers ------------------------------------------------------------------------------


def test_expires_in_is_absolute_or_a_duration() -> None:
    assert expiry(1577808000, now=1_000) == 1577808000  # §1.3's example: absolute
    assert expiry(7200, now=1_000) == 8_200
    assert expiry("7200", now=0) == 7200
    assert expiry(None, now=1_000) is None
    assert expiry("soon", now=1_000) is None


def test_dates_are_read_in_the_tenant_timezone() -> None:
    from zoneinfo import ZoneInfo

    # §1.5's project example: 00:00 and 23:59:59 in UTC+8.
    shanghai = ZoneInfo("Asia/Shanghai")
    assert unix_date(1680278400, shanghai) == date(2023, 4, 1)
    assert unix_date(1682870399, shanghai) == date(2023, 4, 30)
    assert unix_date(1680278400, ZoneInfo("UTC")) == date(2023, 3, 31)
    assert unix_date(1680278400000, shanghai) == date(2023, 4, 1)  # milliseconds tolerated
    assert unix_date(None, shanghai) is None
    assert unix_date(0, shanghai) is None


def test_settings_validate_url_timezone_and_page_size() -> None:
    s = PingCodeSettings(client_id="c", client_secret="x", project="P", url="https://h/open/")
    assert s.url == "https://h/open"
    assert s.api_family == "auto"
    assert s.closed_category is StatusCategory.CANCELLED
    with pytest.raises(ValueError, match="not an http"):
        PingCodeSettings(client_id="c", client_secret="x", project="P", url="h/open")
    with pytest.raises(ValueError, match="unknown timezone"):
        PingCodeSettings(client_id="c", client_secret="x", project="P", timezone="Mars/Base")
    with pytest.raises(ValueError):
        PingCodeSettings(client_id="c", client_secret="x", project="P", page_size=101)


# -- auth ---------------------------------------------------------------------------------


@responses.activate
def test_token_is_fetched_once_and_sent_as_bearer() -> None:
    token()
    project()
    responses.get(f"{URL}/v1/pjm/workitems", json=page([wi(1)]))
    c = make()
    items = list(c.fetch_items(None))
    assert [i.key for i in items] == ["HBR-1"]
    token_calls = calls_to("/open/v1/auth/token")
    assert len(token_calls) == 1
    assert query(token_calls[0]) == {
        "grant_type": ["client_credentials"],
        "client_id": ["cid"],
        "client_secret": [SECRET],
    }
    assert "Authorization" not in token_calls[0].request.headers
    listing = calls_to("/open/v1/pjm/workitems")[0]
    assert listing.request.headers["Authorization"] == "Bearer tok-aaaa-1"


@responses.activate
def test_duration_token_is_refreshed_before_it_expires() -> None:
    responses.get(f"{URL}/v1/auth/token", json={"access_token": "tok-first-1", "expires_in": 3600})
    responses.get(f"{URL}/v1/auth/token", json={"access_token": "tok-second-2", "expires_in": 3600})
    project()
    c = make()
    clock = [NOW]
    c.clock = lambda: clock[0]
    c.project()
    c._project = None
    c.state.clear()
    clock[0] = NOW + 3600 - 301  # 5 min margin not reached yet
    c.project()
    assert len(calls_to("/open/v1/auth/token")) == 1
    c._project = None
    c.state.clear()
    clock[0] = NOW + 3600 - 299  # inside the margin: refresh before the server says no
    c.project()
    assert len(calls_to("/open/v1/auth/token")) == 2
    assert calls_to("/open/v1/pjm/projects")[-1].request.headers["Authorization"] == (
        "Bearer tok-second-2"
    )


@responses.activate
def test_absolute_expiry_in_the_past_refreshes_every_time_it_is_due() -> None:
    responses.get(
        f"{URL}/v1/auth/token", json={"access_token": "tok-old-1", "expires_in": int(NOW) + 100}
    )
    project()
    c = make()
    c.project()
    c._project = None
    c.state.clear()
    c.clock = lambda: NOW + 101
    c.project()
    assert len(calls_to("/open/v1/auth/token")) == 2


@responses.activate
def test_token_rejected_mid_run_is_refreshed_once() -> None:
    token("tok-one-1")
    token("tok-two-2")
    responses.get(
        f"{URL}/v1/pjm/projects", status=401, json={"code": "100003", "message": "令牌无效"}
    )
    project()
    c = make()
    assert c.project()["id"] == PID
    headers = [x.request.headers["Authorization"] for x in calls_to("/open/v1/pjm/projects")]
    assert headers == ["Bearer tok-one-1", "Bearer tok-two-2"]


@responses.activate
def test_token_rejected_after_refresh_is_a_clear_error() -> None:
    token("tok-one-1")
    token("tok-two-2")
    for _ in range(2):
        responses.get(
            f"{URL}/v1/pjm/projects", status=401, json={"code": "100003", "message": "令牌无效"}
        )
    c = make()
    with pytest.raises(SourceError) as err:
        c.project()
    text = str(err.value)
    assert text == (
        "pc: PingCode GET /v1/pjm/projects failed: code 100003 令牌无效 (HTTP 401); rejected"
        " again after fetching a new token; check client_id and client_secret, and that the app"
        " was not deleted or its secret reset"
    )
    assert "tok-" not in text and SECRET not in text
    assert len(calls_to("/open/v1/auth/token")) == 2


@responses.activate
def test_bad_credentials_say_so_in_one_line_without_the_secret() -> None:
    responses.get(
        f"{URL}/v1/auth/token",
        status=401,
        json={"code": "100009", "message": "client_id 或 client_secret 错误"},
    )
    c = make()
    with pytest.raises(SourceError) as err:
        c.check()
    text = str(err.value)
    assert "\n" not in text
    assert text == (
        "pc: cannot get a PingCode token; client_id 'cid': code 100009 client_id 或 client_secret"
        " 错误 (HTTP 401); check client_id and client_secret, and that the app still exists"
    )


@responses.activate
def test_token_answer_without_access_token_is_an_error() -> None:
    responses.get(f"{URL}/v1/auth/token", json={"token_type": "Bearer"})
    with pytest.raises(SourceError, match="cannot get a PingCode token"):
        make().check()


# -- path family --------------------------------------------------------------------------


@responses.activate
def test_auto_probes_pjm_then_project_and_remembers() -> None:
    token()
    responses.get(f"{URL}/v1/pjm/workitems", status=404, json={"code": "100002", "message": "x"})
    responses.get(f"{URL}/v1/project/work_items", json=page([wi(1)], total=1))
    project("project")
    c = make(api_family="auto")
    assert c.check() == "project HBR (官网改版), API /v1/project"
    assert c.state["api_family"] == "project"
    assert c.notes == ["PingCode API family: /v1/project (probed)"]
    probe = calls_to("/open/v1/project/work_items")[0]
    assert query(probe) == {"page_size": ["1"]}

    # The next run reads the remembered family: no probe.
    responses.calls.reset()
    again = make(api_family="auto")
    again.state = {"api_family": "project"}
    assert again.family() == "project"
    assert len(responses.calls) == 0


@responses.activate
def test_no_family_answers_is_a_clear_error() -> None:
    token()
    responses.get(f"{URL}/v1/pjm/workitems", status=404)
    responses.get(f"{URL}/v1/project/work_items", status=410)
    with pytest.raises(SourceError) as err:
        make(api_family="auto").check()
    assert str(err.value) == (
        "pc: neither /v1/pjm/workitems nor /v1/project/work_items answers at"
        " https://pc.example/open; check url (public cloud https://open.pingcode.com, private"
        " deployment https://<host>/open)"
    )


@responses.activate
def test_a_remembered_family_that_moved_is_probed_again() -> None:
    token()
    responses.get(f"{URL}/v1/project/work_items", status=404, json={"code": "1", "message": "gone"})
    responses.get(f"{URL}/v1/pjm/workitems", json=page([], total=0))  # the probe
    responses.get(f"{URL}/v1/pjm/workitems", json=page([wi(7)]))
    c = make(api_family="auto")
    c.state = {"api_family": "project", "project": {"ref": "HBR", "id": PID}}
    items = list(c.fetch_items(None))
    assert [i.key for i in items] == ["HBR-7"]
    assert c.state["api_family"] == "pjm"
    assert query(calls_to("/open/v1/pjm/workitems")[1])["project_id"] == [PID]


@responses.activate
def test_configured_family_is_used_without_probe() -> None:
    token()
    project("project")
    responses.get(f"{URL}/v1/project/work_items", json=page([wi(1)]))
    c = make(api_family="project")
    list(c.fetch_items(None))
    assert calls_to("/open/v1/pjm/workitems") == []
    assert query(calls_to("/open/v1/project/work_items")[0])["project_ids"] == [PID]


# -- listing and incremental --------------------------------------------------------------


@responses.activate
def test_paging_follows_page_index_until_total() -> None:
    token()
    project()
    responses.get(f"{URL}/v1/pjm/workitems", json={**page([wi(1), wi(2)], total=3), "page_size": 2})
    responses.get(
        f"{URL}/v1/pjm/workitems", json={**page([wi(3)], total=3, index=1), "page_size": 2}
    )
    c = make(page_size=2)
    assert [i.key for i in c.fetch_items(None)] == ["HBR-1", "HBR-2", "HBR-3"]
    calls = calls_to("/open/v1/pjm/workitems")
    assert [query(x)["page_index"] for x in calls] == [["0"], ["1"]]
    assert [query(x)["page_size"] for x in calls] == [["2"], ["2"]]
    assert query(calls[0])["include_archived"] == ["true"]


@responses.activate
def test_project_family_incremental_uses_updated_between() -> None:
    token()
    project("project")
    responses.get(f"{URL}/v1/project/work_items", json=page([wi(5, updated_at=1_790_000_100)]))
    c = make(api_family="project", history="off")
    since = datetime.fromtimestamp(1_790_000_000, UTC)
    items = list(c.fetch_items(since))
    assert [i.key for i in items] == ["HBR-5"]
    assert query(calls_to("/open/v1/project/work_items")[0])["updated_between"] == ["1790000000"]
    assert c.notes == [
        "incremental by updated_between (server-side filter on /v1/project/work_items): 1 updated since the last sync"
    ]


@responses.activate
def test_pjm_server_that_ignores_updated_between_gets_compared_on_updated_at() -> None:
    token()
    project()
    old, new = wi(1, updated_at=1_780_000_000), wi(2, updated_at=1_790_000_500)
    responses.get(f"{URL}/v1/pjm/workitems", json=page([old, new]))
    c = make(history="off")
    since = datetime.fromtimestamp(1_790_000_000, UTC)
    assert [i.key for i in c.fetch_items(since)] == ["HBR-2"]
    assert c.notes == [
        "incremental by a full pass compared on updated_at (/v1/pjm/workitems ignores"
        " updated_between): 2 read, 1 updated since the last sync"
    ]
    # That pass saw every live item: the census costs nothing.
    before = len(responses.calls)
    assert sorted(c.fetch_ids() or []) == [old["id"], new["id"]]
    assert len(responses.calls) == before


@responses.activate
def test_pjm_server_that_rejects_updated_between_falls_back_and_remembers() -> None:
    token()
    project()
    responses.get(
        f"{URL}/v1/pjm/workitems",
        status=400,
        json={"code": "100004", "message": "不支持的参数"},
    )
    responses.get(f"{URL}/v1/pjm/workitems", json=page([wi(1, updated_at=1_790_000_500)]))
    c = make(history="off")
    since = datetime.fromtimestamp(1_790_000_000, UTC)
    assert [i.key for i in c.fetch_items(since)] == ["HBR-1"]
    assert c.state["updated_between"] == "rejected"
    calls = calls_to("/open/v1/pjm/workitems")
    assert "updated_between" in query(calls[0])
    assert "updated_between" not in query(calls[1])
    assert c.notes == [
        "/v1/pjm/workitems rejected updated_between (HTTP 400); using a full pass",
        "incremental by a full pass compared on updated_at (/v1/pjm/workitems does not accept"
        " updated_between): 1 read, 1 updated since the last sync",
    ]
    # Next run: not sent at all.
    responses.calls.reset()
    again = make(history="off")
    again.state = dict(c.state)
    list(again.fetch_items(since))
    assert "updated_between" not in query(calls_to("/open/v1/pjm/workitems")[0])


@responses.activate
def test_census_lists_every_live_id_when_the_pass_was_filtered() -> None:
    token()
    project()
    responses.get(f"{URL}/v1/pjm/workitems", json=page([wi(1, updated_at=1_790_000_500)]))
    responses.get(
        f"{URL}/v1/pjm/workitems",
        json=page([wi(1), wi(2), wi(3, is_deleted=1), wi(4, type="milestone")]),
    )
    c = make(history="off")
    list(c.fetch_items(datetime.fromtimestamp(1_790_000_000, UTC)))
    assert list(c.fetch_ids() or []) == [wi(1)["id"], wi(2)["id"]]
    census = calls_to("/open/v1/pjm/workitems")[1]
    assert "updated_between" not in query(census)


# -- mapping ------------------------------------------------------------------------------


@responses.activate
def test_state_type_decides_the_category_never_the_chinese_name() -> None:
    token()
    project()
    states = [
        {"id": "a", "name": "已完成", "type": "pending"},  # a misleading name
        {"id": "b", "name": "开发中", "type": "in_progress"},
        {"id": "c", "name": "待处理", "type": "completed"},
        {"id": "d", "name": "已关闭", "type": "closed"},
        {"id": "e", "name": "奇怪", "type": "frozen"},
    ]
    body = page([wi(n, state=s) for n, s in enumerate(states, 1)])
    responses.get(f"{URL}/v1/pjm/workitems", json=body)
    items = list(make().fetch_items(None))
    assert [(i.status, i.category) for i in items] == [
        ("已完成", StatusCategory.TODO),
        ("开发中", StatusCategory.IN_PROGRESS),
        ("待处理", StatusCategory.DONE),
        ("已关闭", StatusCategory.CANCELLED),
        ("奇怪", StatusCategory.TODO),
    ]


@responses.activate
def test_closed_category_status_map_and_blocked_statuses_are_configurable() -> None:
    token()
    project()
    states = [
        {"id": "d", "name": "已关闭", "type": "closed"},
        {"id": "e", "name": "奇怪", "type": "frozen"},
        {"id": "f", "name": "阻塞", "type": "in_progress"},
    ]
    responses.get(
        f"{URL}/v1/pjm/workitems", json=page([wi(n, state=s) for n, s in enumerate(states, 1)])
    )
    c = make(
        closed_category="done",
        status_map={"奇怪": "in_progress"},
        blocked_statuses=["阻塞"],
    )
    items = list(c.fetch_items(None))
    assert [i.category for i in items] == [
        StatusCategory.DONE,
        StatusCategory.IN_PROGRESS,
        StatusCategory.IN_PROGRESS,
    ]
    assert [i.blocked for i in items] == [False, False, True]


@responses.activate
def test_unknown_state_type_is_noted_once() -> None:
    token()
    project()
    frozen = {"id": "e", "name": "冻结", "type": "frozen"}
    responses.get(f"{URL}/v1/pjm/workitems", json=page([wi(1, state=frozen), wi(2, state=frozen)]))
    c = make()
    list(c.fetch_items(None))
    assert c.notes[0] == (
        "unknown PingCode state type 'frozen' (state '冻结') counted as todo; map it with status_map"
    )
    assert len(c.notes) == 2  # the note above and the pass summary


@responses.activate
def test_work_item_fields_are_mapped() -> None:
    token()
    project()
    raw = wi(
        1,
        type="bug",
        parent_id="5edf00000000000000000001",
        priority={"id": "p", "name": "最高"},
        assignee={"id": "u", "name": "john", "display_name": "John"},
        tags=[{"id": "t", "name": "change-request"}, {"id": "t2", "name": "needs-client"}],
        sprint={"id": "sp1", "name": "Sprint 1"},
        version={"id": "v1", "name": "1.0.1"},
        start_at=1680278400,
        end_at=1682870399,
        completed_at=1682870000,
        story_points=3,
        estimated_workload=12,
        state={"id": "c", "name": "已完成", "type": "completed"},
    )
    responses.get(f"{URL}/v1/pjm/workitems", json=page([raw]))
    (item,) = make().fetch_items(None)
    assert item.model_dump(exclude={"raw", "transitions"}) == {
        "source": "pc",
        "id": raw["id"],
        "key": "HBR-1",
        "title": "工作项 1",
        "url": "https://acme.pingcode.com/pjm/workitems/s1",
        "kind": "bug",
        "status": "已完成",
        "category": StatusCategory.DONE,
        "assignee": "John",
        "priority": "最高",
        "labels": ["change-request", "needs-client"],
        "parent_id": "5edf00000000000000000001",
        "milestone_id": "v1",
        "start_date": date(2023, 4, 1),
        "due_date": date(2023, 4, 30),
        "created_at": datetime.fromtimestamp(1_779_000_000, UTC),
        "updated_at": datetime.fromtimestamp(1_779_900_001, UTC),
        "completed_at": datetime.fromtimestamp(1682870000, UTC),
        "estimate": 3.0,
        "progress": None,
        "blocked": False,
    }
    assert item.raw == raw


@responses.activate
def test_sprint_is_the_milestone_without_a_version_and_workload_the_estimate() -> None:
    token()
    project()
    raw = wi(2, sprint={"id": "sp1", "name": "Sprint 1"}, estimated_workload=8, type="5f00aa")
    responses.get(
        f"{URL}/v1/pjm/workitems", json=page([raw, wi(3, type={"id": "x", "name": "需求"})])
    )
    first, second = make().fetch_items(None)
    assert (first.milestone_id, first.estimate, first.kind) == ("sp1", 8.0, "5f00aa")
    assert second.kind == "需求"


@responses.activate
def test_deleted_and_milestone_items_are_not_work_items() -> None:
    token()
    project()
    body = page([wi(1), wi(2, is_deleted=1), wi(3, type="milestone"), wi(4, type="5f00bb")])
    responses.get(f"{URL}/v1/pjm/workitems", json=body)
    c = make(milestone_types=["milestone", "5f00bb"])
    assert [i.key for i in c.fetch_items(None)] == ["HBR-1"]


# -- history and milestones ---------------------------------------------------------------


@responses.activate
def test_transitions_come_from_transition_histories_for_changed_items() -> None:
    token()
    project()
    raw = wi(1, state={"id": "c", "name": "已完成", "type": "completed"}, updated_at=1_790_000_500)
    responses.get(f"{URL}/v1/pjm/workitems", json=page([raw]))
    responses.get(
        f"{URL}/v1/pjm/workitems/{raw['id']}/transition_histories",
        json=page([
            {"from_state": {"name": "进行中", "type": "in_progress"},
             "to_state": {"name": "已完成", "type": "completed"}, "created_at": 1_790_000_400},
            {"from_state": None, "to_state": {"name": "进行中", "type": "in_progress"},
             "created_at": 1_789_000_000, "created_by": {"id": "u"}},
            {"from_state": {"name": "x", "type": "pending"}, "to_state": None, "created_at": 1},
        ]),
    )  # fmt: skip
    (item,) = make().fetch_items(datetime.fromtimestamp(1_790_000_000, UTC))
    assert item.transitions is not None
    assert [
        (t.at, t.from_status, t.to_status, t.from_category, t.to_category) for t in item.transitions
    ] == [
        (
            datetime.fromtimestamp(1_789_000_000, UTC),
            None,
            "进行中",
            None,
            StatusCategory.IN_PROGRESS,
        ),
        (
            datetime.fromtimestamp(1_790_000_400, UTC),
            "进行中",
            "已完成",
            StatusCategory.IN_PROGRESS,
            StatusCategory.DONE,
        ),
    ]


@responses.activate
def test_full_sync_reads_no_history_unless_asked() -> None:
    token()
    project()
    done = wi(1, state={"id": "c", "name": "已完成", "type": "completed"})
    responses.get(f"{URL}/v1/pjm/workitems", json=page([done, wi(2)]))
    responses.get(f"{URL}/v1/pjm/workitems/{done['id']}/transition_histories", json=page([]))
    items = list(make().fetch_items(None))
    assert [i.transitions for i in items] == [None, None]
    assert len(responses.calls) == 3  # token, project, one page
    items = list(make(history="all").fetch_items(None))
    history_calls = [c for c in responses.calls if "transition_histories" in c.request.url]
    assert len(history_calls) == 1  # the done item only; the pending one never moved


@responses.activate
def test_missing_history_endpoint_is_noted_and_not_asked_again() -> None:
    token()
    project()
    a, b = wi(1, updated_at=1_790_000_500), wi(2, updated_at=1_790_000_600)
    responses.get(f"{URL}/v1/pjm/workitems", json=page([a, b]))
    responses.get(f"{URL}/v1/pjm/workitems/{a['id']}/transition_histories", status=404)
    c = make()
    items = list(c.fetch_items(datetime.fromtimestamp(1_790_000_000, UTC)))
    assert [i.transitions for i in items] == [None, None]
    assert c.notes[0] == (
        f"no transition history at /v1/pjm/workitems/{a['id']}/transition_histories (HTTP 404);"
        " status changes are observed between syncs instead"
    )
    assert sum("transition_histories" in x.request.url for x in responses.calls) == 1


@responses.activate
def test_milestones_from_releases_sprints_and_milestone_work_items() -> None:
    token()
    project()
    responses.get(
        f"{URL}/v1/pjm/projects/{PID}/releases",
        json=page([
            {"id": "r1", "name": "1.0.0", "start_at": 1680278400, "end_at": 1682870399,
             "stage": {"name": "已发布", "type": "published"}},
            {"id": "r2", "name": "1.1.0", "end_at": 1685548799, "stage": {"name": "未开始", "type": "pending"}},
        ]),
    )  # fmt: skip
    responses.get(f"{URL}/v1/pjm/projects/{PID}/sprints", status=404)
    responses.get(
        f"{URL}/v1/pjm/workitems",
        json=page([wi(9, type="milestone", title="上线", end_at=1685548799,
                      state={"id": "c", "name": "已完成", "type": "completed"})]),
    )  # fmt: skip
    c = make()
    milestones = {m.id: m for m in c.fetch_milestones()}
    assert milestones["r1"].model_dump() == {
        "source": "pc",
        "id": "r1",
        "name": "1.0.0",
        "start_date": date(2023, 4, 1),
        "due_date": date(2023, 4, 30),
        "state": "closed",
        "url": None,
    }
    assert (milestones["r2"].state, milestones["r2"].due_date) == ("open", date(2023, 5, 31))
    m9 = milestones[wi(9)["id"]]
    assert (m9.name, m9.state, m9.due_date) == ("上线", "closed", date(2023, 5, 31))
    type_query = query(calls_to("/open/v1/pjm/workitems")[0])
    assert type_query["type_id"] == ["milestone"]
    assert c.notes == [f"no sprints at /v1/pjm/projects/{PID}/sprints (HTTP 404)"]


@responses.activate
def test_project_family_milestones_are_versions() -> None:
    token()
    project("project")
    responses.get(
        f"{URL}/v1/project/projects/{PID}/versions", json=page([{"id": "v1", "name": "1.0"}])
    )
    responses.get(
        f"{URL}/v1/project/projects/{PID}/sprints",
        json=page([{"id": "s1", "name": "Sprint 1", "status": "completed", "end_at": 1682870399}]),
    )
    responses.get(
        f"{URL}/v1/project/work_items", status=400, json={"code": "1", "message": "类型无效"}
    )
    c = make(api_family="project")
    assert sorted((m.id, m.state) for m in c.fetch_milestones()) == [
        ("s1", "closed"),
        ("v1", "open"),
    ]
    assert query(calls_to("/open/v1/project/work_items")[0])["type_ids"] == ["milestone"]
    assert c.notes == [
        "work-item type 'milestone' cannot be listed (HTTP 400); check milestone_types"
    ]


# -- errors -------------------------------------------------------------------------------


@responses.activate
def test_error_bodies_are_surfaced_in_one_line() -> None:
    token()
    responses.get(
        f"{URL}/v1/pjm/projects",
        status=403,
        json={"code": "100005", "message": "没有权限\n访问该资源"},
    )
    with pytest.raises(SourceError) as err:
        make().check()
    assert str(err.value) == (
        "pc: PingCode GET /v1/pjm/projects failed: code 100005 没有权限 访问该资源 (HTTP 403);"
        " the app's data range (scopes) does not allow this: grant it in 企业后台 → 凭据管理"
    )


@responses.activate
def test_unknown_project_is_a_clear_error() -> None:
    token()
    responses.get(f"{URL}/v1/pjm/projects", json=page([{"id": "x", "identifier": "OTHER"}]))
    with pytest.raises(SourceError) as err:
        make().check()
    assert str(err.value) == (
        "pc: no PingCode project 'HBR' visible to this app; check `project` (identifier such as"
        " SCR, or the project id) and the app's data range"
    )


@responses.activate
def test_project_by_id_and_cached_in_state() -> None:
    token()
    responses.get(
        f"{URL}/v1/pjm/projects/{PID}", json={"id": PID, "identifier": "HBR", "name": "n"}
    )
    c = make(project=PID)
    assert c.project() == {"id": PID, "identifier": "HBR", "name": "n"}
    assert c.state["project"] == {"ref": PID, "id": PID, "identifier": "HBR", "name": "n"}
    again = make(project=PID)
    again.state = dict(c.state)
    responses.calls.reset()
    assert again.project()["id"] == PID
    assert len(responses.calls) == 0


@pytest.mark.parametrize("header", ["x-pc-retry-after", "X-RateLimit-Retry-After"])
@responses.activate
def test_429_honours_pingcode_retry_headers(header: str) -> None:
    token()
    project()
    responses.get(
        f"{URL}/v1/pjm/workitems",
        status=429,
        headers={header: "7"},
        json={"code": "100038", "message": "请求频率过高"},
    )
    responses.get(f"{URL}/v1/pjm/workitems", json=page([wi(1)]))
    c = make()
    assert [i.key for i in c.fetch_items(None)] == ["HBR-1"]
    assert sleeps == [7.0]
    assert c.http is not None and c.http.retries == 1


@responses.activate
def test_truncated_json_is_a_source_error() -> None:
    token()
    project()
    responses.get(f"{URL}/v1/pjm/workitems", body='{"values": [{"id": "1", "ti')
    with pytest.raises(SourceError, match="invalid or truncated JSON"):
        list(make().fetch_items(None))


@responses.activate
def test_answer_without_values_is_a_source_error() -> None:
    token()
    project()
    responses.get(f"{URL}/v1/pjm/workitems", json={"data": []})
    with pytest.raises(SourceError) as err:
        list(make().fetch_items(None))
    assert str(err.value) == (
        "pc: unexpected answer from /v1/pjm/workitems (no `values` list); check url and api_family"
    )


@responses.activate
def test_no_secret_or_token_reaches_raw_state_or_errors() -> None:
    token("tok-very-secret-9")
    project()
    responses.get(f"{URL}/v1/pjm/workitems", json=page([wi(1)], total=2))
    responses.get(
        f"{URL}/v1/pjm/workitems",
        status=500,
        json={"code": "100000", "message": f"echo {SECRET} tok-very-secret-9"},
    )
    c = make(page_size=1)
    with pytest.raises(SourceError) as err:
        list(c.fetch_items(None))
    dumped = json.dumps(c.state) + str(err.value)
    assert "tok-very-secret-9" not in dumped and SECRET not in dumped
    assert "echo *** ***" in str(err.value)


# -- publishing ---------------------------------------------------------------------------


def a_report(title: str = "修复登录 <script>x</script> @everyone", language: str = "en") -> Report:
    store = Store.memory()
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    store.upsert_items(
        [
            WorkItem(
                source="pc",
                id="1",
                key="HBR-1",
                title=title,
                status="进行中",
                category=StatusCategory.IN_PROGRESS,
                url="https://acme.pingcode.com/x/1",
                created_at=now - timedelta(days=3),
                updated_at=now - timedelta(days=1),
            ),
            WorkItem(
                source="pc",
                id="2",
                key="HBR-2",
                title="done",
                status="已完成",
                category=StatusCategory.DONE,
                url="javascript:alert(1)",
                created_at=now - timedelta(days=3),
                updated_at=now - timedelta(days=1),
                completed_at=now - timedelta(days=1),
            ),
        ]
    )
    config = Config(
        sources={"pc": PingCodeSettings(client_id="c", client_secret="x", project="HBR")},
        projects={
            "web": ProjectSettings(
                name="Web @team", client="ACME", sources=["pc"], language=language
            )
        },
    )
    return build_report(store, config, "web", now=now)


def target(**kw: Any) -> PublishTarget:
    return PublishTarget(to="pc", **{"work_item": "HBR-12", **kw})


def test_render_is_escaped_html_with_mentions_broken() -> None:
    body = make().render(target(), a_report())
    assert "<script>" not in body
    assert "&lt;script&gt;x&lt;/script&gt;" in body
    assert "@everyone" not in body and "@\u200beveryone" in body
    assert "Web @\u200bteam" in body
    assert '<a href="https://acme.pingcode.com/x/1">HBR-1</a>' in body
    assert "javascript:" not in body  # an unsafe URL is not linked
    assert body.startswith("<h3>Status report: Web @\u200bteam</h3>")


def test_render_follows_the_report_language() -> None:
    body = make().render(target(), a_report(language="zh-CN"))
    assert body.startswith("<h3>项目状态报告: Web @\u200bteam</h3>")


def test_render_stays_under_the_size_cap() -> None:
    report = a_report(title="长" * 190)
    many = [report.in_progress[0].model_copy(update={"key": f"HBR-{n}"}) for n in range(3000)]
    big = report.model_copy(update={"in_progress": many, "overdue": many, "upcoming": many})
    body = report_html(big)
    assert len(body) <= 50_000
    assert "and 2" in body  # "and N more"


def test_render_refuses_bad_target_options() -> None:
    with pytest.raises(PublishError, match="invalid publish target options"):
        make().render(PublishTarget(to="pc"), a_report())
    with pytest.raises(PublishError, match="invalid publish target options"):
        make().render(target(issue="X-1"), a_report())


def comment_setup(first_status: int = 200) -> None:
    token()
    responses.get(
        f"{URL}/v1/pjm/workitems",
        json=page([wi(12, html_url="https://acme.pingcode.com/pjm/workitems/s12")]),
    )
    if first_status != 200:
        responses.post(
            f"{URL}/v1/comments",
            status=first_status,
            json={"code": "100011", "message": "principal_type 无效"},
        )
    responses.post(f"{URL}/v1/comments", json={"id": "59f7c1", "content": "x"})


@responses.activate
def test_publish_posts_a_workitem_comment() -> None:
    comment_setup()
    c = make()
    report = a_report()
    ref = c.publish(target(), report, None)
    assert ref.model_dump() == {
        "id": "59f7c1",
        "url": "https://acme.pingcode.com/pjm/workitems/s12",
        "changed": True,
    }
    lookup = calls_to("/open/v1/pjm/workitems")[0]
    assert query(lookup)["identifier"] == ["HBR-12"]
    sent = json.loads(calls_to("/open/v1/comments")[0].request.body)
    assert sent == {
        "principal_type": "workitem",
        "principal_id": wi(12)["id"],
        "content": c.render(target(), report),
    }
    assert c.state["comment_principal_type"] == "workitem"


@responses.activate
def test_publish_falls_back_to_work_item_principal_type() -> None:
    comment_setup(first_status=400)
    c = make()
    assert c.publish(target(), a_report(), None).id == "59f7c1"
    kinds = [json.loads(x.request.body)["principal_type"] for x in calls_to("/open/v1/comments")]
    assert kinds == ["workitem", "work_item"]
    assert c.state["comment_principal_type"] == "work_item"


@responses.activate
def test_publish_error_when_both_principal_types_fail() -> None:
    token()
    responses.get(f"{URL}/v1/pjm/workitems", json=page([wi(12)]))
    for _ in range(2):
        responses.post(
            f"{URL}/v1/comments",
            status=400,
            json={"code": "100011", "message": "principal_type 无效"},
        )
    with pytest.raises(PublishError) as err:
        make().publish(target(), a_report(), None)
    assert str(err.value).startswith(
        "pc: PingCode POST /v1/comments failed: code 100011 principal_type 无效 (HTTP 400)"
    )


@responses.activate
def test_unchanged_report_is_never_reposted() -> None:
    c = make()
    report = a_report()
    body = c.render(target(), report)
    previous = Publication(
        project="web", target="pc", period=report.period_id, remote_id="59f7old",
        content_hash=sorted(content_hashes(body))[0], url="https://u",
        published_at=datetime(2026, 11, 26, tzinfo=UTC),
    )  # fmt: skip
    ref = c.publish(target(), report, previous)
    assert ref.model_dump() == {"id": "59f7old", "url": "https://u", "changed": False}
    assert len(responses.calls) == 0


@responses.activate
def test_changed_report_posts_anew_and_deletes_the_old_comment() -> None:
    comment_setup()
    responses.delete(f"{URL}/v1/comments/59f7old", json={"id": "59f7old"})
    c = make()
    previous = Publication(
        project="web", target="pc", period="p", remote_id="59f7old", content_hash="different",
        published_at=datetime(2026, 11, 26, tzinfo=UTC),
    )  # fmt: skip
    assert c.publish(target(), a_report(), previous).id == "59f7c1"
    (delete,) = calls_to("/open/v1/comments/59f7old")
    assert query(delete) == {"principal_type": ["workitem"], "principal_id": [wi(12)["id"]]}
    # Keeping the old comment is allowed too.
    responses.calls.reset()
    make().publish(target(replace_previous=False), a_report(), previous)
    assert calls_to("/open/v1/comments/59f7old") == []


@responses.activate
def test_failed_delete_of_the_old_comment_is_only_a_note() -> None:
    comment_setup()
    responses.delete(f"{URL}/v1/comments/59f7old", status=403, json={"code": "1", "message": "no"})
    c = make()
    previous = Publication(
        project="web", target="pc", period="p", remote_id="59f7old", content_hash="x",
        published_at=datetime(2026, 11, 26, tzinfo=UTC),
    )  # fmt: skip
    assert c.publish(target(), a_report(), previous).changed is True
    assert c.notes == ["could not delete the replaced comment 59f7old (HTTP 403)"]


@responses.activate
def test_publish_to_an_unknown_work_item_is_a_publish_error() -> None:
    token()
    responses.get(f"{URL}/v1/pjm/workitems", json=page([]))
    with pytest.raises(PublishError) as err:
        make().publish(target(), a_report(), None)
    assert str(err.value) == (
        "pc: no PingCode work item 'HBR-12'; check the publish target's work_item (identifier"
        " such as PRJ-12, or the work item id)"
    )
    assert calls_to("/open/v1/comments") == []


@responses.activate
def test_publish_by_work_item_id() -> None:
    token()
    wid = wi(12)["id"]
    responses.get(f"{URL}/v1/pjm/workitems/{wid}", json=wi(12))
    responses.post(f"{URL}/v1/comments", json={"id": "c9"})
    ref = make().publish(target(work_item=wid), a_report(), None)
    assert (ref.id, ref.url) == ("c9", wi(12)["html_url"])


@responses.activate
def test_comment_created_without_id_is_a_publish_error() -> None:
    token()
    responses.get(f"{URL}/v1/pjm/workitems", json=page([wi(12)]))
    responses.post(f"{URL}/v1/comments", json={"content": "x"})
    with pytest.raises(PublishError, match="returned no id"):
        make().publish(target(), a_report(), None)


@responses.activate
def test_a_server_that_ignores_page_index_does_not_loop_forever() -> None:
    token()
    project()
    for _ in range(2):
        responses.get(f"{URL}/v1/pjm/workitems", json={**page([wi(1)], total=5), "page_size": 1})
    with pytest.raises(SourceError) as err:
        list(make(page_size=1).fetch_items(None))
    assert str(err.value) == (
        "pc: /v1/pjm/workitems returned page 1 twice (page_index ignored?); stopping instead of"
        " looping"
    )


@responses.activate
def test_probe_counts_a_400_as_a_served_family() -> None:
    token()
    responses.get(
        f"{URL}/v1/pjm/workitems", status=400, json={"code": "100004", "message": "缺少 project_id"}
    )
    c = make(api_family="auto")
    assert c.family() == "pjm"
    assert calls_to("/open/v1/project/work_items") == []


@responses.activate
def test_history_404_for_one_item_after_others_answered_skips_only_that_item() -> None:
    token()
    project()
    a, b, c3 = (wi(n, updated_at=1_790_000_500 + n) for n in (1, 2, 3))
    responses.get(f"{URL}/v1/pjm/workitems", json=page([a, b, c3]))
    responses.get(f"{URL}/v1/pjm/workitems/{a['id']}/transition_histories", json=page([]))
    responses.get(f"{URL}/v1/pjm/workitems/{b['id']}/transition_histories", status=404)
    responses.get(
        f"{URL}/v1/pjm/workitems/{c3['id']}/transition_histories",
        json=page(
            [{"to_state": {"name": "进行中", "type": "in_progress"}, "created_at": 1_790_000_000}]
        ),
    )
    c = make()
    items = list(c.fetch_items(datetime.fromtimestamp(1_790_000_000, UTC)))
    assert [i.transitions is None for i in items] == [True, True, False]
    assert not any("no transition history" in n for n in c.notes)


@responses.activate
def test_publish_with_bad_credentials_is_a_publish_error() -> None:
    responses.get(f"{URL}/v1/auth/token", status=401, json={"code": "100009", "message": "错误"})
    with pytest.raises(PublishError, match="cannot get a PingCode token"):
        make().publish(target(), a_report(), None)


CONFIG = """
[sources.pc]
kind = "pingcode"
url = "https://pc.example/open"
client_id = "cid"
client_secret = "${PC_SECRET}"
project = "HBR"
status_map = { "挂起" = "in_progress" }

[projects.web]
name = "Web"
sources = ["pc"]

[[projects.web.publish]]
to = "pc"
"""


def test_config_accepts_a_pingcode_source_and_work_item_target(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config.loader import load_config

    monkeypatch.setenv("PC_SECRET", SECRET)
    path = tmp_path / "pmsync.toml"
    path.write_text(CONFIG + 'work_item = "HBR-1"\n', encoding="utf-8")
    config = load_config(path)
    settings = config.sources["pc"]
    assert isinstance(settings, PingCodeSettings)
    assert settings.client_secret.get_secret_value() == SECRET
    assert settings.status_map == {"挂起": StatusCategory.IN_PROGRESS}
    assert config.projects["web"].publish[0].options == {"work_item": "HBR-1"}


def test_config_refuses_a_pingcode_target_without_work_item(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config.loader import load_config
    from sync.errors import ConfigError

    monkeypatch.setenv("PC_SECRET", SECRET)
    path = tmp_path / "pmsync.toml"
    path.write_text(CONFIG, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "projects.web.publish[0]" in str(err.value)
    assert "work_item" in str(err.value)
