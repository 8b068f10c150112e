"""The coupon lifecycle after issue, in the ledger: the outstanding coupons `camp sync` looks for in the shop's
orders, and one transaction recording what it found (redeemed, with the order and a note) and what expired.

Only coupons still `issued` change, so a rerun, or two syncs meeting, change nothing twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from runtime.ledger.connection import Connection
from runtime.ledger.rows import OutcomeCount
from runtime.ledger.status import CouponState

if TYPE_CHECKING:
    import pandas as pd

FOUND = "camp_sync_found"  # a TEMP table of the ledger session: the redemptions a sync found
FOUND_COLS = ["coupon_id", "order_at", "amount", "discount", "redemption"]
_ISSUED = f"state = '{CouponState.ISSUED}'"


class CouponLedger(Connection):
    def outstanding_coupons(self, as_of: datetime) -> pd.DataFrame:
        """(coupon_id, issued_at, usable_from, usable_to, value, min_spend, scope) of the coupons issued by
        `as_of` and neither redeemed nor expired. Money as text: exact through a DataFrame (DuckDB would hand
        decimals over as floats)."""
        return self.frame("SELECT coupon_id, issued_at, usable_from, usable_to, CAST(value AS text) AS value, "
                          "CAST(min_spend AS text) AS min_spend, scope FROM camp_coupons "
                          f"WHERE {_ISSUED} AND issued_at <= ?", (as_of,))

    def redeemed_pairs(self, campaign: str, codes: list[str], as_of: datetime,
                       occurrence: str | None = None) -> list[tuple[str, str]]:
        """(user_id, code) of the campaign's coupons of these codes redeemed by `as_of` (what `redeemed(CODE)`
        reads): the redeeming order's time, not when a sync learnt of it, so a late-synced order placed before
        `as_of` counts; with an occurrence, only coupons issued in that journey (their delivery's occurrence)."""
        journey = ("JOIN camp_deliveries d ON d.idempotency_key = c.idempotency_key AND d.occurrence = ? "
                   if occurrence is not None else "")
        params = (*((occurrence,) if occurrence is not None else ()), campaign, codes, as_of)
        return [(str(u), str(c)) for u, c in self.rows(
            f"SELECT DISTINCT c.user_id, c.code FROM camp_coupons c {journey}WHERE c.campaign = ? AND "
            f"{self.in_list('c.code')} AND c.state = '{CouponState.REDEEMED}' AND coalesce(c.redeemed_order_at, c.redeemed_at) <= ? "
            "ORDER BY c.user_id, c.code", params)]

    def record_sync(self, found: pd.DataFrame, at: datetime, expire_before: datetime) -> tuple[list[OutcomeCount], int]:
        """One transaction: the coupons of `found` (FOUND_COLS) still issued become redeemed (redeemed_at =
        `at`, when camp learnt it), then those still issued whose validity ended before `expire_before` become
        expired (expired_at = `at`). Returns the count per outcome and how many were redeemed before."""
        with self.decision():
            known = self.one(f"SELECT count(*) FROM camp_coupons WHERE state = '{CouponState.REDEEMED}'")
            self.backend.fresh_temp_table(self.db.conn, FOUND, "coupon_id text, order_at timestamptz, "
                                          "amount text, discount text, redemption text")  # money as text: exact
            self.bulk_insert(FOUND, FOUND_COLS, found)
            counts = [OutcomeCount(*r) for r in self.rows(
                f"SELECT f.redemption, count(*) FROM {FOUND} f JOIN camp_coupons c ON c.coupon_id = f.coupon_id "
                f"WHERE c.{_ISSUED} GROUP BY f.redemption ORDER BY f.redemption")]
            self.execute(f"UPDATE camp_coupons SET state = '{CouponState.REDEEMED}', redeemed_at = ?, "
                         "redeemed_order_at = f.order_at, order_amount = CAST(f.amount AS decimal(18, 2)), "
                         "discount = CAST(f.discount AS decimal(18, 2)), "
                         f"redemption = f.redemption FROM {FOUND} f WHERE camp_coupons.coupon_id = f.coupon_id "
                         f"AND camp_coupons.{_ISSUED}", (at,))
            expired = self.one(f"SELECT count(*) FROM camp_coupons WHERE {_ISSUED} AND usable_to < ?",
                               (expire_before,))
            self.execute(f"UPDATE camp_coupons SET state = '{CouponState.EXPIRED}', expired_at = ? WHERE {_ISSUED} "
                         "AND usable_to < ?", (at, expire_before))
            self.execute(f"DELETE FROM {FOUND}")
        return [*counts, OutcomeCount(str(CouponState.EXPIRED), int(expired))], int(known)
