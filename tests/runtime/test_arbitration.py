"""Arbitration between deployed campaigns (runtime/arbitrate.py): a run of a scheduled first step decides
only after its higher-priority rivals of the same slot have, whatever order their runs start in.

  * PostgreSQL: two processes; the lower-priority run starts first, waits in its process, and decides
    after the higher-priority run has finished: the higher one takes every user they share.
  * The window: a rival that never runs is waited for until `arbitration_wait` after the slot, then the
    run goes ahead and its summary (and its ledger row) names the rival it did not wait for.
  * DuckDB, a deployment: the run re-queues itself (a run of its deployment a few seconds later, as_of
    pinned to the slot, key workspace:campaign:occurrence:arbitration:N) and decides nothing; the re-queued run
    decides after the rival.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from runtime.demo_data import make_shop
from tests.conftest import PG_URL, require_postgres
from tests.runtime.conftest import make_workspace, workspace_name

TEMPLATE = "hello {{ user.id }}"


def pair_files(high: str, low: str, slot: datetime, group: str = "g") -> dict[str, str]:
    """Two campaigns of one exclusive group due at `slot`: `high` reaches gold members, `low` gold and
    silver ones (they share the gold members)."""
    when = f'once at {slot:%Y-%m-%d %H:%M} tz "UTC"'

    def one(name: str, who: str, priority: int) -> str:
        return (f"campaign {name} {{\n  who {who}\n  when {when}\n  where push template \"t.j2\"\n"
                f"  how\n    step touch: notify where\n  how much\n    priority {priority}\n"
                f"    exclusive \"{group}\"\n}}\n")

    return {f"{high}.camp": one(high, 'member_level = "gold"', 10),
            f"{low}.camp": one(low, 'member_level in ("gold", "silver")', 1)}


def workspace(root, files: dict[str, str], groups: list[str], toml: str = "", users: int = 200):
    policy = "policy {\n" + "".join(f"  exclusive group \"{g}\"\n" for g in groups) + "}\n"
    ws = make_workspace(root, files, toml=toml, policy=policy, templates={"t.j2": TEMPLATE})
    (ws / "camp.toml").write_text((ws / "camp.toml").read_text().replace('name = "test"', f'name = "{root.name}"'))
    make_shop(f"duckdb:///{ws / 'shop.duckdb'}", users, seed=5)
    return ws


def recent_slot() -> datetime:
    """The last whole minute: a slot that has just passed, well inside the default 10-minute window."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def occurrence(slot: datetime) -> str:
    return slot.strftime("%Y-%m-%dT%H:%MZ")


def check_high_won(rows, high: str, low: str, group: str = "g") -> int:
    """rows: (campaign, user, status, reason). Every user both campaigns could reach (high's message went
    out) was suppressed for low because high holds the user, and high lost no one to low. Returns how many
    users they shared."""
    got: dict[str, dict] = {}
    for campaign, user, status, reason in rows:
        got.setdefault(user, {})[campaign] = (status, reason)
    shared = [u for u, by in got.items() if by.get(high, ("",))[0] in ("sent", "deferred") and low in by]
    for u in shared:
        assert got[u][low] == ("suppressed", f"exclusive:{group} held by {high}"), (u, got[u])
    assert not [u for u, by in got.items() if by.get(high, ("", ""))[1] == f"exclusive:{group} held by {low}"]
    return len(shared)


@pytest.fixture
def pg_schema():
    pg = require_postgres()
    schema = f"camp_arb_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
    pg.execute(f"CREATE SCHEMA {schema}")
    try:
        yield pg, schema, f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        pg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        pg.close()


RUN = ("import json, sys; from runtime.flows import run_campaign; "
       "print('SUMMARY ' + json.dumps(run_campaign(sys.argv[1], sys.argv[2], as_of=sys.argv[3]), default=str))")


