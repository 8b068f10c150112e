"""Points and red packets with a lifecycle, budgets with actual spend (issue 13), on DuckDB and PostgreSQL ledgers:
one points credit per delivery, issued exactly once through the outbox or a webhook (a crash between deciding and
issuing is recovered with the same key); red packet shares paid per the decay, once per share event, never past
the budget; summaries with forecast and actual spend; the budget reconciled with redeemed coupons."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from runtime.context import Run
from runtime.demo_data import make_shop
from runtime.ledger import open_ledger
from runtime.shares import PacketBudget, Share, pay_shares
from runtime.step import channels_of
from tests.runtime.conftest import camp, make_workspace
from tests.runtime.steps import plan_for, program_of, run_engine

D = Decimal
DAY = timedelta(days=1)

POINTS = '''
campaign gift_points {
  who count(orders within 3650d) >= 1
  what points 200
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "t/push.j2"
  how
    step touch: give what, notify where
  how much
    budget 100000 CNY total
    cost push 0.10 CNY
}
'''

PACKET = '''
campaign share_packet {{
  who count(orders within 3650d) >= 1
  what red_packet SHARE10 {{
    value 10 CNY
    share decay 50% floor 2 CNY after 3
  }}
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "t/push.j2"
  how
    step invite: give what, notify where
  how much
    budget {budget}
    cost push 0 CNY
    expect redemption {rate}%
}}
'''

COUPONS = '''
campaign cheap_coupons {
  who count(orders within 3650d) >= 1
  what coupon C10 {
    value 10 CNY
    usable 30d after issue
  }
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "t/push.j2"
  how
    step touch: give what, notify where
  how much
    budget 1000 CNY total
    cost push 0 CNY
    expect redemption 10%
}
'''


def _at(day: int) -> datetime:
    return datetime(2026, 12, day, 10, 0, tzinfo=UTC) - timedelta(hours=8)


def _workspace(tmp_path, files: dict[str, str], toml: str = ""):
    root = make_workspace(tmp_path / "ws", files, toml=toml, templates={"t/push.j2": "hello"})
    shop = f"duckdb:///{root / 'shop.duckdb'}"
    make_shop(shop, 60, seed=5)
    return root, shop


def _run(root, shop: str, ledger: str, campaign: str, day: int) -> dict:
    ws, _ = program_of(root)
    at = _at(day)
    lg = open_ledger(ledger)
    try:
        return run_engine(Run(plan_for(root, campaign, at), lg, shop, at, channel_config=channels_of(ws)), 25)
    finally:
        lg.close()


def _rows(ledger: str, sql: str, params: tuple = ()) -> list[tuple]:
    lg = open_ledger(ledger)
    try:
        return lg.rows(sql, params)
    finally:
        lg.close()


# ------------------------------------------------------------------ points


def test_points_are_credited_once_per_delivery_through_the_outbox_and_counted_in_the_budget(tmp_path, ledger):
    root, shop = _workspace(tmp_path, {"p.camp": POINTS}, toml='[points]\ncost_per_point = "0.01"\n')
    summary = _run(root, shop, ledger, "gift_points", 1)
    sent = dict(_rows(ledger, "SELECT idempotency_key, user_id FROM camp_deliveries WHERE status = 'sent'"))
    assert len(sent) >= 10
    credits = _rows(ledger, "SELECT idempotency_key, user_id, points, cost, state, issuer, provider_id, issued_at "
                            "FROM camp_points")
    assert {k: u for k, u, *_ in credits} == sent  # one credit per delivery, keyed by the delivery's key
    assert {(p, D(c), s, i) for _, _, p, c, s, i, _, _ in credits} == {(200, D("2"), "issued", "outbox")}
    assert all(prov == f"outbox:{k}" and at is not None for k, *_, prov, at in credits)
    # the forecast reserved each decided delivery's push (0.10) and its points (200 x 0.01)
    costs = [D(c) for (c,) in _rows(ledger, "SELECT cost FROM camp_deliveries WHERE status <> 'suppressed'")]
    assert set(costs) == {D("2.10")}
    assert sum(D(a) for (a,) in _rows(ledger, "SELECT amount FROM camp_spend")) == sum(costs)
    assert D(summary["spend"]["actual"]["points"]) == len(sent) * 2
    assert D(summary["spend"]["forecast"]) == sum(costs)

    _run(root, shop, ledger, "gift_points", 1)  # the same occurrence again: nothing credited twice
    assert len(_rows(ledger, "SELECT * FROM camp_points")) == len(sent)
    _run(root, shop, ledger, "gift_points", 2)  # the next day's occurrence credits again
    user = sorted(sent.values())[0]
    balance = camp("points", ".", "--user", user, "--ledger", ledger, cwd=root)
    assert balance.returncode == 0, balance.stderr
    assert f"user {user}: 400 points issued" in balance.stdout


def test_points_stop_at_the_budget_and_cost_what_they_reserved(tmp_path, ledger):
    """50 CNY, 2.10 per delivery (push 0.10, 200 points at 0.01): 23 deliveries get points, the rest are left out
    by the budget; the points actually issued cost no more than the budget."""
    root, shop = _workspace(tmp_path, {"p.camp": POINTS.replace("100000 CNY total", "50 CNY total")},
                            toml='[points]\ncost_per_point = "0.01"\n')
    summary = _run(root, shop, ledger, "gift_points", 1)
    assert summary["statuses"]["sent"] == 23 and summary["statuses"]["budget_exhausted"] > 0
    assert len(_rows(ledger, "SELECT * FROM camp_points WHERE state = 'issued'")) == 23
    assert D(summary["spend"]["actual"]["points"]) == 46 <= 50
    assert D(summary["budget_left"]["total"]) == 50 - 23 * D("2.10")


def test_points_wait_for_their_delivery_released_after_quiet_hours_or_void_when_it_is_not_sent(tmp_path, ledger):
    from runtime.warehouse import connect

    quiet = POINTS.replace("cost push 0.10 CNY", "cost push 0.10 CNY\n    quiet 22:00-08:00")
    root, shop = _workspace(tmp_path, {"p.camp": quiet}, toml='[points]\ncost_per_point = "0.01"\n')
    ws, _ = program_of(root)

    def run_at(at: datetime) -> dict:
        lg = open_ledger(ledger)
        try:
            return run_engine(Run(plan_for(root, "gift_points", at), lg, shop, at, channel_config=channels_of(ws)), 25)
        finally:
            lg.close()

    run_at(datetime(2026, 12, 1, 15, 0, tzinfo=UTC))  # 23:00 in Shanghai: users there wait for the morning
    status = dict(_rows(ledger, "SELECT user_id, status FROM camp_deliveries"))
    deferred = sorted((u for u, s in status.items() if s == "deferred"), key=int)
    assert len(deferred) >= 10
    states = dict(_rows(ledger, "SELECT user_id, state FROM camp_points"))
    assert {states[u] for u in deferred} == {"pending"}  # not sent yet: not issued
    assert {states[u] for u, s in status.items() if s == "sent"} == {"issued"}  # users in other zones
    withdrawn, kept = deferred[:5], deferred[5:]
    wh = connect(shop)
    wh.execute(f"DELETE FROM consent WHERE user_id IN ({', '.join(withdrawn)})")
    wh.close()
    summary = run_at(datetime(2026, 12, 2, 0, 30, tzinfo=UTC))  # 08:30: the release of the same occurrence
    states = dict(_rows(ledger, "SELECT user_id, state FROM camp_points"))
    assert {states[u] for u in kept} == {"issued"} and {states[u] for u in withdrawn} == {"void"}
    sent = [u for (u,) in _rows(ledger, "SELECT user_id FROM camp_deliveries WHERE status = 'sent'")]
    assert set(kept) <= set(sent) and not set(withdrawn) & set(sent)
    assert D(summary["spend"]["actual"]["points"]) == 2 * len(sent)
    # the withdrawn users' reservations (push and points) went back: spend is what the sent deliveries cost
    assert D(summary["spend"]["forecast"]) == len(sent) * D("2.10")


def test_points_through_a_webhook_are_issued_exactly_once_after_a_crash(tmp_path, ledger, hook, monkeypatch):
    from runtime import engine
    from runtime.batch import decide_batch
    from runtime.ledger.store import Ledger
    from runtime.points import issue_points
    from runtime.snapshot import snapshot

    h, url = hook
    root, shop = _workspace(tmp_path, {"p.camp": POINTS}, toml=(
        f'[points]\ncost_per_point = "0.01"\nissue_with = "shop_points"\n[channels.shop_points]\nkind = "webhook"\n'
        f'settings = {{ url = "{url}/points", retries = 0 }}\n'))
    ws, _ = program_of(root)
    at = _at(1)

    # a run killed after deciding, before issuing: its credits stay pending, nothing reached the points system
    killed = Run(plan_for(root, "gift_points", at), open_ledger(ledger), shop, at, channel_config=channels_of(ws))
    engine.start(killed)
    lo, hi = snapshot(killed)
    decide_batch(killed, lo, hi)
    killed.close()
    killed.ledger.close()
    pending = dict(_rows(ledger, "SELECT idempotency_key, state FROM camp_points"))
    assert len(pending) >= 10 and set(pending.values()) == {"pending"} and h.raw == []

    # the next run dies after the points system took the first credit and before the ledger recorded it
    calls = {"n": 0}
    real = Ledger.points_issued

    def dies_once(self, key, at, provider):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("killed")
        return real(self, key, at, provider)

    monkeypatch.setattr(Ledger, "points_issued", dies_once)
    second = Run(plan_for(root, "gift_points", at), open_ledger(ledger), shop, at, channel_config=channels_of(ws))
    with pytest.raises(RuntimeError, match="killed"):
        issue_points(second)
    second.close()
    second.ledger.close()
    monkeypatch.setattr(Ledger, "points_issued", real)

    _run(root, shop, ledger, "gift_points", 1)  # recovers: the rest issued, the first sent again with its key
    rows = _rows(ledger, "SELECT idempotency_key, state, provider_id FROM camp_points")
    assert {s for _, s, _ in rows} == {"issued"} and len(rows) == len(pending)
    assert set(h.delivered) == {f"{k}/points" for k in pending}  # the points system credited each once
    assert len(h.raw) == len(pending) + 1  # one retry of the same key, answered with the first credit
    assert all(p == "msg-" + f"{k}/points".replace("/", "-") for k, _, p in rows)
    assert {r["data"]["points"] for r in h.raw} == {200}
    _run(root, shop, ledger, "gift_points", 1)
    assert len(h.raw) == len(pending) + 1  # nothing pending: nothing sent again


# ------------------------------------------------------------------ red packets

SHARE10 = [D("10.00"), D("5.00"), *[D("2.00")] * 8]


def _budgets(root) -> dict[str, PacketBudget]:
    _, program = program_of(root)
    return {c.name: PacketBudget(c.budget_total.amount if c.budget_total else None,
                                 c.budget_daily.amount if c.budget_daily else None, program.timezone)
            for c in program.campaigns.values()}


def test_shares_pay_the_decay_once_per_share_event(tmp_path, ledger):
    root, shop = _workspace(tmp_path, {"r.camp": PACKET.format(budget="100000 CNY total", rate=60)})
    _run(root, shop, ledger, "share_packet", 1)
    users = [u for (u,) in _rows(ledger, "SELECT user_id FROM camp_deliveries WHERE status = 'sent' ORDER BY user_id")]
    grants = _rows(ledger, "SELECT user_id, value, decay, floor, fixed_after, reserved FROM camp_red_packets")
    assert len(grants) == len(users) >= 10
    assert {(D(v), D(d), D(f), n, D(r)) for _, v, d, f, n, r in grants} == {(D(10), D("0.5"), D(2), 3, D(6))}
    u, other = users[0], users[1]
    shares = [Share(f"e{i}", u, _at(1) + i * timedelta(minutes=5)) for i in range(1, 11)]
    lg = open_ledger(ledger)
    paid = pay_shares(lg, shares, _budgets(root))
    assert [(p.nth, p.amount, p.state) for p in paid] == [(n, a, "paid") for n, a in enumerate(SHARE10, 1)]
    assert pay_shares(lg, shares[::-1], _budgets(root)) == []  # replayed events: nothing paid twice
    before = pay_shares(lg, [Share("early", other, _at(1) - DAY)], _budgets(root))  # before any packet
    assert [(p.state, p.reason) for p in before] == [("refused", "no red packet granted")]
    lg.close()
    rows = _rows(ledger, "SELECT nth, amount FROM camp_red_packet_shares WHERE user_id = ? ORDER BY nth", (u,))
    assert [(n, D(a)) for n, a in rows] == list(enumerate(SHARE10, 1))
    # each decided delivery reserved 6 (10 x 60%); the 31 paid go beyond the grant's 6 by 25, now part of the
    # campaign's spend
    reserved = sum(D(c) for (c,) in _rows(ledger, "SELECT cost FROM camp_deliveries"))
    assert reserved >= 6 * len(users)
    spend = sum(D(a) for (a,) in _rows(ledger, "SELECT amount FROM camp_spend"))
    assert spend == reserved + 25
    summary = _run(root, shop, ledger, "share_packet", 1)
    assert D(summary["spend"]["actual"]["red_packets"]) == 31 and D(summary["spend"]["forecast"]) == spend


def test_camp_emit_share_pays_the_latest_packet_of_the_user(tmp_path):
    root, shop = _workspace(tmp_path, {"r.camp": PACKET.format(budget="100000 CNY total", rate=60)})
    ledger = f"duckdb:///{root / 'ledger.duckdb'}"
    _run(root, shop, ledger, "share_packet", 1)
    user = _rows(ledger, "SELECT min(user_id) FROM camp_deliveries WHERE status = 'sent'")[0][0]
    outs = [camp("emit", "share", "--user", user, "--id", f"s{i}", "--occurred", "2026-12-01T12:00:00+08:00",
                 cwd=root) for i in (1, 2, 3, 2)]
    assert [o.returncode for o in outs] == [0, 0, 0, 0], [o.stderr for o in outs]
    assert "share #1 of share_packet, paid 10.00" in outs[0].stdout
    assert "share #2 of share_packet, paid 5.00" in outs[1].stdout
    assert "share #3 of share_packet, paid 2.00" in outs[2].stdout
    assert "already recorded" in outs[3].stdout


@pytest.mark.parametrize("seed", [1, 2])
def test_payouts_never_exceed_the_budget(tmp_path, ledger, seed):
    """30 CNY in all, 12 per day; each grant reserves 1 (10% of 10): random shares over three days are paid until
    the next would go past the total or the day's budget, then refused; actual spend stays within both."""
    root, shop = _workspace(tmp_path, {"r.camp": PACKET.format(budget="30 CNY total, 12 CNY per day", rate=10)})
    _run(root, shop, ledger, "share_packet", 1)
    users = [u for (u,) in _rows(ledger, "SELECT user_id FROM camp_red_packets")]
    assert len(users) == 12  # the day's budget: 12 grants of 1
    rng = random.Random(seed)
    shares = [Share(f"s{seed}-{i}", rng.choice(users), _at(1) + timedelta(minutes=rng.randrange(3 * 24 * 60)))
              for i in range(60)]
    lg = open_ledger(ledger)
    paid = pay_shares(lg, shares, _budgets(root))
    lg.close()
    states = {p.state for p in paid}
    assert states == {"paid", "refused"}
    assert {p.reason for p in paid if p.state == "refused"} <= {"budget:total"} | {
        f"budget:daily {d}" for d in ("2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04")}
    actual = sum(p.amount for p in paid if p.state == "paid")
    assert 0 < actual <= 30
    per_day = {d: D(a) for d, a in _rows(ledger, "SELECT day, amount FROM camp_spend")}
    assert sum(per_day.values()) <= 30 and max(per_day.values()) <= 12
    paid_rows = _rows(ledger, "SELECT sum(amount) FROM camp_red_packet_shares WHERE state = 'paid'")
    assert D(paid_rows[0][0]) == actual <= sum(per_day.values())


