"""A campaign's outcomes, by SQL on the ledger and the warehouse: reach per step and arm, conversion of the
treated against the holdout with its 95% interval, uplift, sales, redemptions, subsidy, ROI, targets, recall rate
and new customers.

    measure(program, campaign, ledger, warehouse, as_of, margin, clicks) -> Measurement

Definitions (docs/report.md):
- an exposure is a user in one occurrence of the campaign's entry step (its first step). Treated: every entry-step
  recipient not held out, whether or not the send went out (intention to treat: suppressed, failed and
  budget-exhausted recipients stay treated); holdout: the entry step's `holdout` rows of the same occurrences.
- t0: the user's first send in that occurrence (any step); a treated user never sent, and a held-out one: the
  entry step's due time (when they would have been sent). Exposures due at or after the as-of time are left out.
- converted: the goal holds counted from t0 over the goal's window (compiler.outcome), cut at the as-of time; an
  exposure whose window has not ended is counted as it stands and reported as open.
- sales and orders: the goal's order events of converters in their window; revenue: every exposure's.
- recall rate: exposures that placed at least one of those order events in their window, whatever the goal;
  new customers: those of them whose user had none before t0 (their first order is at or after t0).
- clicked: reached exposures with a click event naming the campaign in their window (camp.toml [clicks]); the
  click rate is clicked / reached (the holdout has no message to click);
- subsidy: discounts of coupons redeemed before the as-of time plus the cost of the sends.
- incremental conversions: (treated rate - holdout rate) x treated; incremental sales: treated revenue - holdout
  revenue per holdout exposure x treated; ROI: (margin x incremental sales - subsidy) / subsidy.
The rows are counted by SQL; Python sees only the per-group totals (statsmodels gives the intervals).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from compiler.config import Clicks
from compiler.outcome import outcome_sql
from compiler.program import Campaign, Program
from compiler.sql import EXPOSURE
from compiler.zones import fixed_offset
from runtime.ledger.outcomes import OutcomeLedger, exposures_query
from runtime.warehouse import Warehouse

CENT = Decimal("0.01")


@dataclass
class Interval:
    value: float | None
    low: float | None = None
    high: float | None = None


@dataclass
class StepCount:
    step: str
    arm: str | None
    assigned: int  # rows decided for the step (every status)
    reached: int  # sent
    holdout: int
    suppressed: int  # suppressed, failed, budget exhausted, skipped
    cost: Decimal  # of the sends


@dataclass
class Group:
    """The treated of one arm of the entry step (arm None: all of them) against the whole holdout."""

    arm: str | None
    treated: int
    converted: int
    reached: int
    holdout: int
    holdout_converted: int
    conversion: Interval
    holdout_conversion: Interval
    uplift: Interval  # treated rate - holdout rate
    relative_uplift: Interval  # treated rate / holdout rate - 1
    incremental_conversions: float | None
    orders: int
    sales: Decimal
    aov: Decimal | None
    revenue: Decimal
    incremental_sales: Decimal | None
    issued: int
    redeemed: int
    redemption_rate: Interval
    discounts: Decimal
    send_cost: Decimal
    subsidy: Decimal
    cost_per_incremental_conversion: Decimal | None
    roi: Decimal | None
    open_windows: int
    ordered: int  # exposures with at least one order in the window (recall), whatever the goal
    holdout_ordered: int
    recall: Interval
    holdout_recall: Interval
    recall_uplift: Interval
    new_customers: int  # ordered in the window and never before t0
    holdout_new_customers: int
    new_customer_rate: Interval
    holdout_new_customer_rate: Interval
    new_customer_uplift: Interval
    clicked: int | None  # reached exposures that clicked; None: clicks are not measured (camp.toml [clicks])
    click_rate: Interval  # clicked / reached


@dataclass
class Day:
    """Exposures whose t0 falls on one local date (the workspace's zone), all arms together."""

    day: date
    treated: int
    reached: int
    converted: int
    holdout: int
    holdout_converted: int
    sales: Decimal  # of the treated converters


@dataclass
class Target:
    metric: str
    op: str
    value: Decimal
    actual: Interval
    status: str  # met, missed, not measured
    sure: bool  # the whole 95% interval is on the status's side


@dataclass
class Measurement:
    campaign: str
    as_of: datetime
    currency: str
    objective: str | None  # the campaign's `why`
    entry_step: str | None
    goal_window: str | None
    holdout_share: Decimal
    margin: Decimal | None
    steps: list[StepCount] = field(default_factory=list)
    total: Group | None = None
    arms: list[Group] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    daily: list[Day] = field(default_factory=list)


def preload() -> None:
    """Import the statistics library in the background (about 0.7 s) while the caller checks the workspace and
    the engines count: DuckDB and PostgreSQL release the GIL while they work, so the import mostly overlaps."""
    import threading

    def load() -> None:
        import statsmodels.stats.proportion  # noqa: F401 (warms the import _rate and _compare make)

    threading.Thread(target=load, name="camp-preload-statsmodels", daemon=True).start()


def measure(program: Program, campaign: Campaign, ledger: OutcomeLedger, warehouse: Warehouse, as_of: datetime,
            margin: Decimal | None = None, clicks: Clicks | None = None) -> Measurement:
    """The campaign's numbers as of `as_of` (see the module docstring); `margin` (camp.toml [report]) for ROI,
    `clicks` (camp.toml [clicks]) for the click rate."""
    as_of = as_of.astimezone(UTC)
    c = campaign
    m = Measurement(campaign=c.name, as_of=as_of, currency=program.currency, objective=c.objective,
                    entry_step=c.steps[0].name if c.steps else None,
                    goal_window=str(c.goal_window) if c.goal_window else None, holdout_share=c.holdout, margin=margin)
    m.steps = [StepCount(step, arm or None, int(n), int(sent or 0), int(held or 0), int(sup or 0), _money(cost))
               for step, arm, n, sent, held, sup, cost in ledger.step_counts(c.name, as_of)]
    if m.entry_step is None:
        return m
    rows = _outcomes(program, c, ledger, warehouse, as_of, m.entry_step, clicks)
    outcomes = {key: _sum([t for (grp, arm, _), t in rows.items() if (grp, arm) == key])
                for key in sorted({(grp, arm) for grp, arm, _ in rows})}
    for day in sorted({d for _, _, d in rows}):
        t = _sum([v for (grp, _, d), v in rows.items() if d == day and grp == "treated"])
        h = _sum([v for (grp, _, d), v in rows.items() if d == day and grp == "holdout"])
        m.daily.append(Day(day, t[0], t[2], t[1], h[0], h[1], t[4]))
    spend = {arm: _money(cost) for arm, cost in ledger.journey_send_cost(c.name, m.entry_step, as_of)}
    coupons = {arm: (int(i or 0), int(r or 0), _money(d))
               for arm, i, r, d in ledger.entry_coupons(c.name, m.entry_step, as_of)}
    held = _sum([v for (grp, _), v in outcomes.items() if grp == "holdout"])
    arms = sorted({arm for grp, arm in outcomes if grp == "treated"})
    for arm in arms if len(arms) > 1 else []:  # one arm (the runtime's `all`) is the total: nothing to compare
        m.arms.append(_group(arm or None, outcomes[("treated", arm)], held, spend.get(arm, Decimal(0)),
                             coupons.get(arm, (0, 0, Decimal(0))), margin, clicks is not None))
    treated = _sum([outcomes[("treated", arm)] for arm in arms])
    money = [coupons.get(arm, (0, 0, Decimal(0))) for arm in arms]
    m.total = _group(None, treated, held, sum((spend.get(arm, Decimal(0)) for arm in arms), Decimal(0)),
                     (sum(x[0] for x in money), sum(x[1] for x in money), sum((x[2] for x in money), Decimal(0))),
                     margin, clicks is not None)
    if len(m.arms) == 1 and m.arms[0].arm is None:
        m.arms = []  # one unnamed arm is the total
    m.targets = [_target(metric, op, value, m.total) for metric, op, value in c.targets]
    return m


# (exposures, converted, reached, orders, sales, revenue, open windows, ordered, new customers, clicked) of one
# group and arm
_Totals = tuple[int, int, int, int, Decimal, Decimal, int, int, int, int]
_NONE: _Totals = (0, 0, 0, 0, Decimal(0), Decimal(0), 0, 0, 0, 0)


def _sum(rows: list[_Totals]) -> _Totals:
    if not rows:
        return _NONE
    return (sum(r[0] for r in rows), sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows),
            sum((r[4] for r in rows), Decimal(0)), sum((r[5] for r in rows), Decimal(0)), sum(r[6] for r in rows),
            sum(r[7] for r in rows), sum(r[8] for r in rows), sum(r[9] for r in rows))


