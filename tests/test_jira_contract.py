"""Contract tests: every request the Jira connector sends, and every answer the fake Jira
serves, checked against the vendored subset of Atlassian's OpenAPI (tests/specs/jira/).

Data Center paths (`/rest/api/2/…`) are checked against their v3 twins: Jira documents v2
and v3 as the same API except for rich-text fields (strings in v2, ADF in v3), and the spec
leaves comment bodies untyped.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from jsonschema import Draft4Validator

from config.schema import Config, ProjectSettings
from connectors.base import PublishTarget
from connectors.jira import JiraConnector, JiraSettings
from sync.engine import sync_source
from sync.publish import publish_project
from sync.store import Store
from tests.fakes.jira import FakeJira, make_issues
from tests.fakes.server import Reply, Request

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "tests" / "specs" / "jira"
NOW = datetime.now(UTC)
DATETIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4}$"}
DATE = {"type": ["string", "null"], "pattern": r"^\d{4}-\d{2}-\d{2}$"}


# -- OpenAPI 3.0 -> JSON Schema ----------------------------------------------------------------


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects as JSON Schema draft 4: `nullable` becomes a null type;
    `format`, `readOnly`, `xml` and the other annotations are dropped."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: to_json_schema(v) for name, v in value.items()}
        elif key in (
            "nullable",
            "readOnly",
            "writeOnly",
            "xml",
            "discriminator",
            "deprecated",
            "format",
            "default",
        ):
            continue
        else:
            out[key] = to_json_schema(value)
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


class Spec:
    def __init__(self, path: Path) -> None:
        self.doc = json.loads(path.read_text(encoding="utf-8"))
        self.components = {
            "schemas": {n: to_json_schema(s) for n, s in self.doc["components"]["schemas"].items()}
        }
        self.templates = [
            (re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(t)) + "$"), t)
            for t in self.doc["paths"]
        ]

    def validator(self, schema: dict[str, Any]) -> Draft4Validator:
        return Draft4Validator({**to_json_schema(schema), "components": self.components})

    def ref(self, name: str) -> Draft4Validator:
        return self.validator({"$ref": f"#/components/schemas/{name}"})

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        for rx, template in self.templates:
            if rx.match(path):
                item = self.doc["paths"][template]
                op = item.get(method.lower())
                if op is None:
                    raise AssertionError(f"{method} {path}: the spec has no {method} on {template}")
                params = [*item.get("parameters", []), *op.get("parameters", [])]
                return template, op, params
        raise AssertionError(f"{method} {path}: no such path in the vendored spec")


@cache
def platform() -> Spec:
    return Spec(SPECS / "platform.json")


@cache
def software() -> Spec:
    return Spec(SPECS / "software.json")


def spec_path(path: str) -> tuple[Spec, str]:
    if path.startswith("/rest/agile/1.0/"):
        return software(), path
    return platform(), re.sub(r"^/rest/api/(2|latest)/", "/rest/api/3/", path)


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "integer":
        return int(value)
    if kind == "boolean":
        return {"true": True, "false": False}[value]
    if kind == "array":
        return [_coerce(v, schema.get("items", {})) for v in value.split(",")]
    return value


def check_request(request: Request) -> None:
    """Method, path, query parameter names and values, and JSON body against the spec."""
    spec, path = spec_path(request.path)
    _template, op, params = spec.operation(request.method, path)
    declared = {p["name"]: p for p in params if p.get("in") == "query"}
    for name, values in request.query.items():
        assert name in declared, (
            f"{request.method} {request.path}: undeclared query parameter {name!r}"
        )
        schema = declared[name].get("schema", {})
        for value in values:
            coerced = _coerce(value, schema)
            errors = list(spec.validator(schema).iter_errors(coerced))
            assert not errors, (
                f"{request.method} {request.path} ?{name}={value}: {errors[0].message}"
            )
    body_schema = (
        op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    )
    if request.body:
        assert body_schema is not None, f"{request.method} {request.path}: the spec takes no body"
        errors = list(spec.validator(body_schema).iter_errors(json.loads(request.body)))
        assert not errors, (
            f"{request.method} {request.path} body: {errors[0].message} at {list(errors[0].path)}"
        )
    else:
        assert not op.get("requestBody", {}).get("required"), (
            f"{request.method} {request.path}: body required"
        )


# Issue `fields` are free-form in IssueBean; the fields pmsync reads are checked one by one.
FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "summary": {"type": "string"},
    "status": {"$ref": "#/components/schemas/StatusDetails"},
    "issuetype": {"$ref": "#/components/schemas/IssueTypeDetails"},
    "priority": {"anyOf": [{"$ref": "#/components/schemas/Priority"}, {"type": "null"}]},
    "assignee": {"anyOf": [{"$ref": "#/components/schemas/UserDetails"}, {"type": "null"}]},
    "resolution": {"anyOf": [{"$ref": "#/components/schemas/Resolution"}, {"type": "null"}]},
    "fixVersions": {"type": "array", "items": {"$ref": "#/components/schemas/Version"}},
    "labels": {"type": "array", "items": {"type": "string"}},
    "created": DATETIME,
    "updated": DATETIME,
    "statuscategorychangedate": DATETIME,
    "resolutiondate": {"anyOf": [DATETIME, {"type": "null"}]},
    "duedate": DATE,
}
# The agile spec has only an example for the sprint page; this wraps its SprintBean schema in
# the page shape of jira-api.md §5 (values, startAt, maxResults, isLast; no total on Cloud).
SPRINT_PAGE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["values", "isLast"],
    "properties": {
        "maxResults": {"type": "integer"},
        "startAt": {"type": "integer"},
        "total": {"type": "integer"},
        "isLast": {"type": "boolean"},
        "values": {"type": "array", "items": {"$ref": "#/components/schemas/SprintBean"}},
    },
}


def check_reply(request: Request, reply: Reply) -> None:
    """The answer's JSON against the response schema of its status (errors: ErrorCollection)."""
    spec, path = spec_path(request.path)
    template, op, _ = spec.operation(request.method, path)
    where = f"{request.method} {request.path} -> {reply.status}"
    body = reply.body
    if reply.status >= 400:
        errors = list(platform().ref("ErrorCollection").iter_errors(body))
        assert not errors, f"{where}: {errors[0].message}"
        return
    response = op["responses"].get(str(reply.status))
    assert response is not None, f"{where}: status not in the spec ({sorted(op['responses'])})"
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    if template == "/rest/agile/1.0/board/{boardId}/sprint":
        schema = SPRINT_PAGE
    if body is None:
        assert not schema, f"{where}: an empty answer where the spec has a body"
        return
    assert schema is not None, f"{where}: the spec has no schema for this answer"
    errors = list(spec.validator(schema).iter_errors(body))
    assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"
    issues = body.get("issues") if isinstance(body, dict) else None
    if isinstance(body, dict) and "fields" in body and "key" in body:
        issues = [body]
    for issue in issues or ():
        check_fields(issue, where)


