"""Consent, address and caps hold at every moment a message can go out, through the real flow (the
engine `camp run` runs) with real webhook receivers, on a DuckDB and a PostgreSQL ledger:

- release after quiet hours: users who withdrew consent while their message waited get nothing
  (issue 10: 1,109 of 1,109 still received it), and are recorded `suppressed` ... `at release`;
- fallback after a permanent failure: the fallback channel is checked against the ledger's history
  (issue 10: 421 users got 2 SMS in an hour under `cap 1 sms per user per 7d`);
- a follow-up step reads consent and addresses as they are at its own time;
- run records: a run whose process died is marked `interrupted` by the run that takes over its
  occurrence, and a run still alive is not.
"""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import duckdb

from runtime.demo_data import make_shop
from tests.runtime.conftest import camp, make_workspace
from tests.runtime.steps import plan_for, program_of, run

SH = ZoneInfo("Asia/Shanghai")
TEMPLATES = {"t/push.j2": "push {{ user.id }}", "t/sms.j2": "sms {{ user.id }}", "t/again.j2": "again {{ user.id }}"}
QUIET = '''
campaign t_quiet {
  who count(orders within 365d) >= 1
  what coupon Q5 { value 5 CNY  usable 7d after issue }
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "t/push.j2" else sms template "t/sms.j2"
  how
    step touch: give what, notify where
  how much
    budget 100000 CNY total
    cost sms 0.05 CNY, push 0.01 CNY
    quiet 22:00-08:00
}
'''
SMS_FIRST = '''
campaign t_sms {
  who count(orders within 365d) >= 3
  when daily at 10:00 tz "Asia/Shanghai"
  where sms template "t/sms.j2"
  how
    step touch: notify where
}
'''
PUSH_ELSE_SMS = '''
campaign t_push {
  who count(orders within 365d) >= 1
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "t/push.j2" else sms template "t/sms.j2"
  how
    step touch: notify where
  how much
    cost sms 0.05 CNY, push 0.01 CNY
}
'''
JOURNEY = '''
campaign t_journey {
  who count(orders within 365d) >= 1
  when daily at 10:00 tz "Asia/Shanghai"
  where sms template "t/sms.j2"
  how
    step touch: notify where
    step reminder after 1d: notify sms template "t/again.j2"
}
'''
POLICY = "policy {\n  cap 1 sms per user per 7d\n}\n"


def _hook_toml(url: str) -> str:
    return "".join(f'[channels.{ch}]\nkind = "webhook"\nsettings = {{ url = "{url}/{ch}", retries = 1, '
                   f'backoff = 0.01 }}\n' for ch in ("push", "sms"))


def _ledger_rows(url: str, sql: str, params=()):
    from runtime.ledger import Ledger

    lg = Ledger(url)
    try:
        return lg.rows(sql, params)
    finally:
        lg.close()


