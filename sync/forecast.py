"""Monte Carlo completion forecast on recent daily throughput (research peers-and-anchors §2.8).

Each trial draws days, with replacement, from the daily throughput of the window (items
completed per calendar day, zero days included) until the remaining items are done; the
trial's answer is the number of days that took. The percentile dates and the probability of
finishing by the target date are read off the trials. The generator is seeded, so the same
store always gives the same forecast.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

TRIALS = 10_000
SEED = 20_260_901
# The simulation gives up after ten years: "not within ten years" is answer enough.
MAX_DAYS = 3_650
# Fewer completions than this in the window is too little history to forecast from.
MIN_COMPLETED = 3
# A window shorter than a week misses the weekly rhythm (weekends) of the team.
MIN_WINDOW_DAYS = 7


@dataclass(frozen=True)
class Simulation:
    """The outcome of one forecast run; dates are None when no answer could be given."""

    window_start: date
    window_end: date
    completed_in_window: int
    remaining: int
    throughput_per_day: float
    p50: date | None
    p85: date | None
    p95: date | None
    probability_by_target: float | None
    # Why there is no answer: "too_little_history", "short_window", "nothing_left",
    # "beyond_horizon" (some percentile is more than MAX_DAYS away), or None.
    reason: str | None


def daily_throughput(days: Iterable[date], start: date, end: date) -> list[int]:
    """Return the number of completions on each day from `start` to `end` (inclusive)."""
    if end < start:
        return []
    per_day = Counter(d for d in days if start <= d <= end)
    return [per_day.get(start + timedelta(n), 0) for n in range((end - start).days + 1)]


def simulate(
    samples: Sequence[int],
    remaining: int,
    *,
    trials: int = TRIALS,
    seed: int = SEED,
    max_days: int = MAX_DAYS,
) -> np.ndarray:
    """Return, per trial, the days needed to finish `remaining` items (max_days + 1: never)."""
    return simulate_many(samples, [remaining], trials=trials, seed=seed, max_days=max_days)[:, 0]


def simulate_many(
    samples: Sequence[int],
    thresholds: Sequence[int],
    *,
    trials: int = TRIALS,
    seed: int = SEED,
    max_days: int = MAX_DAYS,
) -> np.ndarray:
    """Return a (trials, len(thresholds)) array: the days each trial needs to reach each
    cumulative number of completed items (0 for a threshold of 0; max_days + 1: never).

    One run serves the project and all its milestones (worked in due-date order). Days are
    drawn in blocks per chunk of trials, so memory stays bounded whatever the scope.
    """
    import numpy as np  # imported here: the CLI should start without it

    goals = np.asarray(thresholds, dtype=np.int64)
    out = np.full((trials, goals.size), max_days + 1, dtype=np.int64)
    out[:, goals <= 0] = 0
    pool = np.asarray(samples, dtype=np.int64)
    if not pool.size or pool.sum() <= 0 or goals.size == 0 or goals.max() <= 0:
        return out
    rng = np.random.default_rng(seed)
    expected = float(goals.max()) / float(pool.mean())
    top = int(goals.max())
    chunk = 2_000
    for lo in range(0, trials, chunk):
        n = min(chunk, trials - lo)
        done = np.zeros(n, dtype=np.int64)
        left = np.arange(n)
        day = 0
        while left.size and day < max_days:
            block = int(min(expected * 1.5 + 16, max_days - day, 4_000_000 // left.size))
            block = max(block, 1)
            cum = pool[rng.integers(0, pool.size, size=(left.size, block))]
            np.cumsum(cum, axis=1, out=cum)
            cum += done[left, None]
            done[left] = cum[:, -1]
            _first_days(cum, goals, top, out, lo + left, day, max_days)
            left = left[done[left] < top]
            day += block
    return out


def _first_days(
    cum: np.ndarray,
    goals: np.ndarray,
    top: int,
    out: np.ndarray,
    rows: np.ndarray,
    day: int,
    max_days: int,
) -> None:
    """Record, for each row of `cum` (running totals, one row per trial) and goal not yet
    reached, the day it is reached in this block.

    Each row only grows, so capped at the largest goal and lifted by row number * (cap + 1)
    all rows form one sorted array: one `searchsorted` finds every (row, goal) at once.
    `cum` is overwritten.
    """
    import numpy as np

    width = cum.shape[1]
    np.minimum(cum, top, out=cum)
    lift = np.arange(cum.shape[0], dtype=np.int64) * (top + 1)
    cum += lift[:, None]
    wanted = goals > 0
    at = np.searchsorted(cum.ravel(), (lift[:, None] + goals[None, wanted]).ravel())
    at = at.reshape(cum.shape[0], -1) - (np.arange(cum.shape[0]) * width)[:, None]
    mine = out[rows][:, wanted]
    new = (at < width) & (mine > max_days)
    mine[new] = day + at[new] + 1
    block = out[rows]
    block[:, wanted] = mine
    out[rows] = block


def percentile_days(days: np.ndarray, q: float) -> int:
    """Return the smallest trial length that at least `q` of the trials finished within."""
    import numpy as np

    ordered = np.sort(days)
    index = max(math.ceil(q * ordered.size) - 1, 0)
    return int(ordered[index])


def window_start(window_end: date, window_weeks: int, earliest: date | None = None) -> date:
    """The first day of the throughput window: `window_weeks` weeks back, cut at `earliest`."""
    start = window_end - timedelta(days=7 * window_weeks - 1)
    return earliest if earliest is not None and earliest > start else start


def forecast(
    completion_days: Iterable[date],
    remaining: int,
    *,
    window_end: date,
    window_weeks: int,
    earliest: date | None = None,
    target: date | None = None,
    trials: int = TRIALS,
    seed: int = SEED,
) -> Simulation:
    """Forecast the completion date of `remaining` items after `window_end`.

    `completion_days` are the local days items were completed; the window is the
    `window_weeks` weeks ending at `window_end`, cut at `earliest` (the project's start).
    """
    start = window_start(window_end, window_weeks, earliest)
    samples = daily_throughput(completion_days, start, window_end)
    return forecast_samples(
        samples,
        remaining,
        window_start=start,
        window_end=window_end,
        target=target,
        trials=trials,
        seed=seed,
    )


def forecast_samples(
    samples: Sequence[int],
    remaining: int,
    *,
    window_start: date,
    window_end: date,
    target: date | None = None,
    trials: int = TRIALS,
    seed: int = SEED,
) -> Simulation:
    """`forecast` from the window's daily throughput (`daily_throughput`) itself."""
    start = window_start
    completed = sum(samples)
    mean = round(completed / len(samples), 2) if samples else 0.0

    def answer(reason: str | None, **dates: date | float | None) -> Simulation:
        return Simulation(
            window_start=start,
            window_end=window_end,
            completed_in_window=completed,
            remaining=remaining,
            throughput_per_day=mean,
            p50=dates.get("p50"),  # type: ignore[arg-type]
            p85=dates.get("p85"),
            p95=dates.get("p95"),  # type: ignore[arg-type]
            probability_by_target=dates.get("probability"),  # type: ignore[arg-type]
            reason=reason,
        )

    if remaining <= 0:
        return answer("nothing_left", probability=None if target is None else 1.0)
    if len(samples) < MIN_WINDOW_DAYS:
        return answer("short_window")
    if completed < MIN_COMPLETED:
        return answer("too_little_history")
    import numpy as np

    days = simulate(samples, remaining, trials=trials, seed=seed)
    dates: dict[str, date | float | None] = {}
    beyond = False
    for name, q in (("p50", 0.50), ("p85", 0.85), ("p95", 0.95)):
        n = percentile_days(days, q)
        if n > MAX_DAYS:
            beyond = True
            dates[name] = None
        else:
            dates[name] = window_end + timedelta(days=n)
    if target is not None:
        allowed = (target - window_end).days
        dates["probability"] = round(float(np.count_nonzero(days <= allowed)) / days.size, 4)
    return answer("beyond_horizon" if beyond else None, **dates)
