"""End to end through the real flow on a DuckDB shop: each delivery's status is predicted here from the
data, independently of the runtime (consent and zones read straight from the tables), then compared."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import duckdb
import pytest

from compiler.sql import AudienceSQL
from runtime.demo_data import make_shop
from tests.runtime.conftest import make_workspace
from tests.runtime.steps import plan_for, program_of, run

SH = ZoneInfo("Asia/Shanghai")
AS_OF = datetime(2026, 12, 1, 10, 0, tzinfo=SH)  # 02:00 UTC: night in London, evening in New York

CAMPAIGNS = {
    "coupon.camp": '''
campaign t_coupon "测试券" {
  who count(orders within 365d) >= 1
  holdout 10%
  what coupon T10 "十元券" {
    value 10 CNY
    min_spend 100 CNY
    usable 7d after issue
  }
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "t/push.j2" else sms template "t/sms.j2"
  how
    step touch: give what, notify where
  how much
    budget 100000 CNY total
    cost sms 0.05 CNY, push 0 CNY
    expect redemption 50%
    quiet 22:00-08:00
}
''',
    "budget.camp": '''
campaign t_budget {
  who count(orders within 365d) >= 1
  what coupon B10 {
    value 10 CNY
    usable 7d after issue
  }
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "t/push.j2" else sms template "t/sms.j2"
  how
    step touch: give what, notify where
  how much
    budget 52 CNY total
    cost sms 0.05 CNY, push 0 CNY
    expect redemption 50%
}
''',
}
TEMPLATES = {"t/push.j2": "{{ user.name | default('朋友') }}，{{ coupon.title }} {{ coupon.value | money }}，"
                          "{{ coupon.expires_at | date('%m月%d日') }}前有效",
             "t/sms.j2": "【店】{{ coupon.code }} {{ coupon.id }}"}


@pytest.fixture(scope="module")
def shop(tmp_path_factory, prefect_env):
    """The workspace, with t_coupon's first run at AS_OF done: the tests after read its ledger, and pytest-xdist
    may give a worker any of them first (the first test's own run is then a rerun, which adds nothing)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    root = make_workspace(tmp_path_factory.mktemp("ws"), CAMPAIGNS, templates=TEMPLATES)
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 600, seed=3)
    with pytest.MonkeyPatch.context() as mp:
        for key in ("PREFECT_HOME", "PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED", "PREFECT_LOGGING_LEVEL"):
            mp.setenv(key, prefect_env[key])
        with temporary_settings(updates={PREFECT_API_URL: prefect_env["PREFECT_API_URL"],
                                         PREFECT_HOME: prefect_env["PREFECT_HOME"]}):
            run(root, "t_coupon", AS_OF)
    return root


def _expected(root, campaign: str, as_of: datetime, budget: Decimal | None):
    """user -> (status, channel, cost), from the tables and the documented rules."""
    ws, program = program_of(root)
    c = program.campaigns[campaign]
    occurrence = as_of.astimezone(UTC)
    sql = AudienceSQL(program, occurrence, "duckdb")
    con = duckdb.connect(str(root / "shop.duckdb"), read_only=True)
    rows = con.execute(sql.sql(sql.campaign(c), pretty=False)).fetchall()
    consent = set(con.execute("SELECT user_id, channel FROM consent").fetchall())
    zones = dict(con.execute("SELECT user_id, timezone FROM users").fetchall())
    con.close()
    out, spent = {}, Decimal(0)
    for uid, excluded, held in sorted(rows):
        if excluded:
            continue
        if held:
            out[str(uid)] = ("holdout", None, Decimal(0))
            continue
        channel = "push" if (uid, "push") in consent else "sms" if (uid, "sms") in consent else None
        if channel is None:
            out[str(uid)] = ("suppressed", None, Decimal(0))
            continue
        cost = Decimal("5") + (Decimal("0.05") if channel == "sms" else 0)
        if budget is not None and spent + cost > budget:
            out[str(uid)] = ("budget_exhausted", channel, Decimal(0))
            continue
        spent += cost
        hour = as_of.astimezone(ZoneInfo(zones[uid] or "Asia/Shanghai")).hour
        quiet = campaign == "t_coupon" and (hour >= 22 or hour < 8)
        out[str(uid)] = ("deferred" if quiet else "sent", channel, cost)
    return out