def _outcomes(program: Program, c: Campaign, ledger: OutcomeLedger, warehouse: Warehouse, as_of: datetime,
              entry: str, clicks: Clicks | None) -> dict[tuple[str, str, date], _Totals]:
    """Exposures from the ledger into the warehouse session (EXPOSURE), then the goal counted per group, arm and
    local date of t0."""
    warehouse.backend.fresh_temp_table(warehouse.conn, EXPOSURE, "exposure_id text, user_id text, t0 timestamptz, "
                                       "grp text, arm text, reached integer")
    columns = ["exposure_id", "user_id", "t0", "grp", "arm", "reached"]
    if warehouse.ledger_catalog is not None:  # the ledger is attached to this session: no rows through Python
        catalog = '"' + warehouse.ledger_catalog.replace('"', '""') + '"'
        sql, params = exposures_query(c.name, entry, as_of, f"{catalog}.main.camp_deliveries_all")
        warehouse.execute(f"INSERT INTO {EXPOSURE} ({', '.join(columns)}) {sql}", params)
    else:
        frame = ledger.exposures_frame(c.name, entry, as_of)
        warehouse.bulk_insert(EXPOSURE, columns, frame[columns] if len(frame) else [])
    clicked = "0"
    first, last = warehouse.execute(f"SELECT MIN(t0), MAX(t0) FROM {EXPOSURE}").fetchone()
    if c.goal is not None or clicks is not None:
        outcome = outcome_sql(program, c, as_of, warehouse.dialect, clicks,
                              (first, last) if first is not None else None)
        joined = (f"LEFT JOIN ({outcome}) o ON o.exposure_id = x.exposure_id")
        conv = "CASE WHEN o.converted THEN 1 ELSE 0 END"
        open_ = "CASE WHEN o.window_open THEN 1 ELSE 0 END"
        orders = "CASE WHEN o.converted THEN o.orders ELSE 0 END"
        sales = "CASE WHEN o.converted THEN o.amount ELSE 0 END"
        revenue = "o.amount"
        ordered = "CASE WHEN o.orders > 0 THEN 1 ELSE 0 END"
        new = "CASE WHEN o.orders > 0 AND o.first_order >= x.t0 THEN 1 ELSE 0 END"
        clicked = "CASE WHEN x.reached = 1 AND o.clicks > 0 THEN 1 ELSE 0 END"
    else:
        joined, conv, open_, orders, sales, revenue, ordered, new = "", "0", "0", "0", "0", "0", "0", "0"
    day = _local_date(program.timezone, first, last)
    sql = (f"SELECT x.grp, x.arm, {day}, COUNT(*), SUM({conv}), SUM(x.reached), COALESCE(SUM({orders}), 0), "
           f"COALESCE(SUM({sales}), 0), COALESCE(SUM({revenue}), 0), SUM({open_}), SUM({ordered}), SUM({new}), "
           f"SUM({clicked}) "
           f"FROM {EXPOSURE} x {joined} GROUP BY x.grp, x.arm, {day}")
    return {(grp, arm or "", d): (int(n), int(cv or 0), int(r or 0), int(o or 0), _money(s), _money(rv),
                                  int(op or 0), int(od or 0), int(nw or 0), int(ck or 0))
            for grp, arm, d, n, cv, r, o, s, rv, op, od, nw, ck in warehouse.rows(sql)}


