"""Caps, quiet hours and costs -> CapRule / (start, end) / prices; shared by `policy` and `how much`."""

from __future__ import annotations

from compiler.bounds import check_per_send
from compiler.ir import Dur
from compiler.program import CapRule, MoneyAmount
from compiler.report import Report, did_you_mean, suggest
from dsl import ast as A

UNIT_WORDS = {"message": "message", "messages": "message", "coupon": "coupon", "coupons": "coupon"}


def check_time_of_day(text: str, node: A.Node, report: Report) -> bool:
    hh, mm = text.split(":")
    if int(hh) > 23 or int(mm) > 59:
        report("E401", f"{text} is not a time of day", node.span, ["hours run 0-23 and minutes 0-59"])
        return False
    return True


def check_cap(cap: A.Cap, channels: list[str], report: Report) -> CapRule | None:
    word = cap.unit.name
    unit = UNIT_WORDS.get(word) or (word if word in channels else None)
    if unit is None:
        report("E208", f"`{word}` is not something a cap can count", cap.unit.span,
                [did_you_mean(word, [*UNIT_WORDS, *channels]) or "caps count messages, coupons or a channel's sends"])
        return None
    if cap.unused and unit != "coupon":
        report("E304", "only coupons can be `unused`", cap.unit.span, ["`cap 3 unused coupons per user`"])
        return None
    if cap.unused and cap.per is not None:
        report("E304", "an unused-coupon cap counts the coupons a user holds now; it takes no window",
               cap.per.span, ["`cap 3 unused coupons per user`"])
        return None
    if cap.count <= 0:
        report("E408", "a cap of 0 lets nothing through", cap.span, ["remove the campaign or the channel instead"])
        return None
    per = None
    if cap.per is not None:
        if cap.per.value <= 0:
            report("E408", "a cap window must be longer than zero", cap.per.span, ["e.g. `per 7d`"])
            return None
        per = Dur(cap.per.value, cap.per.unit)
    return CapRule(unit=unit, count=cap.count, per=per, unused=cap.unused, span=cap.span, file=report.file)


def check_tiered_cap(tc: A.TieredCap, channels: list[str], classifications: dict[str, list[str]],
                     report: Report) -> CapRule | None:
    ch = tc.channel.name
    unit = UNIT_WORDS.get(ch) or (ch if ch in channels else None)
    if unit is None:
        report("E208", f"`{ch}` is not a channel", tc.channel.span,
               [did_you_mean(ch, channels) or "channels: " + ", ".join(channels)])
        return None
    labels = classifications.get(tc.by.name)
    if labels is None:
        report("E204", f"there is no classification `{tc.by.name}`", tc.by.span,
               [suggest(tc.by.name, classifications, "classifications", none="declare one: `classify NAME by first match { ... }`")])
        return None
    if tc.per.value <= 0:
        report("E408", "a cap window must be longer than zero", tc.per.span, ["e.g. `per 7d`"])
        return None
    rule = CapRule(unit=unit, count=0, per=Dur(tc.per.value, tc.per.unit), by=tc.by.name, span=tc.span,
                   file=report.file)
    for tier in tc.tiers:
        if tier.label is None:
            if rule.default is not None:
                report("E205", "`otherwise` is given twice", tier.span, ["keep one `otherwise N` tier, the last"])
            rule.default = tier.count
            continue
        name = tier.label.name
        if name not in labels:
            report("E204", f"`{name}` is not a label of {tc.by.name}", tier.label.span,
                   [did_you_mean(name, labels) or f"labels: {', '.join(labels)}"])
            return None
        if name in rule.tiers:
            report("E205", f"the label `{name}` is given twice", tier.label.span, ["keep one tier per label"])
            return None
        rule.tiers[name] = tier.count
    missing = [label for label in labels if label not in rule.tiers]
    if missing and rule.default is None:
        report("E214", f"the tiers do not say how many for {', '.join(missing)}", tc.span,
               ["add those labels or an `otherwise N` tier"])
        return None
    rule.count = max([*rule.tiers.values(), rule.default or 0])
    return rule


def check_quiet(q: A.Quiet, report: Report) -> tuple[str, str] | None:
    if not (check_time_of_day(q.start, q, report) and check_time_of_day(q.end, q, report)):
        return None
    start, end = _norm(q.start), _norm(q.end)
    if start == end:
        report("E408", "quiet hours that start and end at the same time are empty", q.span,
               ["quiet hours run from start to end, across midnight if needed: `quiet 22:00-08:00`"])
        return None
    return start, end


def _norm(t: str) -> str:
    hh, mm = t.split(":")
    return f"{int(hh):02d}:{mm}"


def check_costs(costs: A.Costs, channels: list[str], report: Report, out: dict[str, MoneyAmount]) -> None:
    for item in costs.items:
        ch = item.channel.name
        if ch not in channels:
            report("E208", f"`{ch}` is not a channel", item.channel.span,
                   [did_you_mean(ch, channels) or "channels: " + ", ".join(channels)])
            continue
        if item.cost.amount < 0:
            report("E408", "a cost cannot be negative", item.cost.span, [f"e.g. `cost {ch} 0.05 CNY`"])
            continue
        if not check_per_send(item.cost, "a cost per message", report):
            continue
        if ch in out:
            report("E211", f"the cost of {ch} is given twice", item.span,
                   [f"each channel has one cost here: remove one `{ch} …`"])
            continue
        out[ch] = MoneyAmount(item.cost.amount, item.cost.currency)