def _ledger(root, sql, params=()):
    con = duckdb.connect(str(root / "ledger.duckdb"), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def test_every_recipient_gets_the_predicted_status_once(shop, prefect_api):
    summary = run(shop, "t_coupon", AS_OF)
    expected = _expected(shop, "t_coupon", AS_OF, None)
    got = {u: (s, ch, c) for u, s, ch, c in _ledger(
        shop, "SELECT user_id, status, channel, cost FROM camp_deliveries WHERE campaign = 't_coupon'")}
    for uid, (status, channel, cost) in expected.items():
        assert got[uid][0] == status, uid
        if status in ("sent", "deferred"):
            assert got[uid][1] == channel and got[uid][2] == cost, uid
    assert set(got) == set(expected)
    assert {"holdout", "suppressed", "deferred", "sent"} <= {s for s, _, _ in expected.values()}
    outbox = _ledger(shop, "SELECT user_id, channel, body FROM camp_outbox WHERE campaign = 't_coupon'")
    assert sorted(u for u, _, _ in outbox) == sorted(u for u, v in expected.items() if v[0] == "sent")
    assert all("十元券 ¥10.00，12月08日前有效" in b for _, ch, b in outbox if ch == "push")
    plan = plan_for(shop, "t_coupon", AS_OF)
    assert {h for (h,) in _ledger(shop, "SELECT DISTINCT plan_hash FROM camp_deliveries "
                                        "WHERE campaign = 't_coupon'")} == {plan.hash}
    assert summary["statuses"]["sent"] == len(outbox)
    # every sent coupon is issued, every deferred one reserved, nobody else has one
    coupons = dict(_ledger(shop, "SELECT user_id, state FROM camp_coupons WHERE campaign = 't_coupon'"))
    assert coupons == {u: ("issued" if v[0] == "sent" else "reserved") for u, v in expected.items()
                       if v[0] in ("sent", "deferred")}


def test_rerunning_the_occurrence_sends_nothing_and_quiet_hours_release_later(shop, prefect_api):
    before = _ledger(shop, "SELECT count(*) FROM camp_outbox")[0][0]
    again = run(shop, "t_coupon", datetime(2026, 12, 1, 10, 20, tzinfo=SH))  # same occurrence (10:00)
    assert again["this_run"].get("sent", 0) == 0
    assert _ledger(shop, "SELECT count(*) FROM camp_outbox")[0][0] == before
    deferred = {u for (u,) in _ledger(shop, "SELECT user_id FROM camp_deliveries WHERE status = 'deferred'")}
    assert deferred
    # 08:30 in London: the deferred users (London, at night at 10:00 Shanghai) are sent, the others untouched
    later = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    run(shop, "t_coupon", later)
    rows = _ledger(shop, "SELECT user_id, status, due_at, not_before FROM camp_deliveries WHERE user_id IN "
                         "(SELECT unnest(?)) AND campaign = 't_coupon'", (sorted(deferred),))
    assert {s for _, s, _, _ in rows} == {"sent"}
    assert all(due == nb == datetime(2026, 12, 1, 8, 0, tzinfo=UTC) for _, _, due, nb in rows)  # 08:00 London
    assert _ledger(shop, "SELECT count(*) FROM camp_outbox")[0][0] == before + len(deferred)
    keys = _ledger(shop, "SELECT idempotency_key, count(*) FROM camp_outbox GROUP BY 1 HAVING count(*) > 1")
    assert keys == []


def test_the_budget_is_never_exceeded_and_the_summary_says_who_is_left_out(shop, prefect_api):
    summary = run(shop, "t_budget", AS_OF, batch_size=7)
    expected = _expected(shop, "t_budget", AS_OF, Decimal(52))
    got = dict(_ledger(shop, "SELECT user_id, status FROM camp_deliveries WHERE campaign = 't_budget'"))
    assert got == {u: s for u, (s, _, _) in expected.items()}
    spent = _ledger(shop, "SELECT sum(cost) FROM camp_deliveries WHERE campaign = 't_budget' AND status = 'sent'")
    assert spent[0][0] <= 52
    assert _ledger(shop, "SELECT sum(amount) FROM camp_spend WHERE campaign = 't_budget'")[0][0] == spent[0][0]
    exhausted = sorted((u for u, s in got.items() if s == "budget_exhausted"), key=int)
    assert summary["statuses"]["budget_exhausted"] == len(exhausted) > 0
    assert summary["left_out_by_budget"]["first_users"] == exhausted[:20]
    assert Decimal(summary["budget_left"]["total"]) == 52 - spent[0][0]


def test_a_dry_run_writes_no_delivery_and_sends_nothing(shop, prefect_api):
    before = _ledger(shop, "SELECT count(*) FROM camp_deliveries")[0][0]
    outbox = _ledger(shop, "SELECT count(*) FROM camp_outbox")[0][0]
    s = run(shop, "t_coupon", datetime(2026, 12, 2, 10, 0, tzinfo=SH), dry_run=True)
    assert s["dry_run"] and s["statuses"]
    assert _ledger(shop, "SELECT count(*) FROM camp_deliveries")[0][0] == before
    assert _ledger(shop, "SELECT count(*) FROM camp_outbox")[0][0] == outbox
    # yesterday's coupons are unused and still valid: the same code is not given twice
    assert any(r.startswith("suppressed: coupon:already holds an unused T10") for r in s["reasons"])


def test_opted_out_users_receive_nothing(shop, prefect_api):
    con = duckdb.connect(str(shop / "shop.duckdb"), read_only=True)
    opted_out = {str(u) for (u,) in con.execute(
        "SELECT user_id FROM users WHERE user_id NOT IN (SELECT user_id FROM consent WHERE channel IN ('push','sms'))"
    ).fetchall()}
    con.close()
    sent = {u for (u,) in _ledger(shop, "SELECT user_id FROM camp_outbox")}
    assert opted_out and not (opted_out & sent)
    reasons = {r for (r,) in _ledger(shop, "SELECT DISTINCT reason FROM camp_deliveries WHERE user_id IN "
                                           "(SELECT unnest(?)) AND status = 'suppressed'", (sorted(opted_out),))}
    assert reasons == {"no_consent:push; no_consent:sms"}


def test_each_run_leaves_table_and_markdown_artifacts_on_the_prefect_server(shop, prefect_api):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    summary = run(shop, "t_coupon", datetime(2026, 12, 3, 10, 0, tzinfo=SH))
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(
            any_=["camp-t-coupon-touch", "camp-t-coupon-touch-summary"])))
    kinds = {a.key: a.type for a in found}
    assert kinds == {"camp-t-coupon-touch": "table", "camp-t-coupon-touch-summary": "markdown"}
    text = next(a.data for a in found if a.type == "markdown" and summary["run_id"] in a.data)
    assert "t_coupon / touch @ 2026-12-03T02:00Z" in text and summary["plan_hash"][:16] in text


def test_a_run_ends_with_an_artifact_of_the_campaigns_outcomes(shop, prefect_api):
    """`camp run` and deployments pass the workspace: the run's last task measures the campaign as of the run
    (what `camp report` shows) into the markdown artifact camp-<campaign>-outcomes."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    run(shop, "t_coupon", datetime(2026, 12, 4, 10, 0, tzinfo=SH), outcomes=True)
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(
            any_=["camp-t-coupon-outcomes"])))
    assert found and all(a.type == "markdown" for a in found)
    text = max(found, key=lambda a: a.created).data
    assert text.startswith("# t_coupon: outcomes as of 2026-12-04 02:00 UTC")
    assert "| treated (reached) |" in text and "| conversion, holdout" in text
