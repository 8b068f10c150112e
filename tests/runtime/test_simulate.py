"""`camp simulate` against real runs: on a 300-user demo shop, the simulation's per-day totals (users by status per
campaign and local day) equal what day-by-day `camp run`s of the same campaigns (real processes, through Prefect,
on a real DuckDB ledger, and on a PostgreSQL one) write to the ledger; simulated contact pressure stays within the workspace's caps; the
real ledger is byte-for-byte unchanged by a simulation, whose scratch copy starts from the real ledger's state; the
shop's events in the period are replayed one run per event (for `first` triggers, per first event)."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from runtime.demo_data import make_shop
from runtime.warehouse import connect, duckdb_path
from tests.runtime.conftest import camp, make_workspace, pg_schema
from tests.runtime.sim_workspace import DAYS, sim_workspace

STATUSES = ("sent", "suppressed", "budget_exhausted", "holdout", "skipped", "failed", "deferred")


def _simulate(root: Path, env: dict, *extra: str) -> dict:
    out = camp("simulate", str(root), "--from", DAYS[0], "--to", DAYS[-1], "--format", "json", *extra, cwd=root,
               env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _simulated(doc: dict) -> Counter:
    return Counter({(r["day"], r["campaign"], s): r[s] for r in doc["daily"] for s in STATUSES if r[s]})


def _ledger_totals(url: str) -> Counter:
    """Users by status per local day (Asia/Shanghai, of due_at) and campaign, read from the real ledger here."""
    wh = connect(url, read_only=True)
    try:
        rows = wh.rows("SELECT CAST(due_at AT TIME ZONE 'Asia/Shanghai' AS DATE), campaign, status, count(*) "
                       "FROM camp_deliveries GROUP BY 1, 2, 3")
    finally:
        wh.close()
    return Counter({(d.isoformat(), c, s): n for d, c, s, n in rows})


def _fingerprint(url: str) -> tuple:
    """Every ledger table's row count and a hash of its rows in order (and a DuckDB file's bytes): any write
    changes it."""
    wh = connect(url, read_only=True)
    try:
        tables = [r[0] for r in wh.rows("SELECT table_name FROM information_schema.tables WHERE table_name LIKE "
                                        "'camp%' AND table_schema = current_schema() ORDER BY 1")]
        out = []
        for t in tables:
            rows = sorted(repr(r) for r in wh.rows(f"SELECT * FROM {t}"))
            out.append((t, len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()))
    finally:
        wh.close()
    path = duckdb_path(url)
    return tuple(out), hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None


@pytest.fixture(params=["duckdb", "postgres"])
def real_ledger(request, tmp_path):
    """The real ledger's URL: the workspace's DuckDB file, or a fresh schema of the test PostgreSQL."""
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'ws' / 'ledger.duckdb'}"
        return
    with pg_schema(f"camp_sim_{os.getpid()}") as url:
        yield url


def test_simulated_days_equal_real_runs_and_keep_the_caps(tmp_path, prefect_env, real_ledger):
    root = sim_workspace(tmp_path / "ws")
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 300, seed=1)
    env = {**prefect_env, "CAMP_LEDGER_URL": real_ledger}
    doc = _simulate(root, env)
    assert not (root / "ledger.duckdb").exists()  # the simulation made no real ledger
    if real_ledger.startswith("postgresql"):
        wh = connect(real_ledger)
        assert not wh.rows("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema()")
        wh.close()
    assert doc["version"] == 1 and doc["runs"]["step"] == 10 and doc["runs"]["follow-up"] >= 1

    for day in DAYS:  # what ops would run by hand, day by day: the folder at 10:00, the journey's step at 12:00
        r = camp("run", str(root), "--as-of", f"{day}T10:00+08:00", "--no-progress", cwd=root, env=env, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        r = camp("run", str(root / "a.camp"), "--step", "nudge", "--as-of", f"{day}T12:00+08:00", "--no-progress",
                 cwd=root, env=env, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr

    real = _ledger_totals(real_ledger)
    simulated = _simulated(doc)
    assert simulated == real
    assert real[(DAYS[0], "promo_a", "sent")] > 0 and real[(DAYS[0], "promo_b", "sent")] > 0
    assert sum(n for (_, _, s), n in real.items() if s == "budget_exhausted") > 0  # the daily budget ran out
    assert sum(n for (_, c, s), n in real.items() if s == "suppressed") > 0

    # contact pressure within the workspace's caps (policy: 3 messages and 1 sms per user per 7 days)
    caps = {(c["unit"], c["per"]): c for c in doc["pressure"]["caps"] if c["scope"] == "policy"}
    assert caps[("message", "7d")]["limit"] == 3 and caps[("sms", "7d")]["limit"] == 1
    assert all(c["max_seen"] <= c["limit"] and c["within"] for c in caps.values())
    assert doc["pressure"]["per_7_days"]["max"] <= 3
    assert doc["pressure"]["per_7_days"]["max"] == 3  # the cap binds: someone reaches it
    sent_days = {b["campaign"]: b for b in doc["budgets"]}
    assert sent_days["promo_a"]["daily_runs_out"]  # and the budget's days are named

    # the real ledger now has history: a simulation reads it (the occurrences already ran, nothing new is sent)
    # and does not write it
    before = _fingerprint(real_ledger)
    again = _simulate(root, env)
    assert _fingerprint(real_ledger) == before
    assert not any(r["sent"] for r in again["daily"])


def test_events_in_the_period_are_replayed_one_run_each(tmp_path, prefect_env):
    root = sim_workspace(tmp_path / "ws", events=True)
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 300, seed=1)
    con = duckdb.connect(str(root / "shop.duckdb"), read_only=True)
    window = ("created_at >= TIMESTAMPTZ '2026-11-24 00:00:00+08' AND created_at < "
              "TIMESTAMPTZ '2026-11-29 00:00:00+08'")
    orders = con.execute(f"SELECT count(*) FROM orders WHERE {window}").fetchone()[0]
    firsts = con.execute("SELECT count(*) FROM (SELECT user_id, min(created_at) AS created_at FROM orders "
                         f"WHERE created_at < TIMESTAMPTZ '2026-11-29 00:00:00+08' GROUP BY user_id) WHERE {window}"
                         ).fetchone()[0]
    con.close()
    doc = _simulate(root, prefect_env)
    # `on orders first`: each user's first order only (a repeat order's run would find count(orders) > 1)
    assert orders > firsts > 0 and doc["events"] == {"welcome": firsts} and doc["runs"]["event"] == firsts
    assert sum(r["sent"] + r["suppressed"] for r in doc["daily"] if r["campaign"] == "welcome") > 0
    # after the data's end (the demo's histories end on 2026-12-01) nothing is replayed and nothing is sent
    out = camp("simulate", str(root), "--from", "2026-12-10", "--to", "2026-12-12", "--format", "json", cwd=root,
               env=prefect_env, timeout=600)
    later = json.loads(out.stdout)
    assert later["events"] == {"welcome": 0} and "event" not in later["runs"]


NIGHT = '''
campaign night "夜间" {
  why retention
    goal any(orders) within 3d
  who member_level in ("normal", "silver", "gold")
  what message
  when daily at 23:00 from 2026-11-24 to 2026-11-24 tz "Asia/Shanghai"
  where push template "n/push.j2"
  how
    step touch: notify where
}
'''


def test_users_quiet_hours_hold_are_released_with_their_snapshot_data(tmp_path):
    """The scratch ledger writes a snapshot's users, with their data, only for those read back later (the deferred,
    released the next morning, runtime.batch), and keeps stopped decisions apart: the released messages are rendered from
    the users' own values, and the report counts every user once."""
    from compiler.check import check_workspace
    from compiler.workspace import load_workspace
    from runtime.ledger import open_ledger
    from runtime.sim_report import simulation_report
    from runtime.simulate import simulate

    root = make_workspace(tmp_path / "ws", {"night.camp": NIGHT}, policy="policy {\n  quiet 22:00-08:00\n}\n",
                          templates={"n/push.j2": "level {{ user.member_level }}"})
    data = f"duckdb:///{root / 'shop.duckdb'}"
    make_shop(data, 300, seed=3)
    ws = load_workspace(root)
    program = check_workspace(ws).program
    zone = ZoneInfo("Asia/Shanghai")
    (tmp_path / "sim").mkdir()
    sim = simulate(ws, program, datetime(2026, 11, 24, tzinfo=zone), datetime(2026, 11, 26, tzinfo=zone), data,
                   f"duckdb:///{root / 'ledger.duckdb'}", tmp_path / "sim")
    kinds = [r.kind for r in sim.runs]  # users in other zones wake at other times: a release each
    assert kinds[0] == "step" and len(kinds) > 1 and set(kinds[1:]) == {"release"}, sim.problems
    doc = simulation_report(sim, program)
    wh = connect(data, read_only=True)
    levels = dict(wh.rows("SELECT user_id::TEXT, member_level FROM users WHERE member_level IS NOT NULL"))
    wh.close()
    lg = open_ledger(sim.ledger_url)
    try:
        sent = dict(lg.rows("SELECT user_id, body FROM camp_outbox"))
        data_of = dict(lg.rows("SELECT user_id, data FROM camp_recipients"))
        released = {u for (u,) in lg.rows("SELECT user_id FROM camp_deliveries WHERE status = 'sent' AND "
                                          "not_before IS NOT NULL")}
        apart = lg.rows("SELECT status, count(*) FROM camp_sim_stopped GROUP BY ALL")
        kept = lg.rows("SELECT count(*) FROM camp_deliveries WHERE status IN ('suppressed', 'budget_exhausted')")
        size = lg.rows("SELECT sum(recipients) FROM camp_snapshots")[0][0]
    finally:
        lg.close()
        sim.close()
    assert released and released < set(sent)  # some were in their daytime, sent at once
    assert sent == {u: f"level {levels[u]}" for u in sent}
    assert apart and kept == [(0,)]
    # only the users read back are in the snapshot, with their data; its size counts every recipient
    assert {u for u, d in data_of.items() if d} == set(data_of) == released
    assert size == len(levels)
    days = {r["day"]: r for r in doc["daily"]}
    assert sum(r["sent"] + r["suppressed"] + r["deferred"] + r["holdout"] for r in days.values()) == len(levels)


