"""Batch workers on a Prefect work pool (camp.toml [runtime] work_pool, runtime.workers._on_pool): a real Prefect
server, a process work pool served by real `prefect worker start` processes, a PostgreSQL ledger and a real
`camp run`. The pool's workers run the `camp-batch-worker` flow runs the occurrence submits, each in its own
process started by Prefect; every recipient is decided once and the budget is spent to the last send. A pool with
no worker delays the run by `start_wait` only (the parent decides everything, the flow runs are cancelled); a pool
the server does not have fails the run before anything is decided, with what to do."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from runtime.demo_data import make_shop
from tests.conftest import require_postgres
from tests.runtime.conftest import BIN, camp, make_workspace, pg_schema
from tests.runtime.test_workers import CAMPAIGN, DAY1, POLICY, kill_a_worker_mid_batch

USERS = 6_000


def _shop(root: Path, pool: str, start_wait: str, ledger: str) -> Path:
    root = make_workspace(root, {"many.camp": CAMPAIGN}, policy=POLICY, templates={"t/sms.j2": "sms {{ user.id }}"},
                          toml=f'[runtime]\nworkers = 2\nwork_pool = "{pool}"\nstart_wait = "{start_wait}"\n')
    toml = root / "camp.toml"  # workers = 2 in camp.toml asks for a PostgreSQL ledger there (E021)
    toml.write_text(toml.read_text().replace('"duckdb:///ledger.duckdb"', f'"{ledger}"'))
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", USERS, seed=5)
    return root


def _pool(env: dict, name: str) -> str:
    subprocess.run([str(BIN / "prefect"), "work-pool", "create", name, "--type", "process"], env=env, check=True,
                   capture_output=True, timeout=120)
    return name


@pytest.fixture
def pool_with_workers(prefect_env, tmp_path):
    """A process pool and two `prefect worker start` processes serving it (polling every second)."""
    pool = _pool(prefect_env, f"camp-batches-{os.getpid()}-{tmp_path.name}"[:60])
    env = {**prefect_env, "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "5"}
    procs = []
    for i in range(2):
        log = (tmp_path / f"prefect-worker-{i}.log").open("w")
        procs.append((subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process",
                                        "--name", f"{pool}-{i}"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                       cwd=tmp_path, start_new_session=True), log))
    yield pool
    for proc, log in procs:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _rows(pg, schema: str, sql: str, params=()) -> list[tuple]:
    return pg.conn.execute(sql.replace("camp_", f"{schema}.camp_"), params).fetchall()


def _worker_runs(env: dict, run_id: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as c:
        return c.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"camp-run:{run_id}"])))


def _decided_once(pg, schema: str) -> tuple[str, int, list[tuple]]:
    """The run's id, its audience and its deliveries, after checking each recipient was decided exactly once."""
    occ, audience = _rows(pg, schema, "SELECT occurrence, recipients FROM camp_snapshots")[-1]
    rows = _rows(pg, schema, "SELECT user_id, status FROM camp_deliveries WHERE occurrence = %s", (occ,))
    users = [u for u, _ in rows]
    snapshot = {u for (u,) in _rows(pg, schema, "SELECT user_id FROM camp_recipients WHERE occurrence = %s", (occ,))}
    assert len(users) == len(set(users)) == audience and set(users) == snapshot
    assert not {s for _, s in rows} & {"pending", "dispatching"}
    [(run_id,)] = _rows(pg, schema, "SELECT run_id FROM camp_runs")
    return run_id, audience, rows


