"""A follow-up step of a campaign -> its journey: the JourneyPlan (previous step, delay, the steps whose send
times its conditions read) and the reasons a user of its cohort is skipped (goal reached since entry, `unless`,
excludes).

    journey_plan(campaign, step) -> JourneyPlan | None
    journey_skips(campaign, step) -> [(reason, IR condition)]
    since_entry(goal, first_step) -> the goal counted since the journey began
"""

from __future__ import annotations

from compiler import ir as I
from compiler.plan import JourneyPlan, dur_plan
from compiler.program import Campaign, Step


def since_entry(goal: I.Expr, entry: str) -> I.Expr:
    """The goal as a journey exit test: facts without a window of their own count only what happened
    since the journey's first step was sent to the user (an order before the touch is no conversion)."""
    return I.with_window(goal, I.Win("since", step=entry))


def journey_skips(c: Campaign, s: Step) -> list[tuple[str, I.Expr]]:
    """Why a user of a follow-up's cohort is skipped, first reason first: the campaign's goal reached
    since the journey began (they leave the journey), the step's `unless`, an `exclude` that now holds."""
    out: list[tuple[str, I.Expr]] = []
    if c.goal is not None:
        out.append(("goal reached", since_entry(c.goal, c.steps[0].name)))
    if s.unless is not None:
        out.append(("unless", s.unless))
    if c.excludes:
        out.append(("excluded", c.excludes[0] if len(c.excludes) == 1 else I.Or(tuple(c.excludes))))
    return out


def journey_plan(c: Campaign, s: Step) -> JourneyPlan | None:
    """What a follow-up step needs of its journey (None for a first step): the step before it, the
    delay, and the steps whose send times its conditions read."""
    index = c.steps.index(s)
    if index == 0:
        return None
    conds = [cond for _, cond in journey_skips(c, s)] + [cond for cond, _ in s.branches if cond is not None]
    since = sorted({n.step for cond in conds for n in I.walk(cond) if isinstance(n, I.Win) and n.op == "since" and n.step})
    return JourneyPlan(previous=c.steps[index - 1].name, earlier=[x.name for x in c.steps[:index]],
                       after=dur_plan(s.after), since=since)
