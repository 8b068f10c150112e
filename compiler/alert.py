"""An alert declaration -> program.Alert: who (a condition over users, minus excludes), when (its period: a
schedule, not an event), the threshold (`count` of users or their `share` of all users), the team it goes to
(camp.toml [teams]) and the size of the sample it lists. E440 for what is missing or wrong."""

from __future__ import annotations

from decimal import Decimal

from compiler import program as P
from compiler.config import WorkspaceConfig
from compiler.report import Report, did_you_mean
from compiler.timespec import check_when
from compiler.typecheck import ExprChecker
from dsl import ast as A

MEASURES = ["count", "share"]
OPS = [">=", ">", "<=", "<"]
MOST_SAMPLE = 100


def check_alert(decl: A.AlertDecl, checker: ExprChecker, config: WorkspaceConfig, report: Report) -> P.Alert:
    a = P.Alert(name=decl.name.name, title=decl.title, file=report.file, span=decl.span, name_span=decl.name.span)
    seen: dict[str, A.AlertItem] = {}
    for item in decl.items:
        if item.kind in seen:
            report("E211", f"the alert has two `{item.kind}` clauses", item.span,
                   [f"the first is on line {seen[item.kind].span.line}; keep one"])
            continue
        seen[item.kind] = item
        match item:
            case A.Owner():
                a.owner = item.owner
            case A.Who():
                _who(item, a, checker, report)
            case A.When():
                _when(item, a, checker, config, report)
            case A.AlertThreshold():
                _threshold(item, a, report)
            case A.AlertTo():
                _team(item, a, config, report)
            case A.AlertSample():
                if not 0 <= item.size <= MOST_SAMPLE:
                    report("E440", f"a sample of {item.size} users", item.span,
                           [f"an alert lists 0 to {MOST_SAMPLE} users; the count says how many there are"])
                else:
                    a.sample = item.size
    missing = [w for w in ("who", "when", "threshold", "to") if w not in seen]
    if missing:
        words = {"to": "send to TEAM"}
        report("E440", f"the alert has no {', '.join('`' + words.get(m, m) + '`' for m in missing)}", decl.name.span,
               ["an alert says who it counts, when (its period), the threshold and the team: "
                "`who ...  when daily at 09:00  threshold count >= 100  send to crm_ops`"])
    return a


def _who(w: A.Who, a: P.Alert, checker: ExprChecker, report: Report) -> None:
    a.audience = checker.condition(w.expr)
    for item in w.items:
        if isinstance(item, A.Exclude):
            cond = checker.condition(item.expr)
            if cond is not None:
                a.excludes.append(cond)
        else:
            report("E440", "an alert has no holdout", item.span,
                   ["an alert counts users and tells a team; nobody is sent anything to hold back"])


def _when(w: A.When, a: P.Alert, checker: ExprChecker, config: WorkspaceConfig, report: Report) -> None:
    if isinstance(w.trigger, A.OnEvent):
        report("E440", "an alert runs on a schedule, not on an event", w.trigger.span,
               ["its period is the schedule: `when daily at 09:00` (at most one message a day) or "
                "`when every monday at 09:00`"])
        return
    if any(isinstance(o, A.TimeZone) and o.user for o in w.options):
        report("E440", "an alert is about a group, not each user's clock", w.span,
               ["drop `tz user`; `tz \"Asia/Shanghai\"` sets the zone of its schedule"])
        return
    a.schedule = check_when(w, config.workspace.timezone, checker, report)
    if a.schedule is not None:
        a.schedule.span = w.span


def _threshold(t: A.AlertThreshold, a: P.Alert, report: Report) -> None:
    if t.measure.name not in MEASURES:
        report("E440", f"`{t.measure.name}` is not something an alert measures", t.measure.span,
               [did_you_mean(t.measure.name, MEASURES) or "`count` (users) or `share` (of all users)"])
        return
    if t.op not in OPS:
        report("E440", f"a threshold is crossed upwards or downwards, not `{t.op}`", t.span,
               ["write `>=`, `>`, `<=` or `<`"])
        return
    a.measure, a.op = t.measure.name, t.op
    if t.measure.name == "share":
        if not isinstance(t.value, A.PercentLit) or not 0 <= t.value.value <= 100:
            report("E440", "a share threshold is a percentage of all users", t.value.span, ["e.g. `share >= 2%`"])
            return
        a.value = t.value.value / 100
        return
    if not isinstance(t.value, A.NumberLit) or t.value.value != int(t.value.value) or t.value.value < 0:
        report("E440", "a count threshold is a whole number of users", t.value.span, ["e.g. `count >= 100`"])
        return
    a.value = Decimal(int(t.value.value))


def _team(t: A.AlertTo, a: P.Alert, config: WorkspaceConfig, report: Report) -> None:
    if t.team.name not in config.teams:
        teams = list(config.teams)
        report("E440", f"no team `{t.team.name}` in camp.toml", t.team.span,
               [did_you_mean(t.team.name, teams) or
                f'declare it: [teams.{t.team.name}] channel = "ops_webhook" (a [channels] entry) or "console"'])
        return
    a.team = t.team.name
