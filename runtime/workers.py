"""Parallel workers for one occurrence (PostgreSQL ledger): the `camp-batch-worker` flow and the processes or work
pool that run it.

    camp-step (parent)                       snapshot in the ledger, then spread():
      ├─ camp_batches: the run's batches, open         (runtime.ledger.batches.list_batches)
      ├─ N workers, each a `camp-batch-worker` flow run on the same Prefect API:
      │    processes `python -m runtime.workers` of this host, or ([runtime] work_pool) flow runs of the
      │    `camp-batch-worker/batches@POOL` deployment, taken by that pool's Prefect workers on any host;
      │    claim -> decide + send -> done, until none   (runtime.claims.work_batches)
      └─ drain: batches a killed worker held are taken once their lease ends; counts of every batch -> summary
         (on a work pool the parent claims batches beside its workers once they are listed: a pool whose
         workers are busy or gone delays the occurrence by `start_wait`, no more)

A worker is handed the ledger URL, the run id and the channel settings of camp.toml; the plan, the as-of time and
the recipients it reads from the ledger (camp_runs, camp_plans, camp_recipients), never from the parent's memory,
so it runs as well on another host: the pool's deployment needs no copy of the workspace, only camp installed
where the pool's workers run. A DuckDB ledger takes one writer process: `check_workers` refuses more than one
worker there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast

from prefect import flow, get_run_logger

from compiler.plan import StepPlan
from runtime.claims import add_results, work_batches
from runtime.context import Run
from runtime.ledger import Ledger, open_ledger
from runtime.ledger.batches import batch_states, list_batches, results
from runtime.ledger.status import BatchState

if TYPE_CHECKING:
    from uuid import UUID

    from prefect.deployments.runner import RunnerDeployment

DEFAULT_LEASE_S = 300.0  # [runtime] lease in camp.toml: how long a claim holds before another worker may take it
START_WAIT_S = 120.0  # [runtime] start_wait: how long the parent waits for every worker to be up before it lists
# the batches anyway
POLL_S = 0.25  # how often a waiting parent or pool worker looks again


class WorkersError(ValueError):
    """More than one worker where the ledger cannot have them (a DuckDB file), or a bad count."""


def check_workers(workers: int, ledger_url: str) -> None:
    """Raise WorkersError unless `workers` processes may share this ledger."""
    from runtime.ledger.backend import backend_for
    from runtime.warehouse import dialect_of

    if workers < 1:
        raise WorkersError(f"workers must be at least 1, not {workers}")
    if workers > 1 and backend_for(dialect_of(ledger_url)).one_writer:
        raise WorkersError(f"{workers} workers need a PostgreSQL ledger: a DuckDB ledger file takes one writer "
                           "process (set [ledger] url to postgresql://..., or run with one worker)")


def _run_of(lg: Ledger, run_id: str, data_url: str, channels: dict) -> Run:
    """The parent's run, rebuilt from the ledger: its plan (camp_plans) and as-of time (camp_runs)."""
    row = lg.rows("SELECT plan_hash, as_of FROM camp_runs WHERE run_id = ?", (run_id,))
    if not row:
        raise LookupError(f"no run {run_id} in the ledger: a worker serves a run `camp run` started")
    plan_hash, as_of = row[0]
    plan = StepPlan.model_validate_json(lg.plan_text(plan_hash))
    as_of = as_of if isinstance(as_of, datetime) else datetime.fromisoformat(str(as_of))
    return Run(plan, lg, data_url, as_of, False, channels, run_id=run_id, plan_hash=plan_hash)


@flow(name="camp-batch-worker", log_prints=False, validate_parameters=False, persist_result=False)
def batch_worker(ledger_url: str, run_id: str, data_url: str, worker: str, channels: dict | None = None,
                 lease: float = DEFAULT_LEASE_S, gate: str | None = None, wait_listed: float = 0.0) -> int:
    """Claim, decide and send batches of run `run_id` until none is left; how many batches this worker did.
    With `gate` (a file path, from `spread`'s processes): say this worker is up by creating it, then wait for the
    parent's go on stdin (a line, or its end), so that the workers start claiming together. With `wait_listed`
    (a pool worker, whose flow run the parent sees start): wait at most that many seconds for the run's batches
    to be listed."""
    lg = open_ledger(ledger_url)
    run = _run_of(lg, run_id, data_url, channels or {})
    try:
        if gate:
            Path(gate).touch()
            sys.stdin.readline()
        end = time.monotonic() + wait_listed
        while not batch_states(lg, run_id) and time.monotonic() < end:
            time.sleep(POLL_S)
        done = work_batches(run, worker, lease)
        get_run_logger().info("worker %s: %s batches of run %s", worker, done, run_id)
        return done
    finally:
        run.close()
        lg.close()


