"""The client status report (DESIGN §7): one project, one period, built from the store only.

`build_report` reads the store once, applies the counting rule of `sync.scope`, and returns
a `Report`. The report shows the project as it stood at the end of the period: each item's
category then comes from its timeline (`sync.history`). Its JSON (`model_dump(mode="json")`)
is the machine contract; the renderers in `sync.render` only format it.

"Changes since the last report" compare with the end of the latest *published* period of
the project that ends before this one (the `publications` table), else with the end of the
previous period: the state then is rebuilt from the same timelines, so both sides are
counted by the same rule.

Health rules (each applied rule writes one line into `health.reasons`; the worst status
wins, and `complete` when every item not cancelled is done):

- target date passed with open items: off_track; P50 forecast after the target: off_track;
  P85 forecast after the target: at_risk;
- a milestone past its due date with open items (and not closed in its tool): at_risk,
  off_track after 14 days;
- an open blocker blocked for 5 days or more: at_risk;
- a source whose last sync is older than the project's schedule interval (7 days without
  a schedule): at_risk.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, PrivateAttr, model_serializer

from config.schema import Config, ProjectSettings
from sync import forecast as fc
from sync import i18n, scope
from sync.errors import ConfigError
from sync.history import (
    ALWAYS,
    BurnupPoint,
    Days,
    ItemRow,
    build_timeline,
    burnup,
    day_start,
    load_items,
    load_transitions,
    local_day,
    state_at,
)
from sync.model import StatusCategory, utc
from sync.store import Store

HealthStatus = Literal["on_track", "at_risk", "off_track", "complete"]
Audience = Literal["client", "internal"]
HEALTH_RANK = {"on_track": 0, "at_risk": 1, "off_track": 2}

# Health thresholds (README "Health"): explicit so a client can be told why.
BLOCKER_AGE_DAYS = 5
MILESTONE_OFF_TRACK_DAYS = 14
DEFAULT_FRESHNESS = timedelta(days=7)
# Burn-up charts reach back at most this far when the project has no start date.
MAX_HISTORY_DAYS = 730
CLOSED_MILESTONE_STATES = {"closed", "done", "released", "completed", "complete", "archived"}
_EPS = timedelta(microseconds=1)

DONE = StatusCategory.DONE
CANCELLED = StatusCategory.CANCELLED
IN_PROGRESS = StatusCategory.IN_PROGRESS
TODO = StatusCategory.TODO
OPEN = frozenset({TODO, IN_PROGRESS})


# -- the model --------------------------------------------------------------------------------


class ProjectInfo(BaseModel):
    id: str
    name: str
    client: str


class Period(BaseModel):
    start: date
    end: date


class Health(BaseModel):
    status: HealthStatus
    reasons: list[str]
    overridden: bool


class Delta(BaseModel):
    """Progress change since the last report (see `Changes.since`)."""

    since: date
    total: int
    done: int
    percent_done: float | None
    estimate_done: float


class Progress(BaseModel):
    total: int
    done: int
    in_progress: int
    todo: int
    cancelled: int
    percent_done: float | None
    estimate_total: float
    estimate_done: float
    percent_done_by_estimate: float | None
    delta: Delta | None


class ItemRef(BaseModel):
    """One item in a report list."""

    source: str
    key: str
    title: str
    url: str | None
    status: str
    category: StatusCategory
    due_date: date | None
    kind: str
    assignee: str | None
    estimate: float | None
    completed_at: datetime | None
    # Set in the overdue list: whole days between the due date and the period end.
    days_overdue: int | None = None
    # Set in the blocked list: whole days the item has been blocked.
    blocked_days: int | None = None


class ScopeChange(BaseModel):
    baseline: date | None
    added: list[ItemRef]
    removed: list[ItemRef]
    estimate_added: float
    estimate_removed: float


class MilestoneStatus(BaseModel):
    source: str
    id: str
    name: str
    url: str | None
    start_date: date | None
    due_date: date | None
    total: int
    done: int
    percent_done: float | None
    # P85 completion date of the milestone's open items, worked in due-date order.
    forecast: date | None
    state: Literal["done", "on_track", "at_risk", "late"]


class Forecast(BaseModel):
    """Monte Carlo forecast; the dates are null (and `reason` says why) without enough history."""

    method: Literal["monte_carlo"] = "monte_carlo"
    trials: int
    seed: int
    window_start: date
    window_end: date
    completed_in_window: int
    throughput_per_day: float
    remaining: int
    p50: date | None
    p85: date | None
    p95: date | None
    target_date: date | None
    probability_by_target: float | None
    reason: str | None


class GanttBar(BaseModel):
    kind: Literal["milestone", "epic"]
    source: str
    key: str
    name: str
    url: str | None
    start: date | None
    end: date
    percent_done: float | None
    state: Literal["done", "on_track", "at_risk", "late"]


class BurnupDay(BaseModel):
    day: date
    scope: int
    done: int
    scope_estimate: float
    done_estimate: float
    basis: Literal["snapshot", "history"]


class Charts(BaseModel):
    burnup: list[BurnupDay]
    gantt: list[GanttBar]


class ProgressThen(BaseModel):
    total: int
    done: int
    cancelled: int
    percent_done: float | None


class FeedbackEntry(BaseModel):
    day: date
    score: int
    comment: str | None


class Changes(BaseModel):
    """What changed since the last report: the last published period, or the previous one."""

    since: date
    basis: Literal["publication", "previous_period"]
    progress_then: ProgressThen
    completed: list[ItemRef]
    added: list[ItemRef]
    reopened: list[ItemRef]
    cancelled: list[ItemRef]
    removed: list[ItemRef]
    # Client feedback recorded since then (internal audience only).
    feedback: list[FeedbackEntry]


class SourceInfo(BaseModel):
    name: str
    kind: str
    last_synced_at: datetime | None
    items: int


class CycleTime(BaseModel):
    count: int
    p50_days: float | None
    p85_days: float | None
    mean_days: float | None


class FeedbackSummary(BaseModel):
    count: int
    average: float | None
    entries: list[FeedbackEntry]


class Closing(BaseModel):
    """The closing report's extra section (present only with `closing=True`)."""

    planned_start: date | None
    planned_end: date | None
    actual_start: date | None
    actual_end: date | None
    slip_days: int | None
    done: int
    cancelled: int
    open: int
    throughput_per_week: float | None
    cycle_time: CycleTime
    lessons_learned: str | None
    feedback: FeedbackSummary


