"""A fake Worktile tenant Open API (9.x) built from the observed shapes (research §2).

Tenant tokens from `POST /open-api/tenant-access-token` passed as `?access_token=`; errors
as HTTP 200 `{"ok": false, "error_code": …}` (1103: invalid or expired token); projects by
page; tasks by page in both the V1 shape (`items`, `total`, `has_more`) and the V2 shape
(`value`, `references.users`, `meta.has_more`); unix-second times; Chinese state names whose
`type` carries the meaning; and a throttle that answers 429 with an nginx HTML page.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Literal

from tests.fakes.server import FakeServer, Reply, Request

PROJECT_ID = "5f1000000000000000000001"
CLIENT_SECRET = "wt-secret-value"
TokenKey = Literal["tenant_access_token", "access_token"]
TOKEN_KEY: TokenKey = "tenant_access_token"
T0 = 1_780_000_000
USERS = [
    {"uid": "u-lin", "name": "lin", "display_name": "林工"},
    {"uid": "u-ann", "name": "ann", "display_name": "Ann"},
]
STATES = [
    {"name": "未开始", "type": 1},
    {"name": "进行中", "type": 2},
    {"name": "已完成", "type": 3},
    {"name": "已取消", "type": 4},
]
THROTTLE_PAGE = b"<html><head><title>429 Too Many Requests</title></head><body><center><h1>429 Too Many Requests</h1></center><hr><center>nginx</center></body></html>"


class FakeWorktile(FakeServer):
    def __init__(
        self,
        *,
        client_id: str = "wt-client",
        client_secret: str = CLIENT_SECRET,
        token_key: TokenKey = TOKEN_KEY,
    ) -> None:
        super().__init__()
        self.client_id, self.client_secret, self.token_key = client_id, client_secret, token_key
        self.tokens: set[str] = set()
        self.tokens_issued = 0
        self.projects: list[dict[str, Any]] = [
            {"_id": PROJECT_ID, "identifier": "WEB", "name": "官网项目", "visibility": 0},
            {
                "_id": "5f1000000000000000000002",
                "identifier": "OPS",
                "name": "运维",
                "visibility": 0,
            },
        ]
        self.tasks: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._pages_cache: list[dict[str, Any]] | None = None
        self._throttle = 0
        self._throttle_lock = threading.Lock()
        self.route("POST", r"/open-api/tenant-access-token", self._token)
        self.route("GET", r"/open-api/mission/get-projects-by-page", self._auth(self._projects))
        self.route(
            "GET", r"/open-api/mission/get-project-tasks-by-page", self._auth(self._tasks_v1)
        )
        self.route(
            "GET", r"/open-api/mission/projects/(?P<pid>\w+)/tasks", self._auth(self._tasks_v2)
        )

    def start(self) -> FakeWorktile:
        super().start()
        assert self._httpd is not None
        # Headers and body leave in two writes; without TCP_NODELAY every answer waits about
        # 40 ms for the client's delayed ACK.
        self._httpd.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
        return self

    # -- seeding ---------------------------------------------------------------------------

    def add_task(self, n: int | None = None, **fields: Any) -> dict[str, Any]:
        """Add (or replace) a task; `state` may be an index into STATES."""
        n = next(self._ids) if n is None else n
        tid = fields.pop("_id", f"64a{n:021x}")
        state = fields.pop("state", 0)
        state = STATES[state] if isinstance(state, int) else state
        task: dict[str, Any] = {
            "_id": tid,
            "identifier": f"WEB-{n}",
            "title": f"任务 {n}",
            "project_id": PROJECT_ID,
            "task_state": state,
            "state_type": state["type"],
            "properties": {
                "assignee": {"value": USERS[n % 2]["uid"]},
                "start": {"value": {"date": 1754956800, "with_time": 0}},
                "due": {"date": 1755043200, "with_time": 0},
                "desc": {"value": '[{"type":"paragraph","children":[{"text":"说明"}]}]'},
            },
            "created_at": T0 - 86400,
            "updated_at": T0 + 600 * n,
            "is_deleted": 0,
        }
        task.update(fields)
        with self.lock:
            self.tasks[tid] = task
            self._pages_cache = None
        return task

    def seed(self, count: int, *, start: int = 1) -> None:
        for n in range(start, start + count):
            self.add_task(n, state=n % 4)

    def touch(self, tid: str, at: int, **fields: Any) -> None:
        with self.lock:
            self.tasks[tid].update(fields, updated_at=at)
            self._pages_cache = None

    def remove(self, tid: str) -> None:
        with self.lock:
            del self.tasks[tid]
            self._pages_cache = None

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def throttle_html(self, times: int) -> None:
        """Answer the next `times` API calls with 429 and nginx's HTML page (§2.3)."""
        with self._throttle_lock:
            self._throttle += times

    # -- handlers --------------------------------------------------------------------------

    def _token(self, r: Request) -> Reply:
        body = r.json() or {}
        if (
            body.get("client_id") != self.client_id
            or body.get("client_secret") != self.client_secret
        ):
            return Reply(200, {"ok": False, "error_code": 1101, "message": "应用凭证无效"})
        with self.lock:
            self.tokens_issued += 1
            token = f"wt-token-{self.tokens_issued:04d}-abc"
            self.tokens.add(token)
        return Reply(200, {self.token_key: token})

    def _auth(self, handler: Any) -> Any:
        def wrapped(r: Request) -> Reply:
            with self._throttle_lock:
                if self._throttle > 0:
                    self._throttle -= 1
                    return Reply(429, raw=THROTTLE_PAGE, headers={"Content-Type": "text/html"})
            token = r.arg("access_token")
            if token is None:
                return Reply(200, {"ok": False, "error_code": 1102, "message": "token 格式错误"})
            with self.lock:
                valid = token in self.tokens
            if not valid:
                return Reply(200, {"ok": False, "error_code": 1103, "message": "令牌无效或已过期"})
            return handler(r)

        return wrapped

    @staticmethod
    def _window(r: Request) -> tuple[int, int] | Reply:
        try:
            index = int(r.arg("page_index", "0") or 0)
            size = int(r.arg("page_size", "20") or 20)
        except ValueError:
            return Reply(200, {"ok": False, "error_code": 1001, "message": "参数错误"})
        if not 1 <= size <= 100 or index < 0:
            return Reply(200, {"ok": False, "error_code": 1001, "message": "page_size 超出范围"})
        return index, size

    def _projects(self, r: Request) -> Reply:
        window = self._window(r)
        if isinstance(window, Reply):
            return window
        index, size = window
        page = self.projects[index * size : (index + 1) * size]
        more = (index + 1) * size < len(self.projects)
        return Reply(200, {"items": page, "has_more": more})

    def _live(self) -> list[dict[str, Any]]:
        with self.lock:
            if self._pages_cache is None:
                self._pages_cache = [t for t in self.tasks.values() if not t["is_deleted"]]
            return self._pages_cache

    def _tasks_v1(self, r: Request) -> Reply:
        window = self._window(r)
        if isinstance(window, Reply):
            return window
        if r.arg("project_id") != PROJECT_ID:
            return Reply(200, {"ok": False, "error_code": 2001, "message": "项目不存在"})
        index, size = window
        tasks = self._live()
        page = tasks[index * size : (index + 1) * size]
        return Reply(
            200,
            {"items": page, "total": len(tasks), "has_more": (index + 1) * size < len(tasks)},
        )

    def _tasks_v2(self, r: Request) -> Reply:
        window = self._window(r)
        if isinstance(window, Reply):
            return window
        assert r.match is not None
        if r.match["pid"] != PROJECT_ID:
            return Reply(200, {"ok": False, "error_code": 2001, "message": "项目不存在"})
        index, size = window
        tasks = self._live()
        page = tasks[index * size : (index + 1) * size]
        return Reply(
            200,
            {
                "value": page,
                "references": {"users": USERS},
                "meta": {"has_more": (index + 1) * size < len(tasks)},
            },
        )
