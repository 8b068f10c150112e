"""Grammar rules -> AST nodes. One method per rule, called by the LALR parser as it reduces.

No parse tree is built (that halves the cost of parsing). The parser keeps every
token (`keep_all_tokens`), so each node's span runs from its first token to its
last, keywords included; `_Callbacks` then drops the keyword tokens before calling
the method, which sees only what the rule names.

The transformer is given the line and character offset of the text it parses, so
that declarations parsed separately during error recovery keep true positions.
"""

from __future__ import annotations

import json
from decimal import Decimal

from lark import Token

from dsl import ast as A
from dsl.span import Span


def _defaults(cls: type) -> tuple[dict, tuple]:
    fixed, factories = {}, []
    for name, info in cls.model_fields.items():
        if info.default_factory is not None:
            fixed[name] = None
            factories.append((name, info.default_factory))
        elif isinstance(info.default, list):
            fixed[name] = None
            factories.append((name, list))
        else:
            fixed[name] = info.default  # PydanticUndefined for required fields: always given
    return fixed, tuple(factories)


_DEFAULTS: dict[type, tuple[dict, tuple]] = {}


def _make(cls, **values):
    """What pydantic's model_construct does, minus its per-call overhead (the parser already
    guarantees every node's shape; nodes are built hundreds of times per file)."""
    spec = _DEFAULTS.get(cls)
    if spec is None:
        spec = _DEFAULTS[cls] = _defaults(cls)
    fixed, factories = spec
    data = dict(fixed)
    for name, factory in factories:
        if name not in values:
            data[name] = factory()
    data.update(values)
    obj = object.__new__(cls)
    object.__setattr__(obj, "__dict__", data)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


MAX_NUMBER_DIGITS = 100  # far beyond any real amount, count or duration; Python's int() stops at 4,300


class LiteralError(ValueError):
    """A token the grammar accepts but camp cannot read (a bad escape, a 5,000-digit number). Raised while
    parsing, like a syntax error, and reported as a located diagnostic with its own code."""

    def __init__(self, span: Span, code: str, message: str, hints: tuple[str, ...] = ()):
        super().__init__(message)
        self.span = span
        self.code = code
        self.message = message
        self.hints = hints


def number_too_long(tok: Token, span: Span) -> LiteralError | None:
    """E109 for a NUMBER, DURATION or PERCENT token with more digits than camp reads."""
    digits = sum(c.isdigit() for c in tok)
    if digits <= MAX_NUMBER_DIGITS:
        return None
    return LiteralError(span, "E109", f"this number has {digits:,} digits; camp reads at most {MAX_NUMBER_DIGITS}",
                        ("no amount, count or duration is that long: was the number pasted twice?",))


def _string_error(tok: Token, span: Span) -> LiteralError:
    control = next((c for c in tok if ord(c) < 0x20), None)  # JSON strings refuse these
    if control is not None:
        escape = {"\t": "\\t", "\r": "\\r"}.get(control, f"\\u{ord(control):04x}")
        return LiteralError(span, "E107", f"this string contains the control character U+{ord(control):04X}",
                            (f"write it as `{escape}`, or remove it",))
    return LiteralError(span, "E107", "this string has an invalid escape sequence",
                        ('write \\" for a quote, \\\\ for a backslash, \\n, \\t or \\uXXXX',))


def _lone_surrogate(value: str) -> str | None:
    return next((c for c in value if "\ud800" <= c <= "\udfff"), None)


