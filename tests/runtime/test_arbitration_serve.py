"""The proof of arbitration between deployed campaigns, with a real `prefect server` and `camp serve`:
two campaigns of one exclusive group, due in the same minute, with overlapping audiences (gold members
are in both), their flow runs started in both orders: the lower-priority run started and Running first,
then the higher one; and the reverse. The higher priority wins every shared user every time (ledger:
high's deliveries sent, low's suppressed `exclusive:G held by HIGH`).

PostgreSQL ledger: PAIRS independent pairs (each its own exclusive group) raced at once, once in each
order, each round on a fresh ledger: 2 x PAIRS races (CAMP_ARB_PAIRS, default 4: 8 races). DuckDB
ledger (`camp serve` runs one flow run at a time): one race in each order. 10 races in all, about 100 s
on a busy 2-core machine. The flow runs are created through the API with the slot as their scheduled
time, as the server's scheduler creates them. With arbitration switched off the first race fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import datetime

import duckdb
import pytest

from tests.conftest import PG_URL, require_postgres
from tests.runtime.conftest import BIN, deployment_of, workspace_name
from tests.runtime.test_arbitration import check_high_won, occurrence, pair_files, recent_slot, workspace

PAIRS = int(os.environ.get("CAMP_ARB_PAIRS", "4"))


def _client(env):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class Session:
        def __enter__(self):
            self.settings = temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]})
            self.settings.__enter__()
            self.client = get_client(sync_client=True).__enter__()
            return self.client

        def __exit__(self, *exc):
            self.client.__exit__(*exc)
            self.settings.__exit__(*exc)

    return Session()


def _serve(ws, env) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "camp"), "serve", str(ws)], cwd=ws, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def _deployments(client, wanted: dict[str, str], serves: list[subprocess.Popen], timeout: float = 90) -> dict:
    """campaign -> deployment id, once `camp serve` has registered them all (`wanted`: campaign -> deployment
    name)."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    names = list(wanted.values())
    campaign = {v: k for k, v in wanted.items()}
    deadline = time.time() + timeout
    while True:
        found = {campaign[d.name]: d.id for d in client.read_deployments(deployment_filter=DeploymentFilter(
            name=DeploymentFilterName(any_=names)))}
        if len(found) == len(names):
            time.sleep(2)  # the runner starts polling for their runs
            return found
        for s in serves:
            assert s.poll() is None, s.stdout.read()
        assert time.time() < deadline, f"deployments not registered: {sorted(set(wanted) - set(found))}"
        time.sleep(0.5)


def _create(client, deployment_id, slot: datetime):
    from prefect.states import Scheduled

    return client.create_flow_run_from_deployment(deployment_id, state=Scheduled(scheduled_time=slot)).id


def _until(client, ids, done, what: str, timeout: float = 300) -> None:
    """Wait until every run satisfies `done`. 300 s: a whole suite on two busy cores once took more than 150 s for
    a race's eight runs to finish (CI, 2026-12-06); nothing here depends on the time but the wait."""
    deadline = time.time() + timeout
    while True:
        states = [client.read_flow_run(i).state for i in ids]
        if all(done(s) for s in states):
            return
        assert not any(s.is_final() and not s.is_completed() for s in states), states
        assert time.time() < deadline, f"{what}: {[s.type for s in states]}"
        time.sleep(0.3)


def _race(client, deps: dict, pairs: list[tuple[str, str]], slot: datetime, low_first: bool,
          requeues: bool = False) -> list:
    """Start the first campaign of every pair, wait until each is Running, then start the other; every
    run of the race, including re-queued ones, finished. Returns the first runs' ids. `requeues` (a DuckDB ledger):
    a lower-priority run started first does not wait in its process, it re-queues itself and completes at once,
    which may be over before it is seen Running."""
    first = [_create(client, deps[low if low_first else high], slot) for high, low in pairs]
    _until(client, first, lambda s: s.is_running() or s.is_final(), "the first runs start")
    if low_first:  # the lower-priority runs really started before the higher ones are created
        states = [client.read_flow_run(i).state for i in first]
        assert all(s.is_running() or (requeues and s.is_completed()) for s in states), [s.type for s in states]
    second = [_create(client, deps[high if low_first else low], slot) for high, low in pairs]
    _until(client, first + second, lambda s: s.is_completed(), "the race ends")
    return first


