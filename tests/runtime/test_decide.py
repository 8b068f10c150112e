"""The decision stage on its own: quiet hours across midnight and DST, tiered caps, fallback, coupons,
exclusive groups, variants, and the budget (a property: reservations never exceed it)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.plan import ArmPlan, CapPlan, ChannelPlan, Duration, ResourcePlan, StepPlan
from runtime.decide import Budget, HeldCoupon, Past, Recipient, decide, quiet_until, variant_of
from tests.profiles import examples

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def plan(**kw) -> StepPlan:
    base = dict(workspace="t", timezone="Asia/Shanghai", currency="CNY", campaign="c", step="s", occurrence="o",
                audience_as_of=NOW, dialect="duckdb", recipients_sql="", user_fields={"timezone": "text"},
                tz_field="timezone", labels=[], consent_channels=["push", "sms"], holdout=Decimal(0),
                arms=[ArmPlan(kind="all", name="all", notify=[ChannelPlan(channel="push"),
                                                              ChannelPlan(channel="sms", cost=Decimal("0.05"))])],
                resources={}, caps=[], quiet=[], priority=0)
    base.update(kw)
    return StepPlan(**base)


def who(uid="1", consent=("push", "sms"), tz=None, labels=None, held=False) -> Recipient:
    return Recipient(0, uid, held, {"timezone": tz}, labels or {}, {c: True for c in consent})


def cap(unit, count, per_days=None, scope="policy", **kw) -> CapPlan:
    return CapPlan(scope=scope, unit=unit, count=count, text=f"{unit} {count}",
                   per=Duration(value=per_days, unit="d") if per_days else None, **kw)


def test_quiet_hours_wrap_midnight_and_end_at_the_users_local_opening():
    london = ZoneInfo("Europe/London")
    assert quiet_until([("22:00", "08:00")], NOW, london) == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert quiet_until([("22:00", "08:00")], NOW, ZoneInfo("Asia/Shanghai")) is None
    late = datetime(2026, 12, 1, 22, 30, tzinfo=london)
    assert quiet_until([("22:00", "08:00")], late, london) == datetime(2026, 12, 2, 8, 0, tzinfo=london)
    # overlapping windows: moved to the end of the last one
    assert quiet_until([("22:00", "08:00"), ("07:00", "09:00")], NOW, london) == datetime(2026, 12, 1, 9, 0,
                                                                                       tzinfo=UTC)
    # the boundaries: 08:00 is open, 21:59:59 is open, 22:00 is quiet
    assert quiet_until([("22:00", "08:00")], datetime(2026, 12, 1, 8, 0, tzinfo=london), london) is None
    assert quiet_until([("22:00", "08:00")], datetime(2026, 12, 1, 21, 59, 59, tzinfo=london), london) is None
    assert quiet_until([("22:00", "08:00")], datetime(2026, 12, 1, 22, 0, tzinfo=london), london) is not None


def test_quiet_hours_across_a_daylight_saving_change():
    ny = ZoneInfo("America/New_York")
    # 2026-03-08: clocks go from 02:00 to 03:00; a quiet window 01:00-02:30 ends at 03:00 local (02:30 does not exist)
    at = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)  # 01:30 EST
    end = quiet_until([("01:00", "02:30")], at, ny)
    assert end is not None and end > at and end.astimezone(ny).hour == 3
    # 2026-11-01: 01:00-02:00 happens twice; the window ends after the wall clock reads 08:00
    fall = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    assert quiet_until([("22:00", "08:00")], fall, ny) == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)  # 08:00 EST


def test_fallback_on_consent_and_caps_and_the_reason_when_nothing_is_left():
    p = plan(caps=[cap("push", 1, 7)])
    assert decide(p, who(consent=("sms",)), [], [], Budget(None, None), NOW).channel == "sms"
    past = [Past("other", "push", NOW - timedelta(days=1), None)]
    assert decide(p, who(), past, [], Budget(None, None), NOW).channel == "sms"
    old = [Past("other", "push", NOW - timedelta(days=7, seconds=1), None)]  # outside the window
    assert decide(p, who(), old, [], Budget(None, None), NOW).channel == "push"
    at_edge = [Past("other", "push", NOW - timedelta(days=7), None)]  # window [now-7d, now): inside
    assert decide(p, who(), at_edge, [], Budget(None, None), NOW).channel == "sms"
    d = decide(p, who(consent=("push",)), past, [], Budget(None, None), NOW)
    assert (d.status, d.reason) == ("suppressed", "cap:push 1; no_consent:sms")


def test_tiered_caps_follow_the_users_label_and_campaign_caps_count_only_the_campaign():
    tiered = cap("message", 0, 1, by="engagement", tiers={"high": 2, "low": 1}, default=None)
    p = plan(caps=[tiered], labels=["engagement"])
    one = [Past("other", "push", NOW - timedelta(hours=3), None)]
    assert decide(p, who(labels={"engagement": "high"}), one, [], Budget(None, None), NOW).status == "pending"
    assert decide(p, who(labels={"engagement": "low"}), one, [], Budget(None, None), NOW).status == "suppressed"
    assert decide(p, who(labels={"engagement": "none"}), one * 5, [], Budget(None, None), NOW).status == "pending"
    mine = plan(caps=[cap("message", 1, 7, scope="campaign")])
    assert decide(mine, who(), one, [], Budget(None, None), NOW).status == "pending"
    assert decide(mine, who(), [Past("c", "sms", NOW - timedelta(days=1), None)], [], Budget(None, None),
                  NOW).status == "suppressed"


def test_a_redeemed_coupon_frees_the_unused_cap_and_the_same_code_but_still_counts_in_a_coupon_cap():
    """`camp sync` marks coupons redeemed or expired (unused=False): `cap N unused coupons` and "already holds an
    unused CODE" stop counting them; `cap N coupons per user per D` counts every coupon given in its window."""
    coupon = ResourcePlan(name="T", kind="coupon", code="T10", value=Decimal(10), forecast_cost=Decimal(3))
    arms = [ArmPlan(kind="all", name="all", give=["T"], notify=[ChannelPlan(channel="push")])]
    valid = NOW + timedelta(days=3)
    used = [HeldCoupon("T10", "c", NOW - timedelta(days=1), valid, unused=False)]
    unused_cap = plan(resources={"T": coupon}, caps=[cap("coupon", 1, unused=True, scope="campaign")], arms=arms)
    assert decide(unused_cap, who(), [], used, Budget(None, None), NOW).status == "pending"
    assert decide(unused_cap, who(), [], [dataclasses.replace(used[0], unused=True)], Budget(None, None),
                  NOW).reason == "coupon:already holds an unused T10"
    window_cap = plan(resources={"T": coupon}, caps=[cap("coupon", 1, per_days=7, scope="campaign")], arms=arms)
    assert decide(window_cap, who(), [], used, Budget(None, None), NOW).reason == "cap:coupon 1"


