"""A fake Redmine 5.0 REST API with the list semantics the connector depends on.

It keeps issues in memory with microsecond `updated_on` (as Redmine on SQLite does) but
shows whole seconds, turns `updated_on=>=T` into `updated_on > T - 1s` (query.rb
`date_clause`), sorts by `updated_on,id` or `id`, clamps `limit` to 100, pages by `offset`,
filters `issue_id=>=N`, and keeps journals. `on_list` runs after every `/issues.json`
answer, so a test can change the data between two page requests.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.server import FakeServer, Reply, Request

KEY = "f" * 40
STATUSES = [
    {"id": 1, "name": "New", "is_closed": False},
    {"id": 2, "name": "In Progress", "is_closed": False},
    {"id": 3, "name": "Resolved", "is_closed": False},
    {"id": 4, "name": "Feedback", "is_closed": False},
    {"id": 5, "name": "Closed", "is_closed": True},
    {"id": 6, "name": "Rejected", "is_closed": True},
]
T0 = datetime(2026, 11, 2, 9, 0, 0, 250_000, tzinfo=UTC)


def fmt(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeRedmine(FakeServer):
    def __init__(self, *, key: str = KEY) -> None:
        super().__init__()
        self.key = key
        self.clock = T0
        self.issues: dict[int, dict[str, Any]] = {}
        self.updated: dict[int, datetime] = {}
        self.journals: dict[int, list[dict[str, Any]]] = {}
        self.versions: dict[int, list[dict[str, Any]]] = {1: []}
        self.projects = [{"id": 1, "name": "Web", "identifier": "web"}]
        self.next_journal = 1
        self.note_limit: int | None = None  # longer notes get 422, as a DB column limit would
        self.on_list: Callable[[Request, list[dict[str, Any]]], None] | None = None
        self.route("GET", r"/users/current\.json", self._current)
        self.route("GET", r"/projects/([\w-]+)\.json", self._project)
        self.route("GET", r"/projects\.json", self._projects)
        self.route("GET", r"/projects/(\d+)/versions\.json", self._versions)
        self.route("GET", r"/issue_statuses\.json", lambda r: {"issue_statuses": STATUSES})
        self.route("GET", r"/issues\.json", self._list)
        self.route("GET", r"/issues/(\d+)\.json", self._show)
        self.route("PUT", r"/issues/(\d+)\.json", self._update)
        self.route("PUT", r"/journals/(\d+)\.json", self._edit_journal)

    # -- data -------------------------------------------------------------------------------

    def tick(self, seconds: float = 0.1) -> datetime:
        self.clock += timedelta(seconds=seconds)
        return self.clock

    def add(self, n: int, status: int = 1, project: int = 1, **fields: Any) -> dict[str, Any]:
        """Create issue `n` now (the clock advances 0.1 s per change)."""
        at = self.tick()
        st = next(s for s in STATUSES if s["id"] == status)
        issue = {
            "id": n,
            "project": {"id": project, "name": "Web"},
            "tracker": {"id": 2, "name": "Feature"},
            "status": dict(st),
            "priority": {"id": 2, "name": "Normal"},
            "author": {"id": 1, "name": "Admin"},
            "subject": f"Issue {n}",
            "description": "",
            "start_date": None,
            "due_date": None,
            "done_ratio": 0,
            "is_private": False,
            "estimated_hours": None,
            "created_on": fmt(at),
            "updated_on": fmt(at),
            "closed_on": fmt(at) if st["is_closed"] else None,
            **fields,
        }
        self.issues[n] = issue
        self.updated[n] = at
        self.journals.setdefault(n, [])
        return issue

    def change(self, n: int, **fields: Any) -> None:
        """Update issue `n` now; `status=<id>` changes the status and writes a journal."""
        at = self.tick()
        issue = self.issues[n]
        details = []
        if "status" in fields:
            wanted = fields.pop("status")
            new = next(s for s in STATUSES if s["id"] == wanted)
            details.append({"property": "attr", "name": "status_id",
                            "old_value": str(issue["status"]["id"]), "new_value": str(new["id"])})  # fmt: skip
            issue["status"] = dict(new)
            if new["is_closed"]:
                issue["closed_on"] = fmt(at)
        issue.update(fields)
        issue["updated_on"] = fmt(at)
        self.updated[n] = at
        if details:
            self._journal(n, "", details, at)

    def delete(self, n: int) -> None:
        del self.issues[n]
        del self.updated[n]

    def _journal(self, n: int, notes: str, details: list[Any], at: datetime) -> dict[str, Any]:
        journal = {"id": self.next_journal, "user": {"id": 1, "name": "Admin"}, "notes": notes,
                   "created_on": fmt(at), "private_notes": False, "details": details}  # fmt: skip
        self.next_journal += 1
        self.journals[n].append(journal)
        return journal

    # -- routes -----------------------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        return request.headers.get("x-redmine-api-key") == self.key

    def _current(self, request: Request) -> Reply | dict[str, Any]:
        if not self._authorised(request):
            return Reply(401, b"", {"WWW-Authenticate": 'Basic realm="Redmine API"'})
        return {"user": {"id": 1, "login": "admin", "api_key": self.key}}

    def _project(self, request: Request) -> Reply | dict[str, Any]:
        ident = request.match.group(1)  # type: ignore[union-attr]
        for p in self.projects:
            if ident in (str(p["id"]), p["identifier"]):
                return {"project": p}
        return Reply(404, b"")

    def _projects(self, request: Request) -> dict[str, Any]:
        parent = request.arg("parent_id")
        # Like a server without the parent_id filter, this lists every project; the connector
        # must keep only the children.
        found = [p for p in self.projects if parent is not None]
        return {"projects": found, "total_count": len(found), "offset": 0, "limit": 25}

    def _versions(self, request: Request) -> dict[str, Any]:
        found = self.versions.get(int(request.match.group(1)), [])  # type: ignore[union-attr]
        return {"versions": found, "total_count": len(found)}

    def _list(self, request: Request) -> Reply | dict[str, Any]:
        if not self._authorised(request):
            return Reply(401, b"")
        rows = list(self.issues.values())
        if request.arg("status_id") != "*":
            rows = [i for i in rows if not i["status"]["is_closed"]]
        bound = request.arg("updated_on")
        if bound:
            assert bound.startswith(">=") and bound.endswith("Z"), bound
            after = datetime.fromisoformat(bound[2:].replace("Z", "+00:00")) - timedelta(seconds=1)
            rows = [i for i in rows if self.updated[i["id"]] > after]
        low = request.arg("issue_id")
        if low:
            assert low.startswith(">="), low
            rows = [i for i in rows if i["id"] >= int(low[2:])]
        sort = request.arg("sort")
        if sort == "updated_on,id":
            rows.sort(key=lambda i: (self.updated[i["id"]], i["id"]))
        elif sort == "id":
            rows.sort(key=lambda i: i["id"])
        else:
            raise AssertionError(f"unexpected sort {sort!r}")
        offset = int(request.arg("offset", "0") or 0)
        limit = min(int(request.arg("limit", "25") or 25), 100)
        page = [copy.deepcopy(i) for i in rows[offset : offset + limit]]
        if self.on_list is not None:
            self.on_list(request, page)
        return {"issues": page, "total_count": len(rows), "offset": offset, "limit": limit}

    def _show(self, request: Request) -> Reply | dict[str, Any]:
        n = int(request.match.group(1))  # type: ignore[union-attr]
        if n not in self.issues:
            return Reply(404, b"")
        issue = copy.deepcopy(self.issues[n])
        if request.arg("include") == "journals":
            issue["journals"] = copy.deepcopy(self.journals[n])
        return {"issue": issue}

    def _update(self, request: Request) -> Reply:
        n = int(request.match.group(1))  # type: ignore[union-attr]
        if n not in self.issues:
            return Reply(404, b"")
        body = request.json()["issue"]
        notes = body.get("notes", "")
        if not notes.strip():
            return Reply(422, {"errors": ["Notes cannot be blank"]})
        if self.note_limit is not None and len(notes) > self.note_limit:
            return Reply(422, {"errors": ["Notes is too long"]})
        self._journal(n, notes, [], self.tick())
        self.change(n)
        return Reply(204, b"")

    def _edit_journal(self, request: Request) -> Reply:
        jid = int(request.match.group(1))  # type: ignore[union-attr]
        for journals in self.journals.values():
            for j in journals:
                if j["id"] == jid:
                    j["notes"] = request.json()["journal"]["notes"]
                    return Reply(204, b"")
        return Reply(404, b"")
