"""Secrets never leak: after a whole flow (check, sync, status, report, publish, run, failures),
no token appears in the database file and its WAL, any file written, any report, anything
published, any log line (-v, text and JSON) or any error message.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli import cli
from tests.fakes.github import FakeGitHub, make_board
from tests.fakes.jira import FakeJira
from tests.test_reliability_support import jira_issues, running

JIRA_SECRET = "tok-SECRET-jira-1234567890"
GITHUB_SECRET = "tok-SECRET-gh-0987654321"
WRONG_SECRET = "tok-SECRET-wrong-5555555555"
EMAIL = "pm@example.com"


def leaked_forms() -> list[str]:
    """Every form a token could take on the wire: as is, and inside Basic auth."""
    forms = [JIRA_SECRET, GITHUB_SECRET, WRONG_SECRET]
    for token in (JIRA_SECRET, WRONG_SECRET):
        forms.append(base64.b64encode(f"{EMAIL}:{token}".encode()).decode())
    # Any long-enough fragment would be a leak too (a clipped error body, say).
    forms += [t[4:20] for t in (JIRA_SECRET, GITHUB_SECRET, WRONG_SECRET)]
    return forms


CONFIG = """\
[store]
path = "pmsync.db"

[sources.acme-jira]
kind = "jira"
url = "{jira}"
email = "{email}"
token = "${{SECRET_TEST_JIRA_TOKEN}}"
jql = "project = ACME"

[sources.acme-board]
kind = "github"
project = "acme/1"
token = "${{SECRET_TEST_GITHUB_TOKEN}}"
api_url = "{github}"

[projects.acme]
name = "ACME relaunch"
client = "ACME Corp"
sources = ["acme-jira", "acme-board"]
schedule = "0 9 * * MON"

[[projects.acme.publish]]
to = "acme-jira"
issue = "ACME-1"

[[projects.acme.publish]]
to = "acme-board"

[[projects.acme.publish]]
to = "file"
directory = "published"
"""


@pytest.fixture
def fakes() -> Iterator[tuple[FakeJira, FakeGitHub]]:
    with (
        running(FakeJira(jira_issues(120), token=JIRA_SECRET, email=EMAIL)) as jira,
        running(make_board(60, seed=2, token=GITHUB_SECRET)) as github,
    ):
        yield jira, github


def scan(haystack: str | bytes, where: str) -> None:
    data = haystack if isinstance(haystack, bytes) else haystack.encode("utf-8", "replace")
    for form in leaked_forms():
        assert form.encode() not in data, f"{form!r} leaked into {where}"


def test_no_secret_reaches_the_store_reports_logs_or_errors(
    tmp_path: Path, fakes: tuple[FakeJira, FakeGitHub], monkeypatch: pytest.MonkeyPatch
) -> None:
    jira, github = fakes
    config = tmp_path / "pmsync.toml"
    config.write_text(CONFIG.format(jira=jira.url, github=github.url, email=EMAIL), "utf-8")
    monkeypatch.setenv("SECRET_TEST_JIRA_TOKEN", JIRA_SECRET)
    monkeypatch.setenv("SECRET_TEST_GITHUB_TOKEN", GITHUB_SECRET)
    outputs: list[tuple[str, Result]] = []

    def cli_run(*args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(cli, ["--config", str(config), *args])
        outputs.append((" ".join(args), result))
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    cli_run("-v", "check")
    cli_run("-v", "sync")
    # Keep a reader open so the WAL is not checkpointed away: its frames get scanned too.
    reader = sqlite3.connect(tmp_path / "pmsync.db")
    reader.execute("SELECT count(*) FROM items").fetchone()
    cli_run("-v", "--log-format", "json", "sync", "--json")
    cli_run("-v", "status", "--json")
    for fmt in ("html", "md", "json", "adf"):
        cli_run("-v", "report", "acme", "--format", fmt, "-o", str(tmp_path / f"report.{fmt}"))
    cli_run("-v", "report", "acme", "--audience", "internal")
    cli_run("-v", "publish", "acme", "--dry-run")
    cli_run("-v", "publish", "acme")
    cli_run("-v", "--log-format", "json", "run")

    # Failures: a server that echoes the credentials in its error body, a 401 with the wrong
    # token, and a lasting 503 logged at -v with retries.
    basic = base64.b64encode(f"{EMAIL}:{JIRA_SECRET}".encode()).decode()
    jira.faults.add(
        "status",
        path="search/jql",
        status=400,
        body={
            "errorMessages": [f"Bad header Authorization: Basic {basic}", f"token={JIRA_SECRET}"]
        },
    )
    github.faults.add(
        "status",
        path="graphql",
        status=400,
        body={"message": f"Bad credentials for Bearer {GITHUB_SECRET}"},
    )
    jira.update("ACME-2", summary="Changed so the next sync asks again")
    failed = cli_run("-v", "sync", code=1)
    assert "***" in failed.output  # the echoed secrets were there, and were redacted
    jira.faults.add("status", path="search/jql", status=503, times=50, headers={"Retry-After": "0"})
    cli_run("-v", "--log-format", "json", "sync", "acme-jira", code=1)
    jira.faults.clear()
    monkeypatch.setenv("SECRET_TEST_JIRA_TOKEN", WRONG_SECRET)
    wrong = cli_run("-v", "check", code=1)
    assert "401" in wrong.output
    cli_run("-v", "sync", "acme-jira", code=1)

    reader.close()
    for args, result in outputs:
        scan(result.stdout, f"stdout of `pmsync {args}`")
        scan(result.stderr, f"stderr (logs, errors) of `pmsync {args}`")
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "pmsync.toml"]
    assert {p.name for p in written} >= {"pmsync.db", "report.html", "report.adf"}
    assert any(p.parent.name == "published" for p in written)
    for path in written:
        scan(path.read_bytes(), str(path.relative_to(tmp_path)))
    # What was pushed to the tools.
    scan(json.dumps(jira.comments), "Jira comments")
    scan(json.dumps([r.body.decode("utf-8", "replace") for r in github.log]), "GitHub requests")
    # The failed runs' errors, as recorded.
    conn = sqlite3.connect(tmp_path / "pmsync.db")
    errors = [r[0] for r in conn.execute("SELECT error FROM sync_runs WHERE error IS NOT NULL")]
    conn.close()
    assert len(errors) >= 3
    for error in errors:
        scan(error, "sync_runs.error")
