"""Issue 11's proofs against a real `prefect server` and `camp serve` (DuckDB ledger, a real webhook receiver):

- a daily 10:00 Shanghai campaign reaches London at 02:00 London, inside quiet hours: those users are deferred,
  and the run schedules a release run of the deployment at 08:00 London, which sends them there and then,
  exactly once, with no further run of the campaign;
- a `tz user` birthday campaign delivers at 09:00 local to users in Tokyo, Shanghai, London and New York:
  one occurrence decides everyone, one release run per zone's 09:00 sends them.

Both occurrences lie a few days back (as a shop's backfill would), so every scheduled release is already due
and runs within seconds; nothing sleeps until 08:00."""

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
from tests.runtime.conftest import BIN, deployment_of, workspace_name
from tests.runtime.test_serve import _flow_runs, _ledger, wait_served

DAY = (datetime.now(UTC) - timedelta(days=3)).date()  # local date D of both occurrences
SH, LON = ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/London")
DEPLOYMENTS = ("t_daily_london", "t_birthday_local")
ZONES = ["Asia/Tokyo", "Asia/Shanghai", "Europe/London", "America/New_York"]

DAILY = f'''
campaign t_daily_london {{
  who count(orders within 3650d) >= 1 and user.timezone in ("Europe/London", "Asia/Shanghai")
  when daily at 10:00 from {DAY} to {DAY} tz "Asia/Shanghai"
  where push template "t/push.j2"
  how
    step touch: notify where
  how much
    quiet 22:00-08:00
}}
'''
BIRTHDAY = f'''
campaign t_birthday_local {{
  who birthday is today
  when daily at 09:00 from {DAY} to {DAY} tz user
  where push template "t/push.j2"
  how
    step gift: notify where
  how much
    quiet 22:00-08:00
}}
'''


def _workspace(tmp_path, url: str):
    root = tmp_path / "shop"
    root.mkdir()
    for name in ("schema.camp", "segments.camp"):
        shutil.copy(CAMPAIGNS / name, root / name)
    (root / "camp.toml").write_text(
        f'[workspace]\nname = "rel-{tmp_path.name}"\ntimezone = "Asia/Shanghai"\ncurrency = "CNY"\n'
        '[data]\nurl = "duckdb:///shop.duckdb"\n[ledger]\nurl = "duckdb:///ledger.duckdb"\n'
        f'[channels.push]\nkind = "webhook"\nsettings = {{ url = "{url}/push", retries = 1, backoff = 0.01 }}\n')
    (root / "daily.camp").write_text(DAILY, encoding="utf-8")
    (root / "birthday.camp").write_text(BIRTHDAY, encoding="utf-8")
    (root / "templates" / "t").mkdir(parents=True)
    (root / "templates" / "t" / "push.j2").write_text("hi {{ user.id }}")
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 400, seed=23)
    con = duckdb.connect(str(root / "shop.duckdb"))
    try:
        # two users per zone have their birthday on D (everyone else's is moved off it), with push consent
        con.execute("UPDATE users SET birthday = birthday + INTERVAL 2 DAY WHERE month(birthday) = ? AND "
                    "day(birthday) = ?", (DAY.month, DAY.day))
        planted = {}
        for zone in ZONES:
            users = [u for (u,) in con.execute(
                "SELECT user_id FROM users WHERE timezone = ? AND user_id IN (SELECT user_id FROM consent WHERE "
                "channel = 'push') AND user_id NOT IN (SELECT user_id FROM user_tags WHERE tag = 'complained') "
                "ORDER BY user_id LIMIT 2", (zone,)).fetchall()]
            for u in users:
                con.execute("UPDATE users SET birthday = ? WHERE user_id = ?", (DAY.replace(year=1990), u))
                planted[str(u)] = zone
        con.execute("UPDATE users SET birthday = birthday + INTERVAL 2 DAY WHERE month(birthday) = ? AND "
                    "day(birthday) = ? AND CAST(user_id AS VARCHAR) NOT IN (SELECT unnest(?))",
                    (DAY.month, DAY.day, list(planted)))
    finally:
        con.close()
    return root, planted


def _start(env: dict, name: str, as_of: datetime, root) -> None:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
        run_deployment(deployment_of(root, name), timeout=0, parameters={
            "workspace": str(root.resolve()), "campaign": name, "as_of": as_of.isoformat()})