# ------------------------------------------------------------------ budgets: forecast and actual


def test_redeemed_discounts_beyond_the_forecast_come_off_the_budget(tmp_path, ledger):
    root, shop = _workspace(tmp_path, {"c.camp": COUPONS})
    first = _run(root, shop, ledger, "cheap_coupons", 1)
    n = int(first["statuses"]["sent"])
    assert D(first["budget_left"]["total"]) == 1000 - n  # each coupon reserved 1 (10 x 10%)
    lg = open_ledger(ledger)
    lg.execute("UPDATE camp_coupons SET state = 'redeemed', discount = value, redeemed_at = ?", (_at(1),))
    lg.close()
    second = _run(root, shop, ledger, "cheap_coupons", 2)
    # 2n coupons reserved 1 each (10 x 10%); the n redeemed cost 10 each: 8n beyond all the coupons reserved,
    # so the budget has spent what the discounts cost
    assert D(second["budget_left"]["total"]) == 1000 - 2 * n - 8 * n
    assert D(second["spend"]["actual"]["coupons"]) == 10 * n
    assert D(second["spend"]["forecast"]) == 2 * n


def test_camp_sync_pays_the_shops_share_events_once(tmp_path, ledger):
    """The shop's `shares` events ([red_packets] in camp.toml) are paid by `camp sync`, each once; one that reaches
    the warehouse late is paid by the next sync; shares after as-of wait."""
    from runtime.share_sync import sync_shares
    from runtime.warehouse import connect

    root, shop = _workspace(tmp_path, {"r.camp": PACKET.format(budget="100000 CNY total", rate=60)}, toml=(
        '[red_packets]\nshared_on = "shares"\nshare_field = "share_id"\npacket_field = "packet"\n'))
    _run(root, shop, ledger, "share_packet", 1)
    a, b = [u for (u,) in _rows(ledger, "SELECT user_id FROM camp_red_packets ORDER BY user_id LIMIT 2")]
    ws, program = program_of(root)
    source = ws.config.red_packets.shares(program.schema)
    assert source is not None

    def share(sid: str, user: str, hours: int, packet: str | None = "SHARE10") -> tuple:
        return (int(user), _at(1) + timedelta(hours=hours), sid, packet)

    def add(rows: list[tuple]) -> None:
        wh = connect(shop)
        wh.insert("shares", ["user_id", "shared_at", "share_id", "packet"], rows)
        wh.close()

    def sync(day: int) -> list:
        lg = open_ledger(ledger)
        try:
            return sync_shares(lg, shop, source, _at(day), _budgets(root))
        finally:
            lg.close()

    add([share("a1", a, 1), share("a2", a, 2), share("b1", b, 3, None), share("a3", a, 30), share("x", a, 2, "NOPE"),
         share("old", a, -48)])
    first = sync(2)
    assert [(p.share_id, p.nth, p.amount, p.state) for p in first] == [
        ("a1", 1, D("10.00"), "paid"), ("a2", 2, D("5.00"), "paid"), ("x", 0, D(0), "refused"),
        ("b1", 1, D("10.00"), "paid")]  # a3 is after as-of; "old" was before any packet was granted
    assert sync(2) == []
    add([share("a0", a, 2)])  # a late share, made at the same time as a2
    assert [(p.share_id, p.nth, p.amount) for p in sync(3)] == [("a0", 3, D("2.00")), ("a3", 4, D("2.00"))]
    out = camp("sync", ".", "--as-of", "2026-12-03T10:00:00+08:00", "--ledger", ledger, cwd=root)
    assert out.returncode == 0, out.stderr
    assert "new shares: 0" in out.stdout


