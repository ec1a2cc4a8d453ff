"""A fake GitHub: Projects (v2) GraphQL executed against GitHub's real schema, plus the REST
endpoints pmsync uses (issues, milestones, issue comments).

GraphQL documents are parsed and validated against the vendored SDL
(`tests/specs/github/schema.graphql`) and executed by graphql-core over in-memory dicts, so
a query the real API would reject fails here too. The fake computes each query's point cost
with GitHub's documented formula (github-api.md §2.2), answers `rateLimit { cost … }`, keeps
`points` and request counters for the benchmark, and emulates: NOT_FOUND for a wrong owner or
number, pagination limits (`first`/`last` required, at most 100), REDACTED, draft and archived
items, status-update mutations, REST `link` paging, ETag/304, comment size limits (422), and
through the fault queue: rate limits inside HTTP 200, secondary limits (403/429) and 502s.

`make_board(n, seed)` builds a board with n generated items quickly, for the benchmark.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    build_schema,
    execute,
    get_named_type,
    parse,
    validate,
)
from graphql.utilities import value_from_ast_untyped

from tests.fakes.server import FakeServer, Reply, Request

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "specs" / "github" / "schema.graphql"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
BODY_LIMIT = 65_536
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)


@cache
def github_schema() -> GraphQLSchema:
    """The vendored GitHub schema, built once per process (about 2 s)."""
    return build_schema(SCHEMA_PATH.read_text(encoding="utf-8"), assume_valid_sdl=True)


def validate_document(text: str) -> list[str]:
    """Return the schema validation errors of a GraphQL document (empty when valid)."""
    return [e.message for e in validate(github_schema(), parse(text))]


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- point cost (github-api.md §2.2) ------------------------------------------------------------


def _included(node: Any, variables: dict[str, Any]) -> bool:
    for directive in node.directives or ():
        args = {
            a.name.value: value_from_ast_untyped(a.value, variables) for a in directive.arguments
        }
        if directive.name.value == "include" and not args.get("if"):
            return False
        if directive.name.value == "skip" and args.get("if"):
            return False
    return True


def query_cost(
    document: DocumentNode, variables: dict[str, Any], operation_name: str | None = None
) -> tuple[int, int, list[str]]:
    """Return (points, node count, pagination errors) of a query, per GitHub's formula.

    Each connection costs as many requests as its enclosing connections could return
    (their `first`/`last` multiplied); points = total requests / 100, rounded, at least 1.
    Every field node counts on its own, so `... on Issue { labels }` and
    `... on PullRequest { labels }` are two connections, `... on Labelable { labels }` one.
    """
    schema = github_schema()
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    op = next((o for o in ops if o.name and o.name.value == operation_name), ops[0])
    if op.operation is not OperationType.QUERY:
        return 1, 0, []
    requests = nodes = 0
    errors: list[str] = []

    def walk(parent: Any, selection_set: SelectionSetNode, mult: int) -> None:
        nonlocal requests, nodes
        for sel in selection_set.selections:
            if not _included(sel, variables):
                continue
            if isinstance(sel, FieldNode):
                name = sel.name.value
                fdef = (getattr(parent, "fields", None) or {}).get(name)
                if fdef is None:
                    continue
                ftype = get_named_type(fdef.type)
                child = mult
                if "first" in fdef.args and ftype.name.endswith("Connection"):
                    args = {
                        a.name.value: value_from_ast_untyped(a.value, variables)
                        for a in sel.arguments
                    }
                    size = args.get("first")
                    size = args.get("last") if size is None else size
                    if size is None:
                        errors.append(
                            "You must provide a `first` or `last` value to properly paginate"
                            f" the `{name}` connection."
                        )
                        continue
                    if size > 100 or size < 0:
                        errors.append(
                            f"Requesting {size} records on the `{name}` connection exceeds the"
                            " `first` limit of 100 records."
                        )
                        continue
                    requests += mult
                    child = mult * size
                    nodes += child
                if sel.selection_set is not None:
                    walk(ftype, sel.selection_set, child)
            elif isinstance(sel, InlineFragmentNode):
                t = schema.get_type(sel.type_condition.name.value) if sel.type_condition else parent
                walk(t, sel.selection_set, mult)
            elif isinstance(sel, FragmentSpreadNode):
                frag = fragments[sel.name.value]
                walk(schema.get_type(frag.type_condition.name.value), frag.selection_set, mult)

    walk(schema.query_type, op.selection_set, 1)
    return max(1, round(requests / 100)), nodes, errors


# -- GraphQL resolvers --------------------------------------------------------------------------


def _cursor(index: int) -> str:
    return base64.b64encode(f"cursor:v2:{index}".encode()).decode()


def _index(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        return int(base64.b64decode(cursor).decode().rsplit(":", 1)[1])
    except (ValueError, IndexError):
        raise GraphQLError(f"`{cursor}` does not appear to be a valid cursor.") from None


def connection(
    nodes: list[Any],
    first: int | None = None,
    last: int | None = None,
    after: str | None = None,
    before: str | None = None,
) -> dict[str, Any]:
    """A Relay connection over `nodes` (position order, opaque cursors)."""
    start = (_index(after) + 1) if after else 0  # type: ignore[operator]
    end = _index(before) if before else len(nodes)
    end = len(nodes) if end is None else end
    lo, hi = start, max(start, end)
    if first is not None:
        hi = min(hi, lo + first)
    elif last is not None:
        lo = max(lo, hi - last)
    page = nodes[lo:hi]
    return {
        "nodes": page,
        "edges": lambda info, **_: [
            {"cursor": _cursor(lo + i), "node": n} for i, n in enumerate(page)
        ],
        "totalCount": len(nodes),
        "pageInfo": {
            "hasNextPage": hi < min(end, len(nodes)),
            "hasPreviousPage": lo > 0,
            "startCursor": _cursor(lo) if page else None,
            "endCursor": _cursor(hi - 1) if page else None,
        },
    }


def _conn_args(args: dict[str, Any]) -> dict[str, Any]:
    return {k: args.get(k) for k in ("first", "last", "after", "before")}


def _not_found(message: str, kind: str = "NOT_FOUND") -> GraphQLError:
    return GraphQLError(message, extensions={"type": kind})


def _sub_issues_summary(issue: dict[str, Any], info: Any, **_: Any) -> dict[str, Any]:
    children = issue.get("_children") or []
    done = sum(1 for c in children if c.get("state") == "CLOSED")
    total = len(children)
    return {
        "total": total,
        "completed": done,
        "percentCompleted": round(100 * done / total) if total else 0,
    }


def _labels(src: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
    labels = [{"__typename": "Label", "name": n, "id": f"LA_{n}"} for n in src.get("_labels", ())]
    return connection(labels, **_conn_args(args))


def _assignees(src: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
    users = [{"__typename": "User", "login": n, "id": f"U_{n}"} for n in src.get("_assignees", ())]
    return connection(users, **_conn_args(args))


def _state_reason(src: dict[str, Any], info: Any, enableDuplicate: bool = False) -> Any:
    reason = src.get("stateReason")
    if reason == "DUPLICATE" and not enableDuplicate:
        return "NOT_PLANNED"
    return reason


# Special fields of dict sources: name -> (key the dict must have, resolver). Anything else
# resolves to the dict's value (called with the arguments when it is callable).
FIELD_RESOLVERS: dict[str, tuple[str, Callable[..., Any]]] = {
    "labels": ("_labels", _labels),
    "assignees": ("_assignees", _assignees),
    "subIssuesSummary": ("_children", _sub_issues_summary),
    "stateReason": ("stateReason", _state_reason),
    "items": ("_items", lambda p, info, **a: connection(p["_items"], **_conn_args(a))),
    "statusUpdates": ("_updates", lambda p, info, **a: connection(p["_updates"], **_conn_args(a))),
    "fields": (
        "_fields",
        lambda p, info, **a: connection(list(p["_fields"].values()), **_conn_args(a)),
    ),
    "field": ("_fields", lambda p, info, name: p["_fields"].get(name)),
    "fieldValueByName": ("_values", lambda i, info, name: i["_values"].get(name)),
    "fieldValues": (
        "_values",
        lambda i, info, **a: connection(list(i["_values"].values()), **_conn_args(a)),
    ),
    "issues": (
        "_issues",
        lambda r, info, **a: connection(
            [c for c in r["_issues"].values() if c["__typename"] == "Issue"], **_conn_args(a)
        ),
    ),
    "pullRequests": (
        "_issues",
        lambda r, info, **a: connection(
            [c for c in r["_issues"].values() if c["__typename"] == "PullRequest"],
            **_conn_args(a),
        ),
    ),
    "milestones": (
        "_milestones",
        lambda r, info, **a: connection(r["_milestones"], **_conn_args(a)),
    ),
    "options": (
        "_options",
        lambda f, info, names=None: [
            o for o in f["_options"] if names is None or o["name"] in names
        ],
    ),
}


def resolve(source: Any, info: Any, **args: Any) -> Any:
    """graphql-core field resolver: special fields of dict sources, else the dict's value."""
    name = info.field_name
    if isinstance(source, dict):
        special = FIELD_RESOLVERS.get(name)
        if special is not None and special[0] in source:
            return special[1](source, info, **args)
        value = source.get(name)
    else:
        value = getattr(source, name, None)
    return value(info, **args) if callable(value) else value


