"""A fake Jira (Cloud or Data Center) on 127.0.0.1, built from ../shared/research/jira-api.md §11.

What it models, because peers got these wrong (jira-api.md §10):
- Cloud: `GET|POST /rest/api/3/search/jql` with opaque `nextPageToken` paging (the key is
  absent on the last page, `isLast: true`, no `total`, `startAt` ignored), bounded JQL only,
  `fields` defaulting to `id`, at most 100 issues a page with fields and 5,000 id-only; the
  removed `/rest/api/{2,3}/search` answers 410 with Atlassian's message.
- Data Center: `/rest/api/2/search` with `startAt`/`total` offset paging over live data, and
  wiki-markup comment bodies.
- JQL dates: epoch-millisecond literals, and `"yyyy-MM-dd HH:mm"` read in the API user's own
  timezone (`/myself` tells which), minute precision.
- Paging while data changes: `FakeJira.at_search(n, fn)` runs `fn` just before the n-th
  search page is served. Tokens are keyset cursors ("search after" the last issue's sort
  values) by default; `token_mode="offset"` makes them plain offsets, the worst case.
- `/changelog/bulkfetch` (≤1,000 issues, token paged, oldest first), the truncated embedded
  changelog, versions (paged), agile sprints (≤50 a page, no `total`), fields, statuses,
  comments (ADF validated on Cloud, 32,767-character cap), issue and comment properties.
- Optional indexing lag: issues updated in the last `lag_ms` are invisible to search.
- Auth: Basic `email:token` or `Bearer token`, else 401. The comment cap is applied to the
  ADF JSON, the stricter reading of an undocumented rule (§8 ⚠).

`make_issues(n, seed)` generates a project deterministically; `python -m tests.fakes.jira
--issues 100000` serves one from its own process (for the benchmark), printing its URL and
credentials as one JSON line.

Issues are kept with their dates as epoch milliseconds and serialised per page, and query
results are cached per (JQL, data version), so 100,000 generated issues are cheap to hold
and to page through.
"""

from __future__ import annotations

import base64
import bisect
import gc
import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tests.fakes.server import FakeServer, Reply, Request

CLOUD_REST = "/rest/api/3"
DC_REST = "/rest/api/2"
REMOVED_SEARCH = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full"
    " migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
TOO_LONG = "The entered text is too long. It exceeds the allowed limit of 32767 characters."
COMMENT_LIMIT = 32767
PROPERTY_LIMIT = 32768

CATEGORIES = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {
        "id": 4,
        "key": "indeterminate",
        "colorName": "yellow",
        "name": "In Progress",
    },
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}
# id -> (name, category key); names are what a site shows and may be localised.
STATUSES = {
    "10000": ("To Do", "new"),
    "3": ("In Progress", "indeterminate"),
    "10001": ("In Review", "indeterminate"),
    "10002": ("Done", "done"),
    "10003": ("Erledigt", "done"),  # a localised done status: map on the category, not the name
}
WORKFLOW = ["10000", "3", "10001", "10002"]
RESOLUTIONS = {"Done": "10000", "Won't Do": "10001", "Duplicate": "10002"}
ISSUE_TYPES = {
    "Epic": ("10000", 1, False),
    "Story": ("10001", 0, False),
    "Task": ("10002", 0, False),
    "Bug": ("10004", 0, False),
    "Sub-task": ("10003", -1, True),
}
PRIORITIES = {"High": "2", "Medium": "3", "Low": "4"}
USERS = [
    ("5b10a2844c20165700ede21g", "mia", "Mia Krystof"),
    ("5b10ac8d82e05b22cc7d4ef5", "emma", "Emma Richards"),
    ("5b109f2e9729b51b54dc274d", "li", "Li Wei"),
]
LABELS = ["frontend", "backend", "client-x", "internal", "change-request", "needs-client"]

# Custom field ids per flavour; numbering is per site in real Jira, which is why the
# connector finds them by schema type (tests also rename them).
CLOUD_FIELDS = {
    "story_points": "customfield_10016",
    "sprint": "customfield_10020",
    "start_date": "customfield_10015",
    "flagged": "customfield_10021",
    "rank": "customfield_10019",
    "epic_link": None,
}
DC_FIELDS = {
    "story_points": "customfield_10106",
    "sprint": "customfield_10104",
    "start_date": "customfield_10300",
    "flagged": "customfield_10200",
    "rank": "customfield_10105",
    "epic_link": "customfield_10101",
}
SYSTEM_FIELDS = (
    "summary", "status", "issuetype", "priority", "assignee", "labels", "parent", "duedate",
    "created", "updated", "resolutiondate", "resolution", "fixVersions", "description",
    "statuscategorychangedate", "project",
)  # fmt: skip
DATE_FIELDS = ("created", "updated", "resolutiondate", "statuscategorychangedate")


def jira_time(ms: int) -> str:
    """Format epoch milliseconds like Jira: `2025-01-09T16:20:31.512+0000`."""
    seconds, millis = divmod(ms, 1000)
    t = time.gmtime(seconds)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03d+0000" % (*t[:6], millis)  # noqa: UP031


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class FakeIssue:
    """One issue: JSON-ready static fields plus dates (epoch ms) rendered when served."""

    id: int
    key: str
    project: str
    number: int
    created_ms: int
    updated_ms: int
    fields: dict[str, Any]
    status_id: str
    resolved_ms: int | None = None
    category_changed_ms: int | None = None
    # (created_ms, items) oldest first; items are changelog ChangeDetails dicts.
    history: list[tuple[int, list[dict[str, Any]]]] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)

    def field_value(self, name: str) -> Any:
        if name == "created":
            return jira_time(self.created_ms)
        if name == "updated":
            return jira_time(self.updated_ms)
        if name == "resolutiondate":
            return None if self.resolved_ms is None else jira_time(self.resolved_ms)
        if name == "statuscategorychangedate":
            return jira_time(self.category_changed_ms or self.created_ms)
        return self.fields.get(name)


# -- generated data ------------------------------------------------------------------------


def status_json(status_id: str, base: str = "https://fake.atlassian.net") -> dict[str, Any]:
    name, cat = STATUSES[status_id]
    # Lean but schema-valid objects: the fake serves 100,000 issues to the benchmark.
    return {"self": f"{base}/rest/api/3/status/{status_id}", "name": name, "id": status_id,
            "statusCategory": dict(CATEGORIES[cat])}  # fmt: skip


def user_json(index: int, flavor: str, base: str = "https://fake.atlassian.net") -> dict[str, Any]:
    account, name, display = USERS[index]
    if flavor == "cloud":
        return {"accountId": account, "accountType": "atlassian", "displayName": display,
                "active": True}  # fmt: skip
    return {"self": f"{base}/rest/api/2/user?username={name}", "name": name,
            "key": f"JIRAUSER1010{index}", "displayName": display,
            "emailAddress": f"{name}@example.com", "active": True, "timeZone": "Europe/Berlin"}  # fmt: skip


def issuetype_json(name: str) -> dict[str, Any]:
    type_id, level, subtask = ISSUE_TYPES[name]
    return {"id": type_id, "name": name, "subtask": subtask, "hierarchyLevel": level}


