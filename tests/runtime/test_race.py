"""Two `camp run` processes at once on a PostgreSQL ledger, sharing a campaign budget and a workspace-wide
cap: neither is ever exceeded. Repeated (CAMP_RACE_REPEATS, default 20), each time on a fresh ledger."""

from __future__ import annotations

import os
import subprocess
from decimal import Decimal

import pytest

from runtime.demo_data import make_shop
from tests.conftest import PG_URL, require_postgres
from tests.runtime.conftest import BIN, make_workspace

CAMPAIGN = '''
campaign t_race {
  who count(orders within 365d) >= 1
  when daily at 10:00 tz "Asia/Shanghai"
  where sms template "t/sms.j2"
  how
    step touch: notify where
  how much
    budget 3 CNY total
    cost sms 0.05 CNY
}
'''
POLICY = "policy {\n  cap 1 sms per user per 7d\n}\n"
REPEATS = int(os.environ.get("CAMP_RACE_REPEATS", "20"))


@pytest.fixture(scope="module")
def race_ws(tmp_path_factory):
    root = make_workspace(tmp_path_factory.mktemp("race"), {"race.camp": CAMPAIGN}, policy=POLICY,
                          templates={"t/sms.j2": "sms {{ user.id }}"})
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 500, seed=21)
    return root


@pytest.mark.parametrize("attempt", range(REPEATS))
def test_concurrent_runs_never_exceed_the_budget_or_a_global_cap(race_ws, prefect_env, attempt):
    pg = require_postgres()
    schema = f"camp_race_{os.getpid()}_{attempt}"
    pg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    pg.execute(f"CREATE SCHEMA {schema}")
    ledger = f"{PG_URL}?options=-csearch_path%3D{schema}"
    try:
        procs = [subprocess.Popen([str(BIN / "camp"), "run", "race.camp", "--as-of", as_of, "--ledger", ledger,
                                   "--batch-size", "5", "--no-progress"], cwd=race_ws, env=prefect_env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for as_of in ("2026-12-01T10:00+08:00", "2026-12-02T10:00+08:00")]  # two occurrences at once
        for p in procs:
            out, err = p.communicate(timeout=240)
            assert p.returncode == 0, err[-3000:]
        rows = pg.rows(f"SELECT occurrence, user_id, status, cost FROM {schema}.camp_deliveries")
        spent = sum((Decimal(c) for _, _, s, c in rows if s == "sent"), Decimal(0))
        assert spent <= Decimal(3)
        assert spent == Decimal(3)  # and the budget was used to the last send: nothing lost either
        assert pg.rows(f"SELECT sum(amount) FROM {schema}.camp_spend")[0][0] == spent
        per_user: dict[str, int] = {}
        for _, user, status, _ in rows:
            if status == "sent":
                per_user[user] = per_user.get(user, 0) + 1
        assert max(per_user.values()) == 1  # cap 1 sms per user per 7d, across both runs
        occurrences = {o for o, _, s, _ in rows if s == "sent"}
        assert len(occurrences) >= 1
    finally:
        pg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        pg.close()
