"""AST -> canonical text (`camp fmt`). Idempotent; keeps every comment.

Each emitted line remembers the source line of the node it prints. Comments that
stood alone on a line go before the first printed line from a later source line;
comments that ended a line of code go at the end of the printed line of that
source line. Parentheses are printed exactly where precedence needs them, so
parse(format(ast)) == ast (a hypothesis property in tests/dsl).
"""

from __future__ import annotations

import json
from decimal import Decimal

from dsl import ast as A

INDENT = "  "
WIDE = 88
# precedence: or 1, and 2, not 3, comparison 4, sum 5, product 6, unary 7, atom 8
_PREC = {"or": 1, "and": 2, "not": 3, "compare": 4, "in": 4, "between": 4, "is_null": 4, "text_match": 4,
         "is_today": 4, "rel_time": 4, "tagged": 4, "segment_ref": 4, "redeemed": 4, "neg": 7,
         "label_was": 4, "label_moved": 4}


def format_module(module: A.Module) -> str:
    f = _Formatter()
    for i, decl in enumerate(module.decls):
        if i:
            f.blank()
        f.decl(decl)
    return _merge_comments(f.lines, module.comments)


# ------------------------------------------------------------------ expressions


def _prec(e: A.Expr) -> int:
    if isinstance(e, A.Arith):
        return 5 if e.op in "+-" else 6
    return _PREC.get(e.kind, 8)


def _num(d: Decimal) -> str:
    s = format(d, "f")
    return s


def _str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def expr(e: A.Expr, parent: int = 0) -> str:
    text = _expr(e)
    return f"({text})" if _prec(e) < parent else text


def _ends_in_time_test(e: A.Expr) -> bool:
    """Would the parser hoist the end of this condition into a window? (see transform.split_trailing_window)"""
    if isinstance(e, A.RelTime):
        return True
    if isinstance(e, (A.And, A.Or)):
        return _ends_in_time_test(e.items[-1])
    if isinstance(e, A.Not):
        return _ends_in_time_test(e.operand)
    return False


def condition_before_window(e: A.Expr) -> str:
    text = expr(e)
    return f"({text})" if _ends_in_time_test(e) else text


def window(w: A.Window) -> str:
    # The parser fills `duration` for every op but `since`, `until` for `between`, `step` for `since`.
    if w.op == "within":
        assert w.duration is not None
        return f"within {w.duration.text()}"
    if w.op == "after":
        assert w.duration is not None
        return f"after {w.duration.text()} ago"
    if w.op == "before":
        assert w.duration is not None
        return f"before {w.duration.text()} ago"
    if w.op == "between":
        assert w.duration is not None and w.until is not None
        return f"between {w.duration.text()} and {w.until.text()} ago"
    assert w.step is not None
    return f"since {w.step.name}"


def _expr(e: A.Expr) -> str:
    match e:
        case A.Name():
            return e.dotted
        case A.StringLit():
            return _str(e.value)
        case A.NumberLit():
            return _num(e.value)
        case A.MoneyLit():
            return f"{_num(e.amount)} {e.currency}"
        case A.PercentLit():
            return f"{_num(e.value)}%"
        case A.DateLit() | A.DateTimeLit():
            return e.text
        case A.BoolLit():
            return "true" if e.value else "false"
        case A.Neg():
            return "-" + expr(e.operand, 7)
        case A.Arith():
            p = _prec(e)
            return f"{expr(e.left, p)} {e.op} {expr(e.right, p + 1)}"
        case A.Compare():
            return f"{expr(e.left, 5)} {e.op} {expr(e.right, 5)}"
        case A.InList():
            items = ", ".join(expr(i, 5) for i in e.items)
            return f"{expr(e.subject, 5)} {'not in' if e.negated else 'in'} ({items})"
        case A.Between():
            return f"{expr(e.subject, 5)} between {expr(e.low, 5)} and {expr(e.high, 5)}"
        case A.IsNull():
            return f"{expr(e.subject, 5)} is {'not ' if e.negated else ''}null"
        case A.TextMatch():
            return f"{expr(e.subject, 5)} {'contains' if e.op == 'contains' else 'starts with'} {expr(e.pattern, 5)}"
        case A.IsToday():
            return f"{expr(e.subject, 5)} {'anniversary ' if e.anniversary else ''}is today"
        case A.RelTime():
            return f"{expr(e.subject, 5)} {window(e.window)}"
        case A.Tagged():
            return f"tagged {_str(e.tag)}" + (f" for {e.held.text()}" if e.held is not None else "")
        case A.SegmentRef():
            return f"segment {e.name.name}"
        case A.Redeemed():
            return f"redeemed({e.code.name})"
        case A.LabelWas() | A.LabelMoved():
            return _history(e)
        case A.And():
            return " and ".join(expr(i, 3) for i in e.items)
        case A.Or():
            return " or ".join(expr(i, 2) for i in e.items)
        case A.Not():
            return "not " + expr(e.operand, 3)
        case A.Aggregate():
            return _aggregate(e)
        case A.PopulationStat():
            return _population_stat(e)
    raise ValueError(f"cannot format {e.kind}")


