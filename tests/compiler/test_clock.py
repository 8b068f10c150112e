"""compiler.clock: days, weeks and months on the workspace's wall clock; minutes and hours absolute."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from compiler.clock import minus, plus
from compiler.ir import Dur

SH, LON, NY = ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/London"), ZoneInfo("America/New_York")


@pytest.mark.parametrize(("as_of", "dur", "zone", "local_start"), [
    # one month before 1 March 00:00 in Shanghai is 1 February 00:00 there (in UTC it was 29 January 16:00 - 1mo)
    (datetime(2026, 3, 1, 0, 0, tzinfo=SH), Dur(1, "mo"), SH, datetime(2026, 2, 1, 0, 0)),
    # month ends clamp: 31 March - 1mo = 28 February; 29 February 2028 exists
    (datetime(2026, 3, 31, 12, 0, tzinfo=SH), Dur(1, "mo"), SH, datetime(2026, 2, 28, 12, 0)),
    (datetime(2028, 3, 31, 12, 0, tzinfo=SH), Dur(1, "mo"), SH, datetime(2028, 2, 29, 12, 0)),
    (datetime(2029, 2, 28, 9, 0, tzinfo=SH), Dur(12, "mo"), SH, datetime(2028, 2, 28, 9, 0)),
    # 90 days back over London's spring change: the same wall-clock time, 90 local days earlier
    (datetime(2026, 4, 15, 10, 0, tzinfo=LON), Dur(90, "d"), LON, datetime(2026, 1, 15, 10, 0)),
    (datetime(2026, 11, 5, 9, 30, tzinfo=NY), Dur(1, "w"), NY, datetime(2026, 10, 29, 9, 30)),
    (datetime(2026, 3, 9, 0, 15, tzinfo=NY), Dur(1, "d"), NY, datetime(2026, 3, 8, 0, 15)),
])
def test_calendar_units_keep_the_wall_clock(as_of, dur, zone, local_start):
    start = minus(as_of, dur, zone)
    assert start.tzinfo == UTC
    assert start.astimezone(zone).replace(tzinfo=None) == local_start
    assert plus(start, dur, zone).astimezone(zone).replace(tzinfo=None) == as_of.replace(tzinfo=None) \
        or dur.unit == "mo"  # months clamp, so they do not always invert


def test_minutes_and_hours_are_absolute_across_a_change():
    after = datetime(2026, 3, 29, 3, 30, tzinfo=LON)  # 02:30 BST; 01:00-02:00 GMT did not happen
    assert (after - minus(after, Dur(3, "h"), LON)).total_seconds() == 3 * 3600
    assert (plus(after, Dur(90, "m"), LON) - after).total_seconds() == 90 * 60
    # whereas a day back is 23 hours on that day
    assert (after - minus(after, Dur(1, "d"), LON)).total_seconds() == 23 * 3600


def test_a_wall_time_in_the_gap_lands_after_it():
    # 8 March 2026 02:30 does not exist in New York: a day after 7 March 02:30 EST is read with EST, 03:30 EDT
    got = plus(datetime(2026, 3, 7, 2, 30, tzinfo=NY), Dur(1, "d"), NY)
    assert got == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)