def version_json(vid: int, name: str, *, released: bool, release: str | None,
                 start: str | None = None, archived: bool = False, project_id: int = 10000) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {"self": f"https://fake.atlassian.net/rest/api/3/version/{vid}",
                           "id": str(vid), "name": name, "archived": archived,
                           "released": released, "projectId": project_id}  # fmt: skip
    if release:
        out["releaseDate"] = release
    if start:
        out["startDate"] = start
    return out


def sprint_json(sid: int, name: str, state: str, start: str | None, end: str | None,
                board: int = 5) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {"id": sid, "self": f"https://fake.atlassian.net/rest/agile/1.0/sprint/{sid}",
                           "state": state, "name": name, "originBoardId": board, "goal": ""}  # fmt: skip
    if start:
        out["startDate"] = start
    if end:
        out["endDate"] = end
    if state == "closed" and end:
        out["completeDate"] = end
    return out


DEFAULT_VERSIONS = [
    version_json(10010, "1.0", released=True, release="2026-09-30", start="2026-09-01"),
    version_json(10011, "1.1", released=False, release="2026-12-15", start="2026-10-01"),
    version_json(10012, "2.0", released=False, release=None),
]
DEFAULT_SPRINTS = [
    sprint_json(36, "Sprint 3", "closed", "2026-10-05T09:00:00.000Z", "2026-10-19T09:00:00.000Z"),
    sprint_json(37, "Sprint 4", "active", "2026-10-19T09:00:00.000Z", "2026-11-02T09:00:00.000Z"),
    sprint_json(38, "Sprint 5", "future", None, None),
]


def dc_sprint_string(s: dict[str, Any]) -> str:
    """The old Server/DC sprint value: `com.atlassian.greenhopper.service.sprint.Sprint@…[…]`."""
    parts = [f"id={s['id']}", f"rapidViewId={s['originBoardId']}", f"state={s['state'].upper()}",
             f"name={s['name']}", f"startDate={s.get('startDate', '<null>')}",
             f"endDate={s.get('endDate', '<null>')}", f"completeDate={s.get('completeDate', '<null>')}",
             f"sequence={s['id']}", "goal="]  # fmt: skip
    return f"com.atlassian.greenhopper.service.sprint.Sprint@1a2b3c[{','.join(parts)}]"


def _status_item(old: str | None, new: str) -> dict[str, Any]:
    item = {"field": "status", "fieldtype": "jira", "fieldId": "status",
            "to": new, "toString": STATUSES[new][0]}  # fmt: skip
    if old is not None:
        item.update({"from": old, "fromString": STATUSES[old][0]})
    return item


def _resolution_item(name: str | None) -> dict[str, Any]:
    # An empty side is left out (ChangeDetails declares plain strings, not nullable ones).
    item = {"field": "resolution", "fieldtype": "jira", "fieldId": "resolution"}
    if name is not None:
        item.update({"to": RESOLUTIONS[name], "toString": name})
    return item


def make_issues(n: int, seed: int = 0, **kw: Any) -> list[FakeIssue]:
    """Generate `n` issues of a project deterministically (see `_make_issues` for `kw`).

    About 1 in 25 is an epic; the rest hang under epics, have 0–4 status changes in their
    history, and carry story points, sprints, fix versions, labels, flags and due dates.
    """
    paused = gc.isenabled()
    gc.disable()  # a million new containers would trigger full collections for nothing
    try:
        return _make_issues(n, seed, **kw)
    finally:
        if paused:
            gc.enable()


def _make_issues(
    n: int,
    seed: int = 0,
    *,
    project: str = "ACME",
    flavor: str = "cloud",
    first_id: int = 10000,
    end_ms: int | None = None,
    days: float = 120,
    custom: dict[str, str | None] | None = None,
) -> list[FakeIssue]:
    """Issues of `project`, updated over the `days` before `end_ms` (default: an hour ago)."""
    rng = random.Random(seed)
    end = end_ms if end_ms is not None else now_ms() - 3_600_000
    span = int(days * 86_400_000)
    ids = dict(CLOUD_FIELDS if flavor == "cloud" else DC_FIELDS)
    ids.update(custom or {})
    statuses = {s: status_json(s) for s in STATUSES}
    users = [user_json(i, flavor) for i in range(len(USERS))]
    types = {t: issuetype_json(t) for t in ISSUE_TYPES}
    priorities = {p: {"id": i, "name": p} for p, i in PRIORITIES.items()}
    resolutions = {r: {"self": f"https://fake.atlassian.net/rest/api/3/resolution/{i}", "id": i,
                       "name": r, "description": ""} for r, i in RESOLUTIONS.items()}  # fmt: skip
    flagged = [{"self": "https://fake.atlassian.net/rest/api/3/customFieldOption/10019",
                "id": "10019", "value": "Impediment"}]  # fmt: skip
    # Sprint field values (Cloud) as Jira puts them on issues: boardId, no self link.
    in_field = [
        {
            k: v
            for k, v in {**s, "boardId": s["originBoardId"]}.items()
            if k not in ("self", "originBoardId")
        }
        for s in DEFAULT_SPRINTS
    ]
    versions = [{k: v for k, v in ver.items() if k != "self"} for ver in DEFAULT_VERSIONS]
    sprint_values = (
        [[s] for s in in_field] + [[in_field[0], in_field[1]]]
        if flavor == "cloud"
        else [[dc_sprint_string(s)] for s in DEFAULT_SPRINTS]
    )
    # rng.random() only: choice/randint cost several times more, and this runs 100,000 times.
    r = rng.random
    kinds = ("Story", "Task", "Bug")
    steps_choices = (0, 0, 1, 2, 3, 3)
    words = ("checkout", "search", "login", "report")
    prio_choices = ("High", "Medium", "Medium", "Low")
    points = (1.0, 2.0, 3.0, 5.0, 8.0, None)
    label_sets = [
        [],
        [],
        *([x] for x in LABELS),
        *([a, b] for a in LABELS for b in LABELS if a < b),
    ]
    sp_id, sprint_id, start_id, flag_id = (
        ids.get("story_points"), ids.get("sprint"), ids.get("start_date"), ids.get("flagged")
    )  # fmt: skip
    epic_link = ids.get("epic_link")
    project_json = {"id": "10000", "key": project, "name": project.title()}
    epics: list[FakeIssue] = []
    out: list[FakeIssue] = []
    for i in range(n):
        number = i + 1
        key = f"{project}-{number}"
        created = end - span + int(span * i / max(n, 1) * 0.9)
        updated = created + int(r() * max(1, end - created))
        kind = "Epic" if (i % 25 == 0) else kinds[int(r() * 3)]
        path = WORKFLOW[: steps_choices[int(r() * 6)] + 1]
        status_id = path[-1]
        hist: list[tuple[int, list[dict[str, Any]]]] = []
        for step in range(1, len(path)):
            at = created + (updated - created) * step // len(path)
            hist.append((at, [_status_item(path[step - 1], path[step])]))
        resolution = None
        resolved = None
        if status_id == "10002":
            resolution = "Won't Do" if r() < 0.1 else "Done"
            resolved = hist[-1][0]
            hist[-1][1].append(_resolution_item(resolution))
        due = r()
        fields: dict[str, Any] = {
            "summary": f"{kind} {number}: make the {words[int(r() * 4)]} faster",
            "status": statuses[status_id],
            "issuetype": types[kind],
            "priority": priorities[prio_choices[int(r() * 4)]],
            "assignee": users[int(r() * len(users))] if r() < 0.8 else None,
            "labels": list(label_sets[int(r() * len(label_sets))]) if r() < 0.5 else [],
            "duedate": f"2026-{9 + int(due * 40) % 4:02d}-{1 + int(due * 1000) % 28:02d}"
            if due < 0.3
            else None,
            "resolution": resolutions[resolution] if resolution else None,
            "fixVersions": [versions[int(r() * 3)]] if r() < 0.7 else [],
            "description": None,
            "project": project_json,
        }
        if sp_id:
            fields[sp_id] = points[int(r() * 6)] if kind != "Epic" else None
        if sprint_id:
            fields[sprint_id] = sprint_values[int(r() * len(sprint_values))] if r() < 0.6 else None
        if start_id:
            fields[start_id] = "2026-09-15" if r() < 0.2 else None
        if flag_id:
            fields[flag_id] = flagged if r() < 0.05 else None
        if epics and kind != "Epic":
            epic = epics[int(r() * len(epics))]
            if flavor == "cloud":
                fields["parent"] = {"id": str(epic.id), "key": epic.key,
                                    "fields": {"summary": epic.fields["summary"],
                                               "issuetype": epic.fields["issuetype"]}}  # fmt: skip
            elif epic_link:
                fields[epic_link] = epic.key
        issue = FakeIssue(
            id=first_id + i, key=key, project=project, number=number, created_ms=created,
            updated_ms=updated, fields=fields, status_id=status_id, resolved_ms=resolved,
            category_changed_ms=hist[-1][0] if hist else created, history=hist,
        )  # fmt: skip
        if kind == "Epic":
            epics.append(issue)
        out.append(issue)
    return out


