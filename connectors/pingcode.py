"""PingCode connector: the work items of one project through the PingCode Open API.

Facts and how sure we are of them: `../shared/research/pingcode-worktile-redmine-and-others.md`
§1 and §8. What this module does about each uncertainty:

- Path family (§1.2): the work-item paths moved from `/v1/project/work_items` to
  `/v1/pjm/workitems`. `api_family = "auto"` probes `/v1/pjm/workitems` then
  `/v1/project/work_items` once and remembers the answer in the source's state; a
  remembered family that starts answering 404 is probed again.
- Incremental listing (§1.6): `updated_between` is documented for `/v1/project`; for `/v1/pjm`
  it is unknown. It is sent anyway and the answer is checked: a server that rejects it (400)
  or ignores it (returns older items) gets a full pass compared on `updated_at` instead, and
  the run summary says which happened. The search endpoint is not used: its filter grammar
  is undocumented.
- Token (§1.3): `expires_in` may be an absolute unix time or a duration; both are handled.
  The token lives in memory only, is refreshed before it expires and once when rejected.
- Comments (§1.9): `principal_type` is `workitem` in the newer docs and `work_item` in the
  older ones; the first that is accepted is remembered. Whether `content` renders HTML is
  unknown: we send small, fully escaped HTML. There is no documented way to edit a comment,
  so a changed report for the same period posts a new comment and deletes the old one.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.base import Connector, Publication, PublishTarget, SourceSettings
from connectors.http import RETRY_STATUS, HttpClient
from sync.errors import PmsyncError, PublishError, SourceError
from sync.model import Milestone, RemoteRef, StatusCategory, Transition, WorkItem
from sync.render.neutralise import plain, safe_url

if TYPE_CHECKING:
    from sync.report import Report

log = logging.getLogger("pmsync.pingcode")

FAMILIES = ("pjm", "project")
# Every status is handed back to us except the ones HttpClient retries (429, 502-504).
ACCEPT_ALL = frozenset(range(200, 600)) - RETRY_STATUS
HEX_ID = re.compile(r"[0-9a-f]{24}", re.IGNORECASE)
IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*-\d+")
SYSTEM_TYPES = ("epic", "feature", "story", "task", "bug", "issue")
# PingCode comment size limit is undocumented (§8); stay well below any plausible one.
MAX_COMMENT_CHARS = 50_000
MAX_LIST_ROWS = 25


# -- helpers shared with connectors/worktile.py (same vendor lineage: §2.1) ---------------


def zone_of(value: str) -> str:
    """Validate an IANA zone name (for settings)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {value!r} (use an IANA name such as Asia/Shanghai)"
        ) from None
    return value


def base_url(value: str) -> str:
    """Validate an http(s) base URL (for settings) and drop a trailing slash."""
    value = value.strip()
    if not re.match(r"https?://[^/\s]+", value):
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value.rstrip("/")


def unix_seconds(value: Any) -> float | None:
    """Return epoch seconds from a unix timestamp in seconds (or milliseconds), else None."""
    if isinstance(value, bool) or value in (None, "", 0, "0"):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number > 1e12:  # milliseconds
        number /= 1000
    return number if number > 0 else None


def from_unix(value: Any) -> datetime | None:
    """Return the UTC datetime of a unix timestamp (§1.4: PingCode and Worktile use seconds)."""
    seconds = unix_seconds(value)
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def unix_date(value: Any, zone: ZoneInfo) -> date | None:
    """Return the calendar date of a unix timestamp in the tenant's zone.

    Date fields are stored as a moment: 00:00 or 23:59:59 local time (§1.5's example is
    midnight in UTC+8), so the day is read in the tenant's timezone, not in UTC.
    """
    seconds = unix_seconds(value)
    return None if seconds is None else datetime.fromtimestamp(seconds, zone).date()


def expiry(expires_in: Any, now: float) -> float | None:
    """Return when a token expires (epoch seconds) from an `expires_in` that may be either
    an absolute unix time (§1.3: the doc example 1577808000) or a number of seconds."""
    seconds = unix_seconds(expires_in)
    if seconds is None:
        return None
    return seconds if seconds > 1e9 else now + seconds