def _aggregate(a: A.Aggregate) -> str:
    func = {"count_distinct": "count distinct", "any": "any", "none": "none"}.get(a.func, a.func)
    target = a.event.name + (f".{a.field.name}" if a.field else "")
    parts = [target]
    if a.where is not None:
        parts.append("where " + condition_before_window(a.where))
    if a.window is not None:
        parts.append(window(a.window))
    return f"{func}({' '.join(parts)})"


def _population_stat(s: A.PopulationStat) -> str:
    parts = [expr(s.arg, 5) + ", "] if s.arg is not None else []
    parts.append(expr(s.value, 5))
    if s.among is not None:
        parts.append(" among " + expr(s.among))
    return f"{s.func}({''.join(parts)})"


# ------------------------------------------------------------------ declarations


class _Formatter:
    def __init__(self) -> None:
        self.lines: list[tuple[str, int]] = []  # (text, source line anchor; 0: none)

    def emit(self, depth: int, text: str, node: A.Node | int | None) -> None:
        anchor = node if isinstance(node, int) else (node.span.line if node is not None else 0)
        self.lines.append((INDENT * depth + text, anchor))

    def blank(self) -> None:
        if self.lines and self.lines[-1][0] != "":
            self.lines.append(("", 0))

    def close(self, depth: int, node: A.Node) -> None:
        self.emit(depth, "}", node.span.end_line)

    def decl(self, d: A.Decl) -> None:
        getattr(self, "_" + d.kind)(d)

    # -------------------------------------------------------------- schema
    def _field_line(self, fd: A.FieldDecl) -> str:
        t = fd.type
        if t.name == "money":
            ts = f"money({t.currency})"
        elif t.name == "enum":
            ts = "enum(" + ", ".join(_str(v) for v in t.values) + ")"
        else:
            ts = t.name
        opts = (f" column {fd.column.name}" if fd.column else "") + (" pii" if fd.pii else "") + (" tz" if fd.tz else "")
        return f"{fd.name.name} {ts}{opts}"

    def _fields(self, fields: list[A.FieldDecl]) -> None:
        width = max((len(f.name.name) for f in fields), default=0)
        for fd in fields:
            line = self._field_line(fd)
            name, rest = line.split(" ", 1)
            self.emit(1, f"{name.ljust(width)} {rest}", fd)

    def _users(self, d: A.UsersDecl) -> None:
        self.emit(0, f"users from table {d.table} key {d.key.name} {{", d)
        self._fields(d.fields)
        self.close(0, d)

    def _events(self, d: A.EventsDecl) -> None:
        self.emit(0, f"events {d.name.name} from table {d.table} user {d.user.name} time {d.time.name} {{", d)
        self._fields(d.fields)
        self.close(0, d)

    def _tags(self, d: A.TagsDecl) -> None:
        self.emit(0, f"tags from table {d.table} user {d.user.name} tag {d.tag.name}", d)

    def _consent(self, d: A.ConsentDecl) -> None:
        self.emit(0, f"consent from table {d.table} user {d.user.name} channel {d.channel.name}", d)

    # -------------------------------------------------------------- segments
    def _segment(self, d: A.SegmentDecl) -> None:
        title = f" {_str(d.title)}" if d.title is not None else ""
        self._long_condition(0, f"segment {d.name.name}{title} = ", d.expr, d)

    def _long_condition(self, depth: int, head: str, e: A.Expr, anchor: A.Node, split: int = 3) -> None:
        """`head` + condition; a long top-level `and` chain puts one condition per line."""
        one = head + expr(e)
        if isinstance(e, A.And) and (len(INDENT * depth + one) > WIDE or len(e.items) >= split):
            self.emit(depth, head + expr(e.items[0], 3), anchor)
            for item in e.items[1:]:
                self.emit(depth + 1, "and " + expr(item, 3), item)
        else:
            self.emit(depth, one, anchor)

    def _classify(self, d: A.ClassifyDecl) -> None:
        title = f" {_str(d.title)}" if d.title is not None else ""
        self.emit(0, f"classify {d.name.name}{title} by first match {{", d)
        width = max(len(r.label.name) + (len(_str(r.title)) + 1 if r.title is not None else 0) for r in d.rules)
        for r in d.rules:
            label = r.label.name + (f" {_str(r.title)}" if r.title is not None else "")
            body = "otherwise" if r.expr is None else expr(r.expr)
            self.emit(1, f"{label.ljust(width)} = {body}", r)
        self.close(0, d)

    # -------------------------------------------------------------- materialised labels
    def _materialize(self, d: A.MaterializeDecl) -> None:
        self.emit(0, f"materialize {', '.join(n.name for n in d.names)} daily at {d.at}", d)

    # -------------------------------------------------------------- limits
    def _limit(self, depth: int, item: A.PolicyItem | A.SpendItem) -> None:
        match item:
            case A.Cap():
                unused = "unused " if item.unused else ""
                per = f" per {item.per.text()}" if item.per else ""
                self.emit(depth, f"cap {item.count} {unused}{item.unit.name} per user{per}", item)
            case A.TieredCap():
                tiers = "  ".join(f"{t.label.name if t.label else 'otherwise'} {t.count}" for t in item.tiers)
                self.emit(depth,
                          f"cap {item.channel.name} per user per {item.per.text()} by {item.by.name} {{ {tiers} }}",
                          item)
            case A.Quiet():
                self.emit(depth, f"quiet {item.start}-{item.end}", item)
            case A.Costs():
                costs = ", ".join(f"{c.channel.name} {_num(c.cost.amount)} {c.cost.currency}" for c in item.items)
                self.emit(depth, f"cost {costs}", item)
            case A.ExclusiveGroup():
                self.emit(depth, f"exclusive group {_str(item.group)}", item)
            case A.Budget():
                parts = []
                if item.total:
                    parts.append(f"{_num(item.total.amount)} {item.total.currency} total")
                if item.daily:
                    parts.append(f"{_num(item.daily.amount)} {item.daily.currency} per day")
                self.emit(depth, "budget " + ", ".join(parts), item)
            case A.Expect():
                self.emit(depth, f"expect redemption {_num(item.redemption)}%", item)
            case A.Priority():
                self.emit(depth, f"priority {item.value}", item)
            case A.Exclusive():
                self.emit(depth, f"exclusive {_str(item.group)}", item)

    def _policy(self, d: A.PolicyDecl) -> None:
        name = f" {d.name.name}" if d.name else ""
        self.emit(0, f"policy{name} {{", d)
        for item in d.items:
            self._limit(1, item)
        self.close(0, d)

    # -------------------------------------------------------------- campaign
    def _campaign(self, d: A.CampaignDecl) -> None:
        title = f" {_str(d.title)}" if d.title is not None else ""
        self.emit(0, f"campaign {d.name.name}{title} {{", d)
        for i, s in enumerate(d.sections):
            if i and not (s.kind == "why" and d.sections[i - 1].kind == "owner"):
                self.blank()
            getattr(self, "_s_" + s.kind)(s)
        self.close(0, d)

    def _alert(self, d: A.AlertDecl) -> None:
        title = f" {_str(d.title)}" if d.title is not None else ""
        self.emit(0, f"alert {d.name.name}{title} {{", d)
        for item in d.items:
            match item:
                case A.AlertThreshold():
                    self.emit(1, f"threshold {item.measure.name} {item.op} {expr(item.value)}", item)
                case A.AlertTo():
                    self.emit(1, f"send to {item.team.name}", item)
                case A.AlertSample():
                    self.emit(1, f"sample {item.size}", item)
                case _:
                    getattr(self, "_s_" + item.kind)(item)
        self.close(0, d)

    def _s_owner(self, s: A.Owner) -> None:
        self.emit(1, f"owner {_str(s.owner)}", s)

    def _s_why(self, s: A.Why) -> None:
        self.emit(1, f"why {s.objective.name}", s)
        for item in s.items:
            if isinstance(item, A.Goal):
                if item.window is not None:
                    self.emit(2, f"goal {condition_before_window(item.expr)} within {item.window.text()}", item)
                else:
                    self.emit(2, f"goal {condition_before_window(item.expr)}", item)
            else:
                self.emit(2, f"target {item.metric.name} {item.op} {expr(item.value)}", item)

    def _s_who(self, s: A.Who) -> None:
        self._long_condition(1, "who ", s.expr, s, split=2)
        for item in s.items:
            if isinstance(item, A.Exclude):
                self.emit(2, f"exclude {expr(item.expr)}", item)
            else:
                self.emit(2, f"holdout {_num(item.percent)}%", item)

    def _s_what(self, s: A.What) -> None:
        for i, res in enumerate(s.resources):
            head = "what " if i == 0 else "  "
            tail = "," if i < len(s.resources) - 1 else ""
            if isinstance(res, A.Coupon):
                title = f" {_str(res.title)}" if res.title is not None else ""
                self.emit(1, f"{head}coupon {res.code.name}{title} {{", res)
                for item in res.items:
                    self.emit(2, _coupon_item(item), item)
                self.emit(1, "}" + tail, res.span.end_line)
            elif isinstance(res, A.RedPacket):
                title = f" {_str(res.title)}" if res.title is not None else ""
                self.emit(1, f"{head}red_packet {res.name.name}{title} {{", res)
                for item in res.items:
                    if isinstance(item, A.PacketValue):
                        self.emit(2, f"value {_num(item.value.amount)} {item.value.currency}", item)
                    else:
                        self.emit(2, f"share decay {_num(item.decay)}% floor {_num(item.floor.amount)} "
                                     f"{item.floor.currency} after {item.after}", item)
                self.emit(1, "}" + tail, res.span.end_line)
            elif isinstance(res, A.Points):
                self.emit(1, f"{head}points {_num(res.amount)}{tail}", res)
            else:
                self.emit(1, f"{head}message{tail}", res)

    def _s_when(self, s: A.When) -> None:
        t = s.trigger
        if isinstance(t, A.Daily):
            text = "daily at " + ", ".join(t.times)
        elif isinstance(t, A.Weekly):
            text = "every " + ", ".join(d.name for d in t.days) + " at " + ", ".join(t.times)
        elif isinstance(t, A.Every):
            text = f"every {t.interval.text()}"
        elif isinstance(t, A.Once):
            text = f"once at {t.at}"
        elif isinstance(t, A.Cron):
            text = f"cron {_str(t.expr)}"
        else:
            text = f"on {t.event.name}" + (" first" if t.first else "")
            if t.condition is not None:
                text += f" if {expr(t.condition)}"
            if t.delay is not None:
                text += f" delay {t.delay.text()}"
        for o in s.options:
            if isinstance(o, A.DateFrom):
                text += f" from {o.start.text}" + (f" to {o.end.text}" if o.end else "")
            elif isinstance(o, A.DateUntil):
                text += f" until {o.end.text}"
            else:
                text += " tz user" if o.user else f" tz {_str(o.name)}"
        self.emit(1, "when " + text, s)

    def _s_where(self, s: A.WhereSection) -> None:
        self.emit(1, "where " + _channel(s.channels[0]), s)
        for ch in s.channels[1:]:
            self.emit(4, "else " + _channel(ch), ch)

    def _s_how(self, s: A.How) -> None:
        self.emit(1, "how", s)
        for step in s.steps:
            head = f"step {step.name.name}"
            if step.after:
                head += f" after {step.after.text()}"
            if step.unless is not None:
                head += f" unless {expr(step.unless)}"
            body = step.body
            if isinstance(body, A.Actions):
                one = f"{head}: {_actions(body)}"
                if len(INDENT * 2 + one) <= WIDE:
                    self.emit(2, one, step)
                else:
                    self.emit(2, head + ":", step)
                    self.emit(3, _actions(body), body)
            elif isinstance(body, A.Branches):
                self.emit(2, head + ":", step)
                for b in body.branches:
                    cond = "otherwise" if b.condition is None else f"if {expr(b.condition)}"
                    self.emit(3, f"{cond}: {_actions(b.actions)}", b)
            else:
                self.emit(2, head + ":", step)
                for v in body.variants:
                    self.emit(3, f"variant {v.name.name} {_num(v.percent)}%: {_actions(v.actions)}", v)

    def _s_how_much(self, s: A.HowMuch) -> None:
        self.emit(1, "how much", s)
        for item in s.items:
            self._limit(2, item)