def _requeued_done(client, workspace: str, campaign: str, slot: datetime) -> None:
    """Wait for the re-queued runs of a DuckDB race (keys workspace:campaign:occurrence:arbitration:N) to complete."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterIdempotencyKey

    keys = [f"{workspace}:{campaign}:{occurrence(slot)}:arbitration:{n}" for n in range(1, 40)]
    deadline = time.time() + 120
    while True:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            idempotency_key=FlowRunFilterIdempotencyKey(any_=keys)))
        if runs and all(r.state.is_completed() for r in runs) and _duck(
                "SELECT 1 FROM camp_runs WHERE campaign = ? AND status = 'finished'", (campaign,)):
            return
        assert time.time() < deadline, [(r.idempotency_key, r.state.type) for r in runs]
        time.sleep(0.5)


_DUCK: dict = {}


def _duck(sql: str, params=()):
    for _ in range(100):  # `camp serve`'s run may hold the file for a moment
        try:
            con = duckdb.connect(str(_DUCK["path"]), read_only=True)
        except duckdb.Error:
            time.sleep(0.2)
            continue
        try:
            return con.execute(sql, params).fetchall()
        except duckdb.CatalogException:  # no run has created the tables yet
            return []
        finally:
            con.close()
    raise AssertionError("the DuckDB ledger stayed locked")


def test_the_higher_priority_wins_every_race_whatever_order_the_flow_runs_start_in(tmp_path, prefect_env):
    pg = require_postgres()
    slot = recent_slot()
    env = {**prefect_env, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    pairs = [(f"p{i}_high", f"p{i}_low") for i in range(PAIRS)]
    files: dict[str, str] = {}
    for i, (high, low) in enumerate(pairs):
        files.update(pair_files(high, low, slot, group=f"g{i}"))
    schemas = [f"camp_arbserve_{os.getpid()}_{n}" for n in range(2)]
    for s in schemas:
        pg.execute(f"DROP SCHEMA IF EXISTS {s} CASCADE")
        pg.execute(f"CREATE SCHEMA {s}")
    pg_ws = workspace(tmp_path / "arb_pg", files, [f"g{i}" for i in range(PAIRS)], users=150)
    toml = (pg_ws / "camp.toml").read_text()
    url = f"{PG_URL}?options=-csearch_path%3D{{}}"
    (pg_ws / "camp.toml").write_text(toml.replace('url = "duckdb:///ledger.duckdb"', f'url = "{url.format(schemas[0])}"'))
    duck_pairs = [("d0_high", "d0_low"), ("d1_high", "d1_low")]
    duck_ws = workspace(tmp_path / "arb_duck", {**pair_files(*duck_pairs[0], slot, group="g0"),
                                                **pair_files(*duck_pairs[1], slot, group="g1")}, ["g0", "g1"],
                        users=150)
    _DUCK["path"] = duck_ws / "ledger.duckdb"
    t0 = time.monotonic()
    serves = [_serve(pg_ws, env), _serve(duck_ws, env)]
    won = []
    try:
        with _client(env) as client:
            names = {n: deployment_of(ws, n).split("/", 1)[1] for ws, ps in ((pg_ws, pairs), (duck_ws, duck_pairs))
                     for p in ps for n in p}
            deps = _deployments(client, names, serves)
            print(f"{time.monotonic() - t0:.1f}s deployments registered")
            # DuckDB, lower priority first: it re-queues itself while the higher one runs, then loses
            _race(client, deps, duck_pairs[:1], slot, low_first=True, requeues=True)
            print(f"{time.monotonic() - t0:.1f}s duckdb race 1")
            # PostgreSQL, round 1: every lower-priority run first (each waits in its process)
            _race(client, deps, pairs, slot, low_first=True)
            print(f"{time.monotonic() - t0:.1f}s pg round 1")
            for high, low in pairs:
                rows = pg.rows(f"SELECT campaign, user_id, status, reason FROM {schemas[0]}.camp_deliveries "
                               f"WHERE campaign IN ('{high}', '{low}')")
                won.append(("pg low first", high, check_high_won(rows, high, low, f"g{pairs.index((high, low))}")))
                waited = pg.rows(f"SELECT summary FROM {schemas[0]}.camp_runs WHERE campaign = '{low}'")
                assert len(waited) == 1 and '"not_waited_for": []' in waited[0][0]
            # round 2, on a fresh ledger (the flow reads camp.toml when it runs): every higher one first
            (pg_ws / "camp.toml").write_text(toml.replace('url = "duckdb:///ledger.duckdb"',
                                                          f'url = "{url.format(schemas[1])}"'))
            _race(client, deps, pairs, slot, low_first=False)
            print(f"{time.monotonic() - t0:.1f}s pg round 2")
            for i, (high, low) in enumerate(pairs):
                rows = pg.rows(f"SELECT campaign, user_id, status, reason FROM {schemas[1]}.camp_deliveries "
                               f"WHERE campaign IN ('{high}', '{low}')")
                won.append(("pg high first", high, check_high_won(rows, high, low, f"g{i}")))
            # DuckDB, higher priority first; and the re-queued run of the first DuckDB race has decided
            _requeued_done(client, workspace_name(duck_ws), "d0_low", slot)
            _race(client, deps, duck_pairs[1:], slot, low_first=False, requeues=True)
            for i, (high, low) in enumerate(duck_pairs):
                rows = _duck("SELECT campaign, user_id, status, reason FROM camp_deliveries WHERE campaign IN (?, ?)",
                             (high, low))
                won.append(("duckdb " + ("low first" if i == 0 else "high first"), high,
                            check_high_won(rows, high, low, f"g{i}")))
            assert _duck("SELECT count(*) FROM camp_runs WHERE campaign = 'd0_low'") == [(1,)]
            print(f"{time.monotonic() - t0:.1f}s duckdb race 2")  # re-queues decide nothing
    finally:
        for s in serves:
            _stop(s)
        for s in schemas:
            pg.execute(f"DROP SCHEMA IF EXISTS {s} CASCADE")
        pg.close()
    assert len(won) == 2 * PAIRS + 2 >= 10
    assert all(shared > 5 for _, _, shared in won), won  # every race had users to fight over


@pytest.fixture(autouse=True)
def _forget_duck():
    yield
    _DUCK.clear()