def _start(ws, campaign: str, slot: datetime, env: dict) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen([sys.executable, "-c", RUN, str(ws), campaign, slot.isoformat()], cwd=ws, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    return proc, lines


def _summary(proc, lines) -> dict:
    assert proc.wait(180) == 0, "".join(lines)[-3000:]
    time.sleep(0.2)  # the reader thread takes the last line
    return json.loads(next(ln for ln in lines if ln.startswith("SUMMARY "))[8:])


def test_on_postgresql_the_lower_priority_run_started_first_waits_and_the_higher_one_wins(tmp_path, prefect_env,
                                                                                          pg_schema):
    pg, schema, ledger = pg_schema
    slot = recent_slot()
    ws = workspace(tmp_path / "pgwait", pair_files("w_high", "w_low", slot), ["g"])
    env = {**prefect_env, "CAMP_LEDGER_URL": ledger, "PREFECT_LOGGING_LEVEL": "INFO"}
    low, low_lines = _start(ws, "w_low", slot, env)
    deadline = time.time() + 120
    while not any("waiting for w_high" in ln for ln in low_lines):  # low got there first and is waiting
        assert low.poll() is None and time.time() < deadline, "".join(low_lines)[-3000:]
        time.sleep(0.2)
    assert pg.rows(f"SELECT count(*) FROM {schema}.camp_runs")[0][0] == 0  # and has decided nothing
    high, high_lines = _start(ws, "w_high", slot, env)
    high_summary, low_summary = _summary(high, high_lines), _summary(low, low_lines)
    assert "arbitration" not in high_summary  # the highest waits for no one
    assert low_summary["arbitration"] == {"slot": occurrence(slot), "rivals": ["w_high"], "not_waited_for": []}
    rows = pg.rows(f"SELECT campaign, user_id, status, reason FROM {schema}.camp_deliveries")
    assert check_high_won(rows, "w_high", "w_low") > 10
    assert any(c == "w_low" and s == "sent" for c, _, s, _ in rows)  # silver members: low's alone
    runs = dict(pg.rows(f"SELECT campaign, started_at FROM {schema}.camp_runs"))
    finished = pg.rows(f"SELECT finished_at FROM {schema}.camp_runs WHERE campaign = 'w_high'")[0][0]
    assert runs["w_low"] >= finished  # low decided after high was over
    stored = json.loads(pg.rows(f"SELECT summary FROM {schema}.camp_runs WHERE campaign = 'w_low'")[0][0])
    assert stored["arbitration"]["rivals"] == ["w_high"]


class _Records(logging.Handler):
    """The records a logger emits, whatever stream Prefect's console handler was bound to by an earlier test
    (capsys saw nothing after test_journey.py had set Prefect's logging up against its own capture)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(f"{record.levelname} {record.getMessage()}")


def test_a_rival_that_never_runs_is_waited_for_until_the_window_ends(tmp_path, prefect_api):
    """A DuckDB ledger and no deployment (nothing to re-queue): the run waits in its process, reopening
    the ledger for each look, until `arbitration_wait` after the slot; then it decides and says so."""
    from runtime.flows import run_campaign

    records = _Records()
    flow_runs = logging.getLogger("prefect.flow_runs")
    flow_runs.addHandler(records)

    slot = recent_slot()
    window = int((datetime.now(UTC) - slot).total_seconds()) + 3  # ends about 3 s from now
    ws = workspace(tmp_path / "window", pair_files("x_high", "x_low", slot), ["g"],
                   toml=f'[runtime]\narbitration_wait = "{window}s"\n')
    started = time.monotonic()
    summary = run_campaign(str(ws), "x_low", as_of=slot.isoformat())
    waited = time.monotonic() - started
    assert summary["arbitration"] == {"slot": occurrence(slot), "rivals": ["x_high"], "not_waited_for": ["x_high"]}
    assert waited >= 2, waited
    flow_runs.removeHandler(records)
    logged = "\n".join(records.lines)
    assert "WARNING" in logged and "x_high did not finish their run of" in logged, logged
    con = duckdb.connect(str(ws / "ledger.duckdb"), read_only=True)
    try:
        statuses = {s for (s,) in con.execute("SELECT DISTINCT status FROM camp_deliveries").fetchall()}
        stored = json.loads(con.execute("SELECT summary FROM camp_runs WHERE campaign = 'x_low'").fetchone()[0])
    finally:
        con.close()
    assert "sent" in statuses and stored["arbitration"]["not_waited_for"] == ["x_high"]  # it went ahead
    # a run after the window decides at once, and says whom it did not wait for
    started = time.monotonic()
    again = run_campaign(str(ws), "x_low", as_of=slot.isoformat())
    assert again["arbitration"]["not_waited_for"] == ["x_high"] and time.monotonic() - started < waited


def _flow_run(client, deployment_id, at: datetime):
    from prefect.states import Scheduled

    return client.create_flow_run_from_deployment(deployment_id, state=Scheduled(scheduled_time=at))


def _execute(client, run_id):
    """Run a deployment's flow run in this process, as a worker or `camp serve` would in its subprocess."""
    from prefect.flow_engine import run_flow

    from runtime.flows import run_campaign

    fr = client.read_flow_run(run_id)
    return run_flow(run_campaign, flow_run=fr, parameters=fr.parameters)


def test_on_duckdb_a_deployed_run_requeues_itself_until_its_rival_has_decided(tmp_path, prefect_api):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterIdempotencyKey

    from camp.deploy import _deployment, _wanted

    slot = recent_slot()
    ws = workspace(tmp_path / "requeue", pair_files("q_high", "q_low", slot), ["g"])
    _, specs = _wanted(ws)
    ids = {s.campaign: _deployment(s).apply() for s in specs}
    occ = occurrence(slot)
    with get_client(sync_client=True) as client:
        low = _flow_run(client, ids["q_low"], slot)
        high = _flow_run(client, ids["q_high"], slot)
        before = datetime.now(UTC)
        assert _execute(client, low.id) is None  # the rival has not decided: nothing decided, re-queued
        assert not (ws / "ledger.duckdb").exists() or not duckdb.connect(
            str(ws / "ledger.duckdb"), read_only=True).execute("SELECT count(*) FROM camp_runs").fetchone()[0]
        key = f"{workspace_name(ws)}:q_low:{occ}:arbitration:1"
        [again] = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            idempotency_key=FlowRunFilterIdempotencyKey(any_=[key])))
        assert str(again.deployment_id) == str(ids["q_low"])
        assert again.parameters["as_of"] == slot.isoformat() and again.parameters["campaign"] == "q_low"
        assert before + timedelta(seconds=3) <= again.expected_start_time <= datetime.now(UTC) + timedelta(seconds=6)
        # still before the rival: it re-queues again, with the next key
        assert _execute(client, again.id) is None
        [third] = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            idempotency_key=FlowRunFilterIdempotencyKey(any_=[f"{workspace_name(ws)}:q_low:{occ}:arbitration:2"])))
        assert third.parameters == again.parameters
        high_summary = _execute(client, high.id)
        assert "arbitration" not in high_summary
        low_summary = _execute(client, third.id)
    assert low_summary["arbitration"] == {"slot": occ, "rivals": ["q_high"], "not_waited_for": []}
    con = duckdb.connect(str(ws / "ledger.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT campaign, user_id, status, reason FROM camp_deliveries").fetchall()
        runs = con.execute("SELECT campaign, count(*) FROM camp_runs GROUP BY 1 ORDER BY 1").fetchall()
    finally:
        con.close()
    assert check_high_won(rows, "q_high", "q_low") > 10
    assert runs == [("q_high", 1), ("q_low", 1)]  # the re-queued runs decided nothing
