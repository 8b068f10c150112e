"""`camp serve` + `camp emit` against a real Prefect server: an order event triggers the first-order
campaign for that user through a Prefect event trigger, and the run delivers and logs in the ledger;
an order that is not the user's first triggers a run that reaches nobody."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb

from runtime.demo_data import make_shop
from tests.conftest import CAMPAIGNS
from tests.runtime.conftest import BIN, camp


def _ledger(root, sql, params=()):
    if not (root / "ledger.duckdb").exists():
        return []
    for _ in range(50):  # the serving process may hold the file for a moment
        try:
            con = duckdb.connect(str(root / "ledger.duckdb"), read_only=True)
        except duckdb.Error:
            time.sleep(0.2)
            continue
        try:
            return con.execute(sql, params).fetchall()
        except duckdb.CatalogException:
            return []
        finally:
            con.close()
    raise AssertionError("the ledger stayed locked")


def test_an_order_event_runs_the_triggered_campaign_for_that_user(tmp_path, prefect_env):
    root = tmp_path / "shop"
    shutil.copytree(CAMPAIGNS, root)
    (root / "camp.toml").write_text((root / "camp.toml").read_text().replace(
        'name = "demo-shop"', f'name = "serve-{tmp_path.name}"'))
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 400, seed=9)
    occurred = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)  # the 30 min delay has passed
    due = occurred + timedelta(minutes=30)
    con = duckdb.connect(str(root / "shop.duckdb"))
    candidates = con.execute(
        "SELECT u.user_id, u.timezone FROM users u WHERE u.member_level = 'normal' "
        "AND u.user_id NOT IN (SELECT user_id FROM orders) AND u.user_id IN (SELECT user_id FROM consent "
        "WHERE channel = 'push') AND u.user_id NOT IN (SELECT user_id FROM user_tags WHERE tag = 'employee') "
        "ORDER BY u.user_id").fetchall()

    def quiet(zone) -> bool:
        hour = due.astimezone(ZoneInfo(zone or "Asia/Shanghai")).hour
        return hour >= 22 or hour < 8

    new_user = next(str(u) for u, tz in candidates if not quiet(tz))
    old_user = str(con.execute("SELECT user_id FROM orders GROUP BY 1 HAVING count(*) >= 2 ORDER BY 1 "
                               "LIMIT 1").fetchone()[0])
    for user in (new_user, old_user):
        con.execute("INSERT INTO orders (user_id, created_at, amount, brand, category, shop, coupon_used) "
                    "VALUES (?, ?, 120, 'Lancome', 'beauty', 'online', false)", (int(user), occurred))
    con.close()
    env = {**prefect_env, "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    serve = subprocess.Popen([str(BIN / "camp"), "serve", str(root)], cwd=root, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        time.sleep(8)  # the deployments and their triggers are registered
        assert serve.poll() is None, serve.stdout.read()
        for user in (new_user, old_user):
            r = camp("emit", "orders", "--user", user, "--occurred", occurred.isoformat(), cwd=root, env=env)
            assert r.returncode == 0, r.stderr
        deadline = time.time() + 150
        rows: list = []
        while time.time() < deadline:
            rows = _ledger(root, "SELECT user_id, step, status, channel, occurrence FROM camp_deliveries "
                                 "WHERE campaign = 'first_order_activation'")
            runs = _ledger(root, "SELECT status FROM camp_runs WHERE campaign = 'first_order_activation'")
            if rows and len(runs) >= 2 and all(s == "finished" for (s,) in runs):
                break
            time.sleep(1)
        assert [(u, st, s, ch) for u, st, s, ch, _ in rows] == [(new_user, "welcome", "sent", "push")], rows
        assert rows[0][4].startswith("event-")
        coupons = _ledger(root, "SELECT user_id, code, state FROM camp_coupons")
        assert coupons == [(new_user, "SECOND10", "issued")]
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
