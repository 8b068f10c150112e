"""The ledger -> what a decision, a re-check and a message read of the past: counted deliveries a cap or an
exclusive hold can see (`past_deliveries`), the campaign's budget as spent so far, reconciled with actual spend
(`ledger_budget`), and
the coupons messages speak of (`coupon_contexts` by delivery, `journey_coupons` from earlier steps).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from compiler.clock import minus
from runtime.context import RunContext
from runtime.decide import COUNTED, Budget, Past
from runtime.reconcile import excess_by_day
from runtime.render import coupon_context


def past_deliveries(ctx: RunContext, users: list[str], at: datetime) -> list[tuple[str, str, Past]]:
    """(key, user, delivery) of every counted delivery of these users that a cap or exclusive hold of
    the plan can see at `at` (any campaign)."""
    p = ctx.plan
    windows = [minus(at, c.per.dur(), p.timezone) for c in p.caps if c.per and not c.unused]
    if p.exclusive:
        windows.append(minus(at, p.exclusive_hold.dur(), p.timezone))
    if not windows and not any(c.unit != "coupon" and not c.per and not c.unused for c in p.caps):
        return []
    since = min(windows) if windows else datetime(1970, 1, 1, tzinfo=UTC)
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