# -- JQL (the subset pmsync and the tests send) --------------------------------------------


class JqlError(ValueError):
    pass


_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|(?P<op>>=|<=|!=|=|>|<|~)'
    r"|(?P<punct>[(),])|(?P<word>[^\s(),=<>!~\"']+))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise JqlError(f"Error in the JQL Query: unexpected character at position {pos}.")
        pos = m.end()
        kind = m.lastgroup or "word"
        value = m.group(kind)
        if kind == "str":
            value = value[1:-1].replace('\\"', '"').replace("\\'", "'")
        out.append((kind, value))
    return out


@dataclass
class Query:
    predicate: Callable[[FakeIssue], bool] | None
    order: list[tuple[str, bool]]  # (field, descending)


class _Parser:
    def __init__(
        self, text: str, zone: ZoneInfo, keys: dict[str, FakeIssue], epoch_dates: bool = True
    ) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.zone = zone
        self.keys = keys
        self.epoch_dates = epoch_dates

    def peek(self, upper: bool = True) -> str | None:
        if self.i >= len(self.toks):
            return None
        v = self.toks[self.i][1]
        return v.upper() if upper and self.toks[self.i][0] == "word" else v

    def take(self) -> tuple[str, str]:
        if self.i >= len(self.toks):
            raise JqlError("Error in the JQL Query: the query ended unexpectedly.")
        self.i += 1
        return self.toks[self.i - 1]

    def parse(self) -> Query:
        pred = None
        if self.peek() not in (None, "ORDER"):
            pred = self.expr()
        order: list[tuple[str, bool]] = []
        if self.peek() == "ORDER":
            self.take()
            if self.peek() != "BY":
                raise JqlError("Error in the JQL Query: expecting 'BY' after 'ORDER'.")
            self.take()
            while True:
                name = self.take()[1].lower()
                if name not in ("updated", "created", "key", "issuekey", "id", "rank"):
                    raise JqlError(f"Not able to sort using field '{name}'.")
                desc = False
                if self.peek() in ("ASC", "DESC"):
                    desc = self.take()[1].upper() == "DESC"
                order.append(("key" if name in ("issuekey", "id") else name, desc))
                if self.peek() != ",":
                    break
                self.take()
        if self.i != len(self.toks):
            raise JqlError(f"Error in the JQL Query: unexpected '{self.peek(False)}'.")
        if len(order) > 7:
            raise JqlError("The ORDER BY clause may have at most 7 fields.")
        return Query(pred, order)

    def expr(self) -> Callable[[FakeIssue], bool]:
        left = self.term()
        while self.peek() == "OR":
            self.take()
            right = self.term()
            left = (lambda a, b: lambda x: a(x) or b(x))(left, right)
        return left

    def term(self) -> Callable[[FakeIssue], bool]:
        left = self.factor()
        while self.peek() == "AND":
            self.take()
            right = self.factor()
            left = (lambda a, b: lambda x: a(x) and b(x))(left, right)
        return left

    def factor(self) -> Callable[[FakeIssue], bool]:
        if self.peek() == "NOT":
            self.take()
            inner = self.factor()
            return lambda x: not inner(x)
        if self.peek() == "(":
            self.take()
            inner = self.expr()
            if self.peek() != ")":
                raise JqlError("Error in the JQL Query: expecting ')'.")
            self.take()
            return inner
        return self.clause()

    def values(self) -> list[str]:
        if self.peek() != "(":
            raise JqlError("Error in the JQL Query: expecting '(' after IN.")
        self.take()
        out: list[str] = []
        while True:
            out.append(self.take()[1])
            sep = self.take()[1]
            if sep == ")":
                return out
            if sep != ",":
                raise JqlError("Error in the JQL Query: expecting ',' or ')'.")

    def clause(self) -> Callable[[FakeIssue], bool]:
        name = self.take()[1].lower()
        op = self.take()[1].upper()
        negate = False
        if op == "NOT":
            negate, op = True, self.take()[1].upper()
        if op == "IN":
            values = self.values()
        elif op in ("=", "!=", ">=", "<=", ">", "<"):
            values = [self.take()[1]]
        else:
            raise JqlError(f"Error in the JQL Query: unsupported operator '{op}'.")
        if name == "project":
            wanted = {v.upper() for v in values}
            test: Callable[[FakeIssue], bool] = lambda x: x.project.upper() in wanted  # noqa: E731
            return _negated(test, negate or op == "!=")
        if name in ("key", "issuekey", "id", "issue"):
            if op in ("=", "!=", "IN"):
                wanted = {v.upper() for v in values}
                test = lambda x: x.key.upper() in wanted or str(x.id) in wanted  # noqa: E731
                return _negated(test, negate or op == "!=")
            ref = self.keys.get(values[0].upper())
            bound = ref.id if ref else int(values[0])
            return _compare(lambda x: x.id, op, bound)
        if name in ("updated", "created"):
            if len(values) != 1 or op in ("IN", "!="):
                raise JqlError(f"Operator '{op}' is not supported for the '{name}' field.")
            ms = self._date(values[0], name)
            getter = (lambda x: x.updated_ms) if name == "updated" else (lambda x: x.created_ms)
            return _compare(getter, op, ms)
        if name in ("statuscategory", "status"):
            wanted = {v.casefold() for v in values}
            if name == "status":
                test = lambda x: STATUSES[x.status_id][0].casefold() in wanted  # noqa: E731
            else:
                test = lambda x: (STATUSES[x.status_id][1] in wanted  # noqa: E731
                                  or CATEGORIES[STATUSES[x.status_id][1]]["name"].casefold() in wanted)  # fmt: skip
            return _negated(test, negate or op == "!=")
        if name in ("issuetype", "type"):
            wanted = {v.casefold() for v in values}
            test = lambda x: str(x.fields["issuetype"]["name"]).casefold() in wanted  # noqa: E731
            return _negated(test, negate or op == "!=")
        if name == "labels":
            wanted = set(values)
            test = lambda x: bool(wanted & set(x.fields.get("labels") or ()))  # noqa: E731
            return _negated(test, negate or op == "!=")
        raise JqlError(f"Field '{name}' does not exist or you do not have permission to view it.")

    def _date(self, text: str, name: str) -> int:
        if re.fullmatch(r"-?\d{9,}", text) and self.epoch_dates:
            return int(text)  # epoch milliseconds
        for fmt in ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
            try:
                local = datetime.strptime(text, fmt)
            except ValueError:
                continue
            # jira-api.md §6: read in the API user's own timezone, minute precision.
            return int(local.replace(tzinfo=self.zone).timestamp() * 1000)
        raise JqlError(
            f"Date value '{text}' for field '{name}' is invalid. Valid formats include:"
            " 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period"
            " format e.g. '-5d', '4w 2d'."
        )


