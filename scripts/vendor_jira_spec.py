#!/usr/bin/env python3
"""Regenerate tests/specs/jira/: the trimmed subset of Atlassian's OpenAPI the Jira tests use.

Reads `../shared/specs/jira-platform-openapi.json` and `jira-software-openapi.json` (or the
folder given with --specs), keeps only the operations the Jira connector calls and the fake
Jira serves, plus every component schema they reference (transitively) and the few schemas
the contract tests check issue fields against, drops prose (descriptions, examples), and
writes `platform.json` and `software.json`. Run it again after updating the specs:

    python scripts/vendor_jira_spec.py [--specs ../shared/specs] [--out tests/specs/jira]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

PLATFORM_OPERATIONS: dict[str, tuple[str, ...]] = {
    "/rest/api/3/serverInfo": ("get",),
    "/rest/api/3/myself": ("get",),
    "/rest/api/3/field": ("get",),
    "/rest/api/3/status": ("get",),
    "/rest/api/3/search/jql": ("get", "post"),
    # Removed on Cloud (410), still the Data Center search (as /rest/api/2/search).
    "/rest/api/3/search": ("get", "post"),
    "/rest/api/3/changelog/bulkfetch": ("post",),
    "/rest/api/3/project/{projectIdOrKey}/version": ("get",),
    "/rest/api/3/issue/{issueIdOrKey}": ("get",),
    "/rest/api/3/issue/{issueIdOrKey}/comment": ("get", "post"),
    "/rest/api/3/issue/{issueIdOrKey}/comment/{id}": ("get", "put"),
    "/rest/api/3/comment/list": ("post",),
    "/rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}": ("get", "put"),
    "/rest/api/3/comment/{commentId}/properties/{propertyKey}": ("get", "put"),
}
# Schemas the contract tests validate issue `fields` values against (IssueBean.fields is
# free-form in the spec, so these are checked field by field).
PLATFORM_EXTRA_SCHEMAS = (
    "StatusDetails",
    "IssueTypeDetails",
    "Priority",
    "UserDetails",
    "Resolution",
    "Version",
    "ErrorCollection",
)
SOFTWARE_OPERATIONS: dict[str, tuple[str, ...]] = {
    "/rest/agile/1.0/board/{boardId}/sprint": ("get",),
}
SOFTWARE_EXTRA_SCHEMAS = ("SprintBean",)

PROSE = {
    "description",
    "example",
    "examples",
    "summary",
    "externalDocs",
    "x-atlassian-connect-scope",
}


def _strip(node: Any) -> Any:
    """Drop prose keys everywhere (property names that happen to be prose words are kept)."""
    if isinstance(node, list):
        return [_strip(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {k: _strip(v) for k, v in value.items()}
        elif (key in PROSE and not isinstance(value, dict | list)) or key in (
            "example",
            "examples",
        ):
            continue
        else:
            out[key] = _strip(value)
    return out


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def subset(
    spec: dict[str, Any], operations: dict[str, tuple[str, ...]], extra: tuple[str, ...]
) -> dict[str, Any]:
    """Return the spec with only `operations` and the schemas they need."""
    paths: dict[str, Any] = {}
    for path, methods in operations.items():
        item = spec["paths"][path]
        kept = {m: _strip(item[m]) for m in methods}
        for op in kept.values():
            op.pop("security", None)
            op.pop("x-atlassian-oauth2-scopes", None)
            op.pop("x-atlassian-data-security-policy", None)
        if "parameters" in item:
            kept["parameters"] = _strip(item["parameters"])
        paths[path] = kept
    all_schemas = spec["components"]["schemas"]
    wanted = _refs(paths) | set(extra)
    schemas: dict[str, Any] = {}
    while wanted:
        name = wanted.pop()
        if name in schemas:
            continue
        schemas[name] = _strip(all_schemas[name])
        wanted |= _refs(schemas[name]) - set(schemas)
    return {
        "openapi": spec["openapi"],
        "info": {k: spec["info"][k] for k in ("title", "version", "license") if k in spec["info"]},
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--specs", type=Path, default=ROOT.parent / "shared" / "specs")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "specs" / "jira")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = (
        (
            "jira-platform-openapi.json",
            "platform.json",
            PLATFORM_OPERATIONS,
            PLATFORM_EXTRA_SCHEMAS,
        ),
        (
            "jira-software-openapi.json",
            "software.json",
            SOFTWARE_OPERATIONS,
            SOFTWARE_EXTRA_SCHEMAS,
        ),
    )
    for source, target, operations, extra in jobs:
        spec = json.loads((args.specs / source).read_text(encoding="utf-8"))
        out = subset(spec, operations, extra)
        text = json.dumps(out, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        (args.out / target).write_text(text, encoding="utf-8")
        print(
            f"{target}: {len(out['paths'])} paths, {len(out['components']['schemas'])} schemas,"
            f" {len(text):,} chars (from {source})"
        )


if __name__ == "__main__":
    main()