def spread(run: Run, lo: int, hi: int, batch_size: int, workers: int, ledger_url: str, channels: dict,
           lease: float = DEFAULT_LEASE_S, work_pool: str | None = None, start_wait: float = START_WAIT_S) -> None:
    """Users seq lo..hi-1 of `run` decided and sent by `workers` workers: processes of this host, or flow runs on
    the Prefect work pool `work_pool`; returns when every batch is done, with the workers' counts added to run's
    counters.

    The batches are listed once every worker is up (each has started its flow run), or after `start_wait`
    seconds: a worker that started first would otherwise take every batch while the others still load Prefect."""
    lg = run.ctx.ledger
    spec = {"ledger_url": ledger_url, "run_id": run.run_id, "data_url": run.ctx.data_url, "channels": channels,
            "lease": lease}
    if work_pool:
        _on_pool(run, lo, hi, batch_size, workers, spec, work_pool, start_wait)
    else:
        _in_processes(run, lo, hi, batch_size, workers, spec, start_wait)
        _drain(run, lease)
    add_results(run, results(lg, run.run_id))


def _in_processes(run: Run, lo: int, hi: int, batch_size: int, workers: int, spec: dict, start_wait: float) -> None:
    """`workers` processes of this host, each a `camp-batch-worker` flow run; returns when they have ended."""
    env = {**os.environ, **_prefect_environment()}
    with tempfile.TemporaryDirectory(prefix="camp-workers-") as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(spec), encoding="utf-8")
        procs = []
        for i in range(workers):
            log = (Path(tmp) / f"worker-{i}.log").open("w", encoding="utf-8")
            procs.append((subprocess.Popen([sys.executable, "-m", "runtime.workers", str(path), f"{run.run_id}-w{i}",
                                            str(Path(tmp) / f"worker-{i}.up")],
                                           env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.PIPE),
                          log, Path(tmp) / f"worker-{i}.log"))
        _wait_up([(proc, Path(tmp) / f"worker-{i}.up") for i, (proc, _, _) in enumerate(procs)], start_wait)
        list_batches(run.ctx.ledger, run.run_id, lo, hi, batch_size)
        for proc, _, _ in procs:  # go
            try:
                assert proc.stdin is not None
                proc.stdin.write(b"go\n")
                proc.stdin.close()
            except OSError:  # it has ended already: said below
                pass
        for proc, log, where in procs:
            rc = proc.wait()
            log.close()
            if rc != 0:  # its batches are taken over below; say why it stopped
                tail = where.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
                _log(f"worker {proc.pid} ended with {rc}; its batches are taken over: {' | '.join(tail)}")


def _on_pool(run: Run, lo: int, hi: int, batch_size: int, workers: int, spec: dict, pool: str,
             start_wait: float) -> None:
    """`workers` flow runs of the pool's `camp-batch-worker` deployment, taken by the pool's Prefect workers. The
    batches are listed once each flow run is running (or has ended), or after `start_wait`; then this process
    claims batches too, until every batch is done. Flow runs no pool worker took by then are cancelled; the
    running ones find nothing left and end."""
    from prefect.client.orchestration import get_client

    deployment = pool_deployment(pool)
    with get_client(sync_client=True) as client:
        ids = [client.create_flow_run_from_deployment(
            deployment, parameters={**spec, "worker": f"{run.run_id}-w{i}", "wait_listed": start_wait + 60.0},
            tags=["camp", f"camp-run:{run.run_id}"]).id for i in range(workers)]
        t0 = time.monotonic()
        end = t0 + start_wait
        while time.monotonic() < end and not all(_started(client.read_flow_run(i).state) for i in ids):
            time.sleep(POLL_S)
        _log(f"{sum(_started(client.read_flow_run(i).state) for i in ids)} of {workers} worker flow runs on pool "
             f"{pool} started in {time.monotonic() - t0:.1f} s; batches listed", info=True)
        list_batches(run.ctx.ledger, run.run_id, lo, hi, batch_size)
        _drain(run, float(spec["lease"]))
        _settle(client, ids)


