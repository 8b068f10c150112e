"""Benchmark: `camp simulate` of 31 days of the bundled campaigns (campaigns/) on a 100k-user demo shop.

    python bench/simulate.py [--users 100000] [--runs 3] [--from 2026-12-01 --to 2026-12-31]

The bundled workspace is copied to a temporary folder with a fresh demo shop (`camp demo init --users N`, DuckDB)
and no ledger; each run is the real command in a fresh process (`camp simulate ... --format json`), timed from start
to exit. Prints each run's seconds, the median, and what the simulation played and sent.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAMP = Path(sys.executable).parent / "camp"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--from", dest="start", default="2026-12-01")
    ap.add_argument("--to", dest="end", default="2026-12-31")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        ws = Path(d) / "ws"
        shutil.copytree(ROOT / "campaigns", ws)
        for stale in ("shop.duckdb", "ledger.duckdb"):
            (ws / stale).unlink(missing_ok=True)
        subprocess.run([str(CAMP), "demo", "init", "--users", str(args.users)], cwd=ws, check=True,
                       capture_output=True)
        times, doc = [], {}
        for _ in range(args.runs):
            t0 = time.perf_counter()
            out = subprocess.run([str(CAMP), "simulate", ".", "--from", args.start, "--to", args.end, "--format",
                                  "json"], cwd=ws, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            if out.returncode != 0:
                sys.exit(out.stderr)
            doc = json.loads(out.stdout)
            print(f"run: {times[-1]:.1f} s", flush=True)
        sent = sum(r["sent"] for r in doc["daily"])
        decided = sum(sum(v for k, v in r.items() if k not in ("day", "campaign")) for r in doc["daily"])
        print(json.dumps({"users": args.users, "period": [args.start, args.end], "runs_s": [round(t, 1) for t in times],
                          "median_s": round(statistics.median(times), 1), "played": doc["runs"], "decided": decided,
                          "sent": sent, "pressure_7d": doc["pressure"]["per_7_days"]}, indent=1))


if __name__ == "__main__":
    main()
