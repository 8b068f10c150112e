"""A finished Simulation's scratch ledger -> the report of `camp simulate`, as one JSON-ready document (camp/ prints
it as tables, JSON or HTML). Everything is read back from the ledger rows the simulated runs wrote, by SQL on the
scratch DuckDB ledger, so the report says what the engine decided, not what a model of it predicts.

    simulation_report(sim, program) -> dict (version SIM_VERSION)

Days are local days of the workspace's zone, of each delivery's `due_at` (when it goes out; for decisions that
send nothing, the run's clock). Contact pressure counts deliveries that count against caps (pending,
dispatching, deferred, sent, with a channel), the ledger's earlier ones included, in every window [t - D, t]
that ends at a simulated delivery's time t: the window a cap checks.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from runtime.ledger import open_ledger
from runtime.ledger.scratch import STOPPED_COLS, STOPPED_TABLE
from runtime.ledger.status import COUNTED, Status

SIM_VERSION = 1
_STATUSES = [s.value for s in (Status.SENT, Status.DEFERRED, Status.SUPPRESSED, Status.BUDGET_EXHAUSTED,
                               Status.HOLDOUT, Status.SKIPPED, Status.FAILED, Status.PENDING, Status.DISPATCHING)]
_UNITS = {"min": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month"}


def simulation_report(sim, program) -> dict:
    tz = program.timezone
    lg = open_ledger(sim.ledger_url)
    try:
        lg.execute("CREATE TEMP TABLE sim_runs (run_id TEXT)")
        lg.bulk_insert("sim_runs", ["run_id"], [(r.run_id,) for r in sim.runs])
        cols = ", ".join(STOPPED_COLS)  # the columns both tables have
        rows = f"SELECT {cols} FROM camp_deliveries"
        if lg.has_table(STOPPED_TABLE):  # the stopped decisions the scratch ledger kept apart
            rows += f" UNION ALL SELECT {cols} FROM {STOPPED_TABLE}"
        lg.execute(f"CREATE TEMP VIEW sim_rows AS SELECT d.*, timezone('{_zone(tz)}', d.due_at)::DATE AS day "
                   f"FROM ({rows}) d JOIN sim_runs USING (run_id)")
        first = sim.start.astimezone(ZoneInfo(tz)).date()
        last = (sim.end - timedelta(microseconds=1)).astimezone(ZoneInfo(tz)).date()
        days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
        doc = {"version": SIM_VERSION, "from": sim.start.isoformat(), "to": sim.end.isoformat(), "timezone": tz,
               "currency": program.currency, "days": days,
               "runs": _runs(sim), "daily": _daily(lg), "sends": _sends(lg), "budgets": _budgets(lg, program, sim),
               "pressure": _pressure(lg, program), "collisions": _collisions(lg), "suppressions": _suppressions(lg),
               "events": dict(sorted(sim.events.items())), "after_end": dict(sorted(sim.after_end.items())),
               "not_played": [{"campaign": c, "why": w} for c, w in sim.not_played], "problems": sim.problems}
    finally:
        lg.close()
    return doc


def _zone(tz: str) -> str:
    ZoneInfo(tz)  # a real zone name (checked by camp check); never pasted unchecked
    return tz.replace("'", "")


def _runs(sim) -> dict:
    out: dict[str, int] = defaultdict(int)
    for r in sim.runs:
        out[r.kind] += 1
    return dict(sorted(out.items()))


def _daily(lg) -> list[dict]:
    """Per local day and campaign: users by status (what a day's real runs write to the ledger)."""
    rows = lg.rows("SELECT day, campaign, status, count(*) FROM sim_rows GROUP BY ALL ORDER BY day, campaign, status")
    table: dict[tuple[str, str], dict[str, int]] = {}
    for day, campaign, status, n in rows:
        table.setdefault((day.isoformat(), campaign), {})[status] = n
    return [{"day": d, "campaign": c, **{s: v.get(s, 0) for s in _STATUSES}} for (d, c), v in table.items()]


def _sends(lg) -> list[dict]:
    """Per local day, campaign and channel: messages sent (and still deferred when the period ended)."""
    rows = lg.rows("SELECT day, campaign, channel, count(*) FILTER (WHERE status = 'sent'), "
                   "count(*) FILTER (WHERE status <> 'sent'), sum(cost) FROM sim_rows "
                   f"WHERE channel IS NOT NULL AND status IN ({_in(COUNTED)}) GROUP BY ALL "
                   "ORDER BY day, campaign, channel")
    return [{"day": d.isoformat(), "campaign": c, "channel": ch, "sent": s, "waiting": w, "cost": str(cost)}
            for d, c, ch, s, w, cost in rows]


def _budgets(lg, program, sim) -> list[dict]:
    """Each campaign with a budget: its reservations per local day in the period (camp_spend, what the budget
    draws on), the total before and in the period, and the days its budgets stopped deliveries."""
    first, last = sim.start, sim.end
    tz = ZoneInfo(program.timezone)
    out = []
    for c in sorted(program.campaigns.values(), key=lambda c: c.name):
        total = c.budget_total.amount if c.budget_total else None
        daily = c.budget_daily.amount if c.budget_daily else None
        if total is None and daily is None:
            continue
        spend = {d: Decimal(a) for d, a in lg.rows("SELECT day, sum(amount) FROM camp_spend WHERE campaign = ? "
                                                   "GROUP BY day", (c.name,))}
        lo, hi = first.astimezone(tz).date(), (last - timedelta(microseconds=1)).astimezone(tz).date()
        in_period = {d: v for d, v in sorted(spend.items()) if lo <= d <= hi}
        before = sum((v for d, v in spend.items() if d < lo), Decimal(0))
        stops = lg.rows("SELECT day, reason, count(*) FROM sim_rows WHERE campaign = ? AND status = ? GROUP BY ALL "
                        "ORDER BY day", (c.name, Status.BUDGET_EXHAUSTED.value))
        total_out = next((d.isoformat() for d, reason, _ in stops if (reason or "").startswith("budget:total")), None)
        daily_out = sorted({d.isoformat() for d, reason, _ in stops if (reason or "").startswith("budget:daily")})
        spent = sum(in_period.values(), Decimal(0))
        out.append({"campaign": c.name, "total": _s(total), "daily": _s(daily), "spent_before": str(before),
                    "spent": str(spent), "left": _s(total - before - spent if total is not None else None),
                    "per_day": [{"day": d.isoformat(), "spent": str(v),
                                 "left_today": _s(daily - v if daily is not None else None)}
                                for d, v in in_period.items()],
                    "total_runs_out": total_out, "daily_runs_out": daily_out,
                    "left_out": sum(n for _, _, n in stops)})
    return out


def _s(v) -> str | None:
    return None if v is None else str(v)


def _in(values) -> str:
    return ", ".join(f"'{getattr(v, 'value', v)}'" for v in values)


def _pressure(lg, program) -> dict:
    """Messages per user in any 7 days (distribution, p95, max), and for each cap with a window the most any
    user got in such a window of that cap's unit (and campaign, for a campaign's cap), against its limit."""
    base = (f"SELECT user_id, campaign, channel, due_at, run_id IN (SELECT run_id FROM sim_runs) AS mine "
            f"FROM camp_deliveries WHERE channel IS NOT NULL AND status IN ({_in(COUNTED)})")
    lg.execute(f"CREATE TEMP TABLE sim_counted AS {base}")
    week = _window_max(lg, "TRUE", "INTERVAL 7 DAY")
    hist = lg.rows(f"SELECT n, count(*) FROM ({week}) GROUP BY n ORDER BY n")
    stats = lg.rows(f"SELECT quantile_disc(n, 0.95), max(n), count(*) FROM ({week})")[0]
    totals = lg.rows("SELECT quantile_disc(n, 0.95), max(n) FROM (SELECT user_id, count(*) AS n FROM sim_counted "
                     "WHERE mine GROUP BY user_id)")[0]
    caps = []
    for scope, owner, cap in [("policy", None, r) for r in program.policy.caps] + \
            [("campaign", c.name, r) for c in program.campaigns.values() for r in c.caps]:
        if cap.per is None or cap.unused or cap.unit == "coupon":
            continue
        where = "TRUE" if cap.unit == "message" else f"channel = '{_quote(cap.unit)}'"
        if owner is not None:
            where += f" AND campaign = '{_quote(owner)}'"
        interval = f"INTERVAL {int(cap.per.value)} {_UNITS[cap.per.unit].upper()}"
        worst: int = int(lg.rows(f"SELECT max(n) FROM ({_window_max(lg, where, interval)})")[0][0] or 0)
        limits: list[int] = [*cap.tiers.values(), *([cap.default] if cap.default is not None else [])]
        limit: int = max(limits) if cap.by and limits else cap.count
        caps.append({"scope": scope, "campaign": owner, "unit": cap.unit, "per": f"{cap.per.value}{cap.per.unit}",
                     "limit": limit, "tiered_by": cap.by, "tiers": dict(cap.tiers) if cap.by else None,
                     "max_seen": worst, "within": worst <= limit})
    return {"users_messaged": stats[2], "per_7_days": {"p95": stats[0] or 0, "max": stats[1] or 0,
                                                      "distribution": {str(n): k for n, k in hist}},
            "in_period": {"p95": totals[0] or 0, "max": totals[1] or 0}, "caps": caps}


def _window_max(lg, where: str, interval: str) -> str:
    """Per user messaged in the simulation: the most messages (matching `where`) in a window [t - D, t] ending at
    one of their simulated messages."""
    return (f"SELECT user_id, max(n) AS n FROM (SELECT user_id, mine, count(*) OVER (PARTITION BY user_id ORDER BY "
            f"due_at RANGE BETWEEN {interval} PRECEDING AND CURRENT ROW) AS n FROM sim_counted WHERE {where}) "
            "WHERE mine GROUP BY user_id")


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _collisions(lg) -> dict:
    """Users whom several campaigns wanted on the same local day (a row of any campaign but holdout and journey
    skips), and who won: the campaigns that delivered to them that day."""
    lg.execute(  # each (day, user) several campaigns wanted, once: both answers below read it
        "CREATE TEMP TABLE sim_contested AS WITH wanted AS (SELECT day, user_id, campaign, bool_or(status IN ("
        + _in(COUNTED) + ")) AS won FROM sim_rows WHERE status NOT IN ('holdout', 'skipped') "
        "GROUP BY day, user_id, campaign) "
        "SELECT day, user_id, list(campaign ORDER BY campaign) AS campaigns, "
        "list(campaign ORDER BY campaign) FILTER (WHERE won) AS winners FROM wanted GROUP BY day, user_id "
        "HAVING count(*) > 1")
    rows = lg.rows("SELECT campaigns, coalesce(winners, []), count(*), count(DISTINCT user_id), min(day) FROM "
                   "sim_contested GROUP BY ALL ORDER BY count(*) DESC, campaigns, 2")  # ties in a stable order
    per_day = lg.rows("SELECT day, count(*) FROM sim_contested GROUP BY day ORDER BY day")
    held = lg.rows("SELECT campaign, reason, count(*) FROM sim_rows WHERE reason LIKE 'exclusive:%' GROUP BY ALL "
                   "ORDER BY count(*) DESC, campaign, reason")
    return {"per_day": [{"day": d.isoformat(), "users": n} for d, n in per_day],
            "groups": [{"campaigns": list(c), "winners": list(w), "user_days": n, "users": u,
                        "first_day": d.isoformat()} for c, w, n, u, d in rows],
            "exclusive": [{"campaign": c, "reason": r, "users": n} for c, r, n in held]}


def _suppressions(lg) -> list[dict]:
    """Deliveries not sent, by campaign, status and reason."""
    rows = lg.rows("SELECT campaign, status, coalesce(reason, ''), count(*) FROM sim_rows WHERE status NOT IN ("
                   + _in(COUNTED) + ") GROUP BY ALL ORDER BY campaign, count(*) DESC, status, 3")
    return [{"campaign": c, "status": s, "reason": r, "users": n} for c, s, r, n in rows]