class TokenCache:
    """An access token kept in memory for the run, refreshed shortly before it expires."""

    def __init__(
        self, fetch: Callable[[], tuple[str, float | None]], clock: Callable[[], float]
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self.token: str | None = None
        self._refresh_at: float | None = None
        self.fetched = 0

    def get(self) -> str:
        now = self._clock()
        if self.token is None or (self._refresh_at is not None and now >= self._refresh_at):
            token, expires_at = self._fetch()
            self.fetched += 1
            self.token = token
            if expires_at is None:
                self._refresh_at = None  # lifetime unknown: keep it until it is rejected
            else:
                margin = min(300.0, max(0.0, expires_at - now) / 2)
                self._refresh_at = expires_at - margin
        return self.token

    def invalidate(self) -> None:
        self.token = None


def one_line(text: Any, limit: int = 200) -> str:
    """Collapse whitespace and cut to `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def json_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


# -- settings -----------------------------------------------------------------------------


class PingCodeSettings(SourceSettings):
    kind: Literal["pingcode"] = "pingcode"
    # Public cloud, or a private deployment's https://host/open (§1.2).
    url: str = "https://open.pingcode.com"
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    # Project identifier (e.g. "SCR") or its 24-hex id.
    project: str = Field(min_length=1)
    api_family: Literal["auto", "pjm", "project"] = "auto"
    # What a state of type `closed` means (closed without being completed: rejected, won't do).
    closed_category: StatusCategory = StatusCategory.CANCELLED
    # Read transition_histories (one request per item): "changed" for the items an
    # incremental sync brings, "all" also for every started item of a full sync, or "off".
    history: Literal["changed", "all", "off"] = "changed"
    # Work-item type keys or ids that are milestones (waterfall 里程碑 types have hex ids).
    milestone_types: list[str] = Field(default_factory=lambda: ["milestone"])
    include_archived: bool = True
    page_size: int = Field(default=100, ge=1, le=100)
    # The tenant's zone, used to turn date moments (start_at, end_at) into calendar days.
    timezone: str = "Asia/Shanghai"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return base_url(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return zone_of(value)


class PingCodeTarget(BaseModel):
    """`[[projects.X.publish]]` options for a PingCode source: the work item to comment on."""

    model_config = ConfigDict(extra="forbid")

    # Work item identifier (e.g. "PRJ-12") or its 24-hex id.
    work_item: str = Field(min_length=1)
    # Delete the previous comment of the same period after posting its replacement.
    replace_previous: bool = True


# -- connector ----------------------------------------------------------------------------


class PingCodeConnector(Connector):
    kind = "pingcode"
    Settings = PingCodeSettings
    Target = PingCodeTarget
    ordered = False
    settings: PingCodeSettings

    def __init__(self, name: str, settings: PingCodeSettings) -> None:  # type: ignore[override]
        super().__init__(name, settings)
        self.http = HttpClient(
            settings.url, source=name, secrets=[settings.client_secret.get_secret_value()]
        )
        self.clock: Callable[[], float] = time.time
        self.token = TokenCache(self._fetch_token, lambda: self.clock())
        self.zone = ZoneInfo(settings.timezone)
        self._family: str | None = None
        self._project: dict[str, str] | None = None
        self._history_ok = True
        self._history_answered = False
        self._unknown_types: set[str] = set()
        self._live_ids: list[str] | None = None

    # -- auth and requests ---------------------------------------------------------------

    def _fetch_token(self) -> tuple[str, float | None]:
        """Get an enterprise token by client credentials (§1.3)."""
        assert self.http is not None
        s = self.settings
        response = self.http.request(
            "GET",
            "v1/auth/token",
            params={
                "grant_type": "client_credentials",
                "client_id": s.client_id,
                "client_secret": s.client_secret.get_secret_value(),
            },
            headers={"Authorization": None},  # type: ignore[dict-item]
            ok=ACCEPT_ALL,
        )
        body = json_body(response)
        token = body.get("access_token") if isinstance(body, dict) else None
        if response.status_code >= 300 or not isinstance(token, str) or not token:
            detail = self._detail(body, response)
            raise SourceError(
                f"{self.name}: cannot get a PingCode token; client_id {s.client_id!r}{detail};"
                " check client_id and client_secret, and that the app still exists"
            )
        self.http.add_secret(token)
        return token, expiry(body.get("expires_in"), self.clock())

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        accept: Collection[int] = (),
        error: type[PmsyncError] = SourceError,
    ) -> requests.Response:
        """Send an authenticated request; refresh the token once if it is rejected.

        Statuses in `accept` are returned to the caller; other errors raise `error` with
        PingCode's `{code, message}` in one line.
        """
        assert self.http is not None
        for attempt in (1, 2):
            token = self.token.get()
            response = self.http.request(
                method,
                path,
                params=params,
                json=json,
                headers={"Authorization": f"Bearer {token}"},
                ok=ACCEPT_ALL,
            )
            if response.status_code == 401 and attempt == 1:
                log.info("%s: token rejected, fetching a new one", self.name)
                self.token.invalidate()
                continue
            break
        status = response.status_code
        if 200 <= status < 300 or status in accept:
            return response
        raise error(self._message(method, path, response))

    def _detail(self, body: Any, response: requests.Response) -> str:
        """`: code 100038 message (HTTP 429)` from a PingCode error body."""
        assert self.http is not None
        parts = [f"HTTP {response.status_code}"]
        if isinstance(body, dict):
            if body.get("code") not in (None, ""):
                parts.insert(0, f"code {body['code']}")
            if body.get("message"):
                parts.insert(1 if len(parts) > 1 else 0, one_line(body["message"]))
        return ": " + self.http.redact(" ".join(parts[:-1]) + f" ({parts[-1]})").strip()

    def _message(self, method: str, path: str, response: requests.Response) -> str:
        status = response.status_code
        hint = {
            # No "token <word>" here: the redactor would take the word for a token value.
            401: "rejected again after fetching a new token; check client_id and client_secret,"
            " and that the app was not deleted or its secret reset",
            403: "the app's data range (scopes) does not allow this: grant it in 企业后台 → 凭据管理",
            404: "not found: check url, project, work_item and api_family",
            410: "PingCode removed this endpoint: set api_family or upgrade pmsync",
        }.get(status, "see PingCode's message")
        detail = self._detail(json_body(response), response)
        return f"{self.name}: PingCode {method} /{path.lstrip('/')} failed{detail}; {hint}"

    # -- path family and project ---------------------------------------------------------

    def family(self) -> str:
        """Return the work-item path family: configured, remembered, or probed once."""
        if self._family is None:
            configured = self.settings.api_family
            remembered = self.state.get("api_family")
            if configured != "auto":
                self._family = configured
            elif remembered in FAMILIES:
                self._family = remembered
            else:
                self._family = self._probe()
        return self._family

    def _probe(self) -> str:
        for fam in FAMILIES:
            response = self._request(
                "GET",
                self._items_path(fam),
                params={"page_size": 1},
                accept=(400, 403, 404, 405, 410, 422),
            )
            # A 400/403/422 still proves the path is served (a missing filter, a scope).
            if response.status_code not in (404, 405, 410):
                self.state["api_family"] = fam
                self.state.pop("updated_between", None)
                self.notes.append(f"PingCode API family: /v1/{fam} (probed)")
                return fam
        raise SourceError(
            f"{self.name}: neither /v1/pjm/workitems nor /v1/project/work_items answers at"
            f" {self.settings.url}; check url (public cloud https://open.pingcode.com, private"
            " deployment https://<host>/open)"
        )

    def _reprobe(self) -> bool:
        """After a 404 on a remembered family, probe again; True if the family changed."""
        if self.settings.api_family != "auto":
            return False
        old = self._family
        self.state.pop("api_family", None)
        self._family = self._probe()
        return self._family != old

    @staticmethod
    def _items_path(fam: str) -> str:
        return "v1/pjm/workitems" if fam == "pjm" else "v1/project/work_items"

    def _filter(self, name: str) -> str:
        """Filter names are plural on /v1/project and singular on /v1/pjm (§1.6)."""
        if self.family() == "pjm":
            return name
        return {"project_id": "project_ids", "type_id": "type_ids"}.get(name, name)

    def project(self) -> dict[str, str]:
        """Resolve the configured project (identifier or id) to `{id, identifier, name}`."""
        if self._project is not None:
            return self._project
        ref = self.settings.project
        cached = self.state.get("project")
        if isinstance(cached, dict) and cached.get("ref") == ref and cached.get("id"):
            self._project = {k: str(cached.get(k) or "") for k in ("id", "identifier", "name")}
            return self._project
        fam = self.family()
        found: dict[str, Any] | None = None
        if HEX_ID.fullmatch(ref):
            response = self._request("GET", f"v1/{fam}/projects/{ref}", accept=(404,))
            if response.status_code < 300:
                found = self.http.parse_json(response)  # type: ignore[union-attr]
        else:
            for values in self._pages(f"v1/{fam}/projects", {"identifier": ref}):
                found = next(
                    (
                        p
                        for p in values
                        if str(p.get("identifier", "")).casefold() == ref.casefold()
                    ),
                    None,
                )
                if found:
                    break
        if not isinstance(found, dict) or not found.get("id"):
            raise SourceError(
                f"{self.name}: no PingCode project {ref!r} visible to this app; check `project`"
                " (identifier such as SCR, or the project id) and the app's data range"
            )
        self._project = {
            "id": str(found["id"]),
            "identifier": str(found.get("identifier") or ""),
            "name": str(found.get("name") or ""),
        }
        self.state["project"] = {"ref": ref, **self._project}
        return self._project

    def check(self) -> str:
        project = self.project()
        return (
            f"project {project['identifier'] or project['id']} ({project['name']}),"
            f" API /v1/{self.family()}"
        )

    # -- listing -------------------------------------------------------------------------

    def _pages(
        self, path: str, params: dict[str, Any], *, accept: Collection[int] = ()
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield each page's `values` (§1.4: page_index from 0, page_size ≤ 100, total).

        With `accept`, a first page answered with one of those statuses yields nothing and
        raises `_Refused(status)` so the caller can fall back.
        """
        assert self.http is not None
        size = self.settings.page_size
        index = seen = 0
        previous_first: Any = None
        while True:
            response = self._request(
                "GET",
                path,
                params={**params, "page_index": index, "page_size": size},
                accept=accept if index == 0 else (),
            )
            if response.status_code >= 300:
                raise _Refused(response.status_code)
            body = self.http.parse_json(response)
            if isinstance(body, list):  # an unpaged list (transition histories may be one)
                yield [v for v in body if isinstance(v, dict)]
                return
            values = body.get("values") if isinstance(body, dict) else None
            if not isinstance(values, list):
                raise SourceError(
                    f"{self.name}: unexpected answer from /{path} (no `values` list);"
                    " check url and api_family"
                )
            first = values[0].get("id") if values and isinstance(values[0], dict) else None
            if index > 0 and first is not None and first == previous_first:
                raise SourceError(
                    f"{self.name}: /{path} returned page {index} twice (page_index ignored?);"
                    " stopping instead of looping"
                )
            previous_first = first
            yield [v for v in values if isinstance(v, dict)]
            index += 1
            seen += len(values)
            total = body.get("total")
            served = body.get("page_size") if isinstance(body.get("page_size"), int) else size
            if not values:
                return
            if isinstance(total, int) and not isinstance(total, bool):
                if seen >= total:
                    return
            elif len(values) < min(served, size):
                return

    def _item_pages(
        self, extra: dict[str, Any], *, accept: Collection[int] = ()
    ) -> Iterator[list[dict[str, Any]]]:
        """Page through the project's work items, re-probing once if the family moved."""
        params: dict[str, Any] = {self._filter("project_id"): self.project()["id"], **extra}
        if self.settings.include_archived:
            params["include_archived"] = "true"
        try:
            yield from self._pages(
                self._items_path(self.family()), params, accept={*accept, 404, 410}
            )
        except _Refused as refused:
            if refused.status in (404, 410) and self._reprobe():
                params = {self._filter("project_id"): self.project()["id"], **extra}
                if self.settings.include_archived:
                    params["include_archived"] = "true"
                yield from self._pages(self._items_path(self.family()), params, accept=accept)
                return
            if refused.status in (404, 410):
                raise SourceError(
                    f"{self.name}: /{self._items_path(self.family())} answered HTTP"
                    f" {refused.status}; set api_family (pjm or project) or check url"
                ) from None
            raise

    def fetch_items(self, since: datetime | None) -> Iterator[WorkItem]:
        self._live_ids = None
        extra: dict[str, Any] = {}
        server_side = since is not None and self.state.get("updated_between") != "rejected"
        if since is not None and server_side:
            # "from" alone means "after" (§1.6).
            extra["updated_between"] = str(int(since.timestamp()))
        read = changed = 0
        ignored = False
        ids: list[str] = []
        pages = self._item_pages(extra, accept=(400, 422) if server_side else ())
        try:
            for values in pages:
                for raw in values:
                    item = self._item(raw)
                    if item is None:
                        continue
                    read += 1
                    ids.append(item.id)
                    if since is not None and item.updated_at and item.updated_at < since:
                        ignored = ignored or server_side
                        continue
                    changed += 1
                    if self._wants_history(item, since):
                        item.transitions = self._history(item)
                    yield item
        except _Refused as refused:
            # The server rejects updated_between: compare on updated_at instead, and remember
            # that once a pass without it has worked.
            self.notes.append(
                f"/{self._items_path(self.family())} rejected updated_between"
                f" (HTTP {refused.status}); using a full pass"
            )
            self.state["updated_between"] = "rejected"
            try:
                yield from self.fetch_items(since)
            except PmsyncError:
                self.state.pop("updated_between", None)
                raise
            return
        path = "/" + self._items_path(self.family())
        if since is None:
            self.notes.append(f"full pass: {read} work items ({path})")
        elif server_side and not ignored:
            self.notes.append(
                f"incremental by updated_between (server-side filter on {path}):"
                f" {changed} updated since the last sync"
            )
        else:
            why = "ignores" if ignored else "does not accept"
            self.notes.append(
                f"incremental by a full pass compared on updated_at ({path} {why}"
                f" updated_between): {read} read, {changed} updated since the last sync"
            )
        if since is None or not server_side or ignored:
            self._live_ids = ids  # this pass saw every live item: the census is free

    def fetch_ids(self) -> Iterator[str]:
        if self._live_ids is not None:
            return iter(self._live_ids)
        return self._all_ids()

    def _all_ids(self) -> Iterator[str]:
        for values in self._item_pages({}):
            for raw in values:
                if not _deleted(raw) and raw.get("id") and not self._is_milestone(raw):
                    yield str(raw["id"])

    # -- mapping -------------------------------------------------------------------------

    def _category(self, state: dict[str, Any]) -> StatusCategory:
        """Map a state to a category by its `type` (§1.7), never by its (Chinese) name."""
        name = str(state.get("name") or "")
        override = self.settings.status_map
        for key in (name, str(state.get("id") or "")):
            if key and key in override:
                return override[key]
        stype = str(state.get("type") or "")
        if stype == "closed":
            return self.settings.closed_category
        mapped = {
            "pending": StatusCategory.TODO,
            "in_progress": StatusCategory.IN_PROGRESS,
            "completed": StatusCategory.DONE,
        }.get(stype)
        if mapped is None:
            if stype not in self._unknown_types:
                self._unknown_types.add(stype)
                self.notes.append(
                    f"unknown PingCode state type {stype!r} (state {name!r}) counted as todo;"
                    " map it with status_map"
                )
            return StatusCategory.TODO
        return mapped

    def _type_key(self, raw: dict[str, Any]) -> tuple[str, str]:
        """Return (key or id, name) of a work item's type (a string, or an object)."""
        value = raw.get("type")
        if isinstance(value, dict):
            return str(value.get("id") or value.get("key") or ""), str(value.get("name") or "")
        return str(value or ""), ""

    def _is_milestone(self, raw: dict[str, Any]) -> bool:
        key, name = self._type_key(raw)
        wanted = {t.casefold() for t in self.settings.milestone_types}
        return key.casefold() in wanted or (bool(name) and name.casefold() in wanted)

    def _item(self, raw: dict[str, Any]) -> WorkItem | None:
        if _deleted(raw) or not raw.get("id") or self._is_milestone(raw):
            return None
        state = raw.get("state") if isinstance(raw.get("state"), dict) else {}
        status = str(state.get("name") or state.get("type") or "")
        key, type_name = self._type_key(raw)
        kind = key if key in SYSTEM_TYPES else (type_name or key or "task")
        version = _obj(raw, "version") or _obj(raw, "release")
        sprint = _obj(raw, "sprint")
        parent = _obj(raw, "parent")
        points = raw.get("story_points")
        if not isinstance(points, (int, float)) or isinstance(points, bool):
            points = raw.get("estimated_workload")
        estimate = (
            float(points)
            if isinstance(points, (int, float)) and not isinstance(points, bool)
            else None
        )
        return WorkItem(
            source=self.name,
            id=str(raw["id"]),
            key=str(raw.get("identifier") or raw.get("short_id") or raw["id"]),
            title=str(raw.get("title") or raw.get("name") or ""),
            url=raw.get("html_url") or None,
            kind=kind,
            status=status,
            category=self._category(state),
            assignee=_person(raw.get("assignee")),
            priority=_name(raw.get("priority")),
            labels=[
                str(t["name"])
                for t in raw.get("tags") or []
                if isinstance(t, dict) and t.get("name")
            ],
            parent_id=str(raw.get("parent_id") or parent.get("id") or "") or None,
            milestone_id=str(version.get("id") or sprint.get("id") or "") or None,
            start_date=unix_date(raw.get("start_at"), self.zone),
            due_date=unix_date(raw.get("end_at"), self.zone),
            created_at=from_unix(raw.get("created_at")),
            updated_at=from_unix(raw.get("updated_at")),
            completed_at=from_unix(raw.get("completed_at")),
            estimate=estimate,
            blocked=status in self.settings.blocked_statuses,
            raw=raw,
        )

    # -- history and milestones ----------------------------------------------------------

    def _wants_history(self, item: WorkItem, since: datetime | None) -> bool:
        # One request per item is costly at 200 requests a minute (§1.4): a full pass reads
        # history only with history = "all", and then only for items that left their first state.
        mode = self.settings.history
        if mode == "off" or not self._history_ok:
            return False
        if since is not None:
            return True
        return mode == "all" and item.category is not StatusCategory.TODO

    def _history(self, item: WorkItem) -> list[Transition] | None:
        """Return the item's state changes from transition_histories (§1.7), oldest first."""
        path = f"{self._items_path(self.family())}/{item.id}/transition_histories"
        entries: list[dict[str, Any]] = []
        try:
            for values in self._pages(path, {}, accept=(404, 405, 410)):
                entries.extend(values)
        except _Refused as refused:
            if self._history_answered:
                return None  # the endpoint exists: this item went away meanwhile
            self._history_ok = False
            self.notes.append(
                f"no transition history at /{path} (HTTP {refused.status}); status changes are"
                " observed between syncs instead"
            )
            return None
        self._history_answered = True
        out: list[Transition] = []
        for entry in entries:
            to_state = _obj(entry, "to_state")
            at = from_unix(entry.get("created_at"))
            if not to_state or at is None:
                continue
            from_state = _obj(entry, "from_state")
            out.append(
                Transition(
                    source=self.name,
                    item_id=item.id,
                    at=at,
                    from_status=str(from_state.get("name") or "") or None,
                    to_status=str(to_state.get("name") or to_state.get("type") or ""),
                    from_category=self._category(from_state) if from_state else None,
                    to_category=self._category(to_state),
                )
            )
        out.sort(key=lambda t: t.at)
        return out or None

    def fetch_milestones(self) -> Iterable[Milestone]:
        """Versions (releases on /v1/pjm), sprints, and milestone-type work items (§1.8)."""
        fam = self.family()
        pid = self.project()["id"]
        out: dict[str, Milestone] = {}
        lists = (
            ("releases" if fam == "pjm" else "versions", "versions"),
            ("sprints", "sprints"),
        )
        for resource, label in lists:
            path = f"v1/{fam}/projects/{pid}/{resource}"
            try:
                for values in self._pages(path, {}, accept=(400, 404, 405, 410)):
                    for raw in values:
                        if raw.get("id") and not _deleted(raw):
                            out[str(raw["id"])] = self._milestone(raw)
            except _Refused as refused:
                self.notes.append(f"no {label} at /{path} (HTTP {refused.status})")
        for type_key in self.settings.milestone_types:
            try:
                for values in self._item_pages(
                    {self._filter("type_id"): type_key}, accept=(400, 422)
                ):
                    for raw in values:
                        if raw.get("id") and not _deleted(raw) and self._is_milestone(raw):
                            out[str(raw["id"])] = self._milestone_item(raw)
            except _Refused as refused:
                self.notes.append(
                    f"work-item type {type_key!r} cannot be listed (HTTP {refused.status});"
                    " check milestone_types"
                )
        return list(out.values())

    def _milestone(self, raw: dict[str, Any]) -> Milestone:
        stage = _obj(raw, "stage")
        done = str(raw.get("status") or "") in ("completed", "published") or str(
            stage.get("type") or ""
        ) in ("completed", "published")
        return Milestone(
            source=self.name,
            id=str(raw["id"]),
            name=str(raw.get("name") or raw["id"]),
            start_date=unix_date(raw.get("start_at"), self.zone),
            due_date=unix_date(raw.get("end_at"), self.zone),
            state="closed" if done else "open",
            url=raw.get("html_url") or None,
        )

    def _milestone_item(self, raw: dict[str, Any]) -> Milestone:
        state = _obj(raw, "state")
        done = not self._category(state).is_open if state else False
        return Milestone(
            source=self.name,
            id=str(raw["id"]),
            name=str(raw.get("title") or raw.get("identifier") or raw["id"]),
            start_date=unix_date(raw.get("start_at"), self.zone),
            due_date=unix_date(raw.get("end_at"), self.zone),
            state="closed" if done else "open",
            url=raw.get("html_url") or None,
        )

    # -- publishing ----------------------------------------------------------------------

    def render(self, target: PublishTarget, report: Report) -> str:
        self._target(target)
        return report_html(report)

    def publish(
        self, target: PublishTarget, report: Report, previous: Publication | None
    ) -> RemoteRef:
        options = self._target(target)
        body = report_html(report)
        if previous is not None and previous.content_hash in content_hashes(body):
            return RemoteRef(id=previous.remote_id, url=previous.url, changed=False)
        try:
            work_item = self._work_item(options.work_item)
            comment_id = self._post_comment(work_item["id"], body)
        except SourceError as exc:  # token, path family or transport: a failed publish
            raise PublishError(str(exc)) from None
        if previous is not None and options.replace_previous and previous.remote_id != comment_id:
            self._delete_comment(previous.remote_id, work_item["id"])
        return RemoteRef(id=comment_id, url=work_item.get("html_url") or None)

    def _target(self, target: PublishTarget) -> PingCodeTarget:
        try:
            return PingCodeTarget.model_validate(target.options)
        except ValueError as exc:
            raise PublishError(
                f"{self.name}: invalid publish target options: {one_line(exc, 300)}"
            ) from None

    def _work_item(self, ref: str) -> dict[str, Any]:
        """Resolve a work item identifier (PRJ-12) or id to its JSON."""
        path = self._items_path(self.family())
        found: dict[str, Any] | None = None
        if IDENTIFIER.fullmatch(ref):
            response = self._request(
                "GET", path, params={"identifier": ref, "page_size": 100}, error=PublishError
            )
            values = (self.http.parse_json(response) or {}).get("values") or []  # type: ignore[union-attr]
            found = next(
                (
                    v
                    for v in values
                    if isinstance(v, dict)
                    and str(v.get("identifier", "")).casefold() == ref.casefold()
                ),
                None,
            )
        else:
            response = self._request("GET", f"{path}/{ref}", accept=(404,), error=PublishError)
            if response.status_code < 300:
                found = self.http.parse_json(response)  # type: ignore[union-attr]
        if not isinstance(found, dict) or not found.get("id"):
            raise PublishError(
                f"{self.name}: no PingCode work item {ref!r}; check the publish target's"
                " work_item (identifier such as PRJ-12, or the work item id)"
            )
        return found

    def _post_comment(self, work_item_id: str, body: str) -> str:
        """POST /v1/comments, trying `workitem` then `work_item` as principal type (§1.9)."""
        assert self.http is not None
        remembered = self.state.get("comment_principal_type")
        kinds = ["workitem", "work_item"]
        if remembered in kinds:
            kinds.remove(remembered)
            kinds.insert(0, remembered)
        for n, principal_type in enumerate(kinds):
            last = n == len(kinds) - 1
            response = self._request(
                "POST",
                "v1/comments",
                json={
                    "principal_type": principal_type,
                    "principal_id": work_item_id,
                    "content": body,
                },
                accept=() if last else (400, 404, 422),
                error=PublishError,
            )
            if response.status_code >= 300:
                continue
            data = json_body(response)
            if not isinstance(data, dict) or not data.get("id"):
                raise PublishError(
                    f"{self.name}: PingCode accepted the comment but returned no id; check the"
                    " work item before publishing again"
                )
            self.state["comment_principal_type"] = principal_type
            return str(data["id"])
        raise AssertionError("unreachable")  # pragma: no cover

    def _delete_comment(self, comment_id: str, work_item_id: str) -> None:
        """Delete the replaced comment; a failure is a note, never a failed publish."""
        principal_type = self.state.get("comment_principal_type", "workitem")
        try:
            response = self._request(
                "DELETE",
                f"v1/comments/{comment_id}",
                params={"principal_type": principal_type, "principal_id": work_item_id},
                accept=(403, 404, 410),
                error=PublishError,
            )
        except PmsyncError as exc:
            self.notes.append(f"could not delete the replaced comment {comment_id}: {exc}")
            return
        if response.status_code >= 300:
            self.notes.append(
                f"could not delete the replaced comment {comment_id} (HTTP {response.status_code})"
            )


class _Refused(Exception):
    """A first page answered with a status the caller asked to handle itself."""

    def __init__(self, status: int) -> None:
        self.status = status


def _deleted(raw: dict[str, Any]) -> bool:
    return bool(raw.get("is_deleted"))


def _obj(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, dict) else {}


def _name(value: Any) -> str | None:
    if isinstance(value, dict):
        return str(value.get("name") or value.get("title") or "") or None
    return str(value) if value else None


def _person(value: Any) -> str | None:
    if isinstance(value, dict):
        return str(value.get("display_name") or value.get("name") or "") or None
    return str(value) if value else None


# -- rendering ----------------------------------------------------------------------------


def content_hashes(body: str) -> set[str]:
    """Hashes the publisher may have recorded for `body` (sha256 hex, and its `sha256:` form)."""
    digest = hashlib.sha256(body.encode()).hexdigest()
    return {digest, f"sha256:{digest}"}


def neutral(text: Any) -> str:
    """Escape text for HTML and break @mentions so nobody is notified."""
    return html.escape(plain(str(text)), quote=True).replace("@", "@\u200b")


def _link(text: str, url: str | None) -> str:
    """Escaped text, linked only to a safe http(s) URL."""
    href = safe_url(url)
    if href is None:
        return neutral(text)
    return f'<a href="{html.escape(href, quote=True)}">{neutral(text)}</a>'


def report_html(report: Report, *, max_rows: int = MAX_LIST_ROWS) -> str:
    """Render a report as the small, fully escaped HTML a PingCode comment carries.

    §1.9: whether comment content renders HTML is unconfirmed; descriptions are HTML, so
    this sends only headings, paragraphs, lists and links. The words and lists come from
    `sync.render.common` and `sync.i18n`, like every other renderer's.
    """
    from sync import i18n
    from sync.render import common

    lang = report.language

    def t(key: str, **values: object) -> str:
        return i18n.t(lang, key, **values)

    def more(hidden: int) -> str:
        return f"<li>{_link(common.more_text(report, hidden), report.more_url)}</li>"

    out = [f"<h3>{neutral(plain(common.title(report)))}</h3>"]
    out.append(
        "<p>"
        + "<br>".join(
            f"<strong>{neutral(label)}</strong>: {neutral(value)}"
            for label, value in common.header_fields(report)
        )
        + "</p>"
    )
    out.append(
        f"<p><strong>{neutral(t('health'))}</strong>: {neutral(common.health_heading(report))}</p>"
    )
    if report.health.reasons:
        out.append(
            "<ul>"
            + "".join(f"<li>{neutral(plain(r, 300))}</li>" for r in report.health.reasons)
            + "</ul>"
        )
    out.append(
        f"<p><strong>{neutral(t('progress'))}</strong>: "
        + "<br>".join(neutral(line) for line in common.progress_lines(report))
        + "</p>"
    )
    for section in common.sections(report):
        if not section.items:
            continue
        rows = []
        for ref in section.items[:max_rows]:
            details = [
                f"{t(col.heading)} {value}"
                for col in section.columns
                if col.heading not in ("col_key", "col_title") and (value := col.value(ref, lang))
            ]
            rows.append(
                f"<li>{_link(plain(ref.key, 50), ref.url)} {neutral(plain(ref.title, common.TITLE_LIMIT))}"
                + (f" ({neutral('; '.join(details))})" if details else "")
                + "</li>"
            )
        if len(section.items) > max_rows:
            rows.append(more(len(section.items) - max_rows))
        out.append(f"<p><strong>{neutral(t(section.heading))}</strong></p><ul>{''.join(rows)}</ul>")
    if report.milestones:
        rows = []
        for m in report.milestones[:max_rows]:
            due = f"{t('col_due')} {i18n.fmt_date(lang, m.due_date)}; " if m.due_date else ""
            line = f"{due}{t('col_percent')} {i18n.fmt_percent(m.percent_done)}; {t('state_' + m.state)}"
            rows.append(
                f"<li>{_link(plain(m.name, common.TITLE_LIMIT), m.url)} ({neutral(line)})</li>"
            )
        if len(report.milestones) > max_rows:
            rows.append(more(len(report.milestones) - max_rows))
        out.append(f"<p><strong>{neutral(t('milestones'))}</strong></p><ul>{''.join(rows)}</ul>")
    out.append(
        f"<p><strong>{neutral(t('forecast'))}</strong>: "
        + "<br>".join(neutral(line) for line in common.forecast_lines(report))
        + "</p>"
    )
    body = "\n".join(out)
    if len(body) > MAX_COMMENT_CHARS and max_rows > 1:
        return report_html(report, max_rows=max(1, max_rows // 2))
    return body
