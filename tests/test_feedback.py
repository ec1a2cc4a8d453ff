"""`pmsync feedback add` and where client feedback appears in reports."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sync.store import Store
from tests.test_report_cli import run, workdir  # noqa: F401  (the fixture)


def test_feedback_add_records_a_score(workdir: Path) -> None:  # noqa: F811
    code, out, _ = run(workdir, "feedback", "add", "p", "--score", "4", "--comment", "Clear <b>",
                       "--date", "2026-11-20")  # fmt: skip
    assert (code, out.strip()) == (0, "recorded 4/5 for p on 2026-11-20")
    code, out, _ = run(workdir, "feedback", "add", "p", "--score", "5")
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    assert (code, out.strip()) == (0, f"recorded 5/5 for p on {today.isoformat()}")
    store = Store.open(workdir / "pmsync.db")
    rows = store.feedback("p")
    store.close()
    assert [(r["day"], r["score"], r["comment"]) for r in rows] == [
        ("2026-11-20", 4, "Clear <b>"),
        (today.isoformat(), 5, None),
    ]


@pytest.mark.parametrize("score", ["0", "6", "x"])
def test_feedback_score_must_be_1_to_5(workdir: Path, score: str) -> None:  # noqa: F811
    code, _, err = run(workdir, "feedback", "add", "p", "--score", score)
    assert code == 2
    assert "--score" in err


def test_feedback_for_an_unknown_project(workdir: Path) -> None:  # noqa: F811
    code, _, err = run(workdir, "feedback", "add", "nope", "--score", "3")
    assert (code, err.strip()) == (2, "error: unknown project 'nope' (configured: p)")


def test_feedback_appears_in_closing_and_internal_reports(workdir: Path) -> None:  # noqa: F811
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    run(workdir, "feedback", "add", "p", "--score", "2", "--date", "2020-01-01")
    run(workdir, "feedback", "add", "p", "--score", "5", "--comment", "Great demo")
    _, out, _ = run(workdir, "report", "p", "--format", "json", "--closing")
    closing = json.loads(out)["closing"]["feedback"]
    assert (closing["count"], closing["average"]) == (2, 3.5)
    assert [e["score"] for e in closing["entries"]] == [2, 5]
    _, out, _ = run(workdir, "report", "p", "--format", "json", "--audience", "internal")
    recent = json.loads(out)["changes_since_last_report"]["feedback"]
    assert recent == [{"day": today.isoformat(), "score": 5, "comment": "Great demo"}]
    _, out, _ = run(workdir, "report", "p", "--format", "json")
    assert json.loads(out)["changes_since_last_report"]["feedback"] == []
    _, md, _ = run(workdir, "report", "p", "--closing")
    assert "2 feedback scores, average 3.5 of 5." in md
    assert "| 1 Jan 2020 | 2 |   |" in md
    assert "| 5 | Great demo |" in md
