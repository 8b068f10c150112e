"""`camp plan --base REF`: what a change to the workspace does, for a pull request. The workspace at the git ref
REF (the base) against the working tree (the head): campaigns added, removed, changed (which parts, which steps)
and, on the current data as of now (or --as-of), each one's final audience before and after, its first-step sends
in the next 7 days and their cost per day, and the users mid-way on a changed or removed step (the ledger).
Markdown (a pull request comment) or JSON. Never imports Prefect.

Forecast: a scheduled campaign's first step fires N times in [as-of, as-of + 7 days) (compiler.schedule) and
reaches its final audience (audience minus excludes minus holdout, as `camp audience` counts it) each time;
caps, consent at send time and budgets are not applied (an upper bound; `camp simulate` plays them). Cost per day:
those sends / 7 x (the first channel's cost + the forecast cost of what the campaign gives). Event-triggered
campaigns: their trigger events in the 7 days before as-of. Follow-up steps are not forecast. Audiences are counted
as `camp audience` counts them: as of the campaign's occurrence at or before as-of. `--no-data` (CI without a
warehouse) compares the plans only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from io import BytesIO
from pathlib import Path

from camp.audience import checked, parse_as_of

WEEK = timedelta(days=7)


@dataclass
class Side:
    audience: int | None = None
    sends_per_week: int | None = None
    cost_per_day: Decimal | None = None


def run_plan(path: Path, base: str, as_of: str | None, fmt: str, data: str | None, ledger: str | None,
             no_data: bool = False) -> int:
    """Exit status: 0 compared, 1 errors in the working tree's workspace or data that cannot be opened, 2 a ref
    git does not know (or no git repository)."""
    loaded = checked(path)
    if loaded is None:
        return 1
    head_ws, head, _, _ = loaded
    with tempfile.TemporaryDirectory() as tmp:
        got = _base_workspace(head_ws.root, base, Path(tmp))
        if isinstance(got, str):
            print(f"camp plan: {got}", file=sys.stderr)
            return 2
        base_program, base_templates, note = got
        return _compare(head_ws, head, base_program, base_templates, note, base, as_of, fmt, data, ledger, no_data)


def _base_workspace(root: Path, ref: str, tmp: Path):
    """(the base's checked program or None when the workspace did not exist at REF, its templates folder, a
    note) or an error text."""
    from compiler.check import check_workspace
    from compiler.workspace import load_workspace
    from dsl.diagnostics import Diagnostic

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True)

    top = git("rev-parse", "--show-toplevel")
    if top.returncode != 0:
        return f"{root} is not in a git repository: --base needs one"
    toplevel = Path(top.stdout.decode().strip()).resolve()
    if git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode != 0:
        return f"git knows no commit `{ref}` (a branch, tag or commit, e.g. origin/main)"
    rel = root.resolve().relative_to(toplevel).as_posix()
    archive = subprocess.run(["git", "-C", str(toplevel), "archive", "--format=tar", ref, "--", rel],
                             capture_output=True)  # pathspecs are relative to the directory git runs in
    if archive.returncode != 0:
        return None, tmp, f"the workspace did not exist at {ref}: every campaign is new"
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(tmp, filter="data")
    ws = load_workspace(tmp / rel)
    if isinstance(ws, Diagnostic):
        return None, tmp, f"no camp.toml at {ref}: every campaign is new"
    result = check_workspace(ws)
    note = f"the base has {len(result.errors)} errors; its campaigns that check are compared" if result.errors else ""
    return result.program, ws.template_dir, note


def _compare(ws, head, base, base_templates: Path, note: str, ref: str, as_of: str | None, fmt: str,
             data: str | None, ledger: str | None, no_data: bool) -> int:
    from compiler.campaign_plan import campaign_plan
    from compiler.plan_diff import compare_plans
    from runtime.warehouse import connect, run_urls

    name = ws.config.workspace.name

    def plans(program, templates: Path) -> dict:
        if program is None:
            return {}
        return {c.name: campaign_plan(program, c, "duckdb", templates, name) for c in program.campaigns.values()}

    base_plans, head_plans = plans(base, base_templates), plans(head, ws.template_dir)
    changes = compare_plans(base_plans, head_plans)
    when = parse_as_of(as_of, head.timezone)
    data_url, ledger_url = run_urls(ws, data, ledger)
    wh = None
    if not no_data:
        try:
            wh = connect(data_url, read_only=True)
        except Exception as exc:  # noqa: BLE001 (any driver's error)
            print(f"camp plan: cannot open the data {data_url}: {exc}", file=sys.stderr)
            print("  hint: check [data] url in camp.toml, --data or $CAMP_DATA_URL; or --no-data", file=sys.stderr)
            return 1
    lg = _ledger(ledger_url) if not no_data else None
    rows = []
    try:
        for ch in changes:
            if ch.change == "unchanged":
                continue
            before = _side(base, base_plans.get(ch.campaign), wh, lg, when) if wh is not None else Side()
            after = _side(head, head_plans.get(ch.campaign), wh, lg, when) if wh is not None else Side()
            midway = _midway(lg, ch) if ch.change in ("changed", "removed") and not no_data else None
            rows.append({"campaign": ch.campaign, "change": ch.change, "parts": ch.parts, "steps": ch.steps,
                         "base": _plain(before), "head": _plain(after), "midway": midway})
    finally:
        if wh is not None:
            wh.close()
        if lg is not None:
            lg.close()
    unchanged = [c.campaign for c in changes if c.change == "unchanged"]
    if no_data:
        note = "; ".join(x for x in (note, "without data (--no-data): no audiences, sends or costs") if x)
    doc = {"version": 1, "base": ref, "as_of": when.isoformat(), "workspace": name, "note": note or None,
           "campaigns": rows, "unchanged": unchanged}
    print(json.dumps(doc, ensure_ascii=False, indent=1) if fmt == "json" else _markdown(doc, head.currency))
    return 0


def _plain(s: Side) -> dict:
    d = asdict(s)
    d["cost_per_day"] = None if s.cost_per_day is None else format(s.cost_per_day, "f")
    return d


def _ledger(url: str):
    from runtime.ledger import open_existing_ledger

    try:
        return open_existing_ledger(url)
    except Exception:  # noqa: BLE001 (no ledger to read: nobody is mid-way)
        return None


def _midway(lg, ch) -> int | None:
    """Users who got the step before a changed or removed step (in the base's order) and not that step yet."""
    if lg is None:
        return 0
    targets = [s for s in ch.steps if s in ch.base_order and ch.base_order.index(s) > 0]
    return sum(lg.midway(ch.campaign, ch.base_order[ch.base_order.index(s) - 1], s) for s in targets)


def _side(program, plan, wh, lg, when: datetime) -> Side:
    """The campaign's final audience, first-step sends in the next 7 days and their cost per day in one version."""
    if program is None or plan is None:
        return Side()
    name = plan.campaign
    from camp.audience import _occurrence
    from compiler.schedule import fires_between, schedule_plan
    from compiler.sql import AudienceSQL
    from runtime.ledger_facts import load_ledger_facts

    c = program.campaigns[name]
    at, today, _ = _occurrence(c, when)
    compiler = AudienceSQL(program, at, wh.dialect, today=today, manual_tags=True)
    query = compiler.campaign(c)
    codes, tags = compiler.redeemed_codes(), compiler.tag_names()
    if codes or tags:
        load_ledger_facts(wh, lg, c.name, codes, tags, at)
    if compiler.history_since():  # `was` / `moved`: the label history, as camp audience loads it
        from runtime.labels import load_history

        for warning in load_history(wh, lg, compiler.history_since(), at):
            print(f"camp plan: warning: {name}: {warning}", file=sys.stderr)
    final = sum(1 for r in wh.rows(compiler.sql(query, pretty=False)) if not r[1] and not r[2])
    if c.schedule is None:
        return Side(final)
    if c.schedule.kind == "event":
        ev = program.schema.events[c.schedule.event]
        from sqlglot import exp

        count = exp.select(exp.Count(this=exp.Star())).from_(exp.to_table(ev.table)).where(exp.and_(
            exp.GTE(this=exp.column(ev.time_column), expression=exp.Literal.string((when - WEEK).isoformat())),
            exp.LT(this=exp.column(ev.time_column), expression=exp.Literal.string(when.isoformat()))))
        sends = int(wh.rows(count.sql(dialect=wh.dialect))[0][0])
    else:
        sends = final * len(fires_between(schedule_plan(c.schedule), when, when + WEEK))
    return Side(final, sends, (Decimal(sends) / 7 * _unit_cost(program, c, plan)).quantize(Decimal("0.01")))


def _unit_cost(program, c, plan) -> Decimal:
    """What one first-step send costs: its first channel's cost and the forecast cost of what it gives."""
    channel = c.channels[0].channel if c.channels else None
    money = (c.costs.get(channel) or program.policy.costs.get(channel)) if channel else None
    cost = money.amount if money is not None else Decimal(0)
    return cost + sum((r.forecast_cost for r in plan.resources.values()), Decimal(0))


def _markdown(doc: dict, currency: str) -> str:
    def n(v) -> str:
        return "–" if v is None else f"{v:,}"

    def money(v) -> str:
        return "–" if v is None else f"{Decimal(v):,.2f}"

    def arrow(b, h, fn) -> str:
        return fn(h) if b == h else f"{fn(b)} → {fn(h)}"

    lines = [f"### camp plan: `{doc['base']}` → this change", "",
             f"Workspace `{doc['workspace']}`, on the current data as of {doc['as_of']}."]
    if doc["note"]:
        lines += ["", f"> {doc['note']}"]
    if not doc["campaigns"]:
        return "\n".join(lines + ["", "No campaign changes."])
    lines += ["", f"| campaign | change | what | final audience | first-step sends / 7 days | cost / day ({currency}) "
                  "| users mid-way |", "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in doc["campaigns"]:
        b, h = r["base"], r["head"]
        what = ", ".join(r["parts"]) + (f" (steps: {', '.join(r['steps'])})" if r["steps"] and r["change"] == "changed"
                                         else "")
        lines.append(f"| `{r['campaign']}` | {r['change']} | {what or '–'} | {arrow(b['audience'], h['audience'], n)} "
                     f"| {arrow(b['sends_per_week'], h['sends_per_week'], n)} "
                     f"| {arrow(b['cost_per_day'], h['cost_per_day'], money)} | {n(r['midway'])} |")
    if doc["unchanged"]:
        lines += ["", f"Unchanged: {', '.join(f'`{c}`' for c in doc['unchanged'])}."]
    lines += ["", "Sends are the first step's, before caps, consent at send time and budgets (an upper bound)."]
    return "\n".join(lines)