def _local_date(zone: str, first: datetime | None, last: datetime | None) -> str:
    """SQL for the local date of each exposure's t0 in `zone`; where the zone keeps one offset from the first t0 to
    the last, the date of t0 shifted by it (sessions run in UTC), which spares a zone conversion per row."""
    offset = fixed_offset(zone, first, last) if first is not None and last is not None else None
    if offset is not None:
        return f"CAST(x.t0 + INTERVAL '{int(offset.total_seconds()) // 60}' MINUTE AS DATE)"
    return "CAST((x.t0 AT TIME ZONE '" + zone.replace("'", "''") + "') AS DATE)"


def _money(v) -> Decimal:
    return Decimal(str(v if v is not None else 0)).quantize(CENT)


def _finite(v) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) else None


def _rate(k: int, n: int) -> Interval:
    if n == 0:
        return Interval(None)
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    return Interval(k / n, _finite(low), _finite(high))


def _compare(k1: int, n1: int, k2: int, n2: int, how: str) -> Interval:
    if n1 == 0 or n2 == 0:
        return Interval(None)
    from statsmodels.stats.proportion import confint_proportions_2indep

    p1, p2 = k1 / n1, k2 / n2
    if how == "diff":
        low, high = confint_proportions_2indep(k1, n1, k2, n2, compare="diff", alpha=0.05)
        return Interval(p1 - p2, _finite(low), _finite(high))
    if k2 == 0:
        return Interval(None)
    low, high = confint_proportions_2indep(k1, n1, k2, n2, compare="ratio", alpha=0.05)
    low, high = _finite(low), _finite(high)
    return Interval(p1 / p2 - 1, low - 1 if low is not None else None, high - 1 if high is not None else None)


