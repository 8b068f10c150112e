"""`camp serve` + `camp emit` against a real Prefect server: an order event triggers the first-order
campaign for that user through a Prefect event trigger, the run delivers and logs in the ledger, and
the journey's follow-up runs after its delay only for users who still meet its condition; an order
that is not the user's first triggers a run that reaches nobody."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb

from runtime.demo_data import make_shop
from tests.conftest import CAMPAIGNS
from tests.runtime.conftest import BIN, camp, deployment_of, workspace_name


def _ledger(root, sql, params=()):
    if not (root / "ledger.duckdb").exists():
        return []
    for _ in range(300):  # the serving process holds the file while a run writes (longer on a busy machine)
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
    raise AssertionError("the ledger stayed locked for a minute")


def wait_served(env: dict, serve: subprocess.Popen, names: list[str], root, timeout: float = 180) -> None:
    """Until `camp serve` has registered these campaigns' deployments for this workspace (seconds when idle, far
    longer on a busy machine: a fixed sleep was not enough). The session's server keeps earlier tests' deployments
    of the same campaigns (test_deploy's, another serve test's), so a deployment of that name is not enough: it
    must carry this workspace, or an event emitted now would start a run of the other workspace."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.time() + timeout
    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}), \
            get_client(sync_client=True) as client:
        while True:
            assert serve.poll() is None, serve.stdout.read() if serve.stdout else "camp serve stopped"
            try:
                mine = [client.read_deployment_by_name(deployment_of(root, name)).parameters.get("workspace") == str(root.resolve()) for name in names]
                if all(mine):
                    time.sleep(2)  # and its runner is polling
                    return
                assert time.time() < deadline, f"camp serve did not take over {names} within {timeout:.0f} s"
                time.sleep(1)
            except ObjectNotFound:
                if time.time() > deadline:
                    raise
                time.sleep(1)


def _quiet(at: datetime, zone: str | None) -> bool:
    hour = at.astimezone(ZoneInfo(zone or "Asia/Shanghai")).hour
    return hour >= 22 or hour < 8


