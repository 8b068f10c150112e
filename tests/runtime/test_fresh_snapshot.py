"""A run that wrote its snapshot itself, each user once, on a DuckDB ledger (one writer), does not ask the ledger
which of its users are decided already (none can be); a rerun, a snapshot where a user appears twice, and a batch
decided again all still do, so that nobody is decided twice."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import duckdb
import pytest

from runtime import engine
from runtime.context import Run
from runtime.demo_data import make_shop
from runtime.ledger import Ledger, open_ledger
from tests.runtime.conftest import make_workspace
from tests.runtime.steps import plan_for

AS_OF = datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
CAMPAIGN = '''
campaign t_fresh {
  who count(orders within 365d) >= 1
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "t/push.j2"
  how
    step touch: notify where
}
'''
OUTBOX = {"push": {"kind": "outbox", "settings": {}}}


@pytest.fixture
def ws(tmp_path):
    root = make_workspace(tmp_path / "ws", {"fresh.camp": CAMPAIGN}, templates={"t/push.j2": "hi {{ user.name }}"})
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 120, seed=5)
    return root


def _run(root, monkeypatch, batch: int = 7) -> tuple[dict, int]:
    """One run through the engine; returns its summary and how many times the ledger was asked for decided users."""
    asked = []
    real = Ledger.decided_users
    monkeypatch.setattr(Ledger, "decided_users", lambda self, *a: asked.append(1) or real(self, *a))
    lg = open_ledger(f"duckdb:///{root / 'ledger.duckdb'}")
    try:
        run = Run(plan_for(root, "t_fresh", AS_OF), lg, f"duckdb:///{root / 'shop.duckdb'}", AS_OF,
                  channel_config=OUTBOX)
        try:
            return engine.run_through(run, batch), len(asked)
        finally:
            run.close()
    finally:
        lg.close()


def _deliveries(root) -> list[tuple]:
    """(user, deliveries) per user of the snapshot."""
    con = duckdb.connect(str(root / "ledger.duckdb"), read_only=True)
    try:
        return con.execute("SELECT r.user_id, count(d.user_id) FROM camp_recipients r LEFT JOIN camp_deliveries d "
                           "USING (user_id) GROUP BY r.user_id ORDER BY r.user_id").fetchall()
    finally:
        con.close()


def test_a_fresh_snapshot_skips_the_check_and_a_rerun_makes_it(ws, monkeypatch):
    summary, asked = _run(ws, monkeypatch)
    rows = _deliveries(ws)
    n = len(rows)
    assert n > 20 and summary["this_run"]["sent"] > 20 and asked == 0
    assert all(k == 1 for _, k in rows)
    again, asked = _run(ws, monkeypatch)  # the snapshot is read back: each batch asks, and nothing is added
    assert asked == -(-n // 7) and again["this_run"].get("sent", 0) == 0 and _deliveries(ws) == rows


def test_a_user_twice_in_the_audience_is_decided_once(ws, monkeypatch):
    con = duckdb.connect(str(ws / "shop.duckdb"))
    con.execute("INSERT INTO users SELECT * FROM users WHERE user_id = (SELECT min(user_id) FROM orders)")
    con.close()
    _, asked = _run(ws, monkeypatch, batch=1)
    con = duckdb.connect(str(ws / "ledger.duckdb"), read_only=True)
    snapshot = con.execute("SELECT count(*), count(DISTINCT user_id) FROM camp_recipients").fetchone()
    per_user = con.execute("SELECT count(*) FROM camp_deliveries GROUP BY user_id").fetchall()
    con.close()
    assert snapshot is not None and snapshot[0] == snapshot[1] + 1  # the user is twice in the snapshot
    assert asked == snapshot[0]  # so every batch (one user each) asks the ledger, as before
    assert len(per_user) == snapshot[1] and all(k == 1 for (k,) in per_user)


def test_a_batch_decided_again_in_the_same_run_asks(ws, monkeypatch):
    from runtime.batch import decide_batch
    from runtime.snapshot import snapshot

    lg = open_ledger(f"duckdb:///{ws / 'ledger.duckdb'}")
    try:
        run = Run(plan_for(ws, "t_fresh", AS_OF), lg, f"duckdb:///{ws / 'shop.duckdb'}", AS_OF,
                  channel_config=OUTBOX)
        try:
            engine.start(run)
            lo, hi = snapshot(run)
            decide_batch(run, lo, hi)  # every message goes to the outbox in the batch's transaction
            assert decide_batch(run, lo, hi) == []  # again: the ledger says all are decided (no key is inserted twice)
        finally:
            run.close()
    finally:
        lg.close()
    assert all(k == 1 for _, k in _deliveries(ws))
