"""Worktile connector: the tasks of one project through the Worktile tenant Open API (9.x).

Facts and how sure we are of them: `../shared/research/pingcode-worktile-redmine-and-others.md`
§2 and §8. Most of them come from a third-party client run against a real tenant [3p], so:

- Token: `POST /open-api/tenant-access-token` answers `tenant_access_token` (or
  `access_token`); its lifetime is unknown, so it is kept until rejected (or until an
  `expires_in`, if one is ever sent, says otherwise) and refreshed once when rejected.
- Errors often arrive as HTTP 200 with `{"ok": false, "error_code": …}` (§2.3): they are
  errors. 1102/1103 (malformed/expired token) refresh the token once. A 429 may be an nginx
  HTML page: it is retried as a 429 like any other.
- No "updated since" filter is known (§2.4): every sync pages through the project and keeps
  the tasks whose `updated_at` moved; that pass also serves as the census.
- `task_state.type` codes: only 3 (terminal) is observed; the rest of `state_types` is a
  guess, configurable per source.
- Publishing: no comment-create or task-update endpoint is documented for the tenant API
  (§2.5), so a Worktile publish target is refused when the config is loaded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from zoneinfo import ZoneInfo

import requests
from pydantic import Field, SecretStr, field_validator

from connectors.base import Connector, Publication, PublishTarget, SourceSettings
from connectors.http import HttpClient
from connectors.pingcode import (
    ACCEPT_ALL,
    TokenCache,
    base_url,
    expiry,
    from_unix,
    json_body,
    one_line,
    unix_date,
    zone_of,
)
from sync.errors import PublishError, SourceError
from sync.model import Milestone, RemoteRef, StatusCategory, WorkItem

if TYPE_CHECKING:
    from sync.report import Report

log = logging.getLogger("pmsync.worktile")

TOKEN_ERRORS = frozenset({1102, 1103})  # malformed / invalid or expired token (§2.3)
TODO, IN_PROGRESS, DONE, CANCELLED = (
    StatusCategory.TODO,
    StatusCategory.IN_PROGRESS,
    StatusCategory.DONE,
    StatusCategory.CANCELLED,
)
# §2.4: 3 is the observed terminal type; 0/1/2/4 are the fact sheet's guesses [?].
DEFAULT_STATE_TYPES = {0: TODO, 1: TODO, 2: IN_PROGRESS, 3: DONE, 4: CANCELLED}


class WorktileSettings(SourceSettings):
    kind: Literal["worktile"] = "worktile"
    # The team's host, e.g. https://yourteam.worktile.com (a trailing /open-api is accepted).
    url: str
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    # Project id, identifier or name.
    project: str = Field(min_length=1)
    # "v2" is /mission/projects/{id}/tasks (v9.0.0, carries properties and user names);
    # "v1" is /mission/get-project-tasks-by-page.
    tasks_api: Literal["v2", "v1"] = "v2"
    # task_state.type code -> category; codes other than 3 are unconfirmed (§2.4).
    state_types: dict[int, StatusCategory] = Field(
        default_factory=lambda: dict(DEFAULT_STATE_TYPES)
    )
    page_size: int = Field(default=100, ge=1, le=100)
    # The tenant's zone, used to turn date values (unix seconds) into calendar days.
    timezone: str = "Asia/Shanghai"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = base_url(value)
        return value[: -len("/open-api")] if value.endswith("/open-api") else value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return zone_of(value)


class WorktileConnector(Connector):
    kind = "worktile"
    Settings = WorktileSettings
    Target = None
    publish_unsupported_reason: ClassVar[str] = (
        "the Worktile tenant API documents no endpoint to create a comment or update a task,"
        " so pmsync cannot post a report there; publish it to another target"
    )
    ordered = False
    settings: WorktileSettings

    def __init__(self, name: str, settings: WorktileSettings) -> None:  # type: ignore[override]
        super().__init__(name, settings)
        self.http = HttpClient(
            settings.url, source=name, secrets=[settings.client_secret.get_secret_value()]
        )
        self.clock: Callable[[], float] = time.time
        self.token = TokenCache(self._fetch_token, lambda: self.clock())
        self.zone = ZoneInfo(settings.timezone)
        self._project: dict[str, str] | None = None
        self._live_ids: list[str] | None = None
        self._unknown_types: set[str] = set()

    # -- auth and requests ---------------------------------------------------------------

    def _fetch_token(self) -> tuple[str, float | None]:
        """Get a tenant access token (§2.2)."""
        assert self.http is not None
        s = self.settings
        response = self.http.request(
            "POST",
            "open-api/tenant-access-token",
            json={"client_id": s.client_id, "client_secret": s.client_secret.get_secret_value()},
            ok=ACCEPT_ALL,
            idempotent=True,  # getting a token twice is harmless
        )
        body = json_body(response)
        data = (
            body.get("data")
            if isinstance(body, dict) and isinstance(body.get("data"), dict)
            else body
        )
        token = None
        if isinstance(data, dict):
            token = data.get("tenant_access_token") or data.get("access_token")
        if response.status_code >= 300 or _failed(body) or not isinstance(token, str) or not token:
            raise SourceError(
                f"{self.name}: cannot get a Worktile tenant token; client_id {s.client_id!r}"
                f"{self._detail(body, response)}; check client_id, client_secret and url"
            )
        self.http.add_secret(token)
        return token, expiry(data.get("expires_in"), self.clock())  # type: ignore[union-attr]

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET an API path with the token; refresh it once when rejected (HTTP 401 or 1102/1103)."""
        assert self.http is not None
        for attempt in (1, 2):
            token = self.token.get()
            response = self.http.request(
                "GET", path, params={**(params or {}), "access_token": token}, ok=ACCEPT_ALL
            )
            body = json_body(response)
            rejected = response.status_code == 401 or (
                _failed(body) and _error_code(body) in TOKEN_ERRORS
            )
            if rejected and attempt == 1:
                log.info("%s: token rejected, fetching a new one", self.name)
                self.token.invalidate()
                continue
            break
        if response.status_code >= 300 or _failed(body):
            raise SourceError(self._message(path, response, body))
        if not isinstance(body, dict):
            body = self.http.parse_json(response)  # raises for invalid or truncated JSON
            if not isinstance(body, dict):
                raise SourceError(
                    f"{self.name}: unexpected answer from /{path} (not a JSON object); check url"
                )
        return body

    def _detail(self, body: Any, response: requests.Response) -> str:
        assert self.http is not None
        parts = []
        code = _error_code(body)
        if code is not None:
            parts.append(f"error_code {code}")
        if isinstance(body, dict):
            for key in ("message", "error_message", "msg", "error"):
                if isinstance(body.get(key), str) and body[key]:
                    parts.append(one_line(body[key]))
                    break
        parts.append(f"(HTTP {response.status_code})")
        return ": " + self.http.redact(" ".join(parts))

    def _message(self, path: str, response: requests.Response, body: Any) -> str:
        code = _error_code(body)
        status = response.status_code
        if status == 401 or code in TOKEN_ERRORS:
            # No "token <word>" here: the redactor would take the word for a token value.
            hint = "rejected again after fetching a new token; check client_id and client_secret"
        elif status == 403:
            hint = "permission denied: check that the app may read this project"
        elif status == 404:
            hint = "not found: check url (the team host) and project"
        elif status == 429:
            hint = "still rate limited after retries: try again later"
        else:
            hint = "see Worktile's message"
        return f"{self.name}: Worktile GET /{path} failed{self._detail(body, response)}; {hint}"

    # -- paging and project --------------------------------------------------------------

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Yield each page's body (§2.4: page_index from 0, page_size, has_more and/or total)."""
        size = self.settings.page_size
        index = seen = 0
        previous_first: Any = None
        while True:
            body = self._get(path, {**params, "page_index": index, "page_size": size})
            values = _values(body)
            if values is None:
                raise SourceError(
                    f"{self.name}: unexpected answer from /{path} (no task or project list);"
                    " check url and tasks_api"
                )
            first = (values[0].get("_id") or values[0].get("id")) if values else None
            if index > 0 and first is not None and first == previous_first:
                raise SourceError(
                    f"{self.name}: /{path} returned page {index} twice (page_index ignored?);"
                    " stopping instead of looping"
                )
            previous_first = first
            yield body
            index += 1
            seen += len(values)
            more = _more(body)
            total = _total(body)
            if not values or more is False:
                return
            if more is None:
                if total is not None:
                    if seen >= total:
                        return
                elif len(values) < size:
                    return

    def project(self) -> dict[str, str]:
        """Resolve the configured project (id, identifier or name) to `{id, identifier, name}`."""
        if self._project is not None:
            return self._project
        ref = self.settings.project
        cached = self.state.get("project")
        if isinstance(cached, dict) and cached.get("ref") == ref and cached.get("id"):
            self._project = {k: str(cached.get(k) or "") for k in ("id", "identifier", "name")}
            return self._project
        by_name: dict[str, Any] | None = None
        found: dict[str, Any] | None = None
        for body in self._pages("open-api/mission/get-projects-by-page", {}):
            for p in _values(body) or []:
                pid = str(p.get("_id") or p.get("id") or "")
                if pid == ref or str(p.get("identifier") or "").casefold() == ref.casefold():
                    found = p
                    break
                if by_name is None and str(p.get("name") or "") == ref:
                    by_name = p
            if found:
                break
        found = found or by_name
        if found is None:
            raise SourceError(
                f"{self.name}: no Worktile project {ref!r} visible to this app; check `project`"
                " (its id, identifier or exact name)"
            )
        self._project = {
            "id": str(found.get("_id") or found.get("id")),
            "identifier": str(found.get("identifier") or ""),
            "name": str(found.get("name") or ""),
        }
        self.state["project"] = {"ref": ref, **self._project}
        return self._project

    def check(self) -> str:
        project = self.project()
        return f"project {project['name'] or project['id']} ({project['id']})"

    # -- tasks ---------------------------------------------------------------------------

    def _task_pages(self) -> Iterator[tuple[list[dict[str, Any]], dict[str, str]]]:
        """Yield (tasks, uid -> display name) per page of the configured tasks endpoint."""
        pid = self.project()["id"]
        if self.settings.tasks_api == "v2":
            pages = self._pages(f"open-api/mission/projects/{pid}/tasks", {})
        else:
            pages = self._pages("open-api/mission/get-project-tasks-by-page", {"project_id": pid})
        for body in pages:
            yield _values(body) or [], _users(body)

    def fetch_items(self, since: datetime | None) -> Iterator[WorkItem]:
        self._live_ids = None
        read = changed = 0
        ids: list[str] = []
        for tasks, users in self._task_pages():
            for raw in tasks:
                item = self._item(raw, users)
                if item is None:
                    continue
                read += 1
                ids.append(item.id)
                if since is not None and item.updated_at and item.updated_at < since:
                    continue
                changed += 1
                yield item
        self._live_ids = ids  # a complete pass: the census needs no more requests
        if since is None:
            self.notes.append(f"full pass: {read} tasks")
        else:
            self.notes.append(
                "incremental by a full pass compared on updated_at (the Worktile API has no"
                f" 'updated since' filter): {read} read, {changed} updated since the last sync"
            )

    def fetch_ids(self) -> Iterator[str]:
        if self._live_ids is not None:
            return iter(self._live_ids)
        return (
            item.id
            for tasks, users in self._task_pages()
            for raw in tasks
            if (item := self._item(raw, users)) is not None
        )

    def fetch_milestones(self) -> Iterable[Milestone]:
        return []  # no milestone resource is documented for the tenant API (§2.4)

    def _category(self, name: str, code: Any) -> StatusCategory:
        """Map by `task_state.type` (never by the display name, unless status_map says so)."""
        if name and name in self.settings.status_map:
            return self.settings.status_map[name]
        try:
            number = int(code)
        except (TypeError, ValueError):
            number = None
        if number is not None and number in self.settings.state_types:
            return self.settings.state_types[number]
        label = str(code)
        if label not in self._unknown_types:
            self._unknown_types.add(label)
            self.notes.append(
                f"unknown Worktile task_state.type {code!r} (state {name!r}) counted as todo;"
                " map it with state_types or status_map"
            )
        return TODO

    def _item(self, raw: dict[str, Any], users: dict[str, str]) -> WorkItem | None:
        tid = raw.get("_id") or raw.get("id")
        if not tid or raw.get("is_deleted"):
            return None
        state = raw.get("task_state") if isinstance(raw.get("task_state"), dict) else {}
        name = str(state.get("name") or "")
        code = state.get("type", raw.get("state_type"))
        props = raw.get("properties") if isinstance(raw.get("properties"), dict) else {}
        assignee = _prop_value(props.get("assignee"))
        if assignee is None:
            assignee = raw.get("assignee")
        if isinstance(assignee, dict):
            assignee = assignee.get("uid") or assignee.get("display_name") or assignee.get("name")
        task_type = raw.get("task_type") if isinstance(raw.get("task_type"), dict) else {}
        parent = raw.get("parent") if isinstance(raw.get("parent"), dict) else {}
        return WorkItem(
            source=self.name,
            id=str(tid),
            key=str(raw.get("identifier") or tid),
            title=str(raw.get("title") or ""),
            url=raw.get("url") or raw.get("html_url") or None,
            kind=str(task_type.get("name") or "task"),
            status=name or str(code if code is not None else ""),
            category=self._category(name, code),
            assignee=users.get(str(assignee), str(assignee)) if assignee else None,
            parent_id=str(raw.get("parent_id") or parent.get("_id") or "") or None,
            start_date=unix_date(_prop_date(props.get("start")), self.zone),
            due_date=unix_date(_prop_date(props.get("due") or raw.get("due")), self.zone),
            created_at=from_unix(raw.get("created_at")),
            updated_at=from_unix(raw.get("updated_at")),
            completed_at=from_unix(raw.get("completed_at")),
            blocked=bool(name) and name in self.settings.blocked_statuses,
            raw=raw,
        )

    # -- publishing (refused: see publish_unsupported_reason) ----------------------------

    def render(self, target: PublishTarget, report: Report) -> str:
        raise PublishError(f"{self.name}: {self.publish_unsupported_reason}")

    def publish(
        self, target: PublishTarget, report: Report, previous: Publication | None
    ) -> RemoteRef:
        raise PublishError(f"{self.name}: {self.publish_unsupported_reason}")


