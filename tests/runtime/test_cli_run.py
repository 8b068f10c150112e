"""`camp run`, `camp runs` and `camp ledger` as real processes against a real Prefect server."""

from __future__ import annotations

import json

import pytest

from runtime.demo_data import make_shop
from tests.runtime.conftest import camp, make_workspace
from tests.runtime.test_run import CAMPAIGNS, TEMPLATES


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = make_workspace(tmp_path_factory.mktemp("cli"), CAMPAIGNS, templates=TEMPLATES)
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 300, seed=4)
    return root


def test_dry_run_then_run_then_runs_and_ledger(ws, prefect_env):
    dry = camp("run", "coupon.camp", "--as-of", "2026-12-01T10:00+08:00", "--dry-run", cwd=ws, env=prefect_env)
    assert dry.returncode == 0, dry.stderr
    assert "dry run, nothing is sent or written" in dry.stdout and "to send" in dry.stdout
    assert _count(ws, "camp_deliveries") == 0 and _count(ws, "camp_runs") == 0
    real = camp("run", "coupon.camp", "--as-of", "2026-12-01T10:00+08:00", cwd=ws, env=prefect_env)
    assert real.returncode == 0, real.stderr
    assert "sent" in real.stdout and "Traceback" not in real.stderr
    sent_line = next(line for line in real.stdout.splitlines() if line.strip().startswith("sent"))
    again = camp("run", "coupon.camp", "--as-of", "2026-12-01T10:30+08:00", cwd=ws, env=prefect_env)
    assert "0 sent now" in again.stdout
    runs = json.loads(camp("runs", "--json", cwd=ws, env=prefect_env).stdout)
    assert [r["status"] for r in runs] == ["finished", "finished"]
    assert runs[0]["plan_hash"] == runs[1]["plan_hash"] and runs[0]["occurrence"] == "2026-12-01T02:00Z"
    rows = json.loads(camp("ledger", "--json", "--status", "sent", "--limit", "100000", cwd=ws,
                           env=prefect_env).stdout)
    assert len(rows) == int(sent_line.split()[1].replace(",", ""))
    assert {r["plan_hash"] for r in rows} == {runs[0]["plan_hash"]}
    table = camp("ledger", "--user", rows[0]["user_id"], cwd=ws, env=prefect_env)
    assert rows[0]["user_id"] in table.stdout and "sent" in table.stdout


def _count(ws, table: str) -> int:
    import duckdb

    con = duckdb.connect(str(ws / "ledger.duckdb"), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


@pytest.mark.parametrize(("args", "message"), [
    (["run", "coupon.camp", "--step", "nope"], "has no step `nope`"),
    (["run", "coupon.camp", "--as-of", "yesterday"], "is not an ISO 8601 time"),
    (["run", "coupon.camp", "--data", "duckdb:////nonexistent/dir/shop.duckdb"], "cannot open the data"),
    (["run", "coupon.camp", "--batch-size", "0"], "must be at least 1"),
    (["run", "coupon.camp", "--ledger", "postgresql://nobody@127.0.0.1:1/x"], "cannot open the ledger"),
    (["runs", "--ledger", "postgresql://nobody@127.0.0.1:1/x"], "cannot open the ledger"),
    (["emit", "orders", "--user", "1", "--occurred", "yesterday"], "is not an ISO 8601 time"),
    (["emit", "orders", "--user", "1", "--id", "nope"], "is not a UUID"),
    (["run", "coupon.camp", "--occurrence", "2026-12-01T02:00Z"], "give --step too"),
    (["run", "coupon.camp", "--step", "touch", "--occurrence", "2026-12-01T02:00Z"], "is the journey's first"),
])
def test_bad_runs_say_why_without_a_traceback(ws, prefect_env, args, message):
    r = camp(*args, cwd=ws, env=prefect_env)
    assert r.returncode != 0 and message in r.stderr + r.stdout and "Traceback" not in r.stderr


def test_a_follow_up_step_before_anyone_is_due_says_so(tmp_path, prefect_env):
    from tests.conftest import CAMPAIGNS as BUNDLED

    make_shop(f"duckdb:///{tmp_path / 'shop.duckdb'}", 50, seed=1)
    r = camp("run", str(BUNDLED / "winback.camp"), "--step", "reminder", "--data",
             f"duckdb:///{tmp_path / 'shop.duckdb'}", "--ledger", f"duckdb:///{tmp_path / 'ledger.duckdb'}",
             cwd=tmp_path, env=prefect_env)
    assert r.returncode == 0 and "no one is due" in r.stdout and "follows `touch` by 3d" in r.stdout, r.stderr
    assert "Traceback" not in r.stderr
