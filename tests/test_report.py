"""The report builder: counting rule, lists, health rules, scope change, changes, closing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from config.schema import Config, ProjectSettings
from connectors.base import SourceSettings
from sync import scope
from sync.errors import ConfigError
from sync.model import Milestone, StatusCategory, Transition, WorkItem
from sync.report import Report, build_report, natural_key, parse_period
from sync.store import Store

C = StatusCategory
# The period used throughout: 20..26 Nov 2026 in Berlin (UTC+1), built "now".
START, END = date(2026, 11, 20), date(2026, 11, 26)
NOW = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
TOP_KEYS = {
    "project", "period", "generated_at", "audience", "language", "health", "progress",
    "completed", "in_progress", "upcoming", "overdue", "blocked", "needs_client_input",
    "change_requests", "scope_change", "milestones", "forecast", "charts",
    "changes_since_last_report", "sources",
}  # fmt: skip


# -- helpers shared by the report test files --------------------------------------------------


def at(day: date | str, hour: int = 12, minute: int = 0) -> datetime:
    d = date.fromisoformat(day) if isinstance(day, str) else day
    return datetime(d.year, d.month, d.day, hour, minute, tzinfo=UTC)


def item(key: str, category: C = C.TODO, **kw: Any) -> WorkItem:
    """A WorkItem of source "src" created on 1 Oct 2026 unless told otherwise."""
    fields: dict[str, Any] = {
        "source": "src", "id": key, "key": key, "title": f"Title of {key}",
        "url": f"https://tracker.example/{key}", "category": category,
        "status": {C.TODO: "Open", C.IN_PROGRESS: "Doing", C.DONE: "Closed",
                   C.CANCELLED: "Won't do"}[category],
        "created_at": at("2026-10-01", 9),
    }  # fmt: skip
    fields.update(kw)
    return WorkItem(**fields)


def project(**kw: Any) -> ProjectSettings:
    fields: dict[str, Any] = {
        "name": "Relaunch", "client": "ACME", "sources": ["src"], "timezone": "Europe/Berlin",
    }  # fmt: skip
    fields.update(kw)
    return ProjectSettings(**fields)


def config(proj: ProjectSettings | None = None, **sources: SourceSettings) -> Config:
    return Config(
        sources=sources or {"src": SourceSettings(kind="csv")},
        projects={"p": proj or project()},
    )


def store_with(items: list[WorkItem], *, seen: datetime = NOW) -> Store:
    store = Store.memory()
    store.upsert_items(items, now=seen)
    return store


def build(store: Store, cfg: Config, **kw: Any) -> Report:
    kw.setdefault("start", START)
    kw.setdefault("end", END)
    kw.setdefault("now", NOW)
    return build_report(store, cfg, "p", **kw)


def keys(refs: list[Any]) -> list[str]:
    return [r.key for r in refs]


def record_sync(store: Store, source: str, ended: datetime) -> None:
    store.conn.execute(
        "INSERT INTO sync_runs (source, mode, started_at, ended_at, status)"
        " VALUES (?, 'incremental', ?, ?, 'ok')",
        (source, ended.isoformat(), ended.isoformat()),
    )


# -- the counting rule ------------------------------------------------------------------------


def counting_store() -> Store:
    items = [
        # 00:30 in Berlin on 20 Nov, 23:30 UTC the day before: inside the period.
        item("A-1", C.DONE, completed_at=datetime(2026, 11, 19, 23, 30, tzinfo=UTC), estimate=3),
        # 00:30 in Berlin on 27 Nov: after the period (and so not done at its end).
        item("A-2", C.DONE, completed_at=datetime(2026, 11, 26, 23, 30, tzinfo=UTC), estimate=2),
        item("A-3", C.DONE, completed_at=at("2026-11-02"), estimate=5),
        item("A-4", C.IN_PROGRESS, due_date=date(2026, 11, 25), estimate=8),
        item("A-5", C.TODO, blocked=True, due_date=date(2026, 11, 30)),
        item("A-6", C.TODO, labels=["Needs-Client"], due_date=date(2026, 12, 3)),
        item("A-7", C.CANCELLED, labels=["change-request"], estimate=13),
        item("A-8", C.IN_PROGRESS, kind="Change Request"),
        item("A-9", C.DONE, labels=["internal"], completed_at=at("2026-11-21")),
        item("A-10", C.DONE, labels=["needs-client"], completed_at=at("2026-11-22")),
        item("A-11", C.IN_PROGRESS, labels=["blocked"]),
        item("A-12", C.DONE, blocked=True, completed_at=at("2026-11-03")),
        item("A-13", C.TODO, due_date=END),
        item("A-14", C.TODO, due_date=date(2026, 12, 4)),
        item("A-15", C.TODO, created_at=at("2026-11-27", 8)),  # created after the period
        item("A-16", C.TODO),  # deleted from its source below
        item("E-1", C.IN_PROGRESS, kind="epic"),
    ]
    store = store_with(items)
    live = [i.id for i in items if i.id != "A-16"]
    store.reconcile("src", live, now=NOW)
    return store


def test_counting_rule_counts_each_category_exactly() -> None:
    report = build(counting_store(), config())
    p = report.progress
    # In scope: A-1..A-14 but A-9 (internal); A-2 counts as open at the period end.
    assert (p.total, p.done, p.in_progress, p.todo, p.cancelled) == (13, 4, 3, 5, 1)
    assert p.percent_done == round(100 * 4 / 12, 1) == 33.3
    assert p.estimate_total == 3 + 2 + 5 + 8  # A-7's 13 is cancelled
    assert p.estimate_done == 3 + 5
    assert p.percent_done_by_estimate == round(100 * 8 / 18, 1)


def test_lists_follow_the_counting_rule() -> None:
    report = build(counting_store(), config())
    assert keys(report.completed) == ["A-1", "A-10"]
    assert keys(report.in_progress) == ["A-4", "A-8", "A-11"]
    assert keys(report.overdue) == ["A-4"]
    assert report.overdue[0].days_overdue == 1
    # Due in the next 7 days (27 Nov..3 Dec); A-13 is due on the last day: neither.
    assert keys(report.upcoming) == ["A-5", "A-6"]
    # Both blocked since their creation (no updates): the same age, so by key.
    assert keys(report.blocked) == ["A-5", "A-11"]
    assert [r.blocked_days for r in report.blocked] == [56, 56]
    assert keys(report.needs_client_input) == ["A-6"]
    assert keys(report.change_requests) == ["A-7", "A-8"]
    assert report.change_requests[0].status == "Won't do"
    # The builder's inlined rules agree with sync.scope's reference functions.
    proj = project()
    live = {i.key: i for i in counting_store().items(["src"]) if scope.in_scope(i, proj, "client")}
    assert sorted(k for k, i in live.items() if scope.is_change_request(i, proj)) == ["A-7", "A-8"]
    assert sorted(k for k, i in live.items() if scope.needs_client_input(i, proj)) == ["A-6"]
    assert sorted(k for k, i in live.items() if scope.is_blocked(i, proj)) == ["A-11", "A-5"]
    for name in ("completed", "in_progress", "upcoming", "overdue", "blocked",
                 "needs_client_input", "change_requests"):  # fmt: skip
        refs = getattr(report, name)
        assert len({(r.source, r.key) for r in refs}) == len(refs)


def test_item_references_carry_the_contract_fields() -> None:
    report = build(counting_store(), config())
    ref = report.model_dump(mode="json")["completed"][0]
    assert ref["source"] == "src"
    assert ref["key"] == "A-1"
    assert ref["title"] == "Title of A-1"
    assert ref["url"] == "https://tracker.example/A-1"
    assert ref["status"] == "Closed"
    assert ref["category"] == "done"
    assert ref["due_date"] is None
    assert ref["completed_at"] == "2026-11-19T23:30:00Z"


def test_internal_audience_counts_internal_items() -> None:
    report = build(counting_store(), config(), audience="internal")
    assert report.progress.total == 14
    assert report.progress.done == 5
    assert keys(report.completed) == ["A-1", "A-9", "A-10"]
    assert report.audience == "internal"


def test_json_has_exactly_the_contract_keys() -> None:
    report = build(counting_store(), config())
    data = report.model_dump(mode="json")
    assert set(data) == TOP_KEYS
    assert set(data["project"]) == {"id", "name", "client"}
    assert set(data["period"]) == {"start", "end"}
    assert set(data["health"]) == {"status", "reasons", "overridden"}
    assert set(data["progress"]) == {
        "total", "done", "in_progress", "todo", "cancelled", "percent_done", "estimate_total",
        "estimate_done", "percent_done_by_estimate", "delta",
    }  # fmt: skip
    assert set(data["scope_change"]) == {
        "baseline",
        "added",
        "removed",
        "estimate_added",
        "estimate_removed",
    }
    assert set(data["sources"][0]) == {"name", "kind", "last_synced_at", "items"}
    assert data["project"] == {"id": "p", "name": "Relaunch", "client": "ACME"}
    assert data["period"] == {"start": "2026-11-20", "end": "2026-11-26"}
    assert data["generated_at"] == "2026-11-26T17:00:00Z"
    assert report.period_id == "2026-11-20..2026-11-26"
    assert "period_id" not in data
    # The model reads its own JSON back.
    assert Report.model_validate(data).model_dump(mode="json") == data


def test_sources_report_kind_freshness_and_items() -> None:
    store = counting_store()
    record_sync(store, "src", NOW - timedelta(hours=2))
    report = build(store, config())
    [src] = report.sources
    assert (src.name, src.kind, src.items) == ("src", "csv", 13)
    assert src.last_synced_at == NOW - timedelta(hours=2)


def test_default_period_is_the_seven_days_ending_today_in_the_projects_zone() -> None:
    store = store_with([item("A-1")])
    # 23:30 UTC on 26 Nov is already 27 Nov in Berlin.
    report = build_report(store, config(), "p", now=datetime(2026, 11, 26, 23, 30, tzinfo=UTC))
    assert (report.period.start, report.period.end) == (date(2026, 11, 21), date(2026, 11, 27))


def test_parse_period() -> None:
    today = date(2026, 3, 31)
    assert parse_period("7d", today) == (date(2026, 3, 25), today)
    assert parse_period("2w", today) == (date(2026, 3, 18), today)
    # One month back from 31 Mar is 28 Feb; the period starts the day after.
    assert parse_period("1m", today) == (date(2026, 3, 1), today)
    assert parse_period("1m", date(2026, 1, 15)) == (date(2025, 12, 16), date(2026, 1, 15))
    for bad in ("0d", "7", "3y", "-1w", ""):
        with pytest.raises(ConfigError):
            parse_period(bad, today)


def test_bad_arguments_are_config_errors() -> None:
    store = store_with([item("A-1")])
    with pytest.raises(ConfigError, match="unknown project 'nope'"):
        build_report(store, config(), "nope", now=NOW)
    with pytest.raises(ConfigError, match="after it ends"):
        build(store, config(), start=END, end=START)
    with pytest.raises(ConfigError, match="unknown language"):
        build(store, config(), language="fr")
    with pytest.raises(ConfigError, match="unknown health"):
        build(store, config(), health="green")


# -- health -----------------------------------------------------------------------------------


def steady(n_done: int, open_: int, *, per_day: int = 1, **kw: Any) -> list[WorkItem]:
    """`n_done` items finished `per_day` a day up to END, and `open_` open items."""
    out = []
    for i in range(n_done):
        day = END - timedelta(days=i // per_day)
        out.append(item(f"D-{i}", C.DONE, completed_at=at(day, 10), **kw))
    out += [item(f"O-{i}", C.TODO, **kw) for i in range(open_)]
    return out


def test_health_complete_when_everything_not_cancelled_is_done() -> None:
    store = store_with([item("A-1", C.DONE, completed_at=at("2026-11-21")),
                        item("A-2", C.CANCELLED)])  # fmt: skip
    report = build(store, config())
    assert report.health.status == "complete"
    assert report.health.reasons == ["All 1 items are done."]


def test_health_on_track_when_p85_is_before_the_target() -> None:
    store = store_with(steady(42, 10))
    report = build(store, config(project(target_date=date(2026, 12, 31))))
    assert report.forecast.p85 == END + timedelta(days=10)
    assert report.health.status == "on_track"
    assert report.health.reasons == [
        "The 85% forecast (6 Dec 2026) is on or before the target date 31 Dec 2026.",
        "No late milestones, no item blocked for 5 days or more, and the data is current.",
    ]


def test_health_off_track_when_the_median_forecast_misses_the_target() -> None:
    store = store_with(steady(42, 10))
    report = build(store, config(project(target_date=date(2026, 12, 1))))
    assert report.health.status == "off_track"
    assert report.health.reasons[0] == (
        "Even the median forecast (6 Dec 2026) is after the target date 1 Dec 2026."
    )


def test_health_at_risk_when_only_p85_misses_the_target() -> None:
    # One item completes 3 at a time on a third of the days: P50 is 2 days, P85 5 days.
    done = []
    for n in range(42):
        if n % 3 == 0:
            done += [item(f"D-{n}-{k}", C.DONE, completed_at=at(END - timedelta(n), 10))
                     for k in range(3)]  # fmt: skip
    store = store_with([*done, item("O-1")])
    report = build(store, config(project(target_date=END + timedelta(days=3))))
    assert (report.forecast.p50, report.forecast.p85) == (
        END + timedelta(days=2),
        END + timedelta(days=5),
    )
    assert report.health.status == "at_risk"
    assert report.health.reasons[0] == (
        "The 85% forecast (1 Dec 2026) is after the target date 29 Nov 2026."
    )


def test_health_off_track_when_the_target_date_has_passed() -> None:
    store = store_with(steady(42, 3))
    report = build(store, config(project(target_date=date(2026, 11, 25))))
    assert report.health.status == "off_track"
    assert report.health.reasons[0] == "The target date 25 Nov 2026 has passed with 3 items open."


def test_health_notes_missing_target_and_missing_forecast() -> None:
    store = store_with(steady(1, 4))
    report = build(store, config())
    assert report.health.status == "on_track"
    assert report.health.reasons[0] == "No target date is set."
    report = build(store, config(project(target_date=date(2027, 1, 1))))
    assert report.health.reasons[0] == (
        "No forecast against the target date: too little history: 1 items completed in the"
        " last 42 days (at least 3 are needed)."
    )


@pytest.mark.parametrize(("due", "status"), [(date(2026, 11, 16), "at_risk"),
                                             (date(2026, 11, 11), "off_track")])  # fmt: skip
def test_health_late_milestones(due: date, status: str) -> None:
    store = store_with([*steady(42, 2), item("M-1", milestone_id="m1")])
    store.upsert_milestones("src", [Milestone(source="src", id="m1", name="Beta", due_date=due)])
    report = build(store, config())
    [m] = report.milestones
    assert m.state == "late"
    assert report.health.status == status
    late = (END - due).days
    assert f"Milestone Beta is {late} days past its due date {due.day} Nov 2026." in (
        report.health.reasons
    )


def test_health_old_blockers_put_the_project_at_risk() -> None:
    young = item("B-1", blocked=True, updated_at=at("2026-11-24"))
    store = store_with([*steady(42, 2), young])
    report = build(store, config())
    assert report.health.status == "on_track"
    assert "1 open blocked items; the oldest has been blocked for 2 days." in report.health.reasons
    old = item("B-2", C.IN_PROGRESS, blocked=True, updated_at=at("2026-11-19"))
    store = store_with([*steady(42, 2), young, old])
    report = build(store, config())
    assert report.health.status == "at_risk"
    assert "2 open blocked items; the oldest has been blocked for 7 days." in report.health.reasons
    assert keys(report.blocked) == ["B-2", "B-1"]
    assert [r.blocked_days for r in report.blocked] == [7, 2]


def test_blocked_age_comes_from_the_transition_into_a_blocked_status() -> None:
    blocked = item(
        "B-1", C.IN_PROGRESS, status="Waiting", blocked=True, updated_at=at("2026-11-25"),
        transitions=[
            Transition(source="src", item_id="B-1", at=at("2026-11-10"), to_status="Doing",
                       from_status="Open", from_category=C.TODO, to_category=C.IN_PROGRESS),
            Transition(source="src", item_id="B-1", at=at("2026-11-16"), to_status="Waiting",
                       from_status="Doing", from_category=C.IN_PROGRESS,
                       to_category=C.IN_PROGRESS),
        ],
    )  # fmt: skip
    store = store_with([*steady(42, 1), blocked])
    cfg = config(src=SourceSettings(kind="csv", blocked_statuses=["waiting"]))
    report = build(store, cfg)
    assert report.blocked[0].blocked_days == 10
    assert report.health.status == "at_risk"


def test_health_stale_data_against_the_schedule() -> None:
    store = store_with(steady(42, 2))
    # Weekly schedule: a sync 8 days old is too old, one 6 days old is fine.
    record_sync(store, "src", NOW - timedelta(days=8))
    report = build(store, config(project(schedule="0 9 * * MON")))
    assert report.health.status == "at_risk"
    assert report.health.reasons[-1] == (
        "Source src was last synced 18 Nov 2026 18:00 (Europe/Berlin), longer ago than the"
        " schedule allows (7 days)."
    )
    store = store_with(steady(42, 2))
    record_sync(store, "src", NOW - timedelta(days=6))
    assert build(store, config(project(schedule="0 9 * * MON"))).health.status == "on_track"
    # A daily schedule allows one day.
    assert build(store, config(project(schedule="0 9 * * *"))).health.status == "at_risk"


def test_health_never_synced_source() -> None:
    store = store_with(steady(42, 2))
    cfg = Config(
        sources={"src": SourceSettings(kind="csv"), "other": SourceSettings(kind="jira")},
        projects={"p": project(sources=["src", "other"])},
    )
    report = build(store, cfg)
    assert report.health.status == "at_risk"
    assert "Source other has never been synced." in report.health.reasons


def test_health_override_with_note() -> None:
    store = store_with(steady(42, 3))
    cfg = config(project(target_date=date(2026, 11, 25)))
    report = build(store, cfg, health="on_track", note="Client agreed the new date.")
    assert report.health.status == "on_track"
    assert report.health.overridden is True
    assert report.health.reasons[:3] == [
        "Set by the project manager: Client agreed the new date.",
        "The rules alone give: Off track.",
        "The target date 25 Nov 2026 has passed with 3 items open.",
    ]
    cfg = config(project(target_date=date(2026, 11, 25), health="at_risk", health_note="Hold"))
    report = build(store, cfg)
    assert (report.health.status, report.health.overridden) == ("at_risk", True)
    assert report.health.reasons[0] == "Set by the project manager: Hold"
    assert build(store, config()).health.overridden is False


# -- scope change and changes since the last report -------------------------------------------


def scope_store() -> Store:
    items = [
        item("S-1", estimate=1),  # original scope
        item("S-2", created_at=at("2026-11-02", 22, 30), estimate=2),  # 23:30 Berlin: baseline day
        item("S-3", created_at=at("2026-11-03", 0, 30), estimate=3),  # added
        item("S-4", C.DONE, created_at=at("2026-11-10"), completed_at=at("2026-11-21"), estimate=5),
        item("S-5", C.CANCELLED, created_at=at("2026-10-05"), updated_at=at("2026-11-12"), estimate=8),
        item("S-6", C.CANCELLED, created_at=at("2026-11-05"), updated_at=at("2026-11-06"), estimate=13),
        item("S-7", created_at=at("2026-10-05"), estimate=21),  # deleted below
        item("S-8", created_at=None, estimate=1),  # no creation time: always in scope
    ]  # fmt: skip
    store = store_with(items)
    store.reconcile("src", [i.id for i in items if i.id != "S-7"], now=at("2026-11-15"))
    return store


def test_scope_change_since_the_baseline() -> None:
    report = build(scope_store(), config(project(start_date=date(2026, 10, 1),
                                                 baseline_date=date(2026, 11, 2))))  # fmt: skip
    s = report.scope_change
    assert s.baseline == date(2026, 11, 2)
    # S-6 was added and cancelled after the baseline: neither added nor removed.
    assert keys(s.added) == ["S-3", "S-4"]
    assert keys(s.removed) == ["S-5", "S-7"]
    assert (s.estimate_added, s.estimate_removed) == (8, 29)


def test_scope_change_without_a_baseline_is_empty() -> None:
    s = build(scope_store(), config()).scope_change
    assert (s.baseline, s.added, s.removed, s.estimate_added) == (None, [], [], 0)


def test_changes_since_the_previous_period() -> None:
    reopened = item(
        "R-1", C.IN_PROGRESS, completed_at=None,
        transitions=[
            Transition(source="src", item_id="R-1", at=at("2026-11-10"), from_category=C.TODO,
                       to_category=C.DONE, to_status="Closed"),
            Transition(source="src", item_id="R-1", at=at("2026-11-22"), from_category=C.DONE,
                       to_category=C.IN_PROGRESS, to_status="Reopened"),
        ],
    )  # fmt: skip
    items = [
        item("K-1", C.DONE, completed_at=at("2026-11-10")),  # done before: no change
        item("K-2", C.DONE, completed_at=at("2026-11-21")),  # completed
        item("K-3", created_at=at("2026-11-23")),  # added
        item("K-4", C.DONE, created_at=at("2026-11-24"), completed_at=at("2026-11-25")),
        item("K-5", C.CANCELLED, updated_at=at("2026-11-23")),  # cancelled
        item("K-6"),  # deleted in the period
        item("K-7"),  # deleted before the period
        reopened,
    ]  # fmt: skip
    store = store_with(items)
    store.reconcile(
        "src", [i.id for i in items if i.id not in ("K-6", "K-7")], now=at("2026-11-22")
    )
    store.conn.execute(
        "UPDATE items SET deleted_at = ? WHERE id = 'K-7'", (at("2026-11-15").isoformat(),)
    )
    report = build(store, config())
    c = report.changes_since_last_report
    assert (c.since, c.basis) == (date(2026, 11, 19), "previous_period")
    assert keys(c.completed) == ["K-2", "K-4"]
    assert keys(c.added) == ["K-3", "K-4"]
    assert keys(c.reopened) == ["R-1"]
    assert keys(c.cancelled) == ["K-5"]
    assert keys(c.removed) == ["K-6"]
    # Then (end of 19 Nov): K-1 and R-1 done of K-1, K-2, K-5, R-1 (K-6 is gone now).
    assert (c.progress_then.total, c.progress_then.done, c.progress_then.percent_done) == (
        4,
        2,
        50.0,
    )
    d = report.progress.delta
    assert d is not None
    assert (d.since, d.total, d.done) == (date(2026, 11, 19), 2, 1)
    # Now: 3 done of 6 total, 1 cancelled -> 60 %; then 50 %.
    assert report.progress.percent_done == 60.0
    assert d.percent_done == 10.0


def test_changes_since_the_last_published_report() -> None:
    store = store_with([item("K-1", C.DONE, completed_at=at("2026-11-16")),
                        item("K-2", C.DONE, completed_at=at("2026-11-21"))])  # fmt: skip
    store.record_publication("p", "jira", "2026-11-06..2026-11-12", "1", "h", None)
    store.record_publication("p", "jira", "2026-11-20..2026-11-26", "2", "h", None)  # this one
    store.record_publication("other", "jira", "2026-11-13..2026-11-18", "3", "h", None)
    c = build(store, config()).changes_since_last_report
    assert (c.since, c.basis) == (date(2026, 11, 12), "publication")
    assert keys(c.completed) == ["K-1", "K-2"]


def test_feedback_since_the_last_report_is_internal_only() -> None:
    store = store_with([item("A-1")])
    store.add_feedback("p", date(2026, 11, 18), 2, "slow")
    store.add_feedback("p", date(2026, 11, 24), 5, "great demo")
    assert build(store, config()).changes_since_last_report.feedback == []
    fb = build(store, config(), audience="internal").changes_since_last_report.feedback
    assert [(f.day, f.score, f.comment) for f in fb] == [(date(2026, 11, 24), 5, "great demo")]


def test_a_past_period_shows_the_project_as_it_stood_then() -> None:
    items = [
        item("H-1", C.DONE, completed_at=at("2026-11-05")),
        item("H-2", C.DONE, completed_at=at("2026-11-24")),
        item("H-3", C.DONE, completed_at=at("2026-11-13")),
        item("H-4", created_at=at("2026-11-20")),
    ]
    report = build(store_with(items), config(), start=date(2026, 11, 6), end=date(2026, 11, 13))
    assert (report.progress.total, report.progress.done) == (3, 2)
    assert keys(report.completed) == ["H-3"]
    assert report.completed[0].status == "Closed"
    # H-2 was still open then: its status is its category's name.
    assert keys(report.in_progress) == []


# -- milestones and the Gantt -----------------------------------------------------------------


def test_milestones_done_percent_and_forecast_in_due_order() -> None:
    items = [
        *steady(42, 0),
        item("M-1", C.DONE, milestone_id="m1", completed_at=at("2026-10-10")),
        item("M-2", milestone_id="m1"), item("M-3", milestone_id="m1"),
        item("M-4", milestone_id="m2"), item("M-5", milestone_id="m2"),
        item("M-6", C.CANCELLED, milestone_id="m2"),
    ]  # fmt: skip
    store = store_with(items)
    store.upsert_milestones("src", [
        Milestone(source="src", id="m2", name="GA", due_date=date(2026, 11, 29)),
        Milestone(source="src", id="m1", name="Beta", due_date=date(2026, 11, 28)),
        Milestone(source="src", id="m3", name="Old", due_date=date(2026, 10, 1), state="closed"),
    ])  # fmt: skip
    report = build(store, config())
    ms = {m.name: m for m in report.milestones}
    assert (ms["Beta"].total, ms["Beta"].done, ms["Beta"].percent_done) == (3, 1, 33.3)
    # One item a day: Beta's 2 open items take 2 days, GA's 2 more take 4 in all.
    assert ms["Beta"].forecast == END + timedelta(days=2)
    assert ms["GA"].forecast == END + timedelta(days=4)
    assert (ms["Beta"].state, ms["GA"].state, ms["Old"].state) == ("on_track", "at_risk", "done")
    gantt = report.charts.gantt
    assert [(g.kind, g.name, g.end) for g in gantt] == [
        ("milestone", "Old", date(2026, 10, 1)),
        ("milestone", "Beta", date(2026, 11, 28)),
        ("milestone", "GA", date(2026, 11, 29)),
    ]


def test_gantt_epics_take_dates_from_their_children() -> None:
    items = [
        item("E-1", C.IN_PROGRESS, kind="Epic", title="Checkout"),
        item("T-1", C.DONE, parent_id="E-1", start_date=date(2026, 11, 2),
             completed_at=at("2026-11-12"), due_date=date(2026, 11, 13)),
        item("T-2", parent_id="E-1", due_date=date(2026, 12, 10)),
        item("E-2", kind="epic", start_date=date(2026, 11, 1), due_date=date(2026, 11, 20)),
        item("E-3", kind="epic"),  # no dates: not drawn
        item("E-4", kind="epic", labels=["internal"], due_date=date(2026, 12, 1)),
    ]  # fmt: skip
    report = build(store_with(items), config())
    bars = [(g.key, g.start, g.end, g.percent_done, g.state) for g in report.charts.gantt]
    assert bars == [
        ("E-2", date(2026, 11, 1), date(2026, 11, 20), None, "late"),
        ("E-1", date(2026, 11, 2), date(2026, 12, 10), 50.0, "on_track"),
    ]
    internal = build(store_with(items), config(), audience="internal")
    assert [g.key for g in internal.charts.gantt] == ["E-2", "E-1", "E-4"]


# -- languages and closing --------------------------------------------------------------------


def test_chinese_report_words_and_dates() -> None:
    store = store_with(steady(42, 10))
    report = build(store, config(project(target_date=date(2026, 12, 31), language="zh-CN")))
    assert report.language == "zh-CN"
    assert report.health.reasons[0] == (
        "85% 把握的预测（2026年12月6日）不晚于目标日期 2026年12月31日。"
    )
    en = build(store, config(project(target_date=date(2026, 12, 31), language="zh-CN")),
               language="en")  # fmt: skip
    assert en.language == "en"


def test_closing_report(tmp_path: Path) -> None:
    lessons = tmp_path / "lessons.md"
    lessons.write_text("## What went well\n\nShip small.\n", encoding="utf-8")
    items = [
        item("C-1", C.DONE, start_date=date(2026, 11, 2), completed_at=at("2026-11-04")),
        item("C-2", C.DONE, created_at=at("2026-11-01", 12), completed_at=at("2026-11-11")),
        item("C-3", C.DONE, transitions=[
            Transition(source="src", item_id="C-3", at=at("2026-11-10"), from_category=C.TODO,
                       to_category=C.IN_PROGRESS, to_status="Doing"),
            Transition(source="src", item_id="C-3", at=at("2026-11-16"), from_category=C.IN_PROGRESS,
                       to_category=C.DONE, to_status="Closed"),
        ], completed_at=at("2026-11-16")),
        item("C-4", C.CANCELLED),
    ]  # fmt: skip
    store = store_with(items)
    store.add_feedback("p", date(2026, 11, 20), 4, "good")
    store.add_feedback("p", date(2026, 11, 26), 5, None)
    cfg = Config(
        sources={"src": SourceSettings(kind="csv")},
        projects={"p": project(start_date=date(2026, 11, 1), target_date=date(2026, 11, 14),
                               lessons_learned=Path("lessons.md"))},
        base_dir=tmp_path,
    )  # fmt: skip
    report = build(store, cfg, closing=True)
    c = report.closing
    assert c is not None
    assert "closing" in report.model_dump(mode="json")
    assert (c.planned_start, c.planned_end) == (date(2026, 11, 1), date(2026, 11, 14))
    # Work began with C-2 (created 1 Nov, no other start known); cancelled C-4 does not count.
    assert (c.actual_start, c.actual_end, c.slip_days) == (date(2026, 11, 1), date(2026, 11, 16), 2)
    assert (c.done, c.cancelled, c.open) == (3, 1, 0)
    # Cycle times: C-1 2.5 days (start date 00:00 Berlin to 12:00 UTC), C-2 10, C-3 6.
    assert c.cycle_time.count == 3
    assert c.cycle_time.mean_days == round((2 + 13 / 24 + 10 + 6) / 3, 1)
    assert c.cycle_time.p50_days == 6.0
    assert c.cycle_time.p85_days == 10.0
    assert c.lessons_learned == "## What went well\n\nShip small."
    assert (c.feedback.count, c.feedback.average) == (2, 4.5)
    assert [e.score for e in c.feedback.entries] == [4, 5]


def test_closing_report_missing_lessons_file_is_a_config_error(tmp_path: Path) -> None:
    cfg = Config(
        sources={"src": SourceSettings(kind="csv")},
        projects={"p": project(lessons_learned=Path("missing.md"))}, base_dir=tmp_path,
    )  # fmt: skip
    store = store_with([item("A-1")])
    with pytest.raises(ConfigError, match=r"lessons-learned file .*missing\.md"):
        build(store, cfg, closing=True)
    assert build(store, cfg).closing is None


# -- reading the store exactly ----------------------------------------------------------------


@pytest.mark.parametrize(
    "keys",
    [
        ["B-10", "a-9", "A-10", "b-2", "A-010", "7", "A-9", "Ab-1"],  # prefix + number only
        ["B-10", "a-9", "A-10-2", "A-10-1", "X", "", "A-٣", "b-2", "A-010"],
    ],  # any other shape
)
def test_lists_sort_by_natural_key_then_source(keys: list[str]) -> None:
    items = [
        item(f"{source}-{n}", C.IN_PROGRESS, source=source).model_copy(update={"key": key})
        for source in ("src", "other")
        for n, key in enumerate(keys)
    ]
    store = store_with(items)
    cfg = Config(
        sources={"src": SourceSettings(kind="csv"), "other": SourceSettings(kind="csv")},
        projects={"p": project(sources=["src", "other"])},
    )
    refs = build(store, cfg).in_progress
    expected = sorted(items, key=lambda i: (natural_key(i.key), i.source))
    assert [(r.key, r.source) for r in refs] == [(i.key, i.source) for i in expected]


def test_estimates_are_read_exactly() -> None:
    # 1/3 needs 17 digits; SQLite's JSON writes 15 (the builder reads such values as rows).
    store = store_with(
        [
            item("E-1", C.IN_PROGRESS, estimate=1 / 3),
            item("E-2", estimate=0.1),
            item("E-3", C.DONE, estimate=2.0, completed_at=at("2026-11-21")),
        ]
    )
    report = build(store, config())
    assert [r.estimate for r in report.in_progress] == [1 / 3]
    assert report.completed[0].estimate == 2.0
    assert report.progress.estimate_total == round(1 / 3 + 0.1 + 2.0, 2)


def test_timestamps_stored_with_another_offset_count_by_their_instant() -> None:
    store = store_with([item("A-1", C.DONE, completed_at=at("2026-11-25")), item("A-2")])
    # Not what the store writes, but what another writer might: 22:30 in New York on
    # 19 Nov is 04:30 on 20 Nov in Berlin, inside the period.
    store.conn.execute(
        "UPDATE items SET completed_at = '2026-11-19T22:30:00-05:00' WHERE id = 'A-1'"
    )
    report = build(store, config())
    assert keys(report.completed) == ["A-1"]
    assert report.completed[0].completed_at == datetime(2026, 11, 20, 3, 30, tzinfo=UTC)
    assert report.model_dump(mode="json")["completed"][0]["completed_at"] == "2026-11-20T03:30:00Z"
