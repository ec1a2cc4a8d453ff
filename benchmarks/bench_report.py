"""Report build and render time and memory at 10k and 100k items (a script, not a timed test).

    python benchmarks/bench_report.py              # 10k and 100k
    python benchmarks/bench_report.py 5000 20000   # any sizes
    python benchmarks/bench_report.py --runs 3     # measure each size three times

Each size gets a fresh store file holding a year-long project: 60% of the items are the
initial backlog (created in the first two weeks, the scope baseline), the rest are created
over the year; about half are done, some cancelled, blocked, overdue, change requests, 1 in
500 an epic, 30 milestones, and status history for a third of the items.

The store is generated in this process; each measurement runs in a fresh child process (what
one `pmsync report` run pays, caches cold), which prints: seconds to build the `Report`, to
render JSON, and to render HTML with both charts, each as wall-clock and CPU time (CPU time
is the steadier number on a shared machine), and the child's peak resident memory (the goal:
build + HTML under 2 s and peak memory under 300 MB at 100k). The load average is printed
with each run: wall times on a busy machine say little on their own.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.schema import Config, ProjectSettings
from connectors.base import SourceSettings
from sync.model import Milestone, StatusCategory, Transition, WorkItem
from sync.store import Store

NOW = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
START = date(2025, 12, 1)
C = StatusCategory


def generate(n: int, seed: int = 7) -> list[WorkItem]:
    rng = random.Random(seed)
    items: list[WorkItem] = []
    span = (NOW.date() - START).days
    for i in range(n):
        days = rng.randrange(14) if rng.random() < 0.6 else rng.randrange(span)
        created = datetime.combine(START, datetime.min.time(), UTC) + timedelta(
            days=days, minutes=rng.randrange(1440)
        )
        roll = rng.random()
        cat = (
            C.DONE
            if roll < 0.5
            else C.CANCELLED
            if roll < 0.55
            else C.IN_PROGRESS
            if roll < 0.65
            else C.TODO
        )
        age = (NOW - created).total_seconds()
        completed = created + timedelta(seconds=rng.random() * age) if cat is C.DONE else None
        labels = []
        r = rng.random()
        if r < 0.02:
            labels.append("change-request")
        elif r < 0.03:
            labels.append("needs-client")
        elif r < 0.06:
            labels.append("internal")
        kind = "epic" if i % 500 == 0 else rng.choice(("task", "story", "bug"))
        due = (
            (created.date() + timedelta(days=rng.randrange(10, 90))) if rng.random() < 0.4 else None
        )
        transitions = None
        if cat is not C.TODO and rng.random() < 0.33:
            started = created + timedelta(seconds=(completed or NOW).timestamp() % 86400)
            steps = [
                Transition(
                    source="bench",
                    item_id=str(i),
                    at=started,
                    from_status="Open",
                    to_status="Doing",
                    from_category=C.TODO,
                    to_category=C.IN_PROGRESS,
                )
            ]
            if cat is not C.IN_PROGRESS:
                end = completed or started + timedelta(days=3)
                steps.append(
                    Transition(
                        source="bench",
                        item_id=str(i),
                        at=max(end, started),
                        from_status="Doing",
                        to_status="Closed",
                        from_category=C.IN_PROGRESS,
                        to_category=cat,
                    )
                )
            transitions = steps
        items.append(
            WorkItem(
                source="bench",
                id=str(i),
                key=f"B-{i}",
                url=f"https://tracker.example/B-{i}",
                title=f"Work item {i} " + "lorem ipsum " * rng.randrange(1, 6),
                kind=kind,
                status={
                    C.DONE: "Closed",
                    C.CANCELLED: "Won't do",
                    C.IN_PROGRESS: "Doing",
                    C.TODO: "Open",
                }[cat],
                category=cat,
                assignee=f"Person {i % 40}",
                labels=labels,
                parent_id=str((i // 500) * 500) if kind != "epic" else None,
                milestone_id=f"m{i % 30}" if rng.random() < 0.5 else None,
                start_date=created.date() if kind == "epic" else None,
                due_date=due,
                created_at=created,
                updated_at=completed or created,
                completed_at=completed,
                estimate=float(rng.choice((1, 2, 3, 5, 8))),
                blocked=rng.random() < 0.01,
                transitions=transitions,
            )
        )
    return items


def setup(path: Path, n: int) -> None:
    """Write a store of `n` generated items to `path`."""
    store = Store.open(path)
    items = generate(n)
    for lo in range(0, n, 5000):
        store.upsert_items(items[lo : lo + 5000], now=NOW)
    store.upsert_milestones(
        "bench",
        [
            Milestone(
                source="bench",
                id=f"m{k}",
                name=f"Release {k}",
                due_date=START + timedelta(days=20 + 12 * k),
            )
            for k in range(30)
        ],
    )
    store.close()


def config() -> Config:
    return Config(
        sources={"bench": SourceSettings(kind="csv")},
        projects={
            "p": ProjectSettings(
                name="Benchmark",
                client="Bench Corp",
                sources=["bench"],
                start_date=START,
                baseline_date=START + timedelta(days=14),
                target_date=date(2027, 6, 30),
                timezone="Europe/Berlin",
            )
        },
    )


def peak_mb() -> float:
    """This process's peak resident memory in MB.

    Linux's `ru_maxrss` keeps the parent's peak across fork and exec; VmHWM is this
    program's own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(path: Path) -> None:
    """Build and render the report of the store at `path`; print one line of numbers."""
    # A `pmsync report --format html` run imports matplotlib too; it is not timed here.
    import matplotlib.figure  # noqa: F401

    from sync.render import to_html, to_json
    from sync.report import build_report

    base = peak_mb()
    store = Store.open(path)
    times = [(time.perf_counter(), time.process_time())]
    report = build_report(store, config(), "p", now=NOW)
    times.append((time.perf_counter(), time.process_time()))
    js = to_json(report)
    times.append((time.perf_counter(), time.process_time()))
    html = to_html(report)
    times.append((time.perf_counter(), time.process_time()))
    store.close()
    peak = peak_mb()
    (w0, c0), (w1, c1), (w2, c2), (w3, c3) = times
    cells = [
        f"{w1 - w0:.2f}/{c1 - c0:.2f}",
        f"{w2 - w1:.2f}/{c2 - c1:.2f}",
        f"{w3 - w2:.2f}/{c3 - c2:.2f}",
        f"{w1 - w0 + w3 - w2:.2f}/{c1 - c0 + c3 - c2:.2f}",
    ]
    print(
        " ".join(f"{c:>11}" for c in cells),
        f"{peak:>5.0f} ({base:.0f})",
        f"{len(js) / 1e6:>7.1f} {len(html) / 1e3:>7.0f}   {os.getloadavg()[0]:.2f}",
    )


def main(sizes: list[int], runs: int) -> None:
    print(
        f"{'items':>7} {'build s':>11} {'json s':>11} {'html s':>11} {'build+html':>11}"
        f" {'peak MB':>11} {'json MB':>7} {'html KB':>7}   load"
    )
    print(f"{'':>7} {'(wall/cpu)':>11} {'':>11} {'':>11} {'':>11} {'(imports)':>11}")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.db"
            # Generated in a child too: this process stays small, and each measurement
            # starts from a fresh interpreter.
            subprocess.run([sys.executable, __file__, "--generate", str(n), str(path)], check=True)
            for _ in range(runs):
                print(f"{n:>7} ", end="", flush=True)
                subprocess.run([sys.executable, __file__, "--measure", str(path)], check=True)
    print(
        "wall/cpu seconds of one fresh process each; peak MB is that process's peak resident"
        " memory (in brackets: after its imports); load is the 1-minute load average"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=1, help="measurements per size")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
    elif args.generate:
        setup(Path(args.generate[1]), int(args.generate[0]))
    else:
        main(args.sizes, args.runs)
