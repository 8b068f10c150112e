"""Benchmark: three ledger statements a simulated month repeats thousands of times, each measured alone on DuckDB
in memory (the scratch ledger's engine), medians of --runs.

    python bench/ledger_micro.py [--runs 8]

1. A snapshot insert of 80,000 recipients (a run of the bundled daily digest on the 100k-user shop) into
   camp_recipients' columns, with and without its primary key (runtime.sim_ledger drops it in the scratch ledger).
2. A small insert of k rows of 12 columns through `DuckDB.bulk_insert` (values bound up to FEW rows, a frame
   above) against the frame alone (what it did before for every size).
3. The caps' counts of 75,000 users over 400,000 deliveries, limited to the run's users by a semi-join with a
   month of snapshots (64 occurrences, 4.8M rows) against a TEMP table of the users (runtime.ledger.store,
   Ledger.seen_by_user).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from runtime.ledger.backend import FEW, DuckDB, _exact_decimals  # noqa: E402

RECIPIENTS = ("campaign text NOT NULL, step text NOT NULL, occurrence text NOT NULL, seq bigint NOT NULL, "
              "user_id text NOT NULL, held_out boolean NOT NULL, data text NOT NULL")
N = 80_000


def median_ms(f, runs: int) -> float:
    times = []
    for k in range(runs):
        t0 = time.perf_counter()
        f(k)
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 2)


def snapshot_insert(runs: int) -> dict:
    users = [f"u{i:06d}" for i in range(N)]
    held = [i % 10 == 0 for i in range(N)]
    out = {}
    for keyed in (True, False):
        con = duckdb.connect(":memory:")
        key = ", PRIMARY KEY (campaign, step, occurrence, seq)" if keyed else ""
        con.execute(f"CREATE TABLE r ({RECIPIENTS}{key})")

        def write(k: int, con=con) -> None:
            frame = pd.DataFrame({"campaign": "c", "step": "s", "occurrence": f"o{k}", "seq": range(N),  # noqa: F841
                                  "user_id": users, "held_out": held, "data": ""}, index=pd.RangeIndex(N))
            con.execute("INSERT INTO r SELECT * FROM frame")

        out["keyed" if keyed else "unkeyed"] = median_ms(write, runs)
        con.close()
    return out


def small_inserts(runs: int) -> dict:
    backend = DuckDB.__new__(DuckDB)
    con = duckdb.connect(":memory:")
    cols = ["run_id", "decision", "campaign", "step", "occurrence", "arm", "channel", "status", "reason", "cost",
            "due_at", "users"]
    con.execute("CREATE TABLE t (run_id text, decision bigint, campaign text, step text, occurrence text, arm text, "
                "channel text, status text, reason text, cost decimal(18,2), due_at timestamptz, users bigint)")
    now = datetime.now(UTC)
    out = {}
    for k in (1, 5, FEW, 30):
        rows = [("r", i, "c", "s", "o", "a", None, "suppressed", "cap", Decimal("0.01"), now, 5) for i in range(k)]

        def frame(_: int, rows=rows) -> None:
            f = _exact_decimals(pd.DataFrame.from_records(rows, columns=cols))  # noqa: F841
            con.execute(f"INSERT INTO t ({', '.join(cols)}) SELECT {', '.join(cols)} FROM f")

        out[f"{k} rows"] = {"bulk_insert": median_ms(lambda _, rows=rows: backend.bulk_insert(con, "t", cols, rows),
                                                     runs * 6),
                            "frame": median_ms(frame, runs * 6)}
    return out


def caps_counts(runs: int) -> dict:
    con = duckdb.connect(":memory:")
    con.execute(f"CREATE TABLE r ({RECIPIENTS})")
    n = 75_000
    ids = [f"u{i:06d}" for i in range(n)]
    for k in range(64):
        frame = pd.DataFrame({"campaign": "engagement_digest", "step": "digest",  # noqa: F841
                              "occurrence": f"2026-12-{1 + k // 2:02d}T{'00:30' if k % 2 == 0 else '11:00'}:00+00:00",
                              "seq": np.arange(n), "user_id": ids, "held_out": False, "data": ""})
        con.execute("INSERT INTO r SELECT * FROM frame")
    con.execute("CREATE TABLE d AS SELECT 'u' || lpad((i % 100000)::text, 6, '0') AS user_id, "
                "TIMESTAMPTZ '2026-12-01 00:00:00+00' + to_minutes((i % 40000)::bigint) AS due_at FROM range(400000) t(i)")
    count = ("SELECT user_id, count(*) FROM d WHERE due_at >= TIMESTAMPTZ '2026-12-10 00:00:00+00' AND user_id IN "
             "({}) GROUP BY user_id")

    def semi(_: int) -> None:
        con.execute(count.format("SELECT user_id FROM r WHERE campaign = 'engagement_digest' AND step = 'digest' "
                                 "AND occurrence = '2026-12-20T00:30:00+00:00'")).fetchall()

    def table(_: int) -> None:
        con.execute("CREATE OR REPLACE TEMP TABLE run_users (user_id text)")
        users = pd.DataFrame({"user_id": ids})  # noqa: F841
        con.execute("INSERT INTO run_users SELECT user_id FROM users")
        con.execute(count.format("SELECT user_id FROM run_users")).fetchall()

    return {"semi-join with the snapshot table": median_ms(semi, runs), "users as a TEMP table": median_ms(table, runs)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=8)
    runs = ap.parse_args().runs
    for name, f in (("snapshot insert of 80,000 (ms)", snapshot_insert), ("small inserts (ms)", small_inserts),
                    ("caps' counts of 75,000 users (ms)", caps_counts)):
        print(name, f(runs), flush=True)


if __name__ == "__main__":
    main()