def test_points_the_issuer_refuses_are_void_and_those_it_could_not_take_are_issued_by_the_next_run(tmp_path, ledger,
                                                                                                    hook):
    h, url = hook
    root, shop = _workspace(tmp_path, {"p.camp": POINTS}, toml=(
        f'[points]\ncost_per_point = "0.01"\nissue_with = "shop_points"\n[channels.shop_points]\nkind = "webhook"\n'
        f'settings = {{ url = "{url}/points", retries = 0 }}\n'))
    # users 1 and 3 order (the shop's seed 5); the points system rejects user 1, is down for user 3 for this run
    # (each batch tries the credits still pending again)
    h.reject.add(("/points", "1"))
    h.fail_times["3"] = 100
    _run(root, shop, ledger, "gift_points", 1)
    states = dict(_rows(ledger, "SELECT user_id, state FROM camp_points"))
    assert states["1"] == "void" and states["3"] == "pending"
    assert {s for u, s in states.items() if u not in ("1", "3")} == {"issued"}
    h.fail_times["3"] = 0
    _run(root, shop, ledger, "gift_points", 1)  # the same occurrence again: user 3's credit goes through
    states = dict(_rows(ledger, "SELECT user_id, state FROM camp_points"))
    assert states["1"] == "void" and states["3"] == "issued"
    assert "1" not in {p["user_id"] for p in h.delivered.values()}
    lg = open_ledger(ledger)
    assert lg.points_balance("1") == (0, 0) and lg.points_balance("3") == (200, 0)
    lg.close()


