"""`camp report`: each campaign's measured outcomes (runtime.measure) as terminal tables or a stable JSON
document (docs/report.md, "JSON"). Never imports Prefect."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path

from camp.audience import checked, parse_as_of, unknown_name

JSON_VERSION = 1


def run_report(path: Path, campaign: str | None, as_of: str | None, fmt: str, data: str | None,
               ledger: str | None) -> int:
    """Exit status: 0 reported, 1 errors in the workspace or a database that cannot be opened, 2 an unknown
    campaign."""
    from runtime.measure import preload

    preload()
    loaded = checked(path)
    if loaded is None:
        return 1
    ws, program, _, _ = loaded
    if campaign is not None and campaign not in program.campaigns:
        return unknown_name("camp report", "campaign", campaign, list(program.campaigns))
    from camp.read_ledger import existing_ledger
    from runtime.measure import measure
    from runtime.warehouse import beside, connect, run_urls

    data_url, ledger_url = run_urls(ws, data, ledger)
    when = parse_as_of(as_of, program.timezone)
    margin = ws.config.report.margin_fraction
    doc = {"version": JSON_VERSION, "as_of": when.isoformat(), "currency": program.currency, "margin": _dec(margin),
           "campaigns": []}
    lg = existing_ledger("camp report", ledger_url, _document(doc, fmt) if fmt != "text" else None)
    if isinstance(lg, int):
        return lg
    try:
        wh = beside(lg.db, data_url) or connect(data_url, read_only=True)
    except Exception as exc:  # noqa: BLE001 (any driver's error)
        lg.close()
        print(f"camp report: cannot open the data {data_url}: {exc}", file=sys.stderr)
        print("  hint: check [data] url in camp.toml, --data or $CAMP_DATA_URL", file=sys.stderr)
        return 1
    names = [campaign] if campaign is not None else list(program.campaigns)
    try:
        clicks = ws.config.clicks.clicks(program.schema)
        results = [measure(program, program.campaigns[n], lg, wh, when, margin, clicks) for n in names]
    finally:
        wh.close()  # first: it may be a session of the ledger's own database (runtime.warehouse.beside)
        lg.close()
    if campaign is None:  # only campaigns that ran
        results = [m for m in results if m.steps]
    if fmt in ("json", "html"):
        doc["campaigns"] = [_campaign_json(m) for m in results]
        sys.stdout.write(_document(doc, fmt) + ("\n" if fmt == "json" else ""))
        return 0
    if not results:
        print(f"camp report: no deliveries in the ledger as of {when.isoformat()}")
    for m in results:
        _print_campaign(m)
    return 0


def _document(doc: dict, fmt: str) -> str:
    """The report document as JSON or as the HTML page."""
    if fmt == "json":
        return json.dumps(doc, ensure_ascii=False, indent=1)
    from camp.report_html import html_of

    return html_of(doc)


def _dec(v: Decimal | None) -> str | None:
    return None if v is None else format(v, "f")


def _interval(i) -> dict:
    return {"value": i.value, "low": i.low, "high": i.high}


def _group_json(g) -> dict:
    return {
        "arm": g.arm, "treated": g.treated, "reached": g.reached, "converted": g.converted,
        "holdout": g.holdout, "holdout_converted": g.holdout_converted,
        "conversion": _interval(g.conversion), "holdout_conversion": _interval(g.holdout_conversion),
        "uplift": _interval(g.uplift), "relative_uplift": _interval(g.relative_uplift),
        "incremental_conversions": g.incremental_conversions,
        "orders": g.orders, "sales": _dec(g.sales), "aov": _dec(g.aov), "revenue": _dec(g.revenue),
        "incremental_sales": _dec(g.incremental_sales),
        "coupons": {"issued": g.issued, "redeemed": g.redeemed, "redemption_rate": _interval(g.redemption_rate),
                    "discounts": _dec(g.discounts)},
        "send_cost": _dec(g.send_cost), "subsidy": _dec(g.subsidy),
        "cost_per_incremental_conversion": _dec(g.cost_per_incremental_conversion), "roi": _dec(g.roi),
        "open_windows": g.open_windows,
        "recall": {"ordered": g.ordered, "holdout_ordered": g.holdout_ordered, "rate": _interval(g.recall),
                   "holdout_rate": _interval(g.holdout_recall), "uplift": _interval(g.recall_uplift)},
        "new_customers": {"count": g.new_customers, "holdout_count": g.holdout_new_customers,
                          "rate": _interval(g.new_customer_rate),
                          "holdout_rate": _interval(g.holdout_new_customer_rate),
                          "uplift": _interval(g.new_customer_uplift)},
        "clicks": None if g.clicked is None else {"clicked": g.clicked, "rate": _interval(g.click_rate)},
    }


def _campaign_json(m) -> dict:
    return {
        "campaign": m.campaign, "objective": m.objective, "entry_step": m.entry_step, "goal_window": m.goal_window,
        "holdout_share": _dec(m.holdout_share),
        "window_open": bool(m.total and m.total.open_windows),
        "steps": [{"step": s.step, "arm": s.arm, "assigned": s.assigned, "reached": s.reached, "holdout": s.holdout,
                   "suppressed": s.suppressed, "cost": _dec(s.cost)} for s in m.steps],
        "total": _group_json(m.total) if m.total else None,
        "arms": [_group_json(g) for g in m.arms],
        "daily": [{"day": d.day.isoformat(), "treated": d.treated, "reached": d.reached, "converted": d.converted,
                   "holdout": d.holdout, "holdout_converted": d.holdout_converted, "sales": _dec(d.sales)}
                  for d in m.daily],
        "targets": [{"metric": t.metric, "op": t.op, "value": _dec(t.value), "actual": _interval(t.actual),
                     "status": t.status, "sure": t.sure} for t in m.targets],
    }


# ------------------------------------------------------------------ text
def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.2f}%"


def _ci(i, points: bool = False) -> str:
    if i.low is None or i.high is None:
        return "-"
    if points:  # an uplift: percentage points, signed
        return f"[{i.low * 100:+.2f}, {i.high * 100:+.2f}] pts"
    return f"[{i.low * 100:.2f}, {i.high * 100:.2f}]%"


def _money(v: Decimal | None) -> str:
    return "-" if v is None else f"{v:,.2f}"


def _print_campaign(m) -> None:
    from camp.tables import new_table, print_table

    head = f"{m.campaign} as of {m.as_of:%Y-%m-%d %H:%M} UTC"
    if m.goal_window:
        head += f": goal window {m.goal_window} from each user's first send"
    if m.total and m.total.open_windows:
        head += f"; window open for {m.total.open_windows:,} (counted as they stand)"
    print(head)
    steps = new_table(["step", "arm", "assigned", "reached", "holdout", "not sent", f"cost {m.currency}"],
                   right={2, 3, 4, 5, 6})
    for s in m.steps:
        steps.add_row(s.step, s.arm or "-", f"{s.assigned:,}", f"{s.reached:,}", f"{s.holdout:,}",
                      f"{s.suppressed:,}", _money(s.cost))
    print_table(steps)
    if m.total is None:
        print()
        return
    out = new_table(["group", "users", "converted", "conversion", "95% CI", "uplift", "uplift 95% CI", "relative",
                  "incremental", "sales", "AOV", "redeemed", "subsidy", "per incr.", "ROI"],
                 right=set(range(1, 15)))
    for g in [m.total, *m.arms]:
        inc = "-" if g.incremental_conversions is None else f"{g.incremental_conversions:,.1f}"
        out.add_row(f"treated {g.arm}" if g.arm else "treated", f"{g.treated:,}", f"{g.converted:,}",
                    _pct(g.conversion.value), _ci(g.conversion), _pct(g.uplift.value), _ci(g.uplift, True),
                    _pct(g.relative_uplift.value), inc, _money(g.sales), _money(g.aov),
                    f"{g.redeemed:,}/{g.issued:,}", _money(g.subsidy), _money(g.cost_per_incremental_conversion),
                    "-" if g.roi is None else f"{g.roi * 100:.1f}%")
    t = m.total
    out.add_row("holdout", f"{t.holdout:,}", f"{t.holdout_converted:,}", _pct(t.holdout_conversion.value),
                _ci(t.holdout_conversion), "", "", "", "", "", "", "", "", "", "")
    print_table(out)
    for g in [m.total, *m.arms] if m.total.clicked is not None else []:
        label = f"treated {g.arm}" if g.arm else "treated"
        print(f"clicks, {label}: {g.clicked:,} of {g.reached:,} reached clicked: {_pct(g.click_rate.value)} "
              f"{_ci(g.click_rate)}")
    _print_customers(m)
    for target in m.targets:
        sure = "" if target.sure or target.status == "not measured" else " (the interval straddles the target)"
        print(f"target {target.metric} {target.op} {_pct(float(target.value))}: {target.status}, "
              f"{_pct(target.actual.value)} {_ci(target.actual)}{sure}")
    if m.margin is None:
        print("ROI: set [report] margin in camp.toml (e.g. margin = \"30%\")")
    print()


def _print_customers(m) -> None:
    """Recall rate (reactivation campaigns) and new customers (every campaign) of each group against the holdout."""
    from camp.tables import new_table, print_table

    recall = m.objective == "reactivation"
    head = ["group", "users"]
    if recall:
        head += ["ordered", "recall", "95% CI", "recall uplift", "95% CI"]
    head += ["new customers", "new rate", "95% CI", "new uplift", "95% CI"]
    table = new_table(head, right=set(range(1, len(head))))
    t = m.total
    for g in [t, *m.arms]:
        row = [f"treated {g.arm}" if g.arm else "treated", f"{g.treated:,}"]
        if recall:
            row += [f"{g.ordered:,}", _pct(g.recall.value), _ci(g.recall), _pct(g.recall_uplift.value),
                    _ci(g.recall_uplift, True)]
        row += [f"{g.new_customers:,}", _pct(g.new_customer_rate.value), _ci(g.new_customer_rate),
                _pct(g.new_customer_uplift.value), _ci(g.new_customer_uplift, True)]
        table.add_row(*row)
    row = ["holdout", f"{t.holdout:,}"]
    if recall:
        row += [f"{t.holdout_ordered:,}", _pct(t.holdout_recall.value), _ci(t.holdout_recall), "", ""]
    row += [f"{t.holdout_new_customers:,}", _pct(t.holdout_new_customer_rate.value), _ci(t.holdout_new_customer_rate),
            "", ""]
    table.add_row(*row)
    print_table(table)
