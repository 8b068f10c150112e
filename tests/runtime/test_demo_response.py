"""`camp demo respond`: the planted response. Converters order inside their goal window at the planted rates
(within sampling error), per campaign and per arm, redeeming orders carry the issued coupon inside its scope,
validity and minimum spend, the same seed gives the same orders, responding again replaces (never adds); red
packet shares likewise, and `camp sync` pays them per the decay; on DuckDB and PostgreSQL, and the ledger's
exposures (with the entry delivery's arm) are what the runs decided; clicks on the messages, which `camp report`
finds again."""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest

from compiler.config import Shares
from runtime.demo_clicks import ClickTable, plant_clicks
from runtime.demo_response import MARK, Effect, respond
from runtime.demo_shares import MARK as SHARE_MARK
from runtime.demo_shares import plant_shares
from runtime.ledger import open_ledger
from runtime.warehouse import connect, create_tables
from tests.conftest import CAMPAIGNS
from tests.runtime.conftest import pg_schema
from tests.runtime.steps import program_of

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
WINDOW = timedelta(days=7)


@pytest.fixture(params=["duckdb", "postgres"])
def shop(request, tmp_path):
    schema = program_of(CAMPAIGNS)[1].schema
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'shop.duckdb'}"
        wh = connect(url)
        create_tables(wh, schema)
        yield wh
        wh.close()
        return
    with pg_schema(f"camp_respond_{os.getpid()}_{request.node.name.split('[')[0][-20:]}") as url:
        wh = connect(url)
        create_tables(wh, schema)
        yield wh
        wh.close()


def _exposures(n: int, holdout_every: int = 10) -> pd.DataFrame:
    users = [str(u) for u in range(1, n + 1)]
    return pd.DataFrame({"campaign": "c", "occurrence": "2026-12-01T02:00Z", "user_id": users,
                         "sent": [0 if int(u) % holdout_every == 0 else 1 for u in users],
                         "t0": [T0 + timedelta(minutes=int(u) % 600) for u in users]})


def _coupons(exposures: pd.DataFrame) -> pd.DataFrame:
    sent = exposures[exposures["sent"] == 1]
    return pd.DataFrame({"coupon_id": "C" + sent["user_id"], "campaign": "c", "occurrence": sent["occurrence"],
                         "user_id": sent["user_id"], "min_spend": "200.00",
                         "scope": json.dumps({"category": ["beauty"]}), "usable_from": sent["t0"],
                         "usable_to": sent["t0"] + timedelta(days=3)})


def _respond(wh, exposures, coupons, seed=1, organic=Decimal("0.03"), users=None):
    everyone = pd.Series(range(1, len(exposures) + 2001)) if users is None else users
    return respond(wh, exposures, coupons, everyone, 14, seed, {"c": Effect(Decimal("0.30"), Decimal("0.10"))},
                   {"c": WINDOW}, organic, Decimal("0.5"))


def _orders(wh) -> pd.DataFrame:
    frame = wh.frame("SELECT user_id, created_at, CAST(amount AS text) AS amount, category, coupon_id FROM orders "
                     "ORDER BY user_id, created_at")
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


def _within(k: int, n: int, p: float) -> bool:
    return abs(k - n * p) <= 4 * math.sqrt(n * p * (1 - p))  # 4 standard errors: fails about once in 16,000


def test_planted_rates_windows_and_coupons_hold(shop):
    ex = _exposures(12_000)
    done = _respond(shop, ex, _coupons(ex))
    treated, tc, rest, rc = done.converted["c"]
    assert (treated, rest) == (10_800, 1_200)
    assert _within(tc, treated, 0.30) and _within(rc, rest, 0.10)
    orders = _orders(shop)
    assert len(orders) == done.orders == tc + rc + done.organic
    t0 = ex.assign(user_id=ex["user_id"].astype(int), t0=pd.to_datetime(ex["t0"], utc=True)).set_index("user_id")["t0"]
    exposed = orders[orders["user_id"].isin(t0.index)]
    assert len(exposed) == tc + rc  # each converter orders once; nobody else exposed orders
    at = exposed["created_at"].reset_index(drop=True)
    starts = t0.loc[exposed["user_id"]].reset_index(drop=True)
    assert (at > starts).all() and (at < starts + pd.Timedelta(days=7)).all()
    used = exposed[exposed["coupon_id"].notna()]
    assert _within(len(used), tc, 0.5) and len(used) == done.redeemed
    assert (used["coupon_id"] == "C" + used["user_id"].astype(str)).all()  # each redeems the coupon it holds
    assert (used["category"] == "beauty").all() and (used["amount"].map(Decimal) >= Decimal("210")).all()
    ends = t0.loc[used["user_id"]].reset_index(drop=True) + pd.Timedelta(days=3)
    assert (used["created_at"].reset_index(drop=True) < ends).all()  # inside the coupon's validity
    held = set(ex[ex["sent"] == 0]["user_id"].astype(int))
    assert not set(used["user_id"]) & held  # the holdout holds no coupon and redeems none
    organic = orders[~orders["user_id"].isin(t0.index)]
    assert len(organic) == done.organic and _within(len(organic), 2000, 0.03)