# -- the fake -----------------------------------------------------------------------------------


class FakeGitHub(FakeServer):
    """GitHub's GraphQL and REST APIs over in-memory boards and repositories."""

    def __init__(
        self,
        *,
        token: str = "ghp_faketoken123",  # noqa: S107
        viewer: str = "pm-bot",
        scopes: Iterable[str] = ("read:project", "project", "repo"),
        rate_limit: int = 5000,
    ) -> None:
        super().__init__()
        self.token = token
        self.viewer = viewer
        self.scopes = set(scopes)
        self.rate_limit = rate_limit
        self.now = T0
        self.owners: dict[str, dict[str, Any]] = {}
        self.repos: dict[str, dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.points = 0  # GraphQL points of executed queries
        self.graphql_requests = 0
        self.rest_requests = 0
        self.mutations: list[str] = []
        # Opt-in (benchmark): answer a repeated query from the encoded answer while no data
        # changed through the helpers below (`version`); points and requests still count.
        self.cache_pages = False
        self.version = 0
        self._page_cache: dict[tuple[str, str], tuple[int, bytes]] = {}
        self._lost: list[tuple[str, str, str, int]] = []
        self._seq = 1000
        self._documents: dict[str, tuple[DocumentNode | None, list[str]]] = {}
        self._data_lock = threading.RLock()
        for path in (r"/graphql", r"/api/graphql"):
            self.route("POST", path, self._graphql)
        api = r"(?:/api/v3)?"
        repo = api + r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        self.route("GET", api + r"/user", self._user)
        self.route("GET", repo, self._repo)
        self.route("GET", repo + r"/issues", self._list_issues)
        self.route("GET", repo + r"/milestones", self._list_milestones)
        self.route("GET", repo + r"/issues/(?P<number>\d+)/comments", self._list_comments)
        self.route("POST", repo + r"/issues/(?P<number>\d+)/comments", self._create_comment)
        self.route("PATCH", repo + r"/issues/comments/(?P<id>\d+)", self._update_comment)

    # -- data building ------------------------------------------------------------------------

    def next_id(self) -> int:
        self._seq += 1
        self.version += 1
        return self._seq

    def tick(self, seconds: float = 60) -> str:
        """Advance the fake's clock; return the new time as GitHub writes it."""
        self.now += timedelta(seconds=seconds)
        return str(iso(self.now))

    def add_owner(self, login: str, kind: str = "Organization") -> dict[str, Any]:
        owner = {"__typename": kind, "login": login, "id": f"O_{login}", "_projects": {}}
        owner["projectV2"] = lambda info, number: self._project_of(owner, number)
        self.owners[login] = owner
        return owner

    def _project_of(self, owner: dict[str, Any], number: int) -> dict[str, Any]:
        project = owner["_projects"].get(number)
        if project is None:
            raise _not_found(f"Could not resolve to a ProjectV2 with the number {number}.")
        return project

    def add_project(
        self,
        owner: str,
        number: int,
        title: str = "Board",
        *,
        statuses: Iterable[str] = ("Todo", "In Progress", "In Review", "Blocked", "Done"),
        iterations: int = 3,
    ) -> dict[str, Any]:
        """A board with Status, Start date, Target date, Estimate and Iteration fields."""
        o = self.owners.get(owner) or self.add_owner(owner)
        kind = "orgs" if o["__typename"] == "Organization" else "users"
        pid = f"PVT_{self.next_id()}"
        fields: dict[str, dict[str, Any]] = {}

        def field(typename: str, name: str, data_type: str, **extra: Any) -> dict[str, Any]:
            f = {
                "__typename": typename,
                "id": f"PVTF_{self.next_id()}",
                "name": name,
                "dataType": data_type,
                **extra,
            }
            fields[name] = f
            return f

        field("ProjectV2Field", "Title", "TITLE")
        field(
            "ProjectV2SingleSelectField",
            "Status",
            "SINGLE_SELECT",
            _options=[
                {"id": hashlib.blake2b(s.encode()).hexdigest()[:8], "name": s, "color": "GRAY"}
                for s in statuses
            ],
        )
        field("ProjectV2Field", "Start date", "DATE")
        field("ProjectV2Field", "Target date", "DATE")
        field("ProjectV2Field", "Estimate", "NUMBER")
        start = T0.date() - timedelta(days=14)
        its = [
            {
                "id": hashlib.blake2b(f"it{n}".encode()).hexdigest()[:8],
                "title": f"Sprint {n + 1}",
                "startDate": (start + timedelta(days=14 * n)).isoformat(),
                "duration": 14,
            }
            for n in range(iterations)
        ]
        field(
            "ProjectV2IterationField",
            "Iteration",
            "ITERATION",
            configuration={
                "duration": 14,
                "startDay": 1,
                "iterations": its[1:],
                "completedIterations": its[:1],
            },
        )
        project = {
            "__typename": "ProjectV2",
            "id": pid,
            "number": number,
            "title": title,
            "url": f"https://github.com/{kind}/{owner}/projects/{number}",
            "closed": False,
            "_fields": fields,
            "_items": [],
            "_updates": [],
        }
        o["_projects"][number] = project
        self.nodes[pid] = project
        return project

    def add_repo(self, name_with_owner: str) -> dict[str, Any]:
        owner, name = name_with_owner.split("/")
        repo = {
            "__typename": "Repository",
            "id": f"R_{self.next_id()}",
            "name": name,
            "nameWithOwner": name_with_owner,
            "url": f"https://github.com/{name_with_owner}",
            "_issues": {},
            "_milestones": [],
            "_comments": {},
            "_next_number": 1,
        }
        self.repos[name_with_owner] = repo
        if owner not in self.owners:
            self.add_owner(owner)
        return repo

    def add_milestone(self, repo: str, title: str, due: str | None = None) -> dict[str, Any]:
        r = self.repos.get(repo) or self.add_repo(repo)
        number = len(r["_milestones"]) + 1
        m = {
            "__typename": "Milestone",
            "id": f"MI_{self.next_id()}",
            "number": number,
            "title": title,
            "dueOn": f"{due}T07:00:00Z" if due else None,
            "state": "OPEN",
            "url": f"https://github.com/{repo}/milestone/{number}",
        }
        r["_milestones"].append(m)
        self.nodes[m["id"]] = m
        return m

    def add_issue(
        self,
        repo: str,
        title: str,
        *,
        pr: bool = False,
        state: str = "OPEN",
        reason: str | None = None,
        labels: Iterable[str] = (),
        assignees: Iterable[str] = (),
        milestone: dict[str, Any] | None = None,
        parent: dict[str, Any] | None = None,
        merged: bool = False,
        updated: str | None = None,
    ) -> dict[str, Any]:
        """An issue (or pull request) in `repo`; returns the content dict boards point at."""
        r = self.repos.get(repo) or self.add_repo(repo)
        number = r["_next_number"]
        r["_next_number"] += 1
        db = self.next_id()
        stamp = updated or str(iso(self.now))
        closed = state in ("CLOSED", "MERGED")
        content: dict[str, Any] = {
            "__typename": "PullRequest" if pr else "Issue",
            "id": f"{'PR' if pr else 'I'}_{db}",
            "databaseId": db,
            "number": number,
            "title": title,
            "url": f"https://github.com/{repo}/{'pull' if pr else 'issues'}/{number}",
            "state": state,
            "closed": closed,
            "closedAt": stamp if closed else None,
            "createdAt": str(iso(T0 - timedelta(days=30))),
            "updatedAt": stamp,
            "milestone": milestone,
            "repository": r,
            "_labels": list(labels),
            "_assignees": list(assignees),
        }
        if pr:
            content["merged"] = merged or state == "MERGED"
            content["mergedAt"] = stamp if content["merged"] else None
            content["isDraft"] = False
        else:
            content["stateReason"] = reason or ("COMPLETED" if closed else None)
            content["parent"] = parent
            content["_children"] = []
            if parent is not None:
                parent["_children"].append(content)
        r["_issues"][number] = content
        self.nodes[content["id"]] = content
        return content

    def add_item(
        self,
        project: dict[str, Any],
        content: dict[str, Any] | None = None,
        *,
        draft: str | None = None,
        redacted: bool = False,
        archived: bool = False,
        status: str | None = None,
        start: str | None = None,
        target: str | None = None,
        estimate: float | None = None,
        iteration: int | None = None,
        assignees: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Put content (or a draft, or an item the token cannot see) on a board."""
        db = self.next_id()
        stamp = str(iso(self.now))
        if draft is not None:
            content = {
                "__typename": "DraftIssue",
                "id": f"DI_{db}",
                "title": draft,
                "body": "",
                "createdAt": stamp,
                "updatedAt": stamp,
                "_assignees": list(assignees),
            }
            self.nodes[content["id"]] = content
            kind = "DRAFT_ISSUE"
        elif redacted:
            kind = "REDACTED"
        else:
            assert content is not None
            kind = "PULL_REQUEST" if content["__typename"] == "PullRequest" else "ISSUE"
        item = {
            "__typename": "ProjectV2Item",
            "id": f"PVTI_{db}",
            "fullDatabaseId": str(db),
            "type": kind,
            "isArchived": archived,
            "createdAt": stamp,
            "updatedAt": stamp,
            "content": None if redacted else content,
            "_project": project,
            "_values": {},
        }
        project["_items"].append(item)
        self.nodes[item["id"]] = item
        for name, value in (
            ("Status", status),
            ("Start date", start),
            ("Target date", target),
            ("Estimate", estimate),
            ("Iteration", iteration),
        ):
            if value is not None:
                self.set_value(item, name, value, touch=False)
        return item

    def set_value(self, item: dict[str, Any], name: str, value: Any, *, touch: bool = True) -> None:
        """Set (or with None clear) a field value; like GitHub, bump only the item."""
        project = item["_project"]
        f = project["_fields"][name]
        if value is None:
            item["_values"].pop(name, None)
        else:
            base = {"id": f"PVTFV_{self.next_id()}", "field": f, "updatedAt": str(iso(self.now))}
            data_type = f["dataType"]
            if data_type == "SINGLE_SELECT":
                option = next(o for o in f["_options"] if o["name"] == value)
                v = {
                    "__typename": "ProjectV2ItemFieldSingleSelectValue",
                    "name": option["name"],
                    "optionId": option["id"],
                    "color": option["color"],
                }
            elif data_type == "DATE":
                v = {"__typename": "ProjectV2ItemFieldDateValue", "date": value}
            elif data_type == "NUMBER":
                v = {"__typename": "ProjectV2ItemFieldNumberValue", "number": float(value)}
            elif data_type == "ITERATION":
                config = f["configuration"]
                it = (config["completedIterations"] + config["iterations"])[int(value)]
                v = {
                    "__typename": "ProjectV2ItemFieldIterationValue",
                    "iterationId": it["id"],
                    "title": it["title"],
                    "startDate": it["startDate"],
                    "duration": it["duration"],
                }
            else:
                v = {"__typename": "ProjectV2ItemFieldTextValue", "text": str(value)}
            item["_values"][name] = {**base, **v}
        self.version += 1
        if touch:
            item["updatedAt"] = self.tick(1)

    def move(self, item: dict[str, Any], status: str) -> None:
        """A board move: only the item's updatedAt changes (github-api.md §1.8)."""
        with self._data_lock:
            self.set_value(item, "Status", status)

    def close(self, content: dict[str, Any], reason: str = "COMPLETED") -> None:
        """Close an issue (or merge a PR with reason MERGED): only the content is bumped."""
        with self._data_lock:
            stamp = self.tick(1)
            if content["__typename"] == "PullRequest":
                content["state"] = "MERGED" if reason == "MERGED" else "CLOSED"
                content["merged"] = reason == "MERGED"
                content["mergedAt"] = stamp if content["merged"] else None
            else:
                content["state"] = "CLOSED"
                content["stateReason"] = reason
            content["closed"] = True
            content["closedAt"] = stamp
            content["updatedAt"] = stamp
            self.version += 1

    def remove_item(self, item: dict[str, Any]) -> None:
        with self._data_lock:
            item["_project"]["_items"].remove(item)
            self.nodes.pop(item["id"], None)
            self.version += 1

    def archive(self, item: dict[str, Any]) -> None:
        with self._data_lock:
            item["isArchived"] = True
            item["updatedAt"] = self.tick(1)
            self.version += 1

    def forbid(self, item: dict[str, Any]) -> None:
        """Make reading the item's content fail with FORBIDDEN (e.g. an SSO-protected org)."""

        def content(info: Any, **_: Any) -> None:
            raise _not_found(
                "Resource protected by organization SAML enforcement.", kind="FORBIDDEN"
            )

        with self._data_lock:
            item["content"] = content
            self.version += 1

    def project(self, owner: str, number: int) -> dict[str, Any]:
        return self.owners[owner]["_projects"][number]

    # -- faults ---------------------------------------------------------------------------------

    def rate_limit_graphql(
        self, *, times: int = 1, kind: str = "RATE_LIMITED", reset_in: float = 0
    ) -> None:
        """The next GraphQL answers are primary rate-limit errors inside HTTP 200 (§2.4)."""
        error: dict[str, Any] = {
            "type": kind,
            "message": "API rate limit exceeded for user ID 1.",
        }
        if kind == "RATE_LIMIT":
            error["code"] = "graphql_rate_limit"
        self.faults.add(
            "status",
            status=200,
            path="graphql",
            times=times,
            body={"errors": [error]},
            headers={
                # githubkit#271: the RATE_LIMIT variant may not say remaining 0.
                "x-ratelimit-remaining": "0" if kind == "RATE_LIMITED" else "3",
                "x-ratelimit-reset": str(int(time.time() + reset_in)),
                "x-ratelimit-resource": "graphql",
            },
        )

    def secondary_limit(
        self,
        *,
        times: int = 1,
        status: int = 403,
        retry_after: int | None = None,
        path: str = "graphql",
    ) -> None:
        """The next requests on `path` hit a secondary rate limit (with or without retry-after)."""
        headers = {"x-ratelimit-remaining": "4000"}
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        self.faults.add(
            "status",
            status=status,
            path=path,
            times=times,
            headers=headers,
            body={"message": SECONDARY_MESSAGE, "documentation_url": "https://docs.github.com"},
        )

    def gateway_timeout(self, *, times: int = 1, status: int = 502) -> None:
        """The next GraphQL requests time out the way GitHub does (§2.5)."""
        self.faults.add(
            "status",
            status=status,
            path="graphql",
            times=times,
            body={
                "data": None,
                "errors": [
                    {
                        "message": "Something went wrong while executing your query. This may"
                        " be the result of a timeout, or it could be a GitHub bug."
                    }
                ],
            },
        )

    def lose_reply(
        self, *, method: str = "POST", path: str = "graphql", contains: str = "", status: int = 502
    ) -> None:
        """Apply the next matching request, then answer `status` as if the gateway gave up:
        the client cannot tell whether its write went through (github-api.md §2.5)."""
        self._lost.append((method, path, contains, status))

    def dispatch(self, request: Request) -> Reply:
        reply = super().dispatch(request)
        for n, (method, path, contains, status) in enumerate(self._lost):
            if (
                request.method == method
                and re.search(path, request.path)
                and contains in request.body.decode("utf-8", "replace")
            ):
                del self._lost[n]
                return Reply(status, {"message": "We couldn't respond to your request in time."})
        return reply

    # -- HTTP plumbing --------------------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        return header in (f"Bearer {self.token}", f"token {self.token}")

    def _rate_headers(self, resource: str) -> dict[str, str]:
        used = self.points if resource == "graphql" else self.rest_requests
        return {
            "x-ratelimit-limit": str(self.rate_limit),
            "x-ratelimit-remaining": str(max(0, self.rate_limit - used)),
            "x-ratelimit-used": str(used),
            "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-ratelimit-resource": resource,
        }

    def _unauthorised(self) -> Reply:
        return Reply(
            401,
            {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"},
        )

    # -- GraphQL --------------------------------------------------------------------------------

    def _document(self, text: str) -> tuple[DocumentNode | None, list[str]]:
        found = self._documents.get(text)
        if found is None:
            try:
                doc = parse(text)
            except GraphQLError as exc:
                found = (None, [exc.message])
            else:
                errors = [e.message for e in validate(github_schema(), doc)]
                found = (None, errors) if errors else (doc, [])
            self._documents[text] = found
        return found

    def _graphql(self, request: Request) -> Reply:
        if not self._authorised(request):
            return self._unauthorised()
        try:
            payload = request.json()
            text = payload["query"]
            variables = payload.get("variables") or {}
        except (ValueError, KeyError, TypeError):
            return Reply(400, {"message": "Problems parsing JSON"})
        doc, errors = self._document(text)
        headers = self._rate_headers("graphql")
        if doc is None:
            return Reply(200, {"errors": [{"message": m} for m in errors]}, headers)
        cost, node_count, page_errors = query_cost(doc, variables, payload.get("operationName"))
        if page_errors:
            return Reply(200, {"errors": [{"message": m} for m in page_errors]}, headers)
        is_mutation = any(
            isinstance(d, OperationDefinitionNode) and d.operation is OperationType.MUTATION
            for d in doc.definitions
        )
        if is_mutation and "project" not in self.scopes:
            return Reply(
                200,
                {
                    "errors": [
                        {
                            "type": "INSUFFICIENT_SCOPES",
                            "message": "Your token has not been granted the required scopes to"
                            " execute this query. The mutation requires one of the following"
                            " scopes: ['project'].",
                        }
                    ]
                },
                headers,
            )
        key = (text, json.dumps(variables, sort_keys=True))
        with self._data_lock:
            self.points += cost
            self.graphql_requests += 1
            cached = self._page_cache.get(key) if self.cache_pages and not is_mutation else None
            if cached is not None and cached[0] == self.version:
                return Reply(200, None, self._rate_headers("graphql"), raw=cached[1])
            context = {"cost": cost, "nodes": node_count}
            result = execute(
                github_schema(),
                doc,
                root_value=_Root(self),
                context_value=context,
                variable_values=variables,
                operation_name=payload.get("operationName"),
                field_resolver=resolve,
            )
            body: dict[str, Any] = {"data": result.data}
            if result.errors:
                body["errors"] = [_format_error(e) for e in result.errors]
            raw = json.dumps(body).encode()
            if self.cache_pages and not is_mutation:
                self._page_cache[key] = (self.version, raw)
            if is_mutation:
                self.version += 1
        return Reply(200, None, self._rate_headers("graphql"), raw=raw)

    # -- REST -----------------------------------------------------------------------------------

    def _rest(self, request: Request) -> Reply | None:
        if not self._authorised(request):
            return self._unauthorised()
        self.rest_requests += 1
        return None

    def _repo_of(self, request: Request) -> dict[str, Any] | None:
        assert request.match is not None
        return self.repos.get(f"{request.match['owner']}/{request.match['repo']}")

    def _not_found_rest(self) -> Reply:
        return Reply(404, {"message": "Not Found", "documentation_url": "https://docs.github.com"})

    def _user(self, request: Request) -> Reply:
        return self._rest(request) or Reply(
            200, {"login": self.viewer, "id": 1}, self._rate_headers("core")
        )

    def _repo(self, request: Request) -> Reply:
        denied = self._rest(request)
        if denied:
            return denied
        repo = self._repo_of(request)
        if repo is None:
            return self._not_found_rest()
        return Reply(
            200,
            {"full_name": repo["nameWithOwner"], "node_id": repo["id"], "private": False},
            self._rate_headers("core"),
        )

    def _paged(self, request: Request, rows: list[Any], *, conditional: bool = True) -> Reply:
        """One page of `rows` with a `link` header and an ETag (304 on If-None-Match)."""
        try:
            per_page = min(100, int(request.arg("per_page", "30") or 30))
            page = max(1, int(request.arg("page", "1") or 1))
        except ValueError:
            return Reply(400, {"message": "Invalid page"})
        chunk = rows[(page - 1) * per_page : page * per_page]
        body = json.dumps(chunk).encode()
        etag = f'W/"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
        headers = {"etag": etag, **self._rate_headers("core")}
        last = max(1, -(-len(rows) // per_page))
        links = []
        host = request.headers.get("host", "127.0.0.1")
        for rel, number in (("next", page + 1), ("last", last)):
            if page < last:
                query = {k: v[0] for k, v in request.query.items()}
                query.update(page=str(number), per_page=str(per_page))
                links.append(f'<http://{host}{request.path}?{urlencode(query)}>; rel="{rel}"')
        if links:
            headers["link"] = ", ".join(links)
        if conditional and request.headers.get("if-none-match") == etag:
            self.rest_requests -= 1  # a 304 costs no quota
            return Reply(304, None, headers)
        return Reply(200, None, headers, raw=body)

    def rest_issue(self, content: dict[str, Any]) -> dict[str, Any]:
        """The REST representation of an issue or pull request."""
        repo = content["repository"]["nameWithOwner"]
        pr = content["__typename"] == "PullRequest"
        milestone = content.get("milestone")
        out: dict[str, Any] = {
            "id": content["databaseId"],
            "node_id": content["id"],
            "number": content["number"],
            "title": content["title"],
            "body": "secret body text",
            "state": "open" if content["state"] == "OPEN" else "closed",
            "state_reason": None if pr else (content.get("stateReason") or "").lower() or None,
            "html_url": content["url"],
            "created_at": content["createdAt"],
            "updated_at": content["updatedAt"],
            "closed_at": content["closedAt"],
            "labels": [{"name": n} for n in content["_labels"]],
            "assignee": {"login": content["_assignees"][0]} if content["_assignees"] else None,
            "assignees": [{"login": n} for n in content["_assignees"]],
            "milestone": None
            if not milestone
            else {
                "node_id": milestone["id"],
                "number": milestone["number"],
                "title": milestone["title"],
                "due_on": milestone["dueOn"],
                "state": milestone["state"].lower(),
            },
            "user": {"login": "someone"},
        }
        if pr:
            out["pull_request"] = {
                "url": f"https://api.github.com/repos/{repo}/pulls/{content['number']}",
                "merged_at": content.get("mergedAt"),
            }
        return out

    def _list_issues(self, request: Request) -> Reply:
        denied = self._rest(request)
        if denied:
            return denied
        repo = self._repo_of(request)
        if repo is None:
            return self._not_found_rest()
        state = request.arg("state", "open")
        since = request.arg("since")
        sort = request.arg("sort", "created")
        direction = request.arg("direction", "desc")
        with self._data_lock:
            rows = [
                c
                for c in repo["_issues"].values()
                if state == "all" or (state == "open") == (c["state"] == "OPEN")
            ]
            if since:
                rows = [c for c in rows if c["updatedAt"] >= since]
            key = "updatedAt" if sort == "updated" else "createdAt"
            rows.sort(key=lambda c: (c[key], c["number"]), reverse=direction != "asc")
            issues = [self.rest_issue(c) for c in rows]
        return self._paged(request, issues)

    def _list_milestones(self, request: Request) -> Reply:
        denied = self._rest(request)
        if denied:
            return denied
        repo = self._repo_of(request)
        if repo is None:
            return self._not_found_rest()
        state = request.arg("state", "open")
        rows = [
            {
                "node_id": m["id"],
                "number": m["number"],
                "title": m["title"],
                "due_on": m["dueOn"],
                "state": m["state"].lower(),
                "html_url": m["url"],
            }
            for m in repo["_milestones"]
            if state == "all" or m["state"].lower() == state
        ]
        return self._paged(request, rows)

    def _comment_json(self, repo: dict[str, Any], comment: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": comment["id"],
            "node_id": f"IC_{comment['id']}",
            "html_url": f"{repo['url']}/issues/{comment['issue']}#issuecomment-{comment['id']}",
            "body": comment["body"],
            "created_at": comment["created_at"],
            "updated_at": comment["updated_at"],
        }

    def _list_comments(self, request: Request) -> Reply:
        denied = self._rest(request)
        if denied:
            return denied
        repo = self._repo_of(request)
        assert request.match is not None
        number = int(request.match["number"])
        if repo is None or number not in repo["_issues"]:
            return self._not_found_rest()
        rows = [
            self._comment_json(repo, c) for c in repo["_comments"].values() if c["issue"] == number
        ]
        return self._paged(request, rows, conditional=False)

    def _too_long(self, body: Any) -> Reply | None:
        if isinstance(body, str) and len(body) <= BODY_LIMIT:
            return None
        return Reply(
            422,
            {
                "message": "Validation Failed",
                "errors": [
                    {
                        "resource": "IssueComment",
                        "code": "unprocessable",
                        "field": "data",
                        "message": "Body is too long (maximum is 65536 characters)",
                    }
                ],
            },
        )

    def _create_comment(self, request: Request) -> Reply:
        denied = self._rest(request)
        if denied:
            return denied
        repo = self._repo_of(request)
        assert request.match is not None
        number = int(request.match["number"])
        if repo is None or number not in repo["_issues"]:
            return self._not_found_rest()
        body = (request.json() or {}).get("body")
        refused = self._too_long(body)
        if refused:
            return refused
        with self._data_lock:
            stamp = self.tick(1)
            comment = {
                "id": self.next_id(),
                "issue": number,
                "body": body,
                "created_at": stamp,
                "updated_at": stamp,
            }
            repo["_comments"][comment["id"]] = comment
            self.mutations.append(f"POST comment {comment['id']}")
        return Reply(201, self._comment_json(repo, comment), self._rate_headers("core"))

    def _update_comment(self, request: Request) -> Reply:
        denied = self._rest(request)
        if denied:
            return denied
        repo = self._repo_of(request)
        assert request.match is not None
        comment = repo["_comments"].get(int(request.match["id"])) if repo else None
        if repo is None or comment is None:
            return self._not_found_rest()
        body = (request.json() or {}).get("body")
        refused = self._too_long(body)
        if refused:
            return refused
        with self._data_lock:
            comment["body"] = body
            comment["updated_at"] = self.tick(1)
            self.mutations.append(f"PATCH comment {comment['id']}")
        return Reply(200, self._comment_json(repo, comment), self._rate_headers("core"))


def _format_error(error: GraphQLError) -> dict[str, Any]:
    """GitHub's error shape: `type` at the top level, with `path` and `locations`."""
    out: dict[str, Any] = {}
    kind = (error.extensions or {}).get("type")
    if kind:
        out["type"] = kind
    if error.path:
        out["path"] = list(error.path)
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    out["message"] = error.message
    return out


class _Root:
    """Query and Mutation root fields."""

    def __init__(self, fake: FakeGitHub) -> None:
        self.fake = fake

    def rateLimit(self, info: Any, dryRun: bool = False) -> dict[str, Any]:
        fake = self.fake
        return {
            "cost": info.context["cost"],
            "limit": fake.rate_limit,
            "remaining": max(0, fake.rate_limit - fake.points),
            "used": fake.points,
            "nodeCount": info.context["nodes"],
            "resetAt": iso(datetime.now(UTC) + timedelta(hours=1)),
        }

    def viewer(self, info: Any) -> dict[str, Any]:
        return {"__typename": "User", "login": self.fake.viewer, "id": "U_viewer"}

    def repositoryOwner(self, info: Any, login: str) -> dict[str, Any] | None:
        return self.fake.owners.get(login)

    def organization(self, info: Any, login: str) -> dict[str, Any]:
        owner = self.fake.owners.get(login)
        if owner is None or owner["__typename"] != "Organization":
            raise _not_found(f"Could not resolve to an Organization with the login of '{login}'.")
        return owner

    def user(self, info: Any, login: str) -> dict[str, Any]:
        owner = self.fake.owners.get(login)
        if owner is None or owner["__typename"] != "User":
            raise _not_found(f"Could not resolve to a User with the login of '{login}'.")
        return owner

    def repository(self, info: Any, owner: str, name: str, **_: Any) -> dict[str, Any]:
        repo = self.fake.repos.get(f"{owner}/{name}")
        if repo is None:
            raise _not_found(f"Could not resolve to a Repository with the name '{owner}/{name}'.")
        return repo

    def node(self, info: Any, id: str) -> dict[str, Any] | None:
        found = self.fake.nodes.get(id)
        if found is None:
            raise _not_found(f"Could not resolve to a node with the global id of '{id}'")
        return found

    def nodes(self, info: Any, ids: list[str]) -> list[dict[str, Any] | None]:
        return [self.fake.nodes.get(i) for i in ids]

    # -- mutations --------------------------------------------------------------------------------

    def _status_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("startDate", "targetDate"):
            if key in data:
                value = data[key]
                try:
                    if value is not None:
                        datetime.strptime(str(value), "%Y-%m-%d")
                except ValueError:
                    raise GraphQLError(f"'{value}' is not a valid date") from None
                out[key] = value
        if "body" in data:
            if data["body"] is not None and len(data["body"]) > BODY_LIMIT:
                raise GraphQLError(
                    "Body is too long (maximum is 65536 characters)",
                    extensions={"type": "UNPROCESSABLE"},
                )
            out["body"] = data["body"]
        if "status" in data:
            out["status"] = data["status"]
        return out

    def createProjectV2StatusUpdate(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        fake = self.fake
        project = fake.nodes.get(input["projectId"])
        if project is None or project.get("__typename") != "ProjectV2":
            raise _not_found(
                f"Could not resolve to a node with the global id of '{input['projectId']}'"
            )
        stamp = fake.tick(1)
        update = {
            "__typename": "ProjectV2StatusUpdate",
            "id": f"PVTSU_{fake.next_id()}",
            "body": None,
            "status": None,
            "startDate": None,
            "targetDate": None,
            "createdAt": stamp,
            "updatedAt": stamp,
            "project": project,
            **self._status_fields(input),
        }
        project["_updates"].insert(0, update)  # newest first
        fake.nodes[update["id"]] = update
        fake.mutations.append(f"create {update['id']}")
        return {"statusUpdate": update, "clientMutationId": input.get("clientMutationId")}

    def updateProjectV2StatusUpdate(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        fake = self.fake
        update = fake.nodes.get(input["statusUpdateId"])
        if update is None or update.get("__typename") != "ProjectV2StatusUpdate":
            raise _not_found(
                f"Could not resolve to a node with the global id of '{input['statusUpdateId']}'"
            )
        update.update(self._status_fields(input))
        update["updatedAt"] = fake.tick(1)
        fake.mutations.append(f"update {update['id']}")
        return {"statusUpdate": update, "clientMutationId": input.get("clientMutationId")}

    def deleteProjectV2StatusUpdate(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        fake = self.fake
        update = fake.nodes.pop(input["statusUpdateId"], None)
        if update is None:
            raise _not_found(
                f"Could not resolve to a node with the global id of '{input['statusUpdateId']}'"
            )
        update["project"]["_updates"].remove(update)
        fake.mutations.append(f"delete {update['id']}")
        return {"deletedStatusUpdateId": update["id"], "projectV2": update["project"]}


# -- generated boards (benchmark and scale tests) -------------------------------------------------

STATUSES = ("Todo", "In Progress", "In Review", "Blocked", "Done")
LABELS = ("bug", "feature", "change-request", "needs-client", "internal", "ux", "backend")
PEOPLE = ("ana", "bo", "chen", "dee", "eli", "fay")


def make_board(
    n: int,
    seed: int = 1,
    *,
    owner: str = "acme",
    number: int = 1,
    fake: FakeGitHub | None = None,
    **kw: Any,
) -> FakeGitHub:
    """A fake (not started) with board `owner/number` holding `n` generated items.

    Mix: ~72% issues (some closed, some sub-issues), ~15% pull requests, ~8% drafts,
    ~3% archived, ~2% redacted; statuses, dates, estimates, iterations, labels, assignees.
    """
    rng = random.Random(seed)
    fake = fake or FakeGitHub(**kw)
    project = fake.add_project(owner, number, "Website relaunch")
    repos = [f"{owner}/web", f"{owner}/api"]
    milestones = [
        fake.add_milestone(repos[i % 2], f"Release {i + 1}", f"2026-{11 + i // 2:02d}-{10 + i}")
        for i in range(4)
    ]
    parents: list[dict[str, Any]] = []
    day0 = T0.date()
    for i in range(n):
        roll = rng.random()
        stamp = str(iso(T0 - timedelta(minutes=n - i)))
        fake.now = T0 - timedelta(minutes=n - i)
        status = rng.choice(STATUSES) if rng.random() < 0.9 else None
        extra: dict[str, Any] = {
            "status": status,
            "estimate": rng.choice((1, 2, 3, 5, 8)) if rng.random() < 0.7 else None,
            "iteration": rng.randrange(3) if rng.random() < 0.5 else None,
        }
        if rng.random() < 0.6:
            start = day0 + timedelta(days=rng.randrange(-30, 30))
            extra["start"] = start.isoformat()
            extra["target"] = (start + timedelta(days=rng.randrange(1, 20))).isoformat()
        if roll < 0.02:
            fake.add_item(project, redacted=True)
            continue
        if roll < 0.10:
            fake.add_item(
                project,
                draft=f"Draft idea {i}",
                assignees=rng.sample(PEOPLE, rng.randrange(2)),
                **extra,
            )
            continue
        pr = roll < 0.25
        done = status == "Done" or rng.random() < 0.1
        parent = rng.choice(parents) if parents and not pr and rng.random() < 0.2 else None
        content = fake.add_issue(
            rng.choice(repos),
            f"{'Implement' if pr else 'Task'} {i}: {rng.choice(LABELS)} work",
            pr=pr,
            state=("MERGED" if pr else "CLOSED") if done else "OPEN",
            reason=None if pr or not done else ("NOT_PLANNED" if rng.random() < 0.1 else None),
            labels=rng.sample(LABELS, rng.randrange(3)),
            assignees=rng.sample(PEOPLE, rng.randrange(3)),
            milestone=rng.choice(milestones) if rng.random() < 0.5 else None,
            parent=parent,
            updated=stamp,
        )
        if not pr and rng.random() < 0.03:
            parents.append(content)
        fake.add_item(project, content, archived=rng.random() < 0.03, **extra)
    fake.now = T0
    return fake


# -- benchmark entry point ------------------------------------------------------------------------


def run_benchmark(
    n: int, *, seed: int = 1, moved: float = 0.01, store: Any = None
) -> dict[str, Any]:
    """Sync a generated board of `n` items through the engine: a full sweep, then an
    incremental one after `moved` of the items changed column. Returns timings and the
    GraphQL requests and points per 1,000 board items of each sweep."""
    from connectors.github import GitHubConnector, GitHubSettings
    from sync.engine import sync_source
    from sync.store import Store

    github_schema()
    started = time.perf_counter()
    fake = make_board(n, seed)
    built = time.perf_counter() - started
    fake.cache_pages = True
    own_store = store is None
    store = store or Store.memory()
    out: dict[str, Any] = {"items": n, "build_seconds": round(built, 2)}
    settings = GitHubSettings(project="acme/1", token=fake.token, api_url="http://127.0.0.1:1")
    try:
        with fake:
            settings = settings.model_copy(update={"api_url": fake.url})
            rng = random.Random(seed)
            project = fake.project("acme", 1)
            for run in ("full", "incremental"):
                if run == "incremental":
                    visible = [i for i in project["_items"] if i["type"] != "REDACTED"]
                    for item in rng.sample(visible, max(1, int(len(visible) * moved))):
                        fake.move(item, rng.choice(STATUSES))
                requests, points = fake.graphql_requests, fake.points
                connector = GitHubConnector("board", settings)
                t = time.perf_counter()
                result = sync_source(store, connector, full=run == "full")
                seconds = time.perf_counter() - t
                if not result.ok:
                    raise RuntimeError(result.error)
                reqs = fake.graphql_requests - requests
                pts = fake.points - points
                out[run] = {
                    "seconds": round(seconds, 2),
                    "items_per_second": round(n / seconds) if seconds else None,
                    "requests": reqs,
                    "points": pts,
                    "requests_per_1000": round(1000 * reqs / n, 2),
                    "points_per_1000": round(1000 * pts / n, 2),
                    "new": result.new,
                    "changed": result.changed,
                    "tombstoned": result.tombstoned,
                }
    finally:
        if own_store:
            store.close()
    return out
