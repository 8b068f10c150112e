"""Checked program + campaign + slot -> its rivals: the campaigns that must decide before it.

    rivals(program, campaign, slot) -> [Rival]

Deployed campaigns run as separate flow runs that start in whatever order the scheduler and the
workers pick them up. Where two of them compete for the same users in the same slot, the one that
decides first takes the users; `priority` must say who that is, not the start order. A rival of
campaign C at slot T is another campaign that

  * has a scheduled first step (daily, weekly, cron, every, once: not an event trigger) with an
    occurrence exactly at T, inside its from/to dates;
  * ranks ahead of C: a higher `priority`, or the same priority and a name that sorts first
    (Python's string order: a deterministic tie-break that does not depend on files or start order);
  * competes with C for users: both are in the same exclusive group, or both first steps can meet
    the same workspace policy cap (a `message` cap when both notify; a channel cap when both notify
    on that channel; a `coupon` or unused-coupon cap when both give coupons). Campaign caps and
    budgets belong to one campaign (the language has no shared budget), so they make no rivals.

The runtime (runtime/arbitrate.py) waits for each rival's run of that occurrence before deciding.
Pure: no clock, no ledger, no Prefect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from compiler.program import Campaign, Coupon, Program
from compiler.schedule import latest_fire, schedule_plan


@dataclass(frozen=True)
class Rival:
    campaign: str
    step: str  # its first step: the one its schedule runs
    occurrence: str  # as StepPlan.occurrence: the slot in UTC, "2026-12-01T02:00Z"
    priority: int
    why: str  # what they share: "exclusive group coupon_push", "policy cap 4 messages per 7d"


def rivals(program: Program, campaign: str, slot: datetime) -> list[Rival]:
    """The campaigns that decide before `campaign` at `slot` (an aware time; seconds are ignored),
    highest rank first. None for a campaign without a scheduled first step."""
    me = program.campaigns[campaign]
    if not _scheduled_at(me, None):
        return []
    slot = slot.astimezone(UTC).replace(second=0, microsecond=0)
    occurrence = slot.strftime("%Y-%m-%dT%H:%MZ")
    out = []
    for other in program.campaigns.values():
        if other.name == me.name or not _ahead(other, me) or not _scheduled_at(other, slot):
            continue
        why = _shared(program, me, other)
        if why:
            out.append(Rival(other.name, other.steps[0].name, occurrence, other.priority, why))
    return sorted(out, key=lambda r: (-r.priority, r.campaign))


def _ahead(a: Campaign, b: Campaign) -> bool:
    """Whether `a` decides before `b`: higher priority, then name order."""
    return (-a.priority, a.name) < (-b.priority, b.name)


def _scheduled_at(c: Campaign, slot: datetime | None) -> bool:
    """Whether the campaign's first step is scheduled (and, given a slot, fires exactly then)."""
    if not c.steps or c.schedule is None or c.schedule.kind == "event":
        return False
    if slot is None:
        return True
    return latest_fire(schedule_plan(c.schedule), slot) == slot  # None outside the campaign's dates


def _shared(program: Program, a: Campaign, b: Campaign) -> str | None:
    """What makes the two first steps compete for a user, or None."""
    if a.exclusive and a.exclusive == b.exclusive:
        return f"exclusive group {a.exclusive}"
    ca, cb = _channels(a), _channels(b)
    for cap in program.policy.caps:
        per = f" per {cap.per}" if cap.per else ""
        if cap.unused or cap.unit == "coupon":
            if _gives_coupons(a) and _gives_coupons(b):
                return f"policy cap {cap.count} {'unused ' if cap.unused else ''}coupons{per}"
        elif cap.unit == "message":
            if ca and cb:
                return f"policy cap {cap.count} messages{per}"
        elif cap.unit in ca and cap.unit in cb:
            return f"policy cap {cap.count} {cap.unit}{per}"
    return None


def _channels(c: Campaign) -> set[str]:
    """Every channel the first step may send on (fallbacks included)."""
    return {ref.channel for act in c.steps[0].all_actions() for ref in act.notify or []}


def _gives_coupons(c: Campaign) -> bool:
    names = set()
    for act in c.steps[0].all_actions():
        if act.give == "*":
            names |= set(c.resources)
        elif act.give:
            names.add(act.give)
    return any(isinstance(c.resources.get(n), Coupon) for n in names)
