"""Redmine: issues, versions and report notes over the REST API (research §3).

Sync reads `/issues.json` for one project (subprojects optional), oldest change first, and
pages so that an issue updated, closed or deleted while the sync runs never makes another
one drop out (see `_changed_issues`). Statuses map on `is_closed` plus configurable name
lists; versions are milestones; journals (one request per changed issue) give the status
history when `history = true`. A report is published as a note on one issue, written in
the server's text formatting, and edited in place when republished for the same period.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from connectors.base import Connector, Publication, PublishTarget, SourceSettings
from connectors.http import HttpClient, HttpError
from sync.errors import ConfigError, PublishError, SourceError
from sync.model import Milestone, RemoteRef, StatusCategory, Transition, WorkItem

if TYPE_CHECKING:
    from sync.report import Report

PAGE = 100  # research §3.2: larger limits are clamped to 100
# A journal note is a TEXT column: 64 KiB on MySQL. Stay well below it.
MAX_NOTE_BYTES = 60_000
MAX_RESTARTS = 200


class RedmineSettings(SourceSettings):
    """`[sources.X]` with `kind = "redmine"`."""

    kind: Literal["redmine"] = "redmine"
    url: str
    token: SecretStr
    # The project's identifier (the name in its URL) or numeric id.
    project: str
    subprojects: bool = True
    # Open statuses (names or ids) that mean work has started; other open ones are "todo".
    in_progress_statuses: list[str] = Field(
        default_factory=lambda: ["In Progress", "Feedback", "Resolved"]
    )
    # Closed statuses (names or ids) that mean "cancelled"; other closed ones are "done".
    cancelled_statuses: list[str] = Field(default_factory=lambda: ["Rejected"])
    # Fetch each changed issue's journals for its status history (one request per issue).
    history: bool = False
    # The server's Administration → Settings → General → Text formatting (not in the API).
    text_formatting: Literal["textile", "markdown", "common_mark"] = "textile"
    page_size: int = Field(default=PAGE, ge=2, le=PAGE)
    timeout: float = Field(default=30, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"https?://[^/\s]+", value):
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value.rstrip("/")

    @field_validator("in_progress_statuses", "cancelled_statuses", mode="before")
    @classmethod
    def _as_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(v) for v in value]
        return value


class RedmineTarget(BaseModel):
    """`[[projects.X.publish]]` options for a Redmine source: the issue that gets the note."""

    model_config = ConfigDict(extra="forbid")

    issue: int = Field(gt=0)
    # Overrides the source's text_formatting for this note.
    format: Literal["textile", "markdown"] | None = None
    private: bool = False

    @field_validator("issue", mode="before")
    @classmethod
    def _issue_number(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lstrip("#")
        return value


class RedmineConnector(Connector):
    kind: ClassVar[str] = "redmine"
    Settings: ClassVar[type[SourceSettings]] = RedmineSettings
    Target: ClassVar[type[BaseModel] | None] = RedmineTarget
    ordered: ClassVar[bool] = True

    settings: RedmineSettings

    def __init__(self, name: str, settings: SourceSettings) -> None:
        super().__init__(name, settings)
        s = self.settings
        token = s.token.get_secret_value()
        self.http = HttpClient(
            s.url,
            source=name,
            headers={"X-Redmine-API-Key": token},
            secrets=[token],
            timeout=s.timeout,
        )
        self._statuses: dict[str, tuple[str, bool]] | None = None
        self._project: dict[str, Any] | None = None
        self._me: dict[str, Any] | None = None
        self.restarts = 0  # times paging restarted because the list moved under it
        self.max_restarts = MAX_RESTARTS

    # -- plumbing -------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any] | None = None, *, what: str) -> Any:
        assert self.http is not None
        try:
            return self.http.get_json(path, params=params)
        except HttpError as exc:
            raise SourceError(self._explain(exc, what)) from None

    def _explain(self, exc: HttpError, what: str, missing: str | None = None) -> str:
        """One line naming the source, what failed and what to check."""
        s = self.settings
        missing = missing or f"check `url` and `project` ({s.project!r})"
        hint = {
            401: "the API key was refused: check `token` (My account → API access key)",
            403: (
                "access denied: check that the REST API is enabled (Administration → Settings"
                " → API) and that the key's user is a member of the project"
            ),
            404: f"not found: {missing}",
            422: "Redmine rejected the request",
        }.get(exc.status)
        if hint is None:
            return str(exc)
        detail = f" ({exc.body})" if exc.body and exc.status == 422 else ""
        return f"{self.name}: HTTP {exc.status} on {what}: {hint}{detail}"

    def _login(self) -> dict[str, Any]:
        # An unknown key is served as the anonymous user, who may still read public projects:
        # only /users/current.json says 401, so ask it before trusting any list.
        if self._me is None:
            body = self._get("users/current.json", what="the current user")
            user = body.get("user") if isinstance(body, dict) else None
            if not isinstance(user, dict) or "id" not in user:
                raise SourceError(f"{self.name}: unexpected answer from /users/current.json")
            self._me = {"id": user["id"], "login": user.get("login", "")}
        return self._me

    def _project_info(self) -> dict[str, Any]:
        if self._project is None:
            self._login()
            body = self._get(
                f"projects/{self.settings.project}.json", what=f"project {self.settings.project!r}"
            )
            project = body.get("project") if isinstance(body, dict) else None
            if not isinstance(project, dict) or "id" not in project:
                raise SourceError(f"{self.name}: unexpected answer for the project")
            self._project = project
        return self._project

    def _status_table(self) -> dict[str, tuple[str, bool]]:
        """Status id -> (name, is_closed), read once per run (research §3.5)."""
        if self._statuses is None:
            body = self._get("issue_statuses.json", what="the issue statuses")
            self._statuses = {
                str(st["id"]): (str(st.get("name", st["id"])), bool(st.get("is_closed")))
                for st in (body or {}).get("issue_statuses", [])
                if isinstance(st, dict) and "id" in st
            }
        return self._statuses

    def _scope_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"project_id": self._project_info()["id"], "status_id": "*"}
        # research §3.4: without status_id=* closed issues drop out.
        params["subproject_id"] = "*" if self.settings.subprojects else "!*"
        return params

    # -- contract -------------------------------------------------------------------------

    def check(self) -> str:
        me = self._login()
        project = self._project_info()
        return f"{me['login']} on {self.settings.url}, project {project.get('name', project['id'])}"

    def fetch_items(self, since: datetime | None) -> Iterator[WorkItem]:
        self._project_info()  # logs in first
        self._status_table()
        journals = 0
        for issue in self._changed_issues(since):
            item = self.to_item(issue)
            if self.settings.history:
                item.transitions = self._transitions(issue, item)
                journals += 1
            yield item
        if journals:
            self.notes.append(f"read the journals of {journals} issues ({journals} requests)")
        if self.restarts:
            self.notes.append(
                f"issues changed during the sync; paging re-read from the last timestamp"
                f" {self.restarts} time(s)"
            )

    def _changed_issues(self, since: datetime | None) -> Iterator[dict[str, Any]]:
        """Yield every issue updated at or after `since`, oldest first, each version once.

        Plain offset paging skips an issue whenever one before the offset is updated (it
        moves to the end) or deleted. So each page overlaps the previous one by one issue,
        and that issue must come back first; if it does not, the list moved, and paging
        restarts at offset 0 from the last timestamp passed (`updated_on>=` is inclusive:
        query.rb subtracts a second). Issues already yielded with the same `updated_on`
        are dropped, so the overlap costs bandwidth only.
        """
        limit = self.settings.page_size
        base = {**self._scope_params(), "sort": "updated_on,id", "limit": limit}
        seen: dict[int, str] = {}
        bound = since
        offset = 0
        passed: str | None = None  # updated_on of the last issue of the last good page
        while True:
            params = dict(base, offset=offset)
            if bound is not None:
                params["updated_on"] = ">=" + _utc_z(bound)
            issues = self._issue_list(params)
            if offset and (not issues or seen.get(issues[0]["id"]) != issues[0]["updated_on"]):
                self.restarts += 1
                if self.restarts > self.max_restarts:
                    raise SourceError(
                        f"{self.name}: issues kept changing during the sync"
                        f" ({self.max_restarts} restarts); try again later"
                    )
                bound, offset = (_parse_dt(passed) or bound), 0
                continue
            for issue in issues:
                if seen.get(issue["id"]) == issue["updated_on"]:
                    continue
                seen[issue["id"]] = issue["updated_on"]
                yield issue
            if len(issues) < limit:
                return
            passed = issues[-1]["updated_on"]
            offset += len(issues) - 1

    def _issue_list(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        body = self._get("issues.json", params, what="the issue list")
        issues = body.get("issues") if isinstance(body, dict) else None
        if not isinstance(issues, list) or not all(
            isinstance(i, dict) and isinstance(i.get("id"), int) and i.get("updated_on")
            for i in issues
        ):
            raise SourceError(f"{self.name}: unexpected answer from /issues.json (no issue list)")
        return issues

    def fetch_ids(self) -> Iterator[str]:
        """Yield every live issue id: keyset paging on id, which deletions cannot shift."""
        limit = self.settings.page_size
        params: dict[str, Any] = {**self._scope_params(), "sort": "id", "limit": limit}
        after = 0
        while True:
            issues = self._issue_list({**params, "issue_id": f">={after + 1}"} if after else params)
            for issue in issues:
                yield str(issue["id"])
            if len(issues) < limit:
                return
            after = max(i["id"] for i in issues)

    def fetch_milestones(self) -> list[Milestone]:
        project = self._project_info()
        project_ids = [project["id"]]
        if self.settings.subprojects:
            project_ids += self._descendants(project["id"])
        found: dict[str, Milestone] = {}
        for pid in project_ids:
            body = self._get(f"projects/{pid}/versions.json", what="the versions")
            for v in (body or {}).get("versions", []):
                if isinstance(v, dict) and "id" in v:
                    m = self.to_milestone(v)
                    found.setdefault(m.id, m)
        return list(found.values())

    def _descendants(self, root: int) -> list[int]:
        out: list[int] = []
        queue = [root]
        while queue:
            parent = queue.pop(0)
            offset = 0
            while True:
                body = self._get(
                    "projects.json",
                    {"parent_id": parent, "limit": PAGE, "offset": offset},
                    what="the subprojects",
                )
                listed = (body or {}).get("projects", [])
                # An older server without the parent_id filter lists every project: keep
                # only real children.
                children = [p["id"] for p in listed if (p.get("parent") or {}).get("id") == parent]
                new = [c for c in children if c not in out and c != root]
                out += new
                queue += new
                offset += PAGE
                if len(listed) < PAGE or offset >= int(body.get("total_count", 0)):
                    break
        return out

    # -- mapping --------------------------------------------------------------------------

    def category(self, status_id: Any, name: str, is_closed: bool) -> StatusCategory:
        """Map a status: `status_map`, else closed → done/cancelled, open → todo/in_progress."""
        s = self.settings
        ident, folded = str(status_id), name.casefold()
        for key, cat in s.status_map.items():
            if key == ident or key.casefold() == folded:
                return cat

        def listed(names: list[str]) -> bool:
            return any(n == ident or n.casefold() == folded for n in names)

        if is_closed:
            return StatusCategory.CANCELLED if listed(s.cancelled_statuses) else StatusCategory.DONE
        return StatusCategory.IN_PROGRESS if listed(s.in_progress_statuses) else StatusCategory.TODO

    def _status(self, status: dict[str, Any]) -> tuple[str, bool]:
        ident = str(status.get("id", ""))
        known = (self._statuses or {}).get(ident)
        name = str(status.get("name") or (known[0] if known else ident))
        # research §3.4: status.is_closed is in issue JSON since 5.0; older servers need the table.
        closed = status.get("is_closed")
        if closed is None:
            closed = known[1] if known else False
        return name, bool(closed)

    def to_item(self, issue: dict[str, Any]) -> WorkItem:
        """Normalise one issue of `/issues.json`."""
        status = issue.get("status") or {}
        name, closed = self._status(status)
        category = self.category(status.get("id", ""), name, closed)
        labels = []
        if isinstance(issue.get("category"), dict) and issue["category"].get("name"):
            labels.append(str(issue["category"]["name"]))
        if issue.get("is_private"):
            labels.append("private")
        done_ratio = issue.get("done_ratio")
        progress = None
        if isinstance(done_ratio, int | float):
            progress = min(max(float(done_ratio) / 100, 0.0), 1.0)
        closed_on = _parse_dt(issue.get("closed_on"))
        blocked = name.casefold() in {b.casefold() for b in self.settings.blocked_statuses}
        return WorkItem(
            source=self.name,
            id=str(issue["id"]),
            key=f"#{issue['id']}",
            url=f"{self.settings.url}/issues/{issue['id']}",
            title=str(issue.get("subject") or ""),
            kind=str(_name(issue.get("tracker")) or "issue").lower(),
            status=name,
            category=category,
            assignee=_name(issue.get("assigned_to")),
            priority=_name(issue.get("priority")),
            labels=labels,
            parent_id=_ref(issue.get("parent")),
            milestone_id=_ref(issue.get("fixed_version")),
            start_date=_parse_date(issue.get("start_date")),
            due_date=_parse_date(issue.get("due_date")),
            created_at=_parse_dt(issue.get("created_on")),
            updated_at=_parse_dt(issue.get("updated_on")),
            # closed_on survives a reopen: only a closed issue is completed.
            completed_at=closed_on if not category.is_open else None,
            estimate=_number(issue.get("estimated_hours")),
            progress=progress,
            blocked=blocked,
            raw=issue,
        )

    def to_milestone(self, version: dict[str, Any]) -> Milestone:
        return Milestone(
            source=self.name,
            id=str(version["id"]),
            name=str(version.get("name") or version["id"]),
            due_date=_parse_date(version.get("due_date")),
            state=str(version.get("status") or "open"),
            url=f"{self.settings.url}/versions/{version['id']}",
        )

    def _transitions(self, issue: dict[str, Any], item: WorkItem) -> list[Transition]:
        """The issue's status history from its journals, creation first (research §3.4)."""
        body = self._get(
            f"issues/{issue['id']}.json",
            {"include": "journals"},
            what=f"journals of #{issue['id']}",
        )
        journals = ((body or {}).get("issue") or {}).get("journals") or []
        table = self._status_table()

        def named(ident: str | None) -> tuple[str, StatusCategory]:
            name, closed = table.get(str(ident), (str(ident), False))
            return name, self.category(ident, name, closed)

        changes: list[tuple[datetime, str | None, str | None]] = []
        for j in sorted(journals, key=lambda j: (j.get("created_on") or "", j.get("id") or 0)):
            at = _parse_dt(j.get("created_on"))
            for d in j.get("details") or []:
                if d.get("property") == "attr" and d.get("name") == "status_id" and at:
                    changes.append((at, d.get("old_value"), d.get("new_value")))
        first_status = changes[0][1] if changes else str((issue.get("status") or {}).get("id"))
        out: list[Transition] = []
        if item.created_at and first_status is not None:
            to_name, to_cat = named(first_status)
            out.append(
                Transition(source=self.name, item_id=item.id, at=item.created_at,
                           to_status=to_name, to_category=to_cat)
            )  # fmt: skip
        for at, old, new in changes:
            if new is None:
                continue
            from_name, from_cat = named(old) if old is not None else (None, None)
            to_name, to_cat = named(new)
            out.append(
                Transition(source=self.name, item_id=item.id, at=at, from_status=from_name,
                           from_category=from_cat, to_status=to_name, to_category=to_cat)
            )  # fmt: skip
        return out

    # -- publishing -----------------------------------------------------------------------

    def _target(self, target: PublishTarget) -> RedmineTarget:
        try:
            return RedmineTarget.model_validate(target.options)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "options"
            raise ConfigError(
                f"publish target {target.to!r}: {where}: {first['msg']}"
                " (a Redmine target needs `issue = <number>`)"
            ) from None

    def text_format(self, options: RedmineTarget) -> Literal["textile", "markdown"]:
        if options.format:
            return options.format
        return "textile" if self.settings.text_formatting == "textile" else "markdown"

    def render(self, target: PublishTarget, report: Report) -> str:
        options = self._target(target)
        if self.text_format(options) == "textile":
            text = to_textile(report)
        else:
            from sync.render import to_markdown

            text = drop_mermaid(to_markdown(report))
        return limit_size(neutralise(text))

    def publish(
        self, target: PublishTarget, report: Report, previous: Publication | None
    ) -> RemoteRef:
        """Add the report as a note, or edit the previous note of this period in place.

        Redmine 5 can edit a note (`PUT /journals/{id}.json`): a changed report for the same
        period replaces its note's text; unchanged text sends nothing; a new period (or a
        note that was deleted, or that the key may not edit) adds a new note.
        """
        options = self._target(target)
        text = self.render(target, report)
        try:
            me = self._login()
            journals = self._journals(options.issue)
            if previous is not None and previous.remote_id:
                old = next((j for j in journals if str(j.get("id")) == previous.remote_id), None)
                if old is not None:
                    ref = self._note_ref(options.issue, old["id"])
                    if _same_text(old.get("notes"), text):
                        return ref.model_copy(update={"changed": False})
                    if self._edit_note(old["id"], text):
                        return ref
            mine = [j for j in journals if (j.get("user") or {}).get("id") == me["id"]]
            if mine and _same_text(mine[-1].get("notes"), text):
                # Already there (e.g. the publications row was lost): do not add it twice.
                return self._note_ref(options.issue, mine[-1]["id"]).model_copy(
                    update={"changed": False}
                )
            assert self.http is not None
            self.http.request(
                "PUT",
                f"issues/{options.issue}.json",
                json={"issue": {"notes": text, "private_notes": options.private}},
            )
            known = {j.get("id") for j in journals}
            for j in reversed(self._journals(options.issue)):
                if j.get("id") not in known and (j.get("user") or {}).get("id") == me["id"]:
                    return self._note_ref(options.issue, j["id"])
        except HttpError as exc:
            raise PublishError(
                self._explain(
                    exc, f"issue #{options.issue}", f"check the target's issue #{options.issue}"
                )
            ) from None
        except SourceError as exc:
            raise PublishError(str(exc)) from None
        raise PublishError(
            f"{self.name}: the note was sent to issue #{options.issue} but is not in its"
            " journal; check the issue's history in Redmine"
        )

    def _journals(self, issue: int) -> list[dict[str, Any]]:
        assert self.http is not None
        body = self.http.get_json(f"issues/{issue}.json", params={"include": "journals"})
        journals = ((body or {}).get("issue") or {}).get("journals")
        if not isinstance(journals, list):
            raise SourceError(f"{self.name}: issue #{issue} came back without its journal")
        return sorted(
            (j for j in journals if isinstance(j, dict) and "id" in j), key=lambda j: j["id"]
        )

    def _edit_note(self, journal_id: int, text: str) -> bool:
        """Replace a note's text; False when this server or key cannot (then add a new one)."""
        assert self.http is not None
        try:
            self.http.request(
                "PUT", f"journals/{journal_id}.json", json={"journal": {"notes": text}}
            )
        except HttpError as exc:
            if exc.status in (401, 403, 404, 405, 422):
                self.notes.append(
                    f"could not edit note {journal_id} (HTTP {exc.status}; Redmine < 5.0 or no"
                    " 'Edit notes' permission): added a new note"
                )
                return False
            raise
        return True

    def _note_ref(self, issue: int, journal_id: Any) -> RemoteRef:
        return RemoteRef(
            id=str(journal_id), url=f"{self.settings.url}/issues/{issue}#change-{journal_id}"
        )