class Report(BaseModel):
    """The status report; `model_dump(mode="json")` is the machine contract (README)."""

    project: ProjectInfo
    period: Period
    generated_at: datetime
    audience: Audience
    language: str
    health: Health
    progress: Progress
    completed: list[ItemRef]
    in_progress: list[ItemRef]
    upcoming: list[ItemRef]
    overdue: list[ItemRef]
    blocked: list[ItemRef]
    needs_client_input: list[ItemRef]
    change_requests: list[ItemRef]
    scope_change: ScopeChange
    milestones: list[MilestoneStatus]
    forecast: Forecast
    charts: Charts
    changes_since_last_report: Changes
    sources: list[SourceInfo]
    closing: Closing | None = None

    # Rendering hints that are not part of the JSON contract.
    _timezone: str = PrivateAttr(default="UTC")
    _target_date: date | None = PrivateAttr(default=None)
    _more_url: str | None = PrivateAttr(default=None)

    @model_serializer(mode="wrap")
    def _without_empty_closing(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if data.get("closing") is None:
            data.pop("closing", None)
        return data

    @property
    def period_id(self) -> str:
        """A stable id of the period, e.g. "2026-11-20..2026-11-26" (publishing idempotency)."""
        return f"{self.period.start.isoformat()}..{self.period.end.isoformat()}"

    @property
    def timezone(self) -> str:
        return self._timezone

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self._timezone)

    @property
    def target_date(self) -> date | None:
        return self._target_date

    @property
    def more_url(self) -> str | None:
        """Where "and N more" in a truncated list links to (set by the publisher), or None."""
        return self._more_url

    def with_more_url(self, url: str | None) -> Report:
        """Return a copy whose truncated lists link to `url` (e.g. the published HTML report)."""
        copy = self.model_copy()
        copy._more_url = url
        return copy


# -- helpers ----------------------------------------------------------------------------------

_NUM = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort "ABC-2" before "ABC-10"."""
    return tuple(int(p) if p.isdigit() else p.casefold() for p in _NUM.split(text))


def _percent(part: float, whole: float) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def period_of(
    zone: ZoneInfo, now: datetime, *, start: date | None, end: date | None
) -> tuple[date, date]:
    """Return the report period; default: the 7 days ending today in the project's zone."""
    if end is None:
        end = local_day(now, zone) if start is None else start + timedelta(days=6)
    if start is None:
        start = end - timedelta(days=6)
    if start > end:
        raise ConfigError(f"report period starts ({start}) after it ends ({end}); swap --from/--to")
    return start, end


def parse_period(spec: str, today: date) -> tuple[date, date]:
    """Turn `7d`, `2w` or `1m` into (start, end) ending `today` (inclusive days)."""
    m = re.fullmatch(r"\s*(\d+)\s*([dwm])\s*", spec.lower())
    if not m or int(m.group(1)) == 0:
        raise ConfigError(f"cannot read period {spec!r}; use e.g. 7d, 2w or 1m")
    n, unit = int(m.group(1)), m.group(2)
    if unit == "d":
        return today - timedelta(days=n - 1), today
    if unit == "w":
        return today - timedelta(days=7 * n - 1), today
    month = today.month - n
    year = today.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    day = min(today.day, _days_in_month(year, month))
    return date(year, month, day) + timedelta(days=1), today


def resolve_period(
    config: Config,
    project_id: str,
    *,
    period: str | None = None,
    start: date | None = None,
    end: date | None = None,
    now: datetime | None = None,
) -> tuple[date | None, date | None]:
    """Turn the CLI's `--period` or `--from/--to` into (start, end) for `build_report`."""
    if period is None:
        return start, end
    if start is not None or end is not None:
        raise ConfigError("use either --period or --from/--to, not both")
    project = config.projects.get(project_id)
    if project is None:
        known = ", ".join(sorted(config.projects)) or "none"
        raise ConfigError(f"unknown project {project_id!r} (configured: {known})")
    today = local_day(utc(now) if now else datetime.now(UTC), project.zone)
    return parse_period(period, today)


