"""cli.py: exit codes, one-line errors, init, check, sync, status, demo, help texts, README."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from filelock import FileLock

from cli import cli
from config.loader import EXAMPLE
from sync.demo import DATA as DEMO_DATA
from sync.errors import EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_USAGE

ROOT = Path(__file__).resolve().parent.parent

EXPORT = (
    "key,title,type,status,labels,created,updated,due,estimate\n"
    "ACME-1,Login page,story,Done,frontend,2026-09-01T08:00:00Z,2026-09-05T08:00:00Z,,3\n"
    "ACME-2,Checkout,story,In Progress,,2026-09-02T08:00:00Z,2026-09-06T08:00:00Z,2026-12-01,5\n"
    "ACME-3,Search,task,Open,needs-client,2026-09-03T08:00:00Z,2026-09-07T08:00:00Z,,2\n"
)
CONFIG = """\
[store]
path = "pmsync.db"

[sources.acme-export]
kind = "csv"
path = "exports/acme.csv"
preset = "plain"

[projects.acme]
name = "ACME Website Relaunch"
client = "ACME Corp"
sources = ["acme-export"]
start_date = 2026-09-01
target_date = 2027-03-31
timezone = "Europe/Berlin"
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in ("PMSYNC_CONFIG", "PMSYNC_DB", "PMSYNC_LOG_FORMAT", "PMSYNC_TEST_UNSET_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A CSV-only config with a three-row export; returns the config path."""
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "acme.csv").write_text(EXPORT, encoding="utf-8")
    config = tmp_path / "pmsync.toml"
    config.write_text(CONFIG, encoding="utf-8")
    return config


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def parse_table(text: str) -> list[dict[str, str]]:
    """Read the plain text table `cli.table` prints (header, dashes, rows)."""
    lines = text.splitlines()
    for n, line in enumerate(lines[1:], start=1):
        if line.strip() and set(line.replace(" ", "")) == {"-"}:
            header_line, dash_line = lines[n - 1], line
            spans = [(m.start(), m.end()) for m in re.finditer(r"-+", dash_line)]
            names = [header_line[a:b].strip() for a, b in spans]
            rows = []
            for row in lines[n + 1 :]:
                if not row.strip() or row.startswith("  ") or not row[: spans[0][1]].strip():
                    break  # a blank line, a note under the table, or the next table
                cells = [
                    row[a : spans[i + 1][0] if i + 1 < len(spans) else None].strip()
                    for i, (a, _) in enumerate(spans)
                ]
                rows.append(dict(zip(names, cells, strict=True)))
            return rows
    raise AssertionError(f"no table in:\n{text}")


# -- broken configs: exit 2, one line, no traceback ---------------------------------------------

SOURCE = '[sources.exp]\nkind = "csv"\npath = "a.csv"\n'
BROKEN = [
    ("malformed TOML", '[sources.exp\nkind = "csv"\n', "error: broken.toml: not valid TOML: "),
    (
        "missing field",
        '[sources.exp]\nkind = "csv"\n',
        "error: broken.toml: sources.exp.path: field required",
    ),
    (
        "unknown kind",
        '[sources.exp]\nkind = "trello"\n',
        "error: broken.toml: sources.exp.kind: unknown source kind 'trello'; known kinds: csv,"
        " github, jira, pingcode, redmine, worktile",
    ),
    (
        "missing environment variable",
        '[sources.exp]\nkind = "csv"\npath = "${PMSYNC_TEST_UNSET_DIR}/a.csv"\n',
        "error: broken.toml: sources.exp.path: source 'exp' needs environment variable"
        " PMSYNC_TEST_UNSET_DIR, which is not set",
    ),
    (
        "project names an unknown source",
        SOURCE + '[projects.p]\nname = "P"\nsources = ["nope"]\n',
        "error: broken.toml: projects.p.sources: unknown source 'nope' (defined: exp)",
    ),
    (
        "unknown setting",
        SOURCE + '[projects.p]\nname = "P"\nsources = ["exp"]\nshedule = "0 9 * * MON"\n',
        "error: broken.toml: projects.p.shedule: unknown setting (check the spelling)",
    ),
    (
        "bad timezone",
        SOURCE + '[projects.p]\nname = "P"\nsources = ["exp"]\ntimezone = "Berlin"\n',
        "error: broken.toml: projects.p.timezone: unknown timezone 'Berlin'",
    ),
    (
        "bad cron",
        SOURCE + '[projects.p]\nname = "P"\nsources = ["exp"]\nschedule = "mondays"\n',
        "error: broken.toml: projects.p.schedule: not a cron expression: 'mondays'",
    ),
]


