"""Checked program -> lint warnings (W1xx): the traps users of other campaign tools keep falling into.

Reads the program model and its IR alone: every position comes from the spans they carry.
"""

from __future__ import annotations

from decimal import Decimal

from compiler import ir as I
from compiler import program as P
from compiler.overlap import may_overlap
from compiler.report import Report


def lint_program(program: P.Program, report: Report) -> None:
    labels = {n: c.labels for n, c in program.classifications.items()}
    for c in program.campaigns.values():
        report.file = c.file
        _trigger_in_audience(c, program, report)
        _overlapping_branches(c, program, labels, report)
        _unreachable_steps(c, program, report)
        _budget_below_one_send(c, program, report)
    _exclusive_overlaps(program, labels, report)


def _events_used(e: I.Expr | None, program: P.Program, seen: set[str] | None = None) -> dict[str, str | None]:
    """event -> the segment it is reached through (None: directly)."""
    out: dict[str, str | None] = {}
    seen = set() if seen is None else seen
    for n in I.walk(e):
        if isinstance(n, I.Agg):
            out.setdefault(n.event, None)
        elif isinstance(n, I.InSegment) and n.name not in seen and n.name in program.segments:
            seen.add(n.name)
            for ev in _events_used(program.segments[n.name].expr, program, seen):
                out.setdefault(ev, n.name)
    return out


def _first_count_of(event: str, exprs: list[I.Expr | None]) -> I.Agg | None:
    """The first aggregate over `event` as written (parents before children, left to right)."""
    stack: list = list(reversed(exprs))
    while stack:
        n = stack.pop()
        if n is None:
            continue
        if isinstance(n, I.Agg) and n.event == event:
            return n
        stack.extend(reversed(I.children(n)))
    return None


def _trigger_in_audience(c: P.Campaign, program: P.Program, report: Report) -> None:
    if c.schedule is None or c.schedule.kind != "event":
        return
    ev = c.schedule.event
    used: dict[str, str | None] = {}
    for e in [c.audience, *c.excludes]:
        for k, v in _events_used(e, program).items():
            used.setdefault(k, v)
    if ev not in used:
        return
    node = _first_count_of(ev, [c.audience, *c.excludes])
    span = node.span if node is not None else c.who_span  # through a segment: the `who` section
    via = f" (through segment {used[ev]})" if used[ev] else ""
    report("W101", f"the campaign is triggered by {ev} and its audience also counts {ev}{via}", span,
           [f"the triggering {ev} event is already recorded when the audience is evaluated; "
            f"e.g. `count({ev}) = 0` never holds for `on {ev}`; use `first` in the trigger instead"])


def _overlapping_branches(c: P.Campaign, program: P.Program, labels: dict[str, list[str]],
                          report: Report) -> None:
    for step in c.steps:
        conds = [(i, cond) for i, (cond, _) in enumerate(step.branches) if cond is not None]
        for j, (bj, cj) in enumerate(conds):
            for bi, ci in conds[:j]:
                if may_overlap(ci, cj, program.segments, labels):
                    report("W102", f"in step {step.name}, branch {bj + 1} can hold for users that branch {bi + 1} "
                                   f"already takes", step.branch_spans[bj],
                           ["users who match both take the first branch only; make the conditions exclusive"])
                    break


def _unreachable_steps(c: P.Campaign, program: P.Program, report: Report) -> None:
    if not c.steps:
        return
    offsets, t = [], 0
    for s in c.steps:
        t += s.after.minutes() if s.after else 0
        offsets.append(t)
    caps = [*c.caps, *(cap for cap in program.policy.caps if not cap.by)]
    for cap in caps:
        if cap.unused or cap.unit == "coupon":
            continue
        window = cap.per.minutes() if cap.per else None
        for i, step in enumerate(c.steps):
            if not _sends_on(step, cap.unit):
                continue
            earlier = [j for j in range(i) if _sends_on(c.steps[j], cap.unit)
                       and (window is None or offsets[i] - offsets[j] < window)]
            if len(earlier) >= cap.count:
                per = f" per {cap.per}" if cap.per else ""
                report("W103", f"step {step.name} can never reach users who got the earlier steps: the cap allows "
                               f"{cap.count} {cap.unit}{'s' if cap.count > 1 else ''}{per}", step.span,
                       [f"the cap is at {cap.file}:{cap.span.line}; lengthen the step's delay or raise the cap"])
                break


