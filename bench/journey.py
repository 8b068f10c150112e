"""Benchmark: a journey's follow-up step over a large cohort, on DuckDB, against hand-written SQL.

    python bench/journey.py [--users 1000000] [--runs 3] [--stages]

The touch goes to every user of a demo shop (run once, through the engine). Then the follow-up
`reminder after 3d unless any(orders since touch)` is resolved for the whole cohort, each time from a
fresh copy of the ledger: camp reads the cohort from the ledger, loads it into a TEMP table of the
warehouse session and runs the step's SQL (`runtime.snapshot.snapshot`). The peer is one hand-written DuckDB
query over both files attached: the anti-join of the touch's sent rows with the orders placed since
each send. Both must find the same users. Reported: medians of --runs, and the ratio.
The whole follow-up (decide and send to the outbox) is timed too. --stages also times the pieces of
camp's resolution one by one: the cohort from the ledger, the TEMP table, the SQL, the snapshot.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from bench.run import workspace  # noqa: E402
from compiler.check import check_workspace  # noqa: E402
from compiler.step_plan import build_plan  # noqa: E402
from compiler.workspace import load_workspace  # noqa: E402
from runtime import engine  # noqa: E402
from runtime.context import Run  # noqa: E402
from runtime.demo_data import make_shop  # noqa: E402
from runtime.ledger import open_ledger  # noqa: E402
from runtime.snapshot import snapshot  # noqa: E402

TOUCH = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
REMIND = TOUCH + timedelta(days=3)
CAMPAIGN = '''
campaign bench_journey "上新提醒" {
  who member_level in ("normal", "silver", "gold")
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "bench/push.j2"
  how
    step touch: notify where
    step reminder after 3d unless any(orders since touch): notify push template "bench/push.j2"
}
'''


def run_step(plan, data_url: str, ledger_url: str, as_of: datetime, send: bool) -> tuple[float, float, int]:
    """(seconds to resolve the recipients, seconds in all, recipients)."""
    t0 = time.perf_counter()
    lg = open_ledger(ledger_url)
    run = Run(plan, lg, data_url, as_of)
    engine.start(run)
    lo, hi = snapshot(run)
    resolved = time.perf_counter() - t0
    if send:
        for a in range(lo, hi, 10_000):
            engine.send_batch(run, a, min(a + 10_000, hi))
    engine.finish(run, {})
    run.close()
    lg.close()
    return resolved, time.perf_counter() - t0, hi - lo


PEER = """
SELECT d.user_id FROM l.camp_deliveries d
WHERE d.campaign = 'bench_journey' AND d.step = 'touch' AND d.status = 'sent'
  AND d.due_at + INTERVAL 3 DAY <= TIMESTAMPTZ '{remind}'
  AND NOT EXISTS (SELECT 1 FROM w.orders o WHERE o.user_id = CAST(d.user_id AS BIGINT)
                  AND o.created_at >= d.due_at AND o.created_at < TIMESTAMPTZ '{remind}')
