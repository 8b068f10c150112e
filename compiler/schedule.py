"""A campaign's WHEN -> its SchedulePlan, and a SchedulePlan + a time -> fire times and the occurrence a run
belongs to (all in the schedule's zone, placed the way Prefect fires them).

    schedule_plan(schedule)                  -> SchedulePlan (cron lines, an interval, an instant or an event)
    latest_fire(plan, as_of) / occurrence_of(plan, as_of) / wall_fires(plan, first, last)
    in_dates(plan, when), local_send_of(plan, occurrence_at)
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from dateutil.rrule import DAILY, FR, MO, SA, SU, TH, TU, WE, WEEKLY, rrule

from compiler.clock import fire_instant
from compiler.plan import SchedulePlan, dur_plan
from compiler.program import Schedule

CRON_DAYS = {"monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6, "sunday": 0}


def schedule_plan(s: Schedule) -> SchedulePlan:
    """WHEN as cron lines (daily, weekly and cron) or an interval, an instant, or an event."""
    out = SchedulePlan(kind=s.kind, tz=s.tz, start=s.start, end=s.end, event=s.event, first=s.first,
                       delay=dur_plan(s.delay), local=s.local)
    times = [tuple(int(x) for x in t.split(":")) for t in s.times]
    if s.kind in ("daily", "weekly"):
        dow = ",".join(str(CRON_DAYS[d]) for d in s.days) if s.kind == "weekly" else "*"
        out.crons = [f"{m} {h} * * {dow}" for h, m in times]
    elif s.kind == "cron":
        assert s.cron is not None  # a cron schedule keeps its expression
        out.crons = [s.cron]
    elif s.kind == "every":
        assert s.interval is not None  # an `every` schedule keeps its interval
        out.interval_minutes = s.interval.minutes()
    elif s.kind == "once":
        out.at = s.at
    return out


def in_dates(s: SchedulePlan | Schedule | None, when: datetime) -> bool:
    """Whether `when` falls on a day of the campaign's from/to range (in its zone); no range: always."""
    if s is None or not (s.start or s.end):
        return True
    day = when.astimezone(ZoneInfo(s.tz)).date()
    return not ((s.start and day < s.start) or (s.end and day > s.end))


def latest_fire(s: SchedulePlan | None, as_of: datetime) -> datetime | None:
    """The schedule's latest fire time at or before `as_of` (UTC), or None: no schedule (event triggers),
    not fired yet, or a fire time outside the campaign's dates."""
    latest = _latest(s, as_of)
    return latest if latest is not None and in_dates(s, latest) else None


def _latest(s: SchedulePlan | None, as_of: datetime) -> datetime | None:
    """The schedule's latest fire time at or before `as_of` (UTC) whatever the campaign's dates; None: none."""
    if s is None:
        return None
    tz = ZoneInfo(s.tz)
    local = as_of.astimezone(tz)
    if s.crons and s.kind in ("daily", "weekly"):
        fires = [t for t in wall_fires(s, local.date() - timedelta(days=8), local.date()) if t <= as_of]
        if not fires:
            return None
        latest = max(fires)
    elif s.crons:
        fires = [croniter(c, local + timedelta(seconds=1)).get_prev(datetime) for c in s.crons]
        latest = max(fires).astimezone(UTC)
    elif s.at is not None:
        latest = s.at.astimezone(UTC)
        if latest > as_of:
            return None
    elif s.interval_minutes:
        origin = datetime.combine(s.start or date(2000, 1, 1), datetime.min.time(), tzinfo=tz).astimezone(UTC)
        steps = int((as_of - origin).total_seconds() // (s.interval_minutes * 60))
        if steps < 0:
            return None
        latest = origin + timedelta(minutes=steps * s.interval_minutes)
    else:
        return None
    return latest


_RRULE_DAYS = {0: SU, 1: MO, 2: TU, 3: WE, 4: TH, 5: FR, 6: SA}  # cron day numbers (0 is sunday)


def wall_fires(s: SchedulePlan, first: date, last: date) -> list[datetime]:
    """A daily or weekly schedule's fire times on the local dates first..last, in UTC: dateutil's rrule over
    the wall clock of the schedule's zone, each time then placed in the zone the way Prefect's RRule schedule
    places it (`clock.fire_instant`): one fire per listed time and local date, also on the nights clocks change."""
    tz = ZoneInfo(s.tz)
    out = []
    for cron in s.crons:
        minute, hour, _, _, dow = cron.split()
        days = [_RRULE_DAYS[int(d)] for d in dow.split(",")] if dow != "*" else None
        rule = rrule(DAILY if days is None else WEEKLY, byweekday=days, byhour=int(hour), byminute=int(minute),
                     bysecond=0, dtstart=datetime.combine(first, time()))
        for naive in rule.between(datetime.combine(first, time()), datetime.combine(last, time(23, 59, 59)),
                                  inc=True):
            out.append(fire_instant(naive, tz))
    return sorted(out)


def local_send_of(s: SchedulePlan | None, occurrence_at: datetime) -> datetime | None:
    """A `tz user` occurrence's wall-clock time (no zone): when each user gets it in their own zone; its date is
    `today` in the audience. None for other schedules."""
    if s is None or not s.local:
        return None
    return occurrence_at.astimezone(ZoneInfo(s.tz)).replace(tzinfo=None)


def occurrence_of(s: SchedulePlan | None, as_of: datetime) -> datetime:
    """The scheduled time this run belongs to: the latest fire time at or before `as_of` (so every run
    between two fire times is the same occurrence and a rerun sends nothing twice); the as-of minute
    for event triggers, manual runs and as-of times outside the schedule."""
    return latest_fire(s, as_of) or as_of.astimezone(UTC).replace(second=0, microsecond=0)


def fires_between(s: SchedulePlan | None, start: datetime, end: datetime, most: int = 20_000) -> list[datetime]:
    """The schedule's fire times in [start, end), oldest first (at most `most`): each the latest fire at or
    before the one after it, so every kind of schedule (and its dates) is counted the way runs see it."""
    out: list[datetime] = []
    t = end - timedelta(seconds=1)
    if s is not None and s.end is not None:  # nothing fires after the campaign's last day: look from its end
        t = min(t, datetime.combine(s.end + timedelta(days=1), datetime.min.time(), tzinfo=ZoneInfo(s.tz))
                - timedelta(seconds=1))
    while len(out) < most:
        fire = _latest(s, t)
        if fire is None or fire < start or not in_dates(s, fire):  # (before its first day: so are all earlier)
            break
        out.append(fire)
        t = fire - timedelta(seconds=1)  # a whole second: cron fires are found from the second after
    return out[::-1]
