"""A checked campaign + the workspace's templates -> its CampaignPlan: everything about the campaign that
no occurrence changes, with the audience as canonical IR (no positions, no source text, no time), so the
plan's hash changes exactly when what the campaign does changes.

    campaign_plan(program, campaign, dialect, templates, workspace) -> CampaignPlan
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from compiler import ir as I
from compiler.arms import step_arms
from compiler.journey import journey_plan
from compiler.plan import CampaignPlan, CapPlan, NextStep, PlanError, PlannedStep, ResourcePlan, dur_plan
from compiler.program import Campaign, CapRule, Coupon, MoneyAmount, Points, Program, RedPacket, Step
from compiler.schedule import schedule_plan
from dsl.span import Span


def campaign_plan(program: Program, c: Campaign, dialect: str, templates: Path, workspace: str) -> CampaignPlan:
    """The campaign's time-independent plan. A step that cannot be planned keeps its reason in `problem`."""
    trigger = c.schedule.condition if c.schedule else None
    conditions = [c.audience, *c.excludes, c.goal, trigger]
    conditions += [e for s in c.steps for e in (s.unless, *(cond for cond, _ in s.branches))]
    labelled = {r.by for r in (*c.caps, *program.policy.caps) if r.by}
    audience = {"audience": _canonical(c.audience), "excludes": _canonical(c.excludes), "goal": _canonical(c.goal),
                "trigger": _canonical(trigger), **_definitions(program, conditions, labelled)}
    quiet = [q for q in (program.policy.quiet, c.quiet) if q]
    return CampaignPlan(
        workspace=workspace, campaign=c.name, title=c.title, owner=c.owner, timezone=program.timezone,
        currency=program.currency, dialect=dialect, audience=audience, holdout=c.holdout,
        resources={n: _resource(n, r, c.redemption, program) for n, r in c.resources.items()},
        budget_total=_money(c.budget_total), budget_daily=_money(c.budget_daily),
        caps=[_cap(r, "campaign") for r in c.caps] + [_cap(r, "policy") for r in program.policy.caps],
        quiet=list(dict.fromkeys(quiet)), priority=c.priority, exclusive=c.exclusive,
        schedule=schedule_plan(c.schedule) if c.schedule else None,
        steps=[_planned(program, c, s, templates) for s in c.steps])


def _planned(program: Program, c: Campaign, s: Step, templates: Path) -> PlannedStep:
    index = c.steps.index(s)
    nxt = c.steps[index + 1] if index + 1 < len(c.steps) else None
    out = PlannedStep(name=s.name, after=dur_plan(s.after), unless=_canonical(s.unless),
                      conditions=[_canonical(cond) for cond, _ in s.branches], journey=journey_plan(c, s),
                      next=NextStep(step=nxt.name, after=dur_plan(nxt.after)) if nxt else None)
    try:
        out.arms, out.reads = step_arms(program, c, s, templates)
    except PlanError as exc:
        out.problem = str(exc)
    return out


def _definitions(program: Program, roots: list, labelled: set[str]) -> dict[str, Any]:
    """The segments, classifications and schema parts the conditions read, followed through the segments and
    classifications they name, each as canonical IR."""
    segments: dict[str, Any] = {}
    classifications: dict[str, Any] = {}
    events: set[str] = set()
    todo = [r for r in roots if r is not None]
    todo += [rule for name in sorted(labelled) if name in program.classifications
             for _, rule in program.classifications[name].rules]
    classifications.update({n: _canonical(program.classifications[n].rules) for n in labelled
                            if n in program.classifications})
    while todo:
        for n in I.walk(todo.pop()):
            if isinstance(n, I.InSegment) and n.name not in segments and n.name in program.segments:
                segments[n.name] = _canonical(program.segments[n.name].expr)
                todo.append(program.segments[n.name].expr)
            elif isinstance(n, (I.LabelIs, I.Label, I.LabelMoved)) and n.classification not in classifications \
                    and n.classification in program.classifications:
                rules = program.classifications[n.classification].rules
                classifications[n.classification] = _canonical(rules)
                todo += [cond for _, cond in rules if cond is not None]
            elif isinstance(n, (I.Agg, I.EventField)):
                events.add(n.event)
    schema = program.schema
    return {"segments": segments, "classifications": classifications,
            "schema": {"users": _canonical(schema.users), "tags": _canonical(schema.tags),
                       "consent": _canonical(schema.consent),
                       "events": {e: _canonical(schema.events[e]) for e in sorted(events) if e in schema.events}}}


def _canonical(x: Any) -> Any:
    """IR (and the schema's dataclasses) as plain JSON data: each dataclass as its class name and the fields
    that take part in equality; source positions (Span, and fields declared compare=False) are left out.
    Anything else raises: the plan never holds a repr that could carry positions."""
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, Decimal):
        return str(x)
    if isinstance(x, (date, datetime)):
        return x.isoformat()
    if isinstance(x, (list, tuple)):
        return [_canonical(v) for v in x if not isinstance(v, Span)]
    if isinstance(x, dict):
        return {str(k): _canonical(v) for k, v in x.items()}
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        out: dict[str, Any] = {"node": type(x).__name__}
        for f in dataclasses.fields(x):
            v = getattr(x, f.name)
            if f.compare and not isinstance(v, Span):
                out[f.name] = _canonical(v)
        return out
    raise TypeError(f"no canonical form for {type(x).__name__}")


def _money(m: MoneyAmount | None) -> Decimal | None:
    return m.amount if m is not None else None


def _resource(name: str, r: Coupon | Points | RedPacket, redemption: Decimal | None, program: Program) -> ResourcePlan:
    if isinstance(r, Coupon):
        value = _money(r.value)
        return ResourcePlan(
            name=name, kind="coupon", code=r.code, title=r.title, value=value,
            currency=r.value.currency if r.value else None, min_spend=_money(r.min_spend),
            scope={k: list(v) for k, v in r.scope.items()},
            usable_for=dur_plan(r.usable_for),
            usable_from=r.usable_from, usable_to=r.usable_to,
            forecast_cost=(value or Decimal(0)) * (redemption if redemption is not None else 1))
    if isinstance(r, Points):
        return ResourcePlan(name=name, kind="points", value=r.amount, currency=program.currency,
                            unit_cost=program.point_cost, issuer=program.points_issuer,
                            forecast_cost=r.amount * program.point_cost)  # points are certain: no redemption rate
    value = _money(r.value)
    return ResourcePlan(name=name, kind="red_packet", code=r.name, title=r.title, value=value,
                        currency=r.value.currency if r.value else None,
                        forecast_cost=(value or Decimal(0)) * (redemption if redemption is not None else 1),
                        decay=r.decay, floor=_money(r.floor), fixed_after=r.fixed_after)


def _cap(rule: CapRule, scope: Literal["campaign", "policy"]) -> CapPlan:
    per = f" per {rule.per}" if rule.per else ""
    what = "unused coupons" if rule.unused else {"message": "messages", "coupon": "coupons"}.get(rule.unit, rule.unit)
    text = f"cap {rule.count if not rule.by else 'by ' + rule.by} {what} per user{per} ({scope})"
    return CapPlan(scope=scope, unit=rule.unit, count=rule.count, unused=rule.unused, by=rule.by,
                   tiers=dict(rule.tiers), default=rule.default, text=text,
                   per=dur_plan(rule.per))

