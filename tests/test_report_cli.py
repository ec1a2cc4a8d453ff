"""`pmsync report`: formats, output file, periods, languages and one-line errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from cli import cli
from sync.store import Store
from tests.test_report import TOP_KEYS, C, item

CONFIG = """\
[store]
path = "pmsync.db"

[sources.src]
kind = "csv"
path = "export.csv"

[projects.p]
name = "Relaunch"
client = "ACME"
sources = ["src"]
timezone = "Europe/Berlin"
start_date = 2026-10-01
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "pmsync.toml").write_text(CONFIG, encoding="utf-8")
    now = datetime.now(UTC)
    store = Store.open(tmp_path / "pmsync.db")
    store.upsert_items(
        [item("A-1", C.DONE, completed_at=now - timedelta(days=1), title="Checkout <b>"),
         item("A-2", C.IN_PROGRESS), item("A-3", labels=["internal"])],
        now=now,
    )  # fmt: skip
    store.close()
    return tmp_path


def run(workdir: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(workdir / "pmsync.toml"), *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_to_stdout(workdir: Path) -> None:
    code, out, _ = run(workdir, "report", "p", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert set(data) == TOP_KEYS
    assert data["progress"]["total"] == 2
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    assert data["period"] == {"start": (today - timedelta(days=6)).isoformat(),
                              "end": today.isoformat()}  # fmt: skip


def test_internal_audience_language_and_period(workdir: Path) -> None:
    code, out, _ = run(workdir, "report", "p", "--format", "json", "--audience", "internal",
                       "--language", "zh-CN", "--period", "2w")  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert (data["progress"]["total"], data["language"], data["audience"]) == (
        3,
        "zh-CN",
        "internal",
    )
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    assert data["period"]["start"] == (today - timedelta(days=13)).isoformat()
    code, out, _ = run(workdir, "report", "p", "--from", "2026-11-01", "--to", "2026-11-30",
                       "--format", "json")  # fmt: skip
    assert json.loads(out)["period"] == {"start": "2026-11-01", "end": "2026-11-30"}


@pytest.mark.parametrize(("fmt", "start"), [("html", "<!DOCTYPE html>"), ("md", "# Status report"),
                                            ("adf", '{"type":"doc","version":1')])  # fmt: skip
def test_output_file(workdir: Path, fmt: str, start: str) -> None:
    target = workdir / f"out.{fmt}"
    code, out, _ = run(workdir, "report", "p", "--format", fmt, "-o", str(target))
    assert code == 0
    assert out.startswith(f"wrote {target} (")
    assert target.read_text(encoding="utf-8").startswith(start)


def test_health_override_and_closing(workdir: Path) -> None:
    code, out, _ = run(workdir, "report", "p", "--format", "json", "--health", "at_risk",
                       "--note", "Vendor delay", "--closing")  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert data["health"]["status"] == "at_risk" and data["health"]["overridden"] is True
    assert data["health"]["reasons"][0] == "Set by the project manager: Vendor delay"
    assert data["closing"]["done"] == 1


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [(["report", "nope"], "error: unknown project 'nope' (configured: p)", 2),
     (["report", "p", "--period", "2w", "--from", "2026-11-01"],
      "error: use either --period or --from/--to, not both", 2),
     (["report", "p", "--period", "3y"], "error: cannot read period '3y'; use e.g. 7d, 2w or 1m", 2),
     (["report", "p", "--note", "why"], "error: --note explains a health override; pass --health too", 2),
     (["report", "p", "--from", "2026-11-30", "--to", "2026-11-01"],
      "error: report period starts (2026-11-30) after it ends (2026-11-01); swap --from/--to", 2)],
)  # fmt: skip
def test_errors_are_one_line(workdir: Path, args: list[str], message: str, code: int) -> None:
    exit_code, _, err = run(workdir, *args)
    assert exit_code == code
    assert err.strip() == message


def test_missing_store(workdir: Path) -> None:
    (workdir / "pmsync.db").unlink()
    code, _, err = run(workdir, "report", "p")
    assert code == 1
    assert err.strip().startswith("error: store ") and "run `pmsync sync` first" in err
    assert not (workdir / "pmsync.db").exists()