def test_same_seed_same_orders_and_responding_again_replaces(shop):
    ex = _exposures(3_000)
    _respond(shop, ex, _coupons(ex))
    first = _orders(shop)
    shop.execute("INSERT INTO orders (user_id, created_at, amount, category) VALUES (1, '2026-01-01 00:00:00+00', "
                 "12.00, 'home')")  # the shop's own order: a response never touches it
    again = _respond(shop, ex, _coupons(ex))
    second = _orders(shop)
    assert len(second) == len(first) + 1 == again.orders + 1
    mine = second[second["created_at"] > pd.Timestamp("2026-06-01", tz="UTC")].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, first.reset_index(drop=True))
    assert shop.rows(f"SELECT count(*) FROM {MARK}")[0][0] == again.orders
    _respond(shop, ex, _coupons(ex), seed=2)
    other = _orders(shop)
    assert len(other) != len(second) or not other["created_at"].equals(second["created_at"])


def test_the_ledger_exposures_are_who_the_runs_decided_on(tmp_path):
    from tests.runtime.test_coupon_sync import _coupon

    lg = open_ledger(f"duckdb:///{tmp_path / 'ledger.duckdb'}")
    try:
        def row(key, user, step, status, sent_at, due, coupon=None, arm=None):
            return (key, "c", step, "occ1", user, arm, "push", status, None, Decimal("0"), "CNY", coupon, None, "h",
                    "r", None, due, None, due, sent_at, 1, None)

        due = T0
        deliveries = [row("k/1", "1", "touch", "sent", due + timedelta(minutes=5), due, "C1", "a"),
                      row("k/2", "2", "touch", "holdout", None, due),
                      row("k/3", "3", "touch", "suppressed", None, due, arm="b"),
                      row("k/1b", "1", "reminder", "sent", due + timedelta(days=3), due + timedelta(days=3),
                          arm="branch1"),
                      row("k/4", "4", "reminder", "skipped", None, due),
                      row("k/5", "5", "touch", "failed", None, due, arm="a"),  # of two entry rows: the sent one
                      row("k/5b", "5", "touch", "sent", due + timedelta(minutes=9), due, arm="b")]
        coupon = list(_coupon("C1", "1", due))
        coupon[1], coupon[2] = "k/1", "c"
        with lg.decision():
            lg.record_decisions(deliveries, [tuple(coupon)], [])
        ex = lg.respond_exposures_frame().sort_values("user_id").reset_index(drop=True)
        assert list(ex["user_id"]) == ["1", "2", "3", "5"]
        assert list(ex["sent"]) == [1, 0, 0, 1]
        assert list(ex["arm"]) == ["a", "", "b", "b"]  # the entry delivery's arm; the holdout has none
        assert pd.to_datetime(ex["t0"], utc=True).tolist() == [
            pd.Timestamp(due + timedelta(minutes=5)), pd.Timestamp(due), pd.Timestamp(due),
            pd.Timestamp(due + timedelta(minutes=9))]
        coupons = lg.issued_coupons_frame()
        assert coupons[["coupon_id", "occurrence", "user_id"]].values.tolist() == [["C1", "occ1", "1"]]
    finally:
        lg.close()


