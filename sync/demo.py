"""`pmsync demo`: the whole pipeline on a bundled sample project, with no credentials.

The bundled export (`sync/demo/acme.csv`, made by scripts/make_demo_data.py) is dated as if
today were 2026-11-27; the demo copies it with every date shifted by whole days so that the
project is live today, then syncs it into a fresh store and writes report.html and report.md.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from config.loader import load_config
from sync.engine import SourceResult, run_lock, run_sync
from sync.render import to_html, to_markdown
from sync.report import build_report
from sync.store import Store

DATA = Path(__file__).with_name("demo") / "acme.csv"
ANCHOR = date(2026, 11, 27)
DATE_COLUMNS = ("created", "updated", "resolved", "due", "start")
CONFIG = """\
# pmsync demo configuration (written by `pmsync demo`; see `pmsync init` for the full example)
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
start_date = {start}
target_date = {target}
schedule = "0 9 * * MON"
timezone = "Europe/Berlin"
language = "en"
internal_labels = ["internal"]
change_request_labels = ["change-request"]
client_input_labels = ["needs-client"]
"""


@dataclass
class DemoOutcome:
    workdir: Path
    results: list[SourceResult]
    lines: list[str] = field(default_factory=list)


def shift_text(value: str, days: int) -> str:
    """Shift an ISO date or date-time string by whole days (empty stays empty)."""
    if not value:
        return value
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return (date.fromisoformat(value) + timedelta(days=days)).isoformat()
    moved = datetime.fromisoformat(value.replace("Z", "+00:00")) + timedelta(days=days)
    return moved.isoformat().replace("+00:00", "Z")


def write_shifted_export(target: Path, today: date) -> None:
    days = (today - ANCHOR).days
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        DATA.open(encoding="utf-8", newline="") as src,
        target.open("w", encoding="utf-8", newline="") as dst,
    ):
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, reader.fieldnames or [])
        writer.writeheader()
        for row in reader:
            writer.writerow(
                {k: shift_text(v, days) if k in DATE_COLUMNS else v for k, v in row.items()}
            )


def run_demo(workdir: Path, *, today: date | None = None) -> DemoOutcome:
    """Write the demo config and export into `workdir`, sync them into a fresh store."""
    today = today or datetime.now(UTC).date()
    days = (today - ANCHOR).days
    workdir.mkdir(parents=True, exist_ok=True)
    write_shifted_export(workdir / "exports" / "acme.csv", today)
    start = date(2026, 9, 4) + timedelta(days=days)
    target = date(2027, 1, 8) + timedelta(days=days)
    config_path = workdir / "pmsync.toml"
    config_path.write_text(CONFIG.format(start=start.isoformat(), target=target.isoformat()))
    config = load_config(config_path)
    db = config.store.path
    with run_lock(db):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        store = Store.open(db)
        try:
            results = run_sync(config, store)
            report = build_report(store, config, "acme")
        finally:
            store.close()
    outcome = DemoOutcome(workdir, results)
    html_path, md_path = workdir / "report.html", workdir / "report.md"
    html_path.write_text(to_html(report), encoding="utf-8")
    md_path.write_text(to_markdown(report), encoding="utf-8")
    outcome.lines += [
        f"health: {report.health.status} ({report.progress.percent_done}% done)",
        f"wrote {html_path}",
        f"wrote {md_path}",
        f"config: {config_path} (try: pmsync --config {config_path} report acme --format md)",
    ]
    return outcome