DAILY = '''
campaign daily_coupons {
  who count(orders within 3650d) >= 1
  what coupon C100 {
    value 100 CNY
    usable 30d after issue
  }
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "t/push.j2"
  how
    step touch: give what, notify where
    step remind after 2h: notify where
  how much
    budget 2000 CNY per day
    cost push 0.10 CNY
    expect redemption 10%
}
'''


def _local(day: int, hour: int) -> datetime:
    return datetime(2026, 12, day, hour, 0, tzinfo=UTC) - timedelta(hours=8)  # Asia/Shanghai, the workspace's zone


def _step(root, shop: str, ledger: str, at: datetime, step: str | None = None, dry_run: bool = False) -> dict:
    """A run of daily_coupons at `at`: its first step, or `step` for the journey of that day's 10:00."""
    from compiler.step_plan import build_plan

    ws, program = program_of(root)
    occurrence = (at.replace(hour=2) if step else at).strftime("%Y-%m-%dT%H:%MZ")
    plan = build_plan(program, program.campaigns["daily_coupons"], at, "duckdb", ws.template_dir, step,
                      ws.config.workspace.name, occurrence=occurrence if step else None)
    return run_engine(Run(plan, open_ledger(ledger), shop, at, dry_run, channel_config=channels_of(ws)), 25)