def _negated(test: Callable[[FakeIssue], bool], negate: bool) -> Callable[[FakeIssue], bool]:
    return (lambda x: not test(x)) if negate else test


def _compare(get: Callable[[FakeIssue], int], op: str, bound: int) -> Callable[[FakeIssue], bool]:
    return {
        ">=": lambda x: get(x) >= bound,
        ">": lambda x: get(x) > bound,
        "<=": lambda x: get(x) <= bound,
        "<": lambda x: get(x) < bound,
        "=": lambda x: get(x) == bound,
    }[op]


def _project_code(project: str) -> int:
    # An integer with the same order as the (uppercase ASCII) project key, so sort keys are ints.
    return int.from_bytes(project.upper().encode()[:12].ljust(12, b"\0"), "big")


def sort_key(issue: FakeIssue, order: list[tuple[str, bool]]) -> tuple[int, ...]:
    parts: list[int] = []
    for name, desc in order:
        if name == "updated":
            vals = (issue.updated_ms,)
        elif name == "created":
            vals = (issue.created_ms,)
        elif name == "rank":
            vals = (issue.id,)
        else:
            vals = (_project_code(issue.project), issue.number)
        parts.extend(-v for v in vals) if desc else parts.extend(vals)
    parts.append(issue.id)
    return tuple(parts)


# -- the server ----------------------------------------------------------------------------


def _error(status: int, *messages: str, errors: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"errorMessages": list(messages), "errors": errors or {}})