def check_fields(issue: dict[str, Any], where: str = "issue") -> None:
    for name, value in (issue.get("fields") or {}).items():
        schema = FIELD_SCHEMAS.get(name)
        if schema is None:
            continue
        errors = list(platform().validator(schema).iter_errors(value))
        assert not errors, f"{where} {issue.get('key')}.{name}: {errors[0].message}"


# -- the traffic --------------------------------------------------------------------------------


def _settings(fake: FakeJira, **kw: Any) -> JiraSettings:
    base: dict[str, Any] = {
        "kind": "jira",
        "url": fake.url,
        "email": fake.email if fake.flavor == "cloud" else None,
        "token": fake.token,
        "jql": "project = ACME",
        "board": 5,
    }
    return JiraSettings(**{**base, **kw})


def _exercise(fake: FakeJira) -> None:
    """Everything the connector does: full, incremental, census, history, milestones, publish."""
    store = Store.memory()
    source = "jira"
    settings = _settings(fake)
    assert sync_source(store, JiraConnector(source, settings)).status == "ok"
    fake.update("ACME-3", status_id="10002", resolution="Won't Do")
    fake.add("Added")
    result = sync_source(store, JiraConnector(source, settings), census_every=timedelta(0))
    assert result.status == "ok", result.error
    tz = sync_source(store, JiraConnector(source, _settings(fake, since_format="user-timezone")))
    assert tz.status == "ok", tz.error
    assert JiraConnector(source, settings).check()
    config = Config(
        sources={source: settings},
        projects={
            "acme": ProjectSettings(
                name="ACME", sources=[source], publish=[PublishTarget(to=source, issue="ACME-1")]
            )
        },
    )
    end = NOW.date()
    for _ in range(2):
        (published,) = publish_project(
            store, config, "acme", start=end - timedelta(days=6), end=end, now=NOW
        )
        assert published.ok, published.error
        fake.update("ACME-2", summary="Changed for the second publish")
        assert sync_source(store, JiraConnector(source, settings)).status == "ok"
    # A lost store and an issue property that cannot be written: found via comment properties.
    fake.forbid_properties = True
    fresh = Store.memory()
    assert sync_source(fresh, JiraConnector(source, settings)).status == "ok"
    for _ in range(2):
        (again,) = publish_project(
            fresh,
            config,
            "acme",
            start=end - timedelta(days=13),
            end=end - timedelta(days=7),
            now=NOW,
        )
        assert again.ok, again.error
        fresh = Store.memory()
        assert sync_source(fresh, JiraConnector(source, settings)).status == "ok"


