"""The red packet payout rule (runtime.payout.share_payout) against hand tables for shares 1..10, and its
properties for any rule the checker accepts (hypothesis)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.payout import share_payout

D = Decimal

# share decay 50% floor 2 CNY after 3 on 10 CNY (campaigns/redpacket.camp): 10, 5, then exactly the floor
SHARE10 = [D("10.00"), D("5.00"), *[D("2.00")] * 8]
# 20 CNY, decay 30%, floor 3, after 8: 20 x 0.7^(n-1) to the cent, never below 3, exactly 3 from share 8 on
SEVENTY = [D("20.00"), D("14.00"), D("9.80"), D("6.86"), D("4.80"), D("3.36"), D("3.00"), D("3.00"), D("3.00"),
           D("3.00")]
# 8.88, decay 10%, floor 1, after 10: 8.88 x 0.9^(n-1), half up; the tenth is the floor
NINETY = [D("8.88"), D("7.99"), D("7.19"), D("6.47"), D("5.83"), D("5.24"), D("4.72"), D("4.25"), D("3.82"),
          D("1.00")]


@pytest.mark.parametrize(("rule", "table"), [
    ((D(10), D("0.5"), D(2), 3), SHARE10),
    ((D(20), D("0.3"), D(3), 8), SEVENTY),
    ((D("8.88"), D("0.1"), D(1), 10), NINETY),
])
def test_shares_1_to_10_pay_the_hand_table(rule, table):
    assert [share_payout(*rule, n) for n in range(1, 11)] == table


def test_no_decay_pays_the_value_every_time_and_shares_count_from_one():
    assert {share_payout(D(5), None, None, None, n) for n in range(1, 11)} == {D("5.00")}
    with pytest.raises(ValueError):
        share_payout(D(10), D("0.5"), D(2), 3, 0)


money = st.decimals(min_value=D("0.01"), max_value=D(10_000), places=2)


@given(value=money, decay_pct=st.integers(1, 99), floor_share=st.integers(0, 100), after=st.integers(1, 30),
       n=st.integers(1, 40))
def test_decays_never_below_the_floor_and_exactly_the_floor_from_after(value, decay_pct, floor_share, after, n):
    decay = D(decay_pct) / 100
    floor = (value * floor_share / 100).quantize(D("0.01"))
    paid = share_payout(value, decay, floor, after, n)
    assert paid >= floor
    if n >= after:
        assert paid == floor
    else:
        exact = (value * (1 - decay) ** (n - 1)).quantize(D("0.01"), ROUND_HALF_UP)
        assert paid == max(exact, floor)
        assert share_payout(value, decay, floor, after, n + 1) <= paid  # each repeated share pays no more
    assert paid <= value
