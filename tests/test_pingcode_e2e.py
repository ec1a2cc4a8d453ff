"""PingCode end to end: the local fake server, the connector, the sync engine and the store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from config.schema import Config, ProjectSettings
from connectors.base import Publication, PublishTarget
from connectors.pingcode import PingCodeConnector, PingCodeSettings, content_hashes
from sync.engine import sync_source
from sync.errors import SourceError
from sync.model import StatusCategory
from sync.report import build_report
from sync.store import Store
from tests.fakes.pingcode import PROJECT_ID, STATES, T0, FakePingCode

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[FakePingCode]:
    with FakePingCode() as srv:
        yield srv


def connector(srv: FakePingCode, **kw: Any) -> PingCodeConnector:
    values: dict[str, Any] = {
        "url": srv.url,
        "client_id": srv.client_id,
        "client_secret": srv.client_secret,
        "project": "HBR",
    }
    values.update(kw)
    c = PingCodeConnector("pc", PingCodeSettings(**values))
    assert c.http is not None
    c.http.sleep = lambda s: None
    c.clock = srv.clock
    return c


def categories(store: Store) -> dict[StatusCategory, int]:
    out: dict[StatusCategory, int] = {}
    for item in store.items(["pc"]):
        out[item.category] = out.get(item.category, 0) + 1
    return out


def test_full_then_incremental_sync(server: FakePingCode) -> None:
    server.seed(250)
    store = Store.memory()
    first = sync_source(store, connector(server), full=True, now=NOW)
    assert (first.status, first.new, first.seen, first.error) == ("ok", 250, 250, None)
    assert first.notes == [
        "PingCode API family: /v1/pjm (probed)",
        "full pass: 250 work items (/v1/pjm/workitems)",
    ]
    # 1 token + 1 probe + 1 project + 3 pages + releases + sprints + milestone-type listing
    assert first.requests == 9
    # The four state types in turn; the Chinese names decide nothing.
    assert categories(store) == {
        StatusCategory.TODO: 62,
        StatusCategory.IN_PROGRESS: 63,
        StatusCategory.DONE: 63,
        StatusCategory.CANCELLED: 62,
    }
    item = next(i for i in store.items(["pc"]) if i.key == "HBR-2")
    assert (item.status, item.category, item.estimate) == ("已完成", StatusCategory.DONE, 2.0)
    assert store.cursor("pc")["state"]["api_family"] == "pjm"

    # One item moves to done, with its history; the next sync asks only for what changed.
    target = next(i for i in server.items.values() if i["identifier"] == "HBR-4")
    moved_at = T0 + 600 * 400
    server.histories[target["id"]] = [
        {"from_state": STATES["pending"], "to_state": STATES["in_progress"], "created_at": moved_at - 100},
        {"from_state": STATES["in_progress"], "to_state": STATES["completed"], "created_at": moved_at},
    ]  # fmt: skip
    server.touch(target["id"], moved_at, state=STATES["completed"], completed_at=moved_at)
    server.log.clear()
    second = sync_source(store, connector(server), now=NOW + timedelta(hours=1))
    assert (second.status, second.mode, second.new, second.changed) == ("ok", "incremental", 0, 1)
    assert second.notes == [
        "incremental by updated_between (server-side filter on /v1/pjm/workitems): 2 updated since the last sync"
    ]
    lists = server.requests_to(r"^/v1/pjm/workitems$")
    watermark = T0 + 600 * 250 - 300  # newest updated_at minus the 5 minute overlap
    assert lists[0].arg("updated_between") == str(watermark)
    assert lists[0].arg("project_id") == PROJECT_ID
    assert server.requests_to(r"/v1/pjm/workitems$") == lists  # no probe: remembered
    done = [t for t in store.transitions(["pc"]) if t.item_id == target["id"]]
    assert [(t.to_status, t.to_category) for t in done] == [
        ("进行中", StatusCategory.IN_PROGRESS),
        ("已完成", StatusCategory.DONE),
    ]


def test_project_family_is_probed_once_and_remembered() -> None:
    with FakePingCode(family="project") as srv:
        srv.seed(5)
        store = Store.memory()
        result = sync_source(store, connector(srv), full=True, now=NOW)
        assert result.status == "ok" and result.new == 5
        assert store.cursor("pc")["state"]["api_family"] == "project"
        assert len(srv.requests_to(r"^/v1/pjm/workitems$")) == 1  # the probe's 404
        srv.log.clear()
        again = sync_source(store, connector(srv), now=NOW + timedelta(hours=1))
        assert again.status == "ok"
        assert srv.requests_to(r"^/v1/pjm/") == []
        assert srv.requests_to(r"^/v1/project/work_items$")[0].arg("updated_between") is not None


@pytest.mark.parametrize("mode", ["ignore", "reject"])
def test_pjm_without_updated_between_still_syncs_correctly(mode: str) -> None:
    with FakePingCode(updated_between=mode) as srv:  # type: ignore[arg-type]
        srv.seed(30)
        store = Store.memory()
        assert sync_source(store, connector(srv), full=True, now=NOW).status == "ok"
        ids = list(srv.items)
        srv.touch(ids[0], T0 + 600 * 100, title="改了标题")
        srv.delete(ids[1])
        srv.log.clear()
        result = sync_source(
            store, connector(srv), now=NOW + timedelta(days=2), census_every=timedelta(hours=24)
        )
        assert (result.status, result.changed, result.tombstoned) == ("ok", 1, 1)
        why = "ignores" if mode == "ignore" else "does not accept"
        assert result.notes[-1] == (
            f"incremental by a full pass compared on updated_at (/v1/pjm/workitems {why}"
            " updated_between): 29 read, 2 updated since the last sync"
        )
        # The census reused the full pass: every work-item listing was part of fetch_items.
        listings = srv.requests_to(r"^/v1/pjm/workitems$")
        assert len(listings) == (2 if mode == "reject" else 1) + 1  # + milestone-type listing
        assert next(i for i in store.items(["pc"]) if i.id == ids[0]).title == "改了标题"
        assert ids[1] not in {i.id for i in store.items(["pc"])}
        state = store.cursor("pc")["state"]
        assert state.get("updated_between") == ("rejected" if mode == "reject" else None)


def test_token_expiry_is_handled_before_and_after_the_server_says_so() -> None:
    clock = [float(T0)]
    with FakePingCode(expires="duration", lifetime=3600, clock=lambda: clock[0]) as srv:
        srv.seed(30)
        c = connector(srv, page_size=10)
        c.clock = lambda: clock[0]
        pages = c.fetch_items(None)
        first = [next(pages) for _ in range(10)]
        assert srv.tokens_issued == 1
        # An hour later the token is about to expire: a fresh one is fetched first.
        clock[0] += 3600 - 60
        more = [next(pages) for _ in range(10)]
        assert srv.tokens_issued == 2
        # The secret is reset: the server rejects the token; it is fetched again, once.
        srv.expire_tokens()
        rest = list(pages)
        assert srv.tokens_issued == 3
        assert len(first + more + rest) == 30
        assert srv.requests_to("/v1/auth/token")[0].arg("client_secret") == srv.client_secret


def test_a_token_that_keeps_being_rejected_fails_the_source(server: FakePingCode) -> None:
    server.seed(3)
    server.lifetime = -1  # every token is already expired when the server checks it
    store = Store.memory()
    result = sync_source(store, connector(server, api_family="pjm"), full=True, now=NOW)
    assert result.status == "failed"
    assert result.error == (
        "pc: PingCode GET /v1/pjm/projects failed: code 100003 令牌无效或已过期 (HTTP 401);"
        " rejected again after fetching a new token; check client_id and client_secret, and"
        " that the app was not deleted or its secret reset"
    )
    assert server.tokens_issued == 2


def test_wrong_secret_fails_with_one_line_and_no_secret(server: FakePingCode) -> None:
    store = Store.memory()
    c = connector(server, client_secret="wrong-secret-value")
    result = sync_source(store, c, full=True, now=NOW)
    assert result.status == "failed"
    assert result.error == (
        "pc: cannot get a PingCode token; client_id 'pc-client': code 100009 client_id 或"
        " client_secret 错误 (HTTP 401); check client_id and client_secret, and that the app"
        " still exists"
    )


def test_rate_limits_and_server_errors_are_retried(server: FakePingCode) -> None:
    server.seed(250)
    server.faults.add(
        "status",
        status=429,
        headers={"x-pc-retry-after": "0"},
        body={"code": "100038", "message": "请求频率过高"},
        times=2,
        path="workitems",
    )
    server.faults.add("status", status=503, times=1, path="workitems")
    server.faults.add("reset", times=1, path="workitems")
    result = sync_source(Store.memory(), connector(server), full=True, now=NOW)
    assert (result.status, result.new, result.retries) == ("ok", 250, 4)


def test_broken_answers_fail_the_run_and_the_next_run_recovers(server: FakePingCode) -> None:
    server.seed(250)
    store = Store.memory()
    server.faults.add("truncate", times=8, path="workitems")  # every attempt of one request
    result = sync_source(store, connector(server, api_family="pjm"), full=True, now=NOW)
    assert result.status == "failed"
    assert result.error == (
        f"pc: cannot reach {server.url}/v1/pjm/workitems: Connection broken; check the url and"
        " network"
    )
    server.faults.add("garbage", times=1, path="workitems")
    result = sync_source(store, connector(server, api_family="pjm"), full=True, now=NOW)
    assert result.status == "failed"
    assert (result.error or "").startswith("pc: invalid or truncated JSON from GET ")
    assert store.cursor("pc")["watermark"] is None
    again = sync_source(store, connector(server, api_family="pjm"), full=True, now=NOW)
    assert (again.status, again.seen, again.new) == ("ok", 250, 250)


def test_milestones_from_releases_sprints_and_milestone_items(server: FakePingCode) -> None:
    server.seed(3)
    server.versions = [
        {"id": "r1", "name": "1.0.0", "start_at": 1680278400, "end_at": 1682870399,
         "stage": {"name": "已发布", "type": "published"}},
    ]  # fmt: skip
    server.sprints = [
        {"id": "s1", "name": "Sprint 1", "status": "in_progress", "end_at": 1682870399}
    ]
    server.add_item(90, type="milestone", title="验收", end_at=1685548799)
    store = Store.memory()
    result = sync_source(store, connector(server), full=True, now=NOW)
    assert (result.status, result.new, result.milestones) == ("ok", 3, 3)
    milestones = {m.id: (m.name, m.state, str(m.due_date)) for m in store.milestones(["pc"])}
    assert milestones == {
        "r1": ("1.0.0", "closed", "2023-04-30"),
        "s1": ("Sprint 1", "open", "2023-04-30"),
        server.items["6efc0000000000000000005a"]["id"]: ("验收", "open", "2023-05-31"),
    }


def test_report_is_published_as_a_comment_once(server: FakePingCode) -> None:
    server.seed(12)
    store = Store.memory()
    c = connector(server)
    assert sync_source(store, c, full=True, now=NOW).status == "ok"
    server.add_item(
        200, title="<img src=x onerror=alert(1)> @all 请确认", state="in_progress", updated_at=T0
    )
    assert sync_source(store, connector(server), full=True, now=NOW).status == "ok"
    config = Config(
        sources={"pc": c.settings},
        projects={
            "web": ProjectSettings(name="官网改版", client="ACME", sources=["pc"], language="zh-CN")
        },
    )
    report = build_report(store, config, "web", now=NOW)
    target = PublishTarget(to="pc", work_item="HBR-12")
    pub = connector(server)
    body = pub.render(target, report)
    ref = pub.publish(target, report, None)
    assert ref.changed is True
    (comment,) = server.comments.values()
    assert comment["content"] == body
    assert comment["principal_type"] == "workitem"
    assert comment["principal_id"] == next(
        i["id"] for i in server.items.values() if i["identifier"] == "HBR-12"
    )
    assert "<img" not in body and "&lt;img src=x onerror=alert(1)&gt; @\u200ball" in body
    assert ref.url == "https://acme.pingcode.com/pjm/workitems/s0000012"

    # Same content: nothing is sent.
    previous = Publication(
        project="web", target="pc", period=report.period_id, remote_id=ref.id,
        content_hash=sorted(content_hashes(body))[0], url=ref.url, published_at=NOW,
    )  # fmt: skip
    server.log.clear()
    again = connector(server).publish(target, report, previous)
    assert (again.id, again.changed) == (ref.id, False)
    assert server.log == []

    # Changed content: a new comment, and the old one deleted.
    newer = build_report(store, config, "web", now=NOW, health="at_risk", note="等待客户确认")
    third = connector(server).publish(target, newer, previous)
    assert third.id != ref.id and third.changed is True
    assert server.comments[ref.id]["is_deleted"] == 1
    assert server.comments[third.id]["is_deleted"] == 0


def test_older_servers_take_work_item_as_principal_type() -> None:
    with FakePingCode(family="project", principal_types=("work_item",)) as srv:
        srv.seed(3)
        store = Store.memory()
        c = connector(srv, api_family="project")
        assert sync_source(store, c, full=True, now=NOW).status == "ok"
        config = Config(
            sources={"pc": c.settings},
            projects={"web": ProjectSettings(name="Web", sources=["pc"])},
        )
        pub = connector(srv, api_family="project")
        ref = pub.publish(
            PublishTarget(to="pc", work_item="HBR-2"),
            build_report(store, config, "web", now=NOW),
            None,
        )
        assert srv.comments[ref.id]["principal_type"] == "work_item"
        assert pub.state["comment_principal_type"] == "work_item"
        posts = srv.requests_to("/v1/comments", method="POST")
        assert len(posts) == 2


def test_check_reports_project_and_family(server: FakePingCode) -> None:
    assert connector(server).check() == "project HBR (官网改版), API /v1/pjm"
    with pytest.raises(SourceError, match="no PingCode project 'NOPE'"):
        connector(server, project="NOPE").check()