"""


def peer(shop: Path, ledger: Path) -> tuple[float, set[str]]:
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"ATTACH '{shop}' AS w (READ_ONLY)")
    con.execute(f"ATTACH '{ledger}' AS l (READ_ONLY)")
    users = {u for (u,) in con.execute(PEER.format(remind=REMIND.isoformat())).fetchall()}
    con.close()
    return time.perf_counter() - t0, users


def stages(plan, shop: Path, base: Path, tmp: Path) -> None:
    from runtime import journey
    from runtime.warehouse import connect

    ledger = tmp / "ledger-stages.duckdb"
    shutil.copy(base, ledger)
    lg = open_ledger(f"duckdb:///{ledger}")
    t = time.perf_counter()
    journey.cohort(lg, plan, REMIND)
    first_s = time.perf_counter() - t  # the first in a process also imports pandas
    t = time.perf_counter()
    rows = journey.cohort(lg, plan, REMIND)
    cohort_s = time.perf_counter() - t
    wh = connect(f"duckdb:///{shop}", read_only=True)
    t = time.perf_counter()
    journey.load_cohort(wh, plan, rows)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    wh.execute(plan.recipients_sql).fetchall()
    sql_s = time.perf_counter() - t
    wh.close()
    run = Run(plan, lg, f"duckdb:///{shop}", REMIND)
    t = time.perf_counter()
    snapshot(run)  # all of it again, with the ledger write
    total = time.perf_counter() - t
    run.close()
    lg.close()
    print(f"stages: cohort from the ledger {cohort_s:.2f} s ({first_s:.2f} s the first time, importing pandas), "
          f"TEMP table {load_s:.2f} s, SQL {sql_s:.2f} s; snapshot in all {total:.2f} s, of which the ledger "
          f"write about {total - cohort_s - load_s - sql_s:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--stages", action="store_true", help="time the pieces of the resolution one by one")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="camp-bench-journey-"))
    root = workspace(tmp, CAMPAIGN, "新品已上架")
    shop = tmp / "shop.duckdb"
    t0 = time.perf_counter()
    make_shop(f"duckdb:///{shop}", args.users, seed=7)
    con = duckdb.connect(str(shop))  # orders after the touch, so `unless` has work to do
    con.execute("INSERT INTO orders (user_id, created_at, amount, brand, category, shop, coupon_used) "
                "SELECT user_id, TIMESTAMPTZ '2026-12-02 03:00:00+00' + (user_id % 3600) * INTERVAL 1 SECOND, "
                "88, 'Lancome', 'beauty', 'online', false FROM users WHERE user_id % 7 = 0")
    con.close()
    print(f"shop of {args.users:,} users in {time.perf_counter() - t0:.1f} s")
    ws = load_workspace(root)
    program = check_workspace(ws).program
    c = program.campaigns["bench_journey"]
    touch = build_plan(program, c, TOUCH, "duckdb", ws.template_dir, None, "bench")
    base = tmp / "ledger-touched.duckdb"
    _, total, n = run_step(touch, f"duckdb:///{shop}", f"duckdb:///{base}", TOUCH, send=True)
    print(f"touch: {n:,} recipients, {total:.1f} s")
    remind = build_plan(program, c, REMIND, "duckdb", ws.template_dir, "reminder", "bench", occurrence=touch.occurrence)
    if args.stages:
        stages(remind, shop, base, tmp)
    camp_s, peer_s, all_s = [], [], []
    for i in range(args.runs):
        ledger = tmp / f"ledger-{i}.duckdb"
        shutil.copy(base, ledger)
        p_s, expected = peer(shop, ledger)
        resolved, total, n = run_step(remind, f"duckdb:///{shop}", f"duckdb:///{ledger}", REMIND, send=True)
        lg = open_ledger(f"duckdb:///{ledger}")
        got = {u for (u,) in lg.rows("SELECT user_id FROM camp_deliveries WHERE step = 'reminder' AND "
                                     "status <> 'skipped'")}
        skipped = lg.one("SELECT count(*) FROM camp_deliveries WHERE step = 'reminder' AND status = 'skipped'")
        lg.close()
        assert got == expected, (len(got), len(expected))
        camp_s.append(resolved)
        peer_s.append(p_s)
        all_s.append(total)
        print(f"run {i + 1}: cohort {n:,} (skipped by unless {skipped:,}, reached {len(got):,}); "
              f"camp resolves it in {resolved:.2f} s, the hand-written anti-join in {p_s:.2f} s; "
              f"the whole follow-up to the outbox {total:.1f} s")
    cm, pm = statistics.median(camp_s), statistics.median(peer_s)
    print(f"median: camp {cm:.2f} s, hand-written {pm:.2f} s, ratio {cm / pm:.1f}x; "
          f"whole follow-up {statistics.median(all_s):.1f} s")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
