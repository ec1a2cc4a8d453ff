"""Regenerate the bundled demo export (sync/demo/acme.csv): a seeded, realistic client project.

Run: python scripts/make_demo_data.py   (the output is committed; `pmsync demo` shifts its dates)
"""

from __future__ import annotations

import csv
import random
from datetime import date, datetime, time, timedelta
from pathlib import Path

ANCHOR = date(2026, 11, 27)  # "today" in the file; sync/demo.py shifts dates to the real today
START = ANCHOR - timedelta(weeks=12)
OUT = Path(__file__).resolve().parent.parent / "sync" / "demo" / "acme.csv"
HEADER = ["key", "title", "type", "status", "category", "assignee", "labels", "created",
          "updated", "resolved", "due", "start", "estimate", "parent", "milestone", "blocked", "url"]  # fmt: skip

PEOPLE = ["Mia Chen", "Jonas Weber", "Priya Nair", "Tom Okafor", "Lena Fischer", "Wang Lei"]
MILESTONES = [
    ("ACME-M1", "Discovery sign-off", START, START + timedelta(weeks=3)),
    ("ACME-M2", "Design system approved", START + timedelta(weeks=2), START + timedelta(weeks=7)),
    ("ACME-M3", "Beta on staging", START + timedelta(weeks=6), ANCHOR + timedelta(days=10)),
    ("ACME-M4", "Public launch", START + timedelta(weeks=10), ANCHOR + timedelta(weeks=6)),
]
EPICS = [
    ("Discovery and content audit", "ACME-M1", 14),
    ("Design system and templates", "ACME-M2", 26),
    ("CMS migration", "ACME-M3", 34),
    ("Checkout and payments", "ACME-M3", 28),
    ("Performance, accessibility and SEO", "ACME-M4", 22),
    ("Launch readiness", "ACME-M4", 18),
]
WORDS = {
    0: [
        "Interview stakeholders",
        "Audit existing pages",
        "Map content owners",
        "Analytics baseline",
        "Competitor review",
        "Define personas",
        "Sitemap draft",
        "Tone of voice guide",
    ],
    1: [
        "Button component",
        "Form fields",
        "Navigation header",
        "Footer",
        "Typography scale",
        "Colour tokens",
        "Card layout",
        "Product page template",
        "Landing page template",
        "Icon set",
        "Dark mode tokens",
        "Article template",
    ],
    2: [
        "Export legacy articles",
        "Import product catalogue",
        "Redirect map",
        "Media library import",
        "Editor roles",
        "Translation workflow",
        "Preview environment",
        "Search index",
        "Migrate press releases",
        "Author profiles",
        "Content QA pass",
    ],
    3: [
        "Cart service",
        "Payment provider integration",
        "Address validation",
        "Invoice PDFs",
        "Order confirmation email",
        "Tax rules",
        "Refund flow",
        "Guest checkout",
        "3-D Secure",
    ],
    4: [
        "Image pipeline",
        "Lighthouse budget",
        "Screen reader pass",
        "Structured data",
        "Core Web Vitals fixes",
        "Keyboard navigation",
        "Meta tags",
        "Cache headers",
    ],
    5: [
        "Load test",
        "Launch checklist",
        "DNS cut-over plan",
        "Support runbook",
        "Monitoring dashboards",
        "Rollback rehearsal",
        "Training for editors",
    ],
}


def when(day: date, rng: random.Random) -> str:
    t = time(rng.randint(7, 17), rng.choice([0, 15, 30, 45]))
    return datetime.combine(day, t).isoformat() + "Z"


