"""A fake PingCode Open API built from the documented shapes (research §1).

It serves one path family (`pjm`: /v1/pjm/workitems, or `project`: /v1/project/work_items;
the other answers 404 like a server that moved on), client-credential tokens whose
`expires_in` is absolute or a duration, pages of `{page_index, page_size, total, values}`,
unix-second times, Chinese state names with machine `type`s, `{code, message}` errors, and
comments. `updated_between` on the pjm family can be honoured, ignored or rejected, since
whether the real server accepts it there is unknown (§8).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any, Literal

from tests.fakes.server import FakeServer, Reply, Request

# (name, type): the names are what a Chinese tenant shows; only `type` carries meaning.
STATES = {
    "pending": {"id": "5c9b00000000000000000001", "name": "待处理", "type": "pending", "color": "#ff7575"},
    "in_progress": {"id": "5c9b00000000000000000002", "name": "进行中", "type": "in_progress", "color": "#f6c659"},
    "completed": {"id": "5c9b00000000000000000003", "name": "已完成", "type": "completed", "color": "#73d897"},
    "closed": {"id": "5c9b00000000000000000004", "name": "已关闭", "type": "closed", "color": "#cacaca"},
}  # fmt: skip
PROJECT_ID = "5eb600000000000000000001"
CLIENT_SECRET = "pc-secret-value"
T0 = 1_780_000_000  # 2026-05-28 20:26:40 UTC


def _hex(prefix: str, n: int) -> str:
    return f"{prefix}{n:0{24 - len(prefix)}x}"


class FakePingCode(FakeServer):
    def __init__(
        self,
        *,
        family: Literal["pjm", "project"] = "pjm",
        updated_between: Literal["honour", "ignore", "reject"] = "honour",
        client_id: str = "pc-client",
        client_secret: str = CLIENT_SECRET,
        expires: Literal["absolute", "duration", "none"] = "absolute",
        lifetime: int = 30 * 86400,
        principal_types: tuple[str, ...] = ("workitem",),
        history: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.family = family
        self.updated_between = updated_between
        self.client_id, self.client_secret = client_id, client_secret
        self.expires, self.lifetime = expires, lifetime
        self.principal_types = principal_types
        self.history_enabled = history
        self.clock = clock
        self.tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self.tokens_issued = 0
        self.projects: list[dict[str, Any]] = [
            {
                "id": PROJECT_ID, "identifier": "HBR", "name": "官网改版", "type": "scrum",
                "state": {"id": "66cb", "name": "正常", "type": "in_progress"},
                "start_at": 1680278400, "end_at": 1682870399,
                "created_at": T0 - 86400 * 90, "updated_at": T0 - 86400 * 90,
                "is_archived": 0, "is_deleted": 0,
            },
        ]  # fmt: skip
        self.items: dict[str, dict[str, Any]] = {}
        self.histories: dict[str, list[dict[str, Any]]] = {}
        self.versions: list[dict[str, Any]] = []
        self.sprints: list[dict[str, Any]] = []
        self.comments: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._cache: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        p = "pjm" if family == "pjm" else "project"
        items = "v1/pjm/workitems" if family == "pjm" else "v1/project/work_items"
        self.items_path = "/" + items
        self.route("GET", r"/v1/auth/token", self._token)
        self.route("GET", rf"/v1/{p}/projects", self._auth(self._projects))
        self.route("GET", rf"/v1/{p}/projects/(?P<id>\w+)", self._auth(self._project))
        self.route("GET", rf"/{items}", self._auth(self._list))
        self.route("GET", rf"/{items}/(?P<id>\w+)", self._auth(self._item))
        if history:
            self.route(
                "GET", rf"/{items}/(?P<id>\w+)/transition_histories", self._auth(self._history)
            )
        releases = "releases" if family == "pjm" else "versions"
        self.route(
            "GET",
            rf"/v1/{p}/projects/(?P<id>\w+)/{releases}",
            self._auth(lambda r: self._paged(r, self.versions)),
        )
        self.route(
            "GET",
            rf"/v1/{p}/projects/(?P<id>\w+)/sprints",
            self._auth(lambda r: self._paged(r, self.sprints)),
        )
        self.route("POST", r"/v1/comments", self._auth(self._comment))
        self.route("DELETE", r"/v1/comments/(?P<id>\w+)", self._auth(self._delete_comment))

    def start(self) -> FakePingCode:
        super().start()
        assert self._httpd is not None
        # Headers and body leave in two writes; without TCP_NODELAY every answer waits about
        # 40 ms for the client's delayed ACK.
        self._httpd.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
        return self

    # -- seeding ---------------------------------------------------------------------------

    def add_item(self, n: int | None = None, **fields: Any) -> dict[str, Any]:
        """Add (or replace) a work item; `state` may be a key of STATES."""
        n = next(self._ids) if n is None else n
        item_id = fields.pop("id", _hex("6efc", n))
        state = fields.pop("state", "pending")
        item: dict[str, Any] = {
            "id": item_id,
            "identifier": f"HBR-{n}",
            "short_id": f"s{n:07d}",
            "html_url": f"https://acme.pingcode.com/pjm/workitems/s{n:07d}",
            "title": f"工作项 {n}",
            "type": "story",
            "project": {"id": PROJECT_ID, "identifier": "HBR", "type": "scrum"},
            "state": STATES[state] if isinstance(state, str) else state,
            "priority": {"id": "p1", "name": "最高"},
            "assignee": {"id": "u1", "name": "john", "display_name": "John"},
            "start_at": None,
            "end_at": None,
            "completed_at": None,
            "story_points": None,
            "tags": [],
            "properties": {},
            "created_at": T0 - 86400,
            "updated_at": T0 + 600 * n,
            "is_archived": 0,
            "is_deleted": 0,
        }
        item.update(fields)
        with self.lock:
            self.items[item_id] = item
            self._cache.clear()
        return item

    def seed(self, count: int, *, start: int = 1) -> None:
        """Add `count` generated items cheaply, cycling through the four state types."""
        kinds = list(STATES)
        with self.lock:
            for n in range(start, start + count):
                self.add_item(n, state=kinds[n % 4], story_points=n % 5 or None)

    def touch(self, item_id: str, at: int, **fields: Any) -> None:
        with self.lock:
            self.items[item_id].update(fields, updated_at=at)
            self._cache.clear()

    def delete(self, item_id: str) -> None:
        with self.lock:
            self.items[item_id]["is_deleted"] = 1
            self._cache.clear()

    def expire_tokens(self) -> None:
        """Revoke every issued token (as a secret reset does)."""
        with self.lock:
            self.tokens.clear()

    # -- handlers --------------------------------------------------------------------------

    @staticmethod
    def error(status: int, code: str, message: str) -> Reply:
        return Reply(status, {"code": code, "message": message})

    def _token(self, r: Request) -> Reply:
        if r.arg("grant_type") != "client_credentials":
            return self.error(400, "100010", "grant_type 不支持")
        if r.arg("client_id") != self.client_id or r.arg("client_secret") != self.client_secret:
            return self.error(401, "100009", "client_id 或 client_secret 错误")
        with self.lock:
            self.tokens_issued += 1
            token = f"pc-token-{self.tokens_issued:04d}-xyz"
            now = self.clock()
            self.tokens[token] = now + self.lifetime
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if self.expires == "absolute":
            body["expires_in"] = int(now + self.lifetime)
        elif self.expires == "duration":
            body["expires_in"] = self.lifetime
        return Reply(200, body)

    def _auth(self, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        def wrapped(r: Request) -> Any:
            header = r.headers.get("authorization", "")
            token = header.removeprefix("Bearer ")
            with self.lock:
                expires = self.tokens.get(token)
            if not header.startswith("Bearer ") or expires is None or self.clock() >= expires:
                return self.error(401, "100003", "令牌无效或已过期")
            return handler(r)

        return wrapped

    def _paged(self, r: Request, values: list[dict[str, Any]]) -> Reply:
        try:
            index = int(r.arg("page_index", "0") or 0)
            size = int(r.arg("page_size", "30") or 30)
        except ValueError:
            return self.error(400, "100004", "参数错误")
        if size > 100 or size < 1 or index < 0:
            return self.error(400, "100004", "page_size 超出范围")
        page = values[index * size : (index + 1) * size]
        return Reply(
            200, {"page_size": size, "page_index": index, "total": len(values), "values": page}
        )

    def _projects(self, r: Request) -> Reply:
        ident = r.arg("identifier")
        values = [p for p in self.projects if ident is None or p["identifier"] == ident]
        return self._paged(r, values)

    def _project(self, r: Request) -> Reply:
        assert r.match is not None
        for p in self.projects:
            if p["id"] == r.match["id"]:
                return Reply(200, p)
        return self.error(404, "100002", "项目不存在")

    def _list(self, r: Request) -> Reply:
        plural = self.family == "project"
        project = r.arg("project_ids" if plural else "project_id")
        type_id = r.arg("type_ids" if plural else "type_id")
        ident = r.arg("identifier")
        since: int | None = None
        between = r.arg("updated_between")
        if between is not None:
            if self.family == "pjm" and self.updated_between == "reject":
                return self.error(400, "100004", "不支持的参数 updated_between")
            if self.family == "project" or self.updated_between == "honour":
                since = int(between.split(",")[0]) if between.split(",")[0] else None
        key = (project, type_id, ident, since)
        with self.lock:
            values = self._cache.get(key)
            if values is None:
                values = [
                    i
                    for i in self.items.values()
                    if not i["is_deleted"]
                    and (project is None or i["project"]["id"] == project)
                    and (type_id is None or i["type"] == type_id)
                    and (ident is None or i["identifier"] == ident)
                    and (since is None or i["updated_at"] >= since)
                ]
                self._cache[key] = values
        return self._paged(r, values)

    def _item(self, r: Request) -> Reply:
        assert r.match is not None
        item = self.items.get(r.match["id"])
        if item is None or item["is_deleted"]:
            return self.error(404, "100002", "工作项不存在")
        return Reply(200, item)

    def _history(self, r: Request) -> Reply:
        assert r.match is not None
        if r.match["id"] not in self.items:
            return self.error(404, "100002", "工作项不存在")
        return self._paged(r, self.histories.get(r.match["id"], []))

    def _comment(self, r: Request) -> Reply:
        body = r.json() or {}
        if body.get("principal_type") not in self.principal_types:
            return self.error(400, "100011", "principal_type 无效")
        if body.get("principal_id") not in self.items:
            return self.error(404, "100002", "工作项不存在")
        if not isinstance(body.get("content"), str) or not body["content"]:
            return self.error(400, "100004", "content 不能为空")
        with self.lock:
            cid = _hex("59f7", next(self._ids))
            comment = {
                "id": cid,
                "principal_type": body["principal_type"],
                "principal_id": body["principal_id"],
                "content": body["content"],
                "attachment_count": 0,
                "created_at": int(self.clock()),
                "created_by": {"id": "app", "name": "pmsync"},
                "is_deleted": 0,
            }
            self.comments[cid] = comment
        return Reply(200, comment)

    def _delete_comment(self, r: Request) -> Reply:
        assert r.match is not None
        with self.lock:
            comment = self.comments.get(r.match["id"])
            if comment is None or comment["is_deleted"]:
                return self.error(404, "100002", "评论不存在")
            if r.arg("principal_id") != comment["principal_id"]:
                return self.error(400, "100004", "principal_id 不匹配")
            comment["is_deleted"] = 1
        return Reply(200, comment)
