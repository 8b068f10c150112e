"""The workspace's campaigns at an as-of time -> which ledger rows a decision can still read (`ArchiveRule`), the
rule `camp ledger archive` follows (docs/runtime.md, "Retention").

    horizon   the earliest due time any cap with a window or any exclusive hold of any campaign can see at the
              as-of: a counted delivery due before it is never counted again by a run at that as-of or later
    forever   the scopes of caps without a window (`cap 3 messages per user`): (channel or None, campaign or
              None); their counted deliveries are kept whatever their age
    journeys  (campaign, previous step, step) of every follow-up: an occurrence whose previous step has a sent
              user the follow-up has not decided yet is still running

`lookback` is the same window arithmetic for one plan, so a run can tell whether it would look back past what an
archive moved out (runtime.engine refuses such a run rather than decide on fewer deliveries).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from compiler.clock import minus
from compiler.plan import EXCLUSIVE_HOLD, CampaignPlan, CapPlan, Duration, StepPlan


@dataclass(frozen=True)
class ArchiveRule:
    as_of: datetime
    horizon: datetime
    forever: tuple[tuple[str | None, str | None], ...]
    journeys: tuple[tuple[str, str, str], ...]


def lookback(caps: Iterable[CapPlan], hold: Duration | None, timezone: str, at: datetime) -> datetime | None:
    """The earliest due time the windowed caps counting deliveries and the exclusive hold (`hold`, None without
    an exclusive group) see at `at`; None when none has a window. Caps without a window are `forever` scopes."""
    starts = [minus(at, c.per.dur(), timezone) for c in caps if c.unit != "coupon" and not c.unused and c.per]
    if hold is not None:
        starts.append(minus(at, hold.dur(), timezone))
    return min(starts) if starts else None


def plan_lookback(p: StepPlan, at: datetime) -> datetime | None:
    """`lookback` of a step plan (compiler.plan.StepPlan): its windowed caps and, in an exclusive group, its
    hold."""
    return lookback(p.caps, p.exclusive_hold if p.exclusive else None, p.timezone, at)


def archive_rule(plans: Iterable[CampaignPlan], as_of: datetime) -> ArchiveRule:
    """What the campaigns (and the policy, whose caps every campaign's plan carries) can read at `as_of` or later."""
    hold = Duration(value=EXCLUSIVE_HOLD.value, unit=EXCLUSIVE_HOLD.unit)
    horizon, forever, journeys = as_of, set(), set()
    for p in plans:
        start = lookback(p.caps, hold if p.exclusive else None, p.timezone, as_of)
        if start is not None:
            horizon = min(horizon, start)
        for c in p.caps:
            if c.unit != "coupon" and not c.unused and not c.per:
                forever.add((None if c.unit == "message" else c.unit, p.campaign if c.scope == "campaign" else None))
        for s in p.steps:
            if s.journey is not None:
                journeys.add((p.campaign, s.journey.previous, s.name))
    return ArchiveRule(as_of, horizon, tuple(sorted(forever, key=str)), tuple(sorted(journeys)))
