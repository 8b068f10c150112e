"""Benchmark: one occurrence of ~200k recipients on a PostgreSQL ledger, decided and sent by 1, 2 and 4 workers.

    python bench/workers.py [--users 200000] [--runs 2] [--batch-size 5000] [--workers 1,1p,2,4,2pool]
                            [--pg postgresql://...]

Each run starts from an empty ledger schema and goes through the real flow (`runtime.flows.run_step`) against the
Prefect API in the environment, or a `prefect server start` process the script starts. `1` is the default path
(this process decides every batch); `1p` is one `camp-batch-worker` process (the parallel path's overhead); `2`, `4`
are that many worker processes claiming batches from camp_batches; `2pool`, `4pool` are that many flow runs on a
Prefect process work pool ([runtime] work_pool), taken by as many `prefect worker start` processes the script
starts, with the run's own process claiming beside them. The warehouse is a DuckDB file (read once, by
the parent: workers read the snapshot from the ledger). The campaign has a tight budget, so every run is checked:
each recipient decided once (ledger rows = audience, keys unique), the budget used to the last send and never
beyond. Medians of --runs; the speed-up is against `1` measured in the same invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from bench.run import AS_OF, fresh_ledger, plan_of, start_server, workspace  # noqa: E402
from runtime.demo_data import make_shop  # noqa: E402
from runtime.warehouse import connect  # noqa: E402

CAMPAIGN = '''
campaign bench_all "全员上新通知" {
  who member_level in ("normal", "silver", "gold")
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "bench/push.j2"
  how
    step touch: notify where
  how much
    budget BUDGET CNY total
    cost push 0.01 CNY
}
'''


def check(pg: str, schema: str, audience: int, budget: Decimal) -> dict:
    """Every recipient decided once; the budget used exactly."""
    wh = connect(pg)
    try:
        n, keys = wh.conn.execute(f"SELECT count(*), count(DISTINCT idempotency_key) FROM {schema}.camp_deliveries"
                                  ).fetchone()
        spent = wh.conn.execute(f"SELECT coalesce(sum(cost), 0) FROM {schema}.camp_deliveries WHERE status = 'sent'"
                                ).fetchone()[0]
        workers = wh.conn.execute(f"SELECT count(DISTINCT worker) FROM {schema}.camp_batches").fetchone()[0]
    finally:
        wh.close()
    assert n == keys == audience, (n, keys, audience)
    assert Decimal(spent) == budget, (spent, budget)
    return {"decided": n, "spent": str(spent), "workers_seen": workers}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument("--workers", default="1,1p,2,4")
    ap.add_argument("--pg", default=os.environ.get("CAMP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"))
    args = ap.parse_args()
    from runtime import flows
    from runtime.workers import spread

    server = start_server() if not os.environ.get("PREFECT_API_URL") else None
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        budget = Decimal(args.users // 200)  # about half of the push-consenting users' sends at 0.01 CNY
        root = workspace(tmp, CAMPAIGN.replace("BUDGET", str(budget)))
        data_url = f"duckdb:///{tmp / 'shop.duckdb'}"
        make_shop(data_url, args.users, seed=1, orders_base=1, visits_base=1)
        plan = plan_of(root, "postgres")
        times: dict[str, list[float]] = {}
        out: dict = {}
        configs = args.workers.split(",")
        pool = _pool_workers(max((int(c[:-4]) for c in configs if c.endswith("pool")), default=0))
        for r in range(args.runs):
            for i, cfg in enumerate(configs):
                url = fresh_ledger("postgres", tmp, args.pg, 100 + i)
                n = 1 if cfg == "1p" else int(cfg.removesuffix("pool"))
                t0 = time.perf_counter()
                with flows.run_settings():
                    if cfg == "1p":  # the parallel path with one worker process: run_step takes it for n > 1 only
                        summary = _one_worker(spread, plan, data_url, url, args.batch_size)
                    else:
                        summary = flows.run_step(plan.model_dump(mode="json"), data_url, url, AS_OF.isoformat(),
                                                 False, args.batch_size, {}, None, None, n, 300.0,
                                                 pool.name if cfg.endswith("pool") else None, 60.0)
                times.setdefault(cfg, []).append(time.perf_counter() - t0)
                out[cfg] = {"audience": summary["audience"], "sent": summary["statuses"].get("sent", 0),
                            **check(args.pg, f"camp_bench_run_{100 + i}", summary["audience"], budget)}
                print(f"run {r + 1}, workers {cfg}: {times[cfg][-1]:.1f} s {out[cfg]}", flush=True)
        base = statistics.median(times["1"]) if "1" in times else None
        for cfg in configs:
            med = statistics.median(times[cfg])
            out[cfg] |= {"wall_s": round(med, 1), "runs_s": [round(x, 1) for x in times[cfg]],
                         "speed_up": round(base / med, 2) if base else None}
        print(json.dumps({"users": args.users, "batch_size": args.batch_size, "results": out}, indent=1))
        pool.stop()
        wh = connect(args.pg)
        for i in range(len(configs)):
            wh.execute(f"DROP SCHEMA IF EXISTS camp_bench_run_{100 + i} CASCADE")
        wh.close()
    if server is not None:
        server.terminate()


class _Pool:
    """A Prefect process work pool and `prefect worker start` processes serving it (none: name None)."""

    def __init__(self, name: str | None, procs: list):
        self.name, self.procs = name, procs

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait(30)


def _pool_workers(n: int) -> _Pool:
    """`n` Prefect workers on the process pool `camp-bench-pool` (made if missing), polling every second."""
    import subprocess

    if n == 0:
        return _Pool(None, [])
    prefect = str(Path(sys.executable).parent / "prefect")
    env = {**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "1"}
    subprocess.run([prefect, "work-pool", "create", "camp-bench-pool", "--type", "process", "--overwrite"], env=env,
                   check=True, capture_output=True)
    return _Pool("camp-bench-pool", [subprocess.Popen([prefect, "worker", "start", "--pool", "camp-bench-pool",
                                                       "--type", "process", "--name", f"bench-{i}"], env=env,
                                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                                     for i in range(n)])


def _one_worker(spread, plan, data_url: str, url: str, batch_size: int) -> dict:
    """run_step's stages with the batches handed to one worker process (what --workers N does for N > 1)."""
    from datetime import datetime

    from runtime import engine
    from runtime.context import Run
    from runtime.ledger import open_ledger
    from runtime.recover import recover
    from runtime.snapshot import snapshot
    from runtime.summary import summarize

    lg = open_ledger(url)
    run = Run(plan, lg, data_url, datetime.fromisoformat(AS_OF.isoformat()))
    try:
        engine.start(run)
        lo, hi = snapshot(run)
        recover(run)
        spread(run, lo, hi, batch_size, 1, url, {})
        summary = summarize(run, hi - lo)
        engine.finish(run, summary)
        return summary
    finally:
        run.close()
        lg.close()


if __name__ == "__main__":
    main()