@pytest.fixture(scope="module")
def traffic() -> Iterator[list[tuple[Request, Reply]]]:
    pairs: list[tuple[Request, Reply]] = []
    with FakeJira(make_issues(260, seed=21)) as cloud:
        _exercise(cloud)
        # A Cloud site set to flavor "datacenter": the removed search answers 410.
        sync_source(Store.memory(), JiraConnector("x", _settings(cloud, flavor="datacenter")))
        pairs += cloud.replies
    dc_issues = make_issues(160, seed=22, flavor="datacenter")
    with FakeJira(dc_issues, flavor="datacenter", embedded_changelog_cap=2) as dc:
        _exercise(dc)
        pairs += dc.replies
    yield pairs


def test_every_request_exists_in_the_spec(traffic: list[tuple[Request, Reply]]) -> None:
    used = set()
    for request, _reply in traffic:
        check_request(request)
        spec, path = spec_path(request.path)
        used.add((request.method, spec.operation(request.method, path)[0]))
    # The traffic really covers what the connector does.
    assert {
        ("POST", "/rest/api/3/search/jql"),
        ("GET", "/rest/api/3/search"),
        ("POST", "/rest/api/3/changelog/bulkfetch"),
        ("GET", "/rest/api/3/serverInfo"),
        ("GET", "/rest/api/3/myself"),
        ("GET", "/rest/api/3/field"),
        ("GET", "/rest/api/3/project/{projectIdOrKey}/version"),
        ("GET", "/rest/agile/1.0/board/{boardId}/sprint"),
        ("GET", "/rest/api/3/issue/{issueIdOrKey}"),
        ("GET", "/rest/api/3/issue/{issueIdOrKey}/comment"),
        ("POST", "/rest/api/3/issue/{issueIdOrKey}/comment"),
        ("PUT", "/rest/api/3/issue/{issueIdOrKey}/comment/{id}"),
        ("POST", "/rest/api/3/comment/list"),
        ("GET", "/rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}"),
        ("PUT", "/rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}"),
    } <= used


def test_every_answer_the_fake_serves_matches_the_spec(
    traffic: list[tuple[Request, Reply]],
) -> None:
    statuses = set()
    for request, reply in traffic:
        check_reply(request, reply)
        statuses.add(reply.status)
    assert {200, 201, 403, 404, 410} <= statuses


