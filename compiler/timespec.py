"""WHEN -> Schedule: triggers, date ranges and time zones, validated."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from compiler.bounds import FIRST_DATE
from compiler.clock import fire_instant
from compiler.ir import Dur
from compiler.limits import check_time_of_day
from compiler.program import Schedule
from compiler.report import Report, did_you_mean, suggest
from compiler.typecheck import ExprChecker, Scope, parse_date, parse_datetime
from compiler.zones import zone_or_none
from dsl import ast as A

FIRST_ZONE = "Etc/GMT-14"  # UTC+14 all year: the first wall clock on Earth to reach a time of day
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
CRON_DAYS = {d: (i + 1) % 7 for i, d in enumerate(WEEKDAYS)}  # cron: 0 is sunday


def check_zone(name: str, node: A.Node, report: Report) -> bool:
    if zone_or_none(name) is not None:
        return True
    from zoneinfo import available_timezones

    zones = sorted(available_timezones())
    inside = [z for z in zones if z.startswith(name + "/")][:3] if name else []
    shown = name if len(name) <= 40 else name[:40] + "…"
    hint = (f'"{name}" is a region: name a zone in it, e.g. ' + ", ".join(f'"{z}"' for z in inside) if inside
            else did_you_mean(name, zones, '"{}"') if len(name) <= 64 else None)
    report("E402", f"\"{shown}\" is not a time zone", node.span, [hint or 'e.g. "Asia/Shanghai", "Europe/London"'])
    return False


def check_when(when: A.When, default_tz: str, checker: ExprChecker, report: Report) -> Schedule | None:
    trig = when.trigger
    ok = True
    sched = Schedule(kind=trig.kind if trig.kind != "on_event" else "event", tz=default_tz)
    if isinstance(trig, (A.Daily, A.Weekly)):
        ok = all([check_time_of_day(t, trig, report) for t in trig.times])
        sched.times = [f"{int(t.split(':')[0]):02d}:{t.split(':')[1]}" for t in trig.times]
        if len(set(sched.times)) != len(sched.times):
            report("E205", "the same time is listed twice", trig.span, ["list each time once: `at 10:00, 20:00`"])
    if isinstance(trig, A.Weekly):
        for d in trig.days:
            if d.name.lower() not in WEEKDAYS:
                report("E406", f"`{d.name}` is not a weekday", d.span, [suggest(d.name.lower(), WEEKDAYS, "weekdays")])
                ok = False
        sched.days = [d.name.lower() for d in trig.days]
    elif isinstance(trig, A.Every):
        if trig.interval.value <= 0:
            report("E408", "the interval must be longer than zero", trig.interval.span, ["e.g. `every 7d`"])
            ok = False
        sched.interval = Dur(trig.interval.value, trig.interval.unit)
    elif isinstance(trig, A.Once):
        at = parse_datetime(trig.at, trig, report)
        ok = at is not None
        sched.at = at
    elif isinstance(trig, A.Cron):
        from croniter import croniter

        if len(trig.expr.split()) != 5 or not croniter.is_valid(trig.expr):
            report("E405", f"\"{trig.expr}\" is not a valid cron expression", trig.span,
                   ["five fields: minute hour day-of-month month day-of-week, e.g. \"0 10 * * 1-5\""])
            ok = False
        sched.cron = trig.expr
    elif isinstance(trig, A.OnEvent):
        ev = checker.schema.events.get(trig.event.name)
        if ev is None:
            report("E202", f"there are no events called `{trig.event.name}`", trig.event.span,
                   [suggest(trig.event.name, checker.schema.events, "events", none="declare them: `events orders from table orders user user_id time created_at { ... }`")])
            ok = False
        else:
            sched.event = ev.name
            sched.first = trig.first
            if trig.condition is not None:
                sched.condition = checker.condition(trig.condition, Scope(event=ev))
                ok = ok and sched.condition is not None
        if trig.delay is not None:
            if trig.delay.value <= 0:
                report("E408", "a delay must be longer than zero", trig.delay.span,
                       ["e.g. `delay 30m`, or no `delay` to run at once"])
                ok = False
            sched.delay = Dur(trig.delay.value, trig.delay.unit)
    seen: dict[str, A.Node] = {}
    for opt in when.options:
        keys = {"date_from": ["start"] + (["end"] if getattr(opt, "end", None) is not None else []),
                "date_until": ["end"], "tz": ["tz"]}[opt.kind]
        twice = [k for k in keys if k in seen]
        if twice:
            what = {"start": "start date", "end": "end date", "tz": "time zone"}[twice[0]]
            report("E211", f"the {what} is given twice", opt.span,
                   [f"the first is on line {seen[twice[0]].span.line}; keep one"])
            ok = False
            continue
        for k in keys:
            seen[k] = opt
        if isinstance(opt, A.TimeZone) and opt.user:
            if sched.kind not in ("daily", "weekly", "once"):
                report("E417", f"`tz user` needs a wall-clock time: `{trig.kind.replace('on_event', 'on')}` has none",
                       opt.span, ["`daily at 09:00 tz user`, `every monday at 09:00 tz user` or "
                                  "`once at 2026-12-05 09:00 tz user`; or name one zone: `tz \"Asia/Shanghai\"`"])
                ok = False
            else:
                sched.local, sched.tz = True, FIRST_ZONE
        elif isinstance(opt, A.TimeZone):
            if check_zone(opt.name, opt, report):
                sched.tz = opt.name
            else:
                ok = False
        elif isinstance(opt, A.DateFrom):
            sched.start = parse_date(opt.start, report)
            sched.end = parse_date(opt.end, report) if opt.end is not None else sched.end
            ok = ok and sched.start is not None and (opt.end is None or sched.end is not None)
        elif isinstance(opt, A.DateUntil):
            sched.end = parse_date(opt.end, report)
            ok = ok and sched.end is not None
    if sched.start and sched.end and sched.start > sched.end:
        report("E403", f"the campaign ends ({sched.end}) before it starts ({sched.start})", seen["end"].span,
               ["swap the dates"])
        ok = False
    zone = zone_or_none(sched.tz)
    if sched.at is not None and sched.at.tzinfo is None and zone is not None:
        # a wall-clock time in the campaign's zone, never the host's: a naive time would be read in the
        # host's zone by astimezone() (a UTC host deployed `once at 10:00 tz "Asia/Shanghai"` at 18:00)
        sched.at = fire_instant(sched.at, zone).astimezone(zone)  # where Prefect's schedule fires it
    if sched.kind == "once" and sched.at is not None and (
            (sched.start and sched.at.date() < sched.start) or (sched.end and sched.at.date() > sched.end)):
        report("E403", "the one-off run lies outside the campaign's date range", trig.span,
               [f"move `once at` between {sched.start or 'the start'} and {sched.end or 'the end'}, or widen `from ... to`"])
        ok = False
    if ok and sched.kind in ("cron", "daily", "weekly"):
        ok = check_fires(sched, trig, report)
    return sched if ok else None


def cron_lines(sched: Schedule) -> list[str]:
    """The cron expressions a daily, weekly or cron trigger fires on (in the schedule's zone)."""
    if sched.kind == "cron":
        assert sched.cron is not None  # a cron schedule keeps its expression
        return [sched.cron]
    dow = ",".join(str(CRON_DAYS[d]) for d in sched.days) if sched.kind == "weekly" else "*"
    return [f"{int(t.split(':')[1])} {int(t.split(':')[0])} * * {dow}" for t in sched.times]


def check_fires(sched: Schedule, trig: A.Node, report: Report) -> bool:
    """A schedule must fire at least once: at all, and between its start and end dates when it has them
    (`cron "0 0 30 2 *"` never does; `every monday` from a Tuesday to the Wednesday after neither)."""
    tz = ZoneInfo(sched.tz)
    first = datetime.combine(sched.start or FIRST_DATE, time(), tzinfo=tz) - timedelta(seconds=1)
    last = datetime.combine(sched.end, time(23, 59, 59), tzinfo=tz) if sched.end else None
    for line in cron_lines(sched):
        fire = _next_fire(line, first, sched.tz)
        if fire is None:
            continue
        if last is None or fire <= last:
            return True
    shown = f"cron \"{sched.cron}\"" if sched.kind == "cron" else "the schedule"
    if sched.start or sched.end:
        span = f"{sched.start or '…'} .. {sched.end or '…'}"
        report("E415", f"{shown} never fires between the campaign's dates ({span})", trig.span,
               ["check the day of month, month and weekday against the date range"])
    else:
        report("E415", f"{shown} never fires: no date matches it", trig.span,
               ["check the day of month against the month (there is no 30 February or 31 April)"])
    return False


@lru_cache(maxsize=1024)
def _next_fire(line: str, after: datetime, zone: str) -> datetime | None:
    """The first time after `after` (a time in `zone`) that the cron line fires, or None when it never does.
    A pure function, computed once per distinct (line, start, zone): a thousand campaigns `daily at 09:00`
    share one croniter run (croniter builds its tables per call: about 0.4 ms each). The zone is part of the
    key because aware datetimes of different zones compare equal when they are the same instant."""
    from croniter import CroniterBadDateError, croniter

    try:
        return croniter(line, after).get_next(datetime)
    except (CroniterBadDateError, ValueError, OverflowError):
        return None
