"""AST expressions -> typed IR expressions, resolving every name against the schema.

Each IR node carries the span of the AST node it was checked from (a window's, an event field's
own), so later stages report positions from the IR alone.

A sub-expression with an error yields None; its parents then stay silent, so each
mistake is reported once, where it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import cast
from zoneinfo import ZoneInfo

from compiler import ir as I
from compiler import types as T
from compiler.bounds import check_date
from compiler.report import Report, did_you_mean, suggest
from compiler.schema import Event, Schema
from dsl import ast as A
from dsl.format import expr as format_expr
from dsl.span import Span
from dsl.walk import walk

AGG_ARGS = {"count": False, "any": False, "none": False}
NUMERIC_AGGS = {"sum", "avg"}
ORDERED_AGGS = {"min", "max"}


@dataclass(frozen=True)
class Scope:
    event: Event | None = None  # inside `where` of an event query or trigger: bare names are its fields
    steps: tuple[str, ...] | None = None  # steps that `since STEP` may name; None: not inside a step
    later_steps: tuple[str, ...] = ()


class ExprChecker:
    def __init__(self, schema: Schema, segments: set[str], classifications: dict[str, list[str]],
                 report: Report, tz: ZoneInfo):
        self.schema = schema
        self.segments = segments
        self.classifications = classifications
        self.report = report
        self.tz = tz
        self.refs: list[str] = []  # segments and classifications referred to, for cycle detection
        self.coupons: tuple[str, ...] | None = None  # the codes of the coupons the campaign being checked gives
        self.materialized: set[str] = set()  # classifications a `materialize` declaration keeps a history of

    # ------------------------------------------------------------ entry points
    def condition(self, expr: A.Expr, scope: Scope = Scope()) -> I.Expr | None:
        out = self.expr(expr, scope)
        if out is None:
            return None
        t = I.type_of(out)
        if t.kind != "bool":
            hint = "compare it, e.g. `count(orders) >= 1`" if t.numeric else ""
            if t.kind == "label":
                labels = self.classifications.get(t.classification or "", [])
                hint = f"say which label: `{t.classification} = {labels[0] if labels else 'LABEL'}`"
            self.report("E306", f"a yes/no condition is needed here, but this gives {_a(t)}", expr.span, [hint])
            return None
        return out

    def expr(self, e: A.Expr, scope: Scope) -> I.Expr | None:
        match e:
            case A.StringLit():
                return self._string(e, scope)
            case A.NumberLit():
                return self._number(e, scope)
            case A.MoneyLit():
                return self._money_lit(e, scope)
            case A.PercentLit():
                return self._percent(e, scope)
            case A.BoolLit():
                return self._bool(e, scope)
            case A.DateLit():
                return self._date(e, scope)
            case A.DateTimeLit():
                return self._datetime(e, scope)
            case A.Name():
                return self._name(e, scope)
            case A.And():
                return self._and(e, scope)
            case A.Or():
                return self._or(e, scope)
            case A.Not():
                return self._not(e, scope)
            case A.Tagged():
                return self._tagged(e, scope)
            case A.SegmentRef():
                return self._segment_ref(e, scope)
            case A.Redeemed():
                return self._redeemed(e, scope)
            case A.Compare():
                return self._compare(e, scope)
            case A.InList():
                return self._in(e, scope)
            case A.Between():
                return self._between(e, scope)
            case A.IsNull():
                return self._is_null(e, scope)
            case A.TextMatch():
                return self._text_match(e, scope)
            case A.IsToday():
                return self._is_today(e, scope)
            case A.RelTime():
                return self._rel_time(e, scope)
            case A.Arith():
                return self._arith(e, scope)
            case A.Neg():
                return self._neg(e, scope)
            case A.Aggregate():
                return self._aggregate(e, scope)
            case A.LabelWas() | A.LabelMoved():
                return self._history(e, scope)
            case A.PopulationStat():
                return self._population_stat(e, scope)

    # ------------------------------------------------------------ literals
    def _string(self, e: A.StringLit, scope) -> I.Expr:
        return I.Const(e.value, T.TEXT, span=e.span)

    def _number(self, e: A.NumberLit, scope) -> I.Expr:
        return I.Const(e.value, T.NUMBER, span=e.span)

    def _money_lit(self, e: A.MoneyLit, scope) -> I.Expr:
        return I.Const(e.amount, T.money(e.currency), span=e.span)

    def _percent(self, e: A.PercentLit, scope) -> I.Expr:
        return I.Const(e.value / Decimal(100), T.PERCENT, span=e.span)

    def _bool(self, e: A.BoolLit, scope) -> I.Expr:
        return I.Const(e.value, T.BOOL, span=e.span)

    def _date(self, e: A.DateLit, scope) -> I.Expr | None:
        d = parse_date(e, self.report)
        return None if d is None else I.Const(d, T.DATE, span=e.span)

    def _datetime(self, e: A.DateTimeLit, scope) -> I.Expr | None:
        dt = parse_datetime(e.text, e, self.report)
        return None if dt is None else I.Const(dt.replace(tzinfo=self.tz), T.TIMESTAMP, span=e.span)

    # ------------------------------------------------------------ names
    def _name(self, e: A.Name, scope: Scope) -> I.Expr | None:
        parts = e.parts
        users = self.schema.users
        if len(parts) == 1:
            n = parts[0]
            if scope.event is not None:
                f = scope.event.field(n)
                if f is not None:
                    return I.EventField(scope.event.name, n, f.column, f.type, span=e.span)
                if users is not None and n in users.fields:
                    self.report("E201", f"`{n}` is a user field, not a field of {scope.event.name}", e.span,
                                [f"test it outside the event query: `{n} ... and any({scope.event.name} where ...)`"])
                    return None
            if users is not None and n in users.fields:
                f = users.fields[n]
                return I.UserAttr(n, f.column, f.type, span=e.span)
            if scope.event is not None and (n in self.segments or n in self.classifications):
                what = "segment" if n in self.segments else "classification"
                return self._per_user(f"the {what} `{n}`", scope, e.span)
            if n in self.segments:
                self.refs.append(n)
                return I.InSegment(n, span=e.span)
            if n in self.classifications:
                self.refs.append(n)
                return I.Label(n, T.Type("label", classification=n), span=e.span)
            self._unknown_name(e, scope)
            return None
        head, rest = parts[0], parts[1:]
        if head == "user" and len(rest) == 1:
            if scope.event is not None:
                return self._per_user(f"`{e.dotted}`", scope, e.span)
            if users is None:
                self.report("E210", "the workspace declares no users table", e.span,
                            ["declare it: `users from table users key user_id { city text }`"])
                return None
            f = users.fields.get(rest[0])
            if f is None:
                self.report("E201", f"the users table has no field `{rest[0]}`", e.span,
                            [suggest(rest[0], users.fields, "fields")])
                return None
            return I.UserAttr(rest[0], f.column, f.type, span=e.span)
        if head in self.schema.events and len(rest) == 1:
            ev = self.schema.events[head]
            f = ev.field(rest[0])
            if f is None:
                self.report("E201", f"the events `{head}` have no field `{rest[0]}`", e.span,
                            [suggest(rest[0], [*ev.fields, "time"], "fields", f"`{head}.{{}}`")])
                return None
            if scope.event is not None and scope.event.name == head:
                return I.EventField(head, rest[0], f.column, f.type, span=e.span)
            self.report("E305", f"`{e.dotted}` is a field of each {head} event; say which events and how to "
                                f"combine them", e.span,
                        [f"e.g. `sum({e.dotted} within 30d)` or `any({head} where {rest[0]} = ...)`"])
            return None
        if len(parts) == 2 and head not in self.schema.events:
            self.report("E202", f"there are no events called `{head}`", e.span,
                        [suggest(head, self.schema.events, "events")])
            return None
        self.report("E204", f"`{e.dotted}` does not name anything", e.span,
                    [f"a dotted name is `user.FIELD` or `EVENT.FIELD` ({', '.join(f'`{x}`' for x in self.schema.events)})"
                     if self.schema.events else "a dotted name is `user.FIELD` or `EVENT.FIELD`"])
        return None

    def _unknown_name(self, e: A.Name, scope: Scope) -> None:
        n = e.parts[0]
        cands = list(self.schema.users.fields) if self.schema.users else []
        cands += list(self.segments) + list(self.classifications)
        if scope.event is not None:
            cands += [*scope.event.fields, "time"]
        hint = did_you_mean(n, cands)
        if not hint:
            for ev in self.schema.events.values():
                if n in ev.fields:
                    hint = f"`{n}` is a field of {ev.name}: e.g. `any({ev.name} where {n} = ...)`"
                    break
        if not hint:
            fields = list(scope.event.fields) if scope.event is not None else \
                (list(self.schema.users.fields) if self.schema.users else [])
            hint = ("no declaration is called `" + n + "`; fields here: " + ", ".join(f"`{f}`" for f in fields[:10])
                    + (", …" if len(fields) > 10 else "") if fields else
                    f"declare it: a field in the schema, `segment {n} = ...` or `classify {n} by first match {{ ... }}`")
        if scope.event is not None:
            self.report("E201", f"`{n}` is not a field of {scope.event.name} or of users", e.span, [hint])
        else:
            self.report("E204", f"`{n}` is not a user field, segment or classification", e.span, [hint])

    # ------------------------------------------------------------ boolean structure
    def _and(self, e: A.And, scope) -> I.Expr | None:
        items = [self.condition(x, scope) for x in e.items]
        checked = [i for i in items if i is not None]
        return None if len(checked) < len(items) else I.And(tuple(checked), span=e.span)

    def _or(self, e: A.Or, scope) -> I.Expr | None:
        values = self._or_of_values(e, scope)
        items = [self.condition(x, scope) for i, x in enumerate(e.items) if i not in values]
        checked = [i for i in items if i is not None]
        return None if values or len(checked) < len(items) else I.Or(tuple(checked), span=e.span)

    def _or_of_values(self, e: A.Or, scope: Scope) -> set[int]:
        """`lifecycle = silent or churned` reads as `(lifecycle = silent) or churned`: English allows it, the
        language does not. Say E420 with the `in (...)` that was meant, once for each such run of values;
        return the positions of the values (the other items are still checked)."""
        found: set[int] = set()
        i = 0
        while i < len(e.items):
            first = e.items[i]
            values: list[A.Expr] = []
            kind = "value"
            if isinstance(first, A.Compare) and first.op == "=":
                kind = self._value_kind(first.left, scope)
                while i + 1 + len(values) < len(e.items) and \
                        self._is_bare_value(e.items[i + 1 + len(values)], kind, scope):
                    values.append(e.items[i + 1 + len(values)])
            if not values:
                i += 1
                continue
            assert isinstance(first, A.Compare)
            subject = format_expr(first.left, 5)
            shown = [_as_value(v, kind) for v in [first.right, *values]]
            self.report("E420", f"`or` joins conditions, and `{format_expr(values[0])}` is not one: this reads as "
                                f"`({subject} = {format_expr(first.right)}) or {format_expr(values[0])}`",
                        first.span.to(values[-1].span), [f"`{subject} in ({', '.join(shown)})`"])
            found.update(range(i + 1, i + 1 + len(values)))
            i += 1 + len(values)
        return found

    def _value_kind(self, left: A.Expr, scope: Scope) -> str:
        """What the values compared with `left` look like: "label:C" for a classification, "enum" for an
        enum field (bare names are then read as its values), "value" otherwise (literals only)."""
        if not (isinstance(left, A.Name) and len(left.parts) == 1):
            return "value"
        n = left.parts[0]
        users = self.schema.users
        field = scope.event.field(n) if scope.event is not None else None
        if field is None and users is not None and n in users.fields:
            field = users.fields[n]
        if field is not None:
            return "enum" if field.type.kind == "enum" else "value"
        if n in self.classifications and n not in self.segments and scope.event is None:
            return f"label:{n}"
        return "value"

    def _is_bare_value(self, item: A.Expr, kind: str, scope: Scope) -> bool:
        if isinstance(item, (A.StringLit, A.NumberLit, A.MoneyLit, A.PercentLit, A.DateLit, A.DateTimeLit)):
            return True
        if not (isinstance(item, A.Name) and len(item.parts) == 1):
            return False
        n = item.parts[0]
        users = self.schema.users
        known = n in self.segments or n in self.classifications or (users is not None and n in users.fields) or \
            (scope.event is not None and scope.event.field(n) is not None)
        if known:
            return False
        if kind.startswith("label:"):
            return n in self.classifications.get(kind.removeprefix("label:"), [])
        return kind == "enum"

    def _not(self, e: A.Not, scope) -> I.Expr | None:
        inner = self.condition(e.operand, scope)
        return None if inner is None else I.Not(inner, span=e.span)

    def _per_user(self, what: str, scope: Scope, span) -> None:
        """Inside an event query's `where` each event is tested on its own fields; facts about the user
        (segments, classifications, tags, user fields, other events) belong outside it."""
        assert scope.event is not None  # called only inside an event query's `where`
        ev = scope.event.name
        self.report("E416", f"{what} is about the user, not about each {ev} event", span,
                    [f"test it beside the event query: `... and any({ev} where ...)`"])
        return None

    def _tagged(self, e: A.Tagged, scope) -> I.Expr | None:
        if scope.event is not None:
            return self._per_user(f"`tagged \"{e.tag}\"`", scope, e.span)
        # no `tags` declaration is fine: manual tags (`camp tag`, kept in the ledger) exist without one, and
        # which tags exist is data the checker cannot see (`camp audience` warns about a tag nobody has)
        if e.held is not None:
            if e.held.value <= 0:
                self.report("E408", "how long a tag has been held must be longer than zero", e.held.span,
                            ["e.g. `tagged \"vip\" for 30d`"])
                return None
            return I.HasTag(e.tag, I.Dur(e.held.value, e.held.unit), span=e.span)
        return I.HasTag(e.tag, span=e.span)

    def _segment_ref(self, e: A.SegmentRef, scope) -> I.Expr | None:
        n = e.name.name
        if scope.event is not None and n in self.segments:
            return self._per_user(f"the segment `{n}`", scope, e.span)
        if n not in self.segments:
            self.report("E203", f"there is no segment `{n}`", e.name.span, [suggest(n, self.segments, "segments", none="declare it: `segment NAME = condition`")])
            return None
        self.refs.append(n)
        return I.InSegment(n, span=e.span)

    def _redeemed(self, e: A.Redeemed, scope) -> I.Expr | None:
        code = e.code.name
        if scope.event is not None:
            return self._per_user(f"`redeemed({code})`", scope, e.span)
        if self.coupons is None:
            self.report("E418", f"`redeemed({code})` asks about a coupon a campaign gave; outside a campaign "
                                "there is none", e.span,
                        ["test it in a campaign that gives the coupon (`who`, `exclude`, a step's `unless` or `if`)"])
            return None
        if code not in self.coupons:
            known = ", ".join(f"`{c}`" for c in self.coupons)
            close = did_you_mean(code, self.coupons)
            self.report("E418", f"this campaign gives no coupon `{code}`", e.code.span,
                        [f"{close} Its coupons: {known}" if close else f"its coupons: {known}"] if self.coupons else
                        ["this campaign gives no coupon: add one, e.g. `what coupon SAVE10 { value 10 CNY }`"])
            return None
        return I.Redeemed(code, span=e.span)

    # ------------------------------------------------------------ comparisons
    def _compare(self, e: A.Compare, scope) -> I.Expr | None:
        left = self.expr(e.left, scope)
        if left is None:
            return None
        lt = I.type_of(left)
        if lt.kind == "label":
            assert lt.classification is not None  # every label type names its classification
            labels = self._labels(lt.classification, [e.right])
            if labels is None:
                return None
            if e.op not in ("=", "!="):
                self.report("E305", "labels can only be compared with `=`, `!=` or `in`", e.span,
                            [f"e.g. `{lt.classification} in (a, b)`: labels have no order"])
                return None
            out = I.LabelIs(lt.classification, tuple(labels), span=e.span)
            return out if e.op == "=" else I.Not(out, span=e.span)
        right = self.operand(e.right, lt, scope)
        if right is None:
            return None
        rt = I.type_of(right)
        if not self.comparable(lt, rt, e):
            return None
        if e.op not in ("=", "!=") and not (T.orderable(lt) and T.orderable(rt)):
            self.report("E305", f"`{e.op}` needs values that have an order; {lt} has none", e.span,
                        ["use `=`, `!=` or `in (...)`"])
            return None
        return I.Cmp(e.op, left, right, lt, span=e.span)

    def operand(self, e: A.Expr, against: T.Type, scope) -> I.Expr | None:
        """Check e as a value compared with `against`: enum literals are checked against the enum."""
        if against.kind == "enum" and isinstance(e, A.StringLit):
            if e.value not in against.values:
                self.report("E303", f"\"{e.value}\" is not one of {against}", e.span,
                            [did_you_mean(e.value, against.values, '"{}"') or
                             "values: " + ", ".join(f'"{v}"' for v in against.values)])
                return None
            return I.Const(e.value, against, span=e.span)
        if against.kind == "enum" and isinstance(e, A.Name) and len(e.parts) == 1 and e.parts[0] in against.values:
            self.report("E204", f"`{e.parts[0]}` is not a name here", e.span,
                        [f'enum values are quoted: "{e.parts[0]}"'])
            return None
        if against.kind == "timestamp" and isinstance(e, A.DateLit):
            d = parse_date(e, self.report)
            return None if d is None else I.Const(datetime(d.year, d.month, d.day, tzinfo=self.tz), T.TIMESTAMP, span=e.span)
        return self.expr(e, scope)

    def comparable(self, lt: T.Type, rt: T.Type, e: A.Node) -> bool:
        code = T.comparable(lt, rt)
        if code is None:
            return True
        hint = ""
        if lt.kind == "money" and rt.kind in ("number", "percent"):
            hint = f"write the amount with its currency: `... {lt.currency}`"
        elif rt.kind == "money" and lt.kind in ("number", "percent"):
            hint = f"write the amount with its currency: `... {rt.currency}`"
        elif code == "E302":
            hint = "camp never converts currencies; compare amounts in the same currency"
        elif lt.textual and rt.kind == "number":
            hint = "texts are quoted: \"3\""
        self.report(code, f"cannot compare {_a(lt)} with {_a(rt)}", e.span, [hint])
        return False

    def _labels(self, classification: str, items: list[A.Expr]) -> list[str] | None:
        known = self.classifications.get(classification, [])
        out = []
        ok = True
        for item in items:
            name = item.parts[0] if isinstance(item, A.Name) and len(item.parts) == 1 else \
                item.value if isinstance(item, A.StringLit) else None
            if name is None or name not in known:
                shown = name if name is not None else "this"
                self.report("E204", f"`{shown}` is not a label of {classification}", item.span,
                            [did_you_mean(name or "", known) or f"labels: {', '.join(known)}"])
                ok = False
            else:
                out.append(name)
        return out if ok else None

    def _in(self, e: A.InList, scope) -> I.Expr | None:
        subject = self.expr(e.subject, scope)
        if subject is None:
            return None
        st = I.type_of(subject)
        if st.kind == "label":
            assert st.classification is not None  # every label type names its classification
            labels = self._labels(st.classification, e.items)
            if labels is None:
                return None
            out = I.LabelIs(st.classification, tuple(labels), span=e.span)
            return I.Not(out, span=e.span) if e.negated else out
        values = []
        for item in e.items:
            v = self.operand(item, st, scope)
            if v is None:
                return None
            if not isinstance(v, I.Const):
                self.report("E305", "`in (...)` lists fixed values", item.span,
                            ['write quoted texts, numbers or labels: `city in ("北京", "上海")`'])
                return None
            if not self.comparable(st, v.type, item):
                return None
            values.append(v)
        return I.InSet(subject, tuple(values), e.negated, span=e.span)

    def _between(self, e: A.Between, scope) -> I.Expr | None:
        subject = self.expr(e.subject, scope)
        if subject is None:
            return None
        st = I.type_of(subject)
        low, high = self.operand(e.low, st, scope), self.operand(e.high, st, scope)
        if low is None or high is None:
            return None
        if not (self.comparable(st, I.type_of(low), e.low) and self.comparable(st, I.type_of(high), e.high)):
            return None
        if not T.orderable(st):
            self.report("E305", f"`between` needs values that have an order; {st} has none", e.span,
                        ["use `in (...)` to list the values"])
            return None
        if isinstance(low, I.Const) and isinstance(high, I.Const) and _gt(low.value, high.value):
            self.report("E403", "the lower bound is above the upper bound, so nothing is between them", e.span,
                        ["write the smaller value first"])
            return None
        return I.Between(subject, low, high, span=e.span)

    def _is_null(self, e: A.IsNull, scope) -> I.Expr | None:
        subject = self.expr(e.subject, scope)
        return None if subject is None else I.IsNull(subject, e.negated, span=e.span)

    def _text_match(self, e: A.TextMatch, scope) -> I.Expr | None:
        subject = self.expr(e.subject, scope)
        if subject is None:
            return None
        st = I.type_of(subject)
        if not st.textual:
            self.report("E305", f"`{e.op.replace('_', ' ')}` works on text, not on {st}", e.span,
                        ["compare it with `=`, `<`, `>` or `between` instead"])
            return None
        if not isinstance(e.pattern, A.StringLit):
            self.report("E305", f"`{e.op.replace('_', ' ')}` needs a quoted text", e.pattern.span,
                        [f'e.g. `name {e.op.replace("_", " ")} "VIP"`'])
            return None
        return I.TextMatch(e.op, subject, e.pattern.value, span=e.span)

    def _is_today(self, e: A.IsToday, scope) -> I.Expr | None:
        subject = self.expr(e.subject, scope)
        if subject is None:
            return None
        if not I.type_of(subject).temporal:
            self.report("E305", f"`is today` needs a date or timestamp, not {I.type_of(subject)}", e.span,
                        ["e.g. `birthday is today` or `birthday anniversary is today`"])
            return None
        return I.IsToday(subject, e.anniversary, span=e.span)

    def _rel_time(self, e: A.RelTime, scope) -> I.Expr | None:
        subject = self.expr(e.subject, scope)
        win = self.window(e.window, scope)
        if subject is None or win is None:
            return None
        st = I.type_of(subject)
        if not st.temporal:
            self.report("E305", f"`{e.window.op}` is a time test; {_a(st)} is not a date or timestamp",
                        e.window.span, ["time tests apply to dates, timestamps, `first(...)`/`last(...)` of "
                                        "`EVENT.time`"])
            return None
        return I.InWindow(subject, win, span=e.span)

    def window(self, w: A.Window, scope: Scope) -> I.Win | None:
        if w.op == "since":
            assert w.step is not None  # the parser gives `since` its step
            step = w.step.name
            if scope.steps is None:
                self.report("E307", f"`since {step}` refers to a step; it only works inside a step or a goal",
                            w.span, ["outside a step use a window such as `within 7d`"])
                return None
            if step not in scope.steps:
                later = step in scope.later_steps
                self.report("E207", f"step `{step}` " + ("comes later, so it has not been sent yet" if later
                                                         else "does not exist in this campaign"),
                            w.step.span, [suggest(step, scope.steps, "earlier steps")])
                return None
            return I.Win("since", step=step, span=w.span)
        assert w.duration is not None  # the parser gives every other op a duration
        start = I.Dur(w.duration.value, w.duration.unit)
        end = I.Dur(w.until.value, w.until.unit) if w.until else None
        if start.value <= 0:
            self.report("E408", "a window must be longer than zero", w.duration.span, ["e.g. `within 30d`"])
            return None
        if end is not None and end.minutes() >= start.minutes():
            self.report("E403", f"`between {start} and {end} ago` is empty: the first duration must be the longer one",
                        w.span, [f"`between {end} and {start} ago`"])
            return None
        return I.Win(w.op, start, end, span=w.span)

    # ------------------------------------------------------------ arithmetic
    def _arith(self, e: A.Arith, scope) -> I.Expr | None:
        left, right = self.expr(e.left, scope), self.expr(e.right, scope)
        if left is None or right is None:
            return None
        lt, rt = I.type_of(left), I.type_of(right)
        t = _arith_type(e.op, lt, rt)
        if isinstance(t, str):
            self.report(t, f"cannot compute {lt} {e.op} {rt}", e.span,
                        ["camp never converts currencies"] if t == "E302" else
                        ["arithmetic works on numbers and money; durations and percentages are written as literals"])
            return None
        return I.Arith(e.op, left, right, t, span=e.span)

    def _neg(self, e: A.Neg, scope) -> I.Expr | None:
        inner = self.expr(e.operand, scope)
        if inner is None:
            return None
        t = I.type_of(inner)
        if not t.numeric:
            self.report("E305", f"cannot negate {t}", e.span, ["only numbers and money have a minus sign"])
            return None
        if isinstance(inner, I.Const):
            return I.Const(-cast(Decimal, inner.value), t, span=e.span)  # a numeric constant holds a Decimal
        return I.Neg(inner, t, span=e.span)

    # ------------------------------------------------------------ event aggregates
    def _aggregate(self, e: A.Aggregate, scope: Scope) -> I.Expr | None:
        if scope.event is not None:
            return self._per_user(f"`{e.func.replace('_', ' ')}({e.event.name} ...)`", scope, e.span)
        ev = self.schema.events.get(e.event.name)
        if ev is None:
            self.report("E202", f"there are no events called `{e.event.name}`", e.event.span,
                        [suggest(e.event.name, self.schema.events, "events", none="declare them: `events orders from table orders user user_id time created_at { ... }`")])
            return None
        fld = None
        if e.field is not None:
            f = ev.field(e.field.name)
            if f is None:
                self.report("E201", f"the events `{ev.name}` have no field `{e.field.name}`", e.field.span,
                            [suggest(e.field.name, [*ev.fields, "time"], "fields", f"`{ev.name}.{{}}`")])
                return None
            fld = I.EventField(ev.name, e.field.name, f.column, f.type, span=e.field.span)
            if e.func in NUMERIC_AGGS and f.type.kind not in ("number", "money"):
                self.report("E305", f"`{e.func}` needs numbers or money; `{ev.name}.{f.name}` is {f.type}", e.span,
                            ["count them instead: `count(...)` or `count distinct(...)`"])
                return None
            if e.func in ORDERED_AGGS and not T.orderable(f.type):
                self.report("E305", f"`{e.func}` needs values with an order; `{ev.name}.{f.name}` is {f.type}", e.span,
                            ["count them instead: `count distinct(...)`"])
                return None
        inner = Scope(event=ev, steps=scope.steps, later_steps=scope.later_steps)
        where = self.condition(e.where, inner) if e.where is not None else None
        if e.where is not None and where is None:
            return None
        win = self.window(e.window, scope) if e.window is not None else None
        if e.window is not None and win is None:
            return None
        if e.func in ("count", "count_distinct"):
            t = T.NUMBER
        elif e.func in ("any", "none"):
            t = T.BOOL
        else:
            assert fld is not None  # the parser gives sum/avg/min/max/first/last a field
            t = fld.type
        return I.Agg(e.func, ev.name, fld, where, win, t, span=e.span)


    # ------------------------------------------------------------ history (materialised classifications)
    def _history(self, e: A.LabelWas | A.LabelMoved, scope: Scope) -> I.Expr | None:
        name = e.classification.name
        word = "was" if isinstance(e, A.LabelWas) else "moved"
        if scope.event is not None:
            return self._per_user(f"the history of `{name}`", scope, e.span)
        if name not in self.classifications:
            what = "a segment" if name in self.segments else "not a classification"
            self.report("E216", f"`{name}` is {what}: `{word}` reads the history of a classification", e.classification.span,
                        [suggest(name, sorted(self.materialized), "materialised classifications",
                                 none="materialise one: `materialize lifecycle daily at 02:00`")])
            return None
        if name not in self.materialized:
            self.report("E216", f"`{name}` keeps no history: no `materialize` declaration names it",
                        e.classification.span, [f"add `materialize {name} daily at 02:00` to a .camp file of the "
                                                "workspace, then run `camp materialize` (with `--backfill` for the past)"])
            return None
        if isinstance(e, A.LabelMoved):  # reads the live label too (the history never makes a cycle)
            self.refs.append(name)
        dur = e.ago if isinstance(e, A.LabelWas) else e.within
        if dur.value <= 0:
            self.report("E408", "a time in the history must lie in the past: the duration must be longer than zero",
                        dur.span, ["e.g. `90d`"])
            return None
        labels = [e.label] if isinstance(e, A.LabelWas) else [e.source, e.target]
        checked = self._labels(name, [A.Name(parts=[x.name], span=x.span) for x in labels])
        if checked is None:
            return None
        d = I.Dur(dur.value, dur.unit)
        if isinstance(e, A.LabelWas):
            return I.LabelWas(name, checked[0], d, span=e.span)
        return I.LabelMoved(name, checked[0], checked[1], d, span=e.span)

    # ------------------------------------------------------------ population statistics
    def _population_stat(self, e: A.PopulationStat, scope: Scope) -> I.Expr | None:
        """percent_rank / ntile / percentile: a value and its `among` are checked as about any user at the
        as-of time (no step, no campaign's coupons: the population is the user base, not a journey)."""
        if scope.event is not None:
            return self._per_user(f"`{e.func}(...)`", scope, e.span)
        journey = _journey_fact(e)
        if journey is not None:
            what, span = journey
            hint = (f"rank over a window such as `within 30d`; test the journey beside the statistic: "
                    f"`{e.func}(...) ... and any(orders {what.strip('`')})`" if what.startswith("`since") else
                    f"test it beside the statistic: `{e.func}(...) ... and {what.strip('`')}`")
            self.report("E432", f"{what} is about this campaign's journey; `{e.func}` ranks every user at the "
                                "as-of time", span, [hint])
            return None
        param = self._population_param(e)
        value = self.expr(e.value, Scope())
        among = self.condition(e.among, Scope()) if e.among is not None else None
        if value is None or (e.among is not None and among is None) or (e.arg is not None and param is None):
            return None
        vt = I.type_of(value)
        if e.func == "percentile" and not vt.numeric:
            self.report("E305", f"`percentile` interpolates between numbers or money; this is {_a(vt)}",
                        e.value.span, ["e.g. `percentile(80%, sum(orders.amount within 365d))`"] if not vt.temporal
                        else ["rank times instead: `percent_rank(last(orders.time)) >= 80%`"])
            return None
        if not (vt.numeric or vt.temporal):
            self.report("E305", f"`{e.func}` ranks numbers, money, dates or times; this is {_a(vt)}", e.value.span,
                        ["e.g. `sum(orders.amount within 365d)`, `count(orders within 90d)` or `last(orders.time)`"])
            return None
        t = T.PERCENT if e.func == "percent_rank" else T.NUMBER if e.func == "ntile" else vt
        return I.PopStat(e.func, value, among, param, t, span=e.span)

    def _population_param(self, e: A.PopulationStat) -> Decimal | None:
        """ntile's number of buckets (E430) or percentile's fraction (E431), from the literal written."""
        arg = e.arg
        if e.func == "ntile":
            if isinstance(arg, A.NumberLit) and arg.value == arg.value.to_integral_value() \
                    and 1 <= arg.value <= MAX_BUCKETS:
                return arg.value.to_integral_value()
            assert arg is not None  # the grammar gives ntile its count
            self.report("E430", "`ntile` needs a whole number of buckets from 1 to "
                                f"{MAX_BUCKETS:,}, written as a number", arg.span,
                        ["e.g. `ntile(5, sum(orders.amount within 365d))` for quintiles"])
            return None
        if e.func == "percentile":
            if isinstance(arg, A.PercentLit) and 0 < arg.value <= 100:
                return arg.value / Decimal(100)
            assert arg is not None  # the grammar gives percentile its fraction
            self.report("E431", "`percentile` needs a percentage above 0% and at most 100%, written as one",
                        arg.span, ["e.g. `percentile(80%, sum(orders.amount within 365d))`: the value 80% of "
                                   "users are at or below"])
            return None
        return None


MAX_BUCKETS = 10_000  # far more than any score needs; keeps ntile's N an integer on every engine


def _journey_fact(e: A.PopulationStat) -> tuple[str, Span] | None:
    """The first `since STEP` window or `redeemed(CODE)` inside a population statistic, as (text, span)."""
    for part in (e.value, e.among):
        if part is None:
            continue
        for n in walk(part):
            if isinstance(n, A.Window) and n.op == "since" and n.step is not None:
                return f"`since {n.step.name}`", n.span
            if isinstance(n, A.Redeemed):
                return f"`redeemed({n.code.name})`", n.span
    return None


def _as_value(e: A.Expr, kind: str) -> str:
    """A value as it goes in `in (...)`: enum values are quoted even when written bare."""
    if kind == "enum" and isinstance(e, A.Name):
        return format_expr(A.StringLit(value=e.dotted))
    return format_expr(e)


def _arith_type(op: str, a: T.Type, b: T.Type) -> T.Type | str:
    num = ("number", "percent")
    if a.kind in num and b.kind in num:
        return T.NUMBER
    if a.kind == "money" and b.kind == "money":
        if a.currency != b.currency:
            return "E302"
        if op in "+-":
            return a
        if op == "/":
            return T.NUMBER
        return "E304"
    if a.kind == "money" and b.kind in num and op in "*/":
        return a
    if b.kind == "money" and a.kind in num and op == "*":
        return b
    return "E305"


def _gt(a, b) -> bool:
    try:
        return a > b
    except TypeError:
        return False


def _a(t: T.Type) -> str:
    s = str(t)
    if t.kind == "label":
        return s
    return ("an " if s[0] in "aeiou" else "a ") + s


def parse_date(e: A.DateLit, report: Report) -> date | None:
    """The date, or None after a diagnostic (E401 no such date, E414 outside the supported range)."""
    try:
        d = date.fromisoformat(e.text)
    except ValueError:
        report("E401", f"{e.text} is not a date that exists", e.span, ["dates are written YYYY-MM-DD"])
        return None
    return d if check_date(d, e.span, report) else None


def parse_datetime(text: str, node: A.Node, report: Report) -> datetime | None:
    try:
        day, _, clock = text.partition(" ")
        if not clock:
            out = datetime.fromisoformat(day)
            return out if check_date(out.date(), node.span, report) else None
        hh, mm, *ss = clock.split(":")
        out = datetime.fromisoformat(day).replace(hour=int(hh), minute=int(mm), second=int(ss[0]) if ss else 0)
        return out if check_date(out.date(), node.span, report) else None
    except ValueError:
        report("E401", f"{text} is not a date and time that exists", node.span,
                ["write YYYY-MM-DD HH:MM, hours 0-23 and minutes 0-59"])
        return None
