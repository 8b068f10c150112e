"""`fires_between`: every fire time of a schedule in a period, also when the period runs past the campaign's last
day (it found none then: the walk back from the period's end stopped at the first fire outside the dates, so
`camp simulate` played nothing of a campaign ending mid-period and `camp plan` forecast no sends for it)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.program import Schedule
from compiler.schedule import fires_between, latest_fire, schedule_plan

SH = ZoneInfo("Asia/Shanghai")


def _daily(times: list[str], start: date | None, end: date | None, tz: str = "Asia/Shanghai"):
    return schedule_plan(Schedule(kind="daily", tz=tz, times=times, days=[], interval=None, at=None, cron=None,
                                  event=None, first=False, condition=None, delay=None, start=start, end=end,
                                  local=False))


def test_a_campaign_ending_mid_period_fires_up_to_its_last_day():
    s = _daily(["10:00"], date(2026, 11, 20), date(2026, 11, 25))
    got = fires_between(s, datetime(2026, 11, 23, tzinfo=SH), datetime(2026, 12, 1, tzinfo=SH))
    assert got == [datetime(2026, 11, d, 10, tzinfo=SH) for d in (23, 24, 25)]
    one = _daily(["23:00"], date(2026, 11, 24), date(2026, 11, 24))
    assert fires_between(one, datetime(2026, 11, 24, tzinfo=SH), datetime(2026, 11, 26, tzinfo=SH)) == \
        [datetime(2026, 11, 24, 23, tzinfo=SH)]


@settings(max_examples=40, deadline=None)
@given(times=st.lists(st.tuples(st.integers(0, 23), st.sampled_from([0, 15, 30, 45])), min_size=1, max_size=3,
                      unique=True),
       tz=st.sampled_from(["Asia/Shanghai", "America/New_York", "UTC"]),
       first=st.one_of(st.none(), st.integers(-3, 3)), days=st.one_of(st.none(), st.integers(0, 4)),
       offset=st.integers(0, 95), hours=st.integers(1, 72))
def test_fires_between_finds_each_fire_latest_fire_sees(times, tz, first, days, offset, hours):
    """Against the definition: the fires in [start, end) are the times t there at which latest_fire(t) is t (each
    fire is a whole quarter hour here, so probing every quarter hour finds them all), around a DST change."""
    base = date(2026, 10, 31)  # New York leaves daylight saving time on 2026-11-01
    start_day = None if first is None else base + timedelta(days=first)
    end_day = None if days is None else (start_day or base) + timedelta(days=days)
    s = _daily([f"{h:02d}:{m:02d}" for h, m in sorted(times)], start_day, end_day, tz)
    start = datetime(2026, 10, 30, tzinfo=ZoneInfo("UTC")) + timedelta(minutes=15 * offset)
    end = start + timedelta(hours=hours)
    probes = [start + timedelta(minutes=15 * i) for i in range(hours * 4)]
    expected = sorted({t for t in probes if latest_fire(s, t) == t})
    assert fires_between(s, start, end) == expected
