"""Daily budgets reconciled with actual coupon spend (runtime.reconcile, Ledger.coupon_discounts_by_day): the
excess of redeemed discounts over their forecast, per local day of the redeeming orders, against an independent
pandas computation; summed over the days it is exactly the total excess the total budget has always counted
(hypothesis); the local days read on DuckDB and PostgreSQL ledgers whatever the host's zone."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from runtime.ledger import open_ledger
from runtime.reconcile import excess_by_day

D = Decimal
DAY0 = date(2026, 12, 1)

money = st.integers(min_value=0, max_value=50_000).map(lambda c: D(c) / 100)
redemption = st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(min_value=0, max_value=9), money)


def _cents(x: Decimal) -> int:
    return int(x * 100)


def _frame(redeemed: list[tuple[str, date, Decimal]]) -> pd.DataFrame:
    """The redemptions in cents (int64: pandas sums them exactly)."""
    frame = pd.DataFrame([(c, d, _cents(x)) for c, d, x in redeemed], columns=["code", "day", "cents"])
    return frame.astype({"cents": "int64"})


def _total_excess(forecasts: dict[str, Decimal], redeemed: list[tuple[str, date, Decimal]]) -> Decimal:
    """The total budget's reconciliation as it has always been: per code, max(0, discounts - forecast)."""
    per_code = _frame(redeemed).groupby("code")["cents"].sum()
    return sum((D(max(0, int(per_code.get(code, 0)) - _cents(f))) / 100 for code, f in forecasts.items()), D(0))


def _pandas_daily(forecasts: dict[str, Decimal], redeemed: list[tuple[str, date, Decimal]]) -> dict[date, Decimal]:
    """The same rule, written as a table: per code, the cumulative discounts by day, less the forecast, floored at
    0; a day's excess is the growth of that over the day before."""
    frame = _frame(redeemed).groupby(["code", "day"], as_index=False)["cents"].sum().sort_values(["code", "day"])
    frame["cum"] = frame.groupby("code")["cents"].cumsum()
    frame["over"] = (frame["cum"] - frame["code"].map(lambda c: _cents(forecasts.get(c, D(0))))).clip(lower=0)
    frame["excess"] = frame["over"] - frame.groupby("code")["over"].shift(1).fillna(0)
    per_day = frame.groupby("day")["excess"].sum()
    return {d: D(int(v)) / 100 for d, v in per_day.items() if v != 0}


@given(forecasts=st.dictionaries(st.sampled_from(["A", "B", "C"]), money, min_size=1),
       raw=st.lists(redemption, max_size=40))
def test_the_daily_excess_sums_to_the_total_excess_and_is_never_negative(forecasts, raw):
    redeemed = [(code, DAY0 + timedelta(days=d), x) for code, d, x in raw if code in forecasts]
    daily = excess_by_day(forecasts, redeemed)
    assert all(v > 0 for v in daily.values())
    assert sum(daily.values(), D(0)) == _total_excess(forecasts, redeemed)
    assert daily == _pandas_daily(forecasts, redeemed)


@given(forecast=money, raw=st.lists(st.tuples(st.integers(min_value=0, max_value=9), money), max_size=20),
       late=st.tuples(st.integers(min_value=0, max_value=9), money))
def test_a_later_redemption_never_moves_excess_to_an_earlier_day(forecast, raw, late):
    """Learning one more redemption (a late order) adds excess to its own day only, and at most its discount."""
    redeemed = [("A", DAY0 + timedelta(days=d), x) for d, x in raw]
    day = DAY0 + timedelta(days=max([d for d, _ in raw], default=0) + late[0])
    before = excess_by_day({"A": forecast}, redeemed)
    after = excess_by_day({"A": forecast}, [*redeemed, ("A", day, late[1])])
    assert {d: v for d, v in after.items() if d != day} == {d: v for d, v in before.items() if d != day}
    assert D(0) <= after.get(day, D(0)) - before.get(day, D(0)) <= late[1]


def test_the_forecast_absorbs_the_earliest_days_first():
    f = {"A": D(30), "B": D(5)}
    redeemed = [("A", date(2026, 12, 1), D(20)), ("A", date(2026, 12, 2), D(20)), ("A", date(2026, 12, 3), D(20)),
                ("B", date(2026, 12, 2), D(8))]
    # A: 20 within 30; 10 of the next 20 left, 10 beyond; then 20 beyond. B: 3 beyond its 5 on the 2nd
    assert excess_by_day(f, redeemed) == {date(2026, 12, 2): D(13), date(2026, 12, 3): D(20)}


# ------------------------------------------------------------------ the ledger's local days, both engines


def _coupon(i: int, code: str, at: datetime) -> tuple:
    return (f"c{i}", f"k/{i}", "camp_x", code, str(i), D(10), "CNY", None, "{}", "issued", at, at, at,
            at + timedelta(days=30), None)


def test_discounts_are_summed_per_code_and_local_day_of_the_order(ledger):
    """Redemptions around local midnight in two zones: the day is the redeeming order's (redeemed_order_at), else
    when the redemption was learnt (redeemed_at); void, issued and other campaigns' coupons do not count."""
    rng = random.Random(13)
    base = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai, 10:00 in New York
    rows = []
    for i in range(120):
        order = base + timedelta(minutes=rng.randrange(-180, 3 * 24 * 60))
        learnt = order + timedelta(hours=rng.randrange(0, 30))
        rows.append({"i": i, "code": rng.choice("AB"), "state": rng.choice(["redeemed"] * 4 + ["issued", "void"]),
                     "order": order if rng.random() < 0.8 else None, "learnt": learnt,
                     "discount": D(rng.randrange(1, 2000)) / 100, "campaign": rng.choice(["camp_x"] * 5 + ["other"])})
    lg = open_ledger(ledger)
    try:
        with lg.decision():
            lg.record_decisions([], [_coupon(r["i"], r["code"], base - timedelta(days=1)) for r in rows], [])
        for r in rows:
            lg.execute("UPDATE camp_coupons SET state = ?, campaign = ?, discount = ?, redeemed_order_at = ?, "
                       "redeemed_at = ? WHERE coupon_id = ?", (r["state"], r["campaign"], r["discount"], r["order"],
                                                               r["learnt"], f"c{r['i']}"))
        frame = pd.DataFrame(rows)
        mine = frame[(frame["campaign"] == "camp_x") & (frame["state"] == "redeemed")]
        when = pd.to_datetime(mine["order"].where(mine["order"].notna(), mine["learnt"]), utc=True)
        for zone in ("Asia/Shanghai", "America/New_York"):
            expected = (mine.assign(day=when.dt.tz_convert(zone).dt.date).groupby(["code", "day"])["discount"]
                        .sum())
            got = lg.coupon_discounts_by_day("camp_x", zone)
            assert got == [(c, d, D(v)) for (c, d), v in expected.items()]
            assert len({d for _, d, _ in got}) >= 3
        # the same discounts the total reconciliation reads (coupon_money), so the daily and total views agree
        money = {code: (value, discounts) for code, value, discounts in lg.coupon_money("camp_x")}
        forecasts = {code: value * D("0.1") for code, (value, _) in money.items()}
        daily = excess_by_day(forecasts, lg.coupon_discounts_by_day("camp_x", "Asia/Shanghai"))
        assert sum(daily.values(), D(0)) == sum((max(D(0), d - forecasts[c]) for c, (_, d) in money.items()), D(0))
        assert sum(daily.values(), D(0)) > 0
    finally:
        lg.close()
