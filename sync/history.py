"""What the store knows about the past: item timelines, states at an instant, the burn-up.

A timeline is the item's category over time, oldest first, as `(at, category, status)`:
from the tool's transitions where they exist (or those the store observed between syncs),
otherwise from `created_at` and `completed_at` (or `updated_at` for a closed item without a
completion time). An unknown creation time counts as "always existed". The burn-up is
rebuilt from the timelines for every day and replaced by the stored daily snapshot on the
days that have one, so a first report already has a chart.

The rules are written twice, on purpose: once per item (`ItemRow`, `build_timeline`,
`state_at`: the readable reference, and what tests pin), and once in columns for the report
builder (`load_table`, `build_timelines`, `Timelines.positions`, `burnup_deltas`), which
keeps every item's timeline in a few numpy arrays so that 100k items cost a few vectorised
passes instead of a million Python calls. `tests/test_report_history.py` checks that the two
agree step for step on random histories, out-of-order ones included.

Timestamps in the columnar form are microseconds since 1970 (UTC) in int64; `MISSING`
(numpy's NaT) marks none, `ALWAYS_US` is `ALWAYS`. Dates are days since 1970-01-01.
"""

from __future__ import annotations

import json
import warnings
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from sync.errors import StoreError
from sync.model import StatusCategory
from sync.store import Store

ALWAYS = datetime.min.replace(tzinfo=UTC)
DONE = StatusCategory.DONE
CANCELLED = StatusCategory.CANCELLED
TODO = StatusCategory.TODO
IN_PROGRESS = StatusCategory.IN_PROGRESS
_CATEGORIES = {c.value: c for c in StatusCategory}

Timeline = list[tuple[datetime, StatusCategory, str]]


# -- one item at a time: the reference -------------------------------------------------------


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
    day, moment, loads = date.fromisoformat, datetime.fromisoformat, json.loads
    cur = store.conn.execute(sql, list(sources))
    cur.row_factory = None
    for (
        src,
        id_,
        key,
        url,
        title,
        kind,
        status,
        cat,
        assignee,
        labels,
        parent,
        milestone,
        start,
        due,
        created,
        updated,
        completed,
        estimate,
        blocked,
        gone,
    ) in cur:
        row = ItemRow(
            src,
            id_,
            key,
            url,
            title,
            kind,
            status,
            _CATEGORIES[cat],
            assignee,
            loads(labels),
            parent,
            milestone,
            start and day(start),
            due and day(due),
            created and moment(created),
            updated and moment(updated),
            completed and moment(completed),
            estimate,
            bool(blocked),
            gone and moment(gone),
        )
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


# -- days in the project's zone ---------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
MISSING = int(np.iinfo(np.int64).min)  # numpy's NaT: no such timestamp or date
ALWAYS_US = (ALWAYS - EPOCH) // _US
_DAY0 = date(1970, 1, 1).toordinal()


def to_us(value: datetime) -> int:
    """Microseconds since 1970 of an aware datetime."""
    return (value - EPOCH) // _US


def from_us(value: int) -> datetime:
    """The UTC datetime of `to_us`'s number (`ALWAYS` for `ALWAYS_US`)."""
    return ALWAYS if value == ALWAYS_US else EPOCH + timedelta(0, 0, int(value))


def from_days(value: int) -> date:
    """The date of a day number (days since 1970-01-01)."""
    return date.fromordinal(int(value) + _DAY0)


