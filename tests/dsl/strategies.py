"""Hypothesis strategies for ASTs: every node kind the formatter can print.

Names come from a pool that avoids the language's keywords, and three-letter
upper-case words (which read as currency codes after a number; see docs/language.md).
"""

from __future__ import annotations

from hypothesis import strategies as st

from dsl import ast as A

NAMES = ["city", "gender", "amount", "brand", "x", "y_2", "城市", "品牌", "vip_level", "a", "Total", "seg_A"]
name = st.sampled_from(NAMES)
ident = name.map(lambda n: A.Ident(name=n))
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
decimal = st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False, allow_infinity=False)
small_int = st.integers(min_value=0, max_value=999)
currency = st.sampled_from(["CNY", "USD", "EUR"])
unit = st.sampled_from(["m", "h", "d", "w", "mo"])
duration = st.builds(A.Duration, value=st.integers(0, 400), unit=unit)
date_text = st.dates().map(lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}")
time_text = st.tuples(st.integers(0, 29), st.integers(0, 59)).map(lambda t: f"{t[0]}:{t[1]:02d}")
datetime_text = st.tuples(date_text, st.integers(0, 23), st.integers(0, 59)).map(
    lambda t: f"{t[0]} {t[1]:02d}:{t[2]:02d}")
money = st.builds(A.Money, amount=decimal, currency=currency)


def _literal():
    return st.one_of(
        st.builds(A.StringLit, value=text),
        st.builds(A.NumberLit, value=decimal),
        st.builds(A.MoneyLit, amount=decimal, currency=currency),
        st.builds(A.PercentLit, value=decimal),
        st.builds(A.DateLit, text=date_text),
        st.builds(A.DateTimeLit, text=datetime_text),
        st.builds(A.BoolLit, value=st.booleans()),
    )


literal = _literal()
name_expr = st.lists(name, min_size=1, max_size=2).map(lambda p: A.Name(parts=p))
item = st.one_of(literal, name_expr, st.builds(A.NumberLit, value=decimal).map(lambda n: A.Neg(operand=n)))

window = st.one_of(
    st.builds(A.Window, op=st.sampled_from(["within", "after", "before"]), duration=duration),
    st.builds(A.Window, op=st.just("between"), duration=duration, until=duration),
    st.builds(A.Window, op=st.just("since"), step=ident),
)


history = st.one_of(  # the history conditions (`C was X 90d ago`, `moved C from X to Y within 30d`)
    st.builds(A.LabelWas, classification=ident, label=ident, ago=duration),
    st.builds(A.LabelMoved, classification=ident, source=ident, target=ident, within=duration),
)
materialize_decl = st.builds(A.MaterializeDecl, names=st.lists(ident, min_size=1, max_size=3), at=time_text)


def expressions(max_leaves: int = 12):
    leaves = st.one_of(literal, name_expr, st.builds(A.Tagged, tag=text, held=st.none() | duration), st.builds(A.SegmentRef, name=ident),
                       st.builds(A.Redeemed, code=ident), history)

    def extend(children):
        agg = st.one_of(
            st.builds(A.Aggregate, func=st.sampled_from(["count", "any", "none"]), event=ident, field=st.none(),
                      where=st.none() | children, window=st.none() | window),
            st.builds(A.Aggregate, func=st.sampled_from(["count_distinct", "sum", "avg", "min", "max", "first",
                                                         "last"]),
                      event=ident, field=ident, where=st.none() | children, window=st.none() | window),
        )
        return st.one_of(
            agg,
            st.builds(A.Neg, operand=children),
            st.builds(A.Arith, op=st.sampled_from(["+", "-", "*", "/"]), left=children, right=children),
            st.builds(A.Compare, op=st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), left=children,
                      right=children),
            st.builds(A.InList, subject=children, items=st.lists(item, min_size=1, max_size=3),
                      negated=st.booleans()),
            st.builds(A.Between, subject=children, low=children, high=children),
            st.builds(A.IsNull, subject=children, negated=st.booleans()),
            st.builds(A.TextMatch, op=st.sampled_from(["contains", "starts_with"]), subject=children,
                      pattern=children),
            st.builds(A.IsToday, subject=children, anniversary=st.booleans()),
            st.builds(A.RelTime, subject=children, window=window),
            st.builds(A.And, items=st.lists(children, min_size=2, max_size=3)),
            st.builds(A.Or, items=st.lists(children, min_size=2, max_size=3)),
            st.builds(A.Not, operand=children),
            st.builds(A.PopulationStat, func=st.just("percent_rank"), value=children, among=st.none() | children),
            st.builds(A.PopulationStat, func=st.sampled_from(["ntile", "percentile"]), arg=children, value=children,
                      among=st.none() | children),
        )

    return st.recursive(leaves, extend, max_leaves=max_leaves)


