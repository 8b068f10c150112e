"""Lark parse tree -> AST. One callback per grammar rule; iterative, so deep input cannot overflow the stack.

The transformer is given the line and character offset of the text it parses, so
that declarations parsed separately during error recovery keep true positions.
"""

from __future__ import annotations

import json
from decimal import Decimal

from lark import Token, Transformer_NonRecursive, v_args

from dsl import ast as A
from dsl.span import Span


class StringError(ValueError):
    def __init__(self, token: Token, span: Span):
        super().__init__(f"invalid escape in {token}")
        self.span = span


@v_args(inline=True, meta=True)
class ToAst(Transformer_NonRecursive):
    """Builds AST nodes; `line_offset`/`char_offset` shift positions of a partial parse."""

    def __init__(self) -> None:
        super().__init__()
        self.line_offset = 0
        self.char_offset = 0
        self.parenthesized: set[int] = set()

    # ------------------------------------------------------------ helpers
    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return Span.unknown()
        return Span(line=meta.line + self.line_offset, column=meta.column,
                    end_line=meta.end_line + self.line_offset, end_column=meta.end_column,
                    start=meta.start_pos + self.char_offset, end=meta.end_pos + self.char_offset)

    def _tspan(self, tok: Token) -> Span:
        return Span(line=tok.line + self.line_offset, column=tok.column,
                    end_line=tok.end_line + self.line_offset, end_column=tok.end_column,
                    start=tok.start_pos + self.char_offset, end=tok.end_pos + self.char_offset)

    def _ident(self, tok: Token | None) -> A.Ident | None:
        if tok is None:
            return None
        return A.Ident(name=str(tok), span=self._tspan(tok))

    def _string(self, tok: Token | None) -> str | None:
        if tok is None:
            return None
        try:
            return json.loads(tok)
        except ValueError:
            raise StringError(tok, self._tspan(tok)) from None

    def _duration(self, tok: Token) -> A.Duration:
        text = str(tok)
        unit = "mo" if text.endswith("mo") else text[-1]
        return A.Duration(value=int(text[: -len(unit)]), unit=unit, span=self._tspan(tok))

    def _money(self, m: A.MoneyLit) -> A.Money:
        return A.Money(amount=m.amount, currency=m.currency, span=m.span)

    # ------------------------------------------------------------ module
    def start(self, meta, *decls):
        return list(decls)

    # ------------------------------------------------------------ schema
    def qname(self, meta, *parts):
        return ".".join(str(p) for p in parts)

    def simple_type(self, meta, tok):
        return A.TypeSpec(name=str(tok), span=self._tspan(tok))

    def money_type(self, meta, cur):
        return A.TypeSpec(name="money", currency=str(cur), span=self._span(meta))

    def enum_type(self, meta, *values):
        return A.TypeSpec(name="enum", values=[self._string(v) for v in values], span=self._span(meta))

    def field_opt(self, meta, kw, arg=None):
        return (str(kw), arg)

    def field_decl(self, meta, name, type_, *opts):
        column = next((self._ident(a) for k, a in opts if k == "column"), None)
        return A.FieldDecl(name=self._ident(name), type=type_, column=column,
                           pii=any(k == "pii" for k, _ in opts), tz=any(k == "tz" for k, _ in opts),
                           span=self._span(meta))

    def users_decl(self, meta, table, key, *fields):
        return A.UsersDecl(table=table, key=self._ident(key), fields=list(fields), span=self._span(meta))

    def events_decl(self, meta, name, table, user, time, *fields):
        return A.EventsDecl(name=self._ident(name), table=table, user=self._ident(user),
                            time=self._ident(time), fields=list(fields), span=self._span(meta))

    def tags_decl(self, meta, table, user, tag):
        return A.TagsDecl(table=table, user=self._ident(user), tag=self._ident(tag), span=self._span(meta))

    def consent_decl(self, meta, table, user, channel):
        return A.ConsentDecl(table=table, user=self._ident(user), channel=self._ident(channel),
                             span=self._span(meta))

    # ------------------------------------------------------------ segments
    def segment_decl(self, meta, name, title, _eq, expr):
        return A.SegmentDecl(name=self._ident(name), title=self._string(title), expr=expr, span=self._span(meta))

    def classify_decl(self, meta, name, title, *rules):
        return A.ClassifyDecl(name=self._ident(name), title=self._string(title), rules=list(rules),
                              span=self._span(meta))

    def class_rule(self, meta, label, title, _eq, expr):
        return A.ClassRule(label=self._ident(label), title=self._string(title), expr=expr, span=self._span(meta))

    def class_otherwise(self, meta, label, title, _eq):
        return A.ClassRule(label=self._ident(label), title=self._string(title), expr=None, span=self._span(meta))

    # ------------------------------------------------------------ policy and limits
    def policy_decl(self, meta, name, *items):
        return A.PolicyDecl(name=self._ident(name), items=list(items), span=self._span(meta))

    def exclusive_group(self, meta, group):
        return A.ExclusiveGroup(group=self._string(group), span=self._span(meta))

    def tiered_cap(self, meta, channel, per, by, *tiers):
        return A.TieredCap(channel=self._ident(channel), per=self._duration(per), by=self._ident(by),
                           tiers=list(tiers), span=self._span(meta))

    def tier(self, meta, label, count):
        return A.Tier(label=self._ident(label), count=int(Decimal(count)), span=self._span(meta))

    def tier_otherwise(self, meta, count):
        return A.Tier(label=None, count=int(Decimal(count)), span=self._span(meta))

    def unused(self, meta):
        return True

    def cap(self, meta, count, unused, unit, per):
        return A.Cap(count=int(Decimal(count)), unused=bool(unused), unit=self._ident(unit),
                     per=self._duration(per) if per is not None else None, span=self._span(meta))

    def quiet(self, meta, start, _minus, end):
        return A.Quiet(start=str(start), end=str(end), span=self._span(meta))

    def channel_cost(self, meta, channel, money):
        return A.ChannelCost(channel=self._ident(channel), cost=self._money(money), span=self._span(meta))

    def cost(self, meta, *items):
        return A.Costs(items=list(items), span=self._span(meta))

    def budget_total(self, meta, money):
        return ("total", self._money(money))

    def budget_daily(self, meta, money):
        return ("daily", self._money(money))

    def budget(self, meta, *parts):
        # Duplicates (two totals) are kept as separate Budget nodes for the checker to report.
        total = [m for k, m in parts if k == "total"]
        daily = [m for k, m in parts if k == "daily"]
        if len(total) > 1 or len(daily) > 1:
            return A.Budget(total=total[0] if total else None, daily=daily[0] if daily else None,
                            span=self._span(meta)), [A.Budget(total=t, span=t.span) for t in total[1:]] + \
                [A.Budget(daily=d, span=d.span) for d in daily[1:]]
        return A.Budget(total=total[0] if total else None, daily=daily[0] if daily else None, span=self._span(meta))

    def expect(self, meta, pct):
        return A.Expect(redemption=Decimal(str(pct)[:-1]), span=self._span(meta))

    def priority(self, meta, value):
        return A.Priority(value=int(Decimal(value)), span=self._span(meta))

    def exclusive(self, meta, group):
        return A.Exclusive(group=self._string(group), span=self._span(meta))

    def how_much(self, meta, _kw, *items):
        flat = []
        for item in items:
            if isinstance(item, tuple):
                flat.append(item[0])
                flat.extend(item[1])
            else:
                flat.append(item)
        return A.HowMuch(items=flat, span=self._span(meta))

    # ------------------------------------------------------------ campaign
    def campaign_decl(self, meta, name, title, *sections):
        return A.CampaignDecl(name=self._ident(name), title=self._string(title), sections=list(sections),
                              span=self._span(meta))

    def owner(self, meta, s):
        return A.Owner(owner=self._string(s), span=self._span(meta))

    def why(self, meta, objective, *items):
        return A.Why(objective=self._ident(objective), items=list(items), span=self._span(meta))

    def goal(self, meta, expr):
        cond, window = split_trailing_window(expr, self.parenthesized)
        duration = None
        if window is not None and window.op == "within":
            duration = window.duration
        elif window is not None:  # `before 3d ago` etc. is a condition, not an attribution window
            cond = expr
        return A.Goal(expr=cond, window=duration, span=self._span(meta))

    def target(self, meta, metric, op, value):
        return A.Target(metric=self._ident(metric), op=str(op), value=value, span=self._span(meta))

    def who(self, meta, expr, *items):
        return A.Who(expr=expr, items=list(items), span=self._span(meta))

    def exclude(self, meta, expr):
        return A.Exclude(expr=expr, span=self._span(meta))

    def holdout(self, meta, pct):
        return A.Holdout(percent=Decimal(str(pct)[:-1]), span=self._span(meta))

    def what(self, meta, *resources):
        return A.What(resources=list(resources), span=self._span(meta))

    def coupon(self, meta, code, title, *items):
        return A.Coupon(code=self._ident(code), title=self._string(title), items=list(items), span=self._span(meta))

    def coupon_value(self, meta, money):
        return A.CouponValue(value=self._money(money), span=self._span(meta))

    def min_spend(self, meta, money):
        return A.MinSpend(value=self._money(money), span=self._span(meta))

    def scope(self, meta, field, *values):
        return A.Scope(field=self._ident(field), values=list(values), span=self._span(meta))

    def usable_for(self, meta, dur):
        return A.UsableFor(duration=self._duration(dur), span=self._span(meta))

    def usable_between(self, meta, start, end):
        return A.UsableBetween(start=self.date(None, start), end=self.date(None, end), span=self._span(meta))

    def points(self, meta, amount):
        return A.Points(amount=Decimal(amount), span=self._span(meta))

    def message(self, meta):
        return A.MessageOnly(span=self._span(meta))

    def red_packet(self, meta, name, title, *items):
        return A.RedPacket(name=self._ident(name), title=self._string(title), items=list(items), span=self._span(meta))

    def packet_value(self, meta, money):
        return A.PacketValue(value=self._money(money), span=self._span(meta))

    def share_decay(self, meta, pct, floor, after):
        return A.ShareDecay(decay=Decimal(str(pct)[:-1]), floor=self._money(floor), after=int(Decimal(after)),
                            span=self._span(meta))

    def when(self, meta, trigger, *options):
        return A.When(trigger=trigger, options=list(options), span=self._span(meta))

    def daily(self, meta, *times):
        return A.Daily(times=[str(t) for t in times], span=self._span(meta))

    def weekly(self, meta, *parts):
        days = [self._ident(p) for p in parts if p.type == "NAME"]
        times = [str(p) for p in parts if p.type == "TIME"]
        return A.Weekly(days=days, times=times, span=self._span(meta))

    def every(self, meta, dur):
        return A.Every(interval=self._duration(dur), span=self._span(meta))

    def once(self, meta, at):
        return A.Once(at=str(at), span=self._span(meta))

    def cron(self, meta, expr):
        return A.Cron(expr=self._string(expr), span=self._span(meta))

    def first(self, meta):
        return True

    def on_event(self, meta, event, first, condition, delay):
        return A.OnEvent(event=self._ident(event), first=bool(first), condition=condition,
                         delay=self._duration(delay) if delay is not None else None, span=self._span(meta))

    def date_from(self, meta, start, end):
        return A.DateFrom(start=self.date(None, start), end=self.date(None, end) if end is not None else None,
                          span=self._span(meta))

    def date_until(self, meta, end):
        return A.DateUntil(end=self.date(None, end), span=self._span(meta))

    def tz(self, meta, name):
        return A.TimeZone(name=self._string(name), span=self._span(meta))

    def where_section(self, meta, channels):
        return A.WhereSection(channels=channels, span=self._span(meta))

    def channels(self, meta, *chans):
        return list(chans)

    def channel(self, meta, name, template, subject):
        def lit(tok):
            return None if tok is None else A.StringLit(value=self._string(tok), span=self._tspan(tok))
        return A.Channel(channel=self._ident(name), template=lit(template), subject=lit(subject),
                         span=self._span(meta))

    def how(self, meta, *steps):
        return A.How(steps=list(steps), span=self._span(meta))

    def after(self, meta, dur):
        return self._duration(dur)

    def unless(self, meta, expr):
        return ("unless", expr)

    def step(self, meta, name, after, unless, body):
        return A.Step(name=self._ident(name), after=after, unless=unless[1] if unless else None, body=body,
                      span=self._span(meta))

    def actions(self, meta, *acts):
        return A.Actions(actions=list(acts), span=self._span(meta))

    def give_what(self, meta):
        return A.Give(resource=None, span=self._span(meta))

    def give(self, meta, name):
        return A.Give(resource=self._ident(name), span=self._span(meta))

    def notify_where(self, meta):
        return A.Notify(channels=None, span=self._span(meta))

    def notify(self, meta, channels):
        return A.Notify(channels=channels, span=self._span(meta))

    def branch(self, meta, cond, actions):
        return A.Branch(condition=cond, actions=actions, span=self._span(meta))

    def otherwise(self, meta, actions):
        return A.Branch(condition=None, actions=actions, span=self._span(meta))

    def branches(self, meta, *branches):
        return A.Branches(branches=[b for b in branches if b is not None], span=self._span(meta))

    def variant(self, meta, name, pct, actions):
        return A.Variant(name=self._ident(name), percent=Decimal(str(pct)[:-1]), actions=actions,
                         span=self._span(meta))

    def variants(self, meta, *variants):
        return A.Variants(variants=list(variants), span=self._span(meta))

    # ------------------------------------------------------------ expressions
    def or_(self, meta, left, right):
        items = (left.items if isinstance(left, A.Or) and id(left) not in self.parenthesized else [left])
        return A.Or(items=[*items, right], span=self._span(meta))

    def and_(self, meta, left, right):
        items = (left.items if isinstance(left, A.And) and id(left) not in self.parenthesized else [left])
        return A.And(items=[*items, right], span=self._span(meta))

    def not_(self, meta, operand):
        return A.Not(operand=operand, span=self._span(meta))

    def compare(self, meta, left, op, right):
        return A.Compare(op=str(op), left=left, right=right, span=self._span(meta))

    def in_list(self, meta, subject, *items):
        return A.InList(subject=subject, items=list(items), span=self._span(meta))

    def not_in_list(self, meta, subject, *items):
        return A.InList(subject=subject, items=list(items), negated=True, span=self._span(meta))

    def between(self, meta, subject, low, high):
        return A.Between(subject=subject, low=low, high=high, span=self._span(meta))

    def is_null(self, meta, subject):
        return A.IsNull(subject=subject, span=self._span(meta))

    def is_not_null(self, meta, subject):
        return A.IsNull(subject=subject, negated=True, span=self._span(meta))

    def contains(self, meta, subject, pattern):
        return A.TextMatch(op="contains", subject=subject, pattern=pattern, span=self._span(meta))

    def starts_with(self, meta, subject, pattern):
        return A.TextMatch(op="starts_with", subject=subject, pattern=pattern, span=self._span(meta))

    def is_today(self, meta, subject):
        return A.IsToday(subject=subject, span=self._span(meta))

    def anniversary_today(self, meta, subject):
        return A.IsToday(subject=subject, anniversary=True, span=self._span(meta))

    def rel_time(self, meta, subject, window):
        return A.RelTime(subject=subject, window=window, span=self._span(meta))

    def tagged(self, meta, tag):
        return A.Tagged(tag=self._string(tag), span=self._span(meta))

    def segment_ref(self, meta, name):
        return A.SegmentRef(name=self._ident(name), span=self._span(meta))

    def arith(self, meta, left, op, right):
        return A.Arith(op=str(op), left=left, right=right, span=self._span(meta))

    def neg(self, meta, _minus, operand):
        return A.Neg(operand=operand, span=self._span(meta))

    def group(self, meta, expr):
        self.parenthesized.add(id(expr))
        return expr

    def name(self, meta, *parts):
        return A.Name(parts=[str(p) for p in parts], span=self._span(meta))

    def agg_func(self, meta, tok):
        return str(tok)

    def _aggregate(self, meta, func, query):
        event, field, where, window = query
        return A.Aggregate(func=func, event=event, field=field, where=where, window=window, span=self._span(meta))

    def count(self, meta, query):
        return self._aggregate(meta, "count", query)

    def count_distinct(self, meta, query):
        return self._aggregate(meta, "count_distinct", query)

    def field_agg(self, meta, func, query):
        return self._aggregate(meta, func, query)

    def any_(self, meta, query):
        return self._aggregate(meta, "any", query)

    def none_(self, meta, query):
        return self._aggregate(meta, "none", query)

    def _query(self, event, field, w1, where, w2):
        if where is not None and w2 is None:
            where, w2 = split_trailing_window(where, self.parenthesized)
        if w1 is not None and w2 is not None:
            # `orders within 30d where x within 7d`: both windows hold; the second
            # becomes a test on the event's own time.
            where = A.And(items=[where, A.RelTime(subject=A.Name(parts=["time"], span=w2.span), window=w2,
                                                  span=w2.span)], span=where.span)
            w2 = None
        return self._ident(event), self._ident(field), where, w1 or w2

    def event_query(self, meta, event, w1, where, w2):
        return self._query(event, None, w1, where, w2)

    def field_query(self, meta, event, field, w1, where, w2):
        return self._query(event, field, w1, where, w2)

    def win_within(self, meta, dur):
        return A.Window(op="within", duration=self._duration(dur), span=self._span(meta))

    def win_after(self, meta, dur):
        return A.Window(op="after", duration=self._duration(dur), span=self._span(meta))

    def win_before(self, meta, dur):
        return A.Window(op="before", duration=self._duration(dur), span=self._span(meta))

    def win_between(self, meta, a, b):
        return A.Window(op="between", duration=self._duration(a), until=self._duration(b), span=self._span(meta))

    def win_since(self, meta, step):
        return A.Window(op="since", step=self._ident(step), span=self._span(meta))

    # ------------------------------------------------------------ literals
    def string(self, meta, tok):
        return A.StringLit(value=self._string(tok), span=self._tspan(tok))

    def number(self, meta, tok):
        return A.NumberLit(value=Decimal(tok), span=self._tspan(tok))

    def money(self, meta, amount, cur):
        return A.MoneyLit(amount=Decimal(amount), currency=str(cur), span=self._span(meta))

    def percent(self, meta, tok):
        return A.PercentLit(value=Decimal(str(tok)[:-1]), span=self._tspan(tok))

    def date(self, meta, tok):
        return A.DateLit(text=str(tok), span=self._tspan(tok))

    def datetime(self, meta, tok):
        return A.DateTimeLit(text=" ".join(str(tok).replace("T", " ").split()), span=self._tspan(tok))

    def true(self, meta):
        return A.BoolLit(value=True, span=self._span(meta))

    def false(self, meta):
        return A.BoolLit(value=False, span=self._span(meta))

    def scalar(self, meta, value):
        return value


def split_trailing_window(expr, parenthesized: set[int]):
    """Hoist an unparenthesised time test that ends a condition into a window.

    `orders where coupon_used within 180d` parses (shift preference) as the
    condition `coupon_used within 180d`; what the writer means is the window
    `within 180d` over orders whose coupon_used holds. The same for a goal's
    attribution window. Follows the right spine through `and`/`or`; a test in
    parentheses stays a condition. Returns (condition, window-or-None).
    """
    if id(expr) in parenthesized:
        return expr, None
    if isinstance(expr, A.RelTime):
        return expr.subject, expr.window
    if isinstance(expr, (A.And, A.Or)):
        last, window = split_trailing_window(expr.items[-1], parenthesized)
        if window is None:
            return expr, None
        return expr.model_copy(update={"items": [*expr.items[:-1], last]}), window
    return expr, None