def test_the_checks_reject_what_the_spec_does_not_allow() -> None:
    def request(method: str, path: str, query: str = "", body: Any = None) -> Request:
        raw = b"" if body is None else json.dumps(body).encode()
        return Request(method, path, parse_qs(query, keep_blank_values=True), {}, raw)

    search = {"jql": "project = A", "maxResults": 100, "fields": ["summary"]}
    check_request(request("POST", "/rest/api/3/search/jql", body=search))
    bad_requests = [
        # §10.4: treating search/jql like the old API.
        request("POST", "/rest/api/3/search/jql", body={**search, "startAt": 100}),
        request("GET", "/rest/api/3/search/jql", "jql=project%3DA&startAt=100"),
        request("POST", "/rest/api/3/search/jql", body={**search, "maxResults": "many"}),
        request(
            "POST",
            "/rest/api/3/changelog/bulkfetch",
            body={"issueIdsOrKeys": [str(i) for i in range(1001)]},
        ),
        request("POST", "/rest/api/3/changelog/bulkfetch", body={"fieldIds": ["status"]}),
        request("GET", "/rest/api/3/project/A/version", "orderBy=updated"),
        request("DELETE", "/rest/api/3/search/jql"),
        request("POST", "/rest/api/3/issue/A-1/commentz", body={"body": "x"}),
        request("POST", "/rest/api/3/comment/list", body={"ids": ["a"]}),
    ]
    for bad in bad_requests:
        with pytest.raises(AssertionError):
            check_request(bad)

    page = {"issues": [{"id": "1", "key": "A-1", "fields": {"summary": "x"}}], "isLast": True}
    check_reply(request("POST", "/rest/api/3/search/jql"), Reply(200, page))
    bad_replies = [
        {**page, "total": 1},  # search/jql has no total
        {**page, "nextPageToken": 5},
        {**page, "issues": {"id": "1"}},
        {"issues": [{"id": 1}], "isLast": True},
        {"issues": [{"id": "1", "key": "A-1", "fields": {"status": "Done"}}]},
        {"issues": [{"id": "1", "key": "A-1", "fields": {"updated": "2025-01-09 16:20"}}]},
    ]
    for bad in bad_replies:
        with pytest.raises(AssertionError):
            check_reply(request("POST", "/rest/api/3/search/jql"), Reply(200, bad))
    with pytest.raises(AssertionError):
        check_reply(
            request("GET", "/rest/agile/1.0/board/5/sprint"),
            Reply(200, {"values": [{"id": "37"}], "isLast": True}),
        )
    with pytest.raises(AssertionError):
        check_reply(
            request("GET", "/rest/api/3/serverInfo"),
            Reply(200, {"deploymentType": "Cloud", "extra": 1}),
        )
    with pytest.raises(AssertionError):
        check_reply(request("GET", "/rest/api/3/field"), Reply(410, {"message": "gone"}))


def test_nullable_becomes_a_null_type() -> None:
    schema = to_json_schema({"type": "string", "nullable": True, "enum": ["a"]})
    assert schema == {"type": ["string", "null"], "enum": ["a", None]}
    assert to_json_schema({"allOf": [{"$ref": "#/x"}], "nullable": True}) == {
        "anyOf": [{"allOf": [{"$ref": "#/x"}]}, {"type": "null"}]
    }
    assert to_json_schema({"properties": {"format": {"type": "string", "format": "uri"}}}) == {
        "properties": {"format": {"type": "string"}}
    }


SHARED = ROOT.parent / "shared" / "specs"


@pytest.mark.skipif(
    not (SHARED / "jira-platform-openapi.json").exists(), reason="no ../shared/specs"
)
def test_the_vendored_subset_is_what_the_script_regenerates(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import vendor_jira_spec as vendor
    finally:
        sys.path.pop(0)
    for source, target, ops, extra in (
        (
            "jira-platform-openapi.json",
            "platform.json",
            vendor.PLATFORM_OPERATIONS,
            vendor.PLATFORM_EXTRA_SCHEMAS,
        ),
        (
            "jira-software-openapi.json",
            "software.json",
            vendor.SOFTWARE_OPERATIONS,
            vendor.SOFTWARE_EXTRA_SCHEMAS,
        ),
    ):
        spec = json.loads((SHARED / source).read_text(encoding="utf-8"))
        fresh = vendor.subset(spec, ops, extra)
        assert fresh == json.loads((SPECS / target).read_text(encoding="utf-8")), target