def _error_code(body: Any) -> int | None:
    if not isinstance(body, dict):
        return None
    code = body.get("error_code")
    try:
        return int(code) if code is not None and not isinstance(code, bool) else None
    except (TypeError, ValueError):
        return None


def _failed(body: Any) -> bool:
    """True for a `{"ok": false, …}` body (or a non-zero error_code), whatever the HTTP status
    (§2.3: auth errors come back as HTTP 200)."""
    if not isinstance(body, dict):
        return False
    return body.get("ok") is False or _error_code(body) not in (None, 0)


def _container(body: dict[str, Any]) -> dict[str, Any]:
    data = body.get("data")
    return data if isinstance(data, dict) else body


def _values(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The list of a page: `items` (V1) or `value` (V2), possibly under `data`."""
    for holder in (body, _container(body)):
        for key in ("items", "value", "values"):
            if isinstance(holder.get(key), list):
                return [v for v in holder[key] if isinstance(v, dict)]
    return None


def _meta(body: dict[str, Any], key: str) -> Any:
    for holder in (body, _container(body)):
        if key in holder:
            return holder[key]
        meta = holder.get("meta")
        if isinstance(meta, dict) and key in meta:
            return meta[key]
    return None


def _more(body: dict[str, Any]) -> bool | None:
    value = _meta(body, "has_more")
    return value if isinstance(value, bool) else None


def _total(body: dict[str, Any]) -> int | None:
    value = _meta(body, "total")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _users(body: dict[str, Any]) -> dict[str, str]:
    """uid -> display name from a V2 page's `references.users`."""
    refs = _container(body).get("references") or body.get("references")
    users = refs.get("users") if isinstance(refs, dict) else None
    out: dict[str, str] = {}
    for user in users or []:
        if isinstance(user, dict) and user.get("uid"):
            out[str(user["uid"])] = str(user.get("display_name") or user.get("name") or user["uid"])
    return out


def _prop_value(prop: Any) -> Any:
    """A property's value: `{"value": x}` or x itself."""
    if isinstance(prop, dict) and "value" in prop:
        return prop["value"]
    return prop


def _prop_date(prop: Any) -> Any:
    """A date property's unix seconds: `{"value": {"date": s}}`, `{"date": s}` or `s` (§2.4)."""
    value = _prop_value(prop)
    if isinstance(value, dict):
        return value.get("date")
    return value
