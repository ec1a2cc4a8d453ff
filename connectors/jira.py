"""Jira connector: Jira Cloud (REST v3) and Data Center (REST v2).

Facts and the pitfalls it avoids are in ../shared/research/jira-api.md (cited as §n).

Reading
- Cloud searches with `POST /rest/api/3/search/jql`, paged by `nextPageToken` only (§2.1,
  §10.4), asking for the fields it uses, 100 issues a page, `ORDER BY updated ASC, key ASC`.
  Items therefore arrive oldest first and the engine moves the watermark after every page
  (`ordered`). An issue updated while the pages are read moves to the end and is read
  again there. Should the tokens ever behave like offsets (§10.2: the update would then
  push an unread issue behind the cursor), the re-read is the tell: the run then lists
  the ids the query matches (id-only pages of 5,000) and fetches any it missed.
- Data Center searches `/rest/api/2/search` with `startAt`, `ORDER BY updated DESC, key
  DESC`: an issue updated mid-run jumps to the front (already passed), so offsets only
  shift forward (re-reads, never skips), and a last page `updated >=` the newest issue seen
  reads those jumpers. When `total` drops (an issue deleted or moved out of the query),
  paging steps back by as much. Deep pages are re-anchored with an `updated <=` bound every
  9,000 issues (OpenSearch-backed DC refuses results past 10,000). Not ordered: the engine
  moves the watermark at the end of the run.
- The incremental bound has no timezone trap (§6, §10.1): an epoch-millisecond literal by
  default, or (`since_format = "user-timezone"`) the wall time in the API user's own
  timezone read from `/myself` on every run, minute-floored, DST-safe.
- Custom fields (story points, sprint, start date, Flagged, Epic Link) are found by
  `schema.custom` type in `/field` (§3, §10.9), cached in the connector state, overridable.
- Status category from `statusCategory.key`, never the (localised) name; a done status with
  a resolution like "Won't Do" is `cancelled`.
- History: Cloud fetches status changes with `/changelog/bulkfetch` (≤1,000 issues a call)
  for the issues that changed; DC expands the changelog in the search and completes a
  truncated one per issue (§4, §10.5).
- Milestones: fix versions of the projects (paged), and sprints of `board` when set. They are
  re-read on a full sync, when issues changed, or when older than `milestones_max_age_hours`;
  otherwise the cached list is returned (a quiet run costs one request).
- Census: id-only search pages of 5,000 (Cloud) or 1,000 (DC).

Publishing: one comment per project and period on the target issue, ADF on Cloud and wiki
markup on DC, kept under Jira's 32,767-character limit, created once and then updated in
place; the comment id is mirrored in an issue property (and a comment property on Cloud) so
a lost local store does not post a duplicate.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from connectors.base import Connector, Publication, PublishTarget, SourceSettings
from connectors.http import HttpClient, HttpError
from sync.errors import ConfigError, PublishError, SourceError
from sync.model import Milestone, RemoteRef, StatusCategory, Transition, WorkItem

if TYPE_CHECKING:
    from sync.report import Report

log = logging.getLogger("pmsync.jira")

CLOUD = "cloud"
DATACENTER = "datacenter"
CATEGORY_BY_KEY = {
    "new": StatusCategory.TODO,
    "indeterminate": StatusCategory.IN_PROGRESS,
    "done": StatusCategory.DONE,
    "undefined": StatusCategory.TODO,
}
DEFAULT_CANCELLED_RESOLUTIONS = [
    "Won't Do",
    "Won't Fix",
    "Duplicate",
    "Cannot Reproduce",
    "Declined",
    "Rejected",
    "Cancelled",
    "Canceled",
    "Obsolete",
    "Abandoned",
]
SYSTEM_FIELDS = [
    "summary",
    "status",
    "issuetype",
    "priority",
    "assignee",
    "labels",
    "parent",
    "duedate",
    "created",
    "updated",
    "resolutiondate",
    "resolution",
    "fixVersions",
    "statuscategorychangedate",
]
# §3: custom fields are identified by schema.custom, not by id (numbering is per site).
GH = "com.pyxis.greenhopper.jira:"
CF = "com.atlassian.jira.plugin.system.customfieldtypes:"
CONCEPTS = ("story_points", "sprint", "start_date", "flagged", "epic_link")
PAGE = 100  # issues per page with fields (§2.1: observed cap)
ID_PAGE_CLOUD = 5000  # id-only pages (§2.1)
ID_PAGE_DC = 1000  # §2.4: jira.search.views.default.max
BULK_ISSUES = 1000  # /changelog/bulkfetch: ≤1,000 issues a call (§4)
BULK_RESULTS = 10000  # …and up to 10,000 histories a page
DC_WINDOW = 9000  # re-anchor DC offset paging before the 10,000-result window (§2.4)
SPRINT_PAGE = 50  # §10.10: agile pages are capped at 50
VERSION_PAGE = 50
COMMENT_LIMIT = 32_000  # §8: 32,767 characters; keep headroom
RECENT_WINDOW = timedelta(hours=24)
RECENT_MAX = 5000
MIRROR_MAX = 60  # periods remembered in the issue property (it is capped at 32 KB)
_CLOUD_HOSTS = (".atlassian.net", ".jira.com", ".jira-dev.com")


class JiraFieldOverrides(BaseModel):
    """Explicit custom-field ids (e.g. "customfield_10016"); unset ones are discovered."""

    model_config = ConfigDict(extra="forbid")

    story_points: list[str] | None = None
    sprint: list[str] | None = None
    start_date: list[str] | None = None
    flagged: list[str] | None = None
    epic_link: list[str] | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value]
        return value


class JiraSettings(SourceSettings):
    kind: Literal["jira"] = "jira"
    # A site (https://x.atlassian.net), a Data Center base URL (with its context path), the
    # API gateway (https://api.atlassian.com/ex/jira/<cloudId>), or a local server.
    url: str
    # Cloud API tokens go with the account's email (Basic auth); without email the token is
    # sent as a Bearer token (a Data Center personal access token, or an OAuth access token).
    email: str | None = None
    token: SecretStr
    jql: str = Field(min_length=1)
    flavor: Literal["cloud", "datacenter"] | None = None
    fields: JiraFieldOverrides = Field(default_factory=JiraFieldOverrides)
    # Agile board whose sprints become milestones (and an item's milestone when it has no
    # fix version).
    board: int | None = Field(default=None, ge=1)
    # Projects whose fix versions become milestones; default: those in the JQL and the keys.
    projects: list[str] = Field(default_factory=list)
    cancelled_resolutions: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CANCELLED_RESOLUTIONS)
    )
    since_format: Literal["epoch", "user-timezone"] = "epoch"
    milestones_max_age_hours: float = Field(default=6, ge=0)
    # Where "browse" links point; default: the site (asked from /serverInfo via the gateway).
    browse_url: str | None = None
    timeout: float = Field(default=30, gt=0)

    @field_validator("url", "browse_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value.strip().rstrip("/")

    @field_validator("jql")
    @classmethod
    def _bounded(cls, value: str) -> str:
        if not split_order(value).strip():
            raise ValueError(
                "jql needs a restriction such as `project = ACME` (Jira refuses unbounded queries)"
            )
        return value.strip()


class JiraTarget(BaseModel):
    """Options of a publish target naming a Jira source: the issue that gets the comment."""

    model_config = ConfigDict(extra="forbid")

    issue: str
    property_key: str = Field(default="com.pmsync.status-report", min_length=1, max_length=255)

    @field_validator("issue")
    @classmethod
    def _issue_key(cls, value: str) -> str:
        value = str(value).strip()
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*-\d+|\d+", value):
            raise ValueError(f"issue must be an issue key such as ACME-1, not {value!r}")
        return value.upper()


class JiraHttp(HttpClient):
    """HttpClient that remembers why Jira rate limited us (§7: `RateLimit-Reason`).

    The waits themselves are HttpClient's: `Retry-After` (seconds, also on 503), else
    `X-RateLimit-Reset`, which Jira sends as an ISO timestamp. Requests are serialised by a
    lock, so the page prefetch thread and the main thread never overlap (one request at a
    time, as §7 recommends, and HttpClient's counters stay exact).
    """

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.limit_reasons: Counter[str] = Counter()
        self._lock = threading.RLock()

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        with self._lock:
            return super().request(method, path, **kw)

    def should_retry(self, response: requests.Response) -> bool:
        retry = super().should_retry(response)
        if retry and response.status_code in (429, 503):
            self.limit_reasons[
                response.headers.get("RateLimit-Reason") or f"HTTP {response.status_code}"
            ] += 1
        return retry


# -- small helpers ------------------------------------------------------------------------


def split_order(jql: str) -> str:
    """Return `jql` without its ORDER BY clause (quote-aware)."""
    quote: str | None = None
    i = 0
    while i < len(jql):
        ch = jql[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif (
            ch in "oO"
            and (i == 0 or not (jql[i - 1].isalnum() or jql[i - 1] == "_"))
            and re.match(r"order\s+by\b", jql[i:], re.IGNORECASE)
        ):
            return jql[:i].strip()
        i += 1
    return jql.strip()


def parse_time(value: Any) -> datetime | None:
    """Parse a Jira datetime (`2025-01-09T16:20:31.512+0000`, `…Z`, `…+10:00`, epoch) to UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value  # §4: bulkfetch may send epoch seconds
        return datetime.fromtimestamp(seconds, UTC)
    try:
        dt = datetime.fromisoformat(value)  # 3.11 reads +0000 and Z
    except (TypeError, ValueError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _number_or_zero(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_date(value: Any) -> date | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def local_bound(since: datetime, zone: ZoneInfo) -> str:
    """Return `since` as a JQL wall time in `zone`, never later than `since` (§6).

    JQL reads `yyyy-MM-dd HH:mm` in the user's zone at minute precision: floor to the
    minute, and in the repeated hour of a DST change write the earlier reading's time.
    """
    local = since.astimezone(zone).replace(second=0, microsecond=0)
    naive = local.replace(tzinfo=None)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first != second and max(first, second) > since:
        # Ambiguous wall time: Jira may read the later instant; step back an hour.
        local = (since - timedelta(hours=1)).astimezone(zone).replace(second=0, microsecond=0)
    return f'"{local:%Y-%m-%d %H:%M}"'


def _chunks(values: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


_VERSION_KEYS = ("id", "name", "releaseDate", "startDate", "released", "archived")
_SPRINT_KEYS = ("id", "name", "state", "boardId", "startDate", "endDate", "completeDate")


def _objects(value: Any) -> Any:
    """Version, sprint and option lists: their values without URLs."""
    if value.__class__ is not list or not value or value[0].__class__ is not dict:
        return value
    out = []
    for v in value:
        if v.__class__ is dict:
            keys = (
                _SPRINT_KEYS
                if "state" in v
                else _VERSION_KEYS
                if "released" in v
                else ("id", "value")
            )
            v = {k: v[k] for k in keys if k in v}
        out.append(v)
    return out


def slim_fields(f: dict[str, Any], lists: Iterable[str] = ("fixVersions",)) -> dict[str, Any]:
    """The issue's fields as stored in `WorkItem.raw`: every field read, trimmed to its values.

    Jira's nested objects carry URLs, icons and avatars; the store keeps what pmsync derives
    items from (ids, names, keys, dates, category keys), so re-deriving needs no request and
    the raw JSON written for every item stays small. `lists` names the fields holding lists
    of objects (fix versions, sprints, Flagged options). Written for speed: it runs per item.
    """
    out = dict(f)
    v = f.get("status")
    if v.__class__ is dict:
        c = v.get("statusCategory")
        out["status"] = {
            "id": v.get("id"),
            "name": v.get("name"),
            "statusCategory": {"key": c.get("key") if c.__class__ is dict else None},
        }
    v = f.get("issuetype")
    if v.__class__ is dict:
        out["issuetype"] = {
            "id": v.get("id"),
            "name": v.get("name"),
            "hierarchyLevel": v.get("hierarchyLevel"),
        }
    for name in ("priority", "resolution"):
        v = f.get(name)
        if v.__class__ is dict:
            out[name] = {"id": v.get("id"), "name": v.get("name")}
    v = f.get("assignee")
    if v.__class__ is dict:
        out["assignee"] = {k: v[k] for k in ("accountId", "name", "key", "displayName") if k in v}
    v = f.get("parent")
    if v.__class__ is dict:
        out["parent"] = {"id": v.get("id"), "key": v.get("key")}
    for name in lists:
        v = f.get(name)
        if v:
            out[name] = _objects(v)
    return out


_DC_SPRINT = re.compile(r"(\w+)=([^,\]]*)")


def parse_sprint(value: Any) -> dict[str, Any] | None:
    """A sprint value as a dict: Cloud objects as they are, old DC strings parsed (§3)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and "[" in value:
        fields = dict(_DC_SPRINT.findall(value.split("[", 1)[1]))
        if "id" not in fields:
            return None
        out: dict[str, Any] = {k: (None if v == "<null>" else v) for k, v in fields.items()}
        try:
            out["id"] = int(fields["id"])
        except ValueError:
            return None
        out["state"] = (out.get("state") or "").lower()
        return out
    return None


# -- the connector ------------------------------------------------------------------------


class JiraConnector(Connector):
    kind = "jira"
    Settings = JiraSettings
    Target = JiraTarget
    ordered = False  # set per instance once the flavour is known: True on Cloud
    settings: JiraSettings

    def __init__(self, name: str, settings: JiraSettings) -> None:  # type: ignore[override]
        super().__init__(name, settings)
        token = settings.token.get_secret_value()
        if not token:
            raise ConfigError(
                f'{name}: token is empty; set it (e.g. token = "${{JIRA_API_TOKEN}}")'
            )
        self.http: JiraHttp = JiraHttp(
            settings.url,
            source=name,
            auth=(settings.email, token) if settings.email else None,
            bearer=None if settings.email else token,
            secrets=[token],
            timeout=settings.timeout,
        )
        self._flavor: str | None = None
        self._fields: dict[str, list[str]] | None = None
        self._zone: ZoneInfo | None = None
        self._full = False
        self._changed = 0
        self._moved = 0
        self._statuses_fetched = False
        self._categories: dict[tuple[str | None, str | None], StatusCategory] = {}
        self._object_lists: tuple[str, ...] = ("fixVersions",)
        self._epics_fetched = False
        self._project_keys: set[str] = set()
        self._browse: str | None = None
        self._cancelled_names: set[str] | None = None

    # -- basics ---------------------------------------------------------------------------

    @property
    def flavor(self) -> str:
        if self._flavor is None:
            self._flavor = self._detect_flavor()
            self.ordered = self._flavor == CLOUD  # type: ignore[misc]
        return self._flavor

    @property
    def rest(self) -> str:
        return "rest/api/3" if self.flavor == CLOUD else "rest/api/2"

    def _detect_flavor(self) -> str:
        if self.settings.flavor:
            return self.settings.flavor
        cached = self.state.get("flavor")
        if cached in (CLOUD, DATACENTER):
            return str(cached)
        host = (urlsplit(self.settings.url).hostname or "").lower()
        if host.endswith(_CLOUD_HOSTS) or host == "api.atlassian.com":
            flavor = CLOUD
        else:
            # Both flavours serve v2; deploymentType is "Cloud" or "Server"/"DataCenter".
            info = self._get("rest/api/2/serverInfo", what="the server info")
            flavor = CLOUD if str(info.get("deploymentType", "")).lower() == "cloud" else DATACENTER
            if info.get("baseUrl"):
                self.state["site_url"] = str(info["baseUrl"]).rstrip("/")
        self.state["flavor"] = flavor
        return flavor

    def _browse_base(self) -> str:
        if self._browse is None:
            self._browse = self._find_browse_base()
        return self._browse

    def _find_browse_base(self) -> str:
        if self.settings.browse_url:
            return self.settings.browse_url
        site = self.state.get("site_url")
        if site:
            return str(site)
        host = (urlsplit(self.settings.url).hostname or "").lower()
        if host == "api.atlassian.com":
            # The gateway is not where people browse: ask the site its own URL (once).
            info = self._get("rest/api/3/serverInfo", what="the server info")
            site = str(info.get("baseUrl") or self.settings.url).rstrip("/")
            self.state["site_url"] = site
            return site
        return self.settings.url

    def check(self) -> str:
        me = self._get(f"{self.rest}/myself", what="the current user")
        who = me.get("displayName") or me.get("name") or me.get("accountId") or "?"
        return f"{who} (Jira {'Cloud' if self.flavor == CLOUD else 'Data Center'}, timezone {me.get('timeZone') or 'site default'})"

    # -- HTTP with one-line errors --------------------------------------------------------

    def _send(self, method: str, path: str, *, what: str, publish: bool = False, **kw: Any) -> Any:
        try:
            return self.http.send_json(method, path, **kw)
        except HttpError as exc:
            raise self._explain(exc, what, publish=publish) from None

    def _get(self, path: str, *, what: str, **kw: Any) -> Any:
        return self._send("GET", path, what=what, **kw)

    def _explain(self, exc: HttpError, what: str, *, publish: bool = False) -> Exception:
        """Turn an HTTP failure into one line: what failed, for which source, what to check."""
        kind = PublishError if publish else SourceError
        name = self.name
        detail = f": {exc.body}" if exc.body else ""
        if exc.status == 401:
            how = (
                "`email` and `token` (an API token of that Atlassian account; tokens expire)"
                if self.settings.email
                else "`token` (a Data Center personal access token, or set `email` for a Cloud API token)"
            )
            return kind(f"{name}: Jira rejected the credentials (HTTP 401 on {what}); check {how}")
        if exc.status == 403:
            need = "Add comments / Edit issues" if publish else "Browse projects"
            return kind(
                f"{name}: Jira denied access to {what} (HTTP 403{detail}); check that the account has the {need} permission"
            )
        if exc.status == 404 and publish:
            return kind(
                f"{name}: {what} not found (HTTP 404{detail}); check the issue key in the"
                " publish target and that the account can see that issue"
            )
        if exc.status == 404:
            return kind(
                f"{name}: {what} not found (HTTP 404 at {exc.url}{detail}); check `url` (a site,"
                " a Data Center base URL or api.atlassian.com/ex/jira/<cloudId>), `flavor`,"
                " and the project, board or issue named in the config"
            )
        if exc.status == 410:
            return kind(
                f"{name}: Jira has removed the endpoint {exc.method} {exc.url} (HTTP 410{detail});"
                ' set flavor = "cloud" if this is Jira Cloud, or upgrade pmsync'
            )
        if exc.status == 400:
            return kind(
                f"{name}: Jira rejected {what} (HTTP 400{detail}); check `jql` and the field overrides"
            )
        return kind(str(exc))

    # -- preparation ----------------------------------------------------------------------

    def _prepare(self, full: bool) -> None:
        self._full = full
        self._changed = 0
        self._moved = 0
        self._categories.clear()
        _ = self.flavor
        self._fields = self._field_ids(refresh=full)
        self._object_lists = ("fixVersions", *self._fields["sprint"], *self._fields["flagged"])

    def _field_ids(self, refresh: bool) -> dict[str, list[str]]:
        overrides = {c: getattr(self.settings.fields, c) for c in CONCEPTS}
        missing = [c for c in CONCEPTS if overrides[c] is None]
        cached = self.state.get("fields")
        if missing and (refresh or not isinstance(cached, dict)):
            cached = self._discover_fields()
            self.state["fields"] = cached
        out: dict[str, list[str]] = {}
        for c in CONCEPTS:
            given = overrides[c]
            out[c] = list(given) if given is not None else list((cached or {}).get(c) or [])
        return out

    def _discover_fields(self) -> dict[str, list[str]]:
        fields = self._get(f"{self.rest}/field", what="the field list")
        found: dict[str, list[str]] = {c: [] for c in CONCEPTS}
        later: dict[str, list[str]] = {c: [] for c in CONCEPTS}
        for f in fields if isinstance(fields, list) else ():
            schema = f.get("schema") or {}
            custom = schema.get("custom") or ""
            fid = f.get("id")
            name = str(f.get("name") or "").casefold()
            if not fid or not custom:
                continue
            if custom == GH + "jsw-story-points":
                found["story_points"].append(fid)
            elif custom == CF + "float" and name in ("story points", "story point estimate"):
                later["story_points"].append(fid)
            elif custom == GH + "gh-sprint":
                found["sprint"].append(fid)
            elif custom == CF + "datepicker" and name in ("start date", "start"):
                found["start_date"].append(fid)
            elif custom == "com.atlassian.jpo:jpo-custom-field-baseline-start":
                later["start_date"].append(fid)
            elif custom == CF + "multicheckboxes" and name in ("flagged", "impediment"):
                found["flagged"].append(fid)
            elif custom == GH + "gh-epic-link":
                found["epic_link"].append(fid)
        return {c: found[c] + later[c] for c in CONCEPTS}

    def _search_fields(self) -> list[str]:
        assert self._fields is not None
        extra = [fid for c in CONCEPTS for fid in self._fields[c]]
        return list(dict.fromkeys(SYSTEM_FIELDS + extra))

    def _bound(self, since: datetime) -> str:
        """The JQL literal for `updated >= …` (§6): epoch ms, or the user's wall time."""
        mode = self.state.get("bound") or self.settings.since_format
        if mode == "epoch":
            return str(epoch_ms(since))
        return local_bound(since, self._user_zone())

    def _user_zone(self) -> ZoneInfo:
        if self._zone is None:
            me = self._get(f"{self.rest}/myself", what="the current user")
            name = me.get("timeZone") or self.state.get("server_timezone") or "UTC"
            try:
                self._zone = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                raise SourceError(
                    f"{self.name}: Jira reports the user's timezone as {name!r}, which is unknown"
                    ' here; set since_format = "epoch"'
                ) from None
        return self._zone

    # -- items ----------------------------------------------------------------------------

    def fetch_items(self, since: datetime | None) -> Iterator[WorkItem]:
        self._prepare(full=since is None)
        base = f"({split_order(self.settings.jql)})"
        recent: dict[str, str] = dict(self.state.get("recent") or {})
        seen: dict[str, str] = {}
        yielded_newest: datetime | None = None
        kept: dict[str, str] = {}
        pending: list[dict[str, Any]] = []

        def flush() -> Iterator[WorkItem]:
            nonlocal yielded_newest
            items = self._finish(pending, recent)
            pending.clear()
            for item in items:
                if item.updated_at and (yielded_newest is None or item.updated_at > yielded_newest):
                    yielded_newest = item.updated_at
                kept[item.id] = item.raw.get("fields", {}).get("updated") or ""
                yield item

        for issue in self._issues(base, since):
            iid = str(issue.get("id") or "")
            updated = str((issue.get("fields") or {}).get("updated") or "")
            if not iid:
                continue
            previous = seen.get(iid)
            if previous is not None:
                if previous == updated:
                    continue  # the same version twice (DC re-reads): already yielded
                self._moved += 1
            seen[iid] = updated
            pending.append(issue)
            if len(pending) >= BULK_ISSUES:
                yield from flush()
        yield from flush()
        if self.flavor == CLOUD and self._moved:
            # Some issue moved during the read; make sure no other one slipped past.
            missing = self._verify(base, since, seen)
            for issue in missing:
                seen[str(issue["id"])] = str((issue.get("fields") or {}).get("updated") or "")
                pending.append(issue)
            yield from flush()
        self._remember(recent, kept, yielded_newest)
        if self.http.limit_reasons:
            reasons = ", ".join(f"{r} ×{n}" for r, n in self.http.limit_reasons.items())
            self.notes.append(
                f"Jira rate limited the sync ({reasons}); waited {self.http.waited:.0f}s"
            )

    def _remember(
        self, recent: dict[str, str], kept: dict[str, str], newest: datetime | None
    ) -> None:
        """Keep (id → updated) of the newest items, so the overlap's re-reads cost nothing."""
        merged = {**recent, **kept}
        if newest is None:
            newest = max((t for t in (parse_time(v) for v in merged.values()) if t), default=None)
        if newest is not None:
            floor = newest - RECENT_WINDOW
            merged = {k: v for k, v in merged.items() if (parse_time(v) or newest) >= floor}
        if len(merged) > RECENT_MAX:
            merged = dict(sorted(merged.items(), key=lambda kv: kv[1])[-RECENT_MAX:])
        self.state["recent"] = merged
        self.state["projects"] = sorted(set(self.state.get("projects") or ()) | self._project_keys)

    def _issues(self, base: str, since: datetime | None) -> Iterator[dict[str, Any]]:
        fields = self._search_fields()
        if self.flavor == CLOUD:
            if since is None:
                yield from self._cloud_search(f"{base} ORDER BY updated ASC, key ASC", fields)
                return
            yield from self._cloud_incremental(base, since, fields)
        else:
            jql = base if since is None else f"{base} AND updated >= {self._bound(since)}"
            newest: datetime | None = None
            for issue in self._dc_search(jql, fields, expand="changelog", order="updated"):
                when = parse_time((issue.get("fields") or {}).get("updated"))
                if when is not None and (newest is None or when > newest):
                    newest = when
                yield issue
            if newest is not None:
                # Issues changed during the pass jumped to the front, behind the cursor: read
                # them now, so that a full pass (a census) holds every live issue.
                catch_up = f"{base} AND updated >= {self._bound(newest - timedelta(minutes=1))}"
                yield from self._dc_search(catch_up, fields, expand="changelog", order="updated")

    def _cloud_incremental(
        self, base: str, since: datetime, fields: list[str]
    ) -> Iterator[dict[str, Any]]:
        bound = self._bound(since)
        jql = f"{base} AND updated >= {bound} ORDER BY updated ASC, key ASC"
        try:
            first = True
            for issue in self._cloud_search(jql, fields):
                first = False
                yield issue
        except SourceError as exc:
            # §6: the epoch literal is used widely but not documented; if this Jira refuses
            # it, fall back to the user's own timezone (and remember that).
            if not (first and "HTTP 400" in str(exc) and self._bound_mode() == "epoch"):
                raise
            jql = f"{base} AND updated >= {local_bound(since, self._user_zone())}"
            pages = self._cloud_search(f"{jql} ORDER BY updated ASC, key ASC", fields)
            head = next(pages, None)  # a 400 here too: the JQL itself is wrong; raise that
            self.state["bound"] = "user-timezone"
            self.notes.append(
                "Jira refused an epoch-millisecond date in JQL; using the user's timezone instead"
            )
            if head is not None:
                yield head
                yield from pages

    def _cloud_search(
        self, jql: str, fields: list[str], size: int = PAGE
    ) -> Iterator[dict[str, Any]]:
        """Page through `search/jql` with nextPageToken (§2.1: no startAt, no total).

        Pages are strictly sequential, but the next one is requested (on a helper thread) as
        soon as its token is known, while the caller works through the current one.
        """

        def fetch(token: str | None) -> Any:
            body: dict[str, Any] = {"jql": jql, "maxResults": size, "fields": fields}
            if token:
                body["nextPageToken"] = token
            return self._send(
                "POST", f"{self.rest}/search/jql", what="the issue search", json=body,
                idempotent=True,
            )  # fmt: skip

        tokens: set[str] = set()
        empty = 0
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.name}-pages")
        pending: Future[Any] = pool.submit(fetch, None)
        try:
            while True:
                data = pending.result()
                issues = data.get("issues") if isinstance(data, dict) else None
                if not isinstance(issues, list):
                    raise SourceError(
                        f"{self.name}: the issue search answered without an issue list;"
                        " is `url` a Jira site?"
                    )
                token = data.get("nextPageToken") or None
                more = bool(token) and data.get("isLast") is not True
                if more:
                    if token in tokens:
                        raise SourceError(
                            f"{self.name}: Jira repeated a page token while searching; try again later"
                        )
                    tokens.add(token)
                    empty = empty + 1 if not issues else 0
                    if empty > 3:
                        raise SourceError(
                            f"{self.name}: Jira kept sending empty search pages with a next-page"
                            " token; try again later"
                        )
                    pending = pool.submit(fetch, token)
                yield from issues
                if not more:
                    return
        finally:
            pending.cancel()
            pool.shutdown(wait=True)

    def _dc_search(
        self, jql: str, fields: list[str], *, expand: str | None, order: str, size: int = PAGE
    ) -> Iterator[dict[str, Any]]:
        """Offset paging over `/rest/api/2/search` that never skips an issue (§2.4, §10.2).

        Newest first: an issue that changes mid-run jumps to the front, behind the cursor,
        so the rest only shift forward (re-reads). When `total` drops, something before the
        cursor may have gone: step back by as much. Every DC_WINDOW issues, re-anchor the
        query below the last `order` value seen, so no offset reaches 10,000.
        """
        anchor: str | None = None
        anchors: set[str] = set()
        while True:
            q = jql if anchor is None else f"{jql} AND {order} <= {anchor}"
            q += f" ORDER BY {order} DESC, key DESC"
            start = 0
            last_total: int | None = None
            rewinds = 0
            last_value: str | None = None
            while True:
                params: dict[str, Any] = {
                    "jql": q,
                    "startAt": start,
                    "maxResults": size,
                    "fields": ",".join(fields),
                }
                if expand:
                    params["expand"] = expand
                data = self._get(f"{self.rest}/search", what="the issue search", params=params)
                issues = data.get("issues") if isinstance(data, dict) else None
                if not isinstance(issues, list):
                    raise SourceError(
                        f"{self.name}: the issue search answered without an issue list; is `url` a Jira server?"
                    )
                total = int(data.get("total") or 0)
                if last_total is not None and total < last_total:
                    rewinds += 1
                    if rewinds > 1000:
                        raise SourceError(
                            f"{self.name}: issues kept disappearing during the sync; try again later"
                        )
                    start = max(0, start - (last_total - total))
                    last_total = total
                    continue
                last_total = total
                yield from issues
                if issues:
                    last_value = (issues[-1].get("fields") or {}).get(order)
                start += len(issues)
                if not issues or start >= total:
                    return
                if start + size > DC_WINDOW and last_value:
                    break
            when = parse_time(last_value)
            if when is None:
                raise SourceError(
                    f"{self.name}: cannot page past {DC_WINDOW} issues without `{order}` values"
                )
            # Whole minutes, one ahead: JQL may read the bound at minute precision (§6).
            ceil = when.replace(second=0, microsecond=0) + timedelta(minutes=2)
            anchor = (
                str(epoch_ms(ceil))
                if self._bound_mode() == "epoch"
                else local_bound(ceil, self._user_zone())
            )
            if anchor in anchors:
                raise SourceError(
                    f"{self.name}: more than {DC_WINDOW} issues share the same minute of `{order}`;"
                    " narrow the JQL"
                )
            anchors.add(anchor)

    def _bound_mode(self) -> str:
        return str(self.state.get("bound") or self.settings.since_format)

    def _verify(
        self, base: str, since: datetime | None, seen: dict[str, str]
    ) -> list[dict[str, Any]]:
        """List the ids the query matches and fetch those the paged read missed (§10.2)."""
        jql = base if since is None else f"{base} AND updated >= {self._bound(since)}"
        ids = [
            str(i["id"])
            for i in self._cloud_search(
                f"{jql} ORDER BY created ASC, key ASC", ["id"], ID_PAGE_CLOUD
            )
            if i.get("id")
        ]
        missing = [i for i in ids if i not in seen]
        found: list[dict[str, Any]] = []
        for chunk in _chunks(missing, PAGE):
            found += self._cloud_search(
                f"id in ({', '.join(chunk)}) ORDER BY updated ASC, key ASC", self._search_fields()
            )
        self.notes.append(
            f"{self._moved} issue(s) changed while the sync was reading; checked the id list"
            f" and fetched {len(found)} issue(s) the pages had missed"
        )
        return sorted(
            found,
            key=lambda i: (str((i.get("fields") or {}).get("updated") or ""), str(i.get("key"))),
        )

    def _finish(self, issues: list[dict[str, Any]], recent: dict[str, str]) -> list[WorkItem]:
        """Attach the status history of the issues that changed; convert to WorkItems."""
        if not issues:
            return []
        self._learn_statuses(issues)
        changed = [
            i
            for i in issues
            if self._full
            or recent.get(str(i["id"])) != str((i.get("fields") or {}).get("updated") or "")
        ]
        self._changed += len(changed)
        histories: dict[str, list[dict[str, Any]]] = {}
        if self.flavor == CLOUD:
            if changed:
                histories = self._bulk_changelogs([str(i["id"]) for i in changed])
        else:
            histories = self._embedded_changelogs(changed)
        changed_ids = {str(i["id"]) for i in changed}
        out: list[WorkItem] = []
        for issue in issues:
            iid = str(issue["id"])
            hist = histories.get(iid, []) if iid in changed_ids else None
            try:
                out.append(self._item(issue, hist))
            except (ValueError, TypeError) as exc:
                key = issue.get("key") or iid
                self.notes.append(f"skipped {key}: {str(exc).splitlines()[0][:200]}")
                log.warning("%s: skipped %s: %s", self.name, key, exc)
        return out

    def _bulk_changelogs(self, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Status and resolution changes of `ids` via /changelog/bulkfetch (§4)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for chunk in _chunks(list(dict.fromkeys(ids)), BULK_ISSUES):
            token: str | None = None
            tokens: set[str] = set()
            while True:
                body: dict[str, Any] = {
                    "issueIdsOrKeys": list(chunk),
                    "fieldIds": ["status", "resolution"],
                    "maxResults": BULK_RESULTS,
                }
                if token:
                    body["nextPageToken"] = token
                data = self._send(
                    "POST",
                    f"{self.rest}/changelog/bulkfetch",
                    what="the changelog",
                    json=body,
                    idempotent=True,
                )
                for log_ in (data or {}).get("issueChangeLogs") or ():
                    out.setdefault(str(log_.get("issueId")), []).extend(
                        log_.get("changeHistories") or ()
                    )
                token = (data or {}).get("nextPageToken") or None
                if not token:
                    break
                if token in tokens:
                    raise SourceError(
                        f"{self.name}: Jira repeated a changelog page token; try again later"
                    )
                tokens.add(token)
        return out

    def _embedded_changelogs(self, issues: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """DC: the changelog expanded in the search, completed per issue when truncated (§4)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for issue in issues:
            log_ = issue.get("changelog") or {}
            histories = list(log_.get("histories") or ())
            if int(log_.get("total") or 0) > len(histories):
                response = self.http.request(
                    "GET",
                    f"{self.rest}/issue/{issue['id']}",
                    params={"expand": "changelog", "fields": "status"},
                    ok=(200, 404),
                )
                if response.status_code == 404:
                    continue  # deleted since the search: the census will tombstone it
                full = self.http.parse_json(response)
                histories = list(((full or {}).get("changelog") or {}).get("histories") or ())
            out[str(issue["id"])] = histories
        return out

    # -- conversion -----------------------------------------------------------------------

    def _learn_statuses(self, issues: Iterable[dict[str, Any]]) -> None:
        known: dict[str, list[str]] = self.state.setdefault("statuses", {})
        for issue in issues:
            status = (issue.get("fields") or {}).get("status") or {}
            sid = status.get("id")
            key = (status.get("statusCategory") or {}).get("key")
            if sid and key:
                known[str(sid)] = [str(status.get("name") or ""), str(key)]

    def _status_category(self, sid: str | None, name: str | None) -> StatusCategory:
        """Category of a status seen in a changelog (ids there, no categories)."""
        cached = self._categories.get((sid, name))
        if cached is None:
            cached = self._categories[(sid, name)] = self._look_up_category(sid, name)
        return cached

    def _look_up_category(self, sid: str | None, name: str | None) -> StatusCategory:
        mapped = self._mapped(name, sid)
        if mapped is not None:
            return mapped
        known: dict[str, list[str]] = self.state.setdefault("statuses", {})
        if sid and str(sid) not in known and not self._statuses_fetched:
            self._statuses_fetched = True
            for s in self._get(f"{self.rest}/status", what="the status list") or ():
                key = (s.get("statusCategory") or {}).get("key")
                if s.get("id") and key:
                    known[str(s["id"])] = [str(s.get("name") or ""), str(key)]
        entry = known.get(str(sid)) if sid else None
        if entry is None and name:
            entry = next((v for v in known.values() if v[0] == name), None)
        return CATEGORY_BY_KEY.get(entry[1], StatusCategory.TODO) if entry else StatusCategory.TODO

    def _mapped(self, name: str | None, sid: str | None) -> StatusCategory | None:
        status_map = self.settings.status_map
        if name and name in status_map:
            return status_map[name]
        if sid and str(sid) in status_map:
            return status_map[str(sid)]
        return None

    def _cancelled(self, resolution: str | None) -> bool:
        if not resolution:
            return False
        if self._cancelled_names is None:
            self._cancelled_names = {r.casefold() for r in self.settings.cancelled_resolutions}
        return resolution.casefold() in self._cancelled_names

    def _transitions(self, item_id: str, histories: list[dict[str, Any]]) -> list[Transition]:
        entries = []
        for h in histories:
            at = parse_time(h.get("created"))
            if at is not None:
                entries.append((at, str(h.get("id") or ""), h.get("items") or ()))
        if len(entries) > 1:
            entries.sort(key=lambda e: (e[0], e[1]))
        out: list[Transition] = []
        resolution: str | None = None
        previous: StatusCategory | None = None
        for at, _hid, items in entries:
            for it in items:
                if (it.get("fieldId") or it.get("field")) == "resolution":
                    resolution = it.get("toString") or None
            for it in items:
                if (it.get("fieldId") or it.get("field")) != "status":
                    continue
                to_name = str(it.get("toString") or it.get("to") or "")
                to_cat = self._status_category(it.get("to"), to_name)
                if to_cat is StatusCategory.DONE and self._cancelled(resolution):
                    to_cat = StatusCategory.CANCELLED
                from_cat = previous or self._status_category(it.get("from"), it.get("fromString"))
                from_name = it.get("fromString")
                out.append(
                    Transition(
                        source=self.name,
                        item_id=item_id,
                        at=at,
                        from_status=None if from_name is None else str(from_name),
                        to_status=to_name,
                        from_category=from_cat,
                        to_category=to_cat,
                    )
                )
                previous = to_cat
        return out

    def _item(self, issue: dict[str, Any], histories: list[dict[str, Any]] | None) -> WorkItem:
        """Convert one search result (with its history when fetched) to a WorkItem."""
        f: dict[str, Any] = issue.get("fields") or {}
        iid = str(issue["id"])
        key = str(issue.get("key") or iid)
        ids = self._fields or {}
        status = f.get("status") or {}
        status_name = str(status.get("name") or "")
        resolution = f.get("resolution")
        resolution = resolution.get("name") if isinstance(resolution, dict) else None
        category = self._mapped(status_name, status.get("id")) if self.settings.status_map else None
        if category is None:
            category = CATEGORY_BY_KEY.get(
                (status.get("statusCategory") or {}).get("key"), StatusCategory.TODO
            )
            if category is StatusCategory.DONE and self._cancelled(resolution):
                category = StatusCategory.CANCELLED
        transitions = self._transitions(iid, histories) if histories is not None else None
        updated = parse_time(f.get("updated"))
        completed = None
        if category is StatusCategory.DONE:
            completed = parse_time(f.get("resolutiondate")) or parse_time(
                f.get("statuscategorychangedate")
            )
            if completed is None and transitions:
                done = [t.at for t in transitions if t.to_category is StatusCategory.DONE]
                completed = done[-1] if done else None
            completed = completed or updated
        issuetype = f.get("issuetype") or {}
        level = issuetype.get("hierarchyLevel")
        kind = (
            "epic"
            if isinstance(level, int) and level >= 1
            else str(issuetype.get("name") or "task").casefold()
        )
        project, dash, _ = key.rpartition("-")
        if dash and project not in self._project_keys:
            self._project_keys.add(project)
        assignee = f.get("assignee")
        priority = f.get("priority")
        flagged = self._first(f, ids.get("flagged", ()))
        labels = f.get("labels") or []
        values = {
            "source": self.name,
            "id": iid,
            "key": key,
            "url": f"{self._browse_base()}/browse/{key}",
            "title": str(f.get("summary") or key),
            "kind": kind,
            "status": status_name or category.value,
            "category": category,
            "assignee": _text(assignee.get("displayName")) if isinstance(assignee, dict) else None,
            "priority": _text(priority.get("name")) if isinstance(priority, dict) else None,
            "labels": [str(x) for x in labels] if isinstance(labels, list) else [],
            "parent_id": self._parent(f, ids.get("epic_link", ())),
            "milestone_id": self._milestone_of(f, ids.get("sprint", ())),
            "start_date": parse_date(self._first(f, ids.get("start_date", ()))),
            "due_date": parse_date(f.get("duedate")),
            "created_at": parse_time(f.get("created")),
            "updated_at": updated,
            "completed_at": completed,
            "estimate": self._number(self._first(f, ids.get("story_points", ()))),
            "progress": None,
            "blocked": bool(flagged) or status_name in self.settings.blocked_statuses,
            "raw": {"id": iid, "key": key, "fields": slim_fields(f, self._object_lists)},
            "transitions": transitions,
        }
        # Validated construction (pydantic-core) is faster here than model_construct.
        return WorkItem(**values)

    @staticmethod
    def _first(f: dict[str, Any], ids: Iterable[str]) -> Any:
        for fid in ids:
            value = f.get(fid)
            if value not in (None, "", []):
                return value
        return None

    @staticmethod
    def _number(value: Any) -> float | None:
        if isinstance(value, bool) or value is None:
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    def _parent(self, f: dict[str, Any], epic_ids: Iterable[str]) -> str | None:
        parent = f.get("parent")
        if isinstance(parent, dict) and parent.get("id"):
            return str(parent["id"])
        epic_key = self._first(f, epic_ids)
        if not isinstance(epic_key, str) or not epic_key:
            return None
        epics: dict[str, str] = self.state.setdefault("epics", {})
        if epic_key not in epics and not self._epics_fetched:
            self._epics_fetched = True
            self._load_epics(epics)
        return epics.get(epic_key)

    def _load_epics(self, epics: dict[str, str]) -> None:
        """DC Epic Link values are keys: map the query's epics' keys to ids (once per run)."""
        jql = f"({split_order(self.settings.jql)}) AND issuetype = Epic"
        try:
            for issue in self._dc_search(
                jql, ["id", "key", "created"], expand=None, order="created", size=ID_PAGE_DC
            ):
                if issue.get("key") and issue.get("id"):
                    epics[str(issue["key"])] = str(issue["id"])
        except SourceError as exc:
            self.notes.append(f"could not list epics for Epic Link values: {exc}")

    def _milestone_of(self, f: dict[str, Any], sprint_ids: Iterable[str]) -> str | None:
        versions = [v for v in f.get("fixVersions") or () if isinstance(v, dict) and v.get("id")]
        if versions:
            first = min(
                versions,
                key=lambda v: (v.get("releaseDate") or "9999-99-99", str(v.get("name") or "")),
            )
            return f"version:{first['id']}"
        if self.settings.board is None:
            return None
        sprints = [
            s
            for s in (parse_sprint(v) for v in self._first(f, sprint_ids) or ())
            if s and s.get("id") is not None
        ]
        if not sprints:
            return None
        rank = {"active": 0, "future": 1, "closed": 2}
        # The active sprint, else the next future one, else the last closed one.
        best = min(
            sprints,
            key=lambda s: (rank.get(str(s.get("state")).lower(), 3), -_number_or_zero(s["id"])),
        )
        return f"sprint:{best['id']}"

    # -- milestones -----------------------------------------------------------------------

    def fetch_milestones(self) -> list[Milestone]:
        cached = self.state.get("milestones")
        at = parse_time(self.state.get("milestones_at"))
        max_age = timedelta(hours=self.settings.milestones_max_age_hours)
        fresh = at is not None and datetime.now(UTC) - at < max_age
        if isinstance(cached, list) and fresh and not self._full and not self._changed:
            return [Milestone.model_validate(m) for m in cached]
        out: list[Milestone] = []
        for project in self._projects():
            out += self._versions(project)
        if self.settings.board is not None:
            out += self._sprints(self.settings.board)
        self.state["milestones"] = [m.model_dump(mode="json") for m in out]
        self.state["milestones_at"] = datetime.now(UTC).isoformat()
        return out

    def _projects(self) -> list[str]:
        if self.settings.projects:
            return [p.upper() for p in self.settings.projects]
        found: set[str] = set()
        jql = split_order(self.settings.jql)
        for m in re.finditer(
            r"\bproject\s*(=|in)\s*(\([^)]*\)|\"[^\"]+\"|'[^']+'|[\w-]+)", jql, re.IGNORECASE
        ):
            for part in m.group(2).strip("()").split(","):
                part = part.strip().strip("\"'")
                if part and not part.isdigit():
                    found.add(part.upper())
        return sorted(found | set(self.state.get("projects") or ()) | self._project_keys)

    def _versions(self, project: str) -> list[Milestone]:
        out: list[Milestone] = []
        start = 0
        browse = self._browse_base()
        while True:
            page = self._get(
                f"{self.rest}/project/{project}/version",
                what=f"the versions of project {project}",
                params={"startAt": start, "maxResults": VERSION_PAGE, "orderBy": "sequence"},
            )
            values = page.get("values") if isinstance(page, dict) else None
            if not isinstance(values, list):
                raise SourceError(
                    f"{self.name}: the versions of {project} came back without values"
                )
            for v in values:
                if not v.get("id"):
                    continue
                out.append(
                    Milestone(
                        source=self.name,
                        id=f"version:{v['id']}",
                        name=str(v.get("name") or v["id"]),
                        start_date=parse_date(v.get("startDate")),
                        due_date=parse_date(v.get("releaseDate")),
                        state="closed" if v.get("released") or v.get("archived") else "open",
                        url=f"{browse}/projects/{project}/versions/{v['id']}",
                    )
                )
            start += len(values)
            if page.get("isLast", True) or not values:
                return out

    def _sprints(self, board: int) -> list[Milestone]:
        out: list[Milestone] = []
        start = 0
        while True:
            page = self._get(
                f"rest/agile/1.0/board/{board}/sprint",
                what=f"the sprints of board {board}",
                params={"startAt": start, "maxResults": SPRINT_PAGE},
            )
            values = page.get("values") if isinstance(page, dict) else None
            if not isinstance(values, list):
                raise SourceError(
                    f"{self.name}: the sprints of board {board} came back without values"
                )
            for s in values:
                if s.get("id") is None:
                    continue
                start_at = parse_time(s.get("startDate"))
                end_at = parse_time(s.get("endDate"))
                out.append(
                    Milestone(
                        source=self.name,
                        id=f"sprint:{s['id']}",
                        name=str(s.get("name") or s["id"]),
                        start_date=start_at.date() if start_at else None,
                        due_date=end_at.date() if end_at else None,
                        state="closed" if s.get("state") == "closed" else "open",
                    )
                )
            start += len(values)
            # §5: Cloud sends no total; page until isLast.
            if page.get("isLast", True) or not values:
                return out

    # -- census ---------------------------------------------------------------------------

    def fetch_ids(self) -> Iterator[str]:
        _ = self.flavor
        base = f"({split_order(self.settings.jql)})"
        if self.flavor == CLOUD:
            pages = self._cloud_search(
                f"{base} ORDER BY created ASC, key ASC", ["id"], ID_PAGE_CLOUD
            )
        else:
            pages = self._dc_search(
                base, ["id", "created"], expand=None, order="created", size=ID_PAGE_DC
            )
        count = 0
        for issue in pages:
            if issue.get("id"):
                count += 1
                yield str(issue["id"])
        if count == 0:
            # An empty census would tombstone everything: far more often a lost permission
            # or a changed JQL than a project whose every issue was deleted.
            raise SourceError(
                f"{self.name}: the id census found no issues for the JQL; check `jql` and that"
                " the account may still browse the project (nothing was tombstoned)"
            )

    # -- publishing -----------------------------------------------------------------------

    def _target(self, target: PublishTarget) -> JiraTarget:
        try:
            return JiraTarget.model_validate(target.options)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            )
            raise ConfigError(f"publish target {target.to!r}: {problems}") from None

    def render(self, target: PublishTarget, report: Report) -> str:
        self._target(target)
        if self.flavor == CLOUD:
            return json.dumps(fit_adf(report), ensure_ascii=False, separators=(",", ":"))
        return fit_wiki(report)

    def publish(
        self, target: PublishTarget, report: Report, previous: Publication | None
    ) -> RemoteRef:
        options = self._target(target)
        text = self.render(target, report)
        body: Any = json.loads(text) if self.flavor == CLOUD else text
        digest = _report_digest(report, text)
        slot = f"{report.project.id}/{report.period_id}"
        issue = options.issue
        try:
            mirror = self._read_mirror(issue, options.property_key)
            comment_id = previous.remote_id if previous else None
            if comment_id is None and mirror is not None:
                entry = (mirror.get("reports") or {}).get(slot) or {}
                comment_id = entry.get("commentId")
                if (
                    comment_id
                    and entry.get("hash") == digest
                    and self._comment_exists(issue, comment_id)
                ):
                    return RemoteRef(
                        id=str(comment_id), url=self._comment_url(issue, comment_id), changed=False
                    )
            if comment_id is None:
                # Not in the property (absent, unreadable, or its write was refused last time).
                comment_id = self._find_marked(issue, options.property_key, slot)
            if comment_id is not None and not self._update_comment(issue, str(comment_id), body):
                comment_id = None  # deleted meanwhile: post a new one
            if comment_id is None:
                comment_id = self._create_comment(issue, body, options.property_key, report, slot)
            self._write_mirror(issue, options.property_key, mirror, slot, str(comment_id), digest)
        except HttpError as exc:
            raise self._explain(exc, f"issue {issue}", publish=True) from None
        except PublishError:
            raise
        except SourceError as exc:
            raise PublishError(str(exc)) from None
        return RemoteRef(id=str(comment_id), url=self._comment_url(issue, str(comment_id)))

    def _comment_url(self, issue: str, comment_id: str) -> str:
        return f"{self._browse_base()}/browse/{issue}?focusedCommentId={comment_id}"

    def _read_mirror(self, issue: str, prop: str) -> dict[str, Any] | None:
        """The issue property mirroring our comment ids: {} when absent, None when unreadable."""
        response = self.http.request(
            "GET", f"{self.rest}/issue/{issue}/properties/{prop}", ok=(200, 401, 403, 404)
        )
        if response.status_code == 404:
            return {}  # no property yet (a missing issue shows up when commenting)
        if response.status_code != 200:
            return None
        value = (self.http.parse_json(response) or {}).get("value")
        return value if isinstance(value, dict) else {}

    def _comment_exists(self, issue: str, comment_id: str) -> bool:
        response = self.http.request(
            "GET", f"{self.rest}/issue/{issue}/comment/{comment_id}", ok=(200, 404)
        )
        return response.status_code == 200

    def _find_marked(self, issue: str, prop: str, slot: str) -> str | None:
        """Cloud, when the issue property cannot be read: find our comment by its property."""
        if self.flavor != CLOUD:
            return None
        page = self._send(
            "GET",
            f"{self.rest}/issue/{issue}/comment",
            what=f"issue {issue}",
            publish=True,
            params={"orderBy": "-created", "maxResults": 100},
        )
        ids = [
            str(c["id"]) for c in (page or {}).get("comments") or () if str(c.get("id")).isdigit()
        ]
        if not ids:
            return None
        found = self._send(
            "POST",
            f"{self.rest}/comment/list",
            what=f"issue {issue}",
            publish=True,
            params={"expand": "properties"},
            json={"ids": [int(i) for i in ids]},
            idempotent=True,
        )
        for c in (found or {}).get("values") or ():
            for p in c.get("properties") or ():
                if p.get("key") == prop and (p.get("value") or {}).get("slot") == slot:
                    return str(c["id"])
        return None

    def _update_comment(self, issue: str, comment_id: str, body: Any) -> bool:
        response = self.http.request(
            "PUT",
            f"{self.rest}/issue/{issue}/comment/{comment_id}",
            json={"body": body},
            ok=(200, 404),
        )
        return response.status_code == 200

    def _create_comment(self, issue: str, body: Any, prop: str, report: Report, slot: str) -> str:
        payload: dict[str, Any] = {"body": body}
        if self.flavor == CLOUD:
            payload["properties"] = [
                {
                    "key": prop,
                    "value": {
                        "slot": slot,
                        "project": report.project.id,
                        "period": report.period_id,
                    },
                }
            ]
        data = self.http.send_json("POST", f"{self.rest}/issue/{issue}/comment", json=payload)
        if not isinstance(data, dict) or not data.get("id"):
            raise PublishError(f"{self.name}: Jira did not return the new comment's id on {issue}")
        return str(data["id"])

    def _write_mirror(
        self,
        issue: str,
        prop: str,
        mirror: dict[str, Any] | None,
        slot: str,
        comment_id: str,
        digest: str,
    ) -> None:
        reports = dict((mirror or {}).get("reports") or {})
        reports[slot] = {
            "commentId": comment_id,
            "hash": digest,
            "publishedAt": datetime.now(UTC).isoformat(),
        }
        if len(reports) > MIRROR_MAX:
            reports = dict(
                sorted(reports.items(), key=lambda kv: kv[1].get("publishedAt", ""))[-MIRROR_MAX:]
            )
        response = self.http.request(
            "PUT",
            f"{self.rest}/issue/{issue}/properties/{prop}",
            json={"version": 1, "reports": reports},
            ok=(200, 201, 400, 403),
        )
        if response.status_code in (400, 403):
            log.warning(
                "%s: cannot write the issue property %s of %s (HTTP %s); the comment is found"
                " by its own property instead",
                self.name, prop, issue, response.status_code,
            )  # fmt: skip
            self.notes.append(
                f"could not record comment {comment_id} in the property {prop} of {issue}"
                f" (HTTP {response.status_code}); a lost local store could then post it again"
            )


# -- fitting a report into one comment (§8, §10.11) ----------------------------------------


def _report_digest(report: Report, text: str) -> str:
    """What the mirror remembers of a published report: its content without run times."""
    data = report.model_dump(mode="json")
    data.pop("generated_at", None)
    for source in data.get("sources") or ():
        source.pop("last_synced_at", None)
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str) + str(len(text))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def fit_adf(report: Report, limit: int = COMMENT_LIMIT) -> dict[str, Any]:
    """The report as ADF whose JSON stays under `limit` characters.

    Whether Jira counts the text or the JSON of an ADF body is not documented (§8 ⚠), so
    the JSON is kept under the limit: fewer rows per list first, then whole trailing blocks
    are dropped for a closing line that points to the full report.
    """
    from sync.render import adf

    def size(node: Any) -> int:
        return len(json.dumps(node, ensure_ascii=False, separators=(",", ":")))

    doc: dict[str, Any] = adf.to_adf(report)
    for budget in (12_000, 6_000, 4_000, 2_500, 1_500):
        if size(doc) <= limit:
            return doc
        doc = adf.to_adf(report, budget=budget)
    if size(doc) <= limit:
        return doc
    link = adf.text(report.more_url, href=report.more_url) if report.more_url else None
    tail = adf.paragraph(adf.text(_truncated_note(report)), " ", link)
    kept: list[dict[str, Any]] = []
    for node in doc["content"]:
        if size({**doc, "content": [*kept, node, tail]}) > limit:
            break
        kept.append(node)
    return adf.doc([*kept, tail])


def _truncated_note(report: Report) -> str:
    if report.language == "zh-CN":
        return "报告过长，此处已截断。完整报告："
    return "The report is too long for one Jira comment and was cut here. Full report:"


_WIKI_SPECIAL = re.compile(r"([\\{}\[\]|*_\-+^~?#!])")
_WIKI_EMOTICON = re.compile(r"\((?=[^()\s]{1,3}\))")


def wiki(text: str | None, limit: int | None = None) -> str:
    """Source text as inert Jira wiki markup: every markup character escaped, one line.

    Escaping `[` also defuses `[~user]` mentions and `[text|url]` links; `{` macros, `!`
    images, `|` table cells and `(y)`-style emoticons are neutralised the same way.
    """
    from sync.render.neutralise import plain

    escaped = _WIKI_SPECIAL.sub(r"\\\1", plain(text, limit))
    return _WIKI_EMOTICON.sub(r"\\(", escaped) or " "


def wiki_link(label: str, url: str | None, limit: int | None = 120) -> str:
    from sync.render.neutralise import safe_url

    href = safe_url(url)
    text = wiki(label, limit)
    if href is None or not text.strip():
        return text
    href = href.replace("[", "%5B").replace("]", "%5D").replace("|", "%7C")
    return f"[{text}|{href}]"


def to_wiki(report: Report, limit: int = 20, clip: int = 200) -> str:
    """The report as Jira wiki markup (Data Center comments), laid out like the other formats."""
    from sync import i18n
    from sync.render import common

    lang = report.language

    def t(key: str, **kw: Any) -> str:
        return wiki(i18n.t(lang, key, **kw))

    def row(cells: Iterable[str]) -> str:
        return "|" + "|".join(c if c.strip() else " " for c in cells) + "|"

    def head(cells: Iterable[str]) -> str:
        return "||" + "||".join(cells) + "||"

    def more(hidden: int) -> list[str]:
        if hidden <= 0:
            return []
        line = "_" + wiki(common.more_text(report, hidden)) + "_"
        if report.more_url:
            line += " (" + wiki_link(i18n.t(lang, "more_link"), report.more_url) + ")"
        return [line]

    def cells(item: Any, columns: Sequence[Any]) -> list[str]:
        return [
            wiki_link(c.value(item, lang), item.url) if c.link else wiki(c.value(item, lang), clip)
            for c in columns
        ]

    def change_table(rows: list[tuple[str, Any]]) -> list[str]:
        if not rows:
            return []
        shown = rows[:limit]
        out = [head(t(k) for k in ("col_change", "col_key", "col_title", "col_status"))]
        out += [
            row([t(word), *cells(i, (common.KEY, common.TITLE)), wiki(i.status, 80)])
            for word, i in shown
        ]
        return out + more(len(rows) - len(shown))

    out = [f"h2. {wiki(common.title(report))}", ""]
    out.append(
        "  ".join(
            f"*{wiki(label)}:* {wiki(value, 200)}" for label, value in common.header_fields(report)
        )
    )
    out += ["", f"h3. {t('health')}: {wiki(common.health_heading(report))}"]
    out += [f"* {wiki(r, 500)}" for r in report.health.reasons[: max(limit, 3)]]
    out += ["", f"h3. {t('progress')}"] + [wiki(line) for line in common.progress_lines(report)]
    out += ["", f"h3. {t('changes')}", wiki(common.changes_line(report))]
    out += change_table(common.change_rows(report))
    for section in common.sections(report):
        out += ["", f"h3. {t(section.heading)} ({len(section.items)})"]
        if not section.items:
            out.append(t("none"))
            continue
        shown = section.items[:limit]
        if shown:
            out.append(head(t(c.heading) for c in section.columns))
            out += [row(cells(i, section.columns)) for i in shown]
        out += more(len(section.items) - len(shown))
    out += ["", f"h3. {t('scope_change')}", wiki(common.scope_line(report))]
    out += change_table(common.scope_rows(report))
    out += ["", f"h3. {t('milestones')} ({len(report.milestones)})"]
    ms = report.milestones[:limit]
    if ms:
        out.append(
            head(
                t(k)
                for k in ("col_milestone", "col_due", "col_percent", "col_forecast", "col_state")
            )
        )
        out += [
            row(
                [
                    wiki_link(m.name, m.url, clip),
                    wiki(i18n.fmt_date(lang, m.due_date)),
                    wiki(i18n.fmt_percent(m.percent_done)),
                    wiki(i18n.fmt_date(lang, m.forecast)),
                    t("state_" + m.state),
                ]
            )
            for m in ms
        ]
    elif not report.milestones:
        out.append(t("none"))
    out += more(len(report.milestones) - len(ms))
    out += ["", f"h3. {t('forecast')}"] + [wiki(line) for line in common.forecast_lines(report)]
    if report.closing is not None:
        out += ["", f"h3. {t('closing')}"]
        out.append(head([" ", t("closing_planned"), t("closing_actual")]))
        out += [row([wiki(a), wiki(b), wiki(c)]) for a, b, c in common.closing_table(report)]
        slip = common.slip_text(report)
        if slip:
            out.append(f"*{t('closing_slip')}:* {wiki(slip)}")
        out += [wiki(line) for line in common.closing_lines(report)]
        if report.closing.lessons_learned:
            out += ["", f"h4. {t('lessons')}"]
            out += [
                wiki(block, clip * 10)
                for block in report.closing.lessons_learned.split("\n\n")[:limit]
            ]
    out += ["", f"h3. {t('sources')}"]
    out.append(head(t(k) for k in ("col_source", "col_kind", "col_last_synced", "col_items")))
    out += [row(wiki(c) for c in r) for r in common.source_rows(report)]
    out += ["", "_" + t("footer") + "_"]
    return "\n".join(out)


def fit_wiki(report: Report, limit: int = COMMENT_LIMIT) -> str:
    """Wiki markup under `limit` characters: fewer rows first, then cut at a line with a note."""
    text = ""
    for rows, clip in ((20, 200), (10, 160), (5, 120), (3, 80), (1, 60), (0, 40)):
        text = to_wiki(report, rows, clip)
        if len(text) <= limit:
            return text
    note = wiki(_truncated_note(report))
    if report.more_url:
        note += " " + wiki_link(report.more_url, report.more_url, None)
    cut = text[: max(0, limit - len(note) - 2)]
    cut = cut[: cut.rfind("\n")] if "\n" in cut else cut
    return cut.rstrip() + "\n\n" + note
