"""A run's counters and the ledger -> the run's summary (what `camp run`, the run record and the Prefect
artifacts show): counts by status and reason, cost, budget left, forecast and actual spend, the follow-ups and
releases the run made due. `summarize` for a step's run, `release_summary` for a release-only run.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from compiler.clock import ceil_minute
from compiler.plan import StepPlan
from runtime import journey
from runtime.context import Run, RunContext
from runtime.history import coupons_over, ledger_budget
from runtime.ledger import Ledger
from runtime.ledger.status import COUNTED


def summarize(run: Run, audience: int) -> dict:
    """The summary of a step's run over `audience` recipients (dry runs: from the counters alone)."""
    with run.counters.timing("summary"):
        return _summarize(run, audience)


def _summarize(run: Run, audience: int) -> dict:
    ctx, n = run.ctx, run.counters
    p = ctx.plan
    out: dict = {"campaign": p.campaign, "step": p.step, "occurrence": p.occurrence, "plan_hash": ctx.plan_hash,
                 "run_id": ctx.run_id, "audience": audience, "dry_run": ctx.dry_run}
    if ctx.dry_run:
        out["statuses"] = dict(n.counts)
        out["reasons"] = dict(n.reasons)
        out["cost"] = str(n.cost)
    else:
        rows = ctx.ledger.status_counts(ctx.occ)
        statuses: Counter = Counter()
        reasons: Counter = Counter()
        cost = Decimal(0)
        for status, reason, k, c in rows:
            statuses[status] += k
            if reason:
                reasons[f"{status}: {reason}"] += k
            if status in COUNTED:
                cost += Decimal(c or 0)
        out["statuses"] = dict(statuses)
        out["reasons"] = dict(reasons)
        out["cost"] = str(cost)
        out["this_run"] = dict(n.counts)
    if p.budget_total is not None or p.budget_daily is not None:
        b = ledger_budget(ctx) if not ctx.dry_run else (run.caches.dry_budget or ledger_budget(ctx))
        day = ctx.as_of.astimezone(ZoneInfo(p.timezone)).date()
        out["budget_left"] = {"total": str(b.total_left()) if b.total_left() is not None else None,
                              "today": str(b.daily_left(day)) if b.daily_left(day) is not None else None}
    if not ctx.dry_run:
        out["spend"] = _spend(ctx)
    if n.left_out:
        out["left_out_by_budget"] = {"first_users": n.left_out,
                                     "rule": "recipients are served in user id order; those after the budget "
                                             "ran out get budget_exhausted"}
    if not ctx.dry_run:
        out["follow_ups"] = _follow_ups(run)
        out["releases"] = [t.isoformat() for t in _releases(ctx.ledger, p.campaign, ctx.as_of)]
    if n.unknown_zones:
        out["unknown_time_zones"] = n.unknown_zones
    out["currency"] = p.currency
    out["timezone"] = p.timezone
    out["forecast"] = _forecast_basis(p)
    points = [r for r in p.resources.values() if r.kind == "points"]
    if points:
        out["points_cost"] = str(points[0].unit_cost or Decimal(0))  # what one point costs (camp.toml [points])
    out["timings"] = {k: round(v, 3) for k, v in n.timings.items()}
    return out


def release_summary(run: Run) -> dict:
    """What a release-only run did: counts of this run, the follow-ups and further releases it made due."""
    ctx, n = run.ctx, run.counters
    p = ctx.plan
    return {"campaign": p.campaign, "step": p.step, "occurrence": p.occurrence, "release": True,
            "run_id": ctx.run_id, "dry_run": False, "audience": 0, "statuses": {}, "reasons": dict(n.reasons),
            "cost": "0", "this_run": dict(n.counts), "currency": p.currency, "timezone": p.timezone,
            "follow_ups": _follow_ups(run),
            "releases": [t.isoformat() for t in _releases(ctx.ledger, p.campaign, ctx.as_of)]}


def _follow_ups(run: Run) -> list[dict]:
    p = run.ctx.plan
    return [{"step": s, "occurrence": o, "at": t.isoformat()}
            for s, o, t in journey.follow_ups(run.ctx.ledger, p.campaign, run.counters.touched, p.timezone)]


def _releases(lg: Ledger, campaign: str, after: datetime) -> list[datetime]:
    """When this campaign's deferred deliveries (quiet hours, local-time sends) fall due after `after`: one
    time per distinct minute (rounded up: runs are scheduled to the minute), for release runs."""
    return sorted({max(ceil_minute(t), after.astimezone(UTC)) for t in lg.deferred_times(campaign)})


def _spend(ctx: RunContext) -> dict:
    """The campaign's money so far: `forecast`, what its decisions reserved (messages and resources at their
    forecast, and red packet payouts beyond their reservation), against `actual`, what its resources cost:
    redeemed coupons' discounts, points issued, red packet shares paid (`camp sync` and shares bring them);
    `coupons_beyond_forecast`, per local day, what redeemed discounts went beyond their coupons' forecast (the
    budget's reconciliation: it comes off that day's budget and the total)."""
    s = ctx.ledger.actual_spend(ctx.plan.campaign)
    return {"forecast": str(s.forecast),
            "actual": {"coupons": str(s.coupons), "points": str(s.points), "red_packets": str(s.red_packets),
                       "total": str(s.actual)},
            "coupons_beyond_forecast": {d.isoformat(): str(v) for d, v in sorted(coupons_over(ctx).items())}}


def _forecast_basis(p: StepPlan) -> dict[str, str]:
    """What the cost is made of: a forecast until redemptions are known. resource -> expected redemption
    (the fraction of issued value counted: the campaign's `expect redemption`, else all of it)."""
    return {name: str((r.forecast_cost / r.value).quantize(Decimal("0.0001")))
            for name, r in sorted(p.resources.items()) if r.kind in ("coupon", "red_packet") and r.value}
