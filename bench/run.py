"""Benchmark: one campaign step with ~1M recipients end to end to the outbox, on DuckDB and on PostgreSQL.

    python bench/run.py [--users 1000000] [--runs 3] [--batch-size 10000] [--pg postgresql://...] [--only duckdb]

Each run starts from an empty ledger (a rerun of a finished occurrence would send nothing) and goes
through the real Prefect flow (`runtime.flows.run_step`) against the Prefect API in the environment,
or else a `prefect server start` process it starts itself (as in production), before timing. The same work is also run without Prefect
(the engine functions called in the same order), so Prefect's share is measured two ways:
flow time minus camp's own stage times, and flow time minus the bare run. Medians of --runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from compiler.check import check_workspace  # noqa: E402
from compiler.step_plan import build_plan  # noqa: E402
from compiler.workspace import load_workspace  # noqa: E402
from runtime import engine  # noqa: E402
from runtime.context import Run  # noqa: E402
from runtime.demo_data import make_shop  # noqa: E402
from runtime.ledger import open_ledger  # noqa: E402
from runtime.warehouse import connect  # noqa: E402

AS_OF = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
CAMPAIGN = '''
campaign bench_all "全员上新通知" {
  who member_level in ("normal", "silver", "gold")
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "bench/push.j2"
  how
    step touch: notify where
}
'''
TEMPLATE = "{{ user.name | default('朋友') }}，{{ campaign.title }}：新品已上架"


def workspace(tmp: Path, campaign: str = CAMPAIGN, template: str = TEMPLATE) -> Path:
    """A workspace with the bundled schema and segments, one campaign file and its template bench/push.j2."""
    root = tmp / "ws"
    root.mkdir()
    (root / "camp.toml").write_text('[workspace]\nname = "bench"\ntimezone = "Asia/Shanghai"\ncurrency = "CNY"\n',
                                    encoding="utf-8")
    for name in ("schema.camp", "segments.camp"):
        (root / name).write_text((ROOT / "campaigns" / name).read_text(encoding="utf-8"), encoding="utf-8")
    (root / "bench.camp").write_text(campaign, encoding="utf-8")
    (root / "templates" / "bench").mkdir(parents=True)
    (root / "templates" / "bench" / "push.j2").write_text(template, encoding="utf-8")
    return root


def plan_of(root: Path, dialect: str):
    ws = load_workspace(root)
    program = check_workspace(ws).program
    return build_plan(program, program.campaigns["bench_all"], AS_OF, dialect, ws.template_dir, None, "bench")


def fresh_ledger(engine_name: str, tmp: Path, pg: str, i: int) -> str:
    if engine_name == "duckdb":
        path = tmp / f"ledger-{i}.duckdb"
        path.unlink(missing_ok=True)
        return f"duckdb:///{path}"
    schema = f"camp_bench_run_{i}"
    wh = connect(pg)
    wh.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    wh.execute(f"CREATE SCHEMA {schema}")
    wh.close()
    return f"{pg}?options=-csearch_path%3D{schema}"


def bare(plan, data_url: str, ledger_url: str, batch: int) -> float:
    """The same stages without Prefect."""
    t0 = time.perf_counter()
    lg = open_ledger(ledger_url)
    run = Run(plan, lg, data_url, AS_OF)
    engine.run_through(run, batch)
    lg.close()
    return time.perf_counter() - t0


def start_server():
    import socket
    import subprocess
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tempfile.mkdtemp(prefix="camp-bench-prefect-")
    env = {**os.environ, "PREFECT_HOME": home}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api"
    for _ in range(1000):  # a loaded machine starts the server slowly
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                break
        except OSError:
            time.sleep(0.3)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    os.environ["PREFECT_API_URL"] = url
    ctx = temporary_settings(updates={PREFECT_API_URL: url})
    ctx.__enter__()
    _KEEP.append(ctx)  # a dropped generator context is closed by the collector, which undid the settings
    return proc


_KEEP: list = []


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--pg", default=os.environ.get("CAMP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--only", choices=["duckdb", "postgres"])
    args = ap.parse_args()
    from prefect import flow

    from runtime import flows

    @flow
    def warm() -> int:
        return 1

    server = None
    if not os.environ.get("PREFECT_API_URL"):  # a real Prefect server, as in production
        server = start_server()
    warm()
    results = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        root = workspace(tmp)
        for name in ("duckdb", "postgres"):
            if args.only and name != args.only:
                continue
            data_url = f"duckdb:///{tmp / 'shop.duckdb'}" if name == "duckdb" else args.pg
            t0 = time.perf_counter()
            make_shop(data_url, args.users, seed=1, orders_base=1, visits_base=1)
            made = time.perf_counter() - t0
            plan = plan_of(root, name)
            flow_times, bare_times, stage_rows, sent = [], [], [], 0
            for i in range(args.runs):
                url = fresh_ledger(name, tmp, args.pg, 2 * i)
                t0 = time.perf_counter()
                with flows.run_settings():
                    summary = flows.run_step(plan.model_dump(mode="json"), data_url, url, AS_OF.isoformat(), False,
                                             args.batch_size, {})
                flow_times.append(time.perf_counter() - t0)
                stage_rows.append(summary["timings"])
                sent = summary["statuses"].get("sent", 0)
                audience = summary["audience"]
                bare_times.append(bare(plan, data_url, fresh_ledger(name, tmp, args.pg, 2 * i + 1),
                                       args.batch_size))
            flow_med, bare_med = statistics.median(flow_times), statistics.median(bare_times)
            stages = {k: round(statistics.median(r.get(k, 0) for r in stage_rows), 2) for k in stage_rows[0]}
            own = sum(stages.values())
            results[name] = {
                "users": args.users, "audience": audience, "sent": sent, "batches": -(-audience // args.batch_size),
                "data_setup_s": round(made, 1), "flow_s": round(flow_med, 2), "bare_s": round(bare_med, 2),
                "stages_s": stages, "prefect_share_by_stages": round((flow_med - own) / flow_med, 3),
                "prefect_share_vs_bare": round((flow_med - bare_med) / flow_med, 3),
                "flow_runs_s": [round(x, 2) for x in flow_times], "bare_runs_s": [round(x, 2) for x in bare_times]}
            print(json.dumps({name: results[name]}, indent=1), flush=True)
            if name == "postgres":
                wh = connect(args.pg)
                for i in range(2 * args.runs):
                    wh.execute(f"DROP SCHEMA IF EXISTS camp_bench_run_{i} CASCADE")
                wh.close()
    if server is not None:
        server.terminate()


if __name__ == "__main__":
    main()