def test_each_arm_converts_at_its_own_planted_rates(shop):
    """`CAMPAIGN:ARM=TREATED:HOLDOUT` replaces the campaign's rates for that arm's users (sent: TREATED, decided on
    but not sent: HOLDOUT); the other arm and the holdout (no arm) keep the campaign's."""
    n = 16_000
    users = [str(u) for u in range(1, n + 1)]
    arm = ["" if u % 10 == 0 else ("a" if u % 2 else "b") for u in range(1, n + 1)]
    sent = [0 if u % 10 == 0 or u % 7 == 0 else 1 for u in range(1, n + 1)]  # every 7th could not be reached
    ex = pd.DataFrame({"campaign": "c", "occurrence": "occ", "user_id": users, "sent": sent, "arm": arm,
                       "t0": [T0 + timedelta(minutes=u % 600) for u in range(1, n + 1)]})
    done = respond(shop, ex, ex.iloc[:0].assign(coupon_id="", min_spend="", scope="", usable_from=T0, usable_to=T0),
                   pd.Series(range(1, n + 1)), 14, 4, {"c": Effect(Decimal("0.10"), Decimal("0.05"))}, {"c": WINDOW},
                   Decimal("0"), Decimal("0"), {("c", "b"): Effect(Decimal("0.30"), Decimal("0.20"))})
    ordered = set(_orders(shop)["user_id"].astype(str))
    rates = {"a": (0.10, 0.05), "b": (0.30, 0.20), "": (None, 0.05)}
    for name, (t_rate, h_rate) in rates.items():
        g = ex[ex["arm"] == name]
        s, ns = g[g["sent"] == 1], g[g["sent"] == 0]
        ts, hs = int(s["user_id"].isin(ordered).sum()), int(ns["user_id"].isin(ordered).sum())
        assert done.by_arm[("c", name)] == (len(s), ts, len(ns), hs)
        assert _within(hs, len(ns), h_rate)
        if t_rate is not None:
            assert _within(ts, len(s), t_rate)
        else:
            assert len(s) == 0
    assert not _within(done.by_arm[("c", "a")][1], done.by_arm[("c", "a")][0], 0.30)  # the override is per arm


SOURCE = Shares(table="shares", user_column="user_id", time_column="shared_at", id_column="share_id",
                packet_column="packet")


def _grants(n: int) -> pd.DataFrame:
    return pd.DataFrame({"campaign": "c", "occurrence": "occ", "user_id": [str(u) for u in range(1, n + 1)],
                         "packet": "P", "at": [T0 + timedelta(minutes=u % 300) for u in range(1, n + 1)]})


def _shares(wh) -> pd.DataFrame:
    frame = wh.frame("SELECT user_id, shared_at, share_id, packet FROM shares ORDER BY share_id")
    frame["shared_at"] = pd.to_datetime(frame["shared_at"], utc=True)
    return frame


def test_shares_are_planted_inside_the_days_deterministically_and_replaced(shop):
    grants = _grants(4_000)
    written = plant_shares(shop, grants, SOURCE, 3, 7, 0.3)
    first = _shares(shop)
    assert len(first) == written and first["share_id"].is_unique
    per_user = first.groupby("user_id").size()
    assert _within(len(per_user), len(grants), 0.3)
    assert set(per_user) == {1, 2, 3, 4, 5}  # a sharer shares 1 + k times, k from 0 to 4
    assert (first["packet"] == "P").all()
    at = grants.assign(user_id=grants["user_id"].astype(int), at=pd.to_datetime(grants["at"], utc=True)) \
        .set_index("user_id")["at"].loc[first["user_id"]].reset_index(drop=True)
    assert (first["shared_at"] > at).all() and (first["shared_at"] < at + pd.Timedelta(days=3)).all()
    shop.execute("INSERT INTO shares (user_id, shared_at, share_id, packet) VALUES (1, '2026-01-01 00:00:00+00', "
                 "'shop-1', 'P')")  # the shop's own share: a response never touches it
    assert plant_shares(shop, grants, SOURCE, 3, 7, 0.3) == written
    again = _shares(shop)
    pd.testing.assert_frame_equal(again[again["share_id"] != "shop-1"].reset_index(drop=True), first)
    assert shop.rows(f"SELECT count(*) FROM {SHARE_MARK}")[0][0] == written
    other = plant_shares(shop, grants, SOURCE, 3, 8, 0.3)
    assert len(_shares(shop)) == other + 1
    assert set(_shares(shop)["share_id"]) != set(first["share_id"]) | {"shop-1"}


