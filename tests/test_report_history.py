"""Burn-up history: rebuilt from item timelines, replaced by snapshots where they exist."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sync.history import ALWAYS, build_timeline, load_items, load_transitions, state_at
from sync.model import Transition
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