def _shop(root, sql: str, params=()):
    con = duckdb.connect(str(root / "shop.duckdb"))
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def test_users_who_withdraw_consent_while_their_message_waits_for_quiet_hours_get_nothing(tmp_path, prefect_api,
                                                                                          hook, ledger):
    h, url = hook
    root = make_workspace(tmp_path / "ws", {"quiet.camp": QUIET}, toml=_hook_toml(url), templates=TEMPLATES)
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 1500, seed=17)
    night = datetime(2026, 12, 1, 23, 0, tzinfo=SH)  # the 10:00 occurrence, run late: Shanghai is quiet
    run(root, "t_quiet", night, ledger_url=ledger)
    deferred = sorted(u for (u,) in _ledger_rows(ledger, "SELECT user_id FROM camp_deliveries WHERE "
                                                         "status = 'deferred'"))
    assert len(deferred) > 500  # many users wait for the morning
    assert not {d["user_id"] for d in h.delivered.values()} & set(deferred)
    withdrawn = deferred[: len(deferred) * 4 // 5]
    kept = deferred[len(deferred) * 4 // 5:]
    _shop(root, "DELETE FROM consent WHERE user_id IN (SELECT unnest(?)::BIGINT)", (withdrawn,))
    spent_before = _ledger_rows(ledger, "SELECT sum(amount) FROM camp_spend")[0][0]
    morning = datetime(2026, 12, 2, 8, 30, tzinfo=SH)  # still the 1 December occurrence: a release, no new decision
    summary = run(root, "t_quiet", morning, ledger_url=ledger)

    got = {d["user_id"] for d in h.delivered.values()}
    assert not got & set(withdrawn)  # not one message to a user who withdrew consent
    assert set(kept) <= got  # the others were released
    rows = {u: (s, r, c) for u, s, r, c in _ledger_rows(ledger, "SELECT user_id, status, reason, cost FROM "
                                                                "camp_deliveries")}
    assert {rows[u][:2] for u in withdrawn} == {("suppressed", "no_consent:push at release; no_consent:sms at release")}
    assert all(rows[u][2] == 0 for u in withdrawn)
    coupons = dict(_ledger_rows(ledger, "SELECT user_id, state FROM camp_coupons"))
    assert {coupons[u] for u in withdrawn} == {"void"} and {coupons[u] for u in kept} == {"issued"}
    # their reservations went back to the budget: spend is exactly what the remaining deliveries cost
    spent = _ledger_rows(ledger, "SELECT sum(amount) FROM camp_spend")[0][0]
    assert spent == _ledger_rows(ledger, "SELECT sum(cost) FROM camp_deliveries")[0][0] < spent_before
    assert summary["this_run"]["suppressed at release"] == len(withdrawn)
    assert summary["this_run"]["released"] == len(kept)


def test_a_fallback_after_a_permanent_failure_respects_the_sms_cap_against_history(tmp_path, prefect_api, hook,
                                                                                 ledger):
    h, url = hook
    root = make_workspace(tmp_path / "ws", {"sms.camp": SMS_FIRST, "push.camp": PUSH_ELSE_SMS},
                          toml=_hook_toml(url), policy=POLICY, templates=TEMPLATES)
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 800, seed=23)
    run(root, "t_sms", datetime(2026, 12, 1, 10, 0, tzinfo=SH), ledger_url=ledger)
    had_sms = {d["user_id"] for d in h.delivered.values() if d["path"] == "/sms"}
    assert len(had_sms) > 100
    # the push provider rejects every user (422, permanent): everyone falls back to SMS an hour later
    h.reject = {("/push", str(u)) for u in range(1, 801)}
    summary = run(root, "t_push", datetime(2026, 12, 1, 11, 0, tzinfo=SH), ledger_url=ledger)

    sms_per_user: dict[str, int] = {}
    for d in h.delivered.values():
        if d["path"] == "/sms":
            sms_per_user[d["user_id"]] = sms_per_user.get(d["user_id"], 0) + 1
    assert max(sms_per_user.values()) == 1  # cap 1 sms per user per 7d: nobody got two
    push_rows = {u: (s, ch, r) for u, s, ch, r in _ledger_rows(
        ledger, "SELECT user_id, status, channel, reason FROM camp_deliveries WHERE campaign = 't_push'")}
    capped = {u for u, (s, _, r) in push_rows.items()
              if (s, r) == ("suppressed", "cap:cap 1 sms per user per 7d (policy) at fallback")}
    assert len(capped) > 50 and capped <= had_sms
    assert not {u for u, (s, ch, _) in push_rows.items() if (s, ch) == ("sent", "sms")} & had_sms
    # a user who had no SMS this week falls back to SMS as before
    moved = {u for u, (s, ch, _) in push_rows.items() if (s, ch) == ("sent", "sms")}
    assert moved and not moved & had_sms
    assert summary["reasons"]["suppressed: cap:cap 1 sms per user per 7d (policy) at fallback"] == len(capped)
    # the ledger agrees with the receiver: one counted SMS per user at most, across both campaigns
    per_user = _ledger_rows(ledger, "SELECT user_id, count(*) FROM camp_deliveries WHERE channel = 'sms' AND "
                                    "status = 'sent' GROUP BY user_id HAVING count(*) > 1")
    assert per_user == []


def test_a_follow_up_reads_consent_and_addresses_at_its_own_time(tmp_path, prefect_api, hook, ledger):
    from compiler.step_plan import build_plan
    from runtime import flows

    h, url = hook
    root = make_workspace(tmp_path / "ws", {"journey.camp": JOURNEY}, toml=_hook_toml(url), templates=TEMPLATES)
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 300, seed=29)
    touch = datetime(2026, 12, 1, 10, 0, tzinfo=SH)
    run(root, "t_journey", touch, ledger_url=ledger)
    touched = sorted({d["user_id"] for d in h.delivered.values()}, key=int)
    assert len(touched) > 60
    withdrawn, no_phone, rest = touched[:20], touched[20:40], touched[40:]
    _shop(root, "DELETE FROM consent WHERE channel = 'sms' AND user_id IN (SELECT unnest(?)::BIGINT)", (withdrawn,))
    _shop(root, "UPDATE users SET phone = NULL WHERE user_id IN (SELECT unnest(?)::BIGINT)", (no_phone,))
    ws, program = program_of(root)
    later = datetime(2026, 12, 2, 10, 5, tzinfo=SH)
    occurrence = plan_for(root, "t_journey", touch).occurrence
    plan = build_plan(program, program.campaigns["t_journey"], later, "duckdb", ws.template_dir, "reminder",
                      ws.config.workspace.name, occurrence=occurrence)
    with flows.run_settings():
        flows.run_step(plan.model_dump(mode="json"), f"duckdb:///{root / 'shop.duckdb'}", ledger, later.isoformat(),
                       False, 100, {n: s.model_dump() for n, s in ws.config.channels.items()})
    reminded = {d["user_id"] for d in h.delivered.values() if d["key"].startswith("t_journey/reminder/")}
    assert reminded == set(rest)
    rows = dict(_ledger_rows(ledger, "SELECT user_id, reason FROM camp_deliveries WHERE step = 'reminder' AND "
                                     "status = 'suppressed'"))
    assert {rows[u] for u in withdrawn} == {"no_consent:sms"} and {rows[u] for u in no_phone} == {"no_address:sms"}