def test_camp_sync_pays_the_planted_shares_per_the_decay(tmp_path):
    """Every sent red packet shared (--share 100%): `sync_shares` pays each share once, the n-th of a user's
    packet what share_payout says (10, 5, then the floor 2 from the 3rd)."""
    from runtime.payout import share_payout
    from runtime.share_sync import sync_shares
    from tests.runtime.test_resources import PACKET, _budgets, _run, _workspace

    ledger = f"duckdb:///{tmp_path / 'ledger.duckdb'}"
    root, shop = _workspace(tmp_path, {"r.camp": PACKET.format(budget="100000 CNY total", rate=60)}, toml=(
        '[red_packets]\nshared_on = "shares"\nshare_field = "share_id"\npacket_field = "packet"\n'))
    _run(root, shop, ledger, "share_packet", 1)
    ws, program = program_of(root)
    source = ws.config.red_packets.shares(program.schema)
    assert source is not None
    lg = open_ledger(ledger)
    try:
        grants = lg.sent_grants_frame()
        assert len(grants) >= 10 and set(grants["packet"]) == {"SHARE10"}
        wh = connect(shop)
        try:
            written = plant_shares(wh, grants, source, 2, 3, 1.0)
        finally:
            wh.close()
        later = datetime.now(UTC) + timedelta(days=3)  # the shares follow the sends (now), inside 2 days
        paid = sync_shares(lg, shop, source, later, _budgets(root))
        assert len(paid) == written > len(grants)  # everyone shared, some more than once
        assert {p.state for p in paid} == {"paid"}
        nths = pd.DataFrame([(p.user_id, p.nth, p.amount) for p in paid], columns=["user", "nth", "amount"])
        assert set(nths["user"]) == set(grants["user_id"])
        for _, g in nths.groupby("user"):
            assert sorted(g["nth"]) == list(range(1, len(g) + 1))
        assert all(a == share_payout(Decimal(10), Decimal("0.5"), Decimal(2), 3, n)
                   for n, a in zip(nths["nth"], nths["amount"], strict=True))
        assert sync_shares(lg, shop, source, later, _budgets(root)) == []
    finally:
        lg.close()
    from tests.runtime.conftest import camp

    out = camp("demo", "respond", ".", "--ledger", ledger, "--days", "2", "--seed", "3", "--share", "100%", cwd=root)
    assert out.returncode == 0, out.stderr
    assert f"{written:,} red packet shares of {len(grants):,} sent packets" in out.stdout
    wh = connect(shop)
    try:  # the command wrote the same shares again (same seed): nothing new to pay
        assert wh.rows("SELECT count(*) FROM shares")[0][0] == written
    finally:
        wh.close()
    lg = open_ledger(ledger)
    try:
        assert sync_shares(lg, shop, source, later, _budgets(root)) == []
    finally:
        lg.close()


def test_the_command_says_what_it_planted_and_refuses_a_bad_effect(tmp_path):
    """`camp demo respond` on a shop no campaign has run on yet: organic orders only, and it says so; a bad
    --effect is a clear usage error (exit 2), never a traceback."""
    import shutil

    from runtime.demo_data import make_shop
    from tests.runtime.conftest import camp

    root = tmp_path / "shop"
    shutil.copytree(CAMPAIGNS, root)
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 1000, seed=3)
    done = camp("demo", "respond", str(root), "--days", "7", cwd=root)
    assert done.returncode == 0, done.stderr
    assert "no campaign has decided on anyone yet" in done.stdout and " organic" in done.stdout
    bad = camp("demo", "respond", str(root), "--effect", "winback_high_value=8%", cwd=root)
    assert bad.returncode == 2 and "CAMPAIGN=TREATED:HOLDOUT" in bad.stderr and "Traceback" not in bad.stderr
    worse = camp("demo", "respond", str(root), "--effect", "winback_high_value=180%:5%", cwd=root)
    assert worse.returncode == 2 and "not a percentage from 0% to 100%" in worse.stderr
    no_arm = camp("demo", "respond", str(root), "--effect", "winback_high_value:zz=8%:5%", cwd=root)
    assert no_arm.returncode == 2 and "has no arm 'zz'" in no_arm.stderr and "Traceback" not in no_arm.stderr
    unknown = camp("demo", "respond", str(root), "--effect", "nope:a=8%:5%", cwd=root)
    assert unknown.returncode == 2 and "campaigns: " in unknown.stderr and "Traceback" not in unknown.stderr
    share = camp("demo", "respond", str(root), "--share", "130%", cwd=root)
    assert share.returncode == 2 and "--share" in share.stderr