def test_redeemed_discounts_beyond_the_forecast_come_off_the_day_of_the_orders(tmp_path, ledger):
    """Daily budget 2000; each coupon reserves 10 (100 x 10%) and its push 0.10. Every coupon of day D is redeemed
    at 100 by an order of D (11:00 local): 90 each beyond the forecast, on D. The reminder at 12:00 of D fitted
    before the sync and is refused after it (`budget:daily D`); day D+1 has its whole room."""
    from runtime.coupon_sync import sync_coupons
    from tests.runtime.test_coupon_sync import _order, _orders

    root, shop = _workspace(tmp_path, {"d.camp": DAILY})
    touch = _step(root, shop, ledger, _local(1, 10))
    n = int(touch["statuses"]["sent"])
    assert 20 < n <= 190, n  # 90 n beyond the forecast exhausts the day; 10.2 n fits in it
    day1 = D("2000") - D("10.10") * n
    assert D(touch["budget_left"]["today"]) == day1 and touch["budget_left"]["total"] is None
    before = _step(root, shop, ledger, _local(1, 12), "remind", dry_run=True)
    assert before["statuses"] == {"pending": n}  # the reminder fits before the sync

    coupons = _rows(ledger, "SELECT user_id, coupon_id FROM camp_coupons ORDER BY user_id")
    assert len(coupons) == n
    _orders(shop, [_order(int(u), _local(1, 11), "300", c) for u, c in coupons])
    ws, program = program_of(root)
    source = ws.config.coupons.model_copy(update={"coupon_field": "coupon_id"}).redemptions(program.schema)
    assert source is not None
    lg = open_ledger(ledger)
    assert sync_coupons(lg, shop, source, _local(1, 12)).redeemed == n
    lg.close()

    after = _step(root, shop, ledger, _local(1, 12), "remind")
    assert after["statuses"] == {"budget_exhausted": n}
    assert after["reasons"] == {"budget_exhausted: budget:daily 2026-12-01": n}
    assert {d: D(v) for d, v in after["spend"]["coupons_beyond_forecast"].items()} == {"2026-12-01": 90 * n}
    assert D(after["budget_left"]["today"]) == day1 - 90 * n
    assert D(after["spend"]["actual"]["coupons"]) == 100 * n

    nxt = _step(root, shop, ledger, _local(2, 10))  # D+1: the redeemers hold no unused coupon, the day is new
    assert nxt["statuses"]["sent"] == n and "budget_exhausted" not in nxt["statuses"]
    assert D(nxt["budget_left"]["today"]) == D("2000") - D("10.10") * n
    # D+1's n coupons add 10 n to C100's forecast, which absorbs the earliest excess first: D keeps 80 n, the
    # code's total excess (100 n redeemed - 20 n reserved), as the total budget has always counted it
    assert {d: D(v) for d, v in nxt["spend"]["coupons_beyond_forecast"].items()} == {"2026-12-01": 80 * n}
    remind = _step(root, shop, ledger, _local(2, 12), "remind")
    assert remind["statuses"] == {"sent": n}


