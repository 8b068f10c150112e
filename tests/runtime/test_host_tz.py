"""Schedules do not depend on the host's time zone (issue 11, first part): every schedule kind, planned and
deployed in a subprocess with TZ set to UTC, Asia/Shanghai and America/New_York, gives the same deployment
schedules and the same occurrences; `once at 10:00 tz "Asia/Shanghai"` is 02:00 UTC on every host."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT
from tests.runtime.conftest import make_workspace

KINDS = {
    "daily": 'daily at 10:00 from 2026-12-01 to 2026-12-31 tz "Asia/Shanghai"',
    "weekly": 'every monday, thursday at 11:00 tz "Europe/London"',
    "every": 'every 90m from 2026-12-01 tz "America/New_York"',
    "once": 'once at 2026-12-05 10:00 tz "Asia/Shanghai"',
    "once_dst_gap": 'once at 2026-03-08 02:30 tz "America/New_York"',
    "cron": 'cron "0 12 * * 6" from 2026-12-01 to 2027-01-31 tz "Asia/Shanghai"',
    "local": "daily at 09:00 from 2026-12-01 tz user",
    "local_once": "once at 2026-12-05 09:00 tz user",
}
AS_OF = ["2026-12-05T01:59:00+00:00", "2026-12-05T02:00:00+00:00", "2026-12-05T11:00:00+08:00",
         "2026-12-05T19:00:00+08:00", "2026-12-06T00:30:00-05:00", "2026-03-08T08:00:00+00:00"]

PROBE = r"""
import json, sys
from datetime import datetime
from compiler.check import check_workspace
from compiler.schedule import occurrence_of, schedule_plan
from compiler.workspace import load_workspace
from runtime.deploy import schedules_of
from pathlib import Path
program = check_workspace(load_workspace(Path(sys.argv[1]))).program
out = {}
for c in sorted(program.campaigns.values(), key=lambda c: c.name):
    sp = schedule_plan(c.schedule)
    out[c.name] = {"deploy": schedules_of(sp),
                   "occurrences": [occurrence_of(sp, datetime.fromisoformat(t)).isoformat() for t in json.loads(sys.argv[2])]}
