"""Benchmark: the bundled audiences on a Spark warehouse (local[N], Parquet) against the same SQL on DuckDB.

    python bench/spark.py [--users 1000000] [--runs 3] [--cores 2] [--campaigns a,b] [--stream-runs 1]

Data: `camp demo init`'s shop (default sizes: about 6 orders and 1.5 visits per user), generated once in a DuckDB
file and exported to Parquet for Spark (runtime/spark.py). For each bundled campaign: the audience query (matched,
excluded, held out) compiled for each engine and its rows brought into Python, as `camp audience` and a run's
snapshot do (Spark: streamed partition by partition with toLocalIterator). Before timing, both engines must give the
same rows. Then the 1M-row stream alone: every user's row through Spark's cursor, what a 1M-recipient snapshot
reads. Medians of --runs; Spark and DuckDB alternate run by run. The JVM's start-up is reported apart.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler.check import check_workspace  # noqa: E402
from compiler.sql import AudienceSQL  # noqa: E402
from compiler.workspace import load_workspace  # noqa: E402
from runtime.demo_data import make_shop, statements  # noqa: E402
from runtime.spark import export_parquet  # noqa: E402
from runtime.warehouse import connect  # noqa: E402

AS_OF = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--campaigns", default="", help="comma-separated; default: every bundled campaign")
    ap.add_argument("--stream-runs", type=int, default=1)
    args = ap.parse_args()
    program = check_workspace(load_workspace(ROOT / "campaigns")).program
    tmp = Path(tempfile.mkdtemp(prefix="camp-bench-spark-"))
    duck_url, spark_url = f"duckdb:///{tmp / 'shop.duckdb'}", f"spark+local:///{tmp / 'parquet'}?cores={args.cores}"
    t0 = time.perf_counter()
    made = make_shop(duck_url, args.users, seed=1)
    duck = connect(duck_url)
    export_parquet(duck.conn, statements(1, 1), tmp / "parquet")
    print(f"shop: {made.counts} in {time.perf_counter() - t0:.1f} s (DuckDB, then Parquet)", flush=True)
    t0 = time.perf_counter()
    spark = connect(spark_url)
    print(f"Spark session (JVM start, {args.cores} cores): {time.perf_counter() - t0:.1f} s", flush=True)

    def rows(wh, name: str) -> tuple[float, list]:
        c = AudienceSQL(program, AS_OF, wh.dialect)
        sql = c.sql(c.campaign(program.campaigns[name]), pretty=False)
        start = time.perf_counter()
        out = wh.rows(sql)
        return time.perf_counter() - start, out

    print("| audience | matched | spark (s) | duckdb (s) | spark / duckdb | spark runs (s) |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name in [c for c in args.campaigns.split(",") if c] or sorted(program.campaigns):
        _, want = rows(duck, name)
        _, got = rows(spark, name)
        assert sorted((int(r[0]), bool(r[1]), bool(r[2])) for r in got) == \
            sorted((int(r[0]), bool(r[1]), bool(r[2])) for r in want), name
        s_times, d_times = [], []
        for _ in range(args.runs):
            s_times.append(rows(spark, name)[0])
            d_times.append(rows(duck, name)[0])
        s, d = statistics.median(s_times), statistics.median(d_times)
        print(f"| {name} | {len(want):,} | {s:.2f} | {d:.2f} | {s / d:.1f} | "
              f"{', '.join(f'{t:.2f}' for t in s_times)} |", flush=True)
    q = "SELECT user_id, name, city, birthday, registered_at, balance, timezone, email FROM users"
    times = []
    for _ in range(args.stream_runs):
        start = time.perf_counter()
        n = len(spark.rows(q))
        times.append(time.perf_counter() - start)
    m = statistics.median(times)
    print(f"stream of {n:,} user rows (8 columns) through Spark's cursor: median {m:.2f} s "
          f"({n / m:,.0f} rows/s); runs {', '.join(f'{t:.2f}' for t in times)}")
    spark.close()
    duck.close()


if __name__ == "__main__":
    main()