def _days_in_month(year: int, month: int) -> int:
    nxt = date(year + month // 12, month % 12 + 1, 1)
    return (nxt - timedelta(days=1)).day


class _Present:
    """An in-scope item and its state at one instant."""

    __slots__ = ("cat", "item", "since", "status")

    def __init__(self, item: ItemRow, cat: StatusCategory, status: str, since: datetime) -> None:
        self.item = item
        self.cat = cat
        self.status = status or cat.value
        self.since = since


_REF_FIELDS = frozenset(ItemRef.model_fields)


def _ref(p: _Present, zone: ZoneInfo, **extra: Any) -> ItemRef:
    """An `ItemRef` from trusted store values.

    This is what `ItemRef.model_construct` does, without its per-field Python loop: a report
    can hold 100k references and validating each one would double the build time. The JSON
    round trip is tested (the model validates its own output).
    """
    i = p.item
    values = {
        "source": i.source, "key": i.key, "title": i.title, "url": i.url, "status": p.status,
        "category": p.cat, "due_date": i.due_date, "kind": i.kind, "assignee": i.assignee,
        "estimate": i.estimate,
        "completed_at": p.since if p.cat is DONE and p.since is not ALWAYS else None,
        "days_overdue": extra.get("days_overdue"), "blocked_days": extra.get("blocked_days"),
    }  # fmt: skip
    ref = ItemRef.__new__(ItemRef)
    _set(ref, "__dict__", values)
    _set(ref, "__pydantic_fields_set__", set(_REF_FIELDS))
    _set(ref, "__pydantic_extra__", None)
    _set(ref, "__pydantic_private__", None)
    return ref


_set = object.__setattr__


def _order(item: ItemRow) -> tuple[Any, ...]:
    if item.order is None:
        item.order = (natural_key(item.key), item.source)
    return item.order


def _sorted(entries: Iterable[_Present], key: Any = None) -> list[_Present]:
    return sorted(entries, key=key or (lambda p: _order(p.item)))


def _folded(labels: Iterable[str]) -> frozenset[str]:
    return frozenset(label.casefold() for label in labels)


def _has(item: ItemRow, wanted: frozenset[str]) -> bool:
    """`scope.has_label` with the wanted set folded once (it runs for every item)."""
    return bool(item.labels) and any(label.casefold() in wanted for label in item.labels)


def _states(items: Iterable[ItemRow], at: datetime) -> dict[int, _Present]:
    """Return the state of each item at `at` (keyed by id(item)); absent if not created yet."""
    out: dict[int, _Present] = {}
    for item in items:
        s = state_at(item.timeline, at)
        if s is not None:
            out[id(item)] = _Present(item, *s)
    return out


def _tally(present: Iterable[_Present]) -> dict[str, float]:
    c = {"total": 0, "todo": 0, "in_progress": 0, "done": 0, "cancelled": 0,
         "estimate_total": 0.0, "estimate_done": 0.0}  # fmt: skip
    for p in present:
        c["total"] += 1
        c[p.cat.value] += 1
        est = p.item.estimate or 0.0
        if p.cat is not CANCELLED:
            c["estimate_total"] += est
        if p.cat is DONE:
            c["estimate_done"] += est
    return c


def _source_settings(config: Config, name: str) -> Any:
    return config.sources.get(name)


# -- the builder ------------------------------------------------------------------------------


def build_report(
    store: Store,
    config: Config,
    project_id: str,
    *,
    start: date | None = None,
    end: date | None = None,
    audience: Audience = "client",
    language: str | None = None,
    closing: bool = False,
    now: datetime | None = None,
    health: str | None = None,
    note: str | None = None,
) -> Report:
    """Build the report of `project_id` for the period `start`..`end` from the store alone."""
    project = config.projects.get(project_id)
    if project is None:
        known = ", ".join(sorted(config.projects)) or "none"
        raise ConfigError(f"unknown project {project_id!r} (configured: {known})")
    if audience not in ("client", "internal"):
        raise ConfigError(f"unknown audience {audience!r}; use client or internal")
    lang = language or project.language
    if lang not in i18n.LANGUAGES:
        raise ConfigError(f"unknown language {lang!r}; use one of {', '.join(i18n.LANGUAGES)}")
    override = health or project.health
    if override is not None and override not in (*HEALTH_RANK, "complete"):
        raise ConfigError(
            f"unknown health {override!r}; use on_track, at_risk, off_track or complete"
        )
    zone = project.zone
    now = utc(now) if now is not None else datetime.now(UTC)
    start, end = period_of(zone, now, start=start, end=end)
    b = _Builder(store, config, project_id, project, zone, lang, audience, now, start, end)
    report = b.build(closing=closing, override=override, note=note or project.health_note)
    report._timezone = project.timezone
    report._target_date = project.target_date
    return report


class _Builder:
    def __init__(
        self, store: Store, config: Config, pid: str, project: ProjectSettings, zone: ZoneInfo,
        lang: str, audience: Audience, now: datetime, start: date, end: date,
    ) -> None:  # fmt: skip
        self.store, self.config, self.pid, self.project = store, config, pid, project
        self.zone, self.lang, self.audience, self.now = zone, lang, audience, now
        self.start, self.end = start, end
        self.t0 = day_start(start, zone)
        self.t1 = day_start(end + timedelta(days=1), zone)  # exclusive end of the period
        self.today = local_day(now, zone)

    def t(self, key: str, **kw: Any) -> str:
        return i18n.t(self.lang, key, **kw)

    def d(self, value: date) -> str:
        return i18n.fmt_date(self.lang, value)

    # -- reading ---------------------------------------------------------------------------

    def _load(self) -> None:
        project = self.project
        sources = project.sources
        rows = load_items(self.store, sources)
        gone = load_items(self.store, sources, deleted=True)
        trans = load_transitions(self.store, sources)
        client = self.audience == "client"
        internal = _folded(project.internal_labels)
        self.blocked_labels = _folded(project.blocked_labels)
        self.client_input_labels = _folded(project.client_input_labels)
        self.cr_labels = _folded(project.change_request_labels)
        self.cr_types = _folded(project.change_request_types)
        self.items: list[ItemRow] = []
        self.epics: list[ItemRow] = []
        # The counting rule of `sync.scope.in_scope`, inlined with the label sets folded once.
        for row in rows:
            hidden = client and _has(row, internal)
            if row.is_container:
                if not hidden:
                    self.epics.append(row)
                continue
            if not hidden:
                row.timeline = build_timeline(row, trans.get((row.source, row.id)))
                self.items.append(row)
        self.gone: list[ItemRow] = []
        for row in gone:
            if scope.in_scope(row, project, self.audience):
                row.timeline = build_timeline(row, trans.get((row.source, row.id)))
                self.gone.append(row)
        self.trans = trans
        self.at_end = _states(self.items, self.t1 - _EPS)
        self.present = list(self.at_end.values())
        # Local days by bisection (see history.Days), over every day the report looks at.
        self.chart_first = self._chart_first()
        weeks = project.forecast_window_weeks
        first = min(self.chart_first, self.end - timedelta(days=7 * weeks))
        self.days = Days(first, max(self.end, self.today), self.zone)
        self.done_days = [self.days.day(p.since) for p in self.present
                          if p.cat is DONE and p.since is not ALWAYS]  # fmt: skip

    def _chart_first(self) -> date:
        """The burn-up's first day: the project start, else the first creation (2 years at most)."""
        first = self.project.start_date
        if first is None:
            created = min((i.created_at for i in self.items if i.created_at), default=None)
            first = local_day(created, self.zone) if created else self.start
        return max(min(first, self.start), self.end - timedelta(days=MAX_HISTORY_DAYS))

    # -- the parts -------------------------------------------------------------------------

    def build(self, *, closing: bool, override: str | None, note: str | None) -> Report:
        self._load()
        zone = self.zone
        present = self.present
        tally = _tally(present)
        self.open_count = int(tally["todo"] + tally["in_progress"])

        completed = _sorted(
            (p for p in present if p.cat is DONE and self.t0 <= p.since < self.t1),
            key=lambda p: (p.since, _order(p.item)),
        )
        in_progress = _sorted(p for p in present if p.cat is IN_PROGRESS)
        length = (self.end - self.start).days + 1
        horizon = self.end + timedelta(days=length)
        upcoming = _sorted(
            (p for p in present if p.cat in OPEN and p.item.due_date
             and self.end < p.item.due_date <= horizon),
            key=lambda p: (p.item.due_date, _order(p.item)),
        )  # fmt: skip
        overdue = _sorted(
            (p for p in present if p.cat in OPEN and p.item.due_date
             and p.item.due_date < self.end),
            key=lambda p: (p.item.due_date, _order(p.item)),
        )  # fmt: skip
        blocked = [p for p in present if p.cat in OPEN and self._blocked(p.item)]
        blocked_days = {id(p): self._blocked_days(p) for p in blocked}
        blocked.sort(key=lambda p: (-blocked_days[id(p)], _order(p.item)))
        client_input = _sorted(
            p for p in present if p.cat in OPEN and _has(p.item, self.client_input_labels)
        )
        change_requests = _sorted(
            p for p in present
            if p.item.kind.casefold() in self.cr_types or _has(p.item, self.cr_labels)
        )  # fmt: skip

        forecast, sim_days = self._forecast()
        milestones = self._milestones(sim_days, forecast)
        changes, then = self._changes()
        progress = Progress(
            total=int(tally["total"]), done=int(tally["done"]),
            in_progress=int(tally["in_progress"]), todo=int(tally["todo"]),
            cancelled=int(tally["cancelled"]),
            percent_done=_percent(tally["done"], tally["total"] - tally["cancelled"]),
            estimate_total=round(tally["estimate_total"], 2),
            estimate_done=round(tally["estimate_done"], 2),
            percent_done_by_estimate=_percent(tally["estimate_done"], tally["estimate_total"]),
            delta=self._delta(tally, then, changes.since),
        )  # fmt: skip
        sources = self._sources()
        health_ = self._health(
            progress, forecast, milestones, [blocked_days[id(p)] for p in blocked], sources,
            override, note,
        )  # fmt: skip
        report = Report(
            project=ProjectInfo(id=self.pid, name=self.project.name, client=self.project.client),
            period=Period(start=self.start, end=self.end),
            generated_at=self.now,
            audience=self.audience,
            language=self.lang,
            health=health_,
            progress=progress,
            completed=[_ref(p, zone) for p in completed],
            in_progress=[_ref(p, zone) for p in in_progress],
            upcoming=[_ref(p, zone) for p in upcoming],
            overdue=[
                _ref(p, zone, days_overdue=(self.end - p.item.due_date).days)  # type: ignore[operator]
                for p in overdue
            ],
            blocked=[_ref(p, zone, blocked_days=blocked_days[id(p)]) for p in blocked],
            needs_client_input=[_ref(p, zone) for p in client_input],
            change_requests=[_ref(p, zone) for p in change_requests],
            scope_change=self._scope_change(),
            milestones=milestones,
            forecast=forecast,
            charts=Charts(burnup=self._burnup(), gantt=self._gantt(milestones)),
            changes_since_last_report=changes,
            sources=sources,
            closing=self._closing(progress) if closing else None,
        )
        return report

    def _blocked(self, item: ItemRow) -> bool:
        return item.blocked or _has(item, self.blocked_labels)

    def _blocked_days(self, p: _Present) -> int:
        """Days since the item entered a blocked status (its last update if the tool has no history)."""
        item = p.item
        settings = _source_settings(self.config, item.source)
        names = {s.casefold() for s in getattr(settings, "blocked_statuses", []) or []}
        since: datetime | None = None
        if names:
            for at, _fs, ts, _fc, _tc in self.trans.get((item.source, item.id), ()):
                if at < self.t1 and ts.casefold() in names:
                    since = at
        since = since or item.updated_at or item.created_at
        if since is None:
            return 0
        ref = min(self.now, self.t1)
        return max((local_day(ref, self.zone) - local_day(since, self.zone)).days, 0)

    def _completion_days(self) -> list[date]:
        return self.done_days

    def _forecast(self) -> tuple[Forecast, Any]:
        window_end = min(self.end, self.today)
        target = self.project.target_date
        sim = fc.forecast(
            self._completion_days(), self.open_count, window_end=window_end,
            window_weeks=self.project.forecast_window_weeks, earliest=self.project.start_date,
            target=target,
        )  # fmt: skip
        self.window_end = window_end
        self.samples = fc.daily_throughput(
            self._completion_days(), sim.window_start, sim.window_end
        )
        reason = None
        if sim.reason == "too_little_history":
            reason = self.t(
                "fc_too_little_history", completed=sim.completed_in_window,
                days=i18n.fmt_days(self.lang, (sim.window_end - sim.window_start).days + 1),
                min=fc.MIN_COMPLETED,
            )  # fmt: skip
        elif sim.reason == "short_window":
            reason = self.t(
                "fc_short_window",
                days=i18n.fmt_days(self.lang, (sim.window_end - sim.window_start).days + 1),
                min=i18n.fmt_days(self.lang, fc.MIN_WINDOW_DAYS),
            )
        elif sim.reason is not None:
            reason = self.t(f"fc_{sim.reason}")
        forecast = Forecast(
            trials=fc.TRIALS, seed=fc.SEED, window_start=sim.window_start,
            window_end=sim.window_end, completed_in_window=sim.completed_in_window,
            throughput_per_day=sim.throughput_per_day, remaining=sim.remaining, p50=sim.p50,
            p85=sim.p85, p95=sim.p95, target_date=target,
            probability_by_target=sim.probability_by_target, reason=reason,
        )  # fmt: skip
        return forecast, sim

    def _milestones(self, sim: fc.Simulation, forecast: Forecast) -> list[MilestoneStatus]:
        ms = self.store.milestones(self.project.sources)
        by_ms: dict[tuple[str, str], list[_Present]] = defaultdict(list)
        for p in self.present:
            if p.item.milestone_id is not None:
                by_ms[(p.item.source, p.item.milestone_id)].append(p)
        rows = []
        for m in ms:
            members = by_ms.get((m.source, m.id), [])
            done = sum(1 for p in members if p.cat is DONE)
            cancelled = sum(1 for p in members if p.cat is CANCELLED)
            open_ = len(members) - done - cancelled
            rows.append((m, len(members), done, cancelled, open_))
        # Milestones are forecast in due-date order: each one finishes when the team has
        # done its open items and those of every milestone due before it.
        thresholds, cum = [], 0
        for _m, _t, _d, _c, open_ in rows:
            cum += open_
            thresholds.append(cum)
        days_needed = self._simulate_thresholds(thresholds, forecast)
        out = []
        for (m, total, done, cancelled, open_), need in zip(rows, days_needed):
            pdone = _percent(done, total - cancelled)
            closed = m.state.casefold() in CLOSED_MILESTONE_STATES
            when = None if open_ == 0 or need is None else self.window_end + timedelta(days=need)
            # A milestone the tool has closed (released) is done; leftovers show in its %.
            if closed or (total and open_ == 0):
                state = "done"
            elif m.due_date is not None and m.due_date < self.end:
                state = "late"
            elif when is not None and m.due_date is not None and when > m.due_date:
                state = "at_risk"
            else:
                state = "on_track"
            out.append(
                MilestoneStatus(
                    source=m.source,
                    id=m.id,
                    name=m.name,
                    url=m.url,
                    start_date=m.start_date,
                    due_date=m.due_date,
                    total=total,
                    done=done,
                    percent_done=pdone,
                    forecast=when,
                    state=state,
                )
            )
        return out

    def _simulate_thresholds(self, thresholds: list[int], forecast: Forecast) -> list[int | None]:
        """Return the P85 days needed for each cumulative threshold (None: no forecast)."""
        if not thresholds:
            return []
        if forecast.p50 is None and forecast.reason is not None and forecast.remaining > 0:
            return [None] * len(thresholds)
        if not any(thresholds) or sum(self.samples) == 0:
            return [None] * len(thresholds)
        days = fc.simulate_many(self.samples, thresholds)
        out: list[int | None] = []
        for k in range(len(thresholds)):
            n = fc.percentile_days(days[:, k], 0.85)
            out.append(None if n > fc.MAX_DAYS else n)
        return out

    def _since(self) -> tuple[date, Literal["publication", "previous_period"]]:
        best: date | None = None
        for pub in self.store.publications(self.pid):
            m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", pub["period"])
            if not m:
                continue
            last = date.fromisoformat(m.group(2))
            if last < self.end and (best is None or last > best):
                best = last
        if best is not None:
            return best, "publication"
        return self.start - timedelta(days=1), "previous_period"

    def _changes(self) -> tuple[Changes, dict[str, float]]:
        since, basis = self._since()
        ts = day_start(since + timedelta(days=1), self.zone)
        at = ts - _EPS
        # Every item that existed then exists at the period's end: one pass over those.
        counted: list[_Present] = []
        completed, added, reopened, cancelled = [], [], [], []
        for p in self.present:
            before = state_at(p.item.timeline, at)
            if before is None:
                added.append(p)
                if p.cat is DONE:
                    completed.append(p)
                continue
            was = before[0]
            counted.append(_Present(p.item, was, before[1], before[2]))
            if p.cat is DONE and was is not DONE:
                completed.append(p)
            elif p.cat in OPEN and was is DONE:
                reopened.append(p)
            elif p.cat is CANCELLED and was is not CANCELLED:
                cancelled.append(p)
        tally_then = _tally(counted)
        removed = [
            _Present(g, *s)  # type: ignore[misc]
            for g in self.gone
            if g.deleted_at is not None and ts <= g.deleted_at < self.t1
            and (s := state_at(g.timeline, ts - _EPS)) is not None
        ]  # fmt: skip
        feedback: list[FeedbackEntry] = []
        if self.audience == "internal":
            for f in self.store.feedback(self.pid):
                day = date.fromisoformat(f["day"])
                if since < day <= self.end:
                    feedback.append(FeedbackEntry(day=day, score=f["score"], comment=f["comment"]))
        z = self.zone
        changes = Changes(
            since=since, basis=basis,
            progress_then=ProgressThen(
                total=int(tally_then["total"]), done=int(tally_then["done"]),
                cancelled=int(tally_then["cancelled"]),
                percent_done=_percent(
                    tally_then["done"], tally_then["total"] - tally_then["cancelled"]
                ),
            ),
            completed=[_ref(p, z) for p in sorted(completed, key=lambda p: (p.since, _order(p.item)))],
            added=[_ref(p, z) for p in _sorted(added)],
            reopened=[_ref(p, z) for p in _sorted(reopened)],
            cancelled=[_ref(p, z) for p in _sorted(cancelled)],
            removed=[_ref(p, z) for p in _sorted(removed)],
            feedback=feedback,
        )  # fmt: skip
        return changes, tally_then

    def _delta(self, now: dict[str, float], then: dict[str, float], since: date) -> Delta:
        p_now = _percent(now["done"], now["total"] - now["cancelled"])
        p_then = _percent(then["done"], then["total"] - then["cancelled"])
        return Delta(
            since=since,
            total=int(now["total"] - then["total"]),
            done=int(now["done"] - then["done"]),
            percent_done=None if p_now is None or p_then is None else round(p_now - p_then, 1),
            estimate_done=round(now["estimate_done"] - then["estimate_done"], 2),
        )

    def _scope_change(self) -> ScopeChange:
        baseline = self.project.baseline_date or self.project.start_date
        if baseline is None:
            return ScopeChange(
                baseline=None, added=[], removed=[], estimate_added=0, estimate_removed=0
            )
        tb = day_start(baseline + timedelta(days=1), self.zone) - _EPS
        added, removed = [], []
        for p in self.present:
            before = state_at(p.item.timeline, tb)
            if before is None:
                if p.cat is not CANCELLED:
                    added.append(p)
            elif p.cat is CANCELLED and before[0] is not CANCELLED:
                removed.append(p)
        for g in self.gone:
            before = state_at(g.timeline, tb)
            if (before is not None and before[0] is not CANCELLED and g.deleted_at is not None
                    and tb < g.deleted_at < self.t1):  # fmt: skip
                removed.append(_Present(g, *before))
        z = self.zone
        return ScopeChange(
            baseline=baseline,
            added=[_ref(p, z) for p in _sorted(added)],
            removed=[_ref(p, z) for p in _sorted(removed)],
            estimate_added=round(sum(p.item.estimate or 0.0 for p in added), 2),
            estimate_removed=round(sum(p.item.estimate or 0.0 for p in removed), 2),
        )

    def _sources(self) -> list[SourceInfo]:
        per_source: dict[str, int] = defaultdict(int)
        for p in self.present:
            per_source[p.item.source] += 1
        out = []
        for name in self.project.sources:
            settings = _source_settings(self.config, name)
            last = self.store.last_synced_at(name)
            if last is None:
                row = self.store.conn.execute(
                    "SELECT max(last_seen_at) FROM items WHERE source = ?", (name,)
                ).fetchone()
                last = datetime.fromisoformat(row[0]) if row[0] else None
            out.append(
                SourceInfo(
                    name=name,
                    kind=getattr(settings, "kind", "unknown"),
                    last_synced_at=last,
                    items=per_source.get(name, 0),
                )
            )
        return out

    def _freshness(self) -> timedelta:
        schedule = self.project.schedule
        if not schedule:
            return DEFAULT_FRESHNESS
        from croniter import croniter

        base = self.now.astimezone(self.zone)
        it = croniter(schedule, base)
        first = it.get_next(datetime)
        second = it.get_next(datetime)
        return max(second - first, timedelta(hours=1))

    def _health(
        self, progress: Progress, forecast: Forecast, milestones: list[MilestoneStatus],
        blocked_days: list[int], sources: list[SourceInfo], override: str | None,
        note: str | None,
    ) -> Health:  # fmt: skip
        status, reasons = self._rules(progress, forecast, milestones, blocked_days, sources)
        if override is None:
            return Health(status=status, reasons=reasons, overridden=False)  # type: ignore[arg-type]
        head = self.t("reason_override", note=note) if note else self.t("reason_override_no_note")
        lines = [head]
        if status != override:
            lines.append(self.t("reason_rules_say", status=i18n.health_word(self.lang, status)))
        return Health(status=override, reasons=lines + reasons, overridden=True)  # type: ignore[arg-type]

    def _rules(
        self, progress: Progress, forecast: Forecast, milestones: list[MilestoneStatus],
        blocked_days: list[int], sources: list[SourceInfo],
    ) -> tuple[str, list[str]]:  # fmt: skip
        reasons: list[str] = []
        worst = "on_track"

        def flag(level: str, line: str) -> None:
            nonlocal worst
            reasons.append(line)
            if HEALTH_RANK[level] > HEALTH_RANK[worst]:
                worst = level

        live = progress.total - progress.cancelled
        if live > 0 and progress.done == live:
            return "complete", [self.t("reason_complete", done=progress.done)]
        if progress.total == 0:
            reasons.append(self.t("reason_empty"))
        target = self.project.target_date
        open_ = progress.todo + progress.in_progress
        if target is not None and open_:
            if self.end > target:
                flag("off_track", self.t("reason_target_passed", target=self.d(target), open=open_))
            elif forecast.p50 is not None and forecast.p50 > target:
                flag(
                    "off_track",
                    self.t("reason_p50_late", p50=self.d(forecast.p50), target=self.d(target)),
                )
            elif forecast.p85 is not None and forecast.p85 > target:
                flag(
                    "at_risk",
                    self.t("reason_p85_late", p85=self.d(forecast.p85), target=self.d(target)),
                )
            elif forecast.p85 is not None:
                reasons.append(
                    self.t("reason_p85_ok", p85=self.d(forecast.p85), target=self.d(target))
                )
            elif forecast.reason is not None:
                reasons.append(self.t("reason_no_forecast", why=forecast.reason))
        elif target is None and open_:
            reasons.append(self.t("reason_no_target"))
        for m in milestones:
            if m.state == "late" and m.due_date is not None:
                late = (self.end - m.due_date).days
                level = "off_track" if late > MILESTONE_OFF_TRACK_DAYS else "at_risk"
                flag(level, self.t("reason_milestone_late", name=m.name,
                                   days=i18n.fmt_days(self.lang, late), due=self.d(m.due_date)))  # fmt: skip
        if blocked_days:
            oldest = max(blocked_days)
            line = self.t("reason_blockers", count=len(blocked_days),
                          days=i18n.fmt_days(self.lang, oldest))  # fmt: skip
            if oldest >= BLOCKER_AGE_DAYS:
                flag("at_risk", line)
            else:
                reasons.append(line)
        allowed = self._freshness()
        for s in sources:
            if s.last_synced_at is None:
                flag("at_risk", self.t("reason_never_synced", source=s.name))
            elif self.now - s.last_synced_at > allowed:
                flag("at_risk", self.t(
                    "reason_stale", source=s.name,
                    when=i18n.fmt_datetime(self.lang, s.last_synced_at, self.zone),
                    allowed=i18n.fmt_duration(self.lang, allowed),
                ))  # fmt: skip
        if worst == "on_track":
            reasons.append(
                self.t("reason_all_clear", days=i18n.fmt_days(self.lang, BLOCKER_AGE_DAYS))
            )
        return worst, reasons

    def _burnup(self) -> list[BurnupDay]:
        snaps = self.store.snapshots(self.pid, self.audience)
        points: list[BurnupPoint] = burnup(
            (p.item for p in self.present), snaps, first=self.chart_first, last=self.end,
            zone=self.zone, days=self.days,
        )  # fmt: skip
        return [
            BurnupDay.model_construct(
                day=p.day,
                scope=p.scope,
                done=p.done,
                scope_estimate=p.scope_estimate,
                done_estimate=p.done_estimate,
                basis=p.basis,
            )
            for p in points
        ]

    def _gantt(self, milestones: list[MilestoneStatus]) -> list[GanttBar]:
        bars = [
            GanttBar(
                kind="milestone",
                source=m.source,
                key=m.id,
                name=m.name,
                url=m.url,
                start=m.start_date,
                end=m.due_date,
                percent_done=m.percent_done,
                state=m.state,
            )
            for m in milestones
            if m.due_date is not None
        ]
        children: dict[tuple[str, str], list[_Present]] = defaultdict(list)
        for p in self.present:
            if p.item.parent_id is not None:
                children[(p.item.source, p.item.parent_id)].append(p)
        epic_bars = []
        for e in self.epics:
            kids = children.get((e.source, e.id), [])
            done = sum(1 for p in kids if p.cat is DONE)
            cancelled = sum(1 for p in kids if p.cat is CANCELLED)
            # Children's start dates, else their creation: when the epic's work could begin.
            starts = [p.item.start_date for p in kids if p.item.start_date] or [
                self.days.day(p.item.created_at) for p in kids if p.item.created_at
            ]
            start = e.start_date or min(starts, default=None)
            ends = [p.item.due_date for p in kids if p.item.due_date]
            finished = e.category is DONE or bool(kids and done and done == len(kids) - cancelled)
            end = e.due_date or max(ends, default=None)
            if end is None and finished:
                closes = [
                    self.days.day(p.since) for p in kids if p.cat is DONE and p.since is not ALWAYS
                ]
                if e.completed_at:
                    closes.append(local_day(e.completed_at, self.zone))
                end = max(closes, default=None)
            if end is None:
                continue
            if start is not None and start > end:
                start = end
            pct = 100.0 if finished and not kids else _percent(done, len(kids) - cancelled)
            if finished:
                state = "done"
            elif end < self.end:
                state = "late"
            else:
                state = "on_track"
            epic_bars.append(
                GanttBar(
                    kind="epic",
                    source=e.source,
                    key=e.key,
                    name=e.title,
                    url=e.url,
                    start=start,
                    end=end,
                    percent_done=pct,
                    state=state,
                )
            )
        epic_bars.sort(key=lambda g: (g.start or g.end, g.end, natural_key(g.key)))
        return bars + epic_bars

    def _closing(self, progress: Progress) -> Closing:
        project = self.project
        lessons = None
        if project.lessons_learned is not None:
            path = self.config.resolve(project.lessons_learned)
            try:
                lessons = path.read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise ConfigError(
                    f"cannot read lessons-learned file {path} ({exc.strerror});"
                    f" fix projects.{self.pid}.lessons_learned"
                ) from None
            except UnicodeDecodeError:
                raise ConfigError(
                    f"lessons-learned file {path} is not UTF-8 text;"
                    f" fix projects.{self.pid}.lessons_learned"
                ) from None
        done_days = sorted(self._completion_days())
        starts = []
        cycle: list[float] = []
        for p in self.present:
            began = self._started(p.item)
            if began is not None and p.cat in (DONE, IN_PROGRESS):
                starts.append(local_day(began, self.zone))
            if p.cat is DONE and p.since is not ALWAYS and began is not None:
                cycle.append(max((p.since - began).total_seconds() / 86400, 0.0))
        actual_start = min(starts, default=None)
        actual_end = done_days[-1] if done_days else None
        per_week = None
        if done_days:
            span = ((done_days[-1] - (actual_start or done_days[0])).days + 1) / 7
            per_week = round(len(done_days) / max(span, 1 / 7), 2)
        cycle.sort()

        def pct(q: float) -> float | None:
            return round(cycle[max(math.ceil(q * len(cycle)) - 1, 0)], 1) if cycle else None

        entries = [
            FeedbackEntry(day=date.fromisoformat(f["day"]), score=f["score"], comment=f["comment"])
            for f in self.store.feedback(self.pid)
        ]
        slip = None
        if project.target_date is not None and actual_end is not None:
            slip = (actual_end - project.target_date).days
        return Closing(
            planned_start=project.start_date, planned_end=project.target_date,
            actual_start=actual_start, actual_end=actual_end, slip_days=slip,
            done=progress.done, cancelled=progress.cancelled, open=self.open_count,
            throughput_per_week=per_week,
            cycle_time=CycleTime(
                count=len(cycle), p50_days=pct(0.5), p85_days=pct(0.85),
                mean_days=round(sum(cycle) / len(cycle), 1) if cycle else None,
            ),
            lessons_learned=lessons,
            feedback=FeedbackSummary(
                count=len(entries),
                average=round(sum(e.score for e in entries) / len(entries), 2) if entries else None,
                entries=entries,
            ),
        )  # fmt: skip

    def _started(self, item: ItemRow) -> datetime | None:
        """When work began: the first move to in progress, else the start date, else creation."""
        for at, cat, _ in item.timeline:
            if cat is IN_PROGRESS and at is not ALWAYS:
                return at
        if item.start_date is not None:
            return day_start(item.start_date, self.zone)
        return item.created_at
