"""The client status report (DESIGN §7): one project, one period, built from the store only.

`build_report` reads the store once, applies the counting rule of `sync.scope`, and returns
a `Report`. The report shows the project as it stood at the end of the period: each item's
category then comes from its timeline (`sync.history`). Its JSON (`model_dump(mode="json")`)
is the machine contract; the renderers in `sync.render` only format it.

The builder works on columns (numpy arrays, one entry per item) rather than one object per
item: a 100k-item project is counted in a few vectorised passes, and only the items a list
shows are read in full and become `ItemRef`s (see `sync.history` for the timelines).

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

import gc
import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from itertools import repeat
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr

from config.schema import Config, ProjectSettings
from sync import forecast as fc
from sync import i18n
from sync.errors import ConfigError
from sync.history import (
    ALWAYS_US,
    BLANK,
    C_CANCELLED,
    C_DONE,
    C_IN_PROGRESS,
    C_TODO,
    CATS,
    CURRENT,
    MISSING,
    Days,
    Transitions,
    build_timelines,
    burnup_deltas,
    burnup_points,
    day_start,
    from_days,
    from_us,
    load_display,
    load_table,
    load_transition_table,
    local_day,
    to_us,
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

DONE = StatusCategory.DONE
CANCELLED = StatusCategory.CANCELLED
IN_PROGRESS = StatusCategory.IN_PROGRESS
TODO = StatusCategory.TODO


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
    # Present only in closing reports (README "The JSON contract").
    closing: Closing | None = Field(default=None, exclude_if=lambda value: value is None)

    # Rendering hints that are not part of the JSON contract.
    _timezone: str = PrivateAttr(default="UTC")
    _target_date: date | None = PrivateAttr(default=None)
    _more_url: str | None = PrivateAttr(default=None)

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


# `ItemRef`s are made the way `model_construct` makes them, without its per-field Python
# loop (a report can hold 100k of them; validating each would double the build time). They
# share one fields-set: every field is set, so nothing ever adds to it. The JSON round trip
# is tested (the model validates its own output).
_REF_FIELDS = set(ItemRef.model_fields)
_set = object.__setattr__
_CAT_VALUES = [c.value for c in CATS]


_DIGIT = re.compile(r"\d")


def _key_ranks(keys: list[str], sources: list[str]) -> np.ndarray:
    """Rank each item by (natural_key(key), source, position), as `sorted` would.

    Keys like "ABC-123" (the usual case) are ranked with numpy by prefix and number, which
    is the same order as their `natural_key` tuples; any other key sorts the tuples.
    """
    n = len(keys)
    # A simple key: digits (ASCII, up to 18) after a prefix without any digit.
    heads = [key.rstrip("0123456789") for key in keys]
    distinct = set(heads)
    simple = (
        all(0 < len(k) - len(h) <= 18 for k, h in zip(keys, heads, strict=True))
        and not any(_DIGIT.search(h) or h.isdigit() or "\x00" in h for h in distinct)
        and not any("\x00" in s for s in set(sources))
    )
    if simple:
        # numpy's strings compare by code point, as Python's do (NUL aside: excluded above).
        folded = {h: h.casefold() for h in distinct}
        _, prefix = np.unique(np.array([folded[h] for h in heads], dtype=str), return_inverse=True)
        number = np.array(
            [int(k[len(h) :]) for k, h in zip(keys, heads, strict=True)], dtype=np.int64
        )
        _, source = np.unique(np.array(sources, dtype=str), return_inverse=True)
        order = np.lexsort((np.arange(n), source, number, prefix))
    else:
        order = np.array(
            sorted(range(n), key=lambda k: (natural_key(keys[k]), sources[k], k)), dtype=np.int64
        )
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return rank


def _folded(labels: Iterable[str]) -> frozenset[str]:
    return frozenset(label.casefold() for label in labels)


def _bits(values: Sequence[Any], decide: Callable[[Any], int]) -> np.ndarray:
    """Map each value to flag bits, deciding once per distinct value."""
    known = {value: decide(value) for value in set(values)}
    return np.fromiter(map(known.__getitem__, values), dtype=np.int64, count=len(values))


def _seqsum(values: np.ndarray) -> float:
    """The sum a `total += value` loop gives (numpy's sum adds pairwise: other roundings)."""
    return float(np.cumsum(values)[-1]) if values.size else 0.0


def _tally(cats: np.ndarray, estimates: np.ndarray) -> dict[str, float]:
    """Count items and sum estimates (0 for none) by category code."""
    n = np.bincount(cats.astype(np.int64), minlength=4).tolist()
    return {
        "total": len(cats),
        "todo": n[C_TODO],
        "in_progress": n[C_IN_PROGRESS],
        "done": n[C_DONE],
        "cancelled": n[C_CANCELLED],
        "estimate_total": _seqsum(estimates[cats != C_CANCELLED]),
        "estimate_done": _seqsum(estimates[cats == C_DONE]),
    }


def _source_settings(config: Config, name: str) -> Any:
    return config.sources.get(name)


# Flag bits of an item (labels and kind, per the project's configuration).
_HIDDEN = 1  # an internal label, and the audience is the client
_BLOCKED = 2  # flagged, or a blocked label
_CLIENT_INPUT = 4
_CHANGE_REQUEST = 8  # a change-request label or type
_CONTAINER = 16  # an epic: in the Gantt, not in the counts


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
    # The build makes a few hundred thousand objects and no cyclic garbage: the cyclic
    # collector would only scan them again and again (a fifth of the build's time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        report = _Builder(
            store, config, project_id, project, zone, lang, audience, now, start, end
        ).build(closing=closing, override=override, note=note or project.health_note)
    finally:
        if gc.get_freeze_count() == 0:
            # Hand the report's objects straight to the oldest generation (freeze, then
            # unfreeze into it): young collections would otherwise scan them twice more,
            # during rendering. Skipped if the process keeps objects frozen on purpose.
            gc.freeze()
            gc.unfreeze()
        if collecting:
            gc.enable()
    report._timezone = project.timezone
    report._target_date = project.target_date
    return report