# -- text for Redmine ---------------------------------------------------------------------

_URL = re.compile(r"""https?://[^\s<>"'\])]+""")
# Redmine link prefixes (application_helper.rb LINKS_RE) written as `prefix:target`.
_PREFIXES = "attachment|document|version|forum|news|message|project|commit|source|export|user"
_NEUTRALISE = [
    # @login mentions notify users (acts/mentionable.rb), and @login renders a user link.
    (re.compile(r"@(?=[A-Za-z0-9_\-.@])"), "@\u200b"),
    # #123, ##123, #note-1: issue and note links (not a Markdown heading `## x`, not `&#35;`).
    (re.compile(r"(?<![&#])#(?=#?(?:\d|note))"), "#\u200b"),
    # r123 / repo|r123 revisions, after the separators LINKS_RE allows before a link.
    (re.compile(r"(?<=[\s(,\-\[>|])r(?=\d)|^r(?=\d)", re.M), "r\u200b"),
    # prefix:target and prefix#id links: commit:abc, source:x, user:login, version#3…
    (re.compile(rf"(?i)\b({_PREFIXES})(?=[:#])"), "\\1\u200b"),
    # {{macro}} and [[Wiki page]] links.
    # (Markdown escapes `\[`, which Redmine's wiki-link parser never sees: it reads the HTML.)
    (re.compile(r"\{(?=\\?\{)"), "{\u200b"),
    (re.compile(r"\[(?=\\?\[)"), "[\u200b"),
]


