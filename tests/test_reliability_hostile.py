"""Hostile content from a source is stored as data and rendered safely everywhere.

Titles anyone with access to a tool can write: huge ones, control characters, lone surrogates
(an invalid `\\ud800` escape in the JSON), HTML and `<script>`, Markdown and ADF/wiki
injection, @mentions and #references. The store keeps them exactly (a lone surrogate, which
UTF-8 cannot hold, becomes U+FFFD); every report format and every published body keeps them
inert.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli import cli
from sync.store import Store
from tests.conftest import store_rows
from tests.fakes.github import FakeGitHub, make_board
from tests.fakes.jira import FakeJira, adf_problem
from tests.test_reliability_support import GITHUB_TOKEN, JIRA_TOKEN, jira_issues, running

HUGE = "Huge " + "H" * 200_000
HOSTILE = {
    "script": "<script>alert('x')</script><img src=x onerror=alert(2)> </td></tr></table>",
    "markdown": "[click](javascript:alert(1)) ![p](http://evil.example/p.png) **b** | c |",
    "heading": "# Not a heading\n- not a list\n```\ncode fence",
    "mention": "@everyone @here ping @octocat, see #1, acme/web#2 and GH-3",
    "control": "bell\x07 esc\x1b[31mred\x1b[0m nul\x00 bidi\u202eevil\u2066x\u2069",
    "surrogate": "lone \ud800 surrogate",
    "adf": '{"type":"mention","attrs":{"id":"all"}} {{color:red}}x{{color}} [~accountid:1]',
    "mermaid": 'title x\nsection y\nclick a call alert("x") : done, 2026-01-01, 1d',
    "huge": HUGE,
}
STORED = {**HOSTILE, "surrogate": "lone \ufffd surrogate"}
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def fakes() -> Iterator[tuple[FakeJira, FakeGitHub]]:
    with (
        running(FakeJira(jira_issues(20), token=JIRA_TOKEN)) as jira,
        running(make_board(10, seed=3, token=GITHUB_TOKEN)) as github,
    ):
        project = github.project("acme", 1)
        for name, title in HOSTILE.items():
            issue = jira.add(title, labels=["needs-client"] if name == "script" else [])
            jira.update(issue.key, status_id="3")  # in progress: listed in the report
            content = github.add_issue("acme/web", title, labels=[title[:50]])
            github.add_item(project, content, status="In Progress")
        yield jira, github


CONFIG = """\
[store]
path = "pmsync.db"

[sources.jira]
kind = "jira"
url = "{jira}"
email = "{email}"
token = "${{HOSTILE_JIRA_TOKEN}}"
jql = "project = ACME"

[sources.board]
kind = "github"
project = "acme/1"
token = "${{HOSTILE_GITHUB_TOKEN}}"
api_url = "{github}"

[projects.acme]
name = "ACME"
sources = ["jira", "board"]

[[projects.acme.publish]]
to = "jira"
issue = "ACME-1"