def test_releases_go_out_on_time_through_scheduled_release_runs(tmp_path, prefect_env, hook):
    h, url = hook
    root, planted = _workspace(tmp_path, url)
    assert len(planted) == 8
    env = {**prefect_env, "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    serve = subprocess.Popen([str(BIN / "camp"), "serve", str(root)], cwd=root, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_served(env, serve, ["t_daily_london", "t_birthday_local"], root)
        ten = datetime.combine(DAY, datetime.min.time().replace(hour=10), tzinfo=SH)
        fire = datetime.combine(DAY, datetime.min.time().replace(hour=9), tzinfo=ZoneInfo("Etc/GMT-14"))
        _start(env, "t_daily_london", ten, root)
        _start(env, "t_birthday_local", fire, root)
        deadline = time.time() + 300
        while time.time() < deadline:
            waiting = _ledger(root, "SELECT count(*) FROM camp_deliveries WHERE status IN ('deferred', 'pending', "
                                    "'dispatching')")
            runs = _ledger(root, "SELECT count(*), count(*) FILTER (WHERE status <> 'running') FROM camp_runs")
            if waiting and waiting[0][0] == 0 and runs and runs[0][0] >= 2 and runs[0][0] == runs[0][1] \
                    and _ledger(root, "SELECT count(*) FROM camp_runs WHERE occurrence LIKE 'release@%'")[0][0] >= 5:
                break
            time.sleep(1)
        rows = _ledger(root, "SELECT campaign, user_id, status, due_at, run_id FROM camp_deliveries ORDER BY 1, 2")
        runs = {rid: (c, occ, st) for rid, c, occ, st in _ledger(root, "SELECT run_id, campaign, occurrence, status "
                                                                       "FROM camp_runs")}
        # --- the daily campaign: London users deferred at 02:00 London, released at 08:00 London, once
        daily = [(u, s, t) for c, u, s, t, _ in rows if c == "t_daily_london"]
        zone = dict(_ledger(root, "SELECT user_id, json_extract_string(data, '$.u_timezone') FROM camp_recipients "
                                  "WHERE campaign = 't_daily_london'"))
        london = {u for u, _, _ in daily if zone[u] == "Europe/London"}
        assert london and len(london) < len(daily)
        for u, status, due in daily:
            assert status in ("sent", "suppressed"), (u, status)
            if status == "sent":
                want = datetime.combine(DAY, datetime.min.time().replace(hour=8), tzinfo=LON) \
                    if u in london else ten
                assert due == want.astimezone(UTC), (u, zone[u], due)
        daily_runs = sorted(occ for c, occ, _ in runs.values() if c == "t_daily_london")
        release_at = datetime.combine(DAY, datetime.min.time().replace(hour=8), tzinfo=LON).astimezone(UTC)
        assert daily_runs == [f"{ten.astimezone(UTC):%Y-%m-%dT%H:%MZ}", f"release@{release_at:%Y-%m-%dT%H:%MZ}"]
        # --- the birthday: each planted user at 09:00 on D in their own zone, through that zone's release run
        gift = {u: (s, t, rid) for c, u, s, t, rid in rows if c == "t_birthday_local"}
        assert set(gift) == set(planted)
        for u, zone_name in planted.items():
            status, due, rid = gift[u]
            assert status == "sent", (u, status)
            assert due.astimezone(ZoneInfo(zone_name)).replace(tzinfo=None) == datetime.combine(
                DAY, datetime.min.time().replace(hour=9)), (u, zone_name, due)
        gift_runs = sorted(occ for c, occ, _ in runs.values() if c == "t_birthday_local")
        nine = sorted({datetime.combine(DAY, datetime.min.time().replace(hour=9), tzinfo=ZoneInfo(z)).astimezone(UTC)
                       for z in ZONES})
        assert gift_runs == sorted([f"{fire.astimezone(UTC):%Y-%m-%dT%H:%MZ}"]
                                   + [f"release@{t:%Y-%m-%dT%H:%MZ}" for t in nine])
        assert all(st == "finished" for _, _, st in runs.values()), runs
        # exactly once at the receiver, for both campaigns
        sent = [(c, u) for c, u, s, _, _ in rows if s == "sent"]
        assert len(h.raw) == len(h.delivered) == len(sent)
        # Prefect's side: one release flow run per distinct time, each with its idempotency key, all completed
        flow_runs = _flow_runs(env, root, DEPLOYMENTS)
        releases = [r for r in flow_runs if (r.parameters or {}).get("release")]
        assert sorted(r.idempotency_key for r in releases) == sorted(
            [f"{workspace_name(root)}:t_daily_london:release:{release_at:%Y-%m-%dT%H:%MZ}"]
            + [f"{workspace_name(root)}:t_birthday_local:release:{t:%Y-%m-%dT%H:%MZ}" for t in nine])
        deadline = time.time() + 60
        while time.time() < deadline and not all(r.state.is_final() for r in releases):
            time.sleep(1)
            releases = [r for r in _flow_runs(env, root, DEPLOYMENTS) if (r.parameters or {}).get("release")]
        assert all(r.state.is_completed() for r in releases), [r.state for r in releases]
        assert len([r for r in flow_runs if not (r.parameters or {}).get("release")
                    and r.flow_id == releases[0].flow_id
                    and (r.parameters or {}).get("campaign") in ("t_daily_london", "t_birthday_local")]) == 2
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGTERM)
            try:
                serve.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, signal.SIGKILL)