class ToAst:
    """Builds AST nodes; `line_offset`/`char_offset` shift positions of a partial parse.

    Nodes are built with `model_construct` (no validation): the grammar already
    guarantees their shape, and validation would double the cost of parsing.
    """

    def __init__(self) -> None:
        self.line_offset = 0
        self.char_offset = 0
        self.parenthesized: set[int] = set()

    def callbacks(self) -> _Callbacks:
        """The object Lark calls during the LALR parse: one attribute per rule."""
        return _Callbacks(self)

    # ------------------------------------------------------------ helpers
    def _span(self, meta: Span) -> Span:
        return meta  # computed from the rule's tokens by _Callbacks

    def _tspan(self, tok: Token) -> Span:
        # lark types a Token's positions `int | None`; tokens from its lexer always carry them.
        assert tok.line is not None and tok.end_line is not None
        assert tok.start_pos is not None and tok.end_pos is not None
        return _make(Span, line=tok.line + self.line_offset, column=tok.column,
                    end_line=tok.end_line + self.line_offset, end_column=tok.end_column,
                    start=tok.start_pos + self.char_offset, end=tok.end_pos + self.char_offset)

    def _ident(self, tok: Token | None) -> A.Ident | None:
        if tok is None:
            return None
        return _make(A.Ident, name=str(tok), span=self._tspan(tok))

    def _string(self, tok: Token | None) -> str | None:
        if tok is None:
            return None
        try:
            value = json.loads(tok)
        except ValueError:
            raise _string_error(tok, self._tspan(tok)) from None
        half = _lone_surrogate(value)
        if half is not None:
            raise LiteralError(self._tspan(tok), "E107", f"`\\u{ord(half):04x}` is half of a character (a lone "
                               "UTF-16 surrogate), not text", ("write the character itself, or both halves of the "
                                                              "pair: `\\ud83d\\ude00` is 😀",))
        return value

    def _duration(self, tok: Token) -> A.Duration:
        text = str(tok)
        unit = "mo" if text.endswith("mo") else text[-1]
        return _make(A.Duration, value=int(text[: -len(unit)]), unit=unit, span=self._tspan(tok))

    def _money(self, m: A.MoneyLit) -> A.Money:
        return _make(A.Money, amount=m.amount, currency=m.currency, span=m.span)

    # ------------------------------------------------------------ module
    def start(self, meta, *decls):
        return list(decls)

    # ------------------------------------------------------------ schema
    def qname(self, meta, *parts):
        return ".".join(str(p) for p in parts)

    def simple_type(self, meta, tok):
        return _make(A.TypeSpec, name=str(tok), span=self._tspan(tok))

    def money_type(self, meta, cur):
        return _make(A.TypeSpec, name="money", currency=str(cur), span=self._span(meta))

    def enum_type(self, meta, *values):
        return _make(A.TypeSpec, name="enum", values=[self._string(v) for v in values], span=self._span(meta))

    def field_opt(self, meta, kw, arg=None):
        return (kw, arg)  # tokens (str subclasses) keep their positions for the field's span

    def field_decl(self, meta, name, type_, *opts):
        column = next((self._ident(a) for k, a in opts if k == "column"), None)
        return _make(A.FieldDecl, name=self._ident(name), type=type_, column=column,
                           pii=any(k == "pii" for k, _ in opts), tz=any(k == "tz" for k, _ in opts),
                           span=self._span(meta))

    def users_decl(self, meta, table, key, *fields):
        return _make(A.UsersDecl, table=table, key=self._ident(key), fields=list(fields), span=self._span(meta))

    def events_decl(self, meta, name, table, user, time, *fields):
        return _make(A.EventsDecl, name=self._ident(name), table=table, user=self._ident(user),
                            time=self._ident(time), fields=list(fields), span=self._span(meta))

    def tags_decl(self, meta, table, user, tag):
        return _make(A.TagsDecl, table=table, user=self._ident(user), tag=self._ident(tag), span=self._span(meta))

    def consent_decl(self, meta, table, user, channel):
        return _make(A.ConsentDecl, table=table, user=self._ident(user), channel=self._ident(channel),
                             span=self._span(meta))

    # ------------------------------------------------------------ segments
    def segment_decl(self, meta, name, title, _eq, expr):
        return _make(A.SegmentDecl, name=self._ident(name), title=self._string(title), expr=expr, span=self._span(meta))

    def classify_decl(self, meta, name, title, *rules):
        return _make(A.ClassifyDecl, name=self._ident(name), title=self._string(title), rules=list(rules),
                              span=self._span(meta))

    def class_rule(self, meta, label, title, _eq, expr):
        return _make(A.ClassRule, label=self._ident(label), title=self._string(title), expr=expr, span=self._span(meta))

    def class_otherwise(self, meta, label, title, _eq):
        return _make(A.ClassRule, label=self._ident(label), title=self._string(title), expr=None, span=self._span(meta))

    # ------------------------------------------------------------ materialised labels (history)
    def materialize_decl(self, meta, *parts):
        names = [self._ident(p) for p in parts if p.type == "NAME"]
        at = next(str(p) for p in parts if p.type == "TIME")
        return _make(A.MaterializeDecl, names=names, at=at, span=self._span(meta))

    def label_was(self, meta, classification, label, ago):
        return _make(A.LabelWas, classification=self._ident(classification), label=self._ident(label),
                     ago=self._duration(ago), span=self._span(meta))

    def label_moved(self, meta, classification, source, target, within):
        return _make(A.LabelMoved, classification=self._ident(classification), source=self._ident(source),
                     target=self._ident(target), within=self._duration(within), span=self._span(meta))

    # ------------------------------------------------------------ policy and limits
    def policy_decl(self, meta, name, *items):
        return _make(A.PolicyDecl, name=self._ident(name), items=list(items), span=self._span(meta))

    def exclusive_group(self, meta, group):
        return _make(A.ExclusiveGroup, group=self._string(group), span=self._span(meta))

    def tiered_cap(self, meta, channel, per, by, *tiers):
        return _make(A.TieredCap, channel=self._ident(channel), per=self._duration(per), by=self._ident(by),
                           tiers=list(tiers), span=self._span(meta))

    def tier(self, meta, label, count):
        return _make(A.Tier, label=self._ident(label), count=int(Decimal(count)), span=self._span(meta))

    def tier_otherwise(self, meta, count):
        return _make(A.Tier, label=None, count=int(Decimal(count)), span=self._span(meta))

    def unused(self, meta):
        return True

    def cap(self, meta, count, unused, unit, per):
        return _make(A.Cap, count=int(Decimal(count)), unused=bool(unused), unit=self._ident(unit),
                     per=self._duration(per) if per is not None else None, span=self._span(meta))

    def quiet(self, meta, start, _minus, end):
        return _make(A.Quiet, start=str(start), end=str(end), span=self._span(meta))

    def channel_cost(self, meta, channel, money):
        return _make(A.ChannelCost, channel=self._ident(channel), cost=self._money(money), span=self._span(meta))

    def cost(self, meta, *items):
        return _make(A.Costs, items=list(items), span=self._span(meta))

    def budget_total(self, meta, money):
        return ("total", self._money(money), meta)  # meta: the part's span, "total" included

    def budget_daily(self, meta, money):
        return ("daily", self._money(money), meta)

    def budget(self, meta, *parts):
        # Duplicates (two totals) are kept as separate Budget nodes for the checker to report.
        total = [m for k, m, _ in parts if k == "total"]
        daily = [m for k, m, _ in parts if k == "daily"]
        if len(total) > 1 or len(daily) > 1:
            return _make(A.Budget, total=total[0] if total else None, daily=daily[0] if daily else None,
                            span=self._span(meta)), [_make(A.Budget, total=t, span=t.span) for t in total[1:]] + \
                [_make(A.Budget, daily=d, span=d.span) for d in daily[1:]]
        return _make(A.Budget, total=total[0] if total else None, daily=daily[0] if daily else None, span=self._span(meta))

    def expect(self, meta, pct):
        return _make(A.Expect, redemption=Decimal(str(pct)[:-1]), span=self._span(meta))

    def priority(self, meta, value):
        return _make(A.Priority, value=int(Decimal(value)), span=self._span(meta))

    def exclusive(self, meta, group):
        return _make(A.Exclusive, group=self._string(group), span=self._span(meta))

    def how_much(self, meta, _kw, *items):
        flat = []
        for item in items:
            if isinstance(item, tuple):
                flat.append(item[0])
                flat.extend(item[1])
            else:
                flat.append(item)
        return _make(A.HowMuch, items=flat, span=self._span(meta))

    # ------------------------------------------------------------ campaign
    def campaign_decl(self, meta, name, title, *sections):
        return _make(A.CampaignDecl, name=self._ident(name), title=self._string(title), sections=list(sections),
                              span=self._span(meta))

    def alert_decl(self, meta, name, title, *items):
        return _make(A.AlertDecl, name=self._ident(name), title=self._string(title), items=list(items),
                     span=self._span(meta))

    def alert_threshold(self, meta, measure, op, value):
        return _make(A.AlertThreshold, measure=self._ident(measure), op=str(op), value=value, span=self._span(meta))

    def alert_to(self, meta, team):
        return _make(A.AlertTo, team=self._ident(team), span=self._span(meta))

    def alert_sample(self, meta, n):
        return _make(A.AlertSample, size=int(Decimal(n)), span=self._span(meta))

    def owner(self, meta, s):
        return _make(A.Owner, owner=self._string(s), span=self._span(meta))

    def why(self, meta, objective, *items):
        return _make(A.Why, objective=self._ident(objective), items=list(items), span=self._span(meta))

    def goal(self, meta, expr, dur):
        if dur is not None:
            return _make(A.Goal, expr=expr, window=self._duration(dur), span=self._span(meta))
        cond, window = split_trailing_window(expr, self.parenthesized)
        duration = None
        if window is not None and window.op == "within":
            duration = window.duration
        elif window is not None:  # `before 3d ago` etc. is a condition, not an attribution window
            cond = expr
        return _make(A.Goal, expr=cond, window=duration, span=self._span(meta))

    def target(self, meta, metric, op, value):
        return _make(A.Target, metric=self._ident(metric), op=str(op), value=value, span=self._span(meta))

    def who(self, meta, expr, *items):
        return _make(A.Who, expr=expr, items=list(items), span=self._span(meta))

    def exclude(self, meta, expr):
        return _make(A.Exclude, expr=expr, span=self._span(meta))

    def holdout(self, meta, pct):
        return _make(A.Holdout, percent=Decimal(str(pct)[:-1]), span=self._span(meta))

    def what(self, meta, *resources):
        return _make(A.What, resources=list(resources), span=self._span(meta))

    def coupon(self, meta, code, title, *items):
        return _make(A.Coupon, code=self._ident(code), title=self._string(title), items=list(items), span=self._span(meta))

    def coupon_value(self, meta, money):
        return _make(A.CouponValue, value=self._money(money), span=self._span(meta))

    def min_spend(self, meta, money):
        return _make(A.MinSpend, value=self._money(money), span=self._span(meta))

    def scope(self, meta, field, *values):
        return _make(A.Scope, field=self._ident(field), values=list(values), span=self._span(meta))

    def usable_for(self, meta, dur):
        return _make(A.UsableFor, duration=self._duration(dur), span=self._span(meta))

    def usable_between(self, meta, start, end):
        return _make(A.UsableBetween, start=self.date(None, start), end=self.date(None, end), span=self._span(meta))

    def points(self, meta, amount):
        return _make(A.Points, amount=Decimal(amount), span=self._span(meta))

    def message(self, meta):
        return _make(A.MessageOnly, span=self._span(meta))

    def red_packet(self, meta, name, title, *items):
        return _make(A.RedPacket, name=self._ident(name), title=self._string(title), items=list(items), span=self._span(meta))

    def packet_value(self, meta, money):
        return _make(A.PacketValue, value=self._money(money), span=self._span(meta))

    def share_decay(self, meta, pct, floor, after):
        return _make(A.ShareDecay, decay=Decimal(str(pct)[:-1]), floor=self._money(floor), after=int(Decimal(after)),
                            span=self._span(meta))

    def when(self, meta, trigger, *options):
        return _make(A.When, trigger=trigger, options=list(options), span=self._span(meta))

    def daily(self, meta, *times):
        return _make(A.Daily, times=[str(t) for t in times], span=self._span(meta))

    def weekly(self, meta, *parts):
        days = [self._ident(p) for p in parts if p.type == "NAME"]
        times = [str(p) for p in parts if p.type == "TIME"]
        return _make(A.Weekly, days=days, times=times, span=self._span(meta))

    def every(self, meta, dur):
        return _make(A.Every, interval=self._duration(dur), span=self._span(meta))

    def once(self, meta, at):
        return _make(A.Once, at=str(at), span=self._span(meta))

    def cron(self, meta, expr):
        return _make(A.Cron, expr=self._string(expr), span=self._span(meta))

    def first(self, meta):
        return True

    def trigger_if(self, meta, expr):
        return expr

    def delay(self, meta, dur):
        return dur

    def goal_window(self, meta, dur):
        return dur

    def date_to(self, meta, tok):
        return tok

    def template(self, meta, tok):
        return tok

    def subject(self, meta, tok):
        return tok

    def cap_window(self, meta, dur):
        return dur

    def on_event(self, meta, event, first, condition, delay):
        return _make(A.OnEvent, event=self._ident(event), first=bool(first), condition=condition,
                         delay=self._duration(delay) if delay is not None else None, span=self._span(meta))

    def date_from(self, meta, start, end):
        return _make(A.DateFrom, start=self.date(None, start), end=self.date(None, end) if end is not None else None,
                          span=self._span(meta))

    def date_until(self, meta, end):
        return _make(A.DateUntil, end=self.date(None, end), span=self._span(meta))

    def tz(self, meta, name):
        return _make(A.TimeZone, name=self._string(name), span=self._span(meta))

    def tz_user(self, meta):
        return _make(A.TimeZone, name="", user=True, span=self._span(meta))

    def where_section(self, meta, channels):
        return _make(A.WhereSection, channels=channels, span=self._span(meta))

    def channels(self, meta, *chans):
        return list(chans)

    def channel(self, meta, name, template, subject):
        def lit(tok):
            return None if tok is None else _make(A.StringLit, value=self._string(tok), span=self._tspan(tok))
        return _make(A.Channel, channel=self._ident(name), template=lit(template), subject=lit(subject),
                         span=self._span(meta))

    def how(self, meta, *steps):
        return _make(A.How, steps=list(steps), span=self._span(meta))

    def after(self, meta, dur):
        return self._duration(dur)

    def unless(self, meta, expr):
        return ("unless", expr)

    def step(self, meta, name, after, unless, body):
        return _make(A.Step, name=self._ident(name), after=after, unless=unless[1] if unless else None, body=body,
                      span=self._span(meta))

    def actions(self, meta, *acts):
        return _make(A.Actions, actions=list(acts), span=self._span(meta))

    def give_what(self, meta):
        return _make(A.Give, resource=None, span=self._span(meta))

    def give(self, meta, name):
        return _make(A.Give, resource=self._ident(name), span=self._span(meta))

    def notify_where(self, meta):
        return _make(A.Notify, channels=None, span=self._span(meta))

    def notify(self, meta, channels):
        return _make(A.Notify, channels=channels, span=self._span(meta))

    def branch(self, meta, cond, actions):
        return _make(A.Branch, condition=cond, actions=actions, span=self._span(meta))

    def otherwise(self, meta, actions):
        return _make(A.Branch, condition=None, actions=actions, span=self._span(meta))

    def branches(self, meta, *branches):
        return _make(A.Branches, branches=[b for b in branches if b is not None], span=self._span(meta))

    def variant(self, meta, name, pct, actions):
        return _make(A.Variant, name=self._ident(name), percent=Decimal(str(pct)[:-1]), actions=actions,
                         span=self._span(meta))

    def variants(self, meta, *variants):
        return _make(A.Variants, variants=list(variants), span=self._span(meta))

    # ------------------------------------------------------------ expressions
    def or_(self, meta, left, right):
        items = (left.items if isinstance(left, A.Or) and id(left) not in self.parenthesized else [left])
        return _make(A.Or, items=[*items, right], span=self._span(meta))

    def and_(self, meta, left, right):
        items = (left.items if isinstance(left, A.And) and id(left) not in self.parenthesized else [left])
        return _make(A.And, items=[*items, right], span=self._span(meta))

    def not_(self, meta, operand):
        return _make(A.Not, operand=operand, span=self._span(meta))

    def compare(self, meta, left, op, right):
        return _make(A.Compare, op=str(op), left=left, right=right, span=self._span(meta))

    def in_list(self, meta, subject, *items):
        return _make(A.InList, subject=subject, items=list(items), span=self._span(meta))

    def not_in_list(self, meta, subject, *items):
        return _make(A.InList, subject=subject, items=list(items), negated=True, span=self._span(meta))

    def between(self, meta, subject, low, high):
        return _make(A.Between, subject=subject, low=low, high=high, span=self._span(meta))

    def is_null(self, meta, subject):
        return _make(A.IsNull, subject=subject, span=self._span(meta))

    def is_not_null(self, meta, subject):
        return _make(A.IsNull, subject=subject, negated=True, span=self._span(meta))

    def contains(self, meta, subject, pattern):
        return _make(A.TextMatch, op="contains", subject=subject, pattern=pattern, span=self._span(meta))

    def starts_with(self, meta, subject, pattern):
        return _make(A.TextMatch, op="starts_with", subject=subject, pattern=pattern, span=self._span(meta))

    def is_today(self, meta, subject):
        return _make(A.IsToday, subject=subject, span=self._span(meta))

    def anniversary_today(self, meta, subject):
        return _make(A.IsToday, subject=subject, anniversary=True, span=self._span(meta))

    def rel_time(self, meta, subject, window):
        return _make(A.RelTime, subject=subject, window=window, span=self._span(meta))

    def tagged(self, meta, tag):
        return _make(A.Tagged, tag=self._string(tag), span=self._span(meta))

    def tagged_for(self, meta, tag, dur):
        return _make(A.Tagged, tag=self._string(tag), held=self._duration(dur), span=self._span(meta))

    def segment_ref(self, meta, name):
        return _make(A.SegmentRef, name=self._ident(name), span=self._span(meta))

    def redeemed(self, meta, code):
        return _make(A.Redeemed, code=self._ident(code), span=self._span(meta))

    def arith(self, meta, left, op, right):
        return _make(A.Arith, op=str(op), left=left, right=right, span=self._span(meta))

    def neg(self, meta, _minus, operand):
        return _make(A.Neg, operand=operand, span=self._span(meta))

    def group(self, meta, expr):
        self.parenthesized.add(id(expr))
        return expr

    def name(self, meta, *parts):
        return _make(A.Name, parts=[str(p) for p in parts], span=self._span(meta))

    def agg_func(self, meta, tok):
        return tok.update(type="AGG_FUNC")  # a value the parent receives, with its position

    def _aggregate(self, meta, func, query):
        event, field, where, window = query
        return _make(A.Aggregate, func=func, event=event, field=field, where=where, window=window, span=self._span(meta))

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

    # ------------------------------------------------------------ population statistics
    def among(self, meta, cond):
        return ("among", cond)

    def percent_rank(self, meta, value, among):
        return _make(A.PopulationStat, func="percent_rank", value=value, among=among[1] if among else None,
                     span=self._span(meta))

    def ntile(self, meta, arg, value, among):
        return _make(A.PopulationStat, func="ntile", arg=arg, value=value, among=among[1] if among else None,
                     span=self._span(meta))

    def percentile(self, meta, arg, value, among):
        return _make(A.PopulationStat, func="percentile", arg=arg, value=value, among=among[1] if among else None,
                     span=self._span(meta))

    def _query(self, event, field, w1, where, w2):
        if where is not None and w2 is None:
            where, w2 = split_trailing_window(where, self.parenthesized)
        if w1 is not None and w2 is not None:
            # `orders within 30d where x within 7d`: both windows hold; the second
            # becomes a test on the event's own time (a second window comes only from a `where`).
            assert where is not None
            where = _make(A.And, items=[where, _make(A.RelTime, subject=_make(A.Name, parts=["time"], span=w2.span), window=w2,
                                                  span=w2.span)], span=where.span)
            w2 = None
        return self._ident(event), self._ident(field), where, w1 or w2

    def where_clause(self, meta, where, window):
        return where, window

    def event_query(self, meta, event, w1, clause):
        return self._query(event, None, w1, *(clause or (None, None)))

    def field_query(self, meta, event, field, w1, clause):
        return self._query(event, field, w1, *(clause or (None, None)))

    def win_within(self, meta, dur):
        return _make(A.Window, op="within", duration=self._duration(dur), span=self._span(meta))

    def win_after(self, meta, dur):
        return _make(A.Window, op="after", duration=self._duration(dur), span=self._span(meta))

    def win_before(self, meta, dur):
        return _make(A.Window, op="before", duration=self._duration(dur), span=self._span(meta))

    def win_between(self, meta, a, b):
        return _make(A.Window, op="between", duration=self._duration(a), until=self._duration(b), span=self._span(meta))

    def win_since(self, meta, step):
        return _make(A.Window, op="since", step=self._ident(step), span=self._span(meta))

    # ------------------------------------------------------------ literals
    def string(self, meta, tok):
        return _make(A.StringLit, value=self._string(tok), span=self._tspan(tok))

    def number(self, meta, tok):
        return _make(A.NumberLit, value=Decimal(tok), span=self._tspan(tok))

    def money(self, meta, amount, cur):
        return _make(A.MoneyLit, amount=Decimal(amount), currency=str(cur), span=self._span(meta))

    def percent(self, meta, tok):
        return _make(A.PercentLit, value=Decimal(str(tok)[:-1]), span=self._tspan(tok))

    def date(self, meta, tok):
        return _make(A.DateLit, text=str(tok), span=self._tspan(tok))

    def datetime(self, meta, tok):
        return _make(A.DateTimeLit, text=" ".join(str(tok).replace("T", " ").split()), span=self._tspan(tok))

    def true(self, meta):
        return _make(A.BoolLit, value=True, span=self._span(meta))

    def false(self, meta):
        return _make(A.BoolLit, value=False, span=self._span(meta))

    def scalar(self, meta, value):
        return value


