"""Benchmark: `camp materialize` of lifecycle and value_quadrant on the demo shop, on DuckDB; and the history's size.

    python bench/materialize.py [--users 1000000] [--runs 3] [--history-users 100000] [--days 90]

A copy of the bundled workspace plus `materialize lifecycle, value_quadrant daily at 02:00` and a classification
of a stable population (`tier`, by member level); the demo shop (`camp demo init`'s data) with --users users.

1. Timed: `camp materialize . --as-of T` in a fresh process per run (interpreter start-up and imports included)
   into a fresh ledger each time (the first materialisation: every user's interval is opened). Reported: the
   median of --runs; the goal is <= 30 s at 1M users.
2. Size: a shop of --history-users users backfilled --days days (`camp materialize --backfill`), rows of
   camp_label_history per name against the users labelled on one day: `tier` (a stable population: labels that
   do not change; goal <= 2x) and the demo shop's lifecycle and value_quadrant (whose users do move as their
   orders age: reported as measured).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.demo_data import make_shop  # noqa: E402

DECL = ("materialize lifecycle, value_quadrant daily at 02:00\n\n"
        "classify tier by first match {\n  gold = member_level = \"gold\"\n  other = otherwise\n}\n"
        "materialize tier daily at 02:00\n")
AS_OF = "2026-12-01T10:00:00+08:00"


def _workspace(tmp: Path, name: str) -> Path:
    ws = tmp / name
    shutil.copytree(ROOT / "campaigns", ws, ignore=shutil.ignore_patterns("*.duckdb"))
    (ws / "materialize.camp").write_text(DECL, encoding="utf-8")
    return ws


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--history-users", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=90)
    args = ap.parse_args()
    camp = str(Path(sys.executable).with_name("camp"))
    with tempfile.TemporaryDirectory() as tmp:
        ws = _workspace(Path(tmp), "big")
        start = time.perf_counter()
        make_shop(f"duckdb:///{ws / 'shop.duckdb'}", users=args.users, seed=1)
        print(f"shop made in {time.perf_counter() - start:.1f} s: {args.users:,} users")
        times = []
        for _ in range(args.runs):
            (ws / "ledger.duckdb").unlink(missing_ok=True)
            t = time.perf_counter()
            r = subprocess.run([camp, "materialize", ".", "--as-of", AS_OF, "--name", "lifecycle", "--name",
                                "value_quadrant"], cwd=ws, capture_output=True, text=True, check=True)
            times.append(time.perf_counter() - t)
        print(f"camp materialize lifecycle, value_quadrant at {args.users:,} users: median "
              f"{statistics.median(times):.2f} s, runs {', '.join(f'{x:.2f}' for x in times)} s")
        print("  " + "\n  ".join(r.stdout.splitlines()[1:]))

        small = _workspace(Path(tmp), "history")
        make_shop(f"duckdb:///{small / 'shop.duckdb'}", users=args.history_users, seed=1)
        t = time.perf_counter()
        r = subprocess.run([camp, "materialize", ".", "--as-of", AS_OF, "--backfill", f"{args.days}d"], cwd=small,
                           capture_output=True, text=True, check=True)
        took = time.perf_counter() - t
        import duckdb

        con = duckdb.connect(str(small / "ledger.duckdb"), read_only=True)
        rows = dict(con.execute("SELECT name, count(*) FROM camp_label_history GROUP BY name").fetchall())
        days = dict(con.execute("SELECT name, count(*) FROM camp_materializations GROUP BY name").fetchall())
        one_day = dict(con.execute("SELECT name, max(users) FROM camp_materializations GROUP BY name").fetchall())
        con.close()
        print(f"backfill {args.days}d at {args.history_users:,} users: {took:.1f} s ({r.stdout.splitlines()[0]})")
        print("| name | materialisations | users labelled per day | history rows | rows / one day's labels |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for name in ("tier", "value_quadrant", "lifecycle"):
            print(f"| {name} | {days[name]} | {one_day[name]:,} | {rows[name]:,} | {rows[name] / one_day[name]:.2f} |")


if __name__ == "__main__":
    main()
