"""The communication plan (DESIGN §8): when a project's report is due, and for which period.

A project's `schedule` is a cron expression read on the wall clock of its `timezone`, so
`0 9 * * MON` fires at 09:00 local time every Monday, in summer and in winter. Cron slots are
computed on naive local times and then placed in the zone: a slot that falls into the hour
skipped when clocks go forward fires at the same wall-clock offset after the change (02:30
becomes 03:30); a slot in the hour repeated when clocks go back fires once, at its first
occurrence.

The period of a slot is a run of whole days in the project's zone:

- it ends on the slot's own date when the slot is at 12:00 or later (an afternoon report
  covers its day), otherwise on the day before (a morning report covers up to yesterday);
- it starts the day after the period of the slots before ended, so periods tile the
  calendar: `0 9 * * MON` gives Monday..Sunday of the past week, `0 17 * * FRI` Saturday..
  Friday, `0 9 1 * *` the previous calendar month, `0 9 * * MON-FRI` one day (three on
  Mondays: Friday..Sunday). Slots whose periods end on the same day share one period
  (`0 9,10 * * MON` publishes the past week at 09:00 and updates it at 10:00; an hourly
  plan publishes yesterday's report in the morning and today's from noon, each updated in
  place through the day).

A target is due when the latest slot (≤ now) has no publication to that target for that
slot's period recorded at or after the slot. Only the latest slot counts: a run that missed
three Mondays publishes one report, for the latest week.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterError, croniter

from config.schema import Config, ProjectSettings
from sync.errors import ConfigError
from sync.store import Store

NOON = time(12, 0)
# Larger than any DST shift: slot searches start this far beyond `now` on the naive clock.
_SHIFT = timedelta(hours=3)
_MAX_STEPS = 100_000


@dataclass(frozen=True)
class Slot:
    """One scheduled time of a project's plan, and the report period it publishes."""

    at: datetime  # the slot in UTC
    local: datetime  # the slot on the project's wall clock (naive)
    start: date
    end: date

    @property
    def period_id(self) -> str:
        """The same id as `Report.period_id` for this period."""
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


def _to_utc(naive: datetime, zone: ZoneInfo) -> datetime:
    # fold=0: a repeated wall time is its first occurrence, a skipped one keeps the old offset.
    return naive.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _local(now: datetime, zone: ZoneInfo) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(zone).replace(tzinfo=None)


def _period_end(local: datetime) -> date:
    return local.date() if local.time() >= NOON else local.date() - timedelta(days=1)


def slot_period(expr: str, local: datetime) -> tuple[date, date]:
    """Return the (start, end) days of the period published by the slot at naive `local`."""
    end = _period_end(local)
    # The slots whose periods end on `end` lie from `end` 12:00 on; the one before them
    # ended the previous period.
    previous = croniter(expr, datetime.combine(end, NOON)).get_prev(datetime)
    return _period_end(previous) + timedelta(days=1), end


def _slot(expr: str, zone: ZoneInfo, local: datetime) -> Slot:
    start, end = slot_period(expr, local)
    return Slot(at=_to_utc(local, zone), local=local, start=start, end=end)


def _never(expr: str) -> ConfigError:
    return ConfigError(f"schedule {expr!r} never fires (no such date); fix the cron expression")


def last_slot(expr: str, zone: ZoneInfo, now: datetime) -> Slot:
    """Return the latest slot at or before `now`."""
    it = croniter(expr, _local(now, zone) + _SHIFT)
    try:
        for _ in range(_MAX_STEPS):
            local = it.get_prev(datetime)
            if _to_utc(local, zone) <= now:
                return _slot(expr, zone, local)
    except CroniterError:
        raise _never(expr) from None
    raise _never(expr)


def next_slot(expr: str, zone: ZoneInfo, now: datetime) -> Slot:
    """Return the first slot strictly after `now`."""
    it = croniter(expr, _local(now, zone) - _SHIFT)
    try:
        for _ in range(_MAX_STEPS):
            local = it.get_next(datetime)
            if _to_utc(local, zone) > now:
                return _slot(expr, zone, local)
    except CroniterError:
        raise _never(expr) from None
    raise _never(expr)


def project_last_slot(project: ProjectSettings, now: datetime) -> Slot | None:
    """The project's latest slot, or None when it has no schedule (publish on demand only)."""
    if not project.schedule:
        return None
    return last_slot(project.schedule, project.zone, now)


def is_due(slot: Slot, publication: dict[str, object] | None) -> bool:
    """True when `publication` (the target's row for the slot's period) predates the slot."""
    if publication is None:
        return True
    published_at = publication["published_at"]
    assert isinstance(published_at, datetime)
    return published_at < slot.at


def plan_status(
    config: Config, store: Store, now: datetime | None = None
) -> list[dict[str, object]]:
    """Per project: its schedule, the latest slot's period, which targets are due, the next slot."""
    from sync.publish import target_specs  # sync.publish imports this module

    now = now or datetime.now(UTC)
    out: list[dict[str, object]] = []
    for pid, project in config.projects.items():
        row: dict[str, object] = {
            "project": pid,
            "schedule": project.schedule,
            "timezone": project.timezone,
            "targets": [spec.id for spec in target_specs(project)],
            "period": None,
            "due": [],
            "next_due_at": None,
            "next_due_local": None,
            "next_period": None,
        }
        if project.schedule:
            try:
                last = last_slot(project.schedule, project.zone, now)
                nxt = next_slot(project.schedule, project.zone, now)
            except ConfigError as exc:
                row["error"] = str(exc)
                out.append(row)
                continue
            due = [
                spec.id
                for spec in target_specs(project)
                if is_due(last, store.publication(pid, spec.id, last.period_id))
            ]
            upcoming = last if due else nxt
            row.update(
                period=last.period_id,
                due=due,
                next_due_at=upcoming.at.isoformat(),
                next_due_local=f"{upcoming.local:%Y-%m-%d %H:%M} {project.timezone}",
                next_period=upcoming.period_id,
            )
        out.append(row)
    return out
