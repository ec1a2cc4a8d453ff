"""The Monte Carlo's search for the day each goal is reached, against a brute-force scan."""

from __future__ import annotations

import numpy as np
import pytest

from sync import forecast as fc


@pytest.mark.parametrize("seed", range(5))
def test_first_days_match_a_scan_of_every_trial(seed: int) -> None:
    rng = np.random.default_rng(seed)
    trials, width, max_days = 40, 25, 60
    cum = np.cumsum(rng.integers(0, 4, size=(trials, width)), axis=1) + rng.integers(
        0, 9, size=(trials, 1)
    )
    goals = np.array([0, 3, 10, 10, 30, 95], dtype=np.int64)
    out = np.full((trials + 5, goals.size), max_days + 1, dtype=np.int64)
    out[:, goals <= 0] = 0
    out[7, 2] = 4  # reached in an earlier block: kept
    rows = np.arange(5, trials + 5)
    expected = out.copy()
    for t in range(trials):
        for k, goal in enumerate(goals):
            if goal <= 0 or expected[rows[t], k] <= max_days:
                continue
            reached = np.flatnonzero(cum[t] >= goal)
            if reached.size:
                expected[rows[t], k] = 30 + reached[0] + 1
    fc._first_days(cum.copy(), goals, int(goals.max()), out, rows, 30, max_days)
    assert np.array_equal(out, expected)
    assert (out[:, 5] == max_days + 1).any() and (out[:, 1] <= max_days).any()