[[projects.acme.publish]]
to = "board"
"""


@pytest.fixture
def synced(
    tmp_path: Path, fakes: tuple[FakeJira, FakeGitHub], monkeypatch: pytest.MonkeyPatch
) -> Path:
    jira, github = fakes
    monkeypatch.setenv("HOSTILE_JIRA_TOKEN", JIRA_TOKEN)
    monkeypatch.setenv("HOSTILE_GITHUB_TOKEN", GITHUB_TOKEN)
    config = tmp_path / "pmsync.toml"
    config.write_text(CONFIG.format(jira=jira.url, github=github.url, email=jira.email), "utf-8")
    result = invoke(config, "sync")
    assert result.exit_code == 0, result.output
    return config


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def test_hostile_titles_are_stored_exactly(synced: Path) -> None:
    store = Store.open(synced.parent / "pmsync.db")
    for source in ("jira", "board"):
        titles = [r["title"] for r in store_rows(store, source)]
        for name, expected in STORED.items():
            assert titles.count(expected) == 1, (source, name)
    # The raw source JSON keeps even the lone surrogate, as its JSON escape.
    raw = store.conn.execute(
        "SELECT raw FROM items WHERE source = 'jira' AND title = ?", (STORED["surrogate"],)
    ).fetchone()[0]
    assert json.loads(raw)["fields"]["summary"] == HOSTILE["surrogate"]
    store.close()


def report(config: Path, fmt: str) -> str:
    out = config.parent / f"report.{fmt}"
    args = ["report", "acme", "--format", fmt, "-o", str(out), "--audience", "internal"]
    result = invoke(config, *args)
    assert result.exit_code == 0, result.output
    return out.read_text(encoding="utf-8")


def test_html_report_is_inert(synced: Path) -> None:
    html = report(synced, "html")
    lowered = html.lower()
    assert "<script" not in lowered and "<img" not in lowered
    assert "&lt;script&gt;alert(" in html  # shown, as text
    assert not re.search(r"""(?:href|src)\s*=\s*["']?\s*javascript:""", lowered)
    assert not re.search(r"\son\w+\s*=", html.split("<body", 1)[1].replace("onerror=alert", ""))
    assert not CONTROL.search(html)
    assert "H" * 1000 not in html and len(html) < 2_000_000  # clipped, not 200 kB per title


def assert_inert_markdown(md: str) -> None:
    """No tag, link, image, heading, list or fence came out of a title: each special
    character of a title is escaped with a backslash (or the construct is broken up)."""
    assert not re.search(r"(?<!\\)<(?:script|img|/td|/tr|/table)", md)
    assert "[click](" not in md and "![p](" not in md
    assert not re.search(r"(?<!\\)\]\(javascript:", md)
    lines = md.splitlines()
    assert not any(line.startswith(("# Not a heading", "- not a list")) for line in lines)
    assert not any("code fence" in line and "```" in line for line in lines)
    assert not CONTROL.search(md)
    assert "H" * 1000 not in md


def test_markdown_report_is_inert(synced: Path) -> None:
    md = report(synced, "md")
    assert "\\<script\\>alert" in md  # shown, as text
    assert_inert_markdown(md)
    # A Mermaid gantt block may hold a title, never as a statement of its own.
    for block in re.findall(r"```mermaid\n(.*?)```", md, re.S):
        assert not re.search(r"^\s*(click|call|title x|section y)", block, re.M | re.I)


def test_json_report_keeps_the_data_verbatim(synced: Path) -> None:
    data = json.loads(report(synced, "json"))
    text = json.dumps(data, ensure_ascii=False)
    assert "<script>alert('x')</script>" in text  # data, escaped by JSON itself
    assert "\ud800" not in text


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def test_adf_report_is_valid_and_inert(synced: Path) -> None:
    doc = json.loads(report(synced, "adf"))
    assert adf_problem(doc) is None
    types = {n.get("type") for n in _nodes(doc)}
    assert not types & {"mention", "inlineCard", "blockCard", "extension", "media"}
    for node in _nodes(doc):
        for mark in node.get("marks") or ():
            href = (mark.get("attrs") or {}).get("href")
            assert href is None or href.startswith(("http://", "https://")), href


def test_published_bodies_are_inert_and_within_limits(
    synced: Path, fakes: tuple[FakeJira, FakeGitHub]
) -> None:
    jira, github = fakes
    result = invoke(synced, "publish", "acme")
    assert result.exit_code == 0, result.output
    (comment,) = jira.comments["ACME-1"]
    body = comment["body"]
    assert adf_problem(body) is None  # the fake checks ADF as Jira does
    assert len(json.dumps(body)) < 200_000
    assert not {n.get("type") for n in _nodes(body)} & {"mention", "inlineCard", "extension"}
    (update,) = github.project("acme", 1)["_updates"]
    text = update["body"]
    assert len(text) <= 65_536
    assert "@everyone" not in text and "@octocat" not in text and "acme/web#2" not in text
    assert "everyone" in text  # still readable
    assert_inert_markdown(text)
