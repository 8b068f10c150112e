"""Local-time sends (`tz user`) and releases of deferred deliveries (issue 11).

The decision on its own: each user is deferred to the schedule's wall-clock time in their own zone
(half-hour and quarter-hour zones, a zone that is not one, a daylight-saving gap), quiet hours still apply
at that time, and a late run skips users whose local day is over. Then through the real flow on a DuckDB
and a PostgreSQL ledger: one occurrence decides everyone once, release runs at the times the summary
names send each user once at their local time (a webhook receiver counts), and two releases of the same
deliveries at once (PostgreSQL) send each message once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from compiler.plan import ArmPlan, ChannelPlan, ResourcePlan
from runtime.decide import Budget, decide, local_send_at
from tests.runtime.conftest import make_workspace
from tests.runtime.steps import run
from tests.runtime.test_decide import plan, who
from tests.runtime.test_promises import _hook_toml, _ledger_rows

D = "2026-12-05T09:00"
FIRE = datetime(2026, 12, 4, 19, 0, tzinfo=UTC)  # 09:00 on 5 December at UTC+14: the occurrence's fire time


def _at(zone: str, text: str = D) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def test_each_user_waits_for_the_wall_clock_time_in_their_own_zone():
    p = plan(local_send=D)
    cases = {"Asia/Tokyo": datetime(2026, 12, 5, 0, 0, tzinfo=UTC), "Europe/London": datetime(2026, 12, 5, 9, 0,
                                                                                            tzinfo=UTC),
             "America/New_York": datetime(2026, 12, 5, 14, 0, tzinfo=UTC),
             "Asia/Kathmandu": datetime(2026, 12, 5, 3, 15, tzinfo=UTC),  # UTC+05:45
             "Asia/Kolkata": datetime(2026, 12, 5, 3, 30, tzinfo=UTC),
             None: datetime(2026, 12, 5, 1, 0, tzinfo=UTC),  # no zone: the workspace's (Shanghai)
             "Mars/Base": datetime(2026, 12, 5, 1, 0, tzinfo=UTC)}  # not a zone: the workspace's
    for zone, want in cases.items():
        d = decide(p, who(tz=zone), [], [], Budget(None, None), FIRE)
        assert (d.status, d.not_before, d.due_at) == ("deferred", want, want), zone
    # UTC+14 itself reaches 09:00 at the fire time: sent at once
    d = decide(p, who(tz="Pacific/Kiritimati"), [], [], Budget(None, None), FIRE)
    assert (d.status, d.not_before) == ("pending", None)


def test_quiet_hours_still_apply_at_the_local_time_and_the_budget_day_is_the_send_day():
    p = plan(local_send=D, quiet=[("08:00", "10:30")], budget_daily=Decimal("1"),
             arms=[ArmPlan(kind="all", name="all", notify=[ChannelPlan(channel="push", cost=Decimal("0.6"))])])
    b = Budget(None, Decimal("1"))
    d = decide(p, who(tz="Europe/London"), [], [], b, FIRE)
    assert d.not_before == datetime(2026, 12, 5, 10, 30, tzinfo=UTC)
    assert set(b.spent) == {datetime(2026, 12, 5).date()}  # 18:30 in Shanghai on the 5th, not the 4th's budget


def test_a_late_run_sends_at_once_on_the_users_day_and_skips_users_whose_day_is_over():
    p = plan(local_send=D)
    late = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)  # 21:00 in Tokyo (still the 5th), 06:00 on the 6th in Kiritimati
    d = decide(p, who(tz="Asia/Tokyo"), [], [], Budget(None, None), late)
    assert (d.status, d.not_before) == ("pending", None)
    d = decide(p, who(tz="Pacific/Kiritimati"), [], [], Budget(None, None), late)
    assert (d.status, d.reason) == ("skipped", "local time passed: 2026-12-05 09:00 Pacific/Kiritimati")
    d = decide(p, who(tz="America/New_York"), [], [], Budget(None, None), late)  # 07:00 in New York: waits
    assert d.not_before == datetime(2026, 12, 5, 14, 0, tzinfo=UTC)


def test_daylight_saving_gap_and_repeat():
    ny = ZoneInfo("America/New_York")
    # 14 March 2027: 02:00 -> 03:00 in New York; 02:30 is read as every scheduled time is, with the offset after
    # the change (EDT), as Prefect fires schedules: 06:30 UTC
    assert local_send_at(plan(local_send="2027-03-14T02:30"), ny) == datetime(2027, 3, 14, 6, 30, tzinfo=UTC)
    # 7 November 2027: 01:30 happens twice; the first (EDT, 05:30 UTC)
    assert local_send_at(plan(local_send="2027-11-07T01:30"), ny) == datetime(2027, 11, 7, 5, 30, tzinfo=UTC)
    assert local_send_at(plan(), ny) is None


def test_a_grant_without_a_message_waits_for_the_local_time_too():
    p = plan(local_send=D, arms=[ArmPlan(kind="all", name="all", give=["pts"])],
             resources={"pts": ResourcePlan(kind="points", name="pts")})
    d = decide(p, who(tz="Europe/London"), [], [], Budget(None, None), FIRE)
    assert (d.status, d.channel, d.not_before) == ("deferred", None, _at("Europe/London"))


LOCAL = '''
campaign t_local {
  who count(orders within 365d) >= 1
  when daily at 09:00 tz user
  where push template "t/push.j2"
  how
    step touch: notify where
  how much
    quiet 22:00-08:00
}
'''


def test_one_occurrence_decides_everyone_once_and_releases_send_each_at_their_local_time(tmp_path, prefect_api,
                                                                                         hook, ledger):
    from runtime.demo_data import make_shop
    from runtime.flows import release_step

    h, url = hook
    root = make_workspace(tmp_path / "ws", {"local.camp": LOCAL}, toml=_hook_toml(url),
                          templates={"t/push.j2": "push {{ user.id }}"})
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 400, seed=5)
    summary = run(root, "t_local", FIRE + timedelta(minutes=1), ledger_url=ledger)
    assert summary["occurrence"] == "2026-12-04T19:00Z"
    assert not h.delivered  # 09:00 has come nowhere yet (UTC+14 has no users here)
    zones = dict(_ledger_rows(ledger, "SELECT d.user_id, r.data FROM camp_deliveries d JOIN camp_recipients r ON "
                                      "r.user_id = d.user_id AND r.occurrence = d.occurrence WHERE d.status = 'deferred'"))
    import json

    zone_of = {u: json.loads(data).get("u_timezone") or "Asia/Shanghai" for u, data in zones.items()}
    want = {u: _at(z) for u, z in zone_of.items()}
    assert len(set(zone_of.values())) == 4  # Shanghai, Tokyo, London, New York
    releases = [datetime.fromisoformat(t) for t in summary["releases"]]
    assert releases == sorted(set(want.values()))
    # a second run of the same occurrence later that day decides no one again
    again = run(root, "t_local", FIRE + timedelta(hours=2), ledger_url=ledger)
    assert again["this_run"].get("deferred", 0) == 0
    data_url = f"duckdb:///{root / 'shop.duckdb'}"
    from tests.runtime.steps import program_of

    channels = {n: s.model_dump() for n, s in program_of(root)[0].config.channels.items()}
    for i, t in enumerate(releases):
        out = release_step("t_local", data_url, ledger, t.isoformat(), channels)
        assert out is not None and out["occurrence"] == f"release@{t:%Y-%m-%dT%H:%MZ}"
        assert [datetime.fromisoformat(x) for x in out["releases"]] == releases[i + 1:]
        sent_now = {u for u, w in want.items() if w == t}
        assert out["this_run"]["released"] == len(sent_now), (out["this_run"], out["reasons"])
    assert release_step("t_local", data_url, ledger, releases[-1].isoformat(), channels) is None  # nothing left
    assert sorted(d["user_id"] for d in h.delivered.values()) == sorted(want)
    assert len(h.raw) == len(want)  # each user once
    due = dict(_ledger_rows(ledger, "SELECT user_id, due_at FROM camp_deliveries WHERE status = 'sent'"))
    assert {u: t.astimezone(UTC) for u, t in due.items()} == want
    for u, t in due.items():
        assert t.astimezone(ZoneInfo(zone_of[u])).strftime("%Y-%m-%d %H:%M") == "2026-12-05 09:00"


def test_two_releases_of_the_same_deliveries_at_once_send_each_message_once(tmp_path, hook, monkeypatch):
    """PostgreSQL ledger, two processes' worth of releases (threads, each with its own ledger session) that have
    both read the same deferred deliveries before either re-checks them (a barrier holds them there)."""
    import runtime.release as release_stage
    from runtime import engine
    from runtime.context import Run
    from runtime.demo_data import make_shop
    from runtime.ledger import open_ledger
    from tests.runtime.conftest import pg_schema
    from tests.runtime.steps import plan_for

    with pg_schema(f"camp_release_race_{threading.get_native_id()}") as url_lg:
        h, url = hook
        root = make_workspace(tmp_path / "ws", {"local.camp": LOCAL}, toml=_hook_toml(url),
                              templates={"t/push.j2": "push {{ user.id }}"})
        data_url = url_lg  # the shop in the same schema: two threads of one process may not share a DuckDB file's
        make_shop(data_url, 300, seed=6)  # replacement scans (two processes would each open their own)
        lg = open_ledger(url_lg)
        from tests.runtime.steps import program_of

        ws, _ = program_of(root)
        channels = {n: s.model_dump() for n, s in ws.config.channels.items()}
        first = Run(plan_for(root, "t_local", FIRE, dialect="postgres"), lg, data_url, FIRE,
                           channel_config=channels)
        from tests.runtime.steps import run_engine

        run_engine(first, 1000)
        lg.close()
        at = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)  # Tokyo's and Shanghai's 09:00 have come
        due = _ledger_rows(url_lg, "SELECT count(*) FROM camp_deliveries WHERE status = 'deferred' AND "
                                   "not_before <= ?", (at,))[0][0]
        assert due > 50
        barrier = threading.Barrier(2, timeout=60)
        original = release_stage.recheck

        def both_read_first(run, items, moment):
            if moment == "release":
                barrier.wait()
            return original(run, items, moment)

        monkeypatch.setattr(release_stage, "recheck", both_read_first)
        errors: list[BaseException] = []

        def release():
            mine = open_ledger(url_lg)
            try:
                r = engine.release_run(mine, "t_local", data_url, at, channels)
                assert r is not None
                release_stage.release(r)
                r.close()
            except BaseException as exc:  # noqa: BLE001 (reported below)
                errors.append(exc)
            finally:
                mine.close()

        threads = [threading.Thread(target=release) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert len(h.raw) == len(h.delivered) == due  # each message once, though both releases read them all
        sent = _ledger_rows(url_lg, "SELECT count(*) FROM camp_deliveries WHERE status = 'sent'")[0][0]
        assert sent == due
