"""Benchmark: `camp report` for a 1M-recipient campaign with 14 days of response data, on DuckDB.

    python bench/report.py [--users 1000000] [--days 14] [--runs 3]

A copy of the bundled workspace; the demo shop (`camp demo init`'s data) with --users users; a ledger holding
one occurrence of `winback_high_value`'s touch (and reminders) for every user, 10% held out, made with numpy as
the tests do (tests/runtime/measure_data.py: sends, suppressions, coupons); then `camp demo respond --days`
(planted 8% vs 5% for the sent vs the rest, organic orders). Timed: `camp report . --campaign winback_high_value --format json` in a
fresh process per run (interpreter start-up and imports included). Reported: the median of --runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.demo_data import make_shop  # noqa: E402
from runtime.warehouse import connect  # noqa: E402
from tests.runtime.measure_data import CAMPAIGN, T0, load_world, make_world  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        shutil.copytree(ROOT / "campaigns", ws, ignore=shutil.ignore_patterns("*.duckdb"))
        shop, ledger = f"duckdb:///{ws / 'shop.duckdb'}", f"duckdb:///{ws / 'ledger.duckdb'}"
        start = time.perf_counter()
        make_shop(shop, users=args.users, seed=1)
        world = make_world(1, args.users, 0.0, 0.0, holdout=0.1, occurrences=1)
        wh = connect(shop)
        empty = world.__class__(world.deliveries, world.coupons, world.users.iloc[:0], world.orders.iloc[:0])
        load_world(empty, ledger, wh).close()
        wh.close()
        camp = str(Path(sys.executable).with_name("camp"))
        made = subprocess.run([camp, "demo", "respond", ".", "--days", str(args.days), "--seed", "1"], cwd=ws,
                              capture_output=True, text=True, check=True)
        print(f"made in {time.perf_counter() - start:.1f} s: {args.users:,} users, {len(world.deliveries):,} "
              f"deliveries; {made.stdout.splitlines()[0]}")
        as_of = (T0 + timedelta(days=args.days + 1)).isoformat()
        cmd = [camp, "report", ".", "--campaign", CAMPAIGN, "--as-of", as_of,
               "--format", "json"]
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            r = subprocess.run(cmd, cwd=ws, capture_output=True, text=True, check=True)
            times.append(time.perf_counter() - t)
        total = json.loads(r.stdout)["campaigns"][0]["total"]
        print(f"camp report: median {statistics.median(times):.2f} s, runs {', '.join(f'{x:.2f}' for x in times)} s "
              f"({total['treated']:,} treated, {total['holdout']:,} holdout, uplift {total['uplift']['value']:.4f})")


if __name__ == "__main__":
    main()
