"""Journeys: a follow-up step's cohort from the ledger -> the warehouse session, and the follow-ups
a run makes due.

A follow-up step reaches the users its previous step was *sent* to in the same occurrence, once its
`after` delay has passed since that send (the delivery's `due_at`; a message held by quiet hours
counts from when it went out). Users who were held out, suppressed, skipped or failed on the
previous step leave the journey there.

Each run of a follow-up at an as-of time takes the users who are due by then and have not been
taken by an earlier run: one *part* of the step's snapshot (`camp_snapshot_parts`). The cohort goes
into a TEMP table of the warehouse session (`camp_cohort`: user_id, since_<step> for every step
whose send time the conditions read), which the step's SQL joins; it works on a read-only DuckDB
file and on PostgreSQL alike, and nothing is written to the warehouse.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from compiler.clock import ceil_minute, minus, plus
from compiler.plan import Duration, JourneyPlan, NextStep, StepPlan
from compiler.sql import COHORT
from runtime.ledger import Ledger
from runtime.warehouse import Warehouse


def fire_time(sent: datetime, after: Duration | None, zone: str) -> datetime:
    """When the next step is due for a user sent the previous one at `sent`: the delay later (days,
    weeks and months on the wall clock of `zone`, the workspace's), rounded up to the minute (runs are
    scheduled to the minute)."""
    return ceil_minute(plus(sent, after.dur(), zone) if after is not None else sent)


_SLACK = timedelta(days=4)  # more than a month-end clamp (3 days) plus a daylight-saving change (at most 2 h)


def _cutoff(after: Duration | None, as_of: datetime, zone: str) -> tuple[datetime, datetime]:
    """(sure, latest): sends at or before `sure` are due at `as_of`; sends in (sure, latest] are checked one by
    one with fire_time. Minutes and hours have a fixed length, so both bounds are the same; a calendar delay
    (days, weeks, months on the local wall clock) is within a few days of as-of minus the delay, so only the
    sends in that band are checked in Python, whatever the cohort's size."""
    now = as_of.astimezone(UTC).replace(second=0, microsecond=0)  # fire times are whole minutes
    if after is None:
        return now, now
    if after.unit not in ("d", "w", "mo"):
        bound = now - timedelta(minutes=after.dur().minutes())
        return bound, bound
    approx = minus(now, after.dur(), zone)
    return approx - _SLACK, min(approx + _SLACK, now)


def cohort(lg: Ledger, plan: StepPlan, as_of: datetime):
    """A DataFrame (user_id, since_<step>...) of the users due at `as_of` who are in no earlier part,
    by user id. Due-ness is decided in the ledger's SQL (a month delay, whose length varies, per user)."""
    j = plan.journey
    assert j is not None  # a cohort is read for a follow-up step, whose plan has a journey
    sure, latest = _cutoff(j.after, as_of, plan.timezone)
    frame = lg.sent_untaken_frame(plan.campaign, j.previous, plan.occurrence, latest, plan.step)
    if latest > sure:
        due = [t <= sure or fire_time(t.to_pydatetime(), j.after, plan.timezone) <= as_of for t in frame["due_at"]]
        frame = frame.loc[due] if due else frame  # (an empty list would select no columns)
    out = frame[["user_id"]].reset_index(drop=True)
    for step in j.since:
        if step == j.previous:
            out[f"since_{step}"] = frame["due_at"].to_numpy()
            continue
        sent = lg.sent_times_frame(plan.campaign, step, plan.occurrence)
        out[f"since_{step}"] = out.merge(sent, on="user_id", how="left")["since"].to_numpy()
    return out


def load_cohort(wh: Warehouse, plan: StepPlan, rows) -> None:
    """The cohort as a TEMP table of this warehouse session (a fresh connection: nothing to drop, and
    never a DROP that could reach a warehouse table of that name), for the step's SQL to join; a
    TEMP table comes first in name lookups on DuckDB and PostgreSQL."""
    assert plan.journey is not None  # a follow-up step's plan
    cols = ["user_id"] + [f"since_{s}" for s in plan.journey.since]
    quoted = [f'"{c}"' for c in cols]
    types = ["text"] + ["timestamptz"] * len(plan.journey.since)
    wh.execute(f"CREATE TEMP TABLE {COHORT} ({', '.join(f'{c} {t}' for c, t in zip(quoted, types, strict=True))})")
    wh.bulk_insert(COHORT, cols, rows)


def follow_ups(lg: Ledger, campaign: str, touched: dict[tuple[str, str], NextStep | None],
               zone: str) -> list[tuple[str, str, datetime]]:
    """(next step, occurrence, fire time) for the sends of the (step, occurrence)s a run touched:
    one per distinct fire minute. Scheduling each is idempotent (the key names all three)."""
    out = set()
    for (step, occurrence), nxt in touched.items():
        if nxt is None:
            continue
        for sent in lg.sent_due_times(campaign, step, occurrence):
            out.add((nxt.step, occurrence, fire_time(sent, nxt.after, zone)))
    return sorted(out)


def due_occurrences(lg: Ledger, campaign: str, step: str, journey: JourneyPlan, as_of: datetime,
                    zone: str) -> list[str]:
    """Occurrences of a journey with users due for this follow-up step at `as_of` and not yet taken
    (for `camp run --step`; deployed journeys schedule each follow-up themselves)."""
    sure, latest = _cutoff(journey.after, as_of, zone)
    sends = lg.sent_untaken(campaign, journey.previous, latest, step)
    return sorted({s.occurrence for s in sends if s.due_at <= sure or fire_time(s.due_at, journey.after, zone) <= as_of})
