"""Worktile end to end: the local fake server, the connector, the sync engine and the store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from connectors.worktile import WorktileConnector, WorktileSettings
from sync.engine import sync_source
from sync.model import StatusCategory
from sync.store import Store
from tests.fakes.worktile import PROJECT_ID, T0, FakeWorktile

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[FakeWorktile]:
    with FakeWorktile() as srv:
        yield srv


def connector(srv: FakeWorktile, **kw: Any) -> WorktileConnector:
    values: dict[str, Any] = {
        "url": srv.url + "/open-api",
        "client_id": srv.client_id,
        "client_secret": srv.client_secret,
        "project": "WEB",
    }
    values.update(kw)
    c = WorktileConnector("wt", WorktileSettings(**values))
    assert c.http is not None
    c.http.sleep = lambda s: None
    return c


@pytest.mark.parametrize("tasks_api", ["v2", "v1"])
def test_full_then_incremental_sync_with_census(server: FakeWorktile, tasks_api: str) -> None:
    server.seed(250)
    store = Store.memory()
    first = sync_source(store, connector(server, tasks_api=tasks_api), full=True, now=NOW)
    assert (first.status, first.new, first.seen, first.error) == ("ok", 250, 250, None)
    assert first.notes == ["full pass: 250 tasks"]
    assert first.requests == 1 + 1 + 3  # token, project, three pages
    counts: dict[StatusCategory, int] = {}
    for item in store.items(["wt"]):
        counts[item.category] = counts.get(item.category, 0) + 1
    assert counts == {
        StatusCategory.TODO: 62,  # 未开始 (type 1)
        StatusCategory.IN_PROGRESS: 63,  # 进行中 (type 2)
        StatusCategory.DONE: 63,  # 已完成 (type 3)
        StatusCategory.CANCELLED: 62,  # 已取消 (type 4, a guessed code)
    }
    one = next(i for i in store.items(["wt"]) if i.key == "WEB-1")
    assert (one.status, one.start_date, one.due_date) == (
        "进行中",
        date(2025, 8, 12),
        date(2025, 8, 13),
    )
    assert one.assignee == ("Ann" if tasks_api == "v2" else "u-ann")
    assert store.cursor("wt")["state"]["project"]["id"] == PROJECT_ID

    ids = list(server.tasks)
    server.touch(ids[0], T0 + 600 * 300, task_state={"name": "已完成", "type": 3}, state_type=3)
    server.remove(ids[1])
    server.log.clear()
    second = sync_source(store, connector(server, tasks_api=tasks_api), now=NOW + timedelta(days=2))
    assert (second.status, second.mode) == ("ok", "incremental")
    assert (second.changed, second.tombstoned) == (1, 1)
    assert second.notes == [
        "incremental by a full pass compared on updated_at (the Worktile API has no 'updated"
        " since' filter): 249 read, 2 updated since the last sync"
    ]
    # The census came from that pass: three task pages, nothing more (project id remembered).
    assert second.requests == 1 + 3
    assert len(server.log) == 4
    moved = next(i for i in store.items(["wt"]) if i.id == ids[0])
    assert moved.category is StatusCategory.DONE
    assert ids[1] not in {i.id for i in store.items(["wt"])}


def test_expired_token_mid_run_is_refreshed(server: FakeWorktile) -> None:
    server.seed(30)
    c = connector(server, page_size=10)
    items = c.fetch_items(None)
    first = [next(items) for _ in range(10)]
    server.expire_tokens()  # the next page answers HTTP 200 {"ok": false, "error_code": 1103}
    rest = list(items)
    assert len(first + rest) == 30
    assert server.tokens_issued == 2
    assert [r.arg("access_token") for r in server.requests_to("/tasks$")] == [
        "wt-token-0001-abc",
        "wt-token-0001-abc",
        "wt-token-0002-abc",
        "wt-token-0002-abc",
    ]


def test_token_rejected_after_refresh_fails_the_source(server: FakeWorktile) -> None:
    server.seed(3)
    server.tokens = _Forgetful()  # every token is forgotten as soon as it is issued
    result = sync_source(Store.memory(), connector(server), full=True, now=NOW)
    assert result.status == "failed"
    assert result.error == (
        "wt: Worktile GET /open-api/mission/get-projects-by-page failed: error_code 1103"
        " 令牌无效或已过期 (HTTP 200); rejected again after fetching a new token; check client_id"
        " and client_secret"
    )
    assert server.tokens_issued == 2


class _Forgetful(set[str]):
    def add(self, value: str) -> None:
        pass


def test_wrong_secret_is_one_line(server: FakeWorktile) -> None:
    result = sync_source(
        Store.memory(), connector(server, client_secret="not-the-secret"), full=True, now=NOW
    )
    assert result.status == "failed"
    assert result.error == (
        "wt: cannot get a Worktile tenant token; client_id 'wt-client': error_code 1101 应用凭证无效"
        " (HTTP 200); check client_id, client_secret and url"
    )


def test_html_429_is_retried(server: FakeWorktile) -> None:
    server.seed(120)
    server.throttle_html(3)
    result = sync_source(Store.memory(), connector(server), full=True, now=NOW)
    assert (result.status, result.new, result.retries) == ("ok", 120, 3)


def test_access_token_key_variant(server: FakeWorktile) -> None:
    with FakeWorktile(token_key="access_token") as srv:
        srv.seed(2)
        result = sync_source(Store.memory(), connector(srv), full=True, now=NOW)
        assert (result.status, result.new) == ("ok", 2)


def test_token_never_reaches_the_store_or_errors(server: FakeWorktile) -> None:
    server.seed(5)
    store = Store.memory()
    assert sync_source(store, connector(server), full=True, now=NOW).status == "ok"
    rows = store.item_rows(["wt"])
    dumped = repr(rows) + repr(store.cursor("wt"))
    assert "wt-token" not in dumped and server.client_secret not in dumped
    server.expire_tokens()
    server.tokens = _Forgetful()
    failed = sync_source(store, connector(server), full=True, now=NOW)
    assert failed.status == "failed" and "wt-token" not in (failed.error or "")


def test_check(server: FakeWorktile) -> None:
    assert connector(server).check() == f"project 官网项目 ({PROJECT_ID})"
    assert connector(server, project="运维").check() == "project 运维 (5f1000000000000000000002)"