def _coupon_item(item: A.CouponItem) -> str:
    match item:
        case A.CouponValue():
            return f"value {_num(item.value.amount)} {item.value.currency}"
        case A.MinSpend():
            return f"min_spend {_num(item.value.amount)} {item.value.currency}"
        case A.Scope():
            return f"only {item.field.name} in ({', '.join(expr(v, 5) for v in item.values)})"
        case A.UsableFor():
            return f"usable {item.duration.text()} after issue"
        case A.UsableBetween():
            return f"usable from {item.start.text} to {item.end.text}"


def _channel(ch: A.Channel) -> str:
    text = ch.channel.name
    if ch.template is not None:
        text += f" template {_str(ch.template.value)}"
    if ch.subject is not None:
        text += f" subject {_str(ch.subject.value)}"
    return text


def _actions(acts: A.Actions) -> str:
    out = []
    for a in acts.actions:
        if isinstance(a, A.Give):
            out.append("give what" if a.resource is None else f"give {a.resource.name}")
        elif a.channels is None:
            out.append("notify where")
        else:
            out.append("notify " + " else ".join(_channel(c) for c in a.channels))
    return ", ".join(out)


# ------------------------------------------------------------------ comments


def _merge_comments(lines: list[tuple[str, int]], comments: list[A.Comment]) -> str:
    before: dict[int, list[A.Comment]] = {}
    trailing: dict[int, list[str]] = {}
    tail: list[A.Comment] = []
    anchored = [(i, a) for i, (_, a) in enumerate(lines) if a]
    for c in comments:
        if c.own_line:
            idx = next((i for i, a in anchored if a > c.line), None)
            (tail if idx is None else before.setdefault(idx, [])).append(c)
        else:
            same = [i for i, a in anchored if a == c.line]
            prior = [i for i, a in anchored if a <= c.line]
            idx = same[-1] if same else (prior[-1] if prior else None)
            if idx is None:
                before.setdefault(anchored[0][0] if anchored else 0, []).append(c)
            else:
                trailing.setdefault(idx, []).append(c.text)
    out: list[str] = []
    for i, (text, _) in enumerate(lines):
        indent = text[: len(text) - len(text.lstrip())]
        for c in before.get(i, []):
            out.append(indent + c.text)
            if c.blank_after:
                out.append("")
        if i in trailing:
            text = text + "  " + " ".join(trailing[i])
        out.append(text)
    if tail:
        if out and out[-1] != "":
            out.append("")
        out.extend(c.text for c in tail)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n" if out else ""


def _history(e: A.LabelWas | A.LabelMoved) -> str:
    """`C was X 90d ago`, `moved C from X to Y within 30d` (kept apart from the other comparisons)."""
    if isinstance(e, A.LabelWas):
        return f"{e.classification.name} was {e.label.name} {e.ago.text()} ago"
    return f"moved {e.classification.name} from {e.source.name} to {e.target.name} within {e.within.text()}"