CLICKS = ClickTable(table="clicks", user_column="user_id", time_column="clicked_at", campaign_column="campaign",
                    id_column="click_id")


def _clicks(wh) -> pd.DataFrame:
    frame = wh.frame("SELECT user_id, clicked_at, campaign, click_id FROM clicks ORDER BY user_id, clicked_at")
    frame["clicked_at"] = pd.to_datetime(frame["clicked_at"], utc=True)
    return frame


def test_clicks_are_planted_for_the_sent_inside_the_window_deterministically_and_replaced(shop):
    """Only users sent something click, at the planted rate, once, inside min(goal window, days) from t0; the
    same seed gives the same clicks; responding again replaces them and leaves the shop's own clicks alone."""
    ex = _exposures(5_000)
    written = plant_clicks(shop, ex, CLICKS, {"c": WINDOW}, 14, 4, 0.25)
    first = _clicks(shop)
    sent = ex[ex["sent"] == 1]
    assert len(first) == written and first["click_id"].is_unique and first["user_id"].is_unique
    assert _within(written, len(sent), 0.25)
    assert set(first["user_id"].astype(str)) <= set(sent["user_id"]) and (first["campaign"] == "c").all()
    t0 = sent.assign(user_id=sent["user_id"].astype(int)).set_index("user_id")["t0"]
    at = pd.to_datetime(t0.loc[first["user_id"]], utc=True).reset_index(drop=True)
    assert (first["clicked_at"] > at).all() and (first["clicked_at"] < at + WINDOW).all()
    shop.execute("INSERT INTO clicks (user_id, clicked_at, click_id, campaign, channel) VALUES "
                 "(1, '2026-01-01 00:00:00+00', 'shop-1', 'c', 'push')")  # the shop's own click
    assert plant_clicks(shop, ex, CLICKS, {"c": WINDOW}, 14, 4, 0.25) == written
    again = _clicks(shop)
    pd.testing.assert_frame_equal(again[again["click_id"] != "shop-1"].reset_index(drop=True), first)
    assert plant_clicks(shop, ex, CLICKS, {"c": WINDOW}, 2, 5, 0.25) == len(_clicks(shop)) - 1
    short = _clicks(shop)
    short = short[short["click_id"] != "shop-1"]
    at = pd.to_datetime(t0.loc[short["user_id"]], utc=True).reset_index(drop=True)
    assert (short["clicked_at"].reset_index(drop=True) < at + timedelta(days=2)).all()  # days shorter than window


def test_the_report_finds_the_planted_click_rate_and_respond_skips_campaigns_gone_from_the_workspace(tmp_path):
    """A real run, `camp demo respond --click 40%`, then `camp report --format json`: the click rate's interval
    covers 40%; `target click_rate` reads it. A campaign in the ledger but no longer in the workspace is named and
    left out, not a KeyError."""
    import shutil

    from runtime.demo_data import make_shop
    from tests.runtime.conftest import camp

    root = tmp_path / "shop"
    shutil.copytree(CAMPAIGNS, root, ignore=shutil.ignore_patterns("*.duckdb"))
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 30000, seed=2)
    ran = camp("run", "winback.camp", "--as-of", "2026-12-01T10:00:00+08:00", cwd=root)
    assert ran.returncode == 0, ran.stderr
    out = camp("demo", "respond", ".", "--days", "14", "--seed", "5", "--click", "40%", cwd=root)
    assert out.returncode == 0, out.stderr
    assert " clicks of " in out.stdout and "(planted 40%" in out.stdout
    as_of = (datetime.now(UTC) + timedelta(days=15)).isoformat()
    rep = camp("report", ".", "--campaign", "winback_high_value", "--as-of", as_of, "--format", "json", cwd=root)
    assert rep.returncode == 0, rep.stderr
    total = json.loads(rep.stdout)["campaigns"][0]["total"]
    rate = total["clicks"]["rate"]
    assert total["reached"] > 200 and rate["low"] <= 0.40 <= rate["high"]
    text = camp("report", ".", "--campaign", "winback_high_value", "--as-of", as_of, cwd=root)
    assert "clicks, treated:" in text.stdout
    (root / "winback.camp").unlink()
    gone = camp("demo", "respond", ".", "--days", "3", cwd=root)
    assert gone.returncode == 0, gone.stderr
    assert "not in the workspace: winback_high_value" in gone.stdout and "Traceback" not in gone.stderr
