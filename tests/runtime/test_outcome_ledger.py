"""The ledger's outcome queries (runtime/ledger/outcomes.py) count a redemption by the redeeming order's time, not
by when a sync learnt of it: an order placed before the as-of time that a later sync recorded counts as of then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from runtime.ledger import open_ledger
from tests.runtime.test_coupon_sync import _coupon

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def test_a_late_synced_redemption_counts_by_its_orders_time(tmp_path):
    lg = open_ledger(f"duckdb:///{tmp_path / 'ledger.duckdb'}")
    try:
        delivery = ("k/1", "c", "touch", "occ1", "1", "all", "push", "sent", None, Decimal("0.05"), "CNY", "C1", None,
                    "h", "r", None, T0, None, T0, T0 + timedelta(minutes=1), 1, None)
        coupon = list(_coupon("C1", "1", T0 + timedelta(minutes=1)))
        coupon[1], coupon[2] = "k/1", "c"
        with lg.decision():
            lg.record_decisions([delivery], [tuple(coupon)], [])
        ordered, learnt = T0 + timedelta(days=1), T0 + timedelta(days=5)  # the sync ran four days later
        lg.execute("UPDATE camp_coupons SET state = 'redeemed', redeemed_order_at = ?, redeemed_at = ?, "
                   "discount = 10 WHERE coupon_id = 'C1'", (ordered, learnt))
        at = {when: lg.entry_coupons("c", "touch", when) for when in (ordered, ordered + timedelta(seconds=1))}
        assert at[ordered] == [("all", 1, 0, Decimal("0"))]  # issued; the order is not before the as-of time
        [(arm, issued, redeemed, discounts)] = at[ordered + timedelta(seconds=1)]
        assert (arm, issued, redeemed, Decimal(discounts)) == ("all", 1, 1, Decimal("10"))  # before the sync ran
    finally:
        lg.close()
