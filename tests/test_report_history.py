"""Burn-up history: rebuilt from item timelines, replaced by snapshots where they exist."""

from __future__ import annotations

import random
from datetime import date, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from sync.history import (
    ALWAYS,
    ALWAYS_US,
    BLANK,
    CATS,
    CURRENT,
    MISSING,
    Days,
    Transitions,
    build_timeline,
    build_timelines,
    burnup_deltas,
    from_us,
    load_display,
    load_items,
    load_table,
    load_transition_table,
    load_transitions,
    state_at,
    to_us,
)
from sync.model import Transition
from sync.store import Store
from tests.test_report import END, NOW, C, at, build, config, item, project, store_with

BERLIN = ZoneInfo("Europe/Berlin")


def series(report: object) -> list[tuple[str, int, int, str]]:
    return [(p.day.isoformat()[5:], p.scope, p.done, p.basis)
            for p in report.charts.burnup]  # type: ignore[attr-defined]  # fmt: skip


def test_first_report_has_a_burnup_from_created_and_completed_dates() -> None:
    items = [
        item("A-1", created_at=at("2026-11-19"), completed_at=at("2026-11-21"), category=C.DONE),
        item("A-2", created_at=at("2026-11-20")),
        item("A-3", created_at=at("2026-11-22"), category=C.CANCELLED, updated_at=at("2026-11-24")),
        item("A-4", created_at=at("2026-11-22"), category=C.DONE, completed_at=at("2026-11-26")),
    ]  # fmt: skip
    report = build(store_with(items), config())
    # No start date: the chart starts at the earliest creation, 19 Nov.
    assert series(report) == [
        ("11-19", 1, 0, "history"), ("11-20", 2, 0, "history"), ("11-21", 2, 1, "history"),
        ("11-22", 4, 1, "history"), ("11-23", 4, 1, "history"), ("11-24", 3, 1, "history"),
        ("11-25", 3, 1, "history"), ("11-26", 3, 2, "history"),
    ]  # fmt: skip


def test_estimates_follow_the_same_steps() -> None:
    items = [item("A-1", created_at=at("2026-11-25"), estimate=3, category=C.DONE,
                  completed_at=at("2026-11-26")), item("A-2", created_at=at("2026-11-25"))]  # fmt: skip
    report = build(store_with(items), config())
    last = report.charts.burnup[-1]
    assert (last.scope_estimate, last.done_estimate) == (3, 3)


def test_snapshots_replace_the_rebuilt_days_they_cover() -> None:
    items = [item("A-1", created_at=at("2026-11-20"), category=C.DONE,
                  completed_at=at("2026-11-23"))]  # fmt: skip
    store = store_with(items)
    snap = {"total": 9, "todo": 3, "in_progress": 2, "done": 3, "cancelled": 1,
            "estimate_total": 20.0, "estimate_done": 5.5}  # fmt: skip
    store.write_snapshot("p", date(2026, 11, 24), "client", snap)
    store.write_snapshot("p", date(2026, 11, 25), "internal", {**snap, "done": 7})
    store.write_snapshot("other", date(2026, 11, 25), "client", {**snap, "done": 7})
    report = build(store, config())
    assert series(report) == [
        ("11-20", 1, 0, "history"), ("11-21", 1, 0, "history"), ("11-22", 1, 0, "history"),
        ("11-23", 1, 1, "history"), ("11-24", 8, 3, "snapshot"), ("11-25", 1, 1, "history"),
        ("11-26", 1, 1, "history"),
    ]  # fmt: skip
    assert report.charts.burnup[4].scope_estimate == 20.0
    internal = build(store, config(), audience="internal")
    assert [p.basis for p in internal.charts.burnup].count("snapshot") == 1
    assert internal.charts.burnup[5].done == 7


def test_reopened_items_leave_the_done_line() -> None:
    reopened = item(
        "R-1", C.IN_PROGRESS, created_at=at("2026-11-20"),
        transitions=[
            Transition(source="src", item_id="R-1", at=at("2026-11-21"), from_category=C.TODO,
                       to_category=C.DONE, to_status="Closed"),
            Transition(source="src", item_id="R-1", at=at("2026-11-24"), from_category=C.DONE,
                       to_category=C.IN_PROGRESS, to_status="Reopened"),
        ],
    )  # fmt: skip
    report = build(store_with([reopened]), config())
    assert [p.done for p in report.charts.burnup] == [0, 1, 1, 1, 0, 0, 0]