def split_trailing_window(expr, parenthesized: set[int]):
    """Hoist an unparenthesised time test that ends a condition into a window.

    `orders where coupon_used within 180d` parses (shift preference) as the
    condition `coupon_used within 180d`; what the writer means is the window
    `within 180d` over orders whose coupon_used holds. The same for a goal's
    attribution window. Follows the right spine through `and`/`or`/`not` (where the
    parser puts a trailing window); a test in parentheses stays a condition.
    Returns (condition, window-or-None).
    """
    if id(expr) in parenthesized:
        return expr, None
    if isinstance(expr, A.RelTime):
        return expr.subject, expr.window
    if isinstance(expr, A.Not):
        inner, window = split_trailing_window(expr.operand, parenthesized)
        return (expr, None) if window is None else (expr.model_copy(update={"operand": inner}), window)
    if isinstance(expr, (A.And, A.Or)):
        last, window = split_trailing_window(expr.items[-1], parenthesized)
        if window is None:
            return expr, None
        return expr.model_copy(update={"items": [*expr.items[:-1], last]}), window
    return expr, None


# Terminals the methods receive; every other token is a keyword or punctuation.
_VALUE_TERMINALS = frozenset({"COMP_OP", "EQ", "PLUS", "MINUS", "MUL_OP", "DATETIME", "DATE", "TIME", "DURATION",
                              "PERCENT", "NUMBER", "CURRENCY", "STRING", "NAME", "HOW_MUCH", "TYPE_NAME",
                              "AGG_FUNC"})