expr = expressions(6)
big_expr = expressions(16)
opt_title = st.none() | text

field_decl = st.builds(
    A.FieldDecl, name=ident,
    type=st.one_of(
        st.builds(A.TypeSpec, name=st.sampled_from(["text", "number", "bool", "date", "timestamp"])),
        st.builds(A.TypeSpec, name=st.just("money"), currency=currency),
        st.builds(A.TypeSpec, name=st.just("enum"), values=st.lists(text, min_size=1, max_size=3)),
    ),
    column=st.none() | ident, pii=st.booleans(), tz=st.booleans(),
)
table = st.one_of(name, st.tuples(name, name).map(".".join))

schema_decl = st.one_of(
    st.builds(A.UsersDecl, table=table, key=ident, fields=st.lists(field_decl, max_size=3)),
    st.builds(A.EventsDecl, name=ident, table=table, user=ident, time=ident, fields=st.lists(field_decl, max_size=3)),
    st.builds(A.TagsDecl, table=table, user=ident, tag=ident),
    st.builds(A.ConsentDecl, table=table, user=ident, channel=ident),
)

segment_decl = st.builds(A.SegmentDecl, name=ident, title=opt_title, expr=expr)


@st.composite
def classify_decl(draw):
    rules = draw(st.lists(st.builds(A.ClassRule, label=ident, title=opt_title, expr=expr), min_size=1, max_size=3))
    if draw(st.booleans()):
        rules.append(A.ClassRule(label=draw(ident), title=draw(opt_title), expr=None))
    return A.ClassifyDecl(name=draw(ident), title=draw(opt_title), rules=rules)


cap = st.builds(A.Cap, count=small_int, unused=st.booleans(), unit=ident, per=st.none() | duration)
tier = st.builds(A.Tier, label=st.none() | ident, count=small_int)
tiered_cap = st.builds(A.TieredCap, channel=ident, per=duration, by=ident, tiers=st.lists(tier, min_size=1, max_size=3))
quiet = st.builds(A.Quiet, start=time_text, end=time_text)
costs = st.builds(A.Costs, items=st.lists(st.builds(A.ChannelCost, channel=ident, cost=money), min_size=1, max_size=3))
policy_decl = st.builds(
    A.PolicyDecl, name=st.none() | ident,
    items=st.lists(st.one_of(cap, tiered_cap, quiet, costs, st.builds(A.ExclusiveGroup, group=text)), max_size=4))

goal = st.builds(A.Goal, expr=expr, window=st.none() | duration)
target = st.builds(A.Target, metric=ident, op=st.sampled_from(["<", "<=", ">", ">=", "!="]),
                   value=st.one_of(st.builds(A.PercentLit, value=decimal), st.builds(A.NumberLit, value=decimal),
                                   st.builds(A.MoneyLit, amount=decimal, currency=currency)))
why = st.builds(A.Why, objective=ident, items=st.lists(st.one_of(goal, target), max_size=3))
who = st.builds(A.Who, expr=expr, items=st.lists(st.one_of(
    st.builds(A.Exclude, expr=expr), st.builds(A.Holdout, percent=decimal)), max_size=3))