def _engine_run(root, ledger_url: str, as_of: datetime):
    from runtime.context import Run
    from runtime.ledger import open_ledger

    lg = open_ledger(ledger_url)
    return Run(plan_for(root, "t_push", as_of), lg, f"duckdb:///{root / 'shop.duckdb'}", as_of)


def test_a_killed_run_is_marked_interrupted_by_the_next_run_and_a_live_one_is_not(tmp_path, ledger):
    from runtime import engine
    from runtime import recover as recover_stage

    root = make_workspace(tmp_path / "ws", {"push.camp": PUSH_ELSE_SMS}, templates=TEMPLATES)
    at = datetime(2026, 12, 1, 10, 0, tzinfo=SH)
    dead = _engine_run(root, ledger, at)
    engine.start(dead)
    alive = _engine_run(root, ledger, at)
    engine.start(alive)
    if ledger.startswith("postgresql"):
        recover_stage.recover(alive)  # the other run's session is open: it is alive, whatever its row says
        assert dict(_ledger_rows(ledger, "SELECT run_id, status FROM camp_runs"))[dead.run_id] == "running"
        dead.ledger.close()  # what a SIGKILL does to the process's session: its locks go with it
    # DuckDB: one process writes the ledger, so a `running` row of another run of the occurrence is dead
    deadline = time.monotonic() + 10  # the server ends a closed session's backend (and its locks) promptly
    while not recover_stage._interrupt_dead(alive) and time.monotonic() < deadline and ledger.startswith("postgresql"):
        time.sleep(0.05)
    recover_stage.recover(alive)
    statuses = dict(_ledger_rows(ledger, "SELECT run_id, status FROM camp_runs"))
    assert statuses == {dead.run_id: "interrupted", alive.run_id: "running"}
    engine.finish(alive, {"statuses": {}})
    other = _engine_run(root, ledger, datetime(2026, 12, 2, 10, 0, tzinfo=SH))  # another occurrence: not its work
    engine.start(other)
    recover_stage.recover(other)
    assert dict(_ledger_rows(ledger, "SELECT run_id, status FROM camp_runs"))[alive.run_id] == "finished"
    for r in (alive, other):
        r.ledger.close()
    if ledger.startswith("duckdb"):
        dead.ledger.close()
    shown = camp("runs", "--ledger", ledger, cwd=root)
    assert shown.returncode == 0, shown.stderr
    line = next(x for x in shown.stdout.splitlines() if x.startswith(dead.run_id))
    assert "interrupted" in line.split()


