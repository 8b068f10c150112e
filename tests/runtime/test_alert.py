"""Alerts: one aggregate message to a team per occurrence of the alert's schedule when its threshold is crossed,
none otherwise; through a real HTTP receiver and a real SMTP server, with `camp alert` as a real process; on
DuckDB and PostgreSQL ledgers. The count equals an independent pandas computation from the raw tables."""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from runtime.demo_data import make_shop
from runtime.ledger import open_ledger
from tests.runtime.conftest import camp, free_port, make_workspace
from tests.runtime.servers import start_smtp

ALERT = """alert vip_slipping "VIP 流失预警" {{
  owner "crm-ops"
  who tagged "vip" and none(orders within 30d)
    exclude tagged "complained"
  when daily at 09:00
  threshold {threshold}
  send to crm_ops
  sample 5
}}
"""


def _expected(root, as_of: str) -> list[str]:
    """The users the alert counts, from the raw tables with pandas: tagged vip, not complained, no order in the
    30 days (Shanghai wall clock) before the as-of time."""
    con = duckdb.connect(str(root / "shop.duckdb"), read_only=True)
    try:
        users = con.execute("SELECT CAST(user_id AS VARCHAR) AS user_id FROM users").df()
        tags = con.execute("SELECT CAST(user_id AS VARCHAR) AS user_id, tag FROM user_tags").df()
        orders = con.execute("SELECT CAST(user_id AS VARCHAR) AS user_id, created_at FROM orders").df()
    finally:
        con.close()
    at = pd.Timestamp(as_of).tz_convert("Asia/Shanghai")
    start = (at - pd.DateOffset(days=30)).tz_convert("UTC")
    vip = set(tags.loc[tags["tag"] == "vip", "user_id"]) - set(tags.loc[tags["tag"] == "complained", "user_id"])
    recent = orders[(orders["created_at"] >= start) & (orders["created_at"] < at.tz_convert("UTC"))]
    return sorted((vip & set(users["user_id"])) - set(recent["user_id"]), key=int)


def _workspace(tmp_path, threshold: str, team: str):
    root = make_workspace(tmp_path / "ws", {"alert.camp": ALERT.format(threshold=threshold)}, toml=team)
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 3000, seed=4)
    return root


def test_an_alert_reaches_the_team_once_per_occurrence_and_not_below_the_threshold(tmp_path, hook, ledger):
    h, url = hook
    team = (f'[channels.ops_hook]\nkind = "webhook"\nsettings = {{ url = "{url}/alerts", retries = 0 }}\n'
            '[teams.crm_ops]\nchannel = "ops_hook"\n')
    root = _workspace(tmp_path, "count >= 10", team)
    as_of = "2026-12-06T09:30:00+08:00"
    want = _expected(root, as_of)
    assert len(want) >= 10
    first = camp("alert", ".", "--as-of", as_of, "--ledger", ledger, cwd=root)
    assert first.returncode == 0, first.stderr
    assert "sent → crm_ops" in first.stdout and f"{len(want):,}" in first.stdout
    [msg] = h.raw
    assert msg["key"] == "alert/vip_slipping/2026-12-06T01:00:00+00:00" and msg["path"] == "/alerts"
    assert msg["data"]["matched"] == len(want) and msg["data"]["population"] == 3000
    assert msg["data"]["sample"] == want[:5] and msg["user_id"] == "team:crm_ops"
    assert msg["subject"].startswith("[camp alert] VIP 流失预警") and f"{len(want):,} of 3,000 users" in msg["body"]
    again = camp("alert", ".", "--as-of", "2026-12-06T21:00:00+08:00", "--ledger", ledger, cwd=root)
    assert again.returncode == 0 and "already sent" in again.stdout and len(h.raw) == 1  # once per occurrence
    nxt = camp("alert", ".", "--as-of", "2026-12-07T09:01:00+08:00", "--ledger", ledger, cwd=root)
    assert nxt.returncode == 0 and "sent" in nxt.stdout and len(h.raw) == 2  # the next day is a new period
    assert h.raw[1]["key"] == "alert/vip_slipping/2026-12-07T01:00:00+00:00"
    early = camp("alert", ".", "--as-of", "2026-12-01T08:00:00+08:00", "--ledger", ledger, cwd=root)
    assert early.returncode == 0 and len(h.raw) == 3  # 30 Nov's occurrence: a period of its own
    (root / "alert.camp").write_text(ALERT.format(threshold="count >= 3001"), encoding="utf-8")
    below = camp("alert", ".", "--as-of", "2026-12-08T09:30:00+08:00", "--ledger", ledger, cwd=root)
    assert below.returncode == 0 and "below" in below.stdout and len(h.raw) == 3  # not crossed: nothing sent
    (root / "alert.camp").write_text(ALERT.format(threshold="share >= 0.1%"), encoding="utf-8")
    dry = camp("alert", ".", "--as-of", "2026-12-08T10:00:00+08:00", "--ledger", ledger, "--dry-run", cwd=root)
    assert dry.returncode == 0 and "would send" in dry.stdout and len(h.raw) == 3  # a dry run sends nothing
    share = camp("alert", ".", "--as-of", "2026-12-08T10:00:00+08:00", "--ledger", ledger, cwd=root)
    assert share.returncode == 0 and len(h.raw) == 4  # re-evaluated in the same period: now crossed, sent once
    lg = open_ledger(ledger)
    try:
        rows = {r.occurrence: r for r in lg.alert_history("vip_slipping")}
    finally:
        lg.close()
    assert [r.state for r in rows.values()] == ["sent", "sent", "sent", "sent"]
    assert rows["2026-12-06T01:00:00+00:00"].matched == len(want)
    assert json.loads(rows["2026-12-06T01:00:00+00:00"].sample) == want[:5]


