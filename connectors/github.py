"""GitHub connector: Projects (v2) boards over GraphQL, repository issues over REST.

Board mode (`project = "owner/number"`): every run pages the whole board (`items(first: 100)`,
about 3 points per 100 items) because items have no "updated since" filter and a move between
columns bumps only the item's `updatedAt`, not the issue's (github-api.md §1.8, §7.2). An item
is yielded when `max(item.updatedAt, content.updatedAt)` is at or after `since`, and
`WorkItem.updated_at` is that maximum, so the engine's watermark follows board moves as well as
closes. Since each run sees every live id, the census is free (`free_census`).

Repository mode (`repo = "owner/name"`): REST `/issues?state=all&sort=updated&direction=desc
&since=…` with `link` paging (newest first, so an issue updated mid-run shifts the pages
forward and is caught by the next run instead of pushing an unseen one out of reach), and
`If-None-Match` so an unchanged poll answers 304 and costs no quota.

Publishing: a project status update (`createProjectV2StatusUpdate`, then
`updateProjectV2StatusUpdate` for the same period), or an issue comment for `issue = N`
targets. Pushed text has mentions and references neutralised and stays under 65,536 chars.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.base import Connector, Publication, PublishTarget, SourceSettings
from connectors.http import HttpClient, HttpError, _parse_wait
from sync.errors import ConfigError, PublishError, SourceError
from sync.model import Milestone, RemoteRef, StatusCategory, WorkItem

if TYPE_CHECKING:
    from sync.report import Report

log = logging.getLogger("pmsync.github")

DEFAULT_API_URL = "https://api.github.com"
API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
# github-api.md §4.1: comments (and, we assume, status updates) refuse bodies over this size.
BODY_LIMIT = 65_536
MIN_PAGE = 10
RATE_LIMIT_TYPES = {"RATE_LIMITED", "RATE_LIMIT"}
TIMEOUT_MESSAGE = "something went wrong while executing your query"
STATUS_KEYS = ("body", "status", "startDate", "targetDate")
HEALTH_STATUS = {
    "on_track": "ON_TRACK",
    "at_risk": "AT_RISK",
    "off_track": "OFF_TRACK",
    "complete": "COMPLETE",
}

# Status option name (case-insensitive) -> category; `status_map` in the config overrides it.
DEFAULT_STATUS_CATEGORIES: dict[str, StatusCategory] = {
    **dict.fromkeys(
        ("todo", "to do", "backlog", "new", "ready", "triage", "icebox"), StatusCategory.TODO
    ),
    **dict.fromkeys(
        ("in progress", "in review", "review", "blocked", "qa", "testing", "doing"),
        StatusCategory.IN_PROGRESS,
    ),
    **dict.fromkeys(
        ("done", "closed", "complete", "completed", "shipped", "released"), StatusCategory.DONE
    ),
    **dict.fromkeys(
        ("cancelled", "canceled", "won't do", "wont do", "won't fix", "wontfix", "not planned"),
        StatusCategory.CANCELLED,
    ),
}
DEFAULT_BLOCKED = ("blocked",)


# -- settings ---------------------------------------------------------------------------------

_PROJECT_RX = re.compile(
    r"^(?:https?://[^/]+/(?:orgs|users)/)?(?P<owner>[A-Za-z0-9][A-Za-z0-9._-]*)"
    r"/(?:projects/)?(?P<number>\d+)(?:/.*)?$"
)
_REPO_RX = re.compile(r"^(?P<owner>[A-Za-z0-9][A-Za-z0-9._-]*)/(?P<name>[A-Za-z0-9._-]+)$")


class GitHubSettings(SourceSettings):
    """`[sources.X]` with `kind = "github"`: a Projects (v2) board and/or a repository."""

    kind: Literal["github"] = "github"
    # "owner/number" of an organisation or user board (a board URL is accepted too).
    project: str | None = None
    # "owner/name": plain issues and milestones (and the default repo for comment targets).
    repo: str | None = None
    token: SecretStr
    # https://api.github.com, GitHub Enterprise Server https://host/api/v3, or a local server.
    api_url: str = DEFAULT_API_URL
    status_field: str = "Status"
    start_field: str = "Start date"
    target_field: str = "Target date"
    estimate_field: str = "Estimate"
    iteration_field: str = "Iteration"
    page_size: int = Field(default=100, ge=MIN_PAGE, le=100)

    @field_validator("project")
    @classmethod
    def _project_form(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _PROJECT_RX.match(value.strip())
        if not match:
            raise ValueError(f"project must be 'owner/number' (e.g. 'acme/3'), not {value!r}")
        return f"{match['owner']}/{int(match['number'])}"

    @field_validator("repo")
    @classmethod
    def _repo_form(cls, value: str | None) -> str | None:
        if value is not None and not _REPO_RX.match(value.strip()):
            raise ValueError(f"repo must be 'owner/name' (e.g. 'acme/web'), not {value!r}")
        return value.strip() if value else None

    @field_validator("api_url")
    @classmethod
    def _url_form(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError(f"api_url must start with https:// (got {value!r})")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _board_or_repo(self) -> GitHubSettings:
        if not self.project and not self.repo:
            raise ValueError("set project = 'owner/number' (a board) or repo = 'owner/name'")
        return self


class GitHubTarget(BaseModel):
    """Options of a publish target naming a GitHub source: none (a board status update) or
    `issue = N` (a comment on that issue of `repo`, which defaults to the source's repo)."""

    model_config = ConfigDict(extra="forbid")

    issue: int | None = Field(default=None, ge=1)
    repo: str | None = None
    # Options every target takes; pmsync applies them before the report reaches us.
    audience: Literal["client", "internal"] = "client"
    language: Literal["en", "zh-CN"] | None = None

    @field_validator("repo")
    @classmethod
    def _repo_form(cls, value: str | None) -> str | None:
        if value is not None and not _REPO_RX.match(value):
            raise ValueError(f"repo must be 'owner/name', not {value!r}")
        return value


def graphql_url(api_url: str) -> str:
    """GraphQL endpoint for a REST base: …/api/v3 -> …/api/graphql (GHES), else …/graphql."""
    base = api_url.rstrip("/")
    if base.endswith("/api/v3"):
        return base[: -len("v3")] + "graphql"
    return base + "/graphql"


# -- HTTP -------------------------------------------------------------------------------------


def _rate_limited_403(response: requests.Response) -> bool:
    """A 403 that is a rate limit (retry) rather than a permission error (fail at once)."""
    headers = response.headers
    if headers.get("retry-after") or headers.get("x-ratelimit-remaining") == "0":
        return True
    return "rate limit" in (response.text or "")[:2000].lower()


class GitHubHttp(HttpClient):
    """HttpClient with GitHub's rules (github-api.md §2.3-2.5, §7.5-7.6).

    Secondary limits (403/429) wait for `retry-after`, else for `x-ratelimit-reset` when the
    quota is spent, else 60 s. 502/504 use backoff and ignore `x-ratelimit-reset` (GitHub sends
    it on every answer, an hour away). GraphQL rate-limit errors arrive with HTTP 200: see
    `graphql`. Writes are spaced at least `write_gap` seconds apart.
    """

    def __init__(
        self,
        base_url: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        write_gap: float = 1.0,
        **kw: Any,
    ) -> None:
        super().__init__(base_url, **kw)
        self.clock = clock
        self.write_gap = write_gap
        self._last_write: float | None = None
        self.points = 0  # GraphQL points reported by `rateLimit { cost }`
        self.rate_remaining: int | None = None

    def should_retry(self, response: requests.Response) -> bool:
        status = response.status_code
        if status in (403, 429):
            return status == 429 or _rate_limited_403(response)
        return status in (502, 503, 504)

    def retry_delay(self, response: requests.Response) -> float | None:
        headers = response.headers
        after = headers.get("retry-after")
        if after:
            return _parse_wait(after, header="retry-after")
        if response.status_code in (200, 403, 429):
            reset = headers.get("x-ratelimit-reset")
            if reset and headers.get("x-ratelimit-remaining") == "0":
                wait = _parse_wait(reset, header="x-ratelimit-reset")
                return None if wait is None else wait + 1
            if response.status_code != 200:
                return 60.0  # §2.4: no hint on a secondary limit: wait at least a minute
        return None

    def space_write(self) -> None:
        """Sleep so that writes are at least `write_gap` seconds apart (§2.4)."""
        now = self.clock()
        if self._last_write is not None:
            gap = self.write_gap - (now - self._last_write)
            if gap > 0:
                self.sleep(gap)
                now += gap
        self._last_write = now

    def wait(self, seconds: float, what: str, spent: float) -> float:
        """Sleep `seconds` before a retry unless `spent + seconds` passes the cap; return the
        new total spent (raise SourceError instead of sleeping past the cap)."""
        if spent + seconds > self.max_wait:
            raise SourceError(
                f"{self.source}: {what}; waiting {seconds:.0f}s more would pass the"
                f" {self.max_wait:.0f}s cap: try again later"
            )
        self.retries += 1
        self.waited += seconds
        self.sleep(seconds)
        return spent + seconds

    def graphql(
        self,
        url: str,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        mutation: bool = False,
        gateway_ok: bool = False,
    ) -> tuple[int, dict[str, Any]]:
        """POST one GraphQL document; return (HTTP status, body).

        Rate-limit errors in an HTTP 200 answer are waited out and retried. With
        `gateway_ok`, a 502/504 is returned (status, {}) for the caller to retry with a
        smaller page instead of being retried here.
        """
        payload = {"query": query, "variables": variables or {}}
        spent = 0.0
        for _ in range(self.max_attempts):
            if mutation:
                self.space_write()
            ok = (200, 502, 504) if gateway_ok else range(200, 300)
            response = self.request("POST", url, json=payload, idempotent=not mutation, ok=ok)
            if response.status_code != 200:
                return response.status_code, {}
            body = self.parse_json(response)
            if not isinstance(body, dict):
                raise SourceError(f"{self.source}: unexpected GraphQL answer from {url}")
            rate = (body.get("data") or {}).get("rateLimit") if body.get("data") else None
            if isinstance(rate, dict):
                self.points += int(rate.get("cost") or 0)
                self.rate_remaining = rate.get("remaining")
            if not any(_is_rate_limit_error(e) for e in body.get("errors") or ()):
                return 200, body
            delay = self.retry_delay(response)
            if delay is None:
                reset = response.headers.get("x-ratelimit-reset")
                delay = (_parse_wait(reset, header="x-ratelimit-reset") or 0) + 1 if reset else 60
            spent = self.wait(delay, "GitHub GraphQL rate limit exceeded", spent)
        raise SourceError(
            f"{self.source}: still rate limited by GitHub after {self.max_attempts} attempts;"
            " try again later"
        )


def _is_rate_limit_error(error: Any) -> bool:
    if not isinstance(error, dict):
        return False
    if error.get("type") in RATE_LIMIT_TYPES or error.get("code") == "graphql_rate_limit":
        return True
    return "secondary rate limit" in str(error.get("message", "")).lower()


# -- GraphQL documents (each validated against the vendored schema in tests) ------------------

_ASSIGNEES = "assignees(first: 10) { totalCount nodes { login } }"
_MILESTONE = "milestone { id title dueOn state url }"

BOARD_ITEMS_QUERY = f"""
query BoardItems($login: String!, $number: Int!, $first: Int!, $after: String,
    $status: String!, $start: String!, $target: String!, $estimate: String!,
    $iteration: String!, $withMeta: Boolean!) {{
  rateLimit {{ cost remaining resetAt }}
  repositoryOwner(login: $login) {{
    __typename
    ... on ProjectV2Owner {{
      projectV2(number: $number) {{
        id title url
        iterationField: field(name: $iteration) @include(if: $withMeta) {{
          ... on ProjectV2IterationField {{
            configuration {{
              iterations {{ id title startDate duration }}
              completedIterations {{ id title startDate duration }}
            }}
          }}
        }}
        items(first: $first, after: $after) {{
          pageInfo {{ hasNextPage endCursor }}
          nodes {{
            id type isArchived createdAt updatedAt fullDatabaseId
            status: fieldValueByName(name: $status) {{
              ... on ProjectV2ItemFieldSingleSelectValue {{ name optionId }}
            }}
            start: fieldValueByName(name: $start) {{
              ... on ProjectV2ItemFieldDateValue {{ date }}
            }}
            target: fieldValueByName(name: $target) {{
              ... on ProjectV2ItemFieldDateValue {{ date }}
            }}
            estimate: fieldValueByName(name: $estimate) {{
              ... on ProjectV2ItemFieldNumberValue {{ number }}
            }}
            iteration: fieldValueByName(name: $iteration) {{
              ... on ProjectV2ItemFieldIterationValue {{ iterationId title startDate duration }}
            }}
            content {{
              __typename
              ... on DraftIssue {{ id title createdAt updatedAt {_ASSIGNEES} }}
              ... on Issue {{
                id number title url state stateReason closedAt createdAt updatedAt
                {_MILESTONE} repository {{ nameWithOwner }}
                parent {{ id }} subIssuesSummary {{ total completed percentCompleted }}
              }}
              ... on PullRequest {{
                id number title url prState: state merged mergedAt closedAt createdAt updatedAt
                {_MILESTONE} repository {{ nameWithOwner }}
              }}
              ... on Assignable {{ {_ASSIGNEES} }}
              ... on Labelable {{ labels(first: 20) {{ totalCount nodes {{ name }} }} }}
            }}
          }}
        }}
      }}
    }}
  }}
}}
"""

BOARD_IDS_QUERY = """
query BoardIds($login: String!, $number: Int!, $first: Int!, $after: String) {
  rateLimit { cost remaining resetAt }
  repositoryOwner(login: $login) {
    __typename
    ... on ProjectV2Owner {
      projectV2(number: $number) {
        id title url
        items(first: $first, after: $after) {
          pageInfo { hasNextPage endCursor }
          nodes { id type }
        }
      }
    }
  }
}
"""

MORE_LABELS_QUERY = """
query MoreLabels($id: ID!, $after: String) {
  rateLimit { cost remaining resetAt }
  node(id: $id) {
    ... on Labelable {
      labels(first: 100, after: $after) { pageInfo { hasNextPage endCursor } nodes { name } }
    }
  }
}
"""

MORE_ASSIGNEES_QUERY = """
query MoreAssignees($id: ID!, $after: String) {
  rateLimit { cost remaining resetAt }
  node(id: $id) {
    ... on Assignable {
      assignees(first: 100, after: $after) {
        pageInfo { hasNextPage endCursor } nodes { login }
      }
    }
    ... on DraftIssue {
      assignees(first: 100, after: $after) {
        pageInfo { hasNextPage endCursor } nodes { login }
      }
    }
  }
}
"""

REPO_IDS_QUERY = """
query RepoIds($owner: String!, $name: String!, $issues: Boolean!, $after: String) {
  rateLimit { cost remaining resetAt }
  repository(owner: $owner, name: $name) {
    issues(first: 100, after: $after) @include(if: $issues) {
      pageInfo { hasNextPage endCursor } nodes { id }
    }
    pullRequests(first: 100, after: $after) @skip(if: $issues) {
      pageInfo { hasNextPage endCursor } nodes { id }
    }
  }
}
"""

CHECK_QUERY = """
query Check($login: String!, $number: Int!) {
  rateLimit { cost remaining resetAt }
  viewer { login }
  repositoryOwner(login: $login) {
    __typename
    ... on ProjectV2Owner {
      projectV2(number: $number) {
        id title url
        fields(first: 100) {
          totalCount
          nodes { ... on ProjectV2FieldCommon { name dataType } }
        }
      }
    }
  }
}
"""

STATUS_UPDATES_QUERY = """
query StatusUpdates($login: String!, $number: Int!) {
  rateLimit { cost remaining resetAt }
  repositoryOwner(login: $login) {
    ... on ProjectV2Owner {
      projectV2(number: $number) {
        id url
        statusUpdates(first: 50) { nodes { id body status startDate targetDate } }
      }
    }
  }
}
"""

CREATE_STATUS_MUTATION = """
mutation CreateStatusUpdate($input: CreateProjectV2StatusUpdateInput!) {
  createProjectV2StatusUpdate(input: $input) { statusUpdate { id } }
}
"""

UPDATE_STATUS_MUTATION = """
mutation UpdateStatusUpdate($input: UpdateProjectV2StatusUpdateInput!) {
  updateProjectV2StatusUpdate(input: $input) { statusUpdate { id } }
}
"""

ALL_DOCUMENTS = {
    "BoardItems": BOARD_ITEMS_QUERY,
    "BoardIds": BOARD_IDS_QUERY,
    "MoreLabels": MORE_LABELS_QUERY,
    "MoreAssignees": MORE_ASSIGNEES_QUERY,
    "RepoIds": REPO_IDS_QUERY,
    "Check": CHECK_QUERY,
    "StatusUpdates": STATUS_UPDATES_QUERY,
    "CreateStatusUpdate": CREATE_STATUS_MUTATION,
    "UpdateStatusUpdate": UPDATE_STATUS_MUTATION,
}


# -- neutralising pushed text (github-api.md §4.6) --------------------------------------------

ZWSP = "\u200b"
# Entity and look-alike forms GitHub decodes to "@" / "#" before finding mentions/references.
_AT_FORMS = re.compile(r"&#0*64(?![0-9]);?|&#[xX]0*40(?![0-9a-fA-F]);?|&commat;|[＠﹫]")
_HASH_FORMS = re.compile(r"&#0*35(?![0-9]);?|&#[xX]0*23(?![0-9a-fA-F]);?|&num;|[＃﹟]")
_MENTION = re.compile(r"@(?=[\w-])")
# Not after "&": `&#640;` is a character reference, not an issue reference.
_REFERENCE = re.compile(r"(?<!&)#(?=\d)")
_GH_REFERENCE = re.compile(r"\b(GH)-(?=\d)", re.IGNORECASE)


def neutralise(text: str) -> str:
    """Defuse every @mention and #N / owner/repo#N / GH-N reference in `text`.

    A zero-width space after "@" or "#" keeps the text readable while GitHub no longer
    links or notifies. Entity forms (`&#64;`, `&#x40;`, `&commat;`) and full-width signs are
    turned into the plain sign first, since GitHub decodes them before looking.
    """
    text = _AT_FORMS.sub("@", text)
    text = _HASH_FORMS.sub("#", text)
    text = _MENTION.sub("@" + ZWSP, text)
    text = _REFERENCE.sub("#" + ZWSP, text)
    return _GH_REFERENCE.sub(lambda m: m.group(1) + "-" + ZWSP, text)


def fit_body(body: str, marker: str, limit: int = BODY_LIMIT) -> str:
    """Append `marker`; cut `body` at a line end so the whole stays within `limit` chars."""
    tail = "\n\n" + marker
    if len(body) + len(tail) <= limit:
        return body + tail
    note = "\n\n_(report shortened to fit GitHub's size limit)_"
    budget = limit - len(tail) - len(note) - len("\n```")
    cut = body[:budget]
    newline = cut.rfind("\n")
    if newline > budget // 2:
        cut = cut[:newline]
    fences = sum(1 for line in cut.splitlines() if line.lstrip().startswith(("```", "~~~")))
    if fences % 2:
        cut += "\n```"
    return cut + note + tail


def _marker(project: str, period: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._:-]", "_", f"{project}:{period}")
    return f"<!-- pmsync:{safe} -->"


# -- parsing helpers --------------------------------------------------------------------------


def _dt(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


def _d(value: Any) -> date | None:
    if not value:
        return None
    return date.fromisoformat(str(value)[:10])


def _latest(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _content_category(content: dict[str, Any]) -> tuple[str, StatusCategory]:
    """(raw status, category) from an issue's, PR's or draft's own state (no board status)."""
    kind = content.get("__typename")
    if kind == "PullRequest":
        state = str(content.get("prState") or "OPEN")
        if state == "MERGED" or content.get("merged"):
            return "merged", StatusCategory.DONE
        if state == "CLOSED":
            return "closed", StatusCategory.CANCELLED
        return "open", StatusCategory.TODO
    if kind == "Issue":
        if content.get("state") == "CLOSED":
            if content.get("stateReason") in ("NOT_PLANNED", "DUPLICATE"):
                return "closed (not planned)", StatusCategory.CANCELLED
            return "closed", StatusCategory.DONE
        return "open", StatusCategory.TODO
    return "draft", StatusCategory.TODO


def _one_line(errors: Iterable[Any]) -> str:
    messages = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors]
    return "; ".join(" ".join(m.split()) for m in messages[:2])[:300]


# -- the connector ----------------------------------------------------------------------------


class GitHubConnector(Connector):
    """GitHub Projects (v2) boards and repository issues; publishes status updates/comments."""

    kind = "github"
    Settings = GitHubSettings
    Target = GitHubTarget
    ordered = False

    def __init__(
        self,
        name: str,
        settings: SourceSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(settings, GitHubSettings):
            settings = GitHubSettings.model_validate(settings.model_dump())
        super().__init__(name, settings)
        self.settings: GitHubSettings = settings
        token = settings.token.get_secret_value()
        if not token:
            raise ConfigError(f"{name}: empty GitHub token; set it from the environment")
        self.http: GitHubHttp = GitHubHttp(
            settings.api_url,
            source=name,
            bearer=token,
            headers=API_HEADERS,
            sleep=sleep,
            clock=clock,
        )
        self.graphql_endpoint = graphql_url(settings.api_url)
        self.board: tuple[str, int] | None = None
        if settings.project:
            owner, number = settings.project.rsplit("/", 1)
            self.board = (owner, int(number))
        self.page_size = settings.page_size
        self.project_id: str | None = None
        self.project_url: str | None = None
        self.project_title: str | None = None
        # What the last complete board pass saw (this run only).
        self._pass_ids: list[str] | None = None
        self._milestones: dict[str, Milestone] = {}
        self._iterations: list[Milestone] = []
        self._blocked = {s.casefold() for s in (*DEFAULT_BLOCKED, *settings.blocked_statuses)}
        self._config_map = {k.casefold(): v for k, v in settings.status_map.items()}
        self._status_map = {**DEFAULT_STATUS_CATEGORIES, **self._config_map}

    # The census is free once a board pass has read every live id.
    @property  # type: ignore[override]
    def free_census(self) -> bool:
        return self.board is not None and self._pass_ids is not None

    # -- GraphQL plumbing ---------------------------------------------------------------------

    def _gql(self, query: str, variables: dict[str, Any], **kw: Any) -> dict[str, Any]:
        """Send one GraphQL document; return its body (`errors` are the caller's to judge)."""
        try:
            return self.http.graphql(self.graphql_endpoint, query, variables, **kw)[1]
        except HttpError as exc:
            raise self._http_error(exc) from None

    def _http_error(self, exc: HttpError, *, publish: bool = False) -> SourceError:
        cls = PublishError if publish else SourceError
        if exc.status == 401:
            return cls(
                f"{self.name}: GitHub refused the credentials (HTTP 401:"
                f" {exc.body or 'Bad credentials'}); check the environment variable holding the"
                " GitHub token"
            )
        if exc.status == 403 and "rate limit" in exc.body.lower():
            return cls(
                f"{self.name}: GitHub kept rate limiting (HTTP 403: {exc.body}) after"
                f" {self.http.retries} retries; try again later"
            )
        if exc.status == 403:
            return cls(
                f"{self.name}: GitHub denied access (HTTP 403: {exc.body});"
                " grant read:project (project to publish, repo for private repositories) to the"
                " token, and check the organisation's policy on tokens"
            )
        if publish:
            return PublishError(str(exc))
        return exc

    def _board_not_found(self, errors: list[Any]) -> SourceError:
        owner, number = self.board or ("?", 0)
        detail = _one_line(errors) if errors else f"no account {owner!r}"
        return SourceError(
            f"{self.name}: Projects board {owner}/{number} not found ({detail}); check the owner"
            f" login (organisation or user) and the board number, and grant read:project to the"
            " token"
        )

    def _project_node(self, body: dict[str, Any]) -> dict[str, Any]:
        """The `projectV2` object of a board query, or a one-line SourceError."""
        data = body.get("data") or {}
        errors = body.get("errors") or []
        owner = data.get("repositoryOwner")
        project = owner.get("projectV2") if isinstance(owner, dict) else None
        if project is None:
            if any(e.get("type") == "NOT_FOUND" for e in errors) or not errors:
                raise self._board_not_found(errors)
            raise self._query_error(errors)
        self.project_id = project.get("id") or self.project_id
        self.project_url = project.get("url") or self.project_url
        self.project_title = project.get("title") or self.project_title
        return project

    def _query_error(self, errors: list[Any]) -> SourceError:
        types = {e.get("type") for e in errors if isinstance(e, dict)}
        if types & {"INSUFFICIENT_SCOPES", "FORBIDDEN"}:
            return SourceError(
                f"{self.name}: GitHub denied the query ({_one_line(errors)}); grant read:project"
                " (and repo for private repositories) to the token"
            )
        if "MAX_NODE_LIMIT_EXCEEDED" in types:
            return SourceError(
                f"{self.name}: GitHub refused the query as too large ({_one_line(errors)});"
                " lower page_size"
            )
        return SourceError(f"{self.name}: GitHub GraphQL error: {_one_line(errors)}")

    def _board_pages(self, query: str, extra: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Yield the `projectV2` object of each page of the board, shrinking pages on 502/504.

        github-api.md §2.5, §7.3: a page that times out is retried once as is, then with
        half as many items, down to MIN_PAGE items; a page with errors fails the run
        (§7.11), except errors confined to single items' content (marked `_inaccessible`).
        """
        assert self.board is not None
        owner, number = self.board
        after: str | None = None
        failures = 0
        spent = 0.0
        first_page = True
        while True:
            variables = {
                "login": owner,
                "number": number,
                "first": self.page_size,
                "after": after,
                **extra,
            }
            if "withMeta" in extra:
                variables["withMeta"] = first_page
            try:
                status, body = self.http.graphql(
                    self.graphql_endpoint, query, variables, gateway_ok=True
                )
            except HttpError as exc:
                raise self._http_error(exc) from None
            errors = body.get("errors") or []
            timed_out = status != 200 or (
                not body.get("data") and any(TIMEOUT_MESSAGE in str(e).lower() for e in errors)
            )
            if timed_out:
                failures += 1
                if failures > 6:
                    raise SourceError(
                        f"{self.name}: GitHub kept timing out on board pages (HTTP {status}) even"
                        f" at {self.page_size} items per page; try again later"
                    )
                if failures >= 2 and self.page_size > MIN_PAGE:
                    self.page_size = max(MIN_PAGE, self.page_size // 2)
                    self.notes.append(
                        f"GitHub timed out on board pages; page size lowered to {self.page_size}"
                    )
                spent = self.http.wait(
                    min(2.0**failures, 30.0), "GitHub keeps timing out on board pages", spent
                )
                continue
            failures = 0
            project = self._project_node(body)
            if errors:
                self._mark_inaccessible(project, errors)
            items = project.get("items") or {}
            yield project
            first_page = False
            info = items.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return
            after = info.get("endCursor")
            if not after:
                raise SourceError(f"{self.name}: GitHub gave no cursor for the next board page")

    def _mark_inaccessible(self, project: dict[str, Any], errors: list[Any]) -> None:
        """Accept errors whose path lies inside one item (flag those items); else fail."""
        nodes = (project.get("items") or {}).get("nodes") or []
        flagged: set[int] = set()
        for error in errors:
            path = error.get("path") if isinstance(error, dict) else None
            index = None
            if isinstance(path, list) and "nodes" in path:
                pos = path.index("nodes")
                if pos + 1 < len(path) and isinstance(path[pos + 1], int) and pos + 2 < len(path):
                    index = path[pos + 1]
            if index is None or index >= len(nodes):
                raise self._query_error(errors)
            flagged.add(index)
        for index in flagged:
            if isinstance(nodes[index], dict):
                nodes[index]["_inaccessible"] = True

    # -- board mode -----------------------------------------------------------------------

    def _field_variables(self) -> dict[str, Any]:
        s = self.settings
        return {
            "status": s.status_field,
            "start": s.start_field,
            "target": s.target_field,
            "estimate": s.estimate_field,
            "iteration": s.iteration_field,
            "withMeta": True,
        }

    def fetch_items(self, since: datetime | None) -> Iterator[WorkItem]:
        if self.board is None:
            yield from self._repo_items(since)
            return
        yield from self._board_items(since)

    def _board_items(self, since: datetime | None) -> Iterator[WorkItem]:
        self._pass_ids = None
        ids: list[str] = []
        skipped = 0
        redacted_before = set(self.state.get("redacted", ()))
        redacted_now: list[str] = []
        content_item: dict[str, str] = {}  # issue node id -> board item id (for parents)
        deferred: list[tuple[dict[str, Any], str]] = []
        milestones: dict[str, Milestone] = {}
        total = changed = 0
        requests_before, points_before = self.http.requests, self.http.points
        for project in self._board_pages(BOARD_ITEMS_QUERY, self._field_variables()):
            if "iterationField" in project:
                self._iterations = self._iteration_milestones(project.get("iterationField"))
            for node in (project.get("items") or {}).get("nodes") or []:
                if not isinstance(node, dict):
                    continue
                total += 1
                content = node.get("content")
                if node.get("type") == "REDACTED" or not content or node.get("_inaccessible"):
                    skipped += 1
                    redacted_now.append(str(node.get("id")))
                    continue
                item_id = str(node["id"])
                ids.append(item_id)
                if content.get("__typename") == "Issue" and content.get("id"):
                    content_item[content["id"]] = item_id
                milestone = content.get("milestone")
                if isinstance(milestone, dict) and milestone.get("id"):
                    milestones[milestone["id"]] = self._milestone(milestone)
                updated = _latest(_dt(node.get("updatedAt")), _dt(content.get("updatedAt")))
                if not (
                    since is None
                    or updated is None
                    or updated >= since
                    or item_id in redacted_before
                ):
                    continue
                changed += 1
                self._complete_nested(content)
                parent = (content.get("parent") or {}).get("id")
                if parent and parent not in content_item:
                    deferred.append((node, parent))
                    continue
                yield self._board_item(node, content_item.get(parent) if parent else None)
        for node, parent in deferred:
            yield self._board_item(node, content_item.get(parent))
        self._pass_ids = ids
        self._milestones = milestones
        # Remember items we could not read, so they are fetched once they become visible.
        self.state["redacted"] = redacted_now[:10_000]
        owner, number = self.board or ("", 0)
        mode = "full" if since is None else f"changed since {since.isoformat(timespec='seconds')}"
        self.notes.append(
            f"board {owner}/{number}: swept {total} items in"
            f" {self.http.requests - requests_before} requests"
            f" ({self.http.points - points_before} GraphQL points"
            + (f", {self.http.rate_remaining} left" if self.http.rate_remaining is not None else "")
            + f"); {changed} yielded ({mode});"
            " boards have no server-side 'updated since', so every run reads the whole board"
        )
        if skipped:
            self.notes.append(
                f"skipped {skipped} board items that are hidden (redacted) from the token; grant it"
                " access to their repositories (repo scope) to include them"
            )

    def _complete_nested(self, content: dict[str, Any]) -> None:
        """Page labels/assignees that did not fit their first page (github-api.md §7.10)."""
        for conn, query in (("labels", MORE_LABELS_QUERY), ("assignees", MORE_ASSIGNEES_QUERY)):
            value = content.get(conn)
            if not isinstance(value, dict):
                continue
            nodes = value.get("nodes") or []
            if int(value.get("totalCount") or 0) <= len(nodes) or not content.get("id"):
                continue
            collected: list[dict[str, Any]] = []
            after: str | None = None
            while True:
                body = self._gql(query, {"id": content["id"], "after": after})
                if body.get("errors"):
                    raise self._query_error(body["errors"])
                page = ((body.get("data") or {}).get("node") or {}).get(conn) or {}
                collected.extend(n for n in page.get("nodes") or () if isinstance(n, dict))
                info = page.get("pageInfo") or {}
                if not info.get("hasNextPage") or not info.get("endCursor"):
                    break
                after = info["endCursor"]
            value["nodes"] = collected
            value["totalCount"] = max(len(collected), int(value.get("totalCount") or 0))

    def _board_item(self, node: dict[str, Any], parent_id: str | None) -> WorkItem:
        content: dict[str, Any] = node["content"]
        typename = content.get("__typename")
        status_value = node.get("status") or {}
        option = status_value.get("name") if isinstance(status_value, dict) else None
        raw_status, category = _content_category(content)
        if option:
            mapped = self._status_map.get(option.casefold())
            if mapped is not None:
                category = mapped
            elif category is StatusCategory.TODO:
                # An unknown column on an open item: work has started somewhere past "Todo";
                # closed or merged content in an unknown column keeps its own category.
                category = StatusCategory.IN_PROGRESS
            raw_status = option
        blocked = bool(option and option.casefold() in self._blocked)
        item_updated = _dt(node.get("updatedAt"))
        updated = _latest(item_updated, _dt(content.get("updatedAt")))
        completed: datetime | None = None
        if category is StatusCategory.DONE:
            completed = _dt(content.get("mergedAt")) or _dt(content.get("closedAt"))
            completed = completed or item_updated
        elif category is StatusCategory.CANCELLED:
            completed = _dt(content.get("closedAt")) or item_updated
        repo = (content.get("repository") or {}).get("nameWithOwner")
        if typename in ("Issue", "PullRequest") and repo:
            key = f"{repo}#{content.get('number')}"
            url = content.get("url")
        else:
            key = f"draft-{node.get('fullDatabaseId') or node['id']}"
            url = (
                f"{self.project_url}?pane=issue&itemId={node['fullDatabaseId']}"
                if self.project_url and node.get("fullDatabaseId")
                else self.project_url
            )
        kind = {"Issue": "issue", "PullRequest": "pull_request"}.get(typename or "", "draft")
        summary = content.get("subIssuesSummary") or {}
        progress = None
        if kind == "issue" and int(summary.get("total") or 0) > 0:
            kind = "epic"
            progress = min(1.0, max(0.0, float(summary.get("percentCompleted") or 0) / 100))
        assignees = (content.get("assignees") or {}).get("nodes") or []
        labels = [n["name"] for n in (content.get("labels") or {}).get("nodes") or () if n]
        milestone = (content.get("milestone") or {}).get("id")
        iteration = (node.get("iteration") or {}).get("iterationId")
        estimate = (node.get("estimate") or {}).get("number")
        return WorkItem(
            source=self.name,
            id=str(node["id"]),
            key=key,
            url=url,
            title=str(content.get("title") or ""),
            kind=kind,
            status=raw_status,
            category=category,
            assignee=assignees[0].get("login") if assignees else None,
            labels=labels,
            parent_id=parent_id,
            milestone_id=milestone or iteration,
            start_date=_d((node.get("start") or {}).get("date")),
            due_date=_d((node.get("target") or {}).get("date")),
            created_at=_dt(content.get("createdAt")) or _dt(node.get("createdAt")),
            updated_at=updated,
            completed_at=completed,
            estimate=float(estimate) if estimate is not None else None,
            progress=progress,
            blocked=blocked,
            raw=node,
        )

    def _milestone(self, m: dict[str, Any]) -> Milestone:
        return Milestone(
            source=self.name,
            id=str(m["id"]),
            name=str(m.get("title") or ""),
            due_date=_d(m.get("dueOn")),
            state=str(m.get("state") or "open").lower(),
            url=m.get("url"),
        )

    def _iteration_milestones(self, field: Any) -> list[Milestone]:
        config = (field or {}).get("configuration") if isinstance(field, dict) else None
        if not isinstance(config, dict):
            return []
        out: list[Milestone] = []
        for state, key in (("open", "iterations"), ("closed", "completedIterations")):
            for it in config.get(key) or ():
                start = _d(it.get("startDate"))
                out.append(
                    Milestone(
                        source=self.name,
                        id=str(it["id"]),
                        name=str(it.get("title") or ""),
                        start_date=start,
                        due_date=start + timedelta(days=max(1, int(it.get("duration") or 1)) - 1)
                        if start
                        else None,
                        state=state,
                        url=self.project_url,
                    )
                )
        return out

    def fetch_milestones(self) -> Iterable[Milestone]:
        out: dict[str, Milestone] = {}
        if self.board is not None:
            if self._pass_ids is None:  # no pass yet in this run: one is needed
                for _ in self._board_items(None):
                    pass
            out.update({m.id: m for m in self._iterations})
            out.update(self._milestones)
        if self.settings.repo:
            out.update({m.id: m for m in self._repo_milestones()})
        return list(out.values())

    def fetch_ids(self) -> Iterator[str] | None:
        if self.board is None:
            return self._repo_ids()
        if self._pass_ids is not None:
            return iter(list(self._pass_ids))
        return self._board_ids()

    def _board_ids(self) -> Iterator[str]:
        ids: list[str] = []
        for project in self._board_pages(BOARD_IDS_QUERY, {}):
            for node in (project.get("items") or {}).get("nodes") or []:
                if isinstance(node, dict) and node.get("type") != "REDACTED":
                    ids.append(str(node["id"]))
        return iter(ids)

    # -- repository mode (REST) -----------------------------------------------------------

    def _repo_path(self, repo: str | None = None) -> str:
        return f"repos/{repo or self.settings.repo}"

    def _get_cached(
        self, key: str, path: str, params: dict[str, Any], *, conditional: bool = True
    ) -> list[Any] | None:
        """GET every page of a list; None when the first page answers 304 (unchanged).

        The ETag of the first page is kept in `state`; `link` URLs are followed verbatim
        (github-api.md §4.4).
        """
        etags: dict[str, str] = self.state.setdefault("etags", {})
        headers = {"If-None-Match": etags[key]} if conditional and etags.get(key) else None
        url: str | None = path
        out: list[Any] = []
        first = True
        while url:
            try:
                response = self.http.request(
                    "GET",
                    url,
                    params=params if first else None,
                    headers=headers if first else None,
                    ok=(200, 304),
                )
            except HttpError as exc:
                if exc.status == 404:
                    raise SourceError(
                        f"{self.name}: repository {self.settings.repo} not found: check repo ="
                        " 'owner/name', and grant repo (if private) to the token"
                    ) from None
                raise self._http_error(exc) from None
            if first and response.status_code == 304:
                return None
            if first and response.headers.get("etag"):
                etags[key] = response.headers["etag"]
            page = self.http.parse_json(response) if response.content else []
            if not isinstance(page, list):
                raise SourceError(f"{self.name}: expected a list from {path}")
            out.extend(page)
            first = False
            url = response.links.get("next", {}).get("url")
        return out

    def _repo_items(self, since: datetime | None) -> Iterator[WorkItem]:
        params: dict[str, Any] = {
            "state": "all",
            "sort": "updated",
            "direction": "desc",
            "per_page": 100,
        }
        if since is not None:
            params["since"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        before = self.http.requests
        # A full pass is also the census: never let it be answered by a bare 304.
        issues = self._get_cached(
            "issues", f"{self._repo_path()}/issues", params, conditional=since is not None
        )
        if issues is None:
            self.notes.append(f"repo {self.settings.repo}: unchanged (304, no quota used)")
            return
        seen: set[str] = set()
        for issue in issues:
            if not isinstance(issue, dict) or str(issue.get("node_id")) in seen:
                continue
            seen.add(str(issue.get("node_id")))
            yield self._rest_item(issue)
        self.notes.append(
            f"repo {self.settings.repo}: {len(seen)} issues and pull requests"
            f" {'in all' if since is None else 'changed'} in {self.http.requests - before}"
            " requests (REST since= filter)"
        )

    def _rest_item(self, issue: dict[str, Any]) -> WorkItem:
        repo = self.settings.repo
        pr = issue.get("pull_request")
        labels = [
            str(lb.get("name")) if isinstance(lb, dict) else str(lb)
            for lb in issue.get("labels") or ()
        ]
        state = issue.get("state")
        closed_at = _dt(issue.get("closed_at"))
        if isinstance(pr, dict):
            kind = "pull_request"
            merged = _dt(pr.get("merged_at"))
            if merged:
                raw_status, category, completed = "merged", StatusCategory.DONE, merged
            elif state == "closed":
                raw_status, category, completed = "closed", StatusCategory.CANCELLED, closed_at
            else:
                raw_status, category, completed = "open", StatusCategory.TODO, None
        else:
            kind = "issue"
            if state == "closed":
                if issue.get("state_reason") in ("not_planned", "duplicate"):
                    raw_status, category = "closed (not planned)", StatusCategory.CANCELLED
                else:
                    raw_status, category = "closed", StatusCategory.DONE
                completed = closed_at
            else:
                raw_status, category, completed = "open", StatusCategory.TODO, None
        blocked = False
        if state == "open":
            # An open issue's workflow lives in labels: a label named in status_map sets it.
            for label in labels:
                mapped = self._config_map.get(label.casefold())
                if mapped is not None:
                    raw_status, category = label, mapped
                    break
            blocked = any(lb.casefold() in self._blocked for lb in labels)
        assignees = issue.get("assignees") or ([issue["assignee"]] if issue.get("assignee") else [])
        milestone = issue.get("milestone") or {}
        raw = {
            k: v
            for k, v in issue.items()
            if k not in ("body", "body_html", "body_text", "reactions", "user", "closed_by")
        }
        return WorkItem(
            source=self.name,
            id=str(issue["node_id"]),
            key=f"{repo}#{issue.get('number')}",
            url=issue.get("html_url"),
            title=str(issue.get("title") or ""),
            kind=kind,
            status=raw_status,
            category=category,
            assignee=assignees[0].get("login") if assignees else None,
            labels=labels,
            milestone_id=milestone.get("node_id") if milestone else None,
            created_at=_dt(issue.get("created_at")),
            updated_at=_dt(issue.get("updated_at")),
            completed_at=completed,
            blocked=blocked,
            raw=raw,
        )

    def _repo_milestones(self) -> list[Milestone]:
        params = {"state": "all", "per_page": 100}
        found = self._get_cached("milestones", f"{self._repo_path()}/milestones", params)
        if found is None:
            found = self.state.get("milestones", [])
        else:
            self.state["milestones"] = [
                {k: m.get(k) for k in ("node_id", "title", "due_on", "state", "html_url")}
                for m in found
                if isinstance(m, dict)
            ]
            found = self.state["milestones"]
        return [
            Milestone(
                source=self.name,
                id=str(m["node_id"]),
                name=str(m.get("title") or ""),
                due_date=_d(m.get("due_on")),
                state=str(m.get("state") or "open"),
                url=m.get("html_url"),
            )
            for m in found
        ]

    def _repo_ids(self) -> Iterator[str]:
        """Every issue and PR node id of the repository (GraphQL: ids only, 1 point a page)."""
        owner, name = str(self.settings.repo).split("/", 1)
        ids: list[str] = []
        for issues in (True, False):
            after: str | None = None
            conn = "issues" if issues else "pullRequests"
            while True:
                body = self._gql(
                    REPO_IDS_QUERY, {"owner": owner, "name": name, "issues": issues, "after": after}
                )
                if body.get("errors"):
                    raise self._query_error(body["errors"])
                repo = (body.get("data") or {}).get("repository")
                if not repo:
                    raise SourceError(f"{self.name}: repository {self.settings.repo} not found")
                page = repo.get(conn) or {}
                ids.extend(str(n["id"]) for n in page.get("nodes") or () if n)
                info = page.get("pageInfo") or {}
                if not info.get("hasNextPage"):
                    break
                after = info.get("endCursor")
        return iter(ids)

    # -- check ----------------------------------------------------------------------------

    def check(self) -> str:
        if self.board is None:
            try:
                user = self.http.get_json("user")
                repo = self.http.get_json(self._repo_path())
            except HttpError as exc:
                if exc.status == 404:
                    raise SourceError(
                        f"{self.name}: repository {self.settings.repo} not found or not visible"
                        " with this token"
                    ) from None
                raise self._http_error(exc) from None
            return f"{user.get('login')} on repository {repo.get('full_name')}"
        owner, number = self.board
        body = self._gql(CHECK_QUERY, {"login": owner, "number": number})
        project = self._project_node(body)
        login = ((body.get("data") or {}).get("viewer") or {}).get("login")
        types = {
            n.get("name"): n.get("dataType")
            for n in (project.get("fields") or {}).get("nodes") or ()
            if isinstance(n, dict)
        }
        s = self.settings
        wanted = {
            s.status_field: "SINGLE_SELECT",
            s.start_field: "DATE",
            s.target_field: "DATE",
            s.estimate_field: "NUMBER",
            s.iteration_field: "ITERATION",
        }
        missing = [
            f"{name} ({kind.lower()})" for name, kind in wanted.items() if types.get(name) != kind
        ]
        note = f"; fields not found (ignored): {', '.join(missing)}" if missing else ""
        return f"{login} on board '{project.get('title')}' ({owner}/{number}){note}"

    # -- publishing -----------------------------------------------------------------------

    def _target(self, target: PublishTarget) -> GitHubTarget:
        try:
            return GitHubTarget.model_validate(target.options)
        except ValueError as exc:
            raise ConfigError(f"publish target {target.to!r}: {exc}") from None

    def render(self, target: PublishTarget, report: Report) -> str:
        self._target(target)
        return render_body(report)

    def publish(
        self, target: PublishTarget, report: Report, previous: Publication | None
    ) -> RemoteRef:
        options = self._target(target)
        body = self.render(target, report)
        try:
            if options.issue is not None:
                return self._publish_comment(options, body, report, previous)
            return self._publish_status(body, report, previous)
        except HttpError as exc:
            raise self._http_error(exc, publish=True) from None
        except PublishError:
            raise
        except SourceError as exc:
            raise PublishError(str(exc)) from None

    def _status_input(self, body: str, report: Report) -> dict[str, Any]:
        start, target = _report_dates(report)
        fields: dict[str, Any] = {
            "body": body,
            "status": HEALTH_STATUS.get(report.health.status, "ON_TRACK"),
        }
        if start:
            fields["startDate"] = start.isoformat()
        if target:
            fields["targetDate"] = target.isoformat()
        return fields

    def _publish_status(self, body: str, report: Report, previous: Publication | None) -> RemoteRef:
        if self.board is None:
            raise PublishError(
                f"{self.name}: a status update needs project = 'owner/number' on this source;"
                " or publish to an issue with issue = N"
            )
        fields = self._status_input(body, report)
        marker = _marker(report.project.id, report.period_id)
        existing_id = previous.remote_id if previous else None
        if existing_id is None or self.project_id is None:
            found = self._find_status(marker)
            if existing_id is None and found is not None:
                existing_id = str(found["id"])
                if all(found.get(k) == fields.get(k) for k in STATUS_KEYS):
                    return RemoteRef(id=existing_id, url=self.project_url, changed=False)
        if existing_id is not None:
            updated = self._update_status(existing_id, fields)
            if updated is not None:
                return RemoteRef(id=updated, url=self.project_url)
        return RemoteRef(id=self._create_status(fields, marker), url=self.project_url)

    def _find_status(self, marker: str) -> dict[str, Any] | None:
        """The board's status update of this project and period (by its marker), if any."""
        owner, number = self.board or ("", 0)
        project = self._project_node(
            self._gql(STATUS_UPDATES_QUERY, {"login": owner, "number": number})
        )
        for update in (project.get("statusUpdates") or {}).get("nodes") or ():
            if isinstance(update, dict) and marker in str(update.get("body") or ""):
                return update
        return None

    def _update_status(self, update_id: str, fields: dict[str, Any]) -> str | None:
        """Update in place (safe to retry); None if the update was deleted on GitHub."""
        body = self._gql(
            UPDATE_STATUS_MUTATION,
            {"input": {"statusUpdateId": update_id, **fields}},
            mutation=True,
        )
        return self._mutation_result(body, "updateProjectV2StatusUpdate")

    def _create_status(self, fields: dict[str, Any], marker: str) -> str:
        """Create the update. A create that timed out may still have been applied (§2.5), so
        look for it by its marker before sending it again: never two for one period."""
        variables = {"input": {"projectId": self.project_id, **fields}}
        status = 0
        for _ in range(3):
            try:
                status, body = self.http.graphql(
                    self.graphql_endpoint,
                    CREATE_STATUS_MUTATION,
                    variables,
                    mutation=True,
                    gateway_ok=True,
                )
            except HttpError as exc:
                raise self._http_error(exc, publish=True) from None
            if status == 200:
                created = self._mutation_result(body, "createProjectV2StatusUpdate")
                if created is None:
                    raise PublishError(f"{self.name}: GitHub did not create the status update")
                return created
            found = self._find_status(marker)
            if found is not None:
                if all(found.get(k) == fields.get(k) for k in STATUS_KEYS):
                    return str(found["id"])
                return self._update_status(str(found["id"]), fields) or str(found["id"])
        raise PublishError(
            f"{self.name}: GitHub kept timing out creating the status update (HTTP {status});"
            " publish again later (it will not post twice)"
        )

    def _mutation_result(self, body: dict[str, Any], name: str) -> str | None:
        """The status update id a mutation answered; None if it was not found (deleted)."""
        errors = body.get("errors") or []
        if errors:
            if name.startswith("update") and any(e.get("type") == "NOT_FOUND" for e in errors):
                return None  # deleted in the meantime: create a new one
            types = {e.get("type") for e in errors if isinstance(e, dict)}
            hint = (
                "; grant the `project` scope (or Projects write permission) to the token"
                if types & {"INSUFFICIENT_SCOPES", "FORBIDDEN"}
                else ""
            )
            raise PublishError(f"{self.name}: {name} failed: {_one_line(errors)}{hint}")
        payload = ((body.get("data") or {}).get(name) or {}).get("statusUpdate") or {}
        return str(payload["id"]) if payload.get("id") else None

    def _publish_comment(
        self, options: GitHubTarget, body: str, report: Report, previous: Publication | None
    ) -> RemoteRef:
        repo = options.repo or self.settings.repo
        if not repo:
            raise PublishError(
                f"{self.name}: publishing to issue {options.issue} needs repo = 'owner/name'"
                " on the source or the publish target"
            )
        issue = int(options.issue or 0)
        marker = _marker(report.project.id, report.period_id)
        comment_id = previous.remote_id if previous else None
        if comment_id is None:
            found = self._find_comment(repo, issue, marker)
            if found is not None:
                if found.get("body") == body:
                    return RemoteRef(id=str(found["id"]), url=found.get("html_url"), changed=False)
                comment_id = str(found["id"])
        if comment_id is not None:
            patched = self._patch_comment(repo, comment_id, body)
            if patched is not None:
                return patched
        return self._create_comment(repo, issue, body, marker)

    def _patch_comment(self, repo: str, comment_id: str, body: str) -> RemoteRef | None:
        """Edit the comment in place; None if it was deleted on GitHub."""
        self.http.space_write()
        response = self.http.request(
            "PATCH",
            f"{self._repo_path(repo)}/issues/comments/{comment_id}",
            json={"body": body},
            ok=(200, 404),
        )
        if response.status_code == 404:
            return None
        data = self.http.parse_json(response)
        return RemoteRef(id=str(data["id"]), url=data.get("html_url"))

    def _create_comment(self, repo: str, issue: int, body: str, marker: str) -> RemoteRef:
        """POST the comment; after a gateway timeout, look for it before posting again."""
        status = 0
        for _ in range(3):
            self.http.space_write()
            try:
                response = self.http.request(
                    "POST",
                    f"{self._repo_path(repo)}/issues/{issue}/comments",
                    json={"body": body},
                    ok=(200, 201, 502, 504),
                )
            except HttpError as exc:
                if exc.status in (404, 410):
                    raise PublishError(
                        f"{self.name}: issue {repo}#{issue} not found or locked (HTTP"
                        f" {exc.status}); check issue = N and the access of the token"
                    ) from None
                raise
            status = response.status_code
            if status in (200, 201):
                data = self.http.parse_json(response)
                return RemoteRef(id=str(data["id"]), url=data.get("html_url"))
            found = self._find_comment(repo, issue, marker)
            if found is not None:
                if found.get("body") == body:
                    return RemoteRef(id=str(found["id"]), url=found.get("html_url"))
                patched = self._patch_comment(repo, str(found["id"]), body)
                if patched is not None:
                    return patched
        raise PublishError(
            f"{self.name}: GitHub kept timing out posting the comment on {repo}#{issue} (HTTP"
            f" {status}); publish again later (it will not post twice)"
        )

    def _find_comment(self, repo: str, issue: int, marker: str) -> dict[str, Any] | None:
        url: str | None = f"{self._repo_path(repo)}/issues/{issue}/comments"
        params: dict[str, Any] | None = {"per_page": 100}
        while url:
            response = self.http.request("GET", url, params=params, ok=(200, 404))
            if response.status_code == 404:
                return None
            for comment in self.http.parse_json(response) or ():
                if isinstance(comment, dict) and marker in str(comment.get("body") or ""):
                    return comment
            url, params = response.links.get("next", {}).get("url"), None
        return None


def _report_dates(report: Report) -> tuple[date | None, date | None]:
    """Start and target dates for the status update: the project's plan where known."""
    closing = getattr(report, "closing", None)
    start = getattr(report, "start_date", None) or (closing.planned_start if closing else None)
    target = getattr(report, "target_date", None) or (closing.planned_end if closing else None)
    forecast = getattr(report, "forecast", None)
    if target is None and forecast is not None:
        target = getattr(forecast, "target_date", None)
    return start, target


def _to_markdown(report: Report, rows: int | None = None) -> str:
    """The report as GitHub Markdown (Gantt as a mermaid block), at most `rows` per list."""
    from sync.render.markdown import to_markdown

    return to_markdown(report) if rows is None else to_markdown(report, limit=rows)


def render_body(report: Report) -> str:
    """The neutralised Markdown report with its period marker, within BODY_LIMIT chars.

    A report too long for GitHub is rendered again with shorter lists before any cut.
    """
    marker = _marker(report.project.id, report.period_id)
    text = neutralise(_to_markdown(report))
    for rows in (10, 5, 2):
        if len(text) + len(marker) + 2 <= BODY_LIMIT:
            break
        text = neutralise(_to_markdown(report, rows))
    return fit_body(text, marker)


__all__ = [
    "ALL_DOCUMENTS",
    "GitHubConnector",
    "GitHubHttp",
    "GitHubSettings",
    "GitHubTarget",
    "fit_body",
    "graphql_url",
    "neutralise",
    "render_body",
]