class _Builder:
    """One report's working state.

    Items are numbered 0..n-1: the live items in scope (store order), then the tombstoned
    ones in scope (only "removed" lists show them). `present` holds the live ones that
    existed at the period's end, in that order; `cat`/`since` are their state then. A state
    is a step of the item's timeline (`self.tl`), so a listed item is (item, step).
    """

    def __init__(
        self,
        store: Store,
        config: Config,
        pid: str,
        project: ProjectSettings,
        zone: ZoneInfo,
        lang: str,
        audience: Audience,
        now: datetime,
        start: date,
        end: date,
    ) -> None:
        self.store, self.config, self.pid, self.project = store, config, pid, project
        self.zone, self.lang, self.audience, self.now = zone, lang, audience, now
        self.start, self.end = start, end
        self.t0 = day_start(start, zone)
        self.t1 = day_start(end + timedelta(days=1), zone)  # exclusive end of the period
        self.t0_us, self.t1_us = to_us(self.t0), to_us(self.t1)
        self.today = local_day(now, zone)
        self._refs: dict[int, ItemRef] = {}

    def t(self, key: str, **kw: Any) -> str:
        return i18n.t(self.lang, key, **kw)

    def d(self, value: date) -> str:
        return i18n.fmt_date(self.lang, value)

    # -- reading ---------------------------------------------------------------------------

    def _load(self) -> None:
        project = self.project
        self.sources = list(project.sources)
        tab = self.tab = load_table(self.store, self.sources)
        client = self.audience == "client"
        internal = _folded(project.internal_labels)
        blocked = _folded(project.blocked_labels)
        client_input = _folded(project.client_input_labels)
        cr_labels = _folded(project.change_request_labels)
        cr_types = _folded(project.change_request_types)

        def label_bits(text: str | None) -> int:
            labels = {label.casefold() for label in json.loads(text)} if text else set()
            return (
                (_HIDDEN if client and labels & internal else 0)
                | (_BLOCKED if labels & blocked else 0)
                | (_CLIENT_INPUT if labels & client_input else 0)
                | (_CHANGE_REQUEST if labels & cr_labels else 0)
            )

        def kind_bits(kind: str) -> int:
            return (_CONTAINER if kind.lower() == "epic" else 0) | (
                _CHANGE_REQUEST if kind.casefold() in cr_types else 0
            )

        flags = _bits(tab.labels, label_bits) | _bits(tab.kind, kind_bits)
        flags |= np.where(tab.blocked, _BLOCKED, 0)
        # The counting rule of `sync.scope.in_scope`, on every row at once.
        live = tab.deleted == MISSING
        shown = (flags & _HIDDEN) == 0
        counted = shown & ((flags & _CONTAINER) == 0)
        items = np.flatnonzero(live & counted)
        self.epic_rows = np.flatnonzero(live & shown & ~counted)
        rows = self.rows = np.concatenate([items, np.flatnonzero(~live & counted)])
        self.n_live = items.size
        self.flags = flags[rows]
        self.source = tab.source[rows]
        self.category = tab.category[rows]
        self.created = tab.created[rows]
        self.updated = tab.updated[rows]
        self.completed = tab.completed[rows]
        self.deleted = tab.deleted[rows]
        self.due = tab.due[rows]
        self.start_day = tab.start[rows]
        self.estimate = tab.estimate[rows]
        self.est0 = np.where(np.isnan(self.estimate), 0.0, self.estimate)

        steps, self.texts = Transitions.of(
            load_transition_table(self.store, self.sources), tab.rowid[rows]
        )
        self.steps = steps
        self.step_count = np.bincount(steps.item, minlength=rows.size)
        self.step_first = np.cumsum(self.step_count) - self.step_count
        created = np.where(self.created == MISSING, ALWAYS_US, self.created)
        tl = self.tl = build_timelines(created, self.updated, self.completed, self.category, steps)

        self.pos_end = tl.positions(self.t1_us - 1)
        present = self.present = np.flatnonzero(self.pos_end[: self.n_live] >= 0)
        self.cat = tl.cat[self.pos_end[present]]
        self.since = tl.at[tl.run[self.pos_end[present]]]
        # Local days by bisection (see history.Days), over every day the report looks at.
        self.chart_first = self._chart_first()
        weeks = project.forecast_window_weeks
        first = min(self.chart_first, self.end - timedelta(days=7 * weeks))
        self.days = Days(first, max(self.end, self.today), self.zone)
        self.done = (self.cat == C_DONE) & (self.since != ALWAYS_US)

    def _chart_first(self) -> date:
        """The burn-up's first day: the project start, else the first creation (2 years at most)."""
        first = self.project.start_date
        if first is None:
            created = self.created[: self.n_live]
            created = created[created != MISSING]
            first = local_day(from_us(created.min()), self.zone) if created.size else self.start
        return max(min(first, self.start), self.end - timedelta(days=MAX_HISTORY_DAYS))

    def _day_number(self, day: date) -> int:
        return day.toordinal() - date(1970, 1, 1).toordinal()

    # -- listed items ------------------------------------------------------------------------

    def _prepare(self, listed: list[np.ndarray]) -> None:
        """Read the display fields of the listed items, and rank them by key and source."""
        wanted = np.unique(np.concatenate([*listed, np.zeros(0, dtype=np.int64)]))
        rowids = self.tab.rowid[self.rows[wanted]].tolist()
        self.display = load_display(self.store, rowids)
        self.rank = np.zeros(self.rows.size, dtype=np.int64)
        self.rank[wanted] = _key_ranks(
            [self.display[r][0] for r in rowids],
            [self.sources[s] for s in self.source[wanted].tolist()],
        )

    def _ordered(self, items: np.ndarray, first: np.ndarray | None = None) -> list[int]:
        """Items by `first` (if given), then key and source (`natural_key`), then number."""
        keys = (self.rank[items],) if first is None else (self.rank[items], first)
        return items[np.lexsort(keys)].tolist()

    def _refs_of(
        self,
        items: Sequence[int],
        steps: Sequence[int] | None = None,
        extra: str | None = None,
        values: Sequence[int] | None = None,
    ) -> list[ItemRef]:
        """The references of `items`, each in its state at its step in `steps` (default: at
        the period's end, one shared reference per item), `extra` set to `values` if given.

        The values are gathered with numpy, then one tight loop makes the objects: a big
        report holds 100k references.
        """
        shared = steps is None and extra is None
        cache = self._refs
        todo = [i for i in items if i not in cache] if shared else list(items)
        index = np.asarray(todo, dtype=np.int64)
        at = self.pos_end[index] if steps is None else np.asarray(steps, dtype=np.int64)
        made = self._make_refs(index, at)
        if extra is not None:
            for ref, value in zip(made, values or (), strict=True):
                ref.__dict__[extra] = value
        if not shared:
            return made
        cache.update(zip(todo, made, strict=True))
        return [cache[i] for i in items]

    def _make_refs(self, index: np.ndarray, steps: np.ndarray) -> list[ItemRef]:
        """New references of items `index`, in their states at `steps`."""
        tl, tab = self.tl, self.tab
        rows = self.rows[index]
        cats = tl.cat[steps]
        since = tl.at[tl.run[steps]]
        # completed_at: a datetime where the state is done (numpy makes them, naive, in C).
        done = (cats == C_DONE) & (since != ALWAYS_US)
        completed: list[Any] = [None] * index.size
        for k, moment in zip(
            np.flatnonzero(done).tolist(),
            since[done].astype("datetime64[us]").tolist(),
            strict=True,
        ):
            completed[k] = moment.replace(tzinfo=UTC)
        due = self.due[index]
        days = {d: from_days(d) for d in np.unique(due[due != MISSING]).tolist()}
        days[MISSING] = None
        display, texts, kinds, names = self.display, self.texts, tab.kind, self.sources
        values = _CAT_VALUES
        new, fields = ItemRef.__new__, _REF_FIELDS
        out = []
        for row, rowid, cat, text, when, source, day, estimate in zip(
            rows.tolist(),
            tab.rowid[rows].tolist(),
            cats.tolist(),
            tl.status[steps].tolist(),
            completed,
            self.source[index].tolist(),
            due.tolist(),
            self.estimate[index].tolist(),
            strict=True,
        ):
            key, url, title, status, assignee = display[rowid]
            if text != CURRENT:
                status = "" if text == BLANK else texts[text]
            ref = new(ItemRef)
            _set(
                ref,
                "__dict__",
                {
                    "source": names[source],
                    "key": key,
                    "title": title,
                    "url": url,
                    "status": status or values[cat],
                    "category": CATS[cat],
                    "due_date": days[day],
                    "kind": kinds[row],
                    "assignee": assignee,
                    "estimate": None if estimate != estimate else estimate,
                    "completed_at": when,
                    "days_overdue": None,
                    "blocked_days": None,
                },
            )
            _set(ref, "__pydantic_fields_set__", fields)
            _set(ref, "__pydantic_extra__", None)
            _set(ref, "__pydantic_private__", None)
            out.append(ref)
        return out

    def _day(self, day: Any) -> date | None:
        return None if day == MISSING else from_days(day)

    # -- the parts -------------------------------------------------------------------------

    def build(self, *, closing: bool, override: str | None, note: str | None) -> Report:
        self._load()
        present, cat, since = self.present, self.cat, self.since
        tally = _tally(cat, self.est0[present])
        self.open_count = int(tally["todo"] + tally["in_progress"])
        is_open = cat <= C_IN_PROGRESS
        flags = self.flags[present]
        due = self.due[present]
        end = self._day_number(self.end)
        horizon = end + (self.end - self.start).days + 1
        dated = is_open & (due != MISSING)

        completed = (cat == C_DONE) & (since >= self.t0_us) & (since < self.t1_us)
        upcoming = dated & (due > end) & (due <= horizon)
        overdue = dated & (due < end)
        blocked = present[is_open & ((flags & _BLOCKED) != 0)]
        blocked_days = {i: self._blocked_days(i) for i in blocked.tolist()}
        lists = {
            "completed": (present[completed], since[completed]),
            "in_progress": (present[cat == C_IN_PROGRESS], None),
            "upcoming": (present[upcoming], due[upcoming]),
            "overdue": (present[overdue], due[overdue]),
            "blocked": (blocked, -np.array([blocked_days[i] for i in blocked.tolist()], np.int64)),
            "needs_client_input": (present[is_open & ((flags & _CLIENT_INPUT) != 0)], None),
            "change_requests": (present[(flags & _CHANGE_REQUEST) != 0], None),
        }
        since_day, basis = self._since()
        changes_parts = self._change_parts(since_day)
        scope_parts = self._scope_parts()
        self._prepare(
            [
                *(items for items, _ in lists.values()),
                *(items for items, _ in changes_parts["lists"].values()),
                *(items for items, _ in scope_parts["lists"].values()),
            ]
        )
        ordered = {name: self._ordered(items, first) for name, (items, first) in lists.items()}

        forecast, sim_days = self._forecast()
        milestones = self._milestones(sim_days, forecast)
        changes, then = self._changes(since_day, basis, changes_parts)
        progress = Progress(
            total=int(tally["total"]),
            done=int(tally["done"]),
            in_progress=int(tally["in_progress"]),
            todo=int(tally["todo"]),
            cancelled=int(tally["cancelled"]),
            percent_done=_percent(tally["done"], tally["total"] - tally["cancelled"]),
            estimate_total=round(tally["estimate_total"], 2),
            estimate_done=round(tally["estimate_done"], 2),
            percent_done_by_estimate=_percent(tally["estimate_done"], tally["estimate_total"]),
            delta=self._delta(tally, then, changes.since),
        )
        sources = self._sources()
        health_ = self._health(
            progress,
            forecast,
            milestones,
            [blocked_days[i] for i in ordered["blocked"]],
            sources,
            override,
            note,
        )
        report = Report(
            project=ProjectInfo(id=self.pid, name=self.project.name, client=self.project.client),
            period=Period(start=self.start, end=self.end),
            generated_at=self.now,
            audience=self.audience,
            language=self.lang,
            health=health_,
            progress=progress,
            completed=self._refs_of(ordered["completed"]),
            in_progress=self._refs_of(ordered["in_progress"]),
            upcoming=self._refs_of(ordered["upcoming"]),
            overdue=self._refs_of(
                ordered["overdue"],
                extra="days_overdue",
                values=(end - self.due[ordered["overdue"]]).tolist(),
            ),
            blocked=self._refs_of(
                ordered["blocked"],
                extra="blocked_days",
                values=[blocked_days[i] for i in ordered["blocked"]],
            ),
            needs_client_input=self._refs_of(ordered["needs_client_input"]),
            change_requests=self._refs_of(ordered["change_requests"]),
            scope_change=self._scope_change(scope_parts),
            milestones=milestones,
            forecast=forecast,
            charts=Charts(burnup=self._burnup(), gantt=self._gantt(milestones)),
            changes_since_last_report=changes,
            sources=sources,
            closing=self._closing(progress) if closing else None,
        )
        return report

    def _blocked_days(self, i: int) -> int:
        """Days since the item entered a blocked status (its last update if the tool has no history)."""
        settings = _source_settings(self.config, self.sources[int(self.source[i])])
        names = {s.casefold() for s in getattr(settings, "blocked_statuses", []) or []}
        since: int | None = None
        if names:
            steps = self.steps
            first = int(self.step_first[i])
            for j in range(first, first + int(self.step_count[i])):
                at = int(steps.at[j])
                if at < self.t1_us and self.texts[int(steps.to_status[j])].casefold() in names:
                    since = at
        if since is None:
            for value in (self.updated[i], self.created[i]):
                if value != MISSING:
                    since = int(value)
                    break
        if since is None:
            return 0
        ref = min(self.now, self.t1)
        return max((local_day(ref, self.zone) - local_day(from_us(since), self.zone)).days, 0)

    def _throughput(self, start: date, end: date) -> list[int]:
        """Items completed on each day from `start` to `end` (`forecast.daily_throughput`)."""
        if end < start:
            return []
        lo = (start - self.days.first).days
        hi = (end - self.days.first).days
        days = self.days.indices(self.since[self.done])
        days = days[(days >= lo) & (days <= hi)] - lo
        return np.bincount(days, minlength=hi - lo + 1).tolist()

    def _forecast(self) -> tuple[Forecast, Any]:
        window_end = min(self.end, self.today)
        target = self.project.target_date
        window_start = fc.window_start(
            window_end, self.project.forecast_window_weeks, self.project.start_date
        )
        self.window_end = window_end
        self.samples = self._throughput(window_start, window_end)
        sim = fc.forecast_samples(
            self.samples,
            self.open_count,
            window_start=window_start,
            window_end=window_end,
            target=target,
        )
        reason = None
        if sim.reason == "too_little_history":
            reason = self.t(
                "fc_too_little_history",
                completed=sim.completed_in_window,
                days=i18n.fmt_days(self.lang, (sim.window_end - sim.window_start).days + 1),
                min=fc.MIN_COMPLETED,
            )
        elif sim.reason == "short_window":
            reason = self.t(
                "fc_short_window",
                days=i18n.fmt_days(self.lang, (sim.window_end - sim.window_start).days + 1),
                min=i18n.fmt_days(self.lang, fc.MIN_WINDOW_DAYS),
            )
        elif sim.reason is not None:
            reason = self.t(f"fc_{sim.reason}")
        forecast = Forecast(
            trials=fc.TRIALS,
            seed=fc.SEED,
            window_start=sim.window_start,
            window_end=sim.window_end,
            completed_in_window=sim.completed_in_window,
            throughput_per_day=sim.throughput_per_day,
            remaining=sim.remaining,
            p50=sim.p50,
            p85=sim.p85,
            p95=sim.p95,
            target_date=target,
            probability_by_target=sim.probability_by_target,
            reason=reason,
        )
        return forecast, sim

    def _codes(
        self, column: Sequence[str | None], wanted: dict[tuple[str, str], int]
    ) -> np.ndarray:
        """Map each present item's `column` value (an id in its source) to `wanted`'s number."""
        rows = self.rows[self.present]
        if len(self.sources) == 1:
            ids = {id_: n for (source, id_), n in wanted.items() if source == self.sources[0]}
            keys: Iterable[Any] = column
        else:
            # By (source number, id): the table numbers sources by their first place.
            first = {name: self.sources.index(name) for name in self.sources}
            ids = {(first[s], id_): n for (s, id_), n in wanted.items() if s in first}
            keys = zip(self.tab.source.tolist(), column, strict=True)
        every = np.fromiter(map(ids.get, keys, repeat(-1)), dtype=np.int64, count=len(column))
        return every[rows]

    def _milestones(self, sim: fc.Simulation, forecast: Forecast) -> list[MilestoneStatus]:
        ms = self.store.milestones(self.project.sources)
        if not ms:
            return []
        code = self._codes(self.tab.milestone, {(m.source, m.id): k for k, m in enumerate(ms)})
        member = code >= 0

        def count(mask: np.ndarray) -> list[int]:
            return np.bincount(code[member & mask], minlength=len(ms)).tolist()

        totals = count(np.ones(code.size, dtype=bool))
        dones = count(self.cat == C_DONE)
        cancels = count(self.cat == C_CANCELLED)
        rows = [
            (m, totals[k], dones[k], cancels[k], totals[k] - dones[k] - cancels[k])
            for k, m in enumerate(ms)
        ]
        # Milestones are forecast in due-date order: each one finishes when the team has
        # done its open items and those of every milestone due before it.
        thresholds, cum = [], 0
        for _m, _t, _d, _c, open_ in rows:
            cum += open_
            thresholds.append(cum)
        days_needed = self._simulate_thresholds(thresholds, forecast)
        out = []
        for (m, total, done, cancelled, open_), need in zip(rows, days_needed, strict=True):
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

    def _gone(self, after: int, at: np.ndarray, strict: bool) -> np.ndarray:
        """Tombstoned items deleted after `after` (strictly, or at it) and before the period's end,
        that existed (`at`: their steps then) and were not cancelled then if `strict`."""
        gone = np.arange(self.n_live, self.rows.size)
        deleted = self.deleted[gone]
        step = at[gone]
        ok = (deleted != MISSING) & (deleted < self.t1_us) & (step >= 0)
        if strict:
            ok &= (deleted > after) & (self.tl.cat[step] != C_CANCELLED)
        else:
            ok &= deleted >= after
        return gone[ok]

    def _change_parts(self, since: date) -> dict[str, Any]:
        """The items that changed between the end of `since` and the period's end."""
        ts = to_us(day_start(since + timedelta(days=1), self.zone))
        at = self.tl.positions(ts - 1)
        present, cat = self.present, self.cat
        step = at[present]
        existed = step >= 0
        was = np.where(existed, self.tl.cat[step], -1)
        added = ~existed
        completed = (cat == C_DONE) & (added | (was != C_DONE))
        removed = self._gone(ts, at, strict=False)
        counted = present[existed]
        return {
            "then": _tally(was[existed], self.est0[counted]),
            "at": at,
            "lists": {
                "completed": (present[completed], self.since[completed]),
                "added": (present[added], None),
                "reopened": (present[existed & (cat <= C_IN_PROGRESS) & (was == C_DONE)], None),
                "cancelled": (present[existed & (cat == C_CANCELLED) & (was != C_CANCELLED)], None),
                "removed": (removed, None),
            },
        }

    def _changes(
        self, since: date, basis: Literal["publication", "previous_period"], parts: dict[str, Any]
    ) -> tuple[Changes, dict[str, float]]:
        tally_then = parts["then"]
        lists = {
            name: self._ordered(items, first) for name, (items, first) in parts["lists"].items()
        }
        at = parts["at"]
        feedback: list[FeedbackEntry] = []
        if self.audience == "internal":
            for f in self.store.feedback(self.pid):
                day = date.fromisoformat(f["day"])
                if since < day <= self.end:
                    feedback.append(FeedbackEntry(day=day, score=f["score"], comment=f["comment"]))
        changes = Changes(
            since=since,
            basis=basis,
            progress_then=ProgressThen(
                total=int(tally_then["total"]),
                done=int(tally_then["done"]),
                cancelled=int(tally_then["cancelled"]),
                percent_done=_percent(
                    tally_then["done"], tally_then["total"] - tally_then["cancelled"]
                ),
            ),
            completed=self._refs_of(lists["completed"]),
            added=self._refs_of(lists["added"]),
            reopened=self._refs_of(lists["reopened"]),
            cancelled=self._refs_of(lists["cancelled"]),
            # Deleted items as they were then.
            removed=self._refs_of(lists["removed"], at[lists["removed"]].tolist()),
            feedback=feedback,
        )
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

    def _scope_parts(self) -> dict[str, Any]:
        """Items added to and removed from scope since the baseline day."""
        baseline = self.project.baseline_date or self.project.start_date
        empty = np.zeros(0, dtype=np.int64)
        if baseline is None:
            return {"baseline": None, "lists": {}}
        tb = to_us(day_start(baseline + timedelta(days=1), self.zone)) - 1
        at = self.tl.positions(tb)
        present, cat = self.present, self.cat
        step = at[present]
        existed = step >= 0
        before = np.where(existed, self.tl.cat[step], -1)
        added = present[~existed & (cat != C_CANCELLED)]
        dropped = present[existed & (cat == C_CANCELLED) & (before != C_CANCELLED)]
        gone = self._gone(tb, at, strict=True)
        return {
            "baseline": baseline,
            "at": at,
            "dropped": dropped,
            "gone": gone,
            "lists": {
                "added": (added, None),
                "removed": (np.concatenate([dropped, gone, empty]), None),
            },
        }

    def _scope_change(self, parts: dict[str, Any]) -> ScopeChange:
        baseline = parts["baseline"]
        if baseline is None:
            return ScopeChange(
                baseline=None, added=[], removed=[], estimate_added=0, estimate_removed=0
            )
        added, _ = parts["lists"]["added"]
        gone = set(parts["gone"].tolist())
        at = parts["at"].tolist()
        removed = self._ordered(parts["lists"]["removed"][0])
        # Cancelled items as they are now; deleted ones as they were on the baseline day.
        return ScopeChange(
            baseline=baseline,
            added=self._refs_of(self._ordered(added)),
            removed=self._refs_of(
                removed, [at[i] if i in gone else int(self.pos_end[i]) for i in removed]
            ),
            # Summed as `sum()` over the items in store order, as the reference does.
            estimate_added=round(sum(self.est0[added].tolist()), 2),
            estimate_removed=round(
                sum(self.est0[parts["dropped"]].tolist() + self.est0[parts["gone"]].tolist()), 2
            ),
        )

    def _sources(self) -> list[SourceInfo]:
        per_source: dict[str, int] = defaultdict(int)
        counts = np.bincount(self.source[self.present], minlength=len(self.sources)).tolist()
        for k, name in enumerate(self.sources):
            per_source[name] += counts[k]
        out = []
        for name in self.project.sources:
            settings = _source_settings(self.config, name)
            last = self.store.last_synced_at(name)
            if last is None:
                # No sync run recorded: the newest item seen (read with the items).
                seen = self.tab.last_seen[self.sources.index(name)]
                last = datetime.fromisoformat(seen) if seen else None
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
        self,
        progress: Progress,
        forecast: Forecast,
        milestones: list[MilestoneStatus],
        blocked_days: list[int],
        sources: list[SourceInfo],
        override: str | None,
        note: str | None,
    ) -> Health:
        status, reasons = self._rules(progress, forecast, milestones, blocked_days, sources)
        if override is None:
            return Health(status=status, reasons=reasons, overridden=False)  # type: ignore[arg-type]
        head = self.t("reason_override", note=note) if note else self.t("reason_override_no_note")
        lines = [head]
        if status != override:
            lines.append(self.t("reason_rules_say", status=i18n.health_word(self.lang, status)))
        return Health(status=override, reasons=lines + reasons, overridden=True)  # type: ignore[arg-type]

    def _rules(
        self,
        progress: Progress,
        forecast: Forecast,
        milestones: list[MilestoneStatus],
        blocked_days: list[int],
        sources: list[SourceInfo],
    ) -> tuple[str, list[str]]:
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
                flag(
                    level,
                    self.t(
                        "reason_milestone_late",
                        name=m.name,
                        days=i18n.fmt_days(self.lang, late),
                        due=self.d(m.due_date),
                    ),
                )
        if blocked_days:
            oldest = max(blocked_days)
            line = self.t(
                "reason_blockers", count=len(blocked_days), days=i18n.fmt_days(self.lang, oldest)
            )
            if oldest >= BLOCKER_AGE_DAYS:
                flag("at_risk", line)
            else:
                reasons.append(line)
        allowed = self._freshness()
        for s in sources:
            if s.last_synced_at is None:
                flag("at_risk", self.t("reason_never_synced", source=s.name))
            elif self.now - s.last_synced_at > allowed:
                flag(
                    "at_risk",
                    self.t(
                        "reason_stale",
                        source=s.name,
                        when=i18n.fmt_datetime(self.lang, s.last_synced_at, self.zone),
                        allowed=i18n.fmt_duration(self.lang, allowed),
                    ),
                )
        if worst == "on_track":
            reasons.append(
                self.t("reason_all_clear", days=i18n.fmt_days(self.lang, BLOCKER_AGE_DAYS))
            )
        return worst, reasons

    def _burnup(self) -> list[BurnupDay]:
        n = (self.end - self.chart_first).days + 1
        if n <= 0:
            return []
        # A step before the chart's first day counts from its start (and so does ALWAYS).
        offset = (self.chart_first - self.days.first).days
        deltas = burnup_deltas(
            self.tl, self.present, self.est0, self.days.indices(self.tl.at) - offset, n
        )
        points = burnup_points(
            deltas, self.store.snapshots(self.pid, self.audience), self.chart_first
        )
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
        tab = self.tab
        shown = load_display(
            self.store, tab.rowid[self.epic_rows].tolist(), ("id", "key", "url", "title")
        )
        epics = [
            (row, *shown[rowid])
            for row, rowid in zip(
                self.epic_rows.tolist(), tab.rowid[self.epic_rows].tolist(), strict=True
            )
        ]
        if not epics:
            return bars
        code = self._codes(
            tab.parent,
            {
                (self.sources[int(tab.source[row])], id_): k
                for k, (row, id_, *_) in enumerate(epics)
            },
        )
        # The children of each epic, as slices of the present items sorted by epic.
        order = np.argsort(code, kind="stable")
        bounds = np.searchsorted(code[order], np.arange(len(epics) + 1))
        kids_of = [order[bounds[k] : bounds[k + 1]] for k in range(len(epics))]
        present = self.present
        epic_bars = []
        for (row, _id, key, url, title), kids in zip(epics, kids_of, strict=True):
            cats = self.cat[kids]
            items = present[kids]
            done = int((cats == C_DONE).sum())
            cancelled = int((cats == C_CANCELLED).sum())
            # Children's start dates, else their creation: when the epic's work could begin.
            starts = self.start_day[items]
            starts = starts[starts != MISSING]
            created = self.created[items]
            created = created[created != MISSING]
            if starts.size:
                first_start: date | None = from_days(starts.min())
            elif created.size:
                first_start = self.days.day(from_us(created.min()))
            else:
                first_start = None
            start = self._day(tab.start[row]) or first_start
            ends = self.due[items]
            ends = ends[ends != MISSING]
            finished = tab.category[row] == C_DONE or bool(
                kids.size and done and done == kids.size - cancelled
            )
            end = self._day(tab.due[row]) or (from_days(ends.max()) if ends.size else None)
            if end is None and finished:
                closes = []
                closed = self.since[kids][self.done[kids]]
                if closed.size:
                    closes.append(self.days.day(from_us(closed.max())))
                if tab.completed[row] != MISSING:
                    closes.append(local_day(from_us(tab.completed[row]), self.zone))
                end = max(closes, default=None)
            if end is None:
                continue
            if start is not None and start > end:
                start = end
            pct = 100.0 if finished and not kids.size else _percent(done, kids.size - cancelled)
            if finished:
                state = "done"
            elif end < self.end:
                state = "late"
            else:
                state = "on_track"
            epic_bars.append(
                GanttBar(
                    kind="epic",
                    source=self.sources[int(tab.source[row])],
                    key=key,
                    name=title,
                    url=url,
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
        began = self._started()
        cat, since = self.cat, self.since
        known = began != MISSING
        starts = began[known & ((cat == C_DONE) | (cat == C_IN_PROGRESS))]
        # Local days only grow with time: the first day is the earliest instant's.
        actual_start = local_day(from_us(starts.min()), self.zone) if starts.size else None
        done = since[self.done]
        first_done = self.days.day(from_us(done.min())) if done.size else None
        actual_end = self.days.day(from_us(done.max())) if done.size else None
        per_week = None
        if first_done is not None and actual_end is not None:
            span = ((actual_end - (actual_start or first_done)).days + 1) / 7
            per_week = round(int(done.size) / max(span, 1 / 7), 2)
        cycling = self.done & known
        # As `timedelta.total_seconds() / 86400`, exactly: microseconds / 1e6 / 86400.
        cycle = sorted(np.maximum((since[cycling] - began[cycling]) / 1e6 / 86400, 0.0).tolist())

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
            planned_start=project.start_date,
            planned_end=project.target_date,
            actual_start=actual_start,
            actual_end=actual_end,
            slip_days=slip,
            done=progress.done,
            cancelled=progress.cancelled,
            open=self.open_count,
            throughput_per_week=per_week,
            cycle_time=CycleTime(
                count=len(cycle),
                p50_days=pct(0.5),
                p85_days=pct(0.85),
                mean_days=round(sum(cycle) / len(cycle), 1) if cycle else None,
            ),
            lessons_learned=lessons,
            feedback=FeedbackSummary(
                count=len(entries),
                average=round(sum(e.score for e in entries) / len(entries), 2) if entries else None,
                entries=entries,
            ),
        )

    def _started(self) -> np.ndarray:
        """When work began on each present item (µs, MISSING if unknown): the first move to in
        progress, else the start date, else creation."""
        tl = self.tl
        items = self.present
        total = tl.at.size
        moved = (tl.cat == C_IN_PROGRESS) & (tl.at != ALWAYS_US)
        first = np.minimum.reduceat(np.where(moved, np.arange(total), total), tl.off[items])
        # reduceat over the present items' starts also spans later items: cut at each end.
        first = np.where(first < tl.off[items] + tl.size[items], first, total)
        began = np.where(first < total, tl.at[np.minimum(first, total - 1)], MISSING)
        starts = self.start_day[items]
        for k in np.flatnonzero((first == total) & (starts != MISSING)).tolist():
            began[k] = to_us(day_start(from_days(starts[k]), self.zone))
        rest = (first == total) & (starts == MISSING)
        began[rest] = self.created[items][rest]
        return began