def test_where_batches_end_changes_no_decision(tmp_path):
    """A simulation decides in batches of `runtime.simulate.BATCH` users, real runs in batches of 10,000: where a
    batch ends changes no decision (the budget runs out at the same user, caps and holds count the same), so the
    report of batches of 7 users equals that of one batch per run, key for key."""
    from compiler.check import check_workspace
    from compiler.workspace import load_workspace
    from runtime.sim_report import simulation_report
    from runtime.simulate import BATCH, simulate

    root = sim_workspace(tmp_path / "ws", events=True)
    data = f"duckdb:///{root / 'shop.duckdb'}"
    make_shop(data, 300, seed=1)
    ws = load_workspace(root)
    program = check_workspace(ws).program
    zone = ZoneInfo("Asia/Shanghai")
    docs = []
    for batch in (7, BATCH):
        (tmp_path / f"sim{batch}").mkdir()
        sim = simulate(ws, program, datetime(2026, 11, 24, tzinfo=zone), datetime(2026, 11, 29, tzinfo=zone), data,
                       f"duckdb:///{root / 'ledger.duckdb'}", tmp_path / f"sim{batch}", batch=batch)
        try:
            docs.append(simulation_report(sim, program))
        finally:
            sim.close()
    small, large = docs
    assert small["runs"]["step"] == 10 and any(b["daily_runs_out"] for b in small["budgets"])
    assert small == large