def test_the_chart_starts_at_the_project_start_or_two_years_back() -> None:
    items = [item("A-1", created_at=at("2020-01-01"))]
    report = build(store_with(items), config(project(start_date=date(2026, 11, 1))))
    assert report.charts.burnup[0].day == date(2026, 11, 1)
    assert report.charts.burnup[0].scope == 1
    report = build(store_with(items), config())
    assert report.charts.burnup[0].day == END - timedelta(days=730)
    # A start date after the period start still shows the whole period.
    report = build(store_with(items), config(project(start_date=date(2026, 11, 25))))
    assert report.charts.burnup[0].day == date(2026, 11, 20)


def test_timelines() -> None:
    store = store_with([
        item("T-1", C.DONE, created_at=at("2026-11-01"), completed_at=at("2026-11-05")),
        item("T-2", C.IN_PROGRESS, created_at=None),
        item("T-3", C.DONE, created_at=at("2026-11-01"), completed_at=at("2026-11-09"),
             transitions=[Transition(source="src", item_id="T-3", at=at("2026-11-08"),
                                     from_category=C.TODO, to_category=C.DONE,
                                     to_status="Closed", from_status="Open")]),
        item("T-4", C.CANCELLED, created_at=at("2026-11-01")),
    ], seen=NOW)  # fmt: skip
    trans = load_transitions(store, ["src"])
    rows = {r.key: r for r in load_items(store, ["src"])}
    tl = {k: build_timeline(r, trans.get(("src", r.id))) for k, r in rows.items()}
    assert [(e[0].day, e[1]) for e in tl["T-1"]] == [(1, C.TODO), (5, C.DONE)]
    assert tl["T-2"] == [(ALWAYS, C.IN_PROGRESS, "Doing")]
    # The tool's completion time wins over the transition time for the final done run.
    assert [(e[0].day, e[1], e[2]) for e in tl["T-3"]] == [
        (1, C.TODO, "Open"),
        (9, C.DONE, "Closed"),
    ]
    assert [(e[0].day, e[1]) for e in tl["T-4"]] == [(1, C.CANCELLED)]
    assert state_at(tl["T-1"], at("2026-10-31")) is None
    assert state_at(tl["T-1"], at("2026-11-04")) == (C.TODO, "", at("2026-11-01"))
    assert state_at(tl["T-1"], at("2026-11-06")) == (C.DONE, "Closed", at("2026-11-05"))


# -- the columnar form agrees with the per-item reference -------------------------------------


def random_history_store(seed: int) -> Store:
    """Items with random histories: no history, several steps, equal times, and a completion
    time after a later done step (a timeline out of time order)."""
    rng = random.Random(seed)
    cats = list(C)
    items = []
    for n in range(60):
        created = (
            None if rng.random() < 0.1 else at("2026-10-01") + timedelta(hours=rng.randrange(900))
        )
        cat = rng.choice(cats)
        transitions = None
        completed = None
        if rng.random() < 0.6:
            t = created or at("2026-10-01")
            transitions, prev = [], rng.choice(cats)
            for _ in range(rng.randrange(1, 5)):
                if rng.random() < 0.8:
                    t += timedelta(hours=rng.randrange(1, 200))
                nxt = rng.choice(cats)
                transitions.append(
                    Transition(
                        source="src",
                        item_id=f"T-{n}",
                        at=t,
                        from_category=rng.choice([None, prev]),
                        from_status=rng.choice([None, "", "Open"]),
                        to_category=nxt,
                        to_status=rng.choice(["Doing", "Closed", "Done", ""]),
                    )
                )
                prev = nxt
            if cat is C.DONE and rng.random() < 0.5:
                for k in (1, 2):
                    transitions.append(
                        Transition(
                            source="src",
                            item_id=f"T-{n}",
                            at=t + timedelta(hours=k),
                            from_category=C.DONE,
                            to_category=C.DONE,
                            to_status=f"Done {k}",
                        )
                    )
                completed = t + timedelta(hours=rng.choice([0.5, 1.5, 3]))
        elif cat in (C.DONE, C.CANCELLED) and rng.random() < 0.7:
            completed = (created or at("2026-10-01")) + timedelta(hours=rng.randrange(-5, 300))
        updated = rng.choice(
            [None, (completed or created or at("2026-10-01")) + timedelta(hours=2)]
        )
        items.append(
            item(
                f"T-{n}",
                cat,
                created_at=created,
                completed_at=completed,
                updated_at=updated,
                transitions=transitions,
                estimate=rng.choice([None, 1.0, 0.5, 1 / 3]),
            )
        )
    # Done at 10:00, "Closed" (still done) at 12:00, completed at 14:00 per the tool.
    items.append(
        item(
            "T-late",
            C.DONE,
            completed_at=at("2026-10-20", 14),
            transitions=[
                Transition(
                    source="src",
                    item_id="T-late",
                    at=at("2026-10-20", 10),
                    to_status="Done",
                    from_category=C.TODO,
                    to_category=C.DONE,
                ),
                Transition(
                    source="src",
                    item_id="T-late",
                    at=at("2026-10-20", 12),
                    to_status="Closed",
                    from_category=C.DONE,
                    to_category=C.DONE,
                ),
            ],
        )
    )
    return store_with(items)