def test_coupons_unused_cap_same_code_and_exclusive_groups():
    coupon = ResourcePlan(name="T", kind="coupon", code="T10", value=Decimal(10), forecast_cost=Decimal(3))
    p = plan(resources={"T": coupon}, caps=[cap("coupon", 2, unused=True, scope="campaign")],
             arms=[ArmPlan(kind="all", name="all", give=["T"], notify=[ChannelPlan(channel="push")])],
             exclusive="coupon_push")
    valid = NOW + timedelta(days=3)
    held = [HeldCoupon("X1", "a", NOW - timedelta(days=1), valid), HeldCoupon("X2", "b", NOW, valid)]
    assert decide(p, who(), [], held, Budget(None, None), NOW).reason.startswith("cap:")
    expired = [HeldCoupon("X1", "a", NOW - timedelta(days=9), NOW - timedelta(seconds=1))] * 5
    assert decide(p, who(), [], expired, Budget(None, None), NOW).status == "pending"
    same = [HeldCoupon("T10", "c", NOW - timedelta(days=1), valid)]
    assert decide(p, who(), [], same, Budget(None, None), NOW).reason == "coupon:already holds an unused T10"
    other = [Past("rival", "push", NOW - timedelta(days=6), "coupon_push")]
    assert decide(p, who(), other, [], Budget(None, None), NOW).reason == "exclusive:coupon_push held by rival"
    stale = [Past("rival", "push", NOW - timedelta(days=8), "coupon_push")]
    d = decide(p, who(), stale, [], Budget(None, None), NOW)
    assert d.status == "pending" and d.cost == Decimal(3)


def test_variants_split_deterministically_by_share():
    p = plan(arms=[ArmPlan(kind="variant", name="a", share=Decimal("0.3"), notify=[ChannelPlan(channel="push")]),
                   ArmPlan(kind="variant", name="b", share=Decimal("0.7"), notify=[ChannelPlan(channel="push")])])
    names = [variant_of(p, str(u)).name for u in range(4000)]
    assert names == [variant_of(p, str(u)).name for u in range(4000)]
    assert 0.27 < names.count("a") / 4000 < 0.33


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["push", "sms"]), st.integers(0, 2)), max_size=60),
       st.integers(0, 400), st.one_of(st.none(), st.integers(0, 200)))
def test_reservations_never_exceed_the_total_or_the_daily_budget(users, total_cents, daily_cents):
    p = plan(arms=[ArmPlan(kind="all", name="all", notify=[ChannelPlan(channel="sms", cost=Decimal("0.07"))])])
    total = Decimal(total_cents) / 100
    daily = Decimal(daily_cents) / 100 if daily_cents is not None else None
    budget = Budget(total, daily, before={date(2026, 12, 1): Decimal("0.05")})
    spent = Decimal("0.05")
    for i, (_, day_offset) in enumerate(users):
        d = decide(p, who(str(i), consent=("sms",)), [], [], budget, NOW + timedelta(days=day_offset))
        if d.status == "pending":
            spent += d.cost
        else:
            assert d.status == "budget_exhausted"
    assert spent <= max(total, Decimal("0.05"))
    for day, amount in budget.spent.items():
        if daily is not None:
            assert amount + budget.before.get(day, 0) <= max(daily, budget.before.get(day, 0))
