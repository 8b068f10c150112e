"""`camp demo respond`: the planted conversion rates come back out of `camp report`'s numbers, coupon
redemptions carry issued coupon ids, and the same seed gives the same orders."""

from __future__ import annotations

import shutil
from datetime import timedelta
from decimal import Decimal

import pandas as pd

from runtime.demo_data import make_shop
from runtime.demo_respond import respond
from runtime.measure import measure
from runtime.warehouse import connect
from tests.conftest import CAMPAIGNS
from tests.runtime.conftest import camp
from tests.runtime.measure_data import CAMPAIGN, T0, load_world, make_world
from tests.runtime.steps import program_of

_, PROGRAM = program_of(CAMPAIGNS)
ENTRY = {CAMPAIGN: "touch"}


def _shop_and_ledger(tmp_path, name: str):
    shop, ledger = f"duckdb:///{tmp_path / f'{name}-shop.duckdb'}", f"duckdb:///{tmp_path / f'{name}-ledger.duckdb'}"
    make_shop(shop, users=3000, seed=1)
    world = make_world(11, 3000, 0.0, 0.0, holdout=0.2)  # the world's own orders are not loaded: the shop's are
    wh = connect(shop)
    lg = load_world(world.__class__(world.deliveries, world.coupons, world.users.iloc[:0], world.orders.iloc[:0]),
                    ledger, wh)
    lg.close()
    wh.close()
    return shop, ledger, world


def _new_orders(shop: str) -> pd.DataFrame:
    wh = connect(shop)
    frame = wh.frame("SELECT user_id, created_at, amount, brand, category, shop, coupon_used, coupon_id FROM orders "
                     f"WHERE created_at >= TIMESTAMPTZ '{T0.isoformat()}' ORDER BY created_at, user_id, amount")
    wh.close()
    return frame


def test_planted_rates_come_back_and_coupons_are_redeemed(tmp_path):
    shop, ledger, world = _shop_and_ledger(tmp_path, "a")
    done = respond(shop, ledger, ENTRY, 14, 5, {CAMPAIGN: (Decimal("0.30"), Decimal("0.05"))})
    assert done.exposures == 3000 and done.planted > 0 and done.organic > 0 and done.redeemed > 0
    wh = connect(shop)
    from runtime.ledger import open_ledger

    lg = open_ledger(ledger)
    m = measure(PROGRAM, PROGRAM.campaigns[CAMPAIGN], lg, wh, T0 + timedelta(days=30))
    lg.close()
    wh.close()
    assert m.total is not None
    organic = 1 - (1 - 0.002) ** 14  # a user's chance of an organic order in the 14 days
    want_t, want_h = 1 - 0.7 * (1 - organic), 1 - 0.95 * (1 - organic)
    assert abs(m.total.conversion.value - want_t) < 0.03, m.total.conversion
    assert abs(m.total.holdout_conversion.value - want_h) < 0.03, m.total.holdout_conversion
    assert m.total.uplift.low < want_t - want_h < m.total.uplift.high

    orders = _new_orders(shop)
    used = orders[orders["coupon_id"].notna()]
    assert len(used) == done.redeemed and used["coupon_used"].all()
    entry = world.deliveries[world.deliveries["step"] == "touch"].set_index("coupon_id")
    coupons = world.coupons.set_index("coupon_id")
    for row in used.itertuples():
        delivery = entry.loc[row.coupon_id]
        assert str(row.user_id) == delivery["user_id"] and delivery["status"] == "sent"
        assert delivery["sent_at"] <= row.created_at < delivery["sent_at"] + pd.Timedelta(days=3)
        assert row.amount >= coupons.loc[row.coupon_id, "min_spend"]


def test_the_same_seed_gives_the_same_orders(tmp_path):
    orders = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        shop, ledger, _ = _shop_and_ledger(tmp_path, name)
        respond(shop, ledger, ENTRY, 7, seed)
        orders.append(_new_orders(shop))
    pd.testing.assert_frame_equal(orders[0], orders[1])
    assert not orders[0].equals(orders[2])


def test_cli(tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(CAMPAIGNS, ws, ignore=shutil.ignore_patterns("*.duckdb"))
    shop, ledger, _ = _shop_and_ledger(tmp_path, "cli")
    r = camp("demo", "respond", "--days", "7", "--seed", "2", "--effect", f"{CAMPAIGN}=20%:5%", "--data", shop,
             "--ledger", ledger, cwd=ws)
    assert r.returncode == 0, r.stderr
    assert "orders of converters" in r.stdout and "organic orders for 3,000 exposures over 7 days" in r.stdout
    r = camp("demo", "respond", "--effect", "nope=1%:1%", "--data", shop, "--ledger", ledger, cwd=ws)
    assert r.returncode == 2 and "--effect" in r.stderr