@pytest.mark.parametrize("seed", range(8))
def test_columnar_timelines_agree_with_the_reference(seed: int) -> None:
    store = random_history_store(seed)
    rows = load_items(store, ["src"])
    trans = load_transitions(store, ["src"])
    reference = [build_timeline(r, trans.get(("src", r.id))) for r in rows]
    # At least one timeline is out of time order (T-late): the bisection must agree too.
    assert any(any(a[0] > b[0] for a, b in pairwise(tl)) for tl in reference)

    table = load_table(store, ["src"])
    ids = load_display(store, table.rowid.tolist(), ("id",))
    assert [ids[r][0] for r in table.rowid.tolist()] == [r.id for r in rows]
    steps, texts = Transitions.of(load_transition_table(store, ["src"]), table.rowid)
    created = np.where(table.created == MISSING, ALWAYS_US, table.created)
    tl = build_timelines(created, table.updated, table.completed, table.category, steps)

    def text(step: int) -> str:
        ref = int(tl.status[step])
        return rows[k].status if ref == CURRENT else "" if ref == BLANK else texts[ref] or ""

    for k, expected in enumerate(reference):
        span = range(int(tl.off[k]), int(tl.off[k] + tl.size[k]))
        assert [(from_us(int(tl.at[p])), CATS[tl.cat[p]], text(p)) for p in span] == [
            (when, cat, status or "") for when, cat, status in expected
        ]
    instants = sorted({e[0] for tl_ in reference for e in tl_ if e[0] is not ALWAYS})
    probes = [at("2026-09-01"), *instants, *(i - timedelta(microseconds=1) for i in instants)]
    for when in probes:
        positions = tl.positions(to_us(when))
        for k, expected in enumerate(reference):
            state = state_at(expected, when)
            p = int(positions[k])
            if state is None:
                assert p == -1
            else:
                since = from_us(int(tl.at[tl.run[p]]))
                assert (CATS[tl.cat[p]], text(p) or "", since) == (
                    state[0],
                    state[1] or "",
                    state[2],
                )

    # The burn-up counts each step on its day, as a loop over the timelines does.
    first, n = date(2026, 10, 5), 30
    days = Days(first, first + timedelta(days=n), BERLIN)
    estimates = np.array([r.estimate or 0.0 for r in rows])
    step_days = days.indices(tl.at)
    deltas = burnup_deltas(tl, np.arange(len(rows)), estimates, step_days, n)
    scope, done = [0] * n, [0] * n
    scope_e, done_e = [0.0] * n, [0.0] * n
    for r, timeline in zip(rows, reference, strict=True):
        was_scope = was_done = False
        for when, cat, _ in timeline:
            day = 0 if when is ALWAYS else days.index(when)
            if day >= n:
                break
            day = max(day, 0)
            if (cat is not C.CANCELLED) != was_scope:
                was_scope = not was_scope
                scope[day] += 1 if was_scope else -1
                scope_e[day] += (1 if was_scope else -1) * (r.estimate or 0.0)
            if (cat is C.DONE) != was_done:
                was_done = not was_done
                done[day] += 1 if was_done else -1
                done_e[day] += (1 if was_done else -1) * (r.estimate or 0.0)
    assert deltas.scope.tolist() == scope and deltas.done.tolist() == done
    assert deltas.scope_estimate.tolist() == scope_e
    assert deltas.done_estimate.tolist() == done_e
