"""Time arithmetic for windows, caps, delays and coupon validity: one place, zone-aware.

`d`, `w` and `mo` are calendar units: they move the wall clock of a zone (the workspace's), so "7 days before
Monday 10:00" is the previous Monday 10:00 local even across a daylight-saving change, and one month before
1 March 00:00 is 1 February 00:00 local (a month's end is clamped: one month before 31 March is 28 or 29
February). `m` and `h` are absolute: 90 minutes are 90 minutes whatever the clock does. A wall-clock result
that falls in the hour skipped when clocks go forward is read with the offset before the change (it lands that
far after the gap); one in the hour repeated when clocks go back is its first occurrence. Results are in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from compiler import ir as I

CALENDAR_UNITS = ("d", "w", "mo")


def _shift(t: datetime, d: I.Dur, zone: str | ZoneInfo, sign: int) -> datetime:
    if d.unit not in CALENDAR_UNITS:
        return t.astimezone(UTC) + sign * timedelta(minutes=d.minutes())
    z = zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)
    wall = t.astimezone(z).replace(tzinfo=None)
    step = {"d": relativedelta(days=d.value), "w": relativedelta(weeks=d.value),
            "mo": relativedelta(months=d.value)}[d.unit]
    moved = wall + step if sign > 0 else wall - step
    return moved.replace(tzinfo=z).astimezone(UTC)


def minus(t: datetime, d: I.Dur, zone: str | ZoneInfo) -> datetime:
    """`t` minus `d`: calendar units on the wall clock of `zone`, minutes and hours absolute; in UTC."""
    return _shift(t, d, zone, -1)


def plus(t: datetime, d: I.Dur, zone: str | ZoneInfo) -> datetime:
    """`t` plus `d`: calendar units on the wall clock of `zone`, minutes and hours absolute; in UTC."""
    return _shift(t, d, zone, +1)


def fire_instant(wall: datetime, zone: str | ZoneInfo) -> datetime:
    """A scheduled wall-clock time (naive) in `zone` as an instant (UTC), placed exactly as Prefect's RRule
    schedules place it, so that camp's occurrences are the scheduler's fire times: a time the clocks repeat is
    its first occurrence; a time the clocks skip is read with the offset after the change (02:30 on New
    York's spring-forward night is 06:30 UTC, what the clock would read as 01:30 EST). Tested against Prefect
    in tests/runtime/test_host_tz.py."""
    z = zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)
    naive = wall.replace(tzinfo=None)
    first = naive.replace(tzinfo=z).astimezone(UTC)
    if first.astimezone(z).replace(tzinfo=None) == naive:
        return first
    return naive.replace(tzinfo=z, fold=1).astimezone(UTC)  # skipped: the offset after the change


def ceil_minute(t: datetime) -> datetime:
    """`t` in UTC, rounded up to the whole minute (runs are scheduled to the minute)."""
    at = t.astimezone(UTC)
    whole = at.replace(second=0, microsecond=0)
    return whole if whole == at else whole + timedelta(minutes=1)