def test_the_run_that_writes_a_snapshot_skips_the_unsent_lookup_and_a_rerun_does_not(tmp_path):
    """DuckDB (one writer): a run that has just written the occurrence's first snapshot rows has nothing to recover,
    so it does not look (the lookup scans the snapshot table); it still marks an attempt that died before the
    snapshot interrupted. A rerun, which finds the snapshot written, looks."""
    from runtime import engine
    from runtime import recover as recover_stage

    ledger = f"duckdb:///{tmp_path / 'ledger.duckdb'}"
    root = make_workspace(tmp_path / "ws", {"push.camp": PUSH_ELSE_SMS}, templates=TEMPLATES)
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 200, seed=5)
    at = datetime(2026, 12, 1, 10, 0, tzinfo=SH)
    dead = _engine_run(root, ledger, at)
    engine.start(dead)  # killed before its snapshot
    dead.ledger.close()
    first = _engine_run(root, ledger, at)
    engine.start(first)
    lo, hi = engine.snapshot(first)
    assert (lo, hi != 0) == (0, True) and first.snapshot.fresh
    looked = []
    first.ledger.unsent = lambda occ: looked.append(occ) or []  # type: ignore[method-assign]
    assert recover_stage.recover(first) == 0 and looked == []
    assert dict(_ledger_rows(ledger, "SELECT run_id, status FROM camp_runs"))[dead.run_id] == "interrupted"
    first.ledger.close()
    rerun = _engine_run(root, ledger, at)
    engine.start(rerun)
    assert engine.snapshot(rerun) == (lo, hi) and not rerun.snapshot.fresh
    rerun.ledger.unsent = lambda occ: looked.append(occ) or []  # type: ignore[method-assign]
    recover_stage.recover(rerun)
    assert looked == [rerun.ctx.occ]
    rerun.ledger.close()


def test_spend_and_reasons_are_exact_when_released_users_move_to_another_channel(tmp_path, prefect_api, hook,
                                                                                 ledger):
    """Push consent withdrawn while waiting, SMS consent kept: released on SMS, the costlier channel,
    with the difference reserved in the budget."""
    h, url = hook
    root = make_workspace(tmp_path / "ws", {"quiet.camp": QUIET}, toml=_hook_toml(url), templates=TEMPLATES)
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 400, seed=31)
    run(root, "t_quiet", datetime(2026, 12, 1, 23, 0, tzinfo=SH), ledger_url=ledger)
    waiting = {u: ch for u, ch in _ledger_rows(ledger, "SELECT user_id, channel FROM camp_deliveries WHERE "
                                                       "status = 'deferred'")}
    sms_ok = {str(u) for (u,) in _shop(root, "SELECT user_id FROM consent WHERE channel = 'sms'")}
    movers = sorted(u for u, ch in waiting.items() if ch == "push" and u in sms_ok)[:30]
    assert len(movers) == 30
    _shop(root, "DELETE FROM consent WHERE channel = 'push' AND user_id IN (SELECT unnest(?)::BIGINT)", (movers,))
    run(root, "t_quiet", datetime(2026, 12, 2, 8, 30, tzinfo=SH), ledger_url=ledger)
    got = {d["user_id"]: d["path"] for d in h.delivered.values()}
    assert {got[u] for u in movers} == {"/sms"}
    rows = {u: (s, ch, c) for u, s, ch, c in _ledger_rows(ledger, "SELECT user_id, status, channel, cost FROM "
                                                                  "camp_deliveries")}
    assert {rows[u] for u in movers} == {("sent", "sms", Decimal("5.05"))}
    assert _ledger_rows(ledger, "SELECT sum(amount) FROM camp_spend")[0][0] == \
        _ledger_rows(ledger, "SELECT sum(cost) FROM camp_deliveries")[0][0]


def test_a_channel_cap_counts_only_that_channels_deliveries(tmp_path):
    """`cap 1 sms per user per 7d` is about SMS: a push last week does not use it up (it did: every
    delivery counted against every channel cap), an SMS does."""
    from runtime.decide import Past, Recipient, channel_block

    root = make_workspace(tmp_path / "ws", {"push.camp": PUSH_ELSE_SMS}, policy=POLICY, templates=TEMPLATES)
    at = datetime(2026, 12, 1, 10, 0, tzinfo=SH)
    plan = plan_for(root, "t_push", at)
    sms = next(c for c in plan.arms[0].notify if c.channel == "sms")
    user = Recipient(1, "1", False, {"phone": "13800000000"}, {}, {"push": True, "sms": True})
    yesterday = datetime(2026, 11, 30, 10, 0, tzinfo=SH)
    assert channel_block(sms, plan, user, [Past("t_other", "push", yesterday, None)], at) is None
    assert channel_block(sms, plan, user, [Past("t_other", "sms", yesterday, None)], at) == \
        "cap:cap 1 sms per user per 7d (policy)"
