"""What the store knows about the past: lean item rows, status timelines and the burn-up.

The report builder reads 100k items in well under a second by skipping pydantic here: an
`ItemRow` has the `WorkItem` attributes the report needs (and `is_container`), so the
counting rule in `sync.scope` applies to it unchanged.

A timeline is the item's category over time, oldest first, as `(at, category, status)`:
from the tool's transitions where they exist (or those the store observed between syncs),
otherwise from `created_at` and `completed_at` (or `updated_at` for a closed item without a
completion time). An unknown creation time counts as "always existed". The burn-up is
rebuilt from the timelines for every day and replaced by the stored daily snapshot on the
days that have one, so a first report already has a chart.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sync.model import StatusCategory
from sync.store import Store

ALWAYS = datetime.min.replace(tzinfo=UTC)
DONE = StatusCategory.DONE
CANCELLED = StatusCategory.CANCELLED
TODO = StatusCategory.TODO
IN_PROGRESS = StatusCategory.IN_PROGRESS
_CATEGORIES = {c.value: c for c in StatusCategory}

Timeline = list[tuple[datetime, StatusCategory, str]]


@dataclass(slots=True, eq=False)
class ItemRow:
    """One live item as the report reads it (a `WorkItem` without `raw` and validation)."""

    source: str
    id: str
    key: str
    url: str | None
    title: str
    kind: str
    status: str
    category: StatusCategory
    assignee: str | None
    labels: list[str]
    parent_id: str | None
    milestone_id: str | None
    start_date: date | None
    due_date: date | None
    created_at: datetime | None
    updated_at: datetime | None
    completed_at: datetime | None
    estimate: float | None
    blocked: bool
    deleted_at: datetime | None = None
    timeline: Timeline = field(default_factory=list)
    # Cached sort key (see sync.report.natural_key).
    order: tuple[Any, ...] | None = None

    @property
    def is_container(self) -> bool:
        return self.kind.lower() == "epic"


_ITEM_SQL = (
    "SELECT source, id, key, url, title, kind, status, category, assignee, labels, parent_id,"
    " milestone_id, start_date, due_date, created_at, updated_at, completed_at, estimate,"
    " blocked, {deleted} FROM items WHERE +source IN ({marks})"
)


def load_items(store: Store, sources: Sequence[str], *, deleted: bool = False) -> list[ItemRow]:
    """Read the live items of `sources` (or, with `deleted`, the tombstoned ones) in one query."""
    if not sources:
        return []
    # `+source`: a plain scan beats the (source, updated_at) index when most rows match.
    sql = _ITEM_SQL.format(
        marks=", ".join("?" * len(sources)), deleted="deleted_at" if deleted else "NULL"
    )
    sql += " AND deleted_at IS NOT NULL" if deleted else " AND deleted_at IS NULL"
    rows: list[ItemRow] = []
    cats = _CATEGORIES
    day, moment, loads = date.fromisoformat, datetime.fromisoformat, json.loads
    cur = store.conn.execute(sql, list(sources))
    cur.row_factory = None  # plain tuples: noticeably faster than sqlite3.Row at 100k rows
    # One loop with the parsing inlined: at 100k rows every function call shows.
    for (src, id_, key, url, title, kind, status, cat, assignee, labels, parent, milestone,
         start, due, created, updated, completed, estimate, blocked, gone) in cur:  # fmt: skip
        row = ItemRow(
            src, id_, key, url, title, kind, status, cats[cat], assignee,
            loads(labels) if labels != "[]" else [], parent, milestone,
            start and day(start), due and day(due), created and moment(created),
            updated and moment(updated), completed and moment(completed), estimate,
            bool(blocked), gone and moment(gone),
        )  # fmt: skip
        rows.append(row)
    return rows


TransitionRow = tuple[datetime, str | None, str, StatusCategory | None, StatusCategory]


def load_transitions(
    store: Store, sources: Sequence[str]
) -> dict[tuple[str, str], list[TransitionRow]]:
    """Return every stored transition of `sources` by (source, item id), oldest first."""
    out: dict[tuple[str, str], list[TransitionRow]] = defaultdict(list)
    if not sources:
        return out
    cats = _CATEGORIES
    cur = store.conn.execute(
        "SELECT source, item_id, at, from_status, to_status, from_category, to_category"
        f" FROM transitions WHERE source IN ({', '.join('?' * len(sources))}) ORDER BY at",
        list(sources),
    )
    cur.row_factory = None
    for s, i, at, fs, ts, fc, tc in cur:
        out[(s, i)].append((datetime.fromisoformat(at), fs, ts, fc and cats[fc], cats[tc]))
    return out


def build_timeline(item: ItemRow, transitions: Sequence[TransitionRow] | None) -> Timeline:
    """Return the item's category over time, ending in its current category."""
    created = item.created_at or ALWAYS
    cur = item.category
    if transitions:
        first = transitions[0]
        tl: Timeline = [(min(created, first[0]), first[3] or TODO, first[1] or "")]
        for at, _fs, ts, _fc, tc in transitions:
            tl.append((at, tc, ts))
        if tl[-1][1] is not cur:
            # The history does not end where the item is now: the missing step happened at
            # the item's last update at the latest.
            tl.append((max(item.updated_at or tl[-1][0], tl[-1][0]), cur, item.status))
        if cur is DONE and item.completed_at is not None:
            # Trust the tool's completion time for the start of the final done run.
            i = len(tl) - 1
            while i > 0 and tl[i - 1][1] is DONE:
                i -= 1
            if i > 0 and item.completed_at >= tl[i - 1][0]:
                tl[i] = (item.completed_at, DONE, tl[i][2])
        return tl
    if cur is DONE or cur is CANCELLED:
        closed = item.completed_at or item.updated_at
        if closed is not None and closed > created:
            return [(created, TODO, ""), (closed, cur, item.status)]
    return [(created, cur, item.status)]