def test_a_failed_message_is_tried_again_by_the_next_run_of_the_occurrence(tmp_path, hook):
    h, url = hook
    h.fail_times["team:crm_ops"] = 1
    team = (f'[channels.ops_hook]\nkind = "webhook"\nsettings = {{ url = "{url}", retries = 0 }}\n'
            '[teams.crm_ops]\nchannel = "ops_hook"\n')
    root = _workspace(tmp_path, "share >= 0.5%", team)
    failed = camp("alert", ".", "--as-of", "2026-12-06T09:30:00+08:00", cwd=root)
    assert failed.returncode == 1 and "failed" in failed.stdout and "Traceback" not in failed.stderr
    ok = camp("alert", ".", "--as-of", "2026-12-06T09:45:00+08:00", cwd=root)
    assert ok.returncode == 0 and "sent" in ok.stdout
    assert len(h.raw) == 2 and len(h.delivered) == 1  # the same key both times: the receiver sees one alert


def test_an_alert_by_email_reaches_the_teams_address_through_a_real_smtp_server(tmp_path):
    port = free_port()
    controller, messages = start_smtp(port)
    try:
        team = (f'[channels.mail]\nkind = "smtp"\nsettings = {{ host = "127.0.0.1", port = {port} }}\n'
                '[teams.crm_ops]\nchannel = "mail"\naddress = "crm-ops@shop.example"\n')
        root = _workspace(tmp_path, "count >= 1", team)
        out = camp("alert", ".", "--as-of", "2026-12-06T09:30:00+08:00", cwd=root)
        assert out.returncode == 0, out.stderr
        [m] = messages
        assert m["To"] == "crm-ops@shop.example" and m["Subject"].startswith("[camp alert] VIP 流失预警")
        assert "meet the alert's condition" in m.get_content()
    finally:
        controller.stop()