coupon_item = st.one_of(
    st.builds(A.CouponValue, value=money), st.builds(A.MinSpend, value=money),
    st.builds(A.Scope, field=ident, values=st.lists(item, min_size=1, max_size=3)),
    st.builds(A.UsableFor, duration=duration),
    st.builds(A.UsableBetween, start=st.builds(A.DateLit, text=date_text), end=st.builds(A.DateLit, text=date_text)),
)
resource = st.one_of(
    st.builds(A.Coupon, code=ident, title=opt_title, items=st.lists(coupon_item, max_size=4)),
    st.builds(A.Points, amount=decimal),
    st.builds(A.MessageOnly),
    st.builds(A.RedPacket, name=ident, title=opt_title, items=st.lists(st.one_of(
        st.builds(A.PacketValue, value=money),
        st.builds(A.ShareDecay, decay=decimal, floor=money, after=small_int)), max_size=2)),
)
what = st.builds(A.What, resources=st.lists(resource, min_size=1, max_size=2))
trigger = st.one_of(
    st.builds(A.Daily, times=st.lists(time_text, min_size=1, max_size=2)),
    st.builds(A.Weekly, days=st.lists(ident, min_size=1, max_size=2), times=st.lists(time_text, min_size=1, max_size=2)),
    st.builds(A.Every, interval=duration),
    st.builds(A.Once, at=st.one_of(date_text, datetime_text)),
    st.builds(A.Cron, expr=text),
    st.builds(A.OnEvent, event=ident, first=st.booleans(), condition=st.none() | expr, delay=st.none() | duration),
)
when_option = st.one_of(
    st.builds(A.DateFrom, start=st.builds(A.DateLit, text=date_text),
              end=st.none() | st.builds(A.DateLit, text=date_text)),
    st.builds(A.DateUntil, end=st.builds(A.DateLit, text=date_text)),
    st.builds(A.TimeZone, name=text),
)
when = st.builds(A.When, trigger=trigger, options=st.lists(when_option, max_size=2))
channel = st.builds(A.Channel, channel=ident, template=st.none() | st.builds(A.StringLit, value=text),
                    subject=st.none() | st.builds(A.StringLit, value=text))
where = st.builds(A.WhereSection, channels=st.lists(channel, min_size=1, max_size=3))
action = st.one_of(st.builds(A.Give, resource=st.none() | ident),
                   st.builds(A.Notify, channels=st.none() | st.lists(channel, min_size=1, max_size=2)))
actions = st.builds(A.Actions, actions=st.lists(action, min_size=1, max_size=3))


@st.composite
def branches(draw):
    bs = draw(st.lists(st.builds(A.Branch, condition=expr, actions=actions), min_size=1, max_size=3))
    if draw(st.booleans()):
        bs.append(A.Branch(condition=None, actions=draw(actions)))
    return A.Branches(branches=bs)


step_body = st.one_of(
    actions, branches(),
    st.builds(A.Variants, variants=st.lists(st.builds(A.Variant, name=ident, percent=decimal, actions=actions),
                                            min_size=1, max_size=3)),
)
step = st.builds(A.Step, name=ident, after=st.none() | duration, unless=st.none() | expr, body=step_body)
how = st.builds(A.How, steps=st.lists(step, min_size=1, max_size=3))
budget = st.one_of(st.builds(A.Budget, total=money, daily=st.none() | money), st.builds(A.Budget, daily=money))
how_much = st.builds(A.HowMuch, items=st.lists(st.one_of(
    budget, costs, st.builds(A.Expect, redemption=decimal), cap, quiet, st.builds(A.Priority, value=small_int),
    st.builds(A.Exclusive, group=text)), min_size=1, max_size=4))
section = st.one_of(st.builds(A.Owner, owner=text), why, who, what, when, where, how, how_much)
campaign_decl = st.builds(A.CampaignDecl, name=ident, title=opt_title, sections=st.lists(section, max_size=5))

decl = st.one_of(schema_decl, segment_decl, classify_decl(), policy_decl, campaign_decl, materialize_decl)
module = st.builds(A.Module, decls=st.lists(decl, max_size=3))