def _started(state) -> bool:
    return state is not None and (state.is_running() or state.is_final())


def _settle(client, ids: list) -> None:
    """After every batch is done: cancel the worker flow runs no pool worker started, give the running ones a
    minute to end (they find no batch left), and say which failed."""
    from prefect.states import Cancelled

    end = time.monotonic() + 60.0
    while True:
        states = {i: client.read_flow_run(i).state for i in ids}
        for i, s in states.items():
            if s is not None and (s.is_scheduled() or s.is_pending()):
                client.set_flow_run_state(i, Cancelled(message="every batch was done before a worker took it"),
                                          force=True)
        waiting = [i for i, s in states.items() if s is not None and s.is_running()]
        if not waiting or time.monotonic() > end:
            break
        time.sleep(POLL_S)
    for i, s in states.items():
        if s is not None and s.is_final() and not s.is_completed() and not s.is_cancelled():
            _log(f"worker flow run {i} ended {s.name}: its batches were taken over")


class PoolError(WorkersError):
    """The work pool is not on the Prefect server."""


def check_pool(pool: str) -> None:
    """Raise PoolError unless the Prefect server has work pool `pool`."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            raise PoolError(f"[runtime] work_pool: no work pool {pool!r} on the Prefect server; create it with "
                            f"`prefect work-pool create {pool} --type process` and start its workers with "
                            f"`prefect worker start --pool {pool}`") from None


def pool_deployment(pool: str) -> UUID:
    """The id of the `camp-batch-worker` deployment on work pool `pool` (`batches@POOL`), made or updated now. It
    carries no workspace: a worker is handed what it needs as parameters and reads the rest from the ledger."""
    from prefect.types.entrypoint import EntrypointType

    from runtime.deploy import deployment_name

    # both are sync here (Prefect's async_dispatch: called outside an event loop); the type stubs say either
    dep = cast("RunnerDeployment", batch_worker.to_deployment(
        name=deployment_name(pool, "batches"), tags=["camp", "camp-batch-worker"],
        entrypoint_type=EntrypointType.MODULE_PATH,
        description="Batches of camp runs with [runtime] workers > 1 on this pool (made by camp when a run starts "
                    "its workers)"))
    return cast("UUID", dep.apply(work_pool_name=pool))


def _wait_up(procs: list[tuple[subprocess.Popen, Path]], start_wait: float) -> None:
    """Until every worker has created its gate file or ended, for at most `start_wait` seconds."""
    end = time.monotonic() + start_wait
    while time.monotonic() < end and not all(up.exists() or proc.poll() is not None for proc, up in procs):
        time.sleep(0.05)


def _drain(run: Run, lease: float) -> None:
    """Batches the workers left (a killed worker's claim): done here once their lease has ended."""
    lg = run.ctx.ledger
    mine = Run(run.ctx.plan, lg, run.ctx.data_url, run.ctx.as_of, False, run.caches.channels.config,
               run_id=run.run_id, plan_hash=run.ctx.plan_hash, channels=run.caches.channels)
    while True:
        work_batches(mine, f"{run.run_id}-parent", lease)
        states = batch_states(lg, run.run_id)
        if set(states) <= {BatchState.DONE}:
            return
        time.sleep(min(1.0, lease))


def _prefect_environment() -> dict[str, str]:
    """This process's Prefect settings (the API URL `camp run` started or was given), for the workers."""
    from prefect.settings import get_current_settings

    return get_current_settings().to_environment_variables(exclude_unset=True)


def _log(message: str, info: bool = False) -> None:
    try:
        logger = get_run_logger()
        (logger.info if info else logger.warning)(message)
    except Exception:  # noqa: BLE001 (outside a flow run: stderr)
        print(f"camp: {message}", file=sys.stderr)


def main(argv: list[str]) -> int:
    """`python -m runtime.workers SPEC.json WORKER [GATE]`: one worker process, one `camp-batch-worker` flow run."""
    from runtime.flows import run_settings

    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    with run_settings():
        batch_worker(spec["ledger_url"], spec["run_id"], spec["data_url"], argv[1], spec["channels"], spec["lease"],
                     argv[2] if len(argv) > 2 else None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
