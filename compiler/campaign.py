"""A campaign declaration -> program.Campaign: the seven sections checked one by one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Protocol, TypeVar

from compiler import ir as I
from compiler import program as P
from compiler.bounds import COUPON_DECIMALS, check_per_send
from compiler.config import WorkspaceConfig
from compiler.ir import Dur
from compiler.limits import check_cap, check_costs, check_quiet
from compiler.report import Report, did_you_mean, suggest
from compiler.templates import resolve_template, template_name_problem
from compiler.timespec import check_when
from compiler.typecheck import ExprChecker, Scope, parse_date
from dsl import ast as A
from dsl.span import Span


class _Kinded(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def span(self) -> Span: ...


_N = TypeVar("_N", bound=_Kinded)

OBJECTIVES = ["acquisition", "activation", "retention", "repurchase", "reactivation", "referral"]
METRICS = ["conversion", "redemption", "click_rate"]
SECTION_WORDS = {"owner": "owner", "why": "why", "who": "who", "what": "what", "when": "when", "where": "where",
                 "how": "how", "how_much": "how much"}


@dataclass
class TemplateUse:
    name: str
    span: Span
    path: Path


@dataclass
class CampaignContext:
    checker: ExprChecker
    report: Report
    config: WorkspaceConfig
    template_dir: Path
    policy: P.Policy
    channels: list[str]
    templates: list[TemplateUse] = field(default_factory=list)
    # template name -> (resolved path or None, is a file, why it could not be looked up): shared by the
    # campaigns of one check run, so a thousand campaigns naming one template resolve it once
    template_paths: dict[str, tuple[Path | None, bool, Exception | None]] = field(default_factory=dict)


def check_campaign(decl: A.CampaignDecl, ctx: CampaignContext) -> P.Campaign:
    r = ctx.report
    c = P.Campaign(name=decl.name.name, title=decl.title, file=r.file, span=decl.span, name_span=decl.name.span)
    seen: dict[str, A.Section] = {}
    for section in decl.sections:
        if section.kind in seen:
            r("E211", f"the campaign has two `{SECTION_WORDS[section.kind]}` sections", section.span,
              [f"the first is on line {seen[section.kind].span.line}; merge them"])
            continue
        seen[section.kind] = section
    how = seen.get("how")
    step_names = [s.name.name for s in how.steps] if isinstance(how, A.How) else []
    ctx.templates = []
    what = seen.get("what")
    ctx.checker.coupons = tuple(res.code.name for res in what.resources if isinstance(res, A.Coupon)) \
        if isinstance(what, A.What) else ()
    try:
        _sections(c, decl, seen, how, step_names, ctx)
    finally:
        ctx.checker.coupons = None  # `redeemed(...)` is about one campaign's coupons
    return c


def _sections(c: P.Campaign, decl: A.CampaignDecl, seen: dict[str, A.Section], how: A.Section | None, step_names: list[str],
              ctx: CampaignContext) -> None:
    r = ctx.report
    for section in seen.values():
        match section:
            case A.Owner():
                c.owner = section.owner
            case A.Why():
                _why(section, c, ctx, step_names)
            case A.Who():
                c.who_span = section.span
                _who(section, c, ctx)
            case A.What():
                _what(section, c, ctx)
            case A.When():
                c.schedule = check_when(section, ctx.config.workspace.timezone, ctx.checker, r)
                if c.schedule is not None:
                    c.schedule.span = section.span
                c.trigger_span = section.trigger.span
            case A.WhereSection():
                c.channels = [_channel(ch, ctx) for ch in section.channels]
            case A.HowMuch():
                c.how_much_span = section.span
                _how_much(section, c, ctx)
    if isinstance(how, A.How):
        _how(how, c, ctx, has_what="what" in seen, has_where="where" in seen)
    missing = [SECTION_WORDS[k] for k in ("who", "when", "how") if k not in seen]
    if missing:
        r("E214", f"the campaign has no {', '.join('`' + m + '`' for m in missing)} section", decl.name.span,
          ["every campaign says who it is for, when it runs and how it plays"])
    _money_consistency(c, ctx)


def _why(w: A.Why, c: P.Campaign, ctx: CampaignContext, steps: list[str]) -> None:
    r = ctx.report
    if w.objective.name not in OBJECTIVES:
        r("E213", f"`{w.objective.name}` is not an objective", w.objective.span,
          [did_you_mean(w.objective.name, OBJECTIVES) or "objectives: " + ", ".join(OBJECTIVES)])
    else:
        c.objective = w.objective.name
    goals = [i for i in w.items if isinstance(i, A.Goal)]
    for extra in goals[1:]:
        r("E211", "the campaign has two goals", extra.span, ["combine them with `and` / `or`"])
    if goals:
        g = goals[0]
        c.goal = ctx.checker.condition(g.expr, Scope(steps=tuple(steps)))
        if g.window is None:
            r("E409", "the goal says what counts as success but not for how long after the touch", g.span,
              [f"e.g. `goal {_short(g)} within 14d`"])
        else:
            c.goal_window = Dur(g.window.value, g.window.unit)
    for t in (i for i in w.items if isinstance(i, A.Target)):
        if t.metric.name not in METRICS:
            r("E213", f"`{t.metric.name}` is not a metric camp measures", t.metric.span,
              [did_you_mean(t.metric.name, METRICS) or "metrics: " + ", ".join(METRICS)])
        elif not isinstance(t.value, A.PercentLit):
            r("E304", f"the {t.metric.name} target is a rate; write it as a percentage", t.value.span, ["e.g. `8%`"])
        else:
            c.targets.append((t.metric.name, t.op, t.value.value / 100))


def _short(g: A.Goal) -> str:
    return "any(orders)" if not isinstance(g.expr, A.Aggregate) else f"{g.expr.func}({g.expr.event.name})"


def _who(w: A.Who, c: P.Campaign, ctx: CampaignContext) -> None:
    c.audience = ctx.checker.condition(w.expr)
    holdouts = [i for i in w.items if isinstance(i, A.Holdout)]
    for extra in holdouts[1:]:
        ctx.report("E211", "the holdout is given twice", extra.span,
                   [f"the first is on line {holdouts[0].span.line}; keep one `holdout N%`"])
    if holdouts:
        h = holdouts[0]
        if not (0 <= h.percent < 100):
            ctx.report("E404", f"a holdout of {h.percent}% is not possible", h.span,
                       ["a holdout keeps 0-99% of the audience back as a control group"])
        else:
            c.holdout = h.percent / 100
    for ex in (i for i in w.items if isinstance(i, A.Exclude)):
        cond = ctx.checker.condition(ex.expr)
        if cond is not None:
            c.excludes.append(cond)


def _money(m: A.Money) -> P.MoneyAmount:
    return P.MoneyAmount(m.amount, m.currency)


def _what(w: A.What, c: P.Campaign, ctx: CampaignContext) -> None:
    r = ctx.report
    for res in w.resources:
        if isinstance(res, A.MessageOnly):
            c.message_only = True
            continue
        if isinstance(res, A.Points):
            if res.amount <= 0:
                r("E408", "points given must be more than zero", res.span, ["give a positive amount: `points 100`"])
            name, out = "points", P.Points(res.amount, span=res.span)
        elif isinstance(res, A.Coupon):
            name, out = res.code.name, _coupon(res, ctx)
        else:
            name, out = res.name.name, _packet(res, ctx)
        if name in c.resources:
            r("E205", f"two resources are called `{name}`", res.span,
              [f"rename one (e.g. `{name}_2`) or remove the copy" if name != "points" else "give `points` once"])
            continue
        c.resources[name] = out


def _once(items: Sequence[_N], kinds: tuple[str, ...], r: Report, what: str) -> dict[str, _N]:
    seen: dict[str, _N] = {}
    for item in items:
        key = "usable" if item.kind in ("usable_for", "usable_between") else item.kind
        if key in seen and key in kinds:
            r("E211", f"the {what} sets `{key.replace('_', ' ')}` twice", item.span,
              [f"the first is on line {seen[key].span.line}; keep one"])
            continue
        seen.setdefault(key, item)
    return seen


def _coupon(cp: A.Coupon, ctx: CampaignContext) -> P.Coupon:
    r = ctx.report
    seen = _once(cp.items, ("coupon_value", "min_spend", "usable"), r, "coupon")
    value_item, spend_item = seen.get("coupon_value"), seen.get("min_spend")
    value_node = value_item.value if isinstance(value_item, A.CouponValue) else None
    spend_node = spend_item.value if isinstance(spend_item, A.MinSpend) else None
    value = _money(value_node) if value_node is not None else None
    spend = _money(spend_node) if spend_node is not None else None
    if value is None or value_node is None:
        r("E214", f"the coupon {cp.code.name} has no value", cp.code.span, ["add `value 20 CNY`"])
    elif value.amount <= 0:
        r("E408", "a coupon's value must be more than zero", seen["coupon_value"].span,
          [f"e.g. `value 20 {value.currency}`"])
    else:
        check_per_send(value_node, "a coupon's value", r, COUPON_DECIMALS)
    if spend_node is not None:
        check_per_send(spend_node, "a coupon's minimum spend", r, COUPON_DECIMALS)
    if value and spend and value.currency != spend.currency:
        r("E302", f"the coupon is worth {value.currency} but its minimum spend is in {spend.currency}",
          seen["min_spend"].span, [f"write the minimum spend in {value.currency}: `min_spend 200 {value.currency}`"])
    out = P.Coupon(code=cp.code.name, title=cp.title, value=value, min_spend=spend, span=cp.span)
    event = ctx.checker.schema.events.get(ctx.config.coupons.redeemed_on)
    for sc in (i for i in cp.items if isinstance(i, A.Scope)):
        if event is None:
            r("E202", f"coupon scopes name fields of the `{ctx.config.coupons.redeemed_on}` events, which the "
                      "schema does not declare", sc.span, ["set [coupons] redeemed_on in camp.toml"])
            continue
        f = event.fields.get(sc.field.name)
        if f is None:
            r("E201", f"the events `{event.name}` have no field `{sc.field.name}`", sc.field.span,
              [suggest(sc.field.name, event.fields, "fields")])
            continue
        scope = Scope(event=event)
        values = []
        for v in sc.values:
            checked = ctx.checker.operand(v, f.type, scope)
            if checked is None or not ctx.checker.comparable(f.type, I.type_of(checked), v):
                continue
            if not isinstance(checked, I.Const):  # `only category in (category)`: a field, not a value
                r("E421", f"a coupon's scope lists values of `{f.name}`, and this is not a value", v.span,
                  [f"quote the text: `only {f.name} in (\"...\")`"])
                continue
            values.append(checked.value)
        out.scope[f.name] = tuple(values)
    usable = seen.get("usable")
    if isinstance(usable, A.UsableFor):
        if usable.duration.value <= 0:
            r("E408", "a coupon must be usable for longer than zero", usable.duration.span,
              ["e.g. `usable 7d after issue`"])
        out.usable_for = Dur(usable.duration.value, usable.duration.unit)
    elif isinstance(usable, A.UsableBetween):
        out.usable_from, out.usable_to = parse_date(usable.start, r), parse_date(usable.end, r)
        if out.usable_from and out.usable_to and out.usable_from > out.usable_to:
            r("E403", "the coupon stops being usable before it starts", usable.span,
              ["swap the dates: `usable from EARLIER to LATER`"])
    return out


def _packet(rp: A.RedPacket, ctx: CampaignContext) -> P.RedPacket:
    r = ctx.report
    seen = _once(rp.items, ("packet_value", "share_decay"), r, "red packet")
    value_item = seen.get("packet_value")
    value_node = value_item.value if isinstance(value_item, A.PacketValue) else None
    value = _money(value_node) if value_node is not None else None
    out = P.RedPacket(name=rp.name.name, title=rp.title, value=value, span=rp.span)
    if value_node is None:
        r("E214", f"the red packet {rp.name.name} has no value", rp.name.span, ["add `value 10 CNY`"])
    else:
        check_per_send(value_node, "a red packet's value", r, COUPON_DECIMALS)
    decay = seen.get("share_decay")
    if isinstance(decay, A.ShareDecay):
        if not (0 < decay.decay < 100):
            r("E404", f"a share decay of {decay.decay}% is not possible", decay.span,
              ["each repeated share pays this much less: between 1% and 99%"])
        if value and decay.floor.currency != value.currency:
            r("E302", f"the floor is in {decay.floor.currency} but the packet in {value.currency}", decay.floor.span,
              [f"write the floor in {value.currency}"])
        elif value and decay.floor.amount > value.amount:
            r("E408", "the floor is above the packet's value, so shares could never decay", decay.floor.span,
              [f"a floor below {value.amount} {value.currency}"])
        check_per_send(decay.floor, "a red packet's floor", r, COUPON_DECIMALS)
        if decay.after < 1:
            r("E408", "the share count after which the floor applies must be at least 1", decay.span,
              ["e.g. `share decay 20% floor 1 CNY after 3`"])
        out.decay, out.floor, out.fixed_after = decay.decay / 100, _money(decay.floor), decay.after
    return out


def _channel(ch: A.Channel, ctx: CampaignContext) -> P.ChannelRef:
    name = ch.channel.name
    if name not in ctx.channels:
        ctx.report("E208", f"`{name}` is not a channel", ch.channel.span,
                   [did_you_mean(name, ctx.channels) or "channels: " + ", ".join(ctx.channels)])
    template = ch.template.value if ch.template else None
    nul = template is not None and "\x00" in template  # E410 (compiler.bounds) says so already
    problem = template_name_problem(template) if template is not None and not nul else None
    if problem is not None:
        assert ch.template is not None  # only a written template name has a problem
        ctx.report("E510", problem[0], ch.template.span, [problem[1]])
    elif template is not None and not nul:
        assert ch.template is not None
        looked = ctx.template_paths.get(template)
        if looked is None:  # once per name and check run: resolving walks every part of the path
            try:
                path = resolve_template(ctx.template_dir, template)
                looked = (path, path is not None and path.is_file(), None)
            except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a name the file system refuses
                looked = (None, False, exc)
            ctx.template_paths[template] = looked
        path, found, exc = looked
        if exc is not None:
            ctx.report("E510", f"the template \"{template}\" cannot be looked up: {exc}", ch.template.span,
                       ["check the file (a link that points to itself?) or name another"])
            return P.ChannelRef(name, template, ch.subject.value if ch.subject else None)
        if not found:
            where = ctx.config.templates.dir
            ctx.report("E501", f"there is no template \"{template}\" in {where}/", ch.template.span,
                       ["templates live in the workspace's template folder; check the name"]
                       if path is not None else [f"templates must stay inside {where}/"])
        else:
            assert path is not None  # found
            ctx.templates.append(TemplateUse(template, ch.template.span, path))
    return P.ChannelRef(name, template, ch.subject.value if ch.subject else None)


def _actions(acts: A.Actions, c: P.Campaign, ctx: CampaignContext, has_what: bool, has_where: bool) -> list:
    out = []
    for act in acts.actions:
        if isinstance(act, A.Give):
            if act.resource is None:
                if not has_what:
                    ctx.report("E214", "`give what` but the campaign has no `what` section", act.span,
                               ["add a section like `what coupon SAVE10 { value 10 CNY }`, or give a named resource"])
                out.append(P.Action(give="*"))
            else:
                if act.resource.name not in c.resources:
                    ctx.report("E209", f"the campaign gives no `{act.resource.name}`", act.resource.span,
                               [did_you_mean(act.resource.name, c.resources) or "name a coupon, red packet or "
                                                                                "`points` from `what`"])
                out.append(P.Action(give=act.resource.name))
        else:
            if act.channels is None:
                if not has_where:
                    ctx.report("E214", "`notify where` but the campaign has no `where` section", act.span,
                               ['add `where push template "x.j2"`, or name the channel: `notify sms template "x.j2"`'])
                out.append(P.Action(notify=list(c.channels)))
            else:
                out.append(P.Action(notify=[_channel(ch, ctx) for ch in act.channels]))
    return out


def _how(h: A.How, c: P.Campaign, ctx: CampaignContext, has_what: bool, has_where: bool) -> None:
    r = ctx.report
    names = [s.name.name for s in h.steps]
    for i, step in enumerate(h.steps):
        if step.name.name in names[:i]:
            r("E205", f"two steps are called `{step.name.name}`", step.name.span,
              [f"rename this one, e.g. `{step.name.name}_2`; `since` and `--step` find steps by name"])
            continue
        scope = Scope(steps=tuple(names[:i]), later_steps=tuple(names[i:]))
        unless = ctx.checker.condition(step.unless, scope) if step.unless is not None else None
        if step.after is not None and step.after.value <= 0:
            r("E408", "a step's delay must be longer than zero", step.after.span,
              ["e.g. `after 3d`; the first step runs at the campaign's time without `after`"])
        out = P.Step(step.name.name, Dur(step.after.value, step.after.unit) if step.after else None, unless,
                     span=step.span, name_span=step.name.span)
        body = step.body
        if isinstance(body, A.Actions):
            out.actions = _actions(body, c, ctx, has_what, has_where)
        elif isinstance(body, A.Branches):
            for b in body.branches:
                cond = ctx.checker.condition(b.condition, scope) if b.condition is not None else None
                out.branches.append((cond, _actions(b.actions, c, ctx, has_what, has_where)))
                out.branch_spans.append(b.span)
        else:
            total = Decimal(0)
            for v in body.variants:
                if v.name.name in [n for n, _, _ in out.variants]:
                    r("E205", f"two variants are called `{v.name.name}`", v.name.span,
                      ["variants are named `a`, `b`, `c`…: rename this one"])
                if not (0 < v.percent <= 100):
                    r("E404", f"a variant of {v.percent}% is not possible", v.span,
                      ["each variant takes between 1% and 100% of the users"])
                total += v.percent
                out.variants.append((v.name.name, v.percent / 100, _actions(v.actions, c, ctx, has_what, has_where)))
                out.variant_spans.append(v.span)
            if total != 100:
                r("E404", f"the variants add up to {total}%, not 100%", body.span,
                  ["every user lands in exactly one variant"])
        c.steps.append(out)


def _how_much(hm: A.HowMuch, c: P.Campaign, ctx: CampaignContext) -> None:
    r = ctx.report
    once: dict[str, A.SpendItem] = {}
    for item in hm.items:
        key = item.kind
        if isinstance(item, A.Budget):
            key = "budget_total" if item.total else "budget_daily"
            if item.total and item.daily:
                key = "budget"
        if key in once and key not in ("cap", "costs"):
            r("E211", f"`{_word(item)}` is given twice", item.span, [f"the first is on line {once[key].span.line}"])
            continue
        once[key] = item
        if isinstance(item, A.Budget):
            for m, attr in ((item.total, "budget_total"), (item.daily, "budget_daily")):
                if m is None:
                    continue
                if getattr(c, attr) is not None:
                    r("E211", "the budget is given twice", m.span,
                      ["one `budget` with a total and a daily part: `budget 5000 CNY total, 500 CNY per day`"])
                elif m.amount < 0:
                    r("E408", "a budget cannot be negative", m.span, ["e.g. `budget 5000 CNY total`"])
                else:
                    setattr(c, attr, _money(m))
        elif isinstance(item, A.Costs):
            check_costs(item, ctx.channels, r, c.costs)
        elif isinstance(item, A.Expect):
            if not (0 <= item.redemption <= 100):
                r("E404", f"a redemption rate of {item.redemption}% is not possible", item.span,
                  ["between 0% and 100%, e.g. `expect redemption 8%`"])
            else:
                c.redemption = item.redemption / 100
        elif isinstance(item, A.Cap):
            rule = check_cap(item, ctx.channels, r)
            if rule is not None:
                c.caps.append(rule)
        elif isinstance(item, A.Quiet):
            c.quiet = check_quiet(item, r)
        elif isinstance(item, A.Priority):
            c.priority = item.value
        elif isinstance(item, A.Exclusive):
            if item.group not in ctx.policy.groups:
                r("E212", f"no exclusive group \"{item.group}\" is declared in the workspace policy", item.span,
                  [did_you_mean(item.group, ctx.policy.groups, '"{}"') or
                   f'declare it: `policy {{ exclusive group "{item.group}" }}`'])
            else:
                c.exclusive = item.group
                c.exclusive_span = item.span
    if c.budget_total and c.budget_daily and c.budget_daily.amount > c.budget_total.amount:
        r("E408", "the daily budget is larger than the total budget", hm.span,
          [f"lower the daily part below {c.budget_total.amount} {c.budget_total.currency}, or raise the total"])


def _word(item: A.SpendItem) -> str:
    return {"budget": "budget", "expect": "expect redemption", "quiet": "quiet", "priority": "priority",
            "exclusive": "exclusive"}.get(item.kind, item.kind)


def _money_consistency(c: P.Campaign, ctx: CampaignContext) -> None:
    """Budgets, costs and resource values of one campaign share one currency."""
    budget = c.budget_total or c.budget_daily
    if budget is None:
        return
    for name, amount in [*(("cost of " + k, v) for k, v in c.costs.items()),
                         *((f"value of {k}", getattr(v, "value", None)) for k, v in c.resources.items())]:
        if amount is not None and amount.currency != budget.currency:
            ctx.report("E302", f"the budget is in {budget.currency} but the {name} is in {amount.currency}",
                       c.name_span, ["camp never converts currencies; use one currency per campaign"])
