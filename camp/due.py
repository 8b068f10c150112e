"""`camp run FOLDER`: which campaigns are due at the as-of time, and why the others are not.

A campaign is due when its schedule fired at or before the as-of time on the same local day (in the
campaign's zone), within its from/to dates, and that occurrence has not yet run to the end. A campaign that is
not due but holds deliveries deferred (quiet hours, a `tz user` send) until the as-of time or earlier gets a
release: they are sent as they were decided, nothing is decided anew. A fire time of an earlier day is missed,
not made up: a daily 10:00 campaign checked at 09:00 the next day would otherwise send yesterday's message a
day late. Event-triggered
campaigns run from events (`camp serve`, `camp emit`). `camp run FILE` and `camp run FOLDER --all` run what they
are given, as before.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from runtime.ledger import Ledger


def due_campaigns(lg: Ledger, campaigns: list, as_of: datetime) -> tuple[list, list[tuple[str, str]], list]:
    """(the campaigns due at `as_of`, [(campaign, why not)] for the others, the campaigns of those with deferred
    deliveries due by `as_of`: to release)."""
    from compiler.schedule import latest_fire, occurrence_of, schedule_plan

    due, skipped, release = [], [], []
    for c in campaigns:
        if c.schedule is None:
            skipped.append((c.name, "has no WHEN: run its file to run it"))
            continue
        sp = schedule_plan(c.schedule)
        if sp.kind == "event":
            skipped.append((c.name, f"runs on `{sp.event}` events (camp serve, camp emit)"))
            continue
        held = lg.deferred_due(c.name, as_of)
        fired = latest_fire(sp, as_of)
        releasing = f"; releasing {held:,} deferred deliveries now due" if held else ""
        if held:
            release.append(c)
        if fired is None or _day(fired, sp.tz) != _day(as_of, sp.tz):
            skipped.append((c.name, _not_today(sp, fired, as_of) + releasing))
            continue
        occurrence = occurrence_of(sp, as_of).strftime("%Y-%m-%dT%H:%MZ")
        ran = lg.finished_runs(c.name, c.steps[0].name, occurrence)
        if ran:
            skipped.append((c.name, f"already ran its occurrence of {local_time(fired, sp.tz)}{releasing}"))
            continue
        if held:
            release.remove(c)  # the run of the occurrence releases them first
        due.append(c)
    return due, skipped, release


def _day(t: datetime, tz: str):
    return t.astimezone(ZoneInfo(tz)).date()


def local_time(t: datetime, tz: str) -> str:
    """An instant as people read it: wall-clock time in `tz` and its name (`tz user`: each user's zone)."""
    from compiler.timespec import FIRST_ZONE

    if tz == FIRST_ZONE:  # `tz user`: the time of day each user gets it in their own zone
        return f"{t.astimezone(ZoneInfo(tz)):%Y-%m-%d %H:%M} in each user's zone"
    return f"{t.astimezone(ZoneInfo(tz)):%Y-%m-%d %H:%M} {tz}"


def _not_today(sp, fired: datetime | None, as_of: datetime) -> str:
    if fired is not None:
        return f"missed: it last fired at {local_time(fired, sp.tz)}, on an earlier day (run its file to run it anyway)"
    if sp.kind == "once" and sp.at is not None and sp.at > as_of:
        return f"not due until {local_time(sp.at, sp.tz)}"
    if sp.start and as_of.astimezone(ZoneInfo(sp.tz)).date() < sp.start:
        return f"not due: it starts on {sp.start}"
    if sp.end and as_of.astimezone(ZoneInfo(sp.tz)).date() > sp.end:
        return f"ended on {sp.end}"
    return "not due: its schedule has not fired yet"
