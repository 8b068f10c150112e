"""A pool worker's flow run can start before the parent lists the run's batches (the parent lists them once it
sees every flow run running, and a flow run is running before its body opens the ledger). `batch_worker`'s
`wait_listed` makes such a worker wait for the list instead of finding nothing and ending. Here the race is made
on purpose: the worker's body runs first, on a real PostgreSQL ledger, and the batches are listed two seconds
later. With the wait, the worker decides every batch; without it, none."""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from compiler.check import check_workspace
from compiler.workspace import load_workspace
from runtime import engine, workers
from runtime.context import Run
from runtime.demo_data import make_shop
from runtime.ledger import open_ledger
from runtime.ledger.batches import list_batches
from runtime.snapshot import snapshot
from runtime.step import runnable
from tests.conftest import require_postgres
from tests.runtime.conftest import make_workspace, pg_schema
from tests.runtime.test_workers import CAMPAIGN, DAY1, POLICY

CHANNELS = {"sms": {"kind": "outbox", "settings": {}}}


@pytest.fixture
def started_run(tmp_path: Path):
    """A run of t_many recorded and snapshotted on a PostgreSQL ledger, its batches not listed yet."""
    require_postgres()
    root = make_workspace(tmp_path / "ws", {"many.camp": CAMPAIGN}, policy=POLICY,
                          templates={"t/sms.j2": "sms {{ user.id }}"})
    data = f"duckdb:///{root / 'shop.duckdb'}"
    make_shop(data, 400, seed=5)
    ws = load_workspace(root)
    program = check_workspace(ws).program
    with pg_schema(f"camp_wait_{os.getpid()}_{tmp_path.name[-12:]}") as url:
        lg = open_ledger(url)
        at = datetime.fromisoformat(DAY1)
        run = Run(runnable(ws, program, program.campaigns["t_many"], at, data=data, ledger=url).plan, lg, data, at,
                  channel_config=CHANNELS)
        engine.start(run)
        lo, hi = snapshot(run)
        assert hi - lo > 100
        try:
            yield url, run, lo, hi, data
        finally:
            run.close()
            lg.close()


@pytest.mark.parametrize("wait", [20.0, 0.0])
def test_a_pool_worker_that_starts_first_waits_for_the_batches(started_run, monkeypatch, wait):
    url, run, lo, hi, data = started_run
    monkeypatch.setattr(workers, "get_run_logger", lambda: logging.getLogger("camp-test"))  # no flow run here
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(workers.batch_worker.fn(
        url, run.run_id, data, "w0", CHANNELS, lease=30.0, wait_listed=wait)))
    worker.start()
    time.sleep(2.0)  # the worker's body is already looking for batches
    batches = list_batches(run.ctx.ledger, run.run_id, lo, hi, 50)
    worker.join(60)
    assert not worker.is_alive()
    decided = run.ctx.ledger.rows("SELECT count(*), count(DISTINCT user_id) FROM camp_deliveries")[0]
    if wait:
        assert done == [batches] and decided == (hi - lo, hi - lo)  # every batch, each recipient once
    else:
        assert done == [0] and decided == (0, 0)  # the race this guards against: the worker found nothing