def test_bad_alerts_and_teams_are_errors_with_a_hint(tmp_path):
    root = make_workspace(tmp_path / "ws", {"alert.camp": ALERT.format(threshold="count >= 1.5")},
                          toml='[teams.crm_ops]\nchannel = "opsx"\n')
    out = camp("check", ".", cwd=root)
    assert out.returncode == 1
    assert "E440" in out.stdout + out.stderr and "whole number" in out.stdout + out.stderr
    assert "E012" in out.stdout + out.stderr and "no channel `opsx`" in out.stdout + out.stderr
    (root / "alert.camp").write_text('alert a {\n  who tagged "vip"\n  when daily at 09:00 tz user\n}\n',
                                     encoding="utf-8")
    out = camp("check", ".", cwd=root)
    text = out.stdout + out.stderr
    assert "each user's clock" in text and "no `threshold`, `send to TEAM`" in text
    unknown = camp("alert", ".", "--alert", "nope", cwd=root)
    assert unknown.returncode in (1, 2) and "Traceback" not in unknown.stderr


def test_camp_deploy_schedules_the_alert_and_its_flow_sends_once_per_occurrence(tmp_path, hook, prefect_api):
    """`camp deploy --yes` against a real Prefect server: the alert gets a `camp-alert` deployment with its
    schedule in the workspace zone; the flow (run against that server) sends one message per occurrence."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    from runtime.flows import alert_flow

    h, url = hook
    team = (f'[channels.ops_hook]\nkind = "webhook"\nsettings = {{ url = "{url}" }}\n'
            '[teams.crm_ops]\nchannel = "ops_hook"\n')
    root = _workspace(tmp_path, "count >= 1", team)
    toml = root / "camp.toml"
    toml.write_text(toml.read_text().replace('name = "test"', f'name = "alert-{tmp_path.name}"'))
    applied = camp("deploy", ".", "--yes", cwd=root, env=prefect_api)
    assert applied.returncode == 0, applied.stderr
    assert "+ create    vip_slipping" in applied.stdout
    with get_client(sync_client=True) as c:
        [d] = c.read_deployments(deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(
            all_=[f"camp-workspace:alert-{tmp_path.name}"])))
        flow = c.read_flow(d.flow_id)
    assert (flow.name, d.name) == ("camp-alert", f"vip_slipping@alert-{tmp_path.name}")
    assert d.parameters == {"workspace": str(root.resolve()), "alert": "vip_slipping"}
    [sched] = [s.schedule for s in d.schedules]
    assert sched.timezone == "Asia/Shanghai" and "T090000" in sched.rrule and "FREQ=DAILY" in sched.rrule
    again = camp("deploy", ".", cwd=root, env=prefect_api)
    assert "nothing to change" in again.stdout
    first = alert_flow(str(root), "vip_slipping", "2026-12-06T09:00:00+08:00")
    second = alert_flow(str(root), "vip_slipping", "2026-12-06T09:05:00+08:00")
    assert first is not None and second is not None
    assert (first["state"], second["state"]) == ("sent", "already sent") and len(h.raw) == 1


def test_an_alert_counts_users_tagged_by_hand(tmp_path, hook):
    """`tagged "x"` in an alert reads the ledger's manual tags as audiences do: nobody holds `watch` until `camp
    tag add` gives it to two users, and the next occurrence's message counts them."""
    h, url = hook
    team = (f'[channels.ops_hook]\nkind = "webhook"\nsettings = {{ url = "{url}", retries = 0 }}\n'
            '[teams.crm_ops]\nchannel = "ops_hook"\n')
    alert = ('alert watched {\n  who tagged "watch"\n  when daily at 09:00\n  threshold count >= 1\n'
             '  send to crm_ops\n}\n')
    root = make_workspace(tmp_path / "ws", {"alert.camp": alert}, toml=team)
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 300, seed=4)
    before = camp("alert", ".", "--as-of", "2026-12-06T09:30:00+08:00", cwd=root)
    assert before.returncode == 0 and "below" in before.stdout and h.raw == []
    tagged = camp("tag", "add", "watch", "--users", "7,11", "--reason", "watch list", cwd=root)
    assert tagged.returncode == 0, tagged.stderr
    after = camp("alert", ".", "--as-of", "2026-12-07T09:30:00+08:00", cwd=root)
    assert after.returncode == 0 and "sent" in after.stdout, after.stdout + after.stderr
    [msg] = h.raw
    assert msg["data"]["matched"] == 2 and msg["data"]["sample"] == ["7", "11"]
