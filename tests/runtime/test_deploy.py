"""`camp deploy` against a real Prefect server process: the plan, then --yes; schedules stored in the
campaign's zone and range, and the server's scheduler creating runs at exactly those times;
redeploying unchanged campaigns changes nothing; a deleted campaign file removes its deployment."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import CAMPAIGNS
from tests.runtime.conftest import camp


@pytest.fixture
def ws(tmp_path):
    root = tmp_path / "shop"
    shutil.copytree(CAMPAIGNS, root)
    (root / "camp.toml").write_text((root / "camp.toml").read_text().replace('name = "demo-shop"',
                                                                             f'name = "deploy-{tmp_path.name}"'))
    return root


def _deployments(env, workspace: str) -> dict:
    import os

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags
    from prefect.settings import PREFECT_API_URL, temporary_settings

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as c:
        found = c.read_deployments(deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(
            all_=[f"camp-workspace:{workspace}"])))
        assert all(d.name == f"{d.name.split('@')[0]}@{workspace}" for d in found)  # named with their workspace
        return {d.name.split("@")[0]: d for d in found}


def _runs(env, deployment_id) -> list[datetime]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as c:
        runs = c.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                                limit=200)
        return sorted(r.expected_start_time.astimezone(UTC) for r in runs)


def test_deploy_shows_the_plan_applies_it_and_prunes(ws, prefect_env):
    name = [ln for ln in (ws / "camp.toml").read_text().splitlines() if ln.startswith("name")][0].split('"')[1]
    shown = camp("deploy", str(ws), cwd=ws, env=prefect_env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("+ create") == 11 and "--yes" in shown.stdout  # 9 campaigns, an alert, materialize
    assert _deployments(prefect_env, name) == {}  # showing the plan changes nothing
    applied = camp("deploy", str(ws), "--yes", cwd=ws, env=prefect_env)
    assert applied.returncode == 0, applied.stderr
    deployed = _deployments(prefect_env, name)
    assert set(deployed) == {"winback_high_value", "silent_recall", "birthday_gift", "engagement_digest",
                             "first_order_activation", "share_red_packet", "multi_tag_coupon",
                             "beijing_loyal_feedback", "important_value_thanks", "hf_lv_slipping", "materialize-0200"}
    alert = deployed["hf_lv_slipping"]
    assert alert.parameters == {"workspace": str(ws.resolve()), "alert": "hf_lv_slipping"}
    assert "camp-alert:hf_lv_slipping" in alert.tags
    assert alert.schedules[0].schedule.rrule == "DTSTART:20260101T090000\nRRULE:FREQ=DAILY"
    winback = deployed["winback_high_value"]
    assert {"camp", f"camp-workspace:{name}", "camp-campaign:winback_high_value"} <= set(winback.tags)
    assert winback.parameters == {"workspace": str(ws.resolve()), "campaign": "winback_high_value"}
    [sched] = [s.schedule for s in winback.schedules]
    assert sched.timezone == "Asia/Shanghai"
    assert sched.rrule == "DTSTART:20261201T100000\nRRULE:FREQ=DAILY;UNTIL=20261231T235959"
    recall = deployed["silent_recall"].schedules[0].schedule
    assert "BYDAY=MO,TH" in recall.rrule and recall.timezone == "Asia/Shanghai"
    # the server's scheduler creates winback's runs at 10:00 Shanghai (02:00 UTC), 1 to 31 December only;
    # it schedules from now on, so once December has begun the days already past are not created
    every_day = [datetime(2026, 12, 1, 2, 0, tzinfo=UTC) + timedelta(days=i) for i in range(31)]
    expected = [t for t in every_day if t > datetime.now(UTC) + timedelta(seconds=5)]
    deadline = time.time() + 90
    runs: list[datetime] = []
    while time.time() < deadline:
        runs = _runs(prefect_env, winback.id)
        if len(runs) >= len(expected):
            break
        time.sleep(1)
    assert runs in (expected, expected[1:]), runs  # (a fire time may pass while the test waits)
    # unchanged: nothing to do, nothing touched
    again = camp("deploy", str(ws), "--yes", cwd=ws, env=prefect_env)
    assert "nothing to change" in again.stdout and again.stdout.count("= unchanged") == 11
    assert _deployments(prefect_env, name)["winback_high_value"].updated == winback.updated
    # a template changes: that campaign is updated, and the plan says which step changed
    tpl = ws / "templates" / "winback" / "push.j2"
    tpl.write_text(tpl.read_text() + " ")
    changed = camp("deploy", str(ws), cwd=ws, env=prefect_env)
    assert "~ update    winback_high_value" in changed.stdout and "steps changed or removed: touch" in changed.stdout
    # a campaign file is deleted: its deployment is removed, the others stay
    (ws / "birthday.camp").unlink()
    pruned = camp("deploy", str(ws), "--yes", cwd=ws, env=prefect_env)
    assert "- delete    birthday_gift" in pruned.stdout, pruned.stdout
    left = _deployments(prefect_env, name)
    assert "birthday_gift" not in left and len(left) == 10


def test_a_materialize_declaration_is_deployed_daily_and_its_flow_materialises(ws, prefect_env, prefect_api):
    """`materialize ... daily at 02:00` becomes one deployment of the camp-materialize flow, daily at 02:00 in the
    workspace's zone; removing the declaration removes it. The flow itself (run here in-process against the same
    server) writes the history once per as-of time."""
    from runtime.demo_data import make_shop
    from runtime.flows import materialize_labels
    from runtime.ledger import open_ledger

    name = [ln for ln in (ws / "camp.toml").read_text().splitlines() if ln.startswith("name")][0].split('"')[1]
    assert "materialize lifecycle, value_quadrant daily at 02:00" in (ws / "alerts.camp").read_text(encoding="utf-8")
    applied = camp("deploy", str(ws), "--yes", cwd=ws, env=prefect_env)
    assert applied.returncode == 0, applied.stderr
    assert "+ create    materialize-0200" in applied.stdout
    deployed = _deployments(prefect_env, name)
    mat = deployed["materialize-0200"]
    assert mat.parameters == {"workspace": str(ws.resolve()), "names": ["lifecycle", "value_quadrant"]}
    assert "camp-materialize" in mat.tags
    [sched] = [s.schedule for s in mat.schedules]
    assert sched.timezone == "Asia/Shanghai" and sched.rrule == "DTSTART:20260101T020000\nRRULE:FREQ=DAILY"
    again = camp("deploy", str(ws), cwd=ws, env=prefect_env)
    assert "= unchanged materialize-0200" in again.stdout
    make_shop(f"duckdb:///{ws / 'shop.duckdb'}", users=100, seed=4)
    first = materialize_labels(str(ws), ["lifecycle", "value_quadrant"], "2026-12-01T02:00:00+08:00")
    second = materialize_labels(str(ws), ["lifecycle", "value_quadrant"], "2026-12-01T02:00:00+08:00")
    assert [r["state"] for r in first] == ["recorded", "recorded"] and [r["state"] for r in second] == ["done", "done"]
    lg = open_ledger(f"duckdb:///{ws / 'ledger.duckdb'}")
    try:
        assert lg.one("SELECT count(*) FROM camp_label_history WHERE valid_to IS NULL") == 200
    finally:
        lg.close()
    (ws / "alerts.camp").unlink()  # the bundled declaration (and its alert, which reads the history)
    pruned = camp("deploy", str(ws), "--yes", cwd=ws, env=prefect_env)
    assert "- delete    materialize-0200" in pruned.stdout, pruned.stdout
