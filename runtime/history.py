"""The ledger -> what a decision, a re-check and a message read of the past: counted deliveries a cap or an
exclusive hold can see (`past_deliveries`), the campaign's budget as spent so far, reconciled with actual spend
(`ledger_budget`), and
the coupons messages speak of (`coupon_contexts` by delivery, `journey_coupons` from earlier steps).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from compiler.clock import minus
from compiler.plan import CapPlan
from runtime.context import RunContext
from runtime.decide import Budget, Past, Seen
from runtime.ledger.status import COUNTED
from runtime.reconcile import excess_by_day
from runtime.render import coupon_context
from runtime.retention import plan_lookback


def seen_counts(ctx: RunContext, users: list[str] | None, at: datetime, snapshot: bool = False) -> dict[str, Seen]:
    """user -> what the plan's caps and exclusive hold see of their counted deliveries at `at` (any campaign),
    added up by the ledger in one query over the longest window (users None: every user with a delivery in it;
    one query for a whole run; `snapshot`: only the users of the run's snapshot in the ledger). Users missing from
    the result have seen nothing. Gives `decide` the same answer as the rows of `past_deliveries` do."""
    p = ctx.plan
    since = _since(ctx, at)
    if since is None:
        return {}
    counts: list[tuple[str | None, str | None, datetime | None, int] | None] = []
    for c in p.caps:
        floor = None if c.unit == "coupon" or c.unused else _floor(c)
        counts.append(None if floor is None else (None if c.unit == "message" else c.unit,
                                                   p.campaign if c.scope == "campaign" else None,
                                                   minus(at, c.per.dur(), p.timezone) if c.per else None, floor))
    hold = (p.exclusive, p.campaign, minus(at, p.exclusive_hold.dur(), p.timezone)) if p.exclusive else None
    rows = ctx.ledger.seen_by_user(COUNTED, since, counts, hold, users, ctx.occ if snapshot else None)
    alike: dict[tuple, Seen] = {}  # users with the same counts share one Seen (building a frozen one is the cost)
    out: dict[str, Seen] = {}
    for r in rows:
        key = r[1:]
        s = alike.get(key)
        if s is None:
            s = alike[key] = Seen(tuple(r[1:-1]), r[-1])
        out[r[0]] = s
    return out


def _floor(cap: CapPlan) -> int | None:
    """The fewest deliveries with which the cap stops anyone (its least limit above 0 over the tiers): a user with
    fewer is decided as one with none. A limit of 0 stops every user it applies to whatever they were sent (`decide`
    sees 0 >= 0 for a user missing from the counts), so it needs no count; None: no limit needs one."""
    limits = [n for n in ([cap.count] if not cap.by else [*cap.tiers.values(), cap.default]) if n]
    return min(limits) if limits else None


def _since(ctx: RunContext, at: datetime) -> datetime | None:
    """The earliest due time a cap or the exclusive hold of the plan can see at `at`: the longest window, or the
    beginning when a message cap has no window; None when none looks at past deliveries. (Retention: a counted
    delivery due before the longest window of every plan still running is never read again; runtime.retention.)"""
    p = ctx.plan
    if any(c.unit != "coupon" and not c.unused and not c.per for c in p.caps):
        return datetime(1970, 1, 1, tzinfo=UTC)
    return plan_lookback(p, at)


def past_deliveries(ctx: RunContext, users: list[str], at: datetime) -> list[tuple[str, str, Past]]:
    """(key, user, delivery) of every counted delivery of these users that a cap or exclusive hold of
    the plan can see at `at` (any campaign)."""
    since = _since(ctx, at)
    if since is None:
        return []
    return [(r.idempotency_key, r.user_id, Past(r.campaign, r.channel, r.due_at, r.exclusive_group))
            for r in ctx.ledger.counted_deliveries(users, COUNTED, since)]


def ledger_budget(ctx: RunContext) -> Budget:
    """The campaign's budget with what the ledger says it reserved, per day, reconciled with actual spend: what
    redeemed coupons' discounts went beyond the forecast reserved for the campaign's coupons counts too, on the
    local day of the redeeming orders (in the day's room and in the total)."""
    p = ctx.plan
    spent = ctx.ledger.spend(p.campaign)
    over = coupons_over(ctx) if p.budget_total is not None or p.budget_daily is not None else {}
    return Budget(p.budget_total, p.budget_daily, before=spent, over=over)


def coupons_over(ctx: RunContext) -> dict[date, Decimal]:
    """Redeemed discounts beyond the forecast their coupons reserved (value x the plan's expected redemption), per
    local day of the redeeming order (the workspace's zone, as every budget day), by the rule of runtime.reconcile;
    summed over the days, each code's max(0, discounts - forecast). Empty while redemptions stay within the
    forecast. Points cost what they reserved and red packet payouts beyond their reservation are reserved as they
    are paid (runtime.shares)."""
    p = ctx.plan
    rates = {r.code: r.forecast_cost / r.value for r in p.resources.values() if r.kind == "coupon" and r.value}
    forecasts = {code: value * rates.get(code, Decimal(1)) for code, value, _ in ctx.ledger.coupon_money(p.campaign)}
    if not forecasts:
        return {}
    return excess_by_day(forecasts, ctx.ledger.coupon_discounts_by_day(p.campaign, p.timezone))


def coupon_contexts(ctx: RunContext, keys: list[str]) -> dict[str, dict]:
    """delivery key -> its coupon as a template sees it."""
    if not keys:
        return {}
    out = {}
    names = {r.code: n for n, r in ctx.plan.resources.items() if r.kind == "coupon"}
    for c in ctx.ledger.coupons_by_key(keys):
        out[c.idempotency_key] = coupon_context({"name": names.get(c.code), "coupon_id": c.coupon_id,
                                                 "issued_at": c.issued_at or c.reserved_at,
                                                 "usable_from": c.usable_from, "usable_to": c.usable_to}, ctx.plan)
    return out


def journey_coupons(ctx: RunContext, users: list[str]) -> dict[str, dict]:
    """user -> the coupon an earlier step of this journey gave them, for a follow-up that speaks of it
    ("your coupon expires on ..."); the latest step's when several did."""
    p = ctx.plan
    if p.journey is None or not users or not any(r.kind == "coupon" for r in p.resources.values()):
        return {}
    keys = {s: [f"{p.campaign}/{s}/{p.occurrence}/{u}" for u in users] for s in p.journey.earlier}
    found = coupon_contexts(ctx, [k for ks in keys.values() for k in ks])
    out = {}
    for s in p.journey.earlier:
        for u, k in zip(users, keys[s], strict=True):
            if k in found:
                out[u] = found[k]
    return out
