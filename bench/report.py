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
from datetime import datetime, timedelta
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
    ap.add_argument("--keep", type=Path, help="make the workspace in this folder and keep it; when it is there "
                    "already (from an earlier run with the same sizes), reuse it and only time")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = args.keep or Path(tmp) / "ws"
        camp = str(Path(sys.executable).with_name("camp"))
        if not (ws / "ledger.duckdb").exists():
            _make(ws, args.users, args.days, camp)
        _time(ws, args.days, args.runs, camp)


def _make(ws: Path, users: int, days: int, camp: str) -> None:
    """The workspace, the shop, the ledger and the planted response."""
    shutil.rmtree(ws, ignore_errors=True)
    shutil.copytree(ROOT / "campaigns", ws, ignore=shutil.ignore_patterns("*.duckdb"))
    shop, ledger = f"duckdb:///{ws / 'shop.duckdb'}", f"duckdb:///{ws / 'ledger.duckdb'}"
    start = time.perf_counter()
    make_shop(shop, users=users, seed=1)
    world = make_world(1, users, 0.0, 0.0, holdout=0.1, occurrences=1)
    wh = connect(shop)
    empty = world.__class__(world.deliveries, world.coupons, world.users.iloc[:0], world.orders.iloc[:0])
    load_world(empty, ledger, wh).close()
    wh.close()
    made = subprocess.run([camp, "demo", "respond", ".", "--days", str(days), "--seed", "1"], cwd=ws,
                          capture_output=True, text=True, check=True)
    print(f"made in {time.perf_counter() - start:.1f} s: {users:,} users, {len(world.deliveries):,} "
          f"deliveries; {made.stdout.splitlines()[0]}")


def _time(ws: Path, days: int, runs: int, camp: str) -> None:
    """camp report, then the pandas peer, each `runs` times in a fresh process or afresh."""
    as_of = (T0 + timedelta(days=days + 1)).isoformat()
    cmd = [camp, "report", ".", "--campaign", CAMPAIGN, "--as-of", as_of,
           "--format", "json"]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run(cmd, cwd=ws, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - t)
    total = json.loads(r.stdout)["campaigns"][0]["total"]
    print(f"camp report: median {statistics.median(times):.2f} s, runs {', '.join(f'{x:.2f}' for x in times)} s "
          f"({total['treated']:,} treated, {total['holdout']:,} holdout, uplift {total['uplift']['value']:.4f})")
    peer = [_pandas_peer(ws, datetime.fromisoformat(as_of)) for _ in range(runs)]
    seconds = [p[0] for p in peer]
    treated, held = peer[0][1], peer[0][2]
    print(f"peer (pandas, the same files, conversion only): median {statistics.median(seconds):.2f} s, runs "
          f"{', '.join(f'{x:.2f}' for x in seconds)} s (treated {treated:.4f}, holdout {held:.4f}; camp report "
          f"{total['conversion']['value']:.4f}, {total['holdout_conversion']['value']:.4f}); ratio camp/peer "
          f"{statistics.median(times) / statistics.median(seconds):.2f}")


def _pandas_peer(ws: Path, as_of: datetime) -> tuple[float, float, float]:
    """What an analyst writes by hand for the core number, timed the same way (a fresh read of both files): the
    entry step's exposures from the ledger, t0 = first send else due time, the shop's orders, converted = an order
    in [t0, t0 + 14 days on the Shanghai wall clock) before the as-of time; the treated and holdout rates."""
    import duckdb
    import pandas as pd

    t = time.perf_counter()
    with duckdb.connect(str(ws / "ledger.duckdb"), read_only=True) as lg:
        d = lg.execute("SELECT occurrence, user_id, step, status, due_at, sent_at FROM camp_deliveries WHERE "
                       "campaign = ? AND due_at < ?", [CAMPAIGN, as_of]).df()
    with duckdb.connect(str(ws / "shop.duckdb"), read_only=True) as wh:
        orders = wh.execute("SELECT CAST(user_id AS VARCHAR) AS user_id, created_at FROM orders WHERE created_at "
                            "< ?", [as_of]).df()
    sent = d[(d["status"] == "sent") & (d["sent_at"] < as_of)].groupby(["occurrence", "user_id"])["sent_at"].min()
    e = d[d["step"] == "touch"].set_index(["occurrence", "user_id"]).join(sent.rename("first"))
    e["t0"] = e["first"].where(e["first"].notna(), e["due_at"])
    e["end"] = (e["t0"].dt.tz_convert("Asia/Shanghai") + pd.DateOffset(days=14)).dt.tz_convert("UTC")
    j = e.reset_index()[["occurrence", "user_id", "t0", "end"]].merge(orders, on="user_id")
    hit = j[(j["created_at"] >= j["t0"]) & (j["created_at"] < j["end"])][["occurrence", "user_id"]].drop_duplicates()
    e["converted"] = e.index.isin(pd.MultiIndex.from_frame(hit))
    rates = e.groupby(e["status"] == "holdout")["converted"].mean()
    return time.perf_counter() - t, float(rates.get(False, 0.0)), float(rates.get(True, 0.0))


if __name__ == "__main__":
    main()