def _sends_on(step: P.Step, unit: str) -> bool:
    for a in step.all_actions():
        if a.notify and (unit == "message" or any(ch.channel == unit for ch in a.notify[:1])):
            return True
    return False


def _budget_below_one_send(c: P.Campaign, program: P.Program, report: Report) -> None:
    budgets = [b for b in (c.budget_total, c.budget_daily) if b is not None]
    if not budgets or not c.steps:
        return
    first = c.steps[0]
    cost = Decimal(0)
    chains = [a.notify for a in first.all_actions() if a.notify]
    for chain in chains:
        prices = [(c.costs.get(ch.channel) or program.policy.costs.get(ch.channel)) for ch in chain]
        known = [p.amount for p in prices if p is not None]
        cost += min(known) if known else Decimal(0)
    redemption = c.redemption if c.redemption is not None else Decimal(1)
    for a in first.all_actions():
        if a.give is None:
            continue
        names = list(c.resources) if a.give == "*" else [a.give]
        for n in names:
            value = getattr(c.resources.get(n), "value", None)
            if value is not None:
                cost += value.amount * redemption
    smallest = min(b.amount for b in budgets)
    if cost > 0 and smallest < cost:
        at = c.how_much_span if c.how_much_span.known else c.span
        report("W104", f"the budget ({smallest} {budgets[0].currency}) is smaller than one send, which costs "
                       f"{cost.normalize()} {budgets[0].currency}", at,
               ["one recipient costs the message price plus coupon value × expected redemption"])


def _exclusive_overlaps(program: P.Program, labels, report: Report) -> None:
    """W105, at most once per campaign (naming the first partner). Campaigns with the same
    audience are compared once: a workspace of many look-alike campaigns stays fast."""
    by_group: dict[str, list[P.Campaign]] = {}
    for c in program.campaigns.values():
        if c.exclusive:
            by_group.setdefault(c.exclusive, []).append(c)
    memo: dict[tuple[str, str], bool] = {}
    for group, members in by_group.items():
        keys = [repr(c.audience) for c in members]
        for j, b in enumerate(members):
            partners = []
            for i, a in enumerate(members[:j]):
                if not _times_overlap(a.schedule, b.schedule):
                    continue
                if a.audience is not None and b.audience is not None:
                    key = (keys[i], keys[j])
                    if key not in memo:
                        memo[key] = may_overlap(a.audience, b.audience, program.segments, labels)
                    if not memo[key]:
                        continue
                partners.append(a)
            if partners:
                a = partners[0]
                more = f" (and {len(partners) - 1} more)" if len(partners) > 1 else ""
                report("W105", f"campaigns {a.name}{more} and {b.name} are in exclusive group \"{group}\" and can "
                               f"reach the same users at the same time", b.exclusive_span,
                       [f"{a.name} is at {a.file}:{a.span.line}; give them disjoint audiences or date ranges"],
                       file=b.file)


def _times_overlap(a: P.Schedule | None, b: P.Schedule | None) -> bool:
    if a is None or b is None:
        return True

    def bounds(s: P.Schedule):
        if s.kind == "once" and s.at is not None:
            return s.at.date(), s.at.date()
        return s.start, s.end

    a0, a1 = bounds(a)
    b0, b1 = bounds(b)
    if a1 is not None and b0 is not None and a1 < b0:
        return False
    if b1 is not None and a0 is not None and b1 < a0:
        return False
    return True
