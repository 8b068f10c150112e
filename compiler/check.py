"""Workspace -> checked Program + every diagnostic (all of them, not the first).

Stages: schema -> names (duplicates) -> materialize declarations -> segments and classifications (types, cycles)
-> policy -> campaigns (sections, templates) -> lint warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from compiler import program as P
from compiler.alert import check_alert
from compiler.bounds import check_bounds
from compiler.campaign import CampaignContext, check_campaign
from compiler.config import check_clicks, check_coupons, check_points, check_red_packets, check_teams
from compiler.limits import check_cap, check_costs, check_quiet, check_tiered_cap
from compiler.lint import lint_program
from compiler.materialize import check_materialize
from compiler.report import Report
from compiler.schema import build_schema
from compiler.suppress import suppress
from compiler.templates import COUPON_FIELDS, PACKET_FIELDS, POINTS_FIELDS, check_template
from compiler.typecheck import ExprChecker
from compiler.workspace import Workspace, display_path
from dsl import ast as A
from dsl.diagnostics import Diagnostic
from dsl.span import Span


@dataclass
class CheckResult:
    program: P.Program
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]


def check_workspace(ws: Workspace) -> CheckResult:
    report = Report()
    schema = build_schema(ws.modules, report)
    cfg = display_path(ws.root / "camp.toml")
    report.items += check_coupons(ws.config, schema, ws.sources.get(cfg, ""), cfg)
    report.items += check_points(ws.config, ws.sources.get(cfg, ""), cfg)
    report.items += check_red_packets(ws.config, schema, ws.sources.get(cfg, ""), cfg)
    report.items += check_clicks(ws.config, schema, ws.sources.get(cfg, ""), cfg)
    report.items += check_teams(ws.config, ws.sources.get(cfg, ""), cfg)
    program = P.Program(schema=schema, currency=ws.config.workspace.currency, timezone=ws.config.workspace.timezone,
                        point_cost=ws.config.points.unit_cost() or Decimal(0), points_issuer=ws.config.points.issue_with)
    decls = _collect(ws.modules, report)
    for module in ws.modules:
        report.file = module.path
        check_bounds(module, report, ws.sources.get(module.path))
    if schema.users is None and (decls["segment"] or decls["campaign"] or decls["classify"]):
        file, first = next(iter((decls["campaign"] or decls["segment"] or decls["classify"]).values()))
        report("E210", "the workspace declares no users table", first.name.span,
               ["add `users from table users key user_id { ... }` to a .camp file"], file=file)
    labels = {name: [r.label.name for r in d.rules] for name, (_, d) in decls["classify"].items()}
    checker = ExprChecker(schema, set(decls["segment"]), labels, report, ZoneInfo(ws.config.workspace.timezone))
    program.materialized = check_materialize(ws.modules, set(decls["segment"]), set(labels), report)
    checker.materialized = {n for n, m in program.materialized.items() if m.kind == "class"}
    graph: dict[str, list[str]] = {}
    for name, (file, d) in decls["segment"].items():
        report.file = file
        checker.refs = []
        expr = checker.condition(d.expr)
        graph[name] = list(checker.refs)
        if expr is not None:
            program.segments[name] = P.Segment(name, d.title, expr, file, d.span)
    for name, (file, d) in decls["classify"].items():
        report.file = file
        checker.refs = []
        program.classifications[name] = _classification(d, checker, report, file)
        graph[name] = list(checker.refs)
    _cycles(graph, decls, report)
    program.policy = _policy(decls["policy"], ws, labels, report)
    channels = ws.config.channel_names()
    template_paths: dict = {}
    for name, (file, d) in decls["campaign"].items():
        report.file = file
        ctx = CampaignContext(checker, report, ws.config, ws.template_dir, program.policy, channels,
                              template_paths=template_paths)
        campaign = check_campaign(d, ctx)
        program.campaigns[name] = campaign
        _templates(ctx, campaign, schema, ws, report)
    for name, (file, d) in decls["alert"].items():
        report.file = file
        program.alerts[name] = check_alert(d, checker, ws.config, report)
    lint_program(program, report)
    diags = suppress(_dedupe(ws.diagnostics + report.items), ws)
    return CheckResult(program, diags)


def _collect(modules: list[A.Module], report: Report) -> dict[str, Any]:
    """Top-level names by kind; segments and classifications share one namespace.
    "policy": a list of (file, decl); the others: name -> (file, decl)."""
    out: dict[str, Any] = {"segment": {}, "classify": {}, "campaign": {}, "alert": {}, "policy": []}
    for module in modules:
        report.file = module.path
        for d in module.decls:
            if isinstance(d, A.PolicyDecl):
                out["policy"].append((module.path, d))
                continue
            if not isinstance(d, (A.SegmentDecl, A.ClassifyDecl, A.CampaignDecl, A.AlertDecl)):  # named kinds
                continue
            name = d.name.name
            space = {"segment": ("segment", "classify"), "classify": ("segment", "classify"),
                     "campaign": ("campaign", "alert"), "alert": ("campaign", "alert")}[d.kind]  # one deployment name
            clash = next(((k, out[k][name]) for k in space if name in out[k]), None)
            if clash is not None:
                kind, (file, first) = clash
                report("E205", f"`{name}` is already declared as a {_kind_word(kind)}", d.name.span,
                       [f"first declared at {file}:{first.span.line}"])
                continue
            out[d.kind][name] = (module.path, d)
    return out


def _kind_word(kind: str) -> str:
    return {"classify": "classification"}.get(kind, kind)


def _classification(d: A.ClassifyDecl, checker: ExprChecker, report: Report, file: str) -> P.Classification:
    rules: list = []
    seen: set[str] = set()
    for i, rule in enumerate(d.rules):
        label = rule.label.name
        if label in seen:
            report("E205", f"the label `{label}` appears twice", rule.label.span,
                   ["a user gets the first label that matches: merge the two conditions with `or`, or rename one"])
            continue
        seen.add(label)
        if rule.expr is None:
            if i != len(d.rules) - 1:
                report("E407", "`otherwise` must be the last rule: the rules after it could never match",
                       rule.span, ["move it to the end"])
            rules.append((label, None))
        else:
            rules.append((label, checker.condition(rule.expr)))
    return P.Classification(d.name.name, d.title, rules, file, d.span)


def _cycles(graph: dict[str, list[str]], decls: dict, report: Report) -> None:
    state: dict[str, int] = {}
    reported: set[frozenset] = set()

    for start in graph:
        if state.get(start):
            continue
        stack = [(start, iter(graph.get(start, [])))]
        path = [start]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    file, d = decls["segment"].get(nxt) or decls["classify"][nxt]
                    report("E206", "these refer to each other in a circle: " + " → ".join(cycle), d.name.span,
                           ["break the circle: one of them must be defined without the others"], file=file)
            elif not state.get(nxt) and nxt in graph:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(graph.get(nxt, []))))


def _policy(policies: list, ws: Workspace, labels: dict[str, list[str]], report: Report) -> P.Policy:
    policy = P.Policy()
    channels = ws.config.channel_names()
    quiet_at: Span | None = None
    for file, d in policies:
        report.file = file
        for item in d.items:
            if isinstance(item, A.Cap):
                rule = check_cap(item, channels, report)
                if rule is not None:
                    policy.caps.append(rule)
            elif isinstance(item, A.TieredCap):
                rule = check_tiered_cap(item, channels, labels, report)
                if rule is not None:
                    policy.caps.append(rule)
            elif isinstance(item, A.Quiet):
                if quiet_at is not None:
                    report("E211", "global quiet hours are given twice", item.span,
                           [f"the first is on line {quiet_at.line}"])
                    continue
                quiet_at = item.span
                policy.quiet = check_quiet(item, report)
            elif isinstance(item, A.Costs):
                check_costs(item, channels, report, policy.costs)
            elif isinstance(item, A.ExclusiveGroup):
                if item.group in policy.groups:
                    first_file, first_span = policy.groups[item.group]
                    report("E205", f"the exclusive group \"{item.group}\" is declared twice", item.span,
                           [f"first declared at {first_file}:{first_span.line}; remove this one"])
                else:
                    policy.groups[item.group] = (file, item.span)
    return policy


def _templates(ctx: CampaignContext, campaign: P.Campaign, schema, ws: Workspace, report: Report) -> None:
    provided: dict[str, set[str]] = {
        "user": set(schema.users.fields) | {"id"} if schema.users else {"id"},
        "campaign": {"name", "title", "owner"},
        "step": {"name"},
    }
    if any(s.variants for s in campaign.steps):
        provided["variant"] = {"name"}
    kinds = {type(r).__name__ for r in campaign.resources.values()}
    if "Coupon" in kinds:
        provided["coupon"] = set(COUPON_FIELDS)
    if "Points" in kinds:
        provided["points"] = set(POINTS_FIELDS)
    if "RedPacket" in kinds:
        provided["red_packet"] = set(PACKET_FIELDS)
    seen = set()
    for use in ctx.templates:
        if use.path in seen:
            continue
        seen.add(use.path)
        check_template(use.path, display_path(use.path), provided, report, ws.sources,
                       f"(campaign {campaign.name})")


def _dedupe(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen = set()
    out = []
    for d in sorted(diags, key=Diagnostic.sort_key):
        key = (d.code, d.file, d.span.line, d.span.column, d.message)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out