def _when(entry: tuple[datetime, StatusCategory, str]) -> datetime:
    return entry[0]


def state_at(tl: Timeline, at: datetime) -> tuple[StatusCategory, str, datetime] | None:
    """Return (category, status, since) at `at`, or None if the item did not exist yet."""
    if tl[-1][0] <= at:  # the usual case: nothing happened to the item since `at`
        i = len(tl) - 1
    else:
        i = bisect_right(tl, at, key=_when) - 1
        if i < 0:
            return None
    cat = tl[i][1]
    j = i
    while j > 0 and tl[j - 1][1] is cat:
        j -= 1
    return cat, tl[i][2], tl[j][0]


def local_day(value: datetime, zone: ZoneInfo) -> date:
    return value.astimezone(zone).date()


class Days:
    """Local days of one zone from `first` to `last`, found by bisecting their UTC midnights.

    Converting 100k timestamps with `astimezone` costs more than the rest of a report; a
    bisect over a few hundred midnights is exact (DST included) and several times faster.
    """

    def __init__(self, first: date, last: date, zone: ZoneInfo) -> None:
        self.first = first
        self.zone = zone
        self.midnights = [
            day_start(first + timedelta(n), zone) for n in range((last - first).days + 2)
        ]

    def index(self, at: datetime) -> int:
        """Days from `first` to the local day of `at` (negative before it)."""
        i = bisect_right(self.midnights, at) - 1
        if 0 <= i < len(self.midnights) - 1:
            return i
        return (local_day(at, self.zone) - self.first).days

    def day(self, at: datetime) -> date:
        return self.first + timedelta(days=self.index(at))


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """Return the first instant of `day` in `zone`, in UTC."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class BurnupPoint:
    day: date
    scope: int
    done: int
    scope_estimate: float
    done_estimate: float
    # "snapshot" (the stored daily count) or "history" (rebuilt from the timelines).
    basis: str


def burnup(
    items: Iterable[ItemRow],
    snapshots: Iterable[dict[str, Any]],
    *,
    first: date,
    last: date,
    zone: ZoneInfo,
    days: Days | None = None,
) -> list[BurnupPoint]:
    """Return scope (all items but cancelled ones) and done per day from `first` to `last`.

    Each timeline step adds or removes the item from the scope and done lines on its local
    day; a step before `first` counts from the start. Days with a stored snapshot use it.
    """
    n = (last - first).days + 1
    if n <= 0:
        return []
    days = days or Days(first, last, zone)
    offset = (first - days.first).days
    scope = [0] * (n + 1)
    done = [0] * (n + 1)
    scope_e = [0.0] * (n + 1)
    done_e = [0.0] * (n + 1)
    for item in items:
        est = item.estimate or 0.0
        in_scope = was_done = False
        for at, cat, _ in item.timeline:
            idx = 0 if at is ALWAYS else days.index(at) - offset
            if idx >= n:
                break
            idx = max(idx, 0)
            now_scope = cat is not CANCELLED
            now_done = cat is DONE
            if now_scope != in_scope:
                step = 1 if now_scope else -1
                scope[idx] += step
                scope_e[idx] += step * est
                in_scope = now_scope
            if now_done != was_done:
                step = 1 if now_done else -1
                done[idx] += step
                done_e[idx] += step * est
                was_done = now_done
    by_day = {s["day"]: s for s in snapshots}
    points: list[BurnupPoint] = []
    s = d = 0
    se = de = 0.0
    for i in range(n):
        s += scope[i]
        d += done[i]
        se += scope_e[i]
        de += done_e[i]
        day = first + timedelta(days=i)
        snap = by_day.get(day.isoformat())
        if snap is not None:
            points.append(
                BurnupPoint(
                    day,
                    int(snap["total"] - snap["cancelled"]),
                    int(snap["done"]),
                    round(float(snap["estimate_total"]), 2),
                    round(float(snap["estimate_done"]), 2),
                    "snapshot",
                )
            )
        else:
            points.append(BurnupPoint(day, s, d, round(se, 2), round(de, 2), "history"))
    return points
