"""Monte Carlo forecast: known answers, percentiles, determinism, too little history."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from sync import forecast as fc
from tests.test_report import END, C, at, build, config, item, project, store_with

C_END = date(2026, 11, 26)


def every_day(per_day: int, days: int = 42, end: date = C_END) -> list[date]:
    return [end - timedelta(days=n) for n in range(days) for _ in range(per_day)]


def test_daily_throughput_counts_each_day_in_the_window() -> None:
    days = [date(2026, 1, 1), date(2026, 1, 1), date(2026, 1, 3), date(2025, 12, 31)]
    assert fc.daily_throughput(days, date(2026, 1, 1), date(2026, 1, 4)) == [2, 0, 1, 0]
    assert fc.daily_throughput(days, date(2026, 1, 4), date(2026, 1, 1)) == []


def test_constant_throughput_has_a_known_answer() -> None:
    sim = fc.forecast(every_day(2), 20, window_end=C_END, window_weeks=6,
                      target=C_END + timedelta(days=10))  # fmt: skip
    assert sim.reason is None
    assert (sim.window_start, sim.window_end) == (C_END - timedelta(days=41), C_END)
    assert (sim.completed_in_window, sim.throughput_per_day, sim.remaining) == (84, 2.0, 20)
    assert sim.p50 == sim.p85 == sim.p95 == C_END + timedelta(days=10)
    assert sim.probability_by_target == 1.0
    late = fc.forecast(every_day(2), 20, window_end=C_END, window_weeks=6,
                       target=C_END + timedelta(days=9))  # fmt: skip
    assert late.probability_by_target == 0.0
    # 21 items at 2 a day need 11 days.
    assert fc.forecast(every_day(2), 21, window_end=C_END, window_weeks=6).p50 == (
        C_END + timedelta(days=11)
    )


def test_percentiles_of_a_random_throughput() -> None:
    # 3 items on every third day: one item needs n days with probability 1 - (2/3)^n,
    # so P50 = 2 days (0.56), P85 = 5 (0.87), P95 = 8 (0.96).
    days = [C_END - timedelta(days=n) for n in range(0, 42, 3) for _ in range(3)]
    sim = fc.forecast(days, 1, window_end=C_END, window_weeks=6,
                      target=C_END + timedelta(days=3))  # fmt: skip
    assert sim.throughput_per_day == 1.0
    assert (sim.p50, sim.p85, sim.p95) == (
        C_END + timedelta(days=2),
        C_END + timedelta(days=5),
        C_END + timedelta(days=8),
    )
    assert sim.probability_by_target is not None
    assert abs(sim.probability_by_target - (1 - (2 / 3) ** 3)) < 0.02


def test_the_same_input_gives_the_same_forecast() -> None:
    days = [C_END - timedelta(days=n) for n in range(0, 42, 3) for _ in range(3)]
    a = fc.forecast(days, 37, window_end=C_END, window_weeks=6, target=C_END + timedelta(40))
    b = fc.forecast(days, 37, window_end=C_END, window_weeks=6, target=C_END + timedelta(40))
    assert a == b
    samples = fc.daily_throughput(days, C_END - timedelta(41), C_END)
    assert np.array_equal(fc.simulate(samples, 37), fc.simulate(samples, 37))
    assert not np.array_equal(fc.simulate(samples, 37), fc.simulate(samples, 37, seed=1))


def test_simulate_uses_at_least_ten_thousand_trials() -> None:
    assert fc.TRIALS >= 10_000
    assert fc.simulate([1, 2], 5).shape == (fc.TRIALS,)


def test_simulate_many_matches_separate_runs_for_the_last_threshold() -> None:
    samples = [0, 1, 3, 0, 2]
    many = fc.simulate_many(samples, [0, 4, 9])
    assert many.shape == (fc.TRIALS, 3)
    assert (many[:, 0] == 0).all()
    assert (many[:, 1] <= many[:, 2]).all()
    assert np.array_equal(many[:, 2], fc.simulate(samples, 9))


def test_too_little_history_gives_no_dates_and_a_reason() -> None:
    sim = fc.forecast(every_day(1, days=2), 5, window_end=C_END, window_weeks=6)
    assert (sim.p50, sim.p85, sim.p95, sim.probability_by_target) == (None, None, None, None)
    assert (sim.reason, sim.completed_in_window) == ("too_little_history", 2)


def test_a_window_shorter_than_a_week_is_too_short() -> None:
    sim = fc.forecast(every_day(3, days=5), 5, window_end=C_END, window_weeks=6,
                      earliest=C_END - timedelta(days=4))  # fmt: skip
    assert sim.window_start == C_END - timedelta(days=4)
    assert (sim.reason, sim.p85) == ("short_window", None)


def test_nothing_left_to_do() -> None:
    sim = fc.forecast(every_day(1), 0, window_end=C_END, window_weeks=6, target=C_END)
    assert (sim.reason, sim.p50, sim.probability_by_target) == ("nothing_left", None, 1.0)


def test_beyond_the_horizon() -> None:
    sim = fc.forecast(every_day(1, days=3), 100_000, window_end=C_END, window_weeks=6,
                      trials=200)  # fmt: skip
    assert (sim.reason, sim.p50, sim.p95) == ("beyond_horizon", None, None)


def test_report_forecast_is_monte_carlo_on_the_projects_window() -> None:
    items = [item(f"D-{n}-{k}", C.DONE, completed_at=at(END - timedelta(days=n), 10))
             for n in range(14) for k in range(2)]  # fmt: skip
    items += [item(f"O-{n}") for n in range(14)]
    store = store_with(items)
    two_weeks = build(store, config(project(forecast_window_weeks=2)))
    f = two_weeks.forecast
    assert (f.method, f.trials, f.seed) == ("monte_carlo", fc.TRIALS, fc.SEED)
    assert (f.window_start, f.window_end) == (END - timedelta(days=13), END)
    assert (f.completed_in_window, f.throughput_per_day, f.remaining) == (28, 2.0, 14)
    assert f.p50 == f.p85 == f.p95 == END + timedelta(days=7)
    assert f.reason is None
    # The default six weeks include four idle weeks: slower, and no longer certain.
    six_weeks = build(store, config()).forecast
    assert six_weeks.throughput_per_day == round(28 / 42, 2)
    assert six_weeks.p50 is not None and six_weeks.p50 > END + timedelta(days=7)
    # Too little history in the report: a reason in words, and null dates in the JSON.
    sparse = store_with([item("D-1", C.DONE, completed_at=at(END)), item("O-1")])
    data = build(sparse, config()).model_dump(mode="json")["forecast"]
    assert (data["p50"], data["p85"], data["p95"], data["probability_by_target"]) == (
        None,
        None,
        None,
        None,
    )
    assert data["reason"] == (
        "too little history: 1 items completed in the last 42 days (at least 3 are needed)"
    )