def _group(arm: str | None, t: _Totals, h: _Totals, send_cost: Decimal, coupons: tuple[int, int, Decimal],
           margin: Decimal | None, clicks: bool) -> Group:
    n, conv, reached, orders, sales, revenue, opened, ordered, new, clicked = t
    hn, hconv, _, _, _, hrevenue, hopen, hordered, hnew, _ = h
    uplift = _compare(conv, n, hconv, hn, "diff")
    incremental = uplift.value * n if uplift.value is not None else None
    issued, redeemed, discounts = coupons
    subsidy = (discounts + send_cost).quantize(CENT)
    inc_sales = (revenue - hrevenue * n / hn).quantize(CENT) if hn else None
    per_conv = (subsidy / Decimal(repr(incremental))).quantize(CENT) if incremental and incremental > 0 else None
    roi = None
    if margin is not None and inc_sales is not None and subsidy > 0:
        roi = ((margin * inc_sales - subsidy) / subsidy).quantize(Decimal("0.0001"))
    return Group(
        arm=arm, treated=n, converted=conv, reached=reached, holdout=hn, holdout_converted=hconv,
        conversion=_rate(conv, n), holdout_conversion=_rate(hconv, hn), uplift=uplift,
        relative_uplift=_compare(conv, n, hconv, hn, "ratio"), incremental_conversions=incremental,
        orders=orders, sales=sales, aov=(sales / orders).quantize(CENT) if orders else None, revenue=revenue,
        incremental_sales=inc_sales, issued=issued, redeemed=redeemed, redemption_rate=_rate(redeemed, issued),
        discounts=discounts, send_cost=send_cost, subsidy=subsidy, cost_per_incremental_conversion=per_conv, roi=roi,
        open_windows=opened + hopen,
        ordered=ordered, holdout_ordered=hordered, recall=_rate(ordered, n), holdout_recall=_rate(hordered, hn),
        recall_uplift=_compare(ordered, n, hordered, hn, "diff"),
        new_customers=new, holdout_new_customers=hnew, new_customer_rate=_rate(new, n),
        holdout_new_customer_rate=_rate(hnew, hn), new_customer_uplift=_compare(new, n, hnew, hn, "diff"),
        clicked=clicked if clicks else None, click_rate=_rate(clicked, reached) if clicks else Interval(None))


_OPS = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b,
        "=": lambda a, b: a == b}


def _target(metric: str, op: str, value: Decimal, total: Group | None) -> Target:
    actual = Interval(None)
    if total is not None and metric == "conversion":
        actual = total.conversion
    elif total is not None and metric == "redemption":
        actual = total.redemption_rate
    elif total is not None and metric == "click_rate":
        actual = total.click_rate
    if actual.value is None or op not in _OPS:
        return Target(metric, op, value, actual, "not measured", False)
    goal = float(value)
    met = _OPS[op](actual.value, goal)
    ends = [x for x in (actual.low, actual.high) if x is not None]
    sure = len(ends) == 2 and all(_OPS[op](x, goal) == met for x in ends)
    return Target(metric, op, value, actual, "met" if met else "missed", sure)