def test_the_pools_workers_share_the_batches_and_each_recipient_is_decided_once(tmp_path, prefect_env,
                                                                                   pool_with_workers):
    pg = require_postgres()
    schema = f"camp_pool_{os.getpid()}"
    with pg_schema(schema) as ledger:
        shop = _shop(tmp_path / "shop", pool_with_workers, "90s", ledger)
        out = camp("run", "many.camp", "--as-of", DAY1, "--no-progress", "--batch-size", "100",
                   cwd=shop, env=prefect_env, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]
        run_id, audience, rows = _decided_once(pg, schema)
        assert audience > 3000  # the budget binds: 150 CNY at 0.05 CNY is 3,000 sends, exactly
        assert sum(s == "sent" for _, s in rows) == 3000
        done = dict(_rows(pg, schema, "SELECT worker, count(*) FROM camp_batches WHERE state = 'done' GROUP BY 1"))
        assert sum(done.values()) == -(-audience // 100)
        by_pool = {w: n for w, n in done.items() if w.startswith(f"{run_id}-w")}
        assert by_pool, done  # the pool's workers took batches (the parent may have taken some too)
        runs = _worker_runs(prefect_env, run_id)
        assert len(runs) == 2 and {r.work_pool_name for r in runs} == {pool_with_workers}
        assert all(r.state is not None and r.state.is_completed() for r in runs), [r.state for r in runs]


def test_a_pool_without_workers_delays_the_run_by_start_wait_only(tmp_path, prefect_env):
    pg = require_postgres()
    pool = _pool(prefect_env, f"camp-idle-{os.getpid()}")
    schema = f"camp_idle_pool_{os.getpid()}"
    with pg_schema(schema) as ledger:
        shop = _shop(tmp_path / "shop", pool, "3s", ledger)
        t0 = time.monotonic()
        out = camp("run", "many.camp", "--as-of", DAY1, "--no-progress", "--batch-size", "500",
                   cwd=shop, env=prefect_env, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "Traceback" not in out.stderr
        run_id, _, rows = _decided_once(pg, schema)
        assert sum(s == "sent" for _, s in rows) == 3000
        workers = {w for (w,) in _rows(pg, schema, "SELECT DISTINCT worker FROM camp_batches")}
        assert workers == {f"{run_id}-parent"}
        runs = _worker_runs(prefect_env, run_id)
        assert len(runs) == 2 and all(r.state is not None and r.state.is_cancelled() for r in runs)
        assert time.monotonic() - t0 < 300


def test_a_pool_the_server_does_not_have_fails_the_run_before_deciding(tmp_path, prefect_env):
    pg = require_postgres()
    schema = f"camp_no_pool_{os.getpid()}"
    with pg_schema(schema) as ledger:
        shop = _shop(tmp_path / "shop", "no-such-pool", "3s", ledger)
        out = camp("run", "many.camp", "--as-of", DAY1, "--no-progress", cwd=shop,
                   env=prefect_env, timeout=300)
        assert out.returncode != 0
        assert "no work pool 'no-such-pool'" in out.stderr and "prefect work-pool create" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
        assert _rows(pg, schema, "SELECT count(*) FROM camp_deliveries") == [(0,)]


def test_a_pool_worker_killed_mid_batch_leaves_its_batch_to_another(tmp_path, prefect_env, pool_with_workers):
    """The flow run process a Prefect worker started for a batch worker, SIGKILLed while the receiver holds one of
    its requests: its batch is completed by another (each message accepted once), and Prefect has the flow run
    crashed."""
    runs: dict[str, str] = {}

    def pid_of(worker: str) -> int:
        if not runs:  # worker name -> flow run id, from the run's flow runs
            run_id = worker.rsplit("-w", 1)[0]
            runs.update({r.parameters["worker"]: str(r.id) for r in _worker_runs(prefect_env, run_id)})
        wanted = f"PREFECT__FLOW_RUN_ID={runs[worker]}".encode()
        for d in Path("/proc").iterdir():
            try:
                if d.name.isdigit() and wanted in (d / "environ").read_bytes().split(b"\0"):
                    return int(d.name)
            except OSError:
                continue
        raise AssertionError(f"no process runs the flow run of worker {worker}")

    killed = kill_a_worker_mid_batch(tmp_path, prefect_env, f'work_pool = "{pool_with_workers}"\nstart_wait = "90s"\n',
                                     ["--workers", "2"], pid_of)
    deadline = time.monotonic() + 60  # the Prefect worker reports the crash when it sees its process end
    while True:
        states = {r.parameters["worker"]: r.state for r in _worker_runs(prefect_env, killed.rsplit("-w", 1)[0])}
        if states[killed] is not None and states[killed].is_final() or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert states[killed] is not None and states[killed].is_crashed(), states