def test_camp_sync_reads_shares_from_its_watermark_less_the_late_data_allowance(tmp_path, ledger, monkeypatch):
    """1000 shares over two days, synced; the next sync reads only the shares made since the latest one read less
    `[red_packets] late_data` (2h): the rows its query returns, not its time. A late share within the allowance is
    paid once; one beyond it is never read by a sync, and `camp sync --full` records it refused, too late, once."""
    from runtime import share_sync
    from runtime.shares import TOO_LATE
    from runtime.warehouse import connect

    root, shop = _workspace(tmp_path, {"r.camp": PACKET.format(budget="100000 CNY total", rate=60)}, toml=(
        '[red_packets]\nshared_on = "shares"\nshare_field = "share_id"\nlate_data = "2h"\n'))
    _run(root, shop, ledger, "share_packet", 1)
    users = [u for (u,) in _rows(ledger, "SELECT user_id FROM camp_red_packets ORDER BY user_id")]
    ws, program = program_of(root)
    source = ws.config.red_packets.shares(program.schema)
    assert source is not None and source.late_data_minutes == 120
    made: dict[str, datetime] = {}

    def add(rows: list[tuple[str, str, datetime]]) -> None:
        made.update({sid: at for sid, _, at in rows})
        wh = connect(shop)
        wh.insert("shares", ["user_id", "shared_at", "share_id"], [(int(u), at, sid) for sid, u, at in rows])
        wh.close()

    read: list[int] = []

    def spy(*args):
        shares = real(*args)
        read.append(len(shares))
        return shares

    real = share_sync.read_shares
    monkeypatch.setattr(share_sync, "read_shares", spy)

    def sync(at: datetime) -> list:
        lg = open_ledger(ledger)
        try:
            return share_sync.sync_shares(lg, shop, source, at, _budgets(root))
        finally:
            lg.close()

    old = [(f"old{k}", users[k % len(users)], _at(1) + timedelta(minutes=3 * k)) for k in range(1, 1001)]
    add(old)  # every 3 minutes for 50 hours after the grants
    assert len(sync(_at(4))) == 1000 and read == [1000]
    mark = max(made.values())  # the latest share read
    assert mark == _at(1) + timedelta(hours=50)
    add([("late-ok", users[0], mark - timedelta(minutes=90)), ("late-beyond", users[1], mark - timedelta(hours=20)),
         ("new", users[2], _at(4) + timedelta(hours=1))])
    second = sync(_at(5))
    window = [sid for sid, at in made.items() if mark - timedelta(hours=2) <= at <= _at(5)]
    assert read[1] == len(window) == 43  # 40 old ones within the 2h, the late one within it and the new one
    assert sorted(p.share_id for p in second) == ["late-ok", "new"]
    assert {p.state for p in second} == {"paid"}
    assert sync(_at(5)) == [] and read[2] == 1  # from the new watermark: only the new share, known
    assert _rows(ledger, "SELECT count(*) FROM camp_red_packet_shares WHERE share_id = 'late-beyond'") == [(0,)]

    full = camp("sync", ".", "--as-of", "2026-12-05T10:00:00+08:00", "--ledger", ledger, "--full", cwd=root)
    assert full.returncode == 0, full.stderr
    assert "new shares: 1" in full.stdout and "paid: 0" in full.stdout
    assert "refused, not paid): 1" in full.stdout
    again = camp("sync", ".", "--as-of", "2026-12-05T10:00:00+08:00", "--ledger", ledger, "--full", cwd=root)
    assert "new shares: 0" in again.stdout and "refused, not paid): 0" in again.stdout
    assert _rows(ledger, "SELECT state, reason, amount FROM camp_red_packet_shares WHERE share_id = 'late-beyond'") \
        == [("refused", TOO_LATE, D("0.00"))]
    paid = _rows(ledger, "SELECT count(*), count(DISTINCT share_id) FROM camp_red_packet_shares WHERE state = 'paid'")
    assert paid == [(1002, 1002)]  # every share within the allowance paid, each once


def test_camp_check_locates_a_red_packet_late_data_that_is_not_a_duration(tmp_path):
    from compiler.check import check_workspace
    from compiler.workspace import load_workspace

    root = make_workspace(tmp_path / "ws", {}, toml='[red_packets]\nshare_field = "share_id"\nlate_data = "2 days"\n')
    from dsl.diagnostics import Diagnostic

    ws = load_workspace(root)
    assert not isinstance(ws, Diagnostic)
    found = [d for d in check_workspace(ws).diagnostics if d.code == "E002"]
    assert [(d.file.rsplit("/", 1)[-1], d.span.line) for d in found] == [("camp.toml", 11)], found
    assert "not a duration" in found[0].message and "12h" in found[0].hints[0]