def local_day(value: datetime, zone: ZoneInfo) -> date:
    return value.astimezone(zone).date()


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """Return the first instant of `day` in `zone`, in UTC."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


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
        self.midnights_us = np.array([to_us(m) for m in self.midnights], dtype=np.int64)

    def index(self, at: datetime) -> int:
        """Days from `first` to the local day of `at` (negative before it)."""
        i = bisect_right(self.midnights, at) - 1
        if 0 <= i < len(self.midnights) - 1:
            return i
        return (local_day(at, self.zone) - self.first).days

    def day(self, at: datetime) -> date:
        return self.first + timedelta(days=self.index(at))

    def indices(self, at: np.ndarray) -> np.ndarray:
        """`index` of many microsecond timestamps, clamped: -1 before `first`, and
        `last - first + 1` after `last` (callers that need exact days outside use `index`)."""
        i = np.searchsorted(self.midnights_us, at, side="right") - 1
        return np.clip(i, -1, self.midnights_us.size - 1)


# -- the same rules in columns: what the report builder runs ---------------------------------

# Category codes of the columnar form: CATS[code].
CATS = (TODO, IN_PROGRESS, DONE, CANCELLED)
C_TODO, C_IN_PROGRESS, C_DONE, C_CANCELLED = range(4)
# A step's status: an index into the transition texts, or one of these.
CURRENT = -1  # the item's status now
BLANK = -2  # "" (the implied first step of an item closed without history)


def _category_sql(column: str, unknown: int = -1) -> str:
    return (
        f"CASE {column} WHEN 'todo' THEN 0 WHEN 'in_progress' THEN 1 WHEN 'done' THEN 2"
        f" WHEN 'cancelled' THEN 3 ELSE {unknown} END"
    )


def _moments(column: str) -> np.ndarray:
    """A JSON array of ISO timestamps (or null) as microseconds (MISSING for null).

    The store writes `isoformat()` of UTC datetimes: without the "+00:00" numpy parses them
    in one call; any other spelling goes through Python's parser, one value at a time.
    """
    try:
        plain = json.loads(column.replace('+00:00"', '"').replace("null", '"NaT"'))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy only warns about a remaining offset
            return np.array(plain, dtype="datetime64[us]").astype(np.int64)
    except (ValueError, UserWarning, DeprecationWarning):
        pass
    out = []
    for text in json.loads(column):
        if not text:
            out.append(MISSING)
            continue
        value = datetime.fromisoformat(text)
        out.append(to_us(value if value.tzinfo else value.replace(tzinfo=UTC)))
    return np.array(out, dtype=np.int64)


def _days(column: str) -> np.ndarray:
    """A JSON array of ISO dates (or null) as day numbers (MISSING for null)."""
    texts = json.loads(column)
    try:
        return np.array([t or "NaT" for t in texts], dtype="datetime64[D]").astype(np.int64)
    except ValueError:
        return np.array(
            [date.fromisoformat(t).toordinal() - _DAY0 if t else MISSING for t in texts],
            dtype=np.int64,
        )


def _columns(store: Store, sql: str, args: Sequence[Any]) -> list[str]:
    """Run `SELECT json_group_array(a), json_group_array(b), ... FROM ...`: one JSON array
    per column. Far cheaper than a row per item: no tuple per row, no transposing."""
    return list(store.conn.execute(sql, list(args)).fetchone())


def _ints(column: str) -> np.ndarray:
    return np.array(json.loads(column), dtype=np.int64)


def _codes(values: Iterable[int] | np.ndarray, what: str) -> np.ndarray:
    out = (
        np.asarray(values).astype(np.int8)
        if isinstance(values, np.ndarray)
        else (np.fromiter(values, dtype=np.int8))
    )
    if (out < 0).any():
        raise StoreError(
            f"the store holds an unknown {what}; run `pmsync sync --full` to rewrite it"
        )
    return out


@dataclass(eq=False)
class ItemTable:
    """Every item of some sources, live and tombstoned, as columns in store order."""

    rowid: np.ndarray  # int64
    source: np.ndarray  # index into the sources asked for
    category: np.ndarray  # code into CATS
    kind: Sequence[str]
    labels: Sequence[str | None]  # the JSON list, None for no labels
    blocked: np.ndarray  # bool
    estimate: np.ndarray  # float64, NaN for none
    created: np.ndarray  # µs or MISSING
    updated: np.ndarray
    completed: np.ndarray
    deleted: np.ndarray  # MISSING: live
    due: np.ndarray  # day number or MISSING
    start: np.ndarray
    milestone: Sequence[str | None]
    parent: Sequence[str | None]
    # The newest `last_seen_at` of each source (what a report says when no sync run is
    # recorded), read in the same scan.
    last_seen: Sequence[str | None] = ()

    def __len__(self) -> int:
        return int(self.rowid.size)


def load_table(store: Store, sources: Sequence[str]) -> ItemTable:
    """Read the columns the report needs of every item of `sources`, in one query.

    Titles, keys and the other display fields stay in the store until an item is listed
    (`load_display`): most items of a big project are only counted.
    """
    which = " ".join(f"WHEN ? THEN {n}" for n in range(len(sources)))
    columns = (
        "rowid",
        f"CASE source {which} END" if len(sources) > 1 else "0",
        # The category code, and 4 more for a flagged item: one column fewer to read.
        f"({_category_sql('category', -8)}) + 4 * blocked",
        "kind",
        "NULLIF(labels, '[]')",
        _EXACT_ESTIMATE,
        "created_at",
        "updated_at",
        "completed_at",
        "deleted_at",
        "due_date",
        "start_date",
        "milestone_id",
        "parent_id",
    )
    seen = ["max(CASE WHEN source = ? THEN last_seen_at END)" for _ in sources]
    cols = _columns(
        store,
        f"SELECT {', '.join([*(f'json_group_array({c})' for c in columns), *seen])}"
        f" FROM items WHERE +source IN ({', '.join('?' * len(sources))})",
        [*(sources if len(sources) > 1 else ()), *sources, *sources],
    )
    category = np.array(json.loads(cols[2]), dtype=np.int64)
    estimate = json.loads(cols[5])
    if "inexact" in estimate:
        # SQLite writes reals in JSON with 15 digits: read these few exactly, as rows.
        cur = store.conn.execute(
            f"SELECT estimate FROM items WHERE +source IN ({', '.join('?' * len(sources))})",
            list(sources),
        )
        estimate = [row[0] for row in cur]
    return ItemTable(
        rowid=_ints(cols[0]),
        source=_ints(cols[1]),
        category=_codes(category % 4 - 8 * (category < 0), "status category"),
        kind=json.loads(cols[3]),
        labels=json.loads(cols[4]),
        blocked=category >= 4,
        estimate=np.array(estimate, dtype=np.float64),
        created=_moments(cols[6]),
        updated=_moments(cols[7]),
        completed=_moments(cols[8]),
        deleted=_moments(cols[9]),
        due=_days(cols[10]),
        start=_days(cols[11]),
        milestone=json.loads(cols[12]),
        parent=json.loads(cols[13]),
        last_seen=cols[14:],
    )


# A real that JSON's 15 digits would not give back exactly becomes "inexact" (whole
# numbers, the usual estimates, are exact: tested first, as that test is cheap).
_EXACT_ESTIMATE = (
    "CASE WHEN estimate IS NULL OR estimate = CAST(estimate AS INTEGER)"
    " OR CAST(CAST(estimate AS TEXT) AS REAL) = estimate THEN estimate ELSE 'inexact' END"
)


@dataclass(eq=False)
class TransitionTable:
    """Every stored transition of some sources as columns, oldest first (as `load_transitions`)."""

    item: np.ndarray  # the item's rowid, -1 if the store has no such item
    at: np.ndarray  # µs
    from_status: Sequence[str | None]
    to_status: Sequence[str]
    from_category: np.ndarray  # code; TODO where the tool gave none
    to_category: np.ndarray


def load_transition_table(store: Store, sources: Sequence[str]) -> TransitionTable:
    # The query of `load_transitions` (SQLite's sort keeps equal times in scan order), with
    # the item's rowid in place of its source and id.
    inner = (
        "SELECT ifnull((SELECT i.rowid FROM items i WHERE i.source = t.source"
        " AND i.id = t.item_id), -1) AS item, at, from_status, to_status,"
        f" {_category_sql('ifnull(from_category, ' + repr('todo') + ')')} AS fc,"
        f" {_category_sql('to_category')} AS tc"
        f" FROM transitions t WHERE source IN ({', '.join('?' * len(sources))}) ORDER BY at"
    )
    names = ("item", "at", "from_status", "to_status", "fc", "tc")
    cols = _columns(
        store,
        f"SELECT {', '.join(f'json_group_array({c})' for c in names)} FROM ({inner})",
        sources,
    )
    return TransitionTable(
        item=_ints(cols[0]),
        at=_moments(cols[1]),
        from_status=json.loads(cols[2]),
        to_status=json.loads(cols[3]),
        from_category=_codes(json.loads(cols[4]), "status category"),
        to_category=_codes(json.loads(cols[5]), "status category"),
    )


def load_display(
    store: Store,
    rowids: Sequence[int],
    names: Sequence[str] = ("key", "url", "title", "status", "assignee"),
) -> dict[int, tuple[Any, ...]]:
    """Return the `names` columns (default: what an item reference shows) of items by rowid."""
    names = ("rowid", *names)
    cols = _columns(
        store,
        f"SELECT {', '.join(f'json_group_array({c})' for c in names)} FROM items"
        " WHERE rowid IN (SELECT value FROM json_each(?))",
        [json.dumps([int(r) for r in rowids])],
    )
    values = [json.loads(c) for c in cols]
    return dict(zip(values[0], zip(*values[1:], strict=True), strict=True))


@dataclass(eq=False)
class Timelines:
    """Every item's timeline (`build_timeline`) in flat arrays, steps in the same order.

    Item i owns steps `off[i]` to `off[i] + size[i] - 1`. `status` is an index into the
    transition texts, CURRENT or BLANK; `run[p]` is the first step of the run of equal
    categories that step p ends, so `at[run[p]]` is "since" of the state at step p.
    """

    off: np.ndarray
    size: np.ndarray
    at: np.ndarray
    cat: np.ndarray
    status: np.ndarray
    run: np.ndarray

    def positions(self, at: int) -> np.ndarray:
        """Return the step of each item's state at `at`, -1 where it did not exist yet.

        This is `state_at` for every item at once, bisection included, so a timeline whose
        steps are out of time order (a completion time after a later done step) gives the
        reference answer too.
        """
        last = self.off + self.size - 1
        out = last.copy()
        pending = np.flatnonzero(self.at[last] > at)
        if not pending.size:
            return out
        base = self.off[pending]
        lo = np.zeros(pending.size, dtype=np.int64)
        hi = self.size[pending].copy()
        active = lo < hi
        while active.any():
            mid = (lo + hi) // 2
            left = at < self.at[base + np.minimum(mid, self.size[pending] - 1)]
            hi = np.where(active & left, mid, hi)
            lo = np.where(active & ~left, mid + 1, lo)
            active = lo < hi
        out[pending] = np.where(lo > 0, base + lo - 1, -1)
        return out


def build_timelines(
    created: np.ndarray,
    updated: np.ndarray,
    completed: np.ndarray,
    category: np.ndarray,
    steps: Transitions,
) -> Timelines:
    """Build every item's timeline at once, by the rules of `build_timeline`.

    `created` holds ALWAYS_US for an unknown creation time; `steps` are the transitions of
    these items (`Transitions.item` in 0..n-1).
    """
    n = created.size
    t_item = steps.item
    k = np.bincount(t_item, minlength=n).astype(np.int64)
    first = np.cumsum(k) - k
    has = k > 0
    closed = np.where(completed != MISSING, completed, updated)
    ended = (category == C_DONE) | (category == C_CANCELLED)
    two = ~has & ended & (closed != MISSING) & (closed > created)
    extra = np.zeros(n, dtype=bool)
    if t_item.size:
        extra[has] = steps.to_category[first[has] + k[has] - 1] != category[has]
    size = np.where(has, 1 + k + extra, 1 + two).astype(np.int64)
    off = np.cumsum(size) - size
    total = int(size.sum())
    at = np.empty(total, dtype=np.int64)
    cat = np.empty(total, dtype=np.int8)
    status = np.empty(total, dtype=np.int64)
    # Without history: created, then closed if the item is done or cancelled.
    plain = ~has
    p = off[plain]
    at[p] = created[plain]
    cat[p] = np.where(two[plain], C_TODO, category[plain])
    status[p] = np.where(two[plain], BLANK, CURRENT)
    p = off[two] + 1
    at[p] = closed[two]
    cat[p] = category[two]
    status[p] = CURRENT
    if t_item.size:
        # With history: the first transition's origin, every transition, and the step to
        # the current category if the history does not end there.
        h = np.flatnonzero(has)
        f = first[h]
        at[off[h]] = np.minimum(created[h], steps.at[f])
        cat[off[h]] = steps.from_category[f]
        status[off[h]] = steps.from_status[f]
        p = off[t_item] + 1 + (np.arange(t_item.size) - first[t_item])
        at[p] = steps.at
        cat[p] = steps.to_category
        status[p] = steps.to_status
        e = np.flatnonzero(extra)
        last = steps.at[first[e] + k[e] - 1]
        up = updated[e]
        p = off[e] + 1 + k[e]
        at[p] = np.maximum(np.where(up != MISSING, up, last), last)
        cat[p] = category[e]
        status[p] = CURRENT
    new_run = np.ones(total, dtype=bool)
    new_run[1:] = cat[1:] != cat[:-1]
    new_run[off] = True
    run = np.maximum.accumulate(np.where(new_run, np.arange(total), 0))
    if t_item.size:
        # The tool's completion time starts the final done run (after the step before it).
        c = np.flatnonzero(has & (category == C_DONE) & (completed != MISSING))
        i = run[off[c] + size[c] - 1]
        ok = (i > off[c]) & (completed[c] >= at[np.maximum(i - 1, 0)])
        at[i[ok]] = completed[c][ok]
    return Timelines(off, size, at, cat, status, run)


@dataclass(eq=False)
class Transitions:
    """Transitions of the items of one `build_timelines` call, grouped by item, oldest first."""

    item: np.ndarray  # the item's index
    at: np.ndarray
    from_category: np.ndarray
    to_category: np.ndarray
    from_status: np.ndarray  # index into the status texts
    to_status: np.ndarray

    @classmethod
    def of(cls, table: TransitionTable, rowids: np.ndarray) -> tuple[Transitions, list[Any]]:
        """Select the transitions of the items with `rowids` (item i has rowids[i]).

        Returns them and the status texts their `from_status`/`to_status` index into.
        """
        order = np.argsort(rowids, kind="stable")
        ranked = rowids[order]
        j = np.minimum(np.searchsorted(ranked, table.item), max(ranked.size - 1, 0))
        found = ranked[j] == table.item if ranked.size else np.zeros(table.item.size, bool)
        keep = np.flatnonzero(found)
        item = order[j[keep]]
        # A stable sort keeps the table's time order within each item.
        by_item = np.argsort(item, kind="stable")
        o = keep[by_item]
        count = table.item.size
        texts = [*table.from_status, *table.to_status]
        return (
            cls(
                item=item[by_item],
                at=table.at[o],
                from_category=table.from_category[o],
                to_category=table.to_category[o],
                from_status=o,
                to_status=o + count,
            ),
            texts,
        )


# -- the burn-up ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BurnupPoint:
    day: date
    scope: int
    done: int
    scope_estimate: float
    done_estimate: float
    # "snapshot" (the stored daily count) or "history" (rebuilt from the timelines).
    basis: str


@dataclass(eq=False)
class BurnupDeltas:
    """Per day: how many items (and how much estimate) entered minus left scope and done."""

    scope: np.ndarray
    done: np.ndarray
    scope_estimate: np.ndarray
    done_estimate: np.ndarray


def burnup_deltas(
    tl: Timelines, members: np.ndarray, estimate: np.ndarray, step_days: np.ndarray, n: int
) -> BurnupDeltas:
    """Count each timeline step of the `members` items on its day (0..n-1).

    Scope is every item but cancelled ones. `step_days` gives each step's day from the
    chart's first day (a step before it counts from the start; one on or after day n, and
    everything after it in that timeline, is left out); `estimate` is per item, 0 for none.
    Estimates are summed in item and step order, as a loop over the items would.
    """
    chosen = np.zeros(tl.size.size, dtype=bool)
    chosen[members] = True
    s = np.flatnonzero(np.repeat(chosen, tl.size))
    owner = np.repeat(np.arange(tl.size.size), tl.size)[s]
    first = s == tl.off[owner]
    days = step_days[s]
    beyond = days >= n
    # Left out: a step at or after the first one beyond the chart, within its timeline.
    seen = np.cumsum(beyond)
    group = np.cumsum(first) - 1
    before = (seen - beyond)[first]
    keep = (seen - before[group]) == 0
    days = np.maximum(days, 0)
    cats = tl.cat[s]
    est = estimate[owner]
    out = []
    for now in (cats != C_CANCELLED, cats == C_DONE):
        prev = np.zeros_like(now)
        prev[1:] = now[:-1]
        prev[first] = False
        step = now.astype(np.int64) - prev.astype(np.int64)
        up = keep & (step > 0)
        down = keep & (step < 0)
        count = np.bincount(days[up], minlength=n) - np.bincount(days[down], minlength=n)
        moved = keep & (step != 0)
        weight = np.bincount(days[moved], weights=step[moved] * est[moved], minlength=n)
        out += [count[:n], weight[:n]]
    return BurnupDeltas(out[0], out[2], out[1], out[3])


def burnup_points(
    deltas: BurnupDeltas, snapshots: Iterable[dict[str, Any]], first: date
) -> list[BurnupPoint]:
    """Return the daily series from `first`: running totals, or the stored snapshot of a day."""
    by_day = {s["day"]: s for s in snapshots}
    scope = np.cumsum(deltas.scope).tolist()
    done = np.cumsum(deltas.done).tolist()
    scope_e = np.cumsum(deltas.scope_estimate).tolist()
    done_e = np.cumsum(deltas.done_estimate).tolist()
    points: list[BurnupPoint] = []
    for i in range(len(scope)):
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
            points.append(
                BurnupPoint(
                    day, scope[i], done[i], round(scope_e[i], 2), round(done_e[i], 2), "history"
                )
            )
    return points