@pytest.mark.parametrize(("case", "text", "expected"), BROKEN, ids=[c[0] for c in BROKEN])
def test_check_on_broken_config_exits_2_with_one_line(
    tmp_path: Path, case: str, text: str, expected: str
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")

    result = run("--config", path, "check")

    assert result.exit_code == EXIT_USAGE
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith(expected)
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = run("--config", tmp_path / "nope.toml", "check")
    assert result.exit_code == EXIT_USAGE
    assert error_lines(result) == [
        f"error: {tmp_path / 'nope.toml'}: no such config file; create one with `pmsync init`"
        " or pass --config"
    ]


def test_config_from_environment_variable(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("PMSYNC_CONFIG", str(project))
    result = run("check", "--offline")
    assert result.exit_code == EXIT_OK
    assert result.stdout == f"{project}: ok (1 sources, 1 projects)\n"


def pmsync_command() -> list[str]:
    script = Path(sys.executable).with_name("pmsync")
    return [str(script)] if script.exists() else [sys.executable, "-c", "import cli; cli.main()"]


def test_real_pmsync_process_broken_config(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text('[sources.exp]\nkind = "nope"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMSYNC_")}

    quiet = subprocess.run(
        [*pmsync_command(), "--config", "broken.toml", "check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    verbose = subprocess.run(
        [*pmsync_command(), "-v", "--config", "broken.toml", "check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert quiet.returncode == EXIT_USAGE
    assert quiet.stdout == ""
    assert quiet.stderr.splitlines() == [
        "error: broken.toml: sources.exp.kind: unknown source kind 'nope'; known kinds: csv,"
        " github, jira, pingcode, redmine, worktile"
    ]
    assert verbose.returncode == EXIT_USAGE
    assert "Traceback" in verbose.stderr
    assert verbose.stderr.rstrip().endswith(quiet.stderr.rstrip())


# -- init -------------------------------------------------------------------------------------


def test_init_writes_the_example_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "pmsync.toml"

    first = run("init")

    assert first.exit_code == EXIT_OK
    assert target.read_text(encoding="utf-8") == EXAMPLE.read_text(encoding="utf-8")
    assert "wrote pmsync.toml" in first.stdout

    target.write_text("# my edits\n", encoding="utf-8")
    second = run("init")
    assert second.exit_code == EXIT_USAGE
    assert error_lines(second) == ["error: pmsync.toml exists; pass --force to overwrite it"]
    assert target.read_text(encoding="utf-8") == "# my edits\n"

    forced = run("init", "--force")
    assert forced.exit_code == EXIT_OK
    assert target.read_text(encoding="utf-8") == EXAMPLE.read_text(encoding="utf-8")


def test_init_honours_config_option(tmp_path: Path) -> None:
    target = tmp_path / "client-a.toml"
    result = run("--config", target, "init")
    assert result.exit_code == EXIT_OK
    assert target.exists()
    assert not (tmp_path / "pmsync.toml").exists()


def example_as_csv_config(text: str) -> str:
    """The example with only its CSV source: no tokens, no network."""
    start = text.index("[sources.acme-jira]")
    end = text.index("[sources.acme-export]")
    text = text[:start] + text[end:]
    text = text.replace('sources = ["acme-jira", "acme-board"]', 'sources = ["acme-export"]')
    return text[: text.index("[[projects.acme.publish]]")]


def test_check_offline_on_the_example_derived_csv_config(tmp_path: Path) -> None:
    assert run("init").exit_code == EXIT_OK
    config = tmp_path / "pmsync.toml"
    config.write_text(example_as_csv_config(config.read_text(encoding="utf-8")), encoding="utf-8")

    offline = run("check", "--offline")
    assert offline.exit_code == EXIT_OK, offline.output
    assert offline.stdout == "pmsync.toml: ok (1 sources, 1 projects)\n"

    # Online, the CSV source's "credentials" are its file: missing is a source failure (1).
    missing = run("check")
    assert missing.exit_code == EXIT_FAILED
    rows = parse_table(missing.stdout)
    assert [(r["source"], r["kind"], r["status"]) for r in rows] == [
        ("acme-export", "csv", "FAILED")
    ]
    assert "not found; check `path`" in rows[0]["detail"]

    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "acme.csv").write_text(EXPORT, encoding="utf-8")
    online = run("check")
    assert online.exit_code == EXIT_OK
    assert parse_table(online.stdout) == [
        {"source": "acme-export", "kind": "csv", "status": "ok", "detail": "acme.csv: 3 rows"}
    ]


# -- sync and status --------------------------------------------------------------------------

SUMMARY_COLUMNS = [
    "source",
    "mode",
    "status",
    "new",
    "changed",
    "tombstoned",
    "requests",
    "retries",
    "s",
]


def test_sync_prints_the_summary_table(project: Path) -> None:
    result = run("--config", project, "sync")

    assert result.exit_code == EXIT_OK, result.output
    (row,) = parse_table(result.stdout)
    assert list(row) == SUMMARY_COLUMNS
    assert {k: v for k, v in row.items() if k != "s"} == {
        "source": "acme-export",
        "mode": "full",
        "status": "ok",
        "new": "3",
        "changed": "0",
        "tombstoned": "0",
        "requests": "0",
        "retries": "0",
    }
    assert "  acme-export: read the whole file (3 rows; a file has no 'changed since')" in (
        result.stdout.splitlines()
    )
    assert (project.parent / "pmsync.db").exists()


def test_sync_json_parses_and_tracks_changes(project: Path) -> None:
    first = run("--config", project, "sync", "--json")
    assert first.exit_code == EXIT_OK
    (one,) = json.loads(first.stdout)
    assert (one["source"], one["kind"], one["mode"], one["status"]) == (
        "acme-export",
        "csv",
        "full",
        "ok",
    )
    assert (one["new"], one["changed"], one["tombstoned"], one["error"]) == (3, 0, 0, None)

    export = project.parent / "exports" / "acme.csv"
    lines = export.read_text(encoding="utf-8").splitlines()
    export.write_text("\n".join([lines[0], lines[1], lines[2].replace("Checkout", "Cart")]) + "\n")
    second = run("--config", project, "sync", "--json")
    assert second.exit_code == EXIT_OK
    (two,) = json.loads(second.stdout)
    assert (two["mode"], two["new"], two["changed"], two["tombstoned"]) == (
        "incremental",
        0,
        1,
        1,
    )


def test_sync_named_unknown_source_is_a_usage_error(project: Path) -> None:
    result = run("--config", project, "sync", "nope")
    assert result.exit_code == EXIT_USAGE
    assert error_lines(result) == ["error: unknown source 'nope' (defined: acme-export)"]


def test_sync_failing_source_exits_1_with_one_error_line(project: Path) -> None:
    (project.parent / "exports" / "acme.csv").unlink()
    result = run("--config", project, "sync")
    assert result.exit_code == EXIT_FAILED
    (row,) = parse_table(result.stdout)
    assert (row["source"], row["status"]) == ("acme-export", "failed")
    missing = project.parent / "exports" / "acme.csv"
    assert error_lines(result) == [
        f"error: acme-export: CSV file {missing} not found; check `path`"
    ]
    assert "Traceback" not in result.output


def test_sync_while_locked_exits_75(project: Path) -> None:
    lock = FileLock(f"{project.parent / 'pmsync.db'}.lock")
    with lock:
        result = run("--config", project, "sync")
    assert result.exit_code == EXIT_LOCKED
    (line,) = error_lines(result)
    assert line.startswith("error: another pmsync run is using ")


def test_db_option_and_environment_override_the_store(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("--config", project, "--db", tmp_path / "a.db", "sync").exit_code == EXIT_OK
    monkeypatch.setenv("PMSYNC_DB", str(tmp_path / "b.db"))
    assert run("--config", project, "sync").exit_code == EXIT_OK
    assert (tmp_path / "a.db").exists()
    assert (tmp_path / "b.db").exists()
    assert not (tmp_path / "pmsync.db").exists()


def test_status_json_after_sync(project: Path) -> None:
    assert run("--config", project, "sync").exit_code == EXIT_OK

    result = run("--config", project, "status", "--json")

    assert result.exit_code == EXIT_OK, result.output
    data = json.loads(result.stdout)
    (src,) = data["sources"]
    assert (src["source"], src["kind"], src["last_run"], src["items"], src["error"]) == (
        "acme-export",
        "csv",
        "ok",
        3,
        None,
    )
    assert src["last_ok_at"] is not None
    assert 0 <= src["age_hours"] < 1

    table = run("--config", project, "status")
    assert table.exit_code == EXIT_OK
    (row,) = parse_table(table.stdout)
    assert (row["source"], row["kind"], row["last run"], row["items"]) == (
        "acme-export",
        "csv",
        "ok",
        "3",
    )


# -- demo -------------------------------------------------------------------------------------


def test_demo_runs_the_pipeline(tmp_path: Path) -> None:
    with DEMO_DATA.open(encoding="utf-8", newline="") as f:
        expected_items = sum(1 for r in csv.DictReader(f) if r["type"].lower() != "milestone")

    result = run("demo", "--dir", tmp_path / "demo")

    assert result.exit_code == EXIT_OK, result.output
    (row,) = parse_table(result.stdout)
    assert (row["source"], row["mode"], row["status"], row["new"]) == (
        "acme-export",
        "full",
        "ok",
        str(expected_items),
    )
    assert (tmp_path / "demo" / "pmsync.toml").exists()
    assert (tmp_path / "demo" / "pmsync.db").exists()
    assert (tmp_path / "demo" / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "demo" / "report.md").read_text().startswith("# Status report: ")
    assert f"wrote {tmp_path / 'demo' / 'report.html'}" in result.stdout
    assert f"wrote {tmp_path / 'demo' / 'report.md'}" in result.stdout


# -- help texts and README --------------------------------------------------------------------


def walk(command: click.Command, prefix: str = "pmsync") -> Iterator[tuple[str, click.Command]]:
    yield prefix, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, f"{prefix} {name}")


def test_every_command_has_help_with_an_example() -> None:
    commands = dict(walk(cli))
    assert {"pmsync init", "pmsync check", "pmsync sync", "pmsync status", "pmsync demo"} <= set(
        commands
    )
    missing = [name for name, cmd in commands.items() if "Example:" not in (cmd.help or "")]
    assert missing == []


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_help_option_works_for_every_command(name: str) -> None:
    result = run(name, "--help")
    assert result.exit_code == EXIT_OK
    assert "Example:" in result.stdout


def test_readme_mentions_every_top_level_command() -> None:
    readme = ROOT / "README.md"
    assert readme.exists(), "README.md is missing"
    text = readme.read_text(encoding="utf-8")
    missing = [
        name for name in sorted(cli.commands) if not re.search(rf"pmsync\b[^\n]*\b{name}\b", text)
    ]
    assert missing == []
