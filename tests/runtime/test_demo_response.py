"""`camp demo respond`: the planted response. Converters order inside their goal window at the planted rates
(within sampling error), redeeming orders carry the issued coupon inside its scope, validity and minimum spend,
the same seed gives the same orders, responding again replaces (never adds); on DuckDB and PostgreSQL, and the
ledger's exposures are what the runs decided."""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest

from runtime.demo_response import MARK, Effect, respond
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
        def row(key, user, step, status, sent_at, due, coupon=None):
            return (key, "c", step, "occ1", user, None, "push", status, None, Decimal("0"), "CNY", coupon, None, "h",
                    "r", None, due, None, due, sent_at, 1, None)

        due = T0
        deliveries = [row("k/1", "1", "touch", "sent", due + timedelta(minutes=5), due, "C1"),
                      row("k/2", "2", "touch", "holdout", None, due),
                      row("k/3", "3", "touch", "suppressed", None, due),
                      row("k/1b", "1", "reminder", "sent", due + timedelta(days=3), due + timedelta(days=3)),
                      row("k/4", "4", "reminder", "skipped", None, due)]
        coupon = list(_coupon("C1", "1", due))
        coupon[1], coupon[2] = "k/1", "c"
        with lg.decision():
            lg.record_decisions(deliveries, [tuple(coupon)], [])
        ex = lg.respond_exposures_frame().sort_values("user_id").reset_index(drop=True)
        assert list(ex["user_id"]) == ["1", "2", "3"]
        assert list(ex["sent"]) == [1, 0, 0]
        assert pd.to_datetime(ex["t0"], utc=True).tolist() == [
            pd.Timestamp(due + timedelta(minutes=5)), pd.Timestamp(due), pd.Timestamp(due)]
        coupons = lg.issued_coupons_frame()
        assert coupons[["coupon_id", "occurrence", "user_id"]].values.tolist() == [["C1", "occ1", "1"]]
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
