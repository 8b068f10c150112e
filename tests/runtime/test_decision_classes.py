"""Differential property: deciding a batch class by class (`runtime.decision_classes.decide_rows`, what
runtime.batch runs) gives every user the decision `decide` gives them one by one, in order, with the same budget
left, on generated plans (arms by branch and by variant, tiered and windowed caps, a coupon with its caps, an
exclusive group, quiet hours, local-time sends, total and daily budgets with mixed costs) and generated users (zones
good, bad and missing, consent, addresses, labels, holdout, follow-up skips, counted pasts, held coupons), from
Recipients and from fetched snapshot rows."""

from __future__ import annotations

import copy
from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.plan import ArmPlan, ChannelPlan, ResourcePlan
from runtime.decide import NOTHING_SEEN, Budget, HeldCoupon, Recipient, Seen, decide
from runtime.decision_classes import RecipientView, RowView, decide_rows
from runtime.recipients import row_reader
from tests.profiles import examples
from tests.runtime.test_decide import NOW, cap, plan


def from_row(plan, names: dict[str, int], seq: int, row: tuple) -> Recipient:
    """The reference reading of a fetched row (what runtime.recipients.row_reader must give), column by column."""
    def get(col):
        return row[names[col]] if col in names else None

    return Recipient(seq=seq, user_id=str(row[0]), held_out=bool(row[names["held_out"]]),
                     fields={f: get(f"u_{f}") for f in plan.user_fields},
                     labels={c: get(f"class_{c}") for c in plan.labels},
                     consent={ch: bool(get(f"consent_{ch}")) for ch in (plan.consent_channels or [])},
                     branch=get("branch"), skip=get("skip"))


ZONES = [None, "Europe/London", "America/New_York", "Mars/Olympus", "", "Asia/Shanghai"]
COUPON = ResourcePlan(name="T", kind="coupon", code="T10", value=Decimal(10), forecast_cost=Decimal("0.03"))
PUSH, SMS = ChannelPlan(channel="push", cost=Decimal("0.01")), ChannelPlan(channel="sms", cost=Decimal("0.05"),
                                                                           address_field="phone")
HELD = [(), (HeldCoupon("T10", "c", NOW - timedelta(days=1), NOW + timedelta(days=3)),),
        (HeldCoupon("X1", "a", NOW - timedelta(days=2), NOW + timedelta(days=3)),
         HeldCoupon("X2", "b", NOW - timedelta(days=9), NOW + timedelta(days=3)))]


@st.composite
def plans(draw):
    kind = draw(st.sampled_from(["all", "branch", "variant"]))
    give = draw(st.sampled_from([[], ["T"]]))
    chains = [[PUSH, SMS], [SMS], [PUSH], [SMS, PUSH]]
    if kind == "all":
        arms = [ArmPlan(kind="all", name="all", give=give, notify=draw(st.sampled_from(chains)))]
    else:
        share = draw(st.sampled_from([Decimal("0.3"), Decimal("0.5")]))
        arms = [ArmPlan(kind=kind, name="a", share=share if kind == "variant" else None, give=give,
                        notify=draw(st.sampled_from(chains))),
                ArmPlan(kind=kind, name="b", share=1 - share if kind == "variant" else None,
                        notify=draw(st.sampled_from(chains)))]
    caps = draw(st.lists(st.sampled_from([
        cap("message", 2, 7), cap("sms", 1, 1), cap("push", 0), cap("message", 1, 3, scope="campaign"),
        cap("message", 0, 7, by="engagement", tiers={"high": 3, "low": 1}, default=None),
        cap("push", 0, 1, by="engagement", tiers={"high": 2}, default=1),
        cap("coupon", 1, 7, scope="campaign"), cap("coupon", 2, unused=True, scope="campaign")]), max_size=3))
    total = draw(st.none() | st.sampled_from([Decimal("0.10"), Decimal("0.37"), Decimal("5")]))
    daily = draw(st.none() | st.sampled_from([Decimal("0.06"), Decimal("0.2")]))
    return plan(arms=arms, resources={"T": COUPON}, caps=caps, user_fields={"timezone": "text", "phone": "text"},
                labels=["engagement"], quiet=draw(st.sampled_from([[], [("22:00", "08:00")], [("09:00", "11:00")]])),
                exclusive=draw(st.sampled_from([None, "g"])),
                local_send=draw(st.sampled_from([None, "2026-12-01T09:00", "2026-12-01T20:00"]))), total, daily


CHOICES = {"zone": ZONES, "phone": [None, "", "138"], "consent": [(), ("push",), ("sms",), ("push", "sms")],
           "label": [None, "high", "low", "other"], "held_out": [False, True], "branch": [None, 0, 1],
           "skip": [None, "goal reached"], "coupons": list(range(len(HELD))),
           "seen": [NOTHING_SEEN, Seen((1, 0, 2)), Seen((3, 3, 3)), Seen((0,), "rival"), Seen((), "rival")]}


@st.composite
def people(draw):
    """Users drawn from one or two values per attribute, so that many are alike but for one thing (the classes
    must tell them apart by exactly what `judge` reads)."""
    palette = {k: draw(st.lists(st.sampled_from(v), min_size=1, max_size=2, unique=True)) for k, v in CHOICES.items()}
    n = draw(st.integers(0, 60))
    return [{"user": str(i), **{k: draw(st.sampled_from(v)) for k, v in palette.items()}} for i in range(n)]


NAMES = {"user_id": 0, "held_out": 1, "branch": 2, "skip": 3, "u_timezone": 4, "u_phone": 5, "consent_push": 6,
         "consent_sms": 7, "class_engagement": 8}


def _row(d: dict) -> tuple:
    return (d["user"], d["held_out"], d["branch"], d["skip"], d["zone"], d["phone"], "push" in d["consent"],
            "sms" in d["consent"], d["label"])