class FakeJira(FakeServer):
    """Start with `with FakeJira(issues=make_issues(500)) as jira:`; point a source at `jira.url`."""

    def __init__(
        self,
        issues: Iterable[FakeIssue] = (),
        *,
        flavor: str = "cloud",
        user_timezone: str = "UTC",
        email: str = "pm@example.com",
        token: str = "jira-test-token-0000",  # noqa: S107
        token_mode: str = "keyset",  # noqa: S107
        page_cap: int = 100,
        id_page_cap: int = 5000,
        dc_page_cap: int = 1000,
        embedded_changelog_cap: int = 40,
        result_window: int | None = None,
        lag_ms: int = 0,
        versions: list[dict[str, Any]] | None = None,
        sprints: list[dict[str, Any]] | None = None,
        custom_fields: dict[str, str | None] | None = None,
        boards: Iterable[int] = (5,),
        record: bool = True,
    ) -> None:
        super().__init__()
        assert flavor in ("cloud", "datacenter")
        self.flavor = flavor
        self.rest = CLOUD_REST if flavor == "cloud" else DC_REST
        self.user_timezone = user_timezone
        self.email, self.token = email, token
        self.token_mode = token_mode
        self.page_cap, self.id_page_cap, self.dc_page_cap = page_cap, id_page_cap, dc_page_cap
        self.embedded_changelog_cap = embedded_changelog_cap
        self.result_window = result_window
        self.lag_ms = lag_ms
        # False: refuse epoch-millisecond date literals (a Jira that only reads wall times).
        self.epoch_dates = True
        self.versions = {"ACME": list(DEFAULT_VERSIONS if versions is None else versions)}
        self.sprints = {b: list(DEFAULT_SPRINTS if sprints is None else sprints) for b in boards}
        ids = dict(CLOUD_FIELDS if flavor == "cloud" else DC_FIELDS)
        ids.update(custom_fields or {})
        self.custom_ids = ids
        self.record = record
        self.replies: list[tuple[Request, Reply]] = []
        self.forbid_properties = False
        self.comment_size_limit = COMMENT_LIMIT
        self.data_lock = threading.RLock()
        self._base = ""
        self._issues: dict[int, FakeIssue] = {}
        self._keys: dict[str, FakeIssue] = {}
        self._version = 0
        self._cache: dict[tuple[Any, ...], tuple[list[FakeIssue], list[tuple[int, ...]]]] = {}
        self._hooks: dict[int, list[Callable[[], None]]] = {}
        self.search_pages = 0
        self.comments: dict[str, list[dict[str, Any]]] = {}
        self.comment_properties: dict[str, dict[str, Any]] = {}
        self._next_comment = 10000
        self._next_id = 10000
        for issue in issues:
            self._put(issue)
        self._routes()

    def start(self) -> FakeJira:
        super().start()
        self._base = self.url
        # One segment per answer: without TCP_NODELAY the body waits for a delayed ACK (~40 ms).
        assert self._httpd is not None
        self._httpd.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
        return self

    # -- data -----------------------------------------------------------------------------

    def _put(self, issue: FakeIssue) -> None:
        self._issues[issue.id] = issue
        self._keys[issue.key.upper()] = issue
        self._next_id = max(self._next_id, issue.id + 1)
        self._version += 1

    def issue(self, key: str) -> FakeIssue:
        return self._keys[key.upper()]

    @property
    def issues(self) -> list[FakeIssue]:
        return list(self._issues.values())

    def add(self, summary: str = "New issue", *, project: str = "ACME", at_ms: int | None = None,
            kind: str = "Task", status_id: str = "10000", **fields: Any) -> FakeIssue:  # fmt: skip
        """Create an issue now (or at `at_ms`)."""
        with self.data_lock:
            number = 1 + max(
                (i.number for i in self._issues.values() if i.project == project), default=0
            )
            at = now_ms() if at_ms is None else at_ms
            issue = FakeIssue(
                id=self._next_id, key=f"{project}-{number}", project=project, number=number,
                created_ms=at, updated_ms=at, status_id=status_id,
                fields={"summary": summary, "status": status_json(status_id),
                        "issuetype": issuetype_json(kind), "priority": None, "assignee": None,
                        "labels": [], "duedate": None, "resolution": None, "fixVersions": [],
                        "description": None, "project": {"id": "10000", "key": project}, **fields},
            )  # fmt: skip
            self._put(issue)
            return issue

    def update(self, key: str, *, at_ms: int | None = None, status_id: str | None = None,
               resolution: str | None = None, **fields: Any) -> FakeIssue:  # fmt: skip
        """Change an issue now (or at `at_ms`): fields, and a status transition with history."""
        with self.data_lock:
            issue = self.issue(key)
            at = now_ms() if at_ms is None else at_ms
            issue.fields.update(fields)
            if status_id is not None and status_id != issue.status_id:
                items = [_status_item(issue.status_id, status_id)]
                if STATUSES[issue.status_id][1] != STATUSES[status_id][1]:
                    issue.category_changed_ms = at
                if STATUSES[status_id][1] == "done":
                    res = resolution or "Done"
                    items.append(_resolution_item(res))
                    issue.fields["resolution"] = {"id": RESOLUTIONS[res], "name": res,
                                                  "self": "https://fake.atlassian.net/r", "description": ""}  # fmt: skip
                    issue.resolved_ms = at
                else:
                    issue.fields["resolution"] = None
                    issue.resolved_ms = None
                issue.history.append((at, items))
                issue.status_id = status_id
                issue.fields["status"] = status_json(status_id)
            issue.updated_ms = at
            self._version += 1
            return issue

    def delete(self, key: str) -> None:
        with self.data_lock:
            issue = self._keys.pop(key.upper())
            del self._issues[issue.id]
            self._version += 1

    def at_search(self, n: int, fn: Callable[[], None]) -> None:
        """Run `fn` just before serving the n-th search page from now (1 = the next one)."""
        self._hooks.setdefault(self.search_pages + n, []).append(fn)

    def _query(
        self, jql: str, visible_ms: int | None
    ) -> tuple[list[FakeIssue], list[tuple[int, ...]]]:
        cache_key = (jql, self._version, visible_ms, self.epoch_dates)
        hit = self._cache.get(cache_key)
        if hit is not None:
            return hit
        q = _Parser(jql, ZoneInfo(self.user_timezone), self._keys, self.epoch_dates).parse()
        if q.predicate is None:
            raise JqlError(
                "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
            )
        pred = q.predicate
        order = q.order or [("key", True)]
        rows = [i for i in self._issues.values() if pred(i)]
        if visible_ms is not None:
            rows = [i for i in rows if i.updated_ms <= visible_ms]
        keyed = sorted(((sort_key(i, order), i) for i in rows), key=lambda p: p[0])
        result = ([p[1] for p in keyed], [p[0] for p in keyed])
        if len(self._cache) > 16:
            self._cache.clear()
        self._cache[cache_key] = result
        return result

    # -- routing --------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Reply:
        denied = self._auth(request)
        if denied is not None:
            reply = denied
        else:
            with self.data_lock:
                reply = super().dispatch(request)
        if self.record:
            with self.lock:
                self.replies.append((request, reply))
        return reply

    def _auth(self, request: Request) -> Reply | None:
        header = request.headers.get("authorization", "")
        basic = "Basic " + base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
        if header in (basic, f"Bearer {self.token}"):
            return None
        return Reply(401, {"errorMessages": ["You are not authenticated. Authentication required to perform this operation."], "errors": {}})  # fmt: skip

    def _routes(self) -> None:
        r = self.rest
        roots = r"/rest/api/(?:2|3|latest)"
        # Cloud serves v2 as well (rich text as strings); the fake does for the read-only
        # metadata, so a Cloud site wrongly set to flavor "datacenter" fails where Jira would:
        # at the removed search.
        meta = roots if self.flavor == "cloud" else r
        self.route("GET", roots + "/serverInfo", self._server_info)
        self.route("GET", meta + "/myself", self._myself)
        self.route("GET", meta + "/field", self._fields)
        self.route("GET", meta + "/status", self._statuses)
        self.route("GET", meta + r"/project/(?P<project>[^/]+)/version", self._project_versions)
        self.route("GET", r"/rest/agile/1\.0/board/(?P<board>[^/]+)/sprint", self._board_sprints)
        self.route("GET", r + r"/issue/(?P<issue>[^/]+)", self._get_issue)
        self.route("GET", r + r"/issue/(?P<issue>[^/]+)/comment", self._list_comments)
        self.route("POST", r + r"/issue/(?P<issue>[^/]+)/comment", self._add_comment)
        self.route("GET", r + r"/issue/(?P<issue>[^/]+)/comment/(?P<cid>[^/]+)", self._get_comment)
        self.route(
            "PUT", r + r"/issue/(?P<issue>[^/]+)/comment/(?P<cid>[^/]+)", self._update_comment
        )
        self.route("POST", r + "/comment/list", self._comment_list)
        self.route(
            "GET",
            r + r"/issue/(?P<issue>[^/]+)/properties/(?P<prop>[^/]+)",
            self._get_issue_property,
        )
        self.route(
            "PUT",
            r + r"/issue/(?P<issue>[^/]+)/properties/(?P<prop>[^/]+)",
            self._put_issue_property,
        )
        self.route(
            "GET",
            r + r"/comment/(?P<cid>[^/]+)/properties/(?P<prop>[^/]+)",
            self._get_comment_property,
        )
        self.route(
            "PUT",
            r + r"/comment/(?P<cid>[^/]+)/properties/(?P<prop>[^/]+)",
            self._put_comment_property,
        )
        if self.flavor == "cloud":
            for method in ("GET", "POST"):
                self.route(method, CLOUD_REST + "/search/jql", self._search_jql)
                self.route(method, r"/rest/api/(?:2|3|latest)/search", self._removed)
            self.route("POST", CLOUD_REST + "/changelog/bulkfetch", self._bulk_changelog)
        else:
            for method in ("GET", "POST"):
                self.route(method, DC_REST + "/search", self._search_dc)

    # -- handlers: metadata ---------------------------------------------------------------

    def _server_info(self, req: Request) -> dict[str, Any]:
        cloud = self.flavor == "cloud"
        return {"baseUrl": self.url, "version": "1001.0.0-SNAPSHOT" if cloud else "9.12.2",
                "versionNumbers": [1001, 0, 0] if cloud else [9, 12, 2],
                "deploymentType": "Cloud" if cloud else "Server", "buildNumber": 100000,
                "buildDate": "2026-10-01T00:00:00.000+0000",
                "serverTime": jira_time(now_ms()), "scmInfo": "abc123", "serverTitle": "Jira"}  # fmt: skip

    def _myself(self, req: Request) -> dict[str, Any]:
        out: dict[str, Any] = {"self": f"{self.url}{self.rest}/user", "displayName": "Pat Manager",
                               "active": True, "timeZone": self.user_timezone, "locale": "en_US",
                               "emailAddress": self.email}  # fmt: skip
        if self.flavor == "cloud":
            out.update(accountId="5b10a2844c20165700e00001", accountType="atlassian")
        else:
            out.update(name="pat", key="JIRAUSER10000")
        return out

    def _fields(self, req: Request) -> list[dict[str, Any]]:
        out = [
            {"id": f, "key": f, "name": f.title(), "custom": False, "navigable": True,
             "orderable": True, "searchable": True, "clauseNames": [f],
             "schema": {"type": "string", "system": f}}
            for f in SYSTEM_FIELDS
        ]  # fmt: skip
        ids = self.custom_ids

        def custom(
            fid: str | None, name: str, ctype: str, schema_type: str, items: str | None = None
        ) -> None:
            if not fid:
                return
            schema: dict[str, Any] = {
                "type": schema_type,
                "custom": ctype,
                "customId": int(fid.split("_")[1]),
            }
            if items:
                schema["items"] = items
            out.append({"id": fid, "key": fid, "name": name, "custom": True, "navigable": True,
                        "orderable": True, "searchable": True,
                        "clauseNames": [f"cf[{fid.split('_')[1]}]", name], "schema": schema})  # fmt: skip

        gh = "com.pyxis.greenhopper.jira:"
        cf = "com.atlassian.jira.plugin.system.customfieldtypes:"
        if self.flavor == "cloud":
            custom(
                ids.get("story_points"), "Story point estimate", gh + "jsw-story-points", "number"
            )
        else:
            custom(ids.get("story_points"), "Story Points", cf + "float", "number")
        custom(ids.get("sprint"), "Sprint", gh + "gh-sprint", "array", "json")
        custom(ids.get("start_date"), "Start date", cf + "datepicker", "date")
        custom(ids.get("flagged"), "Flagged", cf + "multicheckboxes", "array", "option")
        custom(ids.get("rank"), "Rank", gh + "gh-lexo-rank", "any")
        custom(ids.get("epic_link"), "Epic Link", gh + "gh-epic-link", "any")
        # Decoys that a name or type guess would pick up wrongly.
        custom("customfield_10900", "Budget", cf + "float", "number")
        custom("customfield_10901", "Go-live date", cf + "datepicker", "date")
        return out

    def _statuses(self, req: Request) -> list[dict[str, Any]]:
        return [status_json(s, self.url) for s in STATUSES]

    def _project_versions(self, req: Request) -> Reply | dict[str, Any]:
        project = req.match["project"].upper() if req.match else ""
        if project not in self.versions:
            return _error(404, f"No project could be found with key '{project}'.")
        values = self.versions[project]
        start = int(req.arg("startAt", "0") or 0)
        size = min(int(req.arg("maxResults", "50") or 50), 50)
        page = values[start : start + size]
        last = start + size >= len(values)
        out: dict[str, Any] = {"self": f"{self.url}{req.path}?startAt={start}&maxResults={size}",
                               "maxResults": size, "startAt": start, "total": len(values),
                               "isLast": last, "values": page}  # fmt: skip
        if not last:
            out["nextPage"] = f"{self.url}{req.path}?startAt={start + size}&maxResults={size}"
        return out

    def _board_sprints(self, req: Request) -> Reply | dict[str, Any]:
        board = req.match["board"] if req.match else ""
        if not board.isdigit() or int(board) not in self.sprints:
            return _error(404, "The requested board cannot be viewed because it either does not exist or you do not have permission to view it.")  # fmt: skip
        values = self.sprints[int(board)]
        states = req.arg("state")
        if states:
            wanted = set(states.split(","))
            values = [s for s in values if s["state"] in wanted]
        start = int(req.arg("startAt", "0") or 0)
        size = min(int(req.arg("maxResults", "50") or 50), 50)  # jira-api.md §10.10: capped at 50
        page = values[start : start + size]
        return {
            "maxResults": size,
            "startAt": start,
            "isLast": start + size >= len(values),
            "values": page,
        }

    # -- handlers: search -----------------------------------------------------------------

    def _removed(self, req: Request) -> Reply:
        return _error(410, REMOVED_SEARCH)

    def _params(self, req: Request) -> dict[str, Any]:
        if req.method == "POST":
            body = req.json() or {}
            if not isinstance(body, dict):
                raise JqlError("Request body must be a JSON object.")
            return body
        out: dict[str, Any] = {}
        for name, values in req.query.items():
            if name in ("fields", "properties", "reconcileIssues"):
                out[name] = [v for value in values for v in value.split(",") if v]
            else:
                out[name] = values[-1]
        return out

    def _run_hooks(self) -> None:
        self.search_pages += 1
        for fn in self._hooks.pop(self.search_pages, []):
            fn()

    def _wanted(self, fields: Any) -> list[str]:
        if fields is None:
            return ["id"]
        names = fields.split(",") if isinstance(fields, str) else list(fields)
        if any(n in ("*all", "*navigable") for n in names):
            return [*SYSTEM_FIELDS, *(i for i in self.custom_ids.values() if i)]
        return [n for n in names if n and not n.startswith("-")]

    def _issue_json(self, issue: FakeIssue, wanted: list[str], expand: str) -> dict[str, Any]:
        if wanted == ["id"]:
            return {"id": str(issue.id)}
        own = issue.fields
        fields = {n: own[n] for n in wanted if n in own}
        for n in DATE_FIELDS:
            if n in wanted:
                fields[n] = issue.field_value(n)
        out: dict[str, Any] = {"expand": "", "id": str(issue.id), "key": issue.key,
                               "self": f"{self._base}{self.rest}/issue/{issue.id}", "fields": fields}  # fmt: skip
        if "changelog" in expand.split(","):
            histories = [
                self._history_json(issue, n, at, items)
                for n, (at, items) in enumerate(issue.history)
            ]
            histories.reverse()  # newest first, truncated (jira-api.md §4)
            cap = self.embedded_changelog_cap
            out["changelog"] = {"startAt": 0, "maxResults": min(cap, len(histories)),
                                "total": len(histories), "histories": histories[:cap]}  # fmt: skip
        return out

    def _history_json(
        self, issue: FakeIssue, n: int, at: int, items: list[dict[str, Any]]
    ) -> dict[str, Any]:
        author = user_json(0, self.flavor, self.url)
        author.pop("self", None)
        return {
            "id": str(issue.id * 100 + n),
            "author": author,
            "created": jira_time(at),
            "items": items,
        }

    def _visible(self) -> int | None:
        return now_ms() - self.lag_ms if self.lag_ms else None

    def _search_jql(self, req: Request) -> Reply | dict[str, Any]:
        try:
            params = self._params(req)
            self._run_hooks()
            jql = str(params.get("jql") or "")
            rows, keys = self._query(jql, self._visible())
        except JqlError as exc:
            return _error(400, str(exc))
        reconcile = {int(x) for x in params.get("reconcileIssues") or ()}
        if reconcile and self.lag_ms:
            extra = [i for i in (self._issues.get(x) for x in reconcile) if i is not None]
            rows, keys = self._merge(rows, keys, extra, jql)
        wanted = self._wanted(params.get("fields"))
        cap = self.id_page_cap if wanted == ["id"] else self.page_cap
        size = max(1, min(int(params.get("maxResults") or 50), cap))
        qid = hashlib.sha256(jql.encode()).hexdigest()[:10]
        start = 0
        token = params.get("nextPageToken")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                assert state["q"] == qid
            except Exception:
                return _error(400, "The provided next page token is invalid or expired.")
            if "offset" in state:
                start = state["offset"]
            else:
                start = bisect.bisect_right(keys, tuple(state["after"]))
        page = rows[start : start + size]
        out: dict[str, Any] = {
            "issues": [self._issue_json(i, wanted, str(params.get("expand") or "")) for i in page]
        }
        end = start + len(page)
        if end < len(rows):
            state = (
                {"q": qid, "offset": end}
                if self.token_mode == "offset"
                else {"q": qid, "after": list(keys[end - 1])}
            )
            out["nextPageToken"] = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
            out["isLast"] = False
        else:
            out["isLast"] = True
        return out

    def _merge(self, rows: list[FakeIssue], keys: list[tuple[int, ...]], extra: list[FakeIssue], jql: str
               ) -> tuple[list[FakeIssue], list[tuple[int, ...]]]:  # fmt: skip
        q = _Parser(jql, ZoneInfo(self.user_timezone), self._keys).parse()
        order = q.order or [("key", True)]
        present = {i.id for i in rows}
        pairs = list(zip(keys, rows))
        pairs += [
            (sort_key(i, order), i)
            for i in extra
            if i.id not in present and q.predicate and q.predicate(i)
        ]
        pairs.sort(key=lambda p: p[0])
        return [p[1] for p in pairs], [p[0] for p in pairs]

    def _search_dc(self, req: Request) -> Reply | dict[str, Any]:
        try:
            params = self._params(req)
            self._run_hooks()
            jql = str(params.get("jql") or "")
            rows, _ = self._query(jql, self._visible())
        except JqlError as exc:
            return _error(400, str(exc))
        start = int(params.get("startAt") or 0)
        size = max(0, min(int(params.get("maxResults") or 50), self.dc_page_cap))
        if self.result_window is not None and start + size > self.result_window:
            return _error(400, f"Result window is too large, from + size must be less than or equal to: [{self.result_window}]")  # fmt: skip
        wanted = self._wanted(params.get("fields") or ["*navigable"])
        expand = params.get("expand") or ""
        if isinstance(expand, list):
            expand = ",".join(expand)
        page = rows[start : start + size]
        return {"expand": "schema,names", "startAt": start, "maxResults": size, "total": len(rows),
                "issues": [self._issue_json(i, wanted, expand) for i in page]}  # fmt: skip

    def _bulk_changelog(self, req: Request) -> Reply | dict[str, Any]:
        body = req.json() or {}
        ids = body.get("issueIdsOrKeys") or []
        if not isinstance(ids, list) or not 1 <= len(ids) <= 1000:
            return _error(400, "issueIdsOrKeys must contain between 1 and 1000 issue IDs or keys.")
        field_ids = body.get("fieldIds") or []
        if len(field_ids) > 10:
            return _error(400, "fieldIds must contain at most 10 field IDs.")
        size = int(body.get("maxResults") or 1000)
        if not 1 <= size <= 10000:
            return _error(400, "maxResults must be between 1 and 10000.")
        entries: list[tuple[int, int, dict[str, Any]]] = []
        for ref in dict.fromkeys(str(x) for x in ids):
            issue = self._keys.get(ref.upper()) or (
                self._issues.get(int(ref)) if ref.isdigit() else None
            )
            if issue is None:
                continue
            for n, (at, items) in enumerate(issue.history):
                kept = [it for it in items if not field_ids or it["fieldId"] in field_ids]
                if kept:
                    entries.append((at, issue.id, self._history_json(issue, n, at, kept)))
        entries.sort(key=lambda e: (e[0], e[1]))  # by changelog date, then issue id, oldest first
        start = 0
        if body.get("nextPageToken"):
            try:
                start = int(base64.urlsafe_b64decode(str(body["nextPageToken"]).encode()))
            except ValueError:
                return _error(400, "The provided next page token is invalid.")
        page = entries[start : start + size]
        logs: list[dict[str, Any]] = []
        for _at, issue_id, history in page:
            if logs and logs[-1]["issueId"] == str(issue_id):
                logs[-1]["changeHistories"].append(history)
            else:
                logs.append({"issueId": str(issue_id), "changeHistories": [history]})
        out: dict[str, Any] = {"issueChangeLogs": logs}
        if start + size < len(entries):
            out["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return out

    def _get_issue(self, req: Request) -> Reply | dict[str, Any]:
        ref = req.match["issue"] if req.match else ""
        issue = self._find(ref)
        if issue is None:
            return _error(404, "Issue does not exist or you do not have permission to see it.")
        wanted = self._wanted(req.arg("fields") or "*navigable")
        out = self._issue_json(issue, wanted, "")
        if "changelog" in (req.arg("expand") or ""):
            histories = [
                self._history_json(issue, n, at, items)
                for n, (at, items) in enumerate(issue.history)
            ]
            histories.reverse()
            out["changelog"] = {"startAt": 0, "maxResults": len(histories), "total": len(histories),
                                "histories": histories}  # fmt: skip
        return out

    def _find(self, ref: str) -> FakeIssue | None:
        return self._keys.get(ref.upper()) or (
            self._issues.get(int(ref)) if ref.isdigit() else None
        )

    # -- handlers: comments and properties ------------------------------------------------

    def _comment_json(
        self, issue: FakeIssue, c: dict[str, Any], props: bool = False
    ) -> dict[str, Any]:
        author = user_json(0, self.flavor, self.url)
        out = {"self": f"{self.url}{self.rest}/issue/{issue.id}/comment/{c['id']}", "id": c["id"],
               "author": author, "updateAuthor": author, "body": c["body"],
               "created": jira_time(c["created"]), "updated": jira_time(c["updated"]), "jsdPublic": True}  # fmt: skip
        if props:
            out["properties"] = [
                {"key": k, "value": v} for k, v in self.comment_properties.get(c["id"], {}).items()
            ]
        return out

    def _check_body(self, body: Any) -> Reply | None:
        if self.flavor == "cloud":
            problem = adf_problem(body)
            if problem:
                return _error(400, errors={"comment": f"Comment body is not valid! {problem}"})
            size = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")))
        else:
            if not isinstance(body, str) or not body.strip():
                return _error(400, errors={"comment": "Comment body can not be empty!"})
            size = len(body)
        if size > self.comment_size_limit:
            return _error(400, errors={"comment": TOO_LONG})
        return None

    def _add_comment(self, req: Request) -> Reply:
        issue = self._find(req.match["issue"] if req.match else "")
        if issue is None:
            return _error(404, "Issue does not exist or you do not have permission to see it.")
        payload = req.json()
        if not isinstance(payload, dict) or "body" not in payload:
            return _error(400, errors={"comment": "Comment body can not be empty!"})
        problem = self._check_body(payload["body"])
        if problem:
            return problem
        cid = str(self._next_comment)
        self._next_comment += 1
        at = now_ms()
        comment = {
            "id": cid,
            "body": payload["body"],
            "created": at,
            "updated": at,
            "issue": issue.id,
        }
        self.comments.setdefault(issue.key, []).append(comment)
        for prop in payload.get("properties") or ():
            self.comment_properties.setdefault(cid, {})[prop["key"]] = prop["value"]
        return Reply(201, self._comment_json(issue, comment))

    def _comment(self, req: Request) -> tuple[FakeIssue | None, dict[str, Any] | None]:
        issue = self._find(req.match["issue"] if req.match else "")
        if issue is None:
            return None, None
        cid = req.match["cid"] if req.match else ""
        for c in self.comments.get(issue.key, []):
            if c["id"] == cid:
                return issue, c
        return issue, None

    def _get_comment(self, req: Request) -> Reply | dict[str, Any]:
        issue, c = self._comment(req)
        if issue is None or c is None:
            return _error(404, "Can not find a comment for the id.")
        return self._comment_json(issue, c)

    def _update_comment(self, req: Request) -> Reply | dict[str, Any]:
        issue, c = self._comment(req)
        if issue is None or c is None:
            return _error(404, "Can not find a comment for the id.")
        payload = req.json()
        if not isinstance(payload, dict) or "body" not in payload:
            return _error(400, errors={"comment": "Comment body can not be empty!"})
        problem = self._check_body(payload["body"])
        if problem:
            return problem
        c["body"] = payload["body"]
        c["updated"] = now_ms()
        return self._comment_json(issue, c)

    def _list_comments(self, req: Request) -> Reply | dict[str, Any]:
        issue = self._find(req.match["issue"] if req.match else "")
        if issue is None:
            return _error(404, "Issue does not exist or you do not have permission to see it.")
        comments = list(self.comments.get(issue.key, []))
        if (req.arg("orderBy") or "").startswith("-"):
            comments.reverse()
        start = int(req.arg("startAt", "0") or 0)
        size = min(int(req.arg("maxResults", "100") or 100), 100)
        page = comments[start : start + size]
        return {"startAt": start, "maxResults": size, "total": len(comments),
                "comments": [self._comment_json(issue, c) for c in page]}  # fmt: skip

    def _comment_list(self, req: Request) -> Reply | dict[str, Any]:
        body = req.json() or {}
        ids = {str(i) for i in body.get("ids") or ()}
        props = "properties" in (req.arg("expand") or "")
        values = []
        for issue_key, comments in self.comments.items():
            issue = self._keys.get(issue_key.upper())
            for c in comments:
                if c["id"] in ids and issue is not None:
                    values.append(self._comment_json(issue, c, props))
        return {
            "isLast": True,
            "maxResults": 1000,
            "startAt": 0,
            "total": len(values),
            "values": values,
        }

    def _property_value(self, req: Request) -> Reply | Any:
        try:
            value = req.json()
        except ValueError:
            return _error(400, "The property value must be valid JSON.")
        if value is None or len(req.body) > PROPERTY_LIMIT:
            return _error(
                400, f"The property value must be non-empty JSON of at most {PROPERTY_LIMIT} bytes."
            )
        return value

    def _get_issue_property(self, req: Request) -> Reply | dict[str, Any]:
        issue = self._find(req.match["issue"] if req.match else "")
        prop = req.match["prop"] if req.match else ""
        if issue is None or prop not in issue.properties:
            return _error(404, f"The property with key '{prop}' does not exist.")
        return {"key": prop, "value": issue.properties[prop]}

    def _put_issue_property(self, req: Request) -> Reply:
        issue = self._find(req.match["issue"] if req.match else "")
        if issue is None:
            return _error(404, "Issue does not exist or you do not have permission to see it.")
        if self.forbid_properties:
            return _error(403, "You do not have permission to edit this issue.")
        value = self._property_value(req)
        if isinstance(value, Reply):
            return value
        prop = req.match["prop"] if req.match else ""
        created = prop not in issue.properties
        issue.properties[prop] = value
        return Reply(201 if created else 200, None)

    def _get_comment_property(self, req: Request) -> Reply | dict[str, Any]:
        cid = req.match["cid"] if req.match else ""
        prop = req.match["prop"] if req.match else ""
        props = self.comment_properties.get(cid, {})
        if prop not in props:
            return _error(404, f"The property with key '{prop}' does not exist.")
        return {"key": prop, "value": props[prop]}

    def _put_comment_property(self, req: Request) -> Reply:
        cid = req.match["cid"] if req.match else ""
        if not any(c["id"] == cid for cs in self.comments.values() for c in cs):
            return _error(404, "Can not find a comment for the id.")
        value = self._property_value(req)
        if isinstance(value, Reply):
            return value
        prop = req.match["prop"] if req.match else ""
        props = self.comment_properties.setdefault(cid, {})
        created = prop not in props
        props[prop] = value
        return Reply(201 if created else 200, None)


# -- ADF validation (what Jira's validator rejects with 400) -------------------------------

_INLINE = {"text", "hardBreak", "mention", "emoji", "inlineCard", "status", "date"}
_LIST_ITEM = {"paragraph", "bulletList", "orderedList", "codeBlock"}
_CELL = {
    "paragraph",
    "bulletList",
    "orderedList",
    "heading",
    "codeBlock",
    "blockquote",
    "rule",
    "panel",
}
_BLOCK = {"paragraph", "heading", "bulletList", "orderedList", "table", "codeBlock", "blockquote",
          "rule", "panel", "expand"}  # fmt: skip
_CHILDREN: dict[str, set[str]] = {
    "doc": _BLOCK,
    "paragraph": _INLINE,
    "heading": _INLINE,
    "codeBlock": {"text"},
    "bulletList": {"listItem"},
    "orderedList": {"listItem"},
    "listItem": _LIST_ITEM,
    "table": {"tableRow"},
    "tableRow": {"tableHeader", "tableCell"},
    "tableHeader": _CELL,
    "tableCell": _CELL,
    "blockquote": {"paragraph", "bulletList", "orderedList", "codeBlock"},
    "panel": {"paragraph", "bulletList", "orderedList", "heading"},
    "expand": _BLOCK - {"expand"},
}
# Nodes whose content may not be empty.
_NON_EMPTY = {"doc", "bulletList", "orderedList", "listItem", "table", "tableRow", "tableHeader",
              "tableCell", "blockquote", "panel"}  # fmt: skip
_MARKS = {"strong", "em", "code", "link", "strike", "underline", "textColor", "subsup"}


def adf_problem(node: Any, path: str = "doc", parent: str | None = None) -> str | None:
    """Return why `node` is not valid ADF (structure Jira enforces), or None if it is."""
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        return f"{path}: not an ADF node"
    kind = node["type"]
    if parent is None:
        if kind != "doc" or node.get("version") != 1:
            return "the body must be an ADF document with version 1"
    elif kind not in _CHILDREN.get(parent, set()):
        return f"{path}: '{kind}' is not allowed inside '{parent}'"
    if kind == "text":
        text = node.get("text")
        if not isinstance(text, str) or not text:
            return f"{path}: text nodes must have non-empty text"
        if "content" in node:
            return f"{path}: text nodes have no content"
        for mark in node.get("marks") or ():
            if not isinstance(mark, dict) or mark.get("type") not in _MARKS:
                return f"{path}: unknown mark {mark!r}"
            if mark["type"] == "link" and not isinstance(
                (mark.get("attrs") or {}).get("href"), str
            ):
                return f"{path}: link marks need attrs.href"
        return None
    if kind == "heading":
        level = (node.get("attrs") or {}).get("level")
        if not isinstance(level, int) or not 1 <= level <= 6:
            return f"{path}: heading needs attrs.level 1-6"
    if kind in ("hardBreak", "rule", "mention", "emoji", "inlineCard", "status", "date"):
        return None
    content = node.get("content", [])
    if not isinstance(content, list):
        return f"{path}: content must be a list"
    if kind in _NON_EMPTY and not content:
        return f"{path}: '{kind}' must not be empty"
    for n, child in enumerate(content):
        problem = adf_problem(child, f"{path}.content[{n}]", kind)
        if problem:
            return problem
    return None


def main(argv: list[str] | None = None) -> None:
    """Serve a generated fake Jira from its own process (the benchmark keeps its GIL apart).

    `python -m tests.fakes.jira --issues 100000` prints one JSON line (url, email, token) and
    serves until it is killed or its standard input closes.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        description=main.__doc__.split("\n")[0] if main.__doc__ else None
    )
    parser.add_argument("--issues", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--flavor", choices=("cloud", "datacenter"), default="cloud")
    parser.add_argument("--timezone", default="UTC")
    args = parser.parse_args(argv)
    fake = FakeJira(
        make_issues(args.issues, args.seed, flavor=args.flavor),
        flavor=args.flavor,
        user_timezone=args.timezone,
        record=False,
    ).start()
    print(json.dumps({"url": fake.url, "email": fake.email, "token": fake.token}), flush=True)
    try:
        sys.stdin.read()
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
