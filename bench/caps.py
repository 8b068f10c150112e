"""Benchmark: the caps and exclusive hold of 1M recipients against a DuckDB ledger of 0, 5M, 20M (100M) past rows.

    python bench/caps.py [--recipients 1000000] [--sizes 0,5000000,20000000] [--runs 3] [--old]

The ledger holds N counted and uncounted past deliveries of 2M users sent at a constant rate (20M rows are 180 days),
so a bigger ledger is an older one and the part a 7-day window sees stays the same (fill's docstring). The plan caps `2 messages per user per 7d` and holds the exclusive
group `g` for 7 days. Three ways to find which of the 1M recipients the caps and hold let through, each asserted to
give the same set:

- camp: `runtime.history.seen_counts` (one aggregate over the longest window, semi-joined with the run's snapshot in
  camp_recipients, what runtime.batch reads once per run on DuckDB) and `decide`'s cap and hold checks
  (`channel_block`, the holder) for the users it returned;
- peer: one hand-written DuckDB query, the recipients anti-joined with the users over the cap or held;
- old (--old, one run): the per-batch path before issue 16: each batch of 10,000 read its users' rows
  (`past_deliveries`, one `Past` per row) and `decide`'s checks ran over the lists.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler.plan import ArmPlan, CapPlan, ChannelPlan, Duration, StepPlan  # noqa: E402
from runtime.context import RunContext  # noqa: E402
from runtime.decide import Recipient, channel_block  # noqa: E402
from runtime.history import past_deliveries, seen_counts  # noqa: E402
from runtime.ledger import open_ledger  # noqa: E402

AS_OF = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
COUNTED_SQL = "('pending', 'dispatching', 'deferred', 'sent')"


def the_plan() -> StepPlan:
    return StepPlan(workspace="bench", timezone="Asia/Shanghai", currency="CNY", campaign="c", step="s",
                    occurrence="o", audience_as_of=AS_OF, dialect="duckdb", recipients_sql="", user_fields={}, tz_field=None,
                    labels=[], consent_channels=None, holdout=Decimal(0),
                    arms=[ArmPlan(kind="all", name="all", notify=[ChannelPlan(channel="push")])], resources={},
                    caps=[CapPlan(scope="policy", unit="message", count=2, per=Duration(value=7, unit="d"),
                                  text="2 messages per user per 7d")],
                    quiet=[], priority=0, exclusive="g", exclusive_hold=Duration(value=7, unit="d"))


RATE = 20_000_000 / (180 * 86400)  # past deliveries per second: 20M rows are 180 days of them


def fill(path: Path, rows: int, recipients: int) -> float:
    """Grow the ledger at `path` (migrated, with the recipients table) to `rows` past deliveries; seconds taken.
    Row i is due i / RATE seconds before the as-of time: a bigger ledger is an older one, sending at the same rate,
    so the part a 7-day window sees is the same at every size (about 778k rows) and only the ledger's age grows.
    Each step appends its rows in time order, as a ledger is appended to as decisions are made."""
    import duckdb

    t0 = time.perf_counter()
    fresh = not path.exists()
    open_ledger(f"duckdb:///{path}").close()
    con = duckdb.connect(str(path))
    if fresh:
        con.execute(f"CREATE TABLE bench_recipients AS SELECT (i * 2)::VARCHAR AS user_id FROM range({recipients}) t(i)")
    if not con.execute("SELECT count(*) FROM camp_recipients").fetchone()[0]:  # type: ignore[index]
        # the run's snapshot, as `camp run` writes it before deciding (the same users as the peer's table)
        con.execute("INSERT INTO camp_recipients SELECT 'c', 's', 'o', row_number() OVER (ORDER BY user_id) - 1, "
                    "user_id, false, '{}' FROM bench_recipients")
    (have,) = con.execute("SELECT count(*) FROM camp_deliveries").fetchone() or (0,)
    if rows > have:
        # users spread over 2M ids by a hash; one in ten suppressed, one in ten failed (not counted), one in 11 without
        # a channel, one in 13 of the exclusive group g; campaigns a, c0..c6 (the plan's own is c: none holds it)
        con.execute(f"""
            INSERT INTO camp_deliveries
            SELECT 'k' || i, CASE WHEN i % 5 = 0 THEN 'a' ELSE 'c' || (i % 7) END, 's', 'o' || (i // 1000000),
                   (hash(i) % 2000000)::VARCHAR, NULL, CASE WHEN i % 11 = 0 THEN NULL ELSE 'push' END,
                   CASE WHEN i % 10 = 0 THEN 'suppressed' WHEN i % 10 = 1 THEN 'failed' ELSE 'sent' END,
                   NULL, 0, 'CNY', NULL, NULL, 'h', 'r', CASE WHEN i % 13 = 0 THEN 'g' END,
                   to_timestamp({AS_OF.timestamp()} - i / {RATE}), NULL, to_timestamp({AS_OF.timestamp()} - i / {RATE}),
                   NULL, 1, NULL
            FROM range({rows - 1}, {have - 1}, -1) t(i)""")
    con.execute("CHECKPOINT")
    con.close()
    return time.perf_counter() - t0


def camp(lg, plan: StepPlan, users: set[str]) -> set[str]:
    """The engine's way: counts of every user in one aggregate, then decide's checks for those it returned."""
    ctx = RunContext(plan, lg, "", AS_OF, False, "bench", "hash")
    seen = seen_counts(ctx, None, AS_OF, snapshot=True)
    return _blocked(plan, users, seen)


def old(lg, plan: StepPlan, users: list[str], batch: int = 10_000) -> set[str]:
    """The path before: per batch, its users' rows as `Past` objects, decide's checks over the lists."""
    ctx = RunContext(plan, lg, "", AS_OF, False, "bench", "hash")
    blocked: set[str] = set()
    for lo in range(0, len(users), batch):
        part = users[lo:lo + batch]
        past: dict[str, list] = {}
        for _, uid, d in past_deliveries(ctx, part, AS_OF):
            past.setdefault(uid, []).append(d)
        blocked |= _blocked(plan, set(part), past)
    return blocked


def _blocked(plan: StepPlan, users: set[str], seen: dict) -> set[str]:
    """Recipients a cap or the hold stops: only users the counts name can be (no cap here has a limit of 0: a user
    missing from them is decided as one with no past), so decide's checks run over those that are recipients, once
    per distinct count, as runtime.decision_classes judges a batch once per class of users alike."""
    from runtime.decide import _holder

    ch = plan.arms[0].notify[0]
    nobody = Recipient(0, "", False, {}, {}, {})  # this plan reads nothing of the user but the counts
    verdict: dict = {}
    out = set()
    for uid, s in seen.items():
        if uid not in users:
            continue
        stops = None if isinstance(s, list) else verdict.get(s)  # the old path's rows (a list) are judged each
        if stops is None:
            stops = bool(_holder(plan, s, AS_OF) or channel_block(ch, plan, nobody, s, AS_OF))
            if not isinstance(s, list):
                verdict[s] = stops
        if stops:
            out.add(uid)
    return out


def peer(path: Path) -> set[str]:
    """The hand-written query: recipients anti-joined with the users over the cap or held by another campaign."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    since = AS_OF - timedelta(days=7)
    rows = con.execute(f"""
        SELECT user_id FROM bench_recipients r SEMI JOIN (
          SELECT user_id FROM camp_deliveries WHERE status IN {COUNTED_SQL} AND due_at >= ?
          GROUP BY user_id
          HAVING count(*) FILTER (WHERE channel IS NOT NULL) >= 2 OR bool_or(exclusive_group = 'g' AND campaign <> 'c')
        ) c USING (user_id)""", (since,)).fetchall()
    con.close()
    return {u for (u,) in rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipients", type=int, default=1_000_000)
    ap.add_argument("--sizes", default="0,5000000,20000000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--old", action="store_true", help="also time the per-batch path before issue 16 (one run)")
    ap.add_argument("--keep", help="a folder to keep the ledger in (grown between sizes and runs of the script)")
    args = ap.parse_args()
    plan = the_plan()
    users = [str(i * 2) for i in range(args.recipients)]
    recipients = set(users)  # as the peer's recipients table, made before timing
    with tempfile.TemporaryDirectory() as d:
        path = Path(args.keep or d) / f"caps-{args.recipients}.duckdb"
        for size in sorted(int(s) for s in args.sizes.split(",")):
            made = fill(path, size, args.recipients)
            lg = open_ledger(f"duckdb:///{path}")
            have = lg.one("SELECT count(*) FROM camp_deliveries")
            lg.close()
            if have != size:
                print(f"skipped {size}: the kept ledger already holds {have} rows", file=sys.stderr)
                continue
            times: dict[str, list[float]] = {"camp": [], "peer": []}
            want: set[str] = set()
            for _ in range(args.runs):  # interleaved, so both see the same load
                t0 = time.perf_counter()
                want = peer(path)
                times["peer"].append(time.perf_counter() - t0)
                lg = open_ledger(f"duckdb:///{path}")
                t0 = time.perf_counter()
                got = camp(lg, plan, recipients)
                times["camp"].append(time.perf_counter() - t0)
                lg.close()
                assert got == want, (len(got), len(want))
            out = {"ledger_rows": size, "recipients": args.recipients, "blocked": len(want), "fill_s": round(made, 1),
                   **{f"{k}_s": round(statistics.median(v), 3) for k, v in times.items()},
                   **{f"{k}_runs": [round(x, 3) for x in v] for k, v in times.items()},
                   "ratio": round(statistics.median(times["camp"]) / statistics.median(times["peer"]), 2)}
            if args.old:
                lg = open_ledger(f"duckdb:///{path}")
                t0 = time.perf_counter()
                assert old(lg, plan, users) == want
                out["old_s"] = round(time.perf_counter() - t0, 2)
                lg.close()
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
