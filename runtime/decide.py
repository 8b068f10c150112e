"""One recipient + what the ledger already holds for them -> a Decision (no I/O here).

Stages, in order; the first that stops the user gives the status and reason:
  holdout -> arm (variant by hash, branch by SQL) -> coupons (unused cap, same code held, coupon caps)
  -> exclusive group -> channel fallback chain (consent, address, caps per channel and window, tiered)
  -> quiet hours (deferred with not_before, never dropped) -> budget (total and per day, reserved: the forecast
  of messages and resources, plus what actual spend went beyond its forecast).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from compiler.clock import fire_instant, minus
from compiler.plan import ArmPlan, CapPlan, ChannelPlan, StepPlan
from compiler.zones import zone_or_none
from runtime.ledger.status import Status


@dataclass
class Recipient:
    seq: int
    user_id: str
    held_out: bool
    fields: dict  # user field -> value
    labels: dict  # classification -> label
    consent: dict  # channel -> bool
    branch: int | None = None
    skip: str | None = None  # a journey follow-up: why this user of the cohort is skipped (goal reached, unless, ...)


@dataclass(frozen=True)
class Past:
    """A delivery already in the ledger for this user (any campaign)."""

    campaign: str
    channel: str | None
    due_at: datetime
    exclusive_group: str | None


@dataclass(frozen=True)
class Seen:
    """A user's counted deliveries as this plan's caps and exclusive hold see them, added up in the ledger's SQL
    (runtime.history.seen_counts) instead of one `Past` per row: `hits[i]` is what plan.caps[i] counts (0 for
    coupon and unused-coupon caps, which read the coupons), `holder` the first (by name) other campaign of the
    plan's exclusive group holding the user. `decide` takes either this or the rows themselves, and decides the
    same (tests/runtime/test_seen.py)."""

    hits: tuple[int, ...] = ()
    holder: str | None = None


NOTHING_SEEN = Seen()
History = list[Past] | Seen  # what `decide` and `channel_block` take of a user's past


@dataclass(frozen=True)
class HeldCoupon:
    code: str
    campaign: str
    reserved_at: datetime
    usable_to: datetime
    unused: bool = True  # False once an order redeemed it or it expired (`camp sync`): still counts in coupon caps


@dataclass
class Budget:
    """Room left, reserved as decisions are made; a None limit means unlimited."""

    total_limit: Decimal | None
    daily_limit: Decimal | None
    before: dict[date, Decimal] = field(default_factory=dict)  # spent per local day before this batch
    spent: dict[date, Decimal] = field(default_factory=dict)  # reserved by this batch, per local day
    # actual spend beyond its forecast (redeemed coupons' discounts) per local day (runtime.reconcile): it comes off
    # that day's room and, summed, off the total
    over: dict[date, Decimal] = field(default_factory=dict)

    def total_left(self) -> Decimal | None:
        if self.total_limit is None:
            return None
        return (self.total_limit - sum(self.before.values(), Decimal(0)) - sum(self.spent.values(), Decimal(0))
                - sum(self.over.values(), Decimal(0)))

    def daily_left(self, day: date) -> Decimal | None:
        if self.daily_limit is None:
            return None
        return (self.daily_limit - self.before.get(day, Decimal(0)) - self.spent.get(day, Decimal(0))
                - self.over.get(day, Decimal(0)))

    def reserve(self, day: date, cost: Decimal) -> str | None:
        total, daily = self.total_left(), self.daily_left(day)
        if total is not None and cost > total:
            return "budget:total"
        if daily is not None and cost > daily:
            return f"budget:daily {day}"
        self.spent[day] = self.spent.get(day, Decimal(0)) + cost
        return None


@dataclass
class Decision:
    """What the engine decided for a user: PENDING or DEFERRED (GOING) let the delivery go on; any other status
    stops it."""

    status: Status
    arm: str | None
    channel: str | None = None
    reason: str | None = None
    cost: Decimal = Decimal(0)
    due_at: datetime | None = None
    not_before: datetime | None = None
    give: list[str] = field(default_factory=list)


GOING = (Status.PENDING, Status.DEFERRED)  # what a decision lets go on: to send now, or later


def variant_of(plan: StepPlan, user_id: str) -> ArmPlan:
    """Deterministic split: md5("campaign:step:user") in 0..9999 against the cumulative shares."""
    h = int(hashlib.md5(f"{plan.campaign}:{plan.step}:{user_id}".encode()).hexdigest()[:8], 16) % 10000
    edge = Decimal(0)
    for arm in plan.arms:
        edge += (arm.share or Decimal(0)) * 10000
        if h < edge:
            return arm
    return plan.arms[-1]


def arm_of(plan: StepPlan, r: Recipient) -> ArmPlan | None:
    if plan.arms[0].kind == "variant":
        return variant_of(plan, r.user_id)
    if plan.arms[0].kind == "branch":
        return plan.arms[r.branch] if r.branch is not None else None
    return plan.arms[0]


def user_zone(plan: StepPlan, r: Recipient) -> ZoneInfo:
    """The user's zone; the workspace's when the user has none or one that is not a zone
    (`bad_zone` tells which users those are, for the run summary)."""
    name = r.fields.get(plan.tz_field) if plan.tz_field else None
    return (zone_or_none(str(name)) if name else None) or ZoneInfo(plan.timezone)


def bad_zone(plan: StepPlan, r: Recipient) -> bool:
    """The user has a time zone value that is not a zone (so the workspace's is used)."""
    name = r.fields.get(plan.tz_field) if plan.tz_field else None
    return bool(name) and zone_or_none(str(name)) is None


def quiet_until(windows: list[tuple[str, str]], at: datetime, zone: ZoneInfo) -> datetime | None:
    """When the quiet hours covering `at` (in the user's zone) end, in UTC; None when `at` is not quiet."""
    if not windows:
        return None
    current = at.astimezone(zone)
    moved = False
    for _ in range(2 * len(windows) + 1):  # overlapping windows: keep moving to the latest end
        end = _inside(windows, current)
        if end is None:
            return current.astimezone(UTC) if moved else None
        current, moved = end, True
    return current.astimezone(UTC)


def local_send_at(plan: StepPlan, zone: ZoneInfo) -> datetime | None:
    """A local-time send (`tz user`): the plan's wall-clock time in the user's zone, as an instant (UTC), placed
    as every scheduled time is (`compiler.clock.fire_instant`: a repeated time is its first occurrence, a
    skipped one is read with the offset after the change)."""
    if plan.local_send is None:
        return None
    return fire_instant(datetime.fromisoformat(plan.local_send), zone)


def _inside(windows: list[tuple[str, str]], local: datetime) -> datetime | None:
    t = local.time()
    for start_s, end_s in windows:
        start, end = time.fromisoformat(start_s), time.fromisoformat(end_s)
        if start <= end:
            inside = start <= t < end
            end_day = local.date()
        else:  # wraps midnight: 22:00-08:00
            inside = t >= start or t < end
            end_day = local.date() + timedelta(days=1) if t >= start else local.date()
        if inside:
            naive = datetime.combine(end_day, end)
            return naive.replace(tzinfo=local.tzinfo)  # wall-clock end; zoneinfo resolves DST gaps forward
    return None


def _cap_limit(cap: CapPlan, r: Recipient) -> int | None:
    if not cap.by:
        return cap.count
    label = r.labels.get(cap.by)
    if label in cap.tiers:
        return cap.tiers[label]
    return cap.default  # None: users with an unlisted label are not capped by this rule


@lru_cache(maxsize=1024)
def _window_start(as_of: datetime, per, zone: str) -> datetime:
    """Where a cap's window starts: the same for every user of a run, so computed once per (clock, window) rather
    than per user and cap (a wall-clock shift through dateutil was a third of deciding a 100k-user run)."""
    return minus(as_of, per, zone)


def _cap_hits(i: int, cap: CapPlan, plan: StepPlan, past: History, as_of: datetime) -> int:
    """How many of the user's counted deliveries plan.caps[i] counts at `as_of`."""
    if isinstance(past, Seen):
        return past.hits[i] if i < len(past.hits) else 0
    start = _window_start(as_of, cap.per.dur(), plan.timezone) if cap.per else None
    n = 0
    for p in past:
        if p.channel is None or (cap.unit != "message" and cap.unit != p.channel):
            continue
        if cap.scope == "campaign" and p.campaign != plan.campaign:
            continue
        if start is None or p.due_at >= start:
            n += 1
    return n


def channel_block(ch: ChannelPlan, plan: StepPlan, r: Recipient, past: History, as_of: datetime) -> str | None:
    if plan.consent_channels is not None and not r.consent.get(ch.channel):
        return f"no_consent:{ch.channel}"
    if ch.address_field and not r.fields.get(ch.address_field):
        return f"no_address:{ch.channel}"
    for i, cap in enumerate(plan.caps):
        if cap.unit in ("coupon",) or cap.unused:
            continue
        limit = _cap_limit(cap, r)
        if limit is not None and cap.unit in ("message", ch.channel) and _cap_hits(i, cap, plan, past, as_of) >= limit:
            return f"cap:{cap.text}"
    return None


def _coupon_block(plan: StepPlan, arm: ArmPlan, coupons: list[HeldCoupon], as_of: datetime) -> str | None:
    codes = [plan.resources[g].code for g in arm.give if plan.resources[g].kind == "coupon"]
    if not codes:
        return None
    valid = [c for c in coupons if c.unused and c.usable_to > as_of]
    for code in codes:
        if any(c.code == code for c in valid):
            return f"coupon:already holds an unused {code}"
    for cap in plan.caps:
        if cap.unused:
            if len(valid) + len(codes) > cap.count:
                return f"cap:{cap.text}"
        elif cap.unit == "coupon":
            start = _window_start(as_of, cap.per.dur(), plan.timezone) if cap.per else None
            held = [c for c in coupons if (cap.scope == "policy" or c.campaign == plan.campaign)
                    and (start is None or c.reserved_at >= start)]
            if len(held) + len(codes) > cap.count:
                return f"cap:{cap.text}"
    return None


def _holder(plan: StepPlan, past: History, as_of: datetime) -> str | None:
    """The other campaign of the plan's exclusive group that holds the user at `as_of` (the first by name when
    several do, so that the reason does not depend on the order the ledger returns rows in)."""
    if isinstance(past, Seen):
        return past.holder
    start = _window_start(as_of, plan.exclusive_hold.dur(), plan.timezone)
    return min((p.campaign for p in past if p.exclusive_group == plan.exclusive and p.campaign != plan.campaign
                and p.due_at >= start), default=None)


@dataclass(frozen=True)
class Ask:
    """What a recipient that only the budget can still stop would reserve: `judge`'s answer before `settle`."""

    arm: str
    channel: str | None
    cost: Decimal
    day: date  # the local day (the workspace's zone) the cost is reserved on
    due_at: datetime
    not_before: datetime | None
    give: tuple[str, ...]


def judge(plan: StepPlan, r: Recipient, past: History, coupons: list[HeldCoupon], as_of: datetime) -> Decision | Ask:
    """Every stage but the budget: the final Decision of a user they stop, else what the budget is asked for. It
    reads of `r` only what `runtime.decision_classes` keys on (users alike there are judged alike)."""
    if r.skip:
        return Decision(Status.SKIPPED, None, reason=r.skip, due_at=as_of)
    arm = arm_of(plan, r)
    name = arm.name if arm else None
    if r.held_out:
        return Decision(Status.HOLDOUT, name, due_at=as_of)
    if arm is None:
        return Decision(Status.SUPPRESSED, None, reason="no branch matches", due_at=as_of)
    zone = user_zone(plan, r)
    earliest = as_of  # when the message may go out at the earliest: now, or the user's local time (`tz user`)
    local = local_send_at(plan, zone)
    if local is not None:
        assert plan.local_send is not None  # local_send_at is None without it
        if local > as_of:
            earliest = local
        elif as_of.astimezone(zone).date() != local.astimezone(zone).date():
            # the user's day is over (a run started late): a birthday greeting a day late is worse than none
            return Decision(Status.SKIPPED, name, reason=f"local time passed: {plan.local_send.replace('T', ' ')} "
                                                    f"{zone.key}", due_at=as_of)
    blocked = _coupon_block(plan, arm, coupons, as_of)
    if blocked:
        return Decision(Status.SUPPRESSED, name, reason=blocked, due_at=as_of)
    if plan.exclusive:
        holder = _holder(plan, past, as_of)
        if holder:
            return Decision(Status.SUPPRESSED, name, reason=f"exclusive:{plan.exclusive} held by {holder}", due_at=as_of)
    channel = None
    if arm.notify:
        reasons = []
        for ch in arm.notify:
            why = channel_block(ch, plan, r, past, as_of)
            if why is None:
                channel = ch
                break
            reasons.append(why)
        if channel is None:
            return Decision(Status.SUPPRESSED, name, reason="; ".join(reasons), due_at=as_of)
    not_before = (quiet_until(plan.quiet, earliest, zone) if channel else None) or (
        earliest if earliest > as_of else None)
    due = not_before or as_of
    cost = (channel.cost if channel else Decimal(0)) + sum(
        (plan.resources[g].forecast_cost for g in arm.give), Decimal(0))
    return Ask(arm.name, channel.channel if channel else None, cost, due.astimezone(ZoneInfo(plan.timezone)).date(),
               due, not_before, tuple(arm.give))


def settle(ask: Ask, budget: Budget) -> Decision:
    """The budget's answer to `ask`: reserved (pending, or deferred to its not_before), or exhausted."""
    short = budget.reserve(ask.day, ask.cost)
    if short:
        return Decision(Status.BUDGET_EXHAUSTED, ask.arm, ask.channel, reason=short, due_at=ask.due_at)
    return Decision(Status.DEFERRED if ask.not_before else Status.PENDING, ask.arm, ask.channel, cost=ask.cost,
                    due_at=ask.due_at, not_before=ask.not_before, give=list(ask.give))


def decide(plan: StepPlan, r: Recipient, past: History, coupons: list[HeldCoupon], budget: Budget,
           as_of: datetime) -> Decision:
    """One recipient's decision: `judge`, then the budget (`settle`)."""
    j = judge(plan, r, past, coupons, as_of)
    return j if isinstance(j, Decision) else settle(j, budget)
