"""Report build and render time at 10k and 100k items (a script, not a timed test).

    python benchmarks/bench_report.py            # 10k and 100k
    python benchmarks/bench_report.py 5000       # any sizes

Each size gets a fresh store file holding a year-long project: 60% of the items are the
initial backlog (created in the first two weeks, the scope baseline), the rest are created
over the year; about half are done, some cancelled, blocked, overdue, change requests, 1 in 500 an epic, 30
milestones, and status history for a third of the items. Printed: seconds to build the
`Report`, to render JSON, and to render HTML with both charts (the goal: build + HTML under
2 s at 100k), and the peak resident memory of the process.
"""

from __future__ import annotations

import random
import resource
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.schema import Config, ProjectSettings
from connectors.base import SourceSettings
from sync.model import Milestone, StatusCategory, Transition, WorkItem
from sync.render import to_html, to_json
from sync.report import build_report
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
        cat = (C.DONE if roll < 0.5 else C.CANCELLED if roll < 0.55
               else C.IN_PROGRESS if roll < 0.65 else C.TODO)  # fmt: skip
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
            steps = [Transition(source="bench", item_id=str(i), at=started, from_status="Open",
                                to_status="Doing", from_category=C.TODO,
                                to_category=C.IN_PROGRESS)]  # fmt: skip
            if cat is not C.IN_PROGRESS:
                end = completed or started + timedelta(days=3)
                steps.append(Transition(source="bench", item_id=str(i), at=max(end, started),
                                        from_status="Doing", to_status="Closed",
                                        from_category=C.IN_PROGRESS, to_category=cat))  # fmt: skip
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


def setup(path: Path, n: int) -> tuple[Store, Config]:
    store = Store.open(path)
    items = generate(n)
    for lo in range(0, n, 5000):
        store.upsert_items(items[lo : lo + 5000], now=NOW)
    store.upsert_milestones(
        "bench",
        [Milestone(source="bench", id=f"m{k}", name=f"Release {k}",
                   due_date=START + timedelta(days=20 + 12 * k)) for k in range(30)],
    )  # fmt: skip
    config = Config(
        sources={"bench": SourceSettings(kind="csv")},
        projects={"p": ProjectSettings(name="Benchmark", client="Bench Corp", sources=["bench"],
                                       start_date=START, baseline_date=START + timedelta(days=14),
                                       target_date=date(2027, 6, 30),
                                       timezone="Europe/Berlin")},
    )  # fmt: skip
    return store, config


def main(sizes: list[int]) -> None:
    # Import matplotlib first and say what it cost: a `pmsync report --format html` run pays
    # it once, on top of the times below.
    t = time.perf_counter()
    import matplotlib.figure  # noqa: F401

    print(f"importing matplotlib: {time.perf_counter() - t:.2f} s")
    print(f"{'items':>8} {'build s':>8} {'json s':>7} {'html s':>7} {'build+html':>10}"
          f" {'(cpu s)':>8} {'json MB':>8} {'html KB':>8}")  # fmt: skip
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            store, config = setup(Path(tmp) / "bench.db", n)
            t0, c0 = time.perf_counter(), time.process_time()
            report = build_report(store, config, "p", now=NOW)
            t1, c1 = time.perf_counter(), time.process_time()
            js = to_json(report)
            t2, c2 = time.perf_counter(), time.process_time()
            html = to_html(report)
            t3, c3 = time.perf_counter(), time.process_time()
            store.close()
        counts = {k: len(getattr(report, k)) for k in ("completed", "overdue", "in_progress")}
        counts["scope_added"] = len(report.scope_change.added)
        print(f"{n:>8} {t1 - t0:>8.2f} {t2 - t1:>7.2f} {t3 - t2:>7.2f} {t1 - t0 + t3 - t2:>10.2f}"
              f" {c1 - c0 + c3 - c2:>8.2f} {len(js) / 1e6:>8.1f} {len(html) / 1e3:>8.0f}  {counts}")  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak RSS {peak:.0f} MB (includes generating the data); wall and CPU seconds differ"
        " on a busy machine; matplotlib is imported before timing"
    )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10_000, 100_000])
