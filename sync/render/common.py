"""What every renderer shows, in which order, with which columns: one place for the layout."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sync import i18n
from sync.report import ItemRef, Report

# Longest title shown in a human-readable format (JSON keeps the whole title).
TITLE_LIMIT = 200
# Rows shown per list before "and N more" (per format; ADF shrinks further to fit Jira).
LIMITS = {"md": 25, "html": 200, "adf": 20}
GANTT_ROWS = 40


@dataclass(frozen=True)
class Column:
    """One table column: its heading key and how to show a cell (plain text, not escaped)."""

    heading: str
    value: Callable[[ItemRef, str], str]
    # The key column links to the item's URL.
    link: bool = False


def _key(i: ItemRef, _lang: str) -> str:
    return i.key


def _title(i: ItemRef, _lang: str) -> str:
    return i.title


def _status(i: ItemRef, _lang: str) -> str:
    return i.status


def _assignee(i: ItemRef, _lang: str) -> str:
    return i.assignee or ""


def _due(i: ItemRef, lang: str) -> str:
    return i18n.fmt_date(lang, i.due_date)


def _completed(i: ItemRef, lang: str) -> str:
    return i18n.fmt_date(lang, i.completed_at.date() if i.completed_at else None)


def _overdue(i: ItemRef, _lang: str) -> str:
    return "" if i.days_overdue is None else str(i.days_overdue)


def _blocked(i: ItemRef, _lang: str) -> str:
    return "" if i.blocked_days is None else str(i.blocked_days)


def _estimate(i: ItemRef, _lang: str) -> str:
    return "" if i.estimate is None else i18n.fmt_number(i.estimate)


KEY = Column("col_key", _key, link=True)
TITLE = Column("col_title", _title)
STATUS = Column("col_status", _status)
ASSIGNEE = Column("col_assignee", _assignee)
DUE = Column("col_due", _due)
COMPLETED = Column("col_completed", _completed)
DAYS_OVERDUE = Column("col_days_overdue", _overdue)
DAYS_BLOCKED = Column("col_days_blocked", _blocked)
ESTIMATE = Column("col_estimate", _estimate)


@dataclass(frozen=True)
class Section:
    """One item list of the report."""

    id: str
    heading: str
    items: list[ItemRef]
    columns: tuple[Column, ...]


def sections(report: Report) -> list[Section]:
    """Return the item lists in reading order (empty ones included: "None." is news too)."""
    return [
        Section("completed", "completed", report.completed, (KEY, TITLE, COMPLETED, ASSIGNEE)),
        Section(
            "in-progress", "in_progress", report.in_progress, (KEY, TITLE, STATUS, ASSIGNEE, DUE)
        ),
        Section("upcoming", "upcoming", report.upcoming, (KEY, TITLE, DUE, STATUS, ASSIGNEE)),
        Section("overdue", "overdue", report.overdue, (KEY, TITLE, DUE, DAYS_OVERDUE, STATUS)),
        Section("blocked", "blocked", report.blocked, (KEY, TITLE, DAYS_BLOCKED, STATUS, ASSIGNEE)),
        Section(
            "client-input",
            "needs_client_input",
            report.needs_client_input,
            (KEY, TITLE, STATUS, DUE),
        ),
        Section(
            "change-requests",
            "change_requests",
            report.change_requests,
            (KEY, TITLE, STATUS, ESTIMATE),
        ),
    ]


def change_rows(report: Report) -> list[tuple[str, ItemRef]]:
    """The "changes since the last report" items as (change word key, item) rows.

    Completions are left out when the last report is simply the previous period: the
    "Completed this period" list shows exactly those items already.
    """
    c = report.changes_since_last_report
    rows: list[tuple[str, ItemRef]] = []
    completed = [] if c.basis == "previous_period" else c.completed
    for word, items in (
        ("change_completed", completed), ("change_added", c.added),
        ("change_reopened", c.reopened), ("change_cancelled", c.cancelled),
        ("change_removed", c.removed),
    ):  # fmt: skip
        rows.extend((word, i) for i in items)
    return rows


def scope_rows(report: Report) -> list[tuple[str, ItemRef]]:
    s = report.scope_change
    return [("scope_added", i) for i in s.added] + [("scope_removed", i) for i in s.removed]


def progress_lines(report: Report) -> list[str]:
    """The progress paragraph: counts, estimates, and the change since the last report."""
    lang = report.language
    p = report.progress
    lines = [
        i18n.t(
            lang,
            "progress_line",
            done=p.done,
            live=p.total - p.cancelled,
            percent=i18n.fmt_percent(p.percent_done),
            in_progress=p.in_progress,
            todo=p.todo,
            cancelled=p.cancelled,
        )
    ]
    if p.estimate_total:
        lines.append(
            i18n.t(
                lang,
                "progress_estimate",
                done=i18n.fmt_number(p.estimate_done),
                total=i18n.fmt_number(p.estimate_total),
                percent=i18n.fmt_percent(p.percent_done_by_estimate),
            )
        )
    if p.delta is not None:
        lines.append(
            i18n.t(
                lang,
                "progress_delta",
                since=i18n.fmt_date(lang, p.delta.since),
                done=i18n.fmt_signed(p.delta.done),
                total=i18n.fmt_signed(p.delta.total),
                percent=i18n.fmt_signed(p.delta.percent_done),
            )
        )
    return lines


def forecast_lines(report: Report) -> list[str]:
    lang = report.language
    f = report.forecast
    d = i18n.fmt_date
    if f.p50 is None or f.p85 is None or f.p95 is None:
        lines = [i18n.t(lang, "forecast_none", reason=f.reason or "")]
    else:
        lines = [
            i18n.t(
                lang,
                "forecast_line",
                rate=i18n.fmt_number(f.throughput_per_day),
                start=d(lang, f.window_start),
                end=d(lang, f.window_end),
                remaining=f.remaining,
                p50=d(lang, f.p50),
                p85=d(lang, f.p85),
                p95=d(lang, f.p95),
            )
        ]
    if f.target_date is not None and f.probability_by_target is not None:
        lines.append(
            i18n.t(
                lang,
                "forecast_target",
                target=d(lang, f.target_date),
                probability=i18n.fmt_percent(round(100 * f.probability_by_target, 1)),
            )
        )
    return lines


def scope_line(report: Report) -> str:
    lang = report.language
    s = report.scope_change
    if s.baseline is None:
        return i18n.t(lang, "scope_none")
    return i18n.t(
        lang, "scope_line", baseline=i18n.fmt_date(lang, s.baseline), added=len(s.added),
        removed=len(s.removed), estimate_added=i18n.fmt_number(s.estimate_added),
        estimate_removed=i18n.fmt_number(s.estimate_removed),
    )  # fmt: skip


def changes_line(report: Report) -> str:
    lang = report.language
    c = report.changes_since_last_report
    return i18n.t(
        lang, "changes_line", since=i18n.fmt_date(lang, c.since), completed=len(c.completed),
        added=len(c.added), reopened=len(c.reopened), cancelled=len(c.cancelled),
        removed=len(c.removed), done_then=c.progress_then.done,
        total_then=c.progress_then.total - c.progress_then.cancelled,
    )  # fmt: skip


def closing_lines(report: Report) -> list[str]:
    """The closing section as sentences (planned vs actual is a table in each renderer)."""
    c = report.closing
    if c is None:
        return []
    lang = report.language
    lines = [i18n.t(lang, "closing_outcome", done=c.done, cancelled=c.cancelled, open=c.open)]
    if c.throughput_per_week is not None:
        lines.append(
            i18n.t(lang, "closing_throughput", rate=i18n.fmt_number(c.throughput_per_week))
        )
    ct = c.cycle_time
    if ct.count:
        lines.append(
            i18n.t(
                lang,
                "closing_cycle",
                count=ct.count,
                p50=i18n.fmt_days(lang, round(ct.p50_days or 0)),
                p85=i18n.fmt_days(lang, round(ct.p85_days or 0)),
                mean=i18n.fmt_days(lang, round(ct.mean_days or 0)),
            )
        )
    if c.feedback.count:
        lines.append(
            i18n.t(
                lang,
                "closing_feedback",
                count=c.feedback.count,
                average=i18n.fmt_number(c.feedback.average),
            )
        )
    else:
        lines.append(i18n.t(lang, "closing_no_feedback"))
    return lines


def slip_text(report: Report) -> str:
    c = report.closing
    if c is None or c.slip_days is None:
        return ""
    lang = report.language
    if c.slip_days > 0:
        return i18n.t(lang, "slip_days", days=i18n.fmt_days(lang, c.slip_days))
    if c.slip_days < 0:
        return i18n.t(lang, "slip_early", days=i18n.fmt_days(lang, -c.slip_days))
    return i18n.t(lang, "slip_none")


def closing_table(report: Report) -> list[tuple[str, str, str]]:
    """Rows (label, planned, actual) for start and end."""
    c = report.closing
    if c is None:
        return []
    lang = report.language
    d = i18n.fmt_date
    return [
        (i18n.t(lang, "closing_start"), d(lang, c.planned_start), d(lang, c.actual_start)),
        (i18n.t(lang, "closing_end"), d(lang, c.planned_end), d(lang, c.actual_end)),
    ]


def header_fields(report: Report) -> list[tuple[str, str]]:
    """(label, value) pairs for the report header."""
    lang = report.language
    rows = []
    if report.project.client:
        rows.append((i18n.t(lang, "client"), report.project.client))
    rows.append(
        (
            i18n.t(lang, "period"),
            f"{i18n.fmt_date(lang, report.period.start)} – {i18n.fmt_date(lang, report.period.end)}",
        )
    )
    if report.forecast.target_date is not None:
        rows.append((i18n.t(lang, "target_date"), i18n.fmt_date(lang, report.forecast.target_date)))
    rows.append(
        (i18n.t(lang, "generated"), i18n.fmt_datetime(lang, report.generated_at, report.zone))
    )
    if report.audience == "internal":
        rows.append((i18n.t(lang, "audience"), i18n.t(lang, "audience_internal")))
    return rows


def health_heading(report: Report) -> str:
    lang = report.language
    word = i18n.health_word(lang, report.health.status)
    if report.health.overridden:
        return f"{word} ({i18n.t(lang, 'overridden')})"
    return word


def title(report: Report) -> str:
    key = "closing_title" if report.closing is not None else "title"
    return f"{i18n.t(report.language, key)}: {report.project.name}"


def source_rows(report: Report) -> list[tuple[str, str, str, str]]:
    lang = report.language
    return [
        (s.name, s.kind, i18n.fmt_datetime(lang, s.last_synced_at, report.zone), str(s.items))
        for s in report.sources
    ]


def more_text(report: Report, hidden: int) -> str:
    return i18n.t(report.language, "more", count=hidden)
