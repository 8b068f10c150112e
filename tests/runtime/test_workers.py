"""Parallel workers on one occurrence (runtime.workers, runtime.claims): real `camp run --workers N` processes, a
real Prefect server, a PostgreSQL ledger. 1, 2 and 4 workers: every recipient decided once, a tight budget used
to the last send and never beyond, a cap against an earlier occurrence exact; a worker SIGKILLed while it holds a
request mid-batch, its batch completed by another; a DuckDB ledger refuses more than one worker."""

from __future__ import annotations

import os
import signal
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from runtime.channels.webhook import Webhook
from runtime.demo_data import make_shop
from runtime.dispatch import FLUSH
from tests.conftest import require_postgres
from tests.runtime.conftest import camp, make_workspace, pg_schema
from tests.runtime.servers import start_hook

CAMPAIGN = '''
campaign t_many {
  who count(orders within 365d) >= 1
  when daily at 10:00 tz "Asia/Shanghai"
  where sms template "t/sms.j2"
  how
    step touch: notify where
  how much
    budget 150 CNY total
    cost sms 0.05 CNY
}
'''
POLICY = "policy {\n  cap 1 sms per user per 7d\n}\n"
DAY1, DAY2 = "2026-12-01T10:00+08:00", "2026-12-02T10:00+08:00"
USERS = 12_000


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    root = make_workspace(tmp_path_factory.mktemp("workers"), {"many.camp": CAMPAIGN}, policy=POLICY,
                          templates={"t/sms.j2": "sms {{ user.id }}"})
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", USERS, seed=5)
    return root


def _rows(pg, schema: str, sql: str, params=()) -> list[tuple]:
    return pg.conn.execute(sql.replace("camp_", f"{schema}.camp_"), params).fetchall()


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_workers_decide_each_recipient_once_with_exact_budget_and_caps(shop, prefect_env, workers):
    pg = require_postgres()
    schema = f"camp_workers_{os.getpid()}_{workers}"
    with pg_schema(schema) as ledger:
        # day 1 in one process: 3,000 sms (150 CNY at 0.05), the cap then holds those users on day 2
        first = camp("run", "many.camp", "--as-of", DAY1, "--ledger", ledger, "--no-progress", cwd=shop,
                     env=prefect_env, timeout=600)
        assert first.returncode == 0, first.stderr[-3000:]
        sent1 = {u for (u,) in _rows(pg, schema, "SELECT user_id FROM camp_deliveries WHERE status = 'sent'")}
        assert len(sent1) == 3000
        # day 2 with the workers, the campaign's total raised to 300 CNY: 150 CNY left for 3,000 more sends
        (shop / "many.camp").write_text(CAMPAIGN.replace("150 CNY", "300 CNY"), encoding="utf-8")
        try:
            out = camp("run", "many.camp", "--as-of", DAY2, "--ledger", ledger, "--no-progress", "--batch-size", "200",
                       "--workers", str(workers), cwd=shop, env=prefect_env, timeout=900)
        finally:
            (shop / "many.camp").write_text(CAMPAIGN, encoding="utf-8")
        assert out.returncode == 0, out.stderr[-3000:]
        occ = _rows(pg, schema, "SELECT occurrence FROM camp_snapshots ORDER BY occurrence")[-1][0]
        audience = _rows(pg, schema, "SELECT recipients FROM camp_snapshots WHERE occurrence = %s", (occ,))[0][0]
        assert audience > 5000
        rows = _rows(pg, schema, "SELECT user_id, status, reason, cost FROM camp_deliveries WHERE occurrence = %s",
                     (occ,))
        users = [u for u, _, _, _ in rows]
        snapshot = {u for (u,) in _rows(pg, schema, "SELECT user_id FROM camp_recipients WHERE occurrence = %s",
                                         (occ,))}
        assert len(users) == len(set(users)) == audience and set(users) == snapshot  # each decided exactly once
        assert not {s for _, s, _, _ in rows} & {"pending", "dispatching"}
        sent2 = {u for u, s, _, _ in rows if s == "sent"}
        spent2 = sum((Decimal(c) for _, s, _, c in rows if s == "sent"), Decimal(0))
        assert spent2 == Decimal(150)  # the 150 CNY left of 300: used to the last send, never beyond
        assert _rows(pg, schema, "SELECT sum(amount) FROM camp_spend")[0][0] == Decimal(300)
        assert not sent2 & sent1  # the cap (1 sms per 7d) against day 1, exact
        capped = {u for u, s, r, _ in rows if s == "suppressed" and r and "cap" in r}
        assert capped == sent1 & snapshot  # every day-1 recipient in today's audience, and no one else
        batches = _rows(pg, schema, "SELECT state, worker FROM camp_batches")
        if workers == 1:
            assert batches == []  # one worker: this process, as before
        else:
            assert {s for s, _ in batches} == {"done"}
            assert len({w for _, w in batches}) >= 2  # the batches really were spread
    pg.close()