def _one_by_one(p, recipients, seen, coupons, budget, as_of):
    out = []
    for r in recipients:
        try:
            out.append(decide(p, r, seen.get(r.user_id, NOTHING_SEEN), coupons.get(r.user_id, []), budget, as_of))
        except Exception as exc:  # noqa: BLE001 (compared by type and message)
            out.append(exc)
    return out


def _same(a, b) -> bool:
    if isinstance(a, Exception) or isinstance(b, Exception):
        return type(a) is type(b) and str(a) == str(b)
    return a == b


@settings(max_examples=examples(400), deadline=None)
@given(plans(), people(), st.sampled_from([NOW, NOW + timedelta(hours=13)]))
def test_class_by_class_decides_as_user_by_user(drawn, users, as_of):
    p, total, daily = drawn
    rows = [_row(d) for d in users]
    recipients = [from_row(p, NAMES, i, row) for i, row in enumerate(rows)]
    seen = {d["user"]: d["seen"] for d in users}
    coupons = {d["user"]: list(HELD[d["coupons"]]) for d in users if d["coupons"]}
    spent_before = {NOW.date(): Decimal("0.02")}
    ref_budget = Budget(total, daily, before=dict(spent_before))
    want = _one_by_one(p, recipients, seen, coupons, ref_budget, as_of)
    leave = {d["user"] for d in users[::7]}  # already decided: left out, the rest keep their places
    for view, batch in ((RowView(p, NAMES, 0), rows), (RecipientView(p), copy.deepcopy(recipients))):
        budget = Budget(total, daily, before=dict(spent_before))
        got = list(decide_rows(p, batch, view, seen, coupons, budget, as_of))
        assert [u for _, u, _, _ in got] == [d["user"] for d in users]
        assert all(_same(g, w) for (_, _, g, _), w in zip(got, want, strict=True)), (got, want)
        assert budget.spent == ref_budget.spent
        bad = [b for _, _, _, b in got]
        assert bad == [d["zone"] == "Mars/Olympus" for d in users]
        # the users of `leave` are left out and nobody else; each keeps its row index
        kept = list(decide_rows(p, batch, view, seen, coupons, Budget(total, daily, before=dict(spent_before)), as_of,
                                leave))
        assert [u for _, u, _, _ in kept] == [d["user"] for d in users if d["user"] not in leave]
        assert all(users[i]["user"] == u for i, u, _, _ in kept)
        # with `stopped`, the stopped users come back as rows of their decision instead: the same decisions, each
        # row once, the same budget
        stopped: dict = {}
        budget = Budget(total, daily, before=dict(spent_before))
        going = list(decide_rows(p, batch, view, seen, coupons, budget, as_of, frozenset(), None, stopped))
        rebuilt: dict[int, tuple] = {i: (d, b) for i, _, d, b in going}
        for d, idx, b in stopped.values():
            assert d.status not in ("pending", "deferred") and idx == sorted(idx)
            assert not set(idx) & set(rebuilt)
            rebuilt.update({i: (d, b) for i in idx})
        assert sorted(rebuilt) == list(range(len(users)))
        assert all(_same(rebuilt[i][0], g) and rebuilt[i][1] == b for i, _, g, b in got)
        assert budget.spent == ref_budget.spent


def test_a_recipient_built_from_a_row_is_the_one_judged():
    """RowView builds the i-th row's Recipient with seq lo + i, as the reference reading (from_row) does."""
    p = plan(user_fields={"timezone": "text", "phone": "text"}, labels=["engagement"])
    row = ("7", False, None, None, "Europe/London", "138", True, False, "high")
    assert RowView(p, NAMES, 100).recipient(3, row) == from_row(p, NAMES, 103, row) == Recipient(
        103, "7", False, {"timezone": "Europe/London", "phone": "138"}, {"engagement": "high"},
        {"push": True, "sms": False})


def test_a_refusal_is_not_kept_past_a_reservation():
    """A sms refused by the day's room is later refused by the total's, once cheaper pushes have used it up: the
    reason follows the budget, as one by one."""
    p = plan(arms=[ArmPlan(kind="all", name="all", notify=[PUSH, SMS])], user_fields={"timezone": "text", "phone": "text"})
    consent = [("sms",), ("push",), ("push",), ("push",), ("push",), ("sms",)]
    rows = [(str(i), False, None, None, None, "138", "push" in c, "sms" in c, None) for i, c in enumerate(consent)]
    budget = Budget(Decimal("0.08"), Decimal("0.04"))
    got = [d.reason for _, _, d, _ in decide_rows(p, rows, RowView(p, NAMES, 0), {}, {}, budget, NOW)]
    assert got == [f"budget:daily {NOW.date()}", None, None, None, None, "budget:total"]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_the_row_reader_builds_what_from_row_builds(data):
    """`row_reader` looks the columns up once; its Recipient equals from_row's, columns missing included."""
    p = plan(user_fields={"timezone": "text", "phone": "text"}, labels=["engagement"])
    p = p.model_copy(update={"consent_channels": ["push", "sms"]})
    columns = ["user_id", "held_out", *data.draw(st.lists(st.sampled_from(
        ["u_timezone", "u_phone", "consent_push", "consent_sms", "class_engagement", "branch", "skip"]), unique=True))]
    names = {c: i for i, c in enumerate(columns)}
    value = st.none() | st.booleans() | st.integers(0, 3) | st.sampled_from(["", "x", "Europe/London"])
    row = (data.draw(st.integers(0, 99) | st.text(max_size=3)), data.draw(st.booleans()),
           *[data.draw(value) for _ in columns[2:]])
    assert row_reader(p, names)(5, row) == from_row(p, names, 5, row)