print(json.dumps(out, sort_keys=True))
"""


def _probe(ws, tz: str) -> dict:
    env = {**os.environ, "TZ": tz, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", PROBE, str(ws), json.dumps(AS_OF)], env=env, capture_output=True,
                       text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_every_schedule_kind_is_the_same_on_every_host_zone(tmp_path):
    files = {f"{k}.camp": f'campaign k_{k} {{\n  who count(orders within 365d) >= 1\n  when {when}\n'
                          f'  where push template "p.j2"\n  how\n    step touch: notify where\n}}\n'
             for k, when in KINDS.items()}
    ws = make_workspace(tmp_path / "ws", files, templates={"p.j2": "hi"})
    seen = {tz: _probe(ws, tz) for tz in ("UTC", "Asia/Shanghai", "America/New_York")}
    assert seen["UTC"] == seen["Asia/Shanghai"] == seen["America/New_York"]
    got = seen["UTC"]
    # 10:00 in Shanghai is 02:00 UTC: runs before it are manual (the as-of minute), runs after it are that occurrence
    once = got["k_once"]["occurrences"]
    assert once[0] == "2026-12-05T01:59:00+00:00"
    assert once[1:5] == ["2026-12-05T02:00:00+00:00"] * 4  # 10:00, 11:00 and 19:00 Shanghai, and the next day
    assert got["k_once"]["deploy"] == [{"rrule": "DTSTART:20261205T100000\nRRULE:FREQ=DAILY;COUNT=1",
                                        "timezone": "Asia/Shanghai"}]
    # 02:30 does not exist in New York that night (clocks jump 02:00 -> 03:00): it fires where Prefect fires it,
    # the offset after the change, 06:30 UTC (the next test holds camp to Prefect's fire times)
    assert got["k_once_dst_gap"]["occurrences"][5] == "2026-03-08T06:30:00+00:00"
    assert got["k_daily"]["occurrences"][3] == "2026-12-05T02:00:00+00:00"
    # `tz user`: 09:00 of local date D is first reached at UTC+14, D-1 19:00 UTC; each user is deferred to it
    assert got["k_local"]["deploy"] == [{"rrule": "DTSTART:20261201T090000\nRRULE:FREQ=DAILY",
                                         "timezone": "Etc/GMT-14"}]
    assert got["k_local"]["occurrences"][:5] == ["2026-12-04T19:00:00+00:00"] * 4 + ["2026-12-05T19:00:00+00:00"]
    assert got["k_local_once"]["deploy"] == [{"rrule": "DTSTART:20261205T090000\nRRULE:FREQ=DAILY;COUNT=1",
                                              "timezone": "Etc/GMT-14"}]
    assert got["k_local_once"]["occurrences"][0] == "2026-12-04T19:00:00+00:00"


def test_occurrences_are_prefects_fire_times_across_daylight_saving_changes():
    """The occurrence a run belongs to is computed by camp (compiler.schedule.latest_fire); the fire times are
    Prefect's (the RRule schedule `camp deploy` writes). They must agree on the nights clocks change: one
    occurrence per local day at the time Prefect fires it (a time that happens twice: its first; a time that
    does not exist: 02:30 -> 03:30), and every as-of minute of the day maps to that day's occurrence."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from prefect.server.schemas.schedules import RRuleSchedule

    from compiler.plan import SchedulePlan
    from compiler.schedule import latest_fire
    from runtime.deploy import schedules_of

    nights = {"America/New_York": [datetime(2026, 3, 7, tzinfo=UTC), datetime(2026, 10, 31, tzinfo=UTC)],
              "Europe/London": [datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 10, 24, tzinfo=UTC)]}
    for zone, starts in nights.items():
        for crons, kind in ((["30 1 * * *"], "daily"), (["30 2 * * *"], "daily"), (["0 10 * * *", "30 1 * * *"],
                                                                                    "daily"),
                            (["30 1 * * 0,6"], "weekly")):
            sp = SchedulePlan(kind=kind, tz=zone, crons=crons)
            for start in starts:
                end = start + timedelta(days=3)
                prefect = set()
                specs = schedules_of(sp)
                assert specs and all(spec["timezone"] == zone for spec in specs)
                for spec in specs:
                    sched = RRuleSchedule(rrule=spec["rrule"], timezone=spec["timezone"])
                    prefect |= {d.astimezone(UTC) for d in asyncio.run(sched.get_dates(n=50, start=start, end=end))}
                ours, t = set(), start
                while t < end:
                    fired = latest_fire(sp, t)
                    if fired is not None and fired >= start:
                        ours.add(fired)
                    t += timedelta(minutes=5)
                assert ours == prefect, (zone, crons, sorted(ours ^ prefect))

    # a one-off at a skipped and at a repeated time: the occurrence is the instant Prefect fires the deployment at
    for zone, wall in (("America/New_York", "2026-03-08T02:30"), ("America/New_York", "2026-11-01T01:30"),
                       ("Europe/London", "2026-03-29T01:30"), ("Europe/London", "2026-10-25T01:30")):
        from zoneinfo import ZoneInfo

        from compiler.clock import fire_instant

        at = fire_instant(datetime.fromisoformat(wall), zone).astimezone(ZoneInfo(zone))
        sp = SchedulePlan(kind="once", tz=zone, at=at)
        (spec,) = schedules_of(sp)
        sched = RRuleSchedule(rrule=spec["rrule"], timezone=spec["timezone"])
        (fired,) = asyncio.run(sched.get_dates(n=5, start=at - timedelta(days=2), end=at + timedelta(days=2)))
        assert latest_fire(sp, fired.astimezone(UTC)) == fired.astimezone(UTC) == at.astimezone(UTC), (zone, wall)
