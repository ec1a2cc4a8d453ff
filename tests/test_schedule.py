"""The communication plan: cron slots in the project's zone, their periods, what is due."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from config.loader import parse_config
from sync.errors import ConfigError
from sync.schedule import Slot, is_due, last_slot, next_slot, plan_status, slot_period
from sync.store import Store

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def simulate(
    expr: str,
    zone: ZoneInfo,
    start: datetime,
    end: datetime,
    step: timedelta,
    published: dict[str, datetime] | None = None,
) -> list[Slot]:
    """Poll like cron does from `start` to `end`; return the slots that fired, in order.

    A fired slot records a publication for its period at the poll time, as `run` does.
    """
    published = {} if published is None else published
    fired = []
    now = start
    while now <= end:
        slot = last_slot(expr, zone, now)
        row = {"published_at": published[slot.period_id]} if slot.period_id in published else None
        if is_due(slot, row):
            published[slot.period_id] = now
            fired.append(slot)
        now += step
    return fired


def test_weekly_slot_is_monday_nine_local_and_covers_the_past_week() -> None:
    slot = last_slot("0 9 * * MON", BERLIN, utc(2026, 11, 25, 12, 0))
    assert slot.at == utc(2026, 11, 23, 8, 0)  # 09:00 CET
    assert slot.local == datetime(2026, 11, 23, 9, 0)
    assert (slot.start, slot.end) == (date(2026, 11, 16), date(2026, 11, 22))
    assert slot.period_id == "2026-11-16..2026-11-22"


def test_slot_at_exactly_now_counts_and_one_second_before_does_not() -> None:
    assert last_slot("0 9 * * MON", BERLIN, utc(2026, 11, 23, 8, 0)).at == utc(2026, 11, 23, 8, 0)
    assert last_slot("0 9 * * MON", BERLIN, utc(2026, 11, 23, 7, 59, 59)).at == utc(
        2026, 11, 16, 8, 0
    )


def test_weekly_schedule_across_autumn_dst_fires_once_a_week_at_nine_local() -> None:
    # Berlin leaves summer time on Sunday 2026-10-25; cron polled hourly, from
    # just after the 2026-10-05 report was published.
    published = {"2026-09-28..2026-10-04": utc(2026, 10, 5, 7, 1)}
    fired = simulate(
        "0 9 * * MON",
        BERLIN,
        utc(2026, 10, 5, 7, 20),
        utc(2026, 11, 10),
        timedelta(hours=1),
        published,
    )
    assert [s.at for s in fired] == [
        utc(2026, 10, 12, 7, 0),  # 09:00 CEST (UTC+2)
        utc(2026, 10, 19, 7, 0),
        utc(2026, 10, 26, 8, 0),  # 09:00 CET (UTC+1)
        utc(2026, 11, 2, 8, 0),
        utc(2026, 11, 9, 8, 0),
    ]
    assert {s.at.astimezone(BERLIN).strftime("%a %H:%M") for s in fired} == {"Mon 09:00"}
    assert [s.period_id for s in fired] == [
        "2026-10-05..2026-10-11",
        "2026-10-12..2026-10-18",
        "2026-10-19..2026-10-25",
        "2026-10-26..2026-11-01",
        "2026-11-02..2026-11-08",
    ]


def test_weekly_schedule_across_spring_dst_fires_once_a_week_at_nine_local() -> None:
    # Berlin enters summer time on Sunday 2027-03-28.
    published = {"2027-03-08..2027-03-14": utc(2027, 3, 15, 8, 0)}
    fired = simulate(
        "0 9 * * MON", BERLIN, utc(2027, 3, 16), utc(2027, 4, 6), timedelta(minutes=30), published
    )
    assert [s.at for s in fired] == [
        utc(2027, 3, 22, 8, 0),
        utc(2027, 3, 29, 7, 0),
        utc(2027, 4, 5, 7, 0),
    ]


def test_slot_in_the_skipped_spring_hour_fires_once_an_hour_later() -> None:
    # 02:30 does not exist on 2026-03-29 in Berlin: it fires at 03:30 CEST (01:30 UTC).
    published = {"2026-03-27..2026-03-27": utc(2026, 3, 28, 1, 31)}
    fired = simulate(
        "30 2 * * *",
        BERLIN,
        utc(2026, 3, 28, 12),
        utc(2026, 3, 30, 12),
        timedelta(minutes=10),
        published,
    )
    assert [s.at for s in fired] == [
        utc(2026, 3, 29, 1, 30),
        utc(2026, 3, 30, 0, 30),
    ]


def test_hourly_schedule_fires_once_per_wall_clock_slot_on_the_long_autumn_day() -> None:
    # 2026-10-25 has 25 hours in Berlin; 02:30 is on the clock twice but is one slot.
    expr = "30 * * * *"
    published = {"2026-10-24..2026-10-24": utc(2026, 10, 24, 21, 31)}
    fired = simulate(
        expr,
        BERLIN,
        utc(2026, 10, 24, 22, 0),
        utc(2026, 10, 25, 23, 0),
        timedelta(minutes=5),
        published,
    )
    assert len(fired) == 24
    assert len({s.at for s in fired}) == 24
    assert sum(1 for s in fired if s.local.hour == 2) == 1


def test_missed_slots_catch_up_once_with_the_latest_period() -> None:
    # The last publication was three weeks ago; this run only owes the latest week.
    published = {"2026-10-26..2026-11-01": utc(2026, 11, 2, 8, 5)}
    now = utc(2026, 11, 25, 15, 0)
    fired = simulate(
        "0 9 * * MON", BERLIN, now, now + timedelta(hours=6), timedelta(minutes=10), published
    )
    assert [s.period_id for s in fired] == ["2026-11-16..2026-11-22"]
    assert sorted(published) == ["2026-10-26..2026-11-01", "2026-11-16..2026-11-22"]


@pytest.mark.parametrize(
    ("expr", "local", "period"),
    [
        # Morning slots cover up to yesterday, afternoon slots include their day.
        ("0 9 * * MON", datetime(2026, 11, 23, 9, 0), (date(2026, 11, 16), date(2026, 11, 22))),
        ("0 17 * * FRI", datetime(2026, 11, 27, 17, 0), (date(2026, 11, 21), date(2026, 11, 27))),
        ("0 12 * * FRI", datetime(2026, 11, 27, 12, 0), (date(2026, 11, 21), date(2026, 11, 27))),
        ("59 11 * * FRI", datetime(2026, 11, 27, 11, 59), (date(2026, 11, 20), date(2026, 11, 26))),
        # Monthly: the previous calendar month.
        ("0 9 1 * *", datetime(2026, 3, 1, 9, 0), (date(2026, 2, 1), date(2026, 2, 28))),
        # Weekdays: Monday's report covers Friday to Sunday.
        ("0 9 * * MON-FRI", datetime(2026, 11, 23, 9, 0), (date(2026, 11, 20), date(2026, 11, 22))),
        ("0 9 * * MON-FRI", datetime(2026, 11, 24, 9, 0), (date(2026, 11, 23), date(2026, 11, 23))),
        # Slots whose periods end on the same day share the period.
        ("0 9,10 * * MON", datetime(2026, 11, 23, 10, 0), (date(2026, 11, 16), date(2026, 11, 22))),
        ("0 9,10 * * MON", datetime(2026, 11, 23, 9, 0), (date(2026, 11, 16), date(2026, 11, 22))),
        ("0 13,15 * * *", datetime(2026, 11, 24, 15, 0), (date(2026, 11, 24), date(2026, 11, 24))),
        ("0 * * * *", datetime(2026, 11, 24, 23, 0), (date(2026, 11, 24), date(2026, 11, 24))),
        ("0 * * * *", datetime(2026, 11, 24, 0, 0), (date(2026, 11, 23), date(2026, 11, 23))),
        ("0 8,16 * * *", datetime(2026, 11, 24, 16, 0), (date(2026, 11, 24), date(2026, 11, 24))),
        ("0 8,16 * * *", datetime(2026, 11, 24, 8, 0), (date(2026, 11, 23), date(2026, 11, 23))),
    ],
)
def test_slot_period(expr: str, local: datetime, period: tuple[date, date]) -> None:
    assert slot_period(expr, local) == period


def test_consecutive_periods_tile_the_calendar() -> None:
    fired = simulate(
        "0 9 * * MON,THU", BERLIN, utc(2026, 11, 1), utc(2026, 12, 1), timedelta(hours=1)
    )
    # The first poll catches up with Thursday 2026-10-29, then Mondays and Thursdays.
    assert [s.local.date().isoformat() for s in fired][:3] == [
        "2026-10-29",
        "2026-11-02",
        "2026-11-05",
    ]
    assert len(fired) == 10
    for before, after in itertools.pairwise(fired):
        assert after.start == before.end + timedelta(days=1)


def test_due_only_when_the_publication_predates_the_slot() -> None:
    slot = last_slot("0 9 * * MON", BERLIN, utc(2026, 11, 25))
    assert is_due(slot, None)
    assert is_due(slot, {"published_at": utc(2026, 11, 23, 7, 59)})
    assert not is_due(slot, {"published_at": utc(2026, 11, 23, 8, 0)})
    assert not is_due(slot, {"published_at": utc(2026, 11, 24, 8, 0)})


def test_next_slot_is_strictly_after_now() -> None:
    assert next_slot("0 9 * * MON", BERLIN, utc(2026, 11, 23, 8, 0)).at == utc(2026, 11, 30, 8, 0)
    nxt = next_slot("0 9 * * MON", BERLIN, utc(2026, 10, 20))
    assert nxt.at == utc(2026, 10, 26, 8, 0)
    assert nxt.period_id == "2026-10-19..2026-10-25"


def test_a_schedule_that_never_fires_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        last_slot("0 0 30 2 *", BERLIN, utc(2026, 11, 25))
    assert str(err.value) == (
        "schedule '0 0 30 2 *' never fires (no such date); fix the cron expression"
    )
    with pytest.raises(ConfigError):
        next_slot("0 0 30 2 *", BERLIN, utc(2026, 11, 25))


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        last_slot("0 9 * * MON", BERLIN, datetime(2026, 11, 23, 9))


def test_plan_status_shows_due_targets_and_next_due_time(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.csv").write_text("key,title\nA-1,One\n")
    raw = {
        "sources": {"exp": {"kind": "csv", "path": "a.csv"}},
        "projects": {
            "acme": {
                "name": "ACME",
                "sources": ["exp"],
                "schedule": "0 9 * * MON",
                "timezone": "Europe/Berlin",
                "publish": [
                    {"to": "file", "directory": "out"},
                    {"to": "file", "directory": "out2", "formats": ["md"]},
                ],
            },
            "adhoc": {"name": "Ad hoc", "sources": ["exp"]},
        },
    }
    config = parse_config(raw, label="t.toml", base_dir=tmp_path)
    store = Store.memory()
    now = utc(2026, 11, 25, 12)
    store.record_publication(
        "acme", "file", "2026-11-16..2026-11-22", "x", "sha256:1", None, at=utc(2026, 11, 23, 8, 1)
    )
    plan = plan_status(config, store, now)
    assert plan[0] == {
        "project": "acme",
        "schedule": "0 9 * * MON",
        "timezone": "Europe/Berlin",
        "targets": ["file", "file#2"],
        "period": "2026-11-16..2026-11-22",
        "due": ["file#2"],
        "next_due_at": "2026-11-23T08:00:00+00:00",
        "next_due_local": "2026-11-23 09:00 Europe/Berlin",
        "next_period": "2026-11-16..2026-11-22",
    }
    store.record_publication(
        "acme", "file#2", "2026-11-16..2026-11-22", "y", "sha256:2", None, at=now
    )
    plan = plan_status(config, store, now)
    assert plan[0]["due"] == []
    assert plan[0]["next_due_local"] == "2026-11-30 09:00 Europe/Berlin"
    assert plan[0]["next_period"] == "2026-11-23..2026-11-29"
    assert plan[1] == {
        "project": "adhoc",
        "schedule": None,
        "timezone": "UTC",
        "targets": [],
        "period": None,
        "due": [],
        "next_due_at": None,
        "next_due_local": None,
        "next_period": None,
    }