def _flow_runs(env: dict, root, campaigns: tuple[str, ...] = ("first_order_activation",)) -> list:
    """The server's flow runs of these deployments (the session's server holds other tests' runs too: a month of
    scheduled runs from test_deploy alone fills more than a page)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}), \
            get_client(sync_client=True) as client:
        return list(client.read_flow_runs(limit=200, deployment_filter=DeploymentFilter(
            name=DeploymentFilterName(any_=[deployment_of(root, c).split("/", 1)[1] for c in campaigns]))))


def _nudge_runs(env: dict, root) -> list:
    """The server's flow runs of the first-order campaign's follow-up step."""
    return [r for r in _flow_runs(env, root) if (r.parameters or {}).get("step") == "nudge"]


def test_an_order_event_starts_a_journey_whose_follow_up_reaches_only_who_still_qualifies(tmp_path, prefect_env):
    """The bundled first-order campaign, served: `welcome` 30 min after a first order, then `nudge`
    7 days later unless the user ordered again (its goal, too). The orders are reported as of 7 days
    and 40 minutes ago (the shop backfills them), so the welcome's as-of time is a week back and its
    follow-up falls due now: the journey's delay is measured in as-of time, nothing sleeps for days.
    A second user ordered again a day after the welcome; a third had ordered before (not a first)."""
    root = tmp_path / "shop"
    shutil.copytree(CAMPAIGNS, root)
    (root / "camp.toml").write_text((root / "camp.toml").read_text().replace(
        'name = "demo-shop"', f'name = "serve-{tmp_path.name}"'))
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 400, seed=9)
    occurred = datetime.now(UTC).replace(microsecond=0) - timedelta(days=7, minutes=40)
    welcome_at = occurred + timedelta(minutes=30)
    nudge_at = welcome_at + timedelta(days=7)
    con = duckdb.connect(str(root / "shop.duckdb"))
    candidates = con.execute(
        "SELECT u.user_id, u.timezone FROM users u WHERE u.member_level = 'normal' "
        "AND u.user_id NOT IN (SELECT user_id FROM orders) AND u.user_id IN (SELECT user_id FROM consent "
        "WHERE channel = 'push') AND u.user_id NOT IN (SELECT user_id FROM user_tags WHERE tag = 'employee') "
        "ORDER BY u.user_id").fetchall()
    new_users = [str(u) for u, tz in candidates if not _quiet(welcome_at, tz) and not _quiet(nudge_at, tz)]
    keeps, buys_again = new_users[:2]
    old_user = str(con.execute("SELECT user_id FROM orders GROUP BY 1 HAVING count(*) >= 2 ORDER BY 1 "
                               "LIMIT 1").fetchone()[0])
    order = "INSERT INTO orders (user_id, created_at, amount, brand, category, shop, coupon_used) VALUES (?, ?, 120, " \
            "'Lancome', 'beauty', 'online', false)"
    for user in (keeps, buys_again, old_user):
        con.execute(order, (int(user), occurred))
    con.execute(order, (int(buys_again), welcome_at + timedelta(days=1)))  # after the welcome: the goal
    con.close()
    env = {**prefect_env, "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    serve = subprocess.Popen([str(BIN / "camp"), "serve", str(root)], cwd=root, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_served(env, serve, ["first_order_activation"], root)  # the deployments and their triggers are registered
        ids = {}
        for user in (keeps, buys_again, old_user):
            ids[user] = str(uuid.uuid4())
            r = camp("emit", "orders", "--user", user, "--occurred", occurred.isoformat(), "--id", ids[user],
                     cwd=root, env=env)
            assert r.returncode == 0, r.stderr
        r = camp("emit", "orders", "--user", keeps, "--occurred", occurred.isoformat(), "--id", ids[keeps],
                 cwd=root, env=env)  # the shop retries an event it already sent
        assert r.returncode == 0, r.stderr
        deadline = time.time() + 300
        rows: list = []
        while time.time() < deadline:
            rows = _ledger(root, "SELECT user_id, step, status, reason, channel, occurrence FROM camp_deliveries "
                                 "WHERE campaign = 'first_order_activation' ORDER BY step DESC, user_id")
            runs = _ledger(root, "SELECT status FROM camp_runs WHERE campaign = 'first_order_activation'")
            if len(rows) >= 4 and runs and all(s == "finished" for (s,) in runs):
                break
            time.sleep(1)
        got = sorted((u, st, s, why) for u, st, s, why, _, _ in rows)
        assert got == sorted([(keeps, "welcome", "sent", None), (buys_again, "welcome", "sent", None),
                              (keeps, "nudge", "sent", None), (buys_again, "nudge", "skipped", "goal reached")]), rows
        occurrence = {(u, st): o for u, st, _, _, _, o in rows}
        assert occurrence[(keeps, "nudge")] == occurrence[(keeps, "welcome")] == f"event-{ids[keeps]}"
        due = dict(_ledger(root, "SELECT step, due_at FROM camp_deliveries WHERE user_id = ?", (keeps,)))
        assert due["nudge"] - due["welcome"] >= timedelta(days=7)  # not before its delay
        body = _ledger(root, "SELECT body FROM camp_outbox WHERE step = 'nudge'")
        assert len(body) == 1 and "¥10.00" in body[0][0]  # the welcome's coupon, spoken of by the reminder
        deadline = time.time() + 60  # the ledger is done; Prefect hears of the end a moment later
        nudges = _nudge_runs(env, root)
        while time.time() < deadline and not all(r.state.is_final() for r in nudges):
            time.sleep(1)
            nudges = _nudge_runs(env, root)
        assert len(nudges) == 2, nudges  # one per journey, though the event came twice
        assert {r.idempotency_key.rsplit(":", 2)[0] for r in nudges} == {
            f"{workspace_name(root)}:first_order_activation:nudge:event-{ids[u]}" for u in (keeps, buys_again)}
        assert all(r.state.is_completed() for r in nudges), [r.state for r in nudges]

        # a redeploy (serve starts again and applies the deployments), then the welcome of one journey
        # is run once more by hand, as an operator retrying it would: it reaches its end again and
        # schedules its follow-up again, with the same key: still one nudge run per journey
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(30)
        serve = subprocess.Popen([str(BIN / "camp"), "serve", str(root)], cwd=root, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, start_new_session=True)
        wait_served(env, serve, ["first_order_activation"], root)
        welcome = next(r for r in _flow_runs(env, root) if (r.parameters or {}).get("event_id") == ids[keeps]
                       and not r.parameters.get("step"))
        from prefect.deployments import run_deployment
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
            again = run_deployment(deployment_of(root, "first_order_activation"), parameters=welcome.parameters,
                                   timeout=120, poll_interval=1)
        assert again.state.is_completed(), again.state
        assert len(_nudge_runs(env, root)) == 2
        assert len(_ledger(root, "SELECT 1 FROM camp_deliveries WHERE campaign = 'first_order_activation'")) == 4
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