def main() -> None:
    rng = random.Random(20261127)
    rows: list[dict[str, str]] = []
    for key, title, start, due in MILESTONES:
        done = due < ANCHOR
        rows.append({"key": key, "title": title, "type": "milestone",
                     "status": "Done" if done else "Open", "start": start.isoformat(),
                     "due": due.isoformat(), "created": when(START, rng),
                     "updated": when(min(due, ANCHOR), rng)})  # fmt: skip
    n = 1
    span = (ANCHOR - START).days
    for e, (epic_title, milestone, count) in enumerate(EPICS):
        epic_key = f"ACME-{n}"
        n += 1
        m_start, m_due = next((s, d) for k, _, s, d in MILESTONES if k == milestone)
        epic_done = m_due < ANCHOR - timedelta(days=7)
        rows.append({"key": epic_key, "title": epic_title, "type": "Epic",
                     "status": "Done" if epic_done else "In Progress",
                     "created": when(START, rng), "updated": when(START + timedelta(days=3), rng),
                     "start": m_start.isoformat(), "due": m_due.isoformat(),
                     "milestone": milestone})  # fmt: skip
        names = WORDS[e]
        for i in range(count):
            name = names[i % len(names)] + (
                "" if i < len(names) else f" (part {i // len(names) + 1})"
            )
            # Work is planned around its milestone; later epics start later.
            created = START + timedelta(days=min(span - 1, int(rng.uniform(0, 0.8) * span) + e * 4))
            lead = timedelta(days=rng.randint(5, 40))
            planned_done = created + lead
            estimate = rng.choice([1, 2, 2, 3, 3, 5, 5, 8])
            labels = []
            status, category, resolved = "To Do", "todo", ""
            due = min(m_due, planned_done + timedelta(days=rng.randint(2, 10)))
            if planned_done < ANCHOR - timedelta(days=1) and rng.random() < 0.92:
                done_day = planned_done
                status, category, resolved = "Done", "done", when(done_day, rng)
            elif planned_done < ANCHOR + timedelta(days=10) and rng.random() < 0.55:
                status, category = rng.choice(["In Progress", "In Review"]), "in_progress"
            if category != "done" and rng.random() < 0.04:
                status, category = "Won't Do", "cancelled"
            updated = resolved or when(min(ANCHOR - timedelta(days=rng.randint(0, 6)),
                                           max(created, ANCHOR - timedelta(days=1))), rng)  # fmt: skip
            rows.append({"key": f"ACME-{n}", "title": name, "type": rng.choice(["Story", "Task", "Task", "Bug"]),
                         "status": status, "category": category,
                         "assignee": rng.choice(PEOPLE), "created": when(created, rng),
                         "updated": updated, "resolved": resolved, "due": due.isoformat(),
                         "start": created.isoformat(), "estimate": str(estimate),
                         "parent": epic_key, "milestone": milestone,
                         "labels": ";".join(labels), "blocked": "false"})  # fmt: skip
            n += 1
    tasks = [r for r in rows if r["type"] not in ("milestone", "Epic")]
    open_tasks = [r for r in tasks if r["category"] in ("todo", "in_progress")]
    for r in rng.sample(open_tasks, 3):
        r["blocked"] = "true"
    for r in rng.sample(open_tasks, 3):
        r["labels"] = "needs-client"
        r["title"] += " — waiting for client content"
    for r in rng.sample(tasks, 6):
        r["labels"] = ";".join(filter(None, [r["labels"], "change-request"]))
        r["title"] = "CR: " + r["title"]
    for r in rng.sample(tasks, 5):
        r["labels"] = ";".join(filter(None, [r["labels"], "internal"]))
    # Scope added late: change requests created in the last three weeks.
    for title in (
        "Newsletter sign-up widget",
        "Extra language: Polish",
        "Loyalty points on checkout",
    ):
        created = ANCHOR - timedelta(days=rng.randint(3, 20))
        rows.append({"key": f"ACME-{n}", "title": "CR: " + title, "type": "Story", "status": "To Do",
                     "category": "todo", "assignee": rng.choice(PEOPLE), "labels": "change-request",
                     "created": when(created, rng), "updated": when(created, rng), "estimate": "5",
                     "parent": "ACME-5", "milestone": "ACME-M4",
                     "due": (ANCHOR + timedelta(weeks=5)).isoformat(), "blocked": "false"})  # fmt: skip
        n += 1
    for r in rows:
        r["url"] = f"https://acme.example/browse/{r['key']}"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, HEADER)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r.get(k, "") for k in HEADER})
    print(f"wrote {OUT}: {len(rows)} rows ({len(tasks)} tasks)")


if __name__ == "__main__":
    main()