def test_a_worker_killed_mid_batch_leaves_its_batch_to_another(tmp_path, prefect_env):
    kill_a_worker_mid_batch(tmp_path, prefect_env, "", ["--workers", "2"], _pid_of)


def kill_a_worker_mid_batch(tmp_path: Path, prefect_env: dict, toml: str, args: list[str], pid_of) -> str:
    """`camp run` with a webhook sms channel, `toml` added to camp.toml and `args`; from the 150th request on, the
    first that belongs to a batch a worker (not the run's own process) has claimed gets that worker killed
    (`pid_of(worker name)`: its process) while the request is unanswered. Every delivery is then in the ledger
    once, the receiver took each once, and the killed worker's batch was completed by another. The name of the
    killed worker."""
    hook, server, url = start_hook()
    try:
        toml = (f'[channels.sms]\nkind = "webhook"\nsettings = {{ url = "{url}/sms", retries = 2, backoff = 0.01 }}\n'
                '[runtime]\nlease = "3s"\n' + toml)
        root = make_workspace(tmp_path / "ws", {"many.camp": CAMPAIGN.replace("150 CNY", "100000 CNY")}, toml=toml,
                              templates={"t/sms.j2": "sms {{ user.id }}"})
        make_shop(f"duckdb:///{root / 'shop.duckdb'}", 3000, seed=7)
        pg = require_postgres()
        schema = f"camp_workers_kill_{os.getpid()}"
        with pg_schema(schema) as ledger:
            killed: list[str] = []
            once = threading.Lock()  # the receiver answers requests on several threads

            def on_request(n: int, body: dict) -> None:
                with once:
                    if n >= 150 and not killed:
                        kill(body)

            def kill(body: dict) -> None:
                # the worker whose claimed batch holds this user: killed while this request is unanswered
                row = _rows(pg, schema, "SELECT b.worker FROM camp_batches b JOIN camp_recipients r ON r.seq >= b.lo "
                                        "AND r.seq < b.hi WHERE r.user_id = %s AND b.state = 'claimed'",
                            (body["user_id"],))
                assert row, body
                if row[0][0].endswith("-parent"):  # the run's own process claims too on a work pool: not this one
                    return
                pid = pid_of(row[0][0])
                killed.append(row[0][0])
                os.kill(pid, signal.SIGKILL)

            hook.on_request = on_request
            out = camp("run", "many.camp", "--as-of", DAY1, "--ledger", ledger, "--no-progress", "--batch-size", "50",
                       *args, cwd=root, env=prefect_env, timeout=900)
            assert out.returncode == 0, out.stderr[-3000:]
            assert killed
            rows = _rows(pg, schema, "SELECT idempotency_key, status FROM camp_deliveries")
            audience = _rows(pg, schema, "SELECT recipients FROM camp_snapshots")[0][0]
            assert len(rows) == len({k for k, _ in rows}) == audience
            assert not {s for _, s in rows} & {"pending", "dispatching"}  # nothing left in flight
            sent = {k for k, s in rows if s == "sent"}
            assert len(sent) > 1000  # (the rest: no sms consent or number)
            assert set(hook.delivered) == sent  # the receiver took each delivery once (a resend carries its key)
            raw = [r["key"] for r in hook.raw]
            # repeated: at most what the killed worker had in flight or sent but not yet recorded (runtime.dispatch)
            assert len(raw) - len(set(raw)) <= Webhook.default_concurrency + FLUSH
            taken = _rows(pg, schema, "SELECT worker, attempts, state FROM camp_batches WHERE attempts > 1")
            assert taken and all(w != killed[0] and s == "done" for w, _, s in taken)  # completed by another
        pg.close()
        return killed[0]
    finally:
        server.shutdown()


def _pid_of(worker: str) -> int:
    """The process running `python -m runtime.workers SPEC WORKER`."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            args = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"runtime.workers" in args and worker.encode() in args:
            return int(d.name)
    raise AssertionError(f"no process for worker {worker}")


def test_a_duckdb_ledger_refuses_more_than_one_worker(tmp_path):
    root = make_workspace(tmp_path / "ws", {"many.camp": CAMPAIGN}, templates={"t/sms.j2": "sms {{ user.id }}"})
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 50, seed=1)
    out = camp("run", "many.camp", "--as-of", DAY1, "--workers", "2", "--no-progress", cwd=root)
    assert out.returncode == 2
    assert "PostgreSQL ledger" in out.stderr and "DuckDB" in out.stderr
    assert "Traceback" not in out.stderr