_RAW_RULES = frozenset({"field_opt", "agg_func"})  # `!` rules: their keywords are the value


class _Callbacks:
    def __init__(self, t: ToAst) -> None:
        for name in dir(t):
            if name.startswith("_") or name in ("callbacks",):
                continue
            method = getattr(t, name)
            if callable(method):
                setattr(self, name, self._wrap(t, method, name in _RAW_RULES))

    @staticmethod
    def _wrap(t: ToAst, method, raw: bool):
        def call(children: list):
            span = _span_of(t, children)
            if raw:
                return method(span, *children)
            return method(span, *[c for c in children
                                  if not (isinstance(c, Token) and c.type not in _VALUE_TERMINALS)])
        return call


def _edge(t: ToAst, item, last: bool) -> tuple[int, int, int] | None:
    """(line, column, offset) where the first item starts, or with `last` where the last one ends; None when
    there is no token or node among them. Read off tokens and spans directly: no Span is built per edge."""
    if isinstance(item, Token):
        if last:
            return item.end_line + t.line_offset, item.end_column, item.end_pos + t.char_offset  # pyright: ignore[reportOptionalOperand, reportReturnType]  # lark types Token positions Optional; lexer tokens have them
        return item.line + t.line_offset, item.column, item.start_pos + t.char_offset  # pyright: ignore[reportOptionalOperand, reportReturnType]  # lark types Token positions Optional; lexer tokens have them
    if isinstance(item, A.Node):
        item = item.span
    if isinstance(item, Span):
        return (item.end_line, item.end_column, item.end) if last else (item.line, item.column, item.start)
    if isinstance(item, (list, tuple)):
        for x in (reversed(item) if last else item):
            found = _edge(t, x, last)
            if found is not None:
                return found
    return None


def _span_of(t: ToAst, children: list) -> Span:
    first = _edge(t, children, False)
    if first is None:
        return Span.unknown()
    end = _edge(t, children, True)
    assert end is not None  # there is a first item, so there is a last
    return _make(Span, line=first[0], column=first[1], end_line=end[0], end_column=end[1], start=first[2],
                 end=end[2])