def neutralise(text: str) -> str:
    """Break Redmine's mentions, issue/revision/wiki links and macros; leave URLs intact.

    A zero-width space splits each pattern, so the reader sees the same text but Redmine
    neither notifies anyone nor links or runs anything.
    """
    out: list[str] = []
    pos = 0
    for m in _URL.finditer(text):
        out.append(_neutralise_plain(text[pos : m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(_neutralise_plain(text[pos:]))
    return "".join(out)


def _neutralise_plain(text: str) -> str:
    for rx, repl in _NEUTRALISE:
        text = rx.sub(repl, text)
    return text


def drop_mermaid(text: str) -> str:
    """Remove ```mermaid blocks (Redmine shows them as code) and headings left empty."""
    out: list[str] = []
    lines = iter(text.split("\n"))
    for line in lines:
        if line.strip() == "```mermaid":
            for inner in lines:
                if inner.strip() == "```":
                    break
            while out and not out[-1].strip():
                out.pop()
            if out and out[-1].startswith("#"):
                out.pop()
            continue
        out.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out))


def limit_size(text: str, limit: int = MAX_NOTE_BYTES) -> str:
    """Cut `text` at a line boundary so it fits a journal note, saying so at the end."""
    if len(text.encode()) <= limit:
        return text
    tail = "\n\n(truncated: the full report is too long for a Redmine note)\n"
    budget = limit - len(tail.encode())
    cut = text.encode()[:budget].decode(errors="ignore")
    if "\n" in cut:
        cut = cut[: cut.rindex("\n")]
    return cut + tail


def _same_text(a: Any, b: str) -> bool:
    def norm(s: str) -> str:
        return "\n".join(line.rstrip() for line in s.replace("\r\n", "\n").split("\n")).strip()

    return isinstance(a, str) and norm(a) == norm(b)


# -- Textile -------------------------------------------------------------------------------

# Everything but letters, digits, spaces and a few harmless marks becomes a numeric entity:
# Textile then sees no markup, Redmine no link, macro or mention (`&#64;x` is not `@x`),
# and the reader sees the same characters.
_TEXTILE_SAFE = re.compile(r"[^\w\s.,/?'\u0080-\uffff]|_")
_SAFE_URL = re.compile(r"https?://[^\s\"<>|]+\Z")
MAX_ROWS = 25


def tx(value: Any) -> str:
    """Escape one value for Textile: one line, every markup character as an entity."""
    from sync.render.neutralise import plain

    return _TEXTILE_SAFE.sub(lambda m: f"&#{ord(m.group(0))};", plain(str(value)))


def _link(text: str, url: str | None) -> str:
    from sync.render.neutralise import safe_url

    href = safe_url(url)
    if href and _SAFE_URL.match(href):
        return f'"{tx(text)}":{href}'
    return tx(text)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["|" + "".join(f"_. {h} |" for h in head)]
    lines += ["|" + "".join(f" {c} |" for c in row) for row in rows]
    return [*lines, ""]


def to_textile(report: Report) -> str:
    """Render `report` in Redmine's Textile, every value escaped (DESIGN §7 sections)."""
    from sync import i18n

    lang, zone = report.language, report.zone

    def t(key: str, **values: Any) -> str:
        return tx(i18n.t(lang, key, **values))

    def day(value: date | None) -> str:
        return tx(i18n.fmt_date(lang, value)) if value else "&#8211;"

    title = "closing_title" if report.closing is not None else "title"
    out = [f"h2. {t(title)}: {tx(report.project.name)}", ""]
    head = []
    if report.project.client:
        head.append(f"*{t('client')}:* {tx(report.project.client)}")
    head.append(f"*{t('period')}:* {day(report.period.start)} &#8211; {day(report.period.end)}")
    if report.target_date:
        head.append(f"*{t('target_date')}:* {day(report.target_date)}")
    generated = i18n.fmt_datetime(lang, report.generated_at, zone)
    head.append(f"*{t('generated')}:* {tx(generated)}")
    out += ["\n".join(head), ""]  # Redmine's Textile keeps line breaks within a paragraph

    health = f"*{tx(i18n.health_word(lang, report.health.status))}*"
    if report.health.overridden:
        health += f" ({t('overridden')})"
    out += [f"h3. {t('health')}", "", health, ""]
    out += [f"* {tx(r)}" for r in report.health.reasons] + ([""] if report.health.reasons else [])

    p = report.progress
    out += [f"h3. {t('progress')}", ""]
    out.append(
        t("progress_line", done=p.done, live=p.total - p.cancelled,
          percent=i18n.fmt_percent(p.percent_done), in_progress=p.in_progress, todo=p.todo,
          cancelled=p.cancelled)
    )  # fmt: skip
    if p.estimate_total:
        out.append(
            t("progress_estimate", done=i18n.fmt_number(p.estimate_done),
              total=i18n.fmt_number(p.estimate_total),
              percent=i18n.fmt_percent(p.percent_done_by_estimate))
        )  # fmt: skip
    if p.delta is not None:
        out.append(
            t("progress_delta", since=i18n.fmt_date(lang, p.delta.since), done=p.delta.done,
              total=i18n.fmt_signed(p.delta.total),
              percent=i18n.fmt_signed(p.delta.percent_done))
        )  # fmt: skip
    out.append("")

    sections = [
        ("completed", report.completed, "col_completed"),
        ("in_progress", report.in_progress, None),
        ("upcoming", report.upcoming, None),
        ("overdue", report.overdue, "col_days_overdue"),
        ("blocked", report.blocked, "col_days_blocked"),
        ("needs_client_input", report.needs_client_input, None),
        ("change_requests", report.change_requests, None),
    ]
    for key, refs, extra in sections:
        out += [f"h3. {t(key)}", ""]
        if not refs:
            out += [t("none"), ""]
            continue
        cols = ["col_key", "col_title", "col_status", "col_due", "col_assignee"]
        rows = []
        for ref in refs[:MAX_ROWS]:
            row = [_link(ref.key, ref.url), tx(ref.title), tx(ref.status), day(ref.due_date),
                   tx(ref.assignee or "")]  # fmt: skip
            if extra == "col_completed":
                when = ref.completed_at.astimezone(zone).date() if ref.completed_at else None
                row.append(day(when))
            elif extra == "col_days_overdue":
                row.append(tx(ref.days_overdue if ref.days_overdue is not None else ""))
            elif extra == "col_days_blocked":
                row.append(tx(ref.blocked_days if ref.blocked_days is not None else ""))
            rows.append(row)
        out += _table([t(c) for c in cols + ([extra] if extra else [])], rows)
        if len(refs) > MAX_ROWS:
            more = t("more", count=len(refs) - MAX_ROWS)
            out += [f"{more} ({_link(i18n.t(lang, 'more_link'), report.more_url)})"
                    if report.more_url else more, ""]  # fmt: skip

    if report.milestones:
        out += [f"h3. {t('milestones')}", ""]
        rows = [
            [_link(m.name, m.url), day(m.due_date), tx(i18n.fmt_percent(m.percent_done)),
             day(m.forecast), tx(i18n.t(lang, f"state_{m.state}"))]
            for m in report.milestones[:MAX_ROWS]
        ]  # fmt: skip
        out += _table([t(c) for c in ("col_milestone", "col_due", "col_percent",
                                      "col_forecast", "col_state")], rows)  # fmt: skip

    f = report.forecast
    out += [f"h3. {t('forecast')}", ""]
    if f.p50 is not None:
        out.append(
            t("forecast_line", rate=i18n.fmt_number(f.throughput_per_day),
              start=i18n.fmt_date(lang, f.window_start), end=i18n.fmt_date(lang, f.window_end),
              remaining=f.remaining, p50=i18n.fmt_date(lang, f.p50),
              p85=i18n.fmt_date(lang, f.p85), p95=i18n.fmt_date(lang, f.p95))
        )  # fmt: skip
        if f.target_date is not None and f.probability_by_target is not None:
            out += ["", t("forecast_target", target=i18n.fmt_date(lang, f.target_date),
                          probability=i18n.fmt_percent(100 * f.probability_by_target))]  # fmt: skip
    else:
        out.append(t("forecast_none", reason=f.reason or ""))
    out.append("")

    sc = report.scope_change
    out += [f"h3. {t('scope_change')}", ""]
    if sc.baseline is not None:
        out.append(
            t("scope_line", baseline=i18n.fmt_date(lang, sc.baseline), added=len(sc.added),
              estimate_added=i18n.fmt_number(sc.estimate_added), removed=len(sc.removed),
              estimate_removed=i18n.fmt_number(sc.estimate_removed))
        )  # fmt: skip
    else:
        out.append(t("scope_none"))
    out.append("")

    ch = report.changes_since_last_report
    out += [f"h3. {t('changes')}", ""]
    out.append(
        t("changes_line", since=i18n.fmt_date(lang, ch.since), completed=len(ch.completed),
          added=len(ch.added), reopened=len(ch.reopened), cancelled=len(ch.cancelled),
          removed=len(ch.removed), done_then=ch.progress_then.done,
          total_then=ch.progress_then.total)
    )  # fmt: skip
    out.append("")

    if report.closing is not None:
        c = report.closing
        out += [f"h3. {t('closing')}", ""]
        out.append(t("closing_outcome", done=c.done, cancelled=c.cancelled, open=c.open))
        if c.throughput_per_week is not None:
            out += ["", t("closing_throughput", rate=i18n.fmt_number(c.throughput_per_week))]
        out.append("")
        if c.lessons_learned:
            out += [f"h3. {t('lessons')}", ""]
            out += [tx(line) for line in c.lessons_learned.splitlines() if line.strip()]
            out.append("")

    if report.sources:
        out += [f"h3. {t('sources')}", ""]
        rows = [
            [tx(s.name), tx(s.kind), tx(i18n.fmt_datetime(lang, s.last_synced_at, zone)),
             tx(s.items)]
            for s in report.sources
        ]  # fmt: skip
        out += _table([t(c) for c in ("col_source", "col_kind", "col_last_synced",
                                      "col_items")], rows)  # fmt: skip
    out += [f"_{t('footer')}_", ""]
    return "\n".join(out)


# -- small parsers ------------------------------------------------------------------------


def _utc_z(value: datetime) -> str:
    """A Redmine filter timestamp: UTC, whole seconds, `Z` (a bare date is read in the
    API user's time zone, and an offset-less time in the server's)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_dt(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parse_date(value: Any) -> date | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _name(ref: Any) -> str | None:
    if isinstance(ref, dict) and ref.get("name") is not None:
        return str(ref["name"])
    return None


def _ref(ref: Any) -> str | None:
    if isinstance(ref, dict) and ref.get("id") is not None:
        return str(ref["id"])
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
