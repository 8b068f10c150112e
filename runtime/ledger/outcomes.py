"""The ledger's side of a campaign's outcomes (runtime.measure, `camp report`) and of the demo's planted response
(`camp demo respond`): who was exposed and when, reach per step, what the journey's sends cost and what became of
the coupons it gave. Every count is by SQL; the callers see one row per group.

An exposure is a user in one occurrence of the campaign's entry step; t0 is their first send in that occurrence
(any step), else the entry step's due time (the holdout: when they would have been sent). Redemptions count by
the redeeming order's time (`redeemed_order_at`; before migration 3 filled it, the sync's `redeemed_at`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from runtime.ledger.connection import Connection
from runtime.ledger.status import CouponState, Status

if TYPE_CHECKING:
    import pandas as pd

_SENT, _HOLDOUT, _REDEEMED = f"'{Status.SENT}'", f"'{Status.HOLDOUT}'", f"'{CouponState.REDEEMED}'"
_NOT_SENT = ", ".join(f"'{s}'" for s in (Status.SUPPRESSED, Status.FAILED, Status.BUDGET_EXHAUSTED, Status.SKIPPED))
_REDEEMED_BY = f"c.state = {_REDEEMED} AND coalesce(c.redeemed_order_at, c.redeemed_at) < ?"
_ENTRY = (f"SELECT occurrence, user_id, COALESCE(arm, '') AS arm FROM camp_deliveries_all WHERE campaign = ? AND "
          f"step = ? AND status <> {_HOLDOUT} AND due_at < ?")


def exposures_query(campaign: str, entry_step: str, as_of: datetime,
                    table: str = "camp_deliveries_all") -> tuple[str, list]:
    """`OutcomeLedger.exposures_frame`'s query (with `?` placeholders), reading `table`: a session that has the
    ledger attached under another catalog (runtime.warehouse.beside) runs it there and keeps the rows."""
    return (f"""
WITH first_send AS (
    SELECT occurrence, user_id, MIN(sent_at) AS first_sent FROM {table}
    WHERE campaign = ? AND status = {_SENT} AND sent_at < ? GROUP BY occurrence, user_id)
SELECT e.occurrence || '/' || e.user_id AS exposure_id, e.user_id AS user_id,
       COALESCE(f.first_sent, e.due_at) AS t0,
       CASE WHEN e.status = {_HOLDOUT} THEN 'holdout' ELSE 'treated' END AS grp,
       COALESCE(e.arm, '') AS arm,
       CASE WHEN e.status <> {_HOLDOUT} AND f.first_sent IS NOT NULL THEN 1 ELSE 0 END AS reached
FROM {table} e LEFT JOIN first_send f ON f.occurrence = e.occurrence AND f.user_id = e.user_id
WHERE e.campaign = ? AND e.step = ? AND e.due_at < ?""", [campaign, as_of, campaign, entry_step, as_of])


class OutcomeLedger(Connection):
    def exposures_frame(self, campaign: str, entry_step: str, as_of: datetime) -> pd.DataFrame:
        """(exposure_id, user_id, t0, grp treated|holdout, arm, reached 0|1) of the entry step's deliveries due
        before `as_of`."""
        sql, params = exposures_query(campaign, entry_step, as_of)
        return self.frame(sql, params)

    def step_counts(self, campaign: str, as_of: datetime) -> list[tuple]:
        """(step, arm, assigned, sent, holdout, not sent, cost of the sends) per step and arm, due before as_of."""
        return self.rows(f"""
SELECT step, arm, COUNT(*), SUM(CASE WHEN status = {_SENT} THEN 1 ELSE 0 END),
       SUM(CASE WHEN status = {_HOLDOUT} THEN 1 ELSE 0 END),
       SUM(CASE WHEN status IN ({_NOT_SENT}) THEN 1 ELSE 0 END),
       COALESCE(SUM(CASE WHEN status = {_SENT} THEN cost ELSE 0 END), 0)
FROM camp_deliveries_all WHERE campaign = ? AND due_at < ? GROUP BY step, arm ORDER BY step, arm""", (campaign, as_of))

    def journey_send_cost(self, campaign: str, entry_step: str, as_of: datetime) -> list[tuple]:
        """(arm of the entry step, cost of every send of the journey to its treated users before as_of)."""
        return self.rows(f"""
WITH entry AS ({_ENTRY})
SELECT e.arm, COALESCE(SUM(CASE WHEN d.status = {_SENT} AND d.sent_at < ? THEN d.cost ELSE 0 END), 0)
FROM camp_deliveries_all d JOIN entry e ON e.occurrence = d.occurrence AND e.user_id = d.user_id
WHERE d.campaign = ? GROUP BY e.arm""", (campaign, entry_step, as_of, as_of, campaign))

    def entry_coupons(self, campaign: str, entry_step: str, as_of: datetime) -> list[tuple]:
        """(arm of the entry step, coupons issued, redeemed, their discounts) of the journey's treated users, as of
        `as_of`."""
        return self.rows(f"""
WITH entry AS ({_ENTRY}),
given AS (
    SELECT DISTINCT d.occurrence, d.user_id, d.coupon_id FROM camp_deliveries_all d
    WHERE d.campaign = ? AND d.coupon_id IS NOT NULL)
SELECT e.arm, SUM(CASE WHEN c.issued_at < ? THEN 1 ELSE 0 END),
       SUM(CASE WHEN {_REDEEMED_BY} THEN 1 ELSE 0 END),
       COALESCE(SUM(CASE WHEN {_REDEEMED_BY} THEN c.discount ELSE 0 END), 0)
FROM given g JOIN entry e ON e.occurrence = g.occurrence AND e.user_id = g.user_id
JOIN camp_coupons c ON c.coupon_id = g.coupon_id
GROUP BY e.arm""", (campaign, entry_step, as_of, campaign, as_of, as_of, as_of))

    def respond_exposures_frame(self) -> pd.DataFrame:
        """(campaign, occurrence, user_id, sent 0|1, t0, arm) of every user any campaign's occurrence decided on
        (journey skips aside): whether it sent them anything, from when (first send, else due time), and the arm
        of their entry delivery (the earliest due: the entry step is the first; of several, the sent one; ''
        for the holdout, which has no arm)."""
        return self.frame(f"""
WITH d AS (
    SELECT campaign, occurrence, user_id, status, arm, sent_at, due_at,
           ROW_NUMBER() OVER (PARTITION BY campaign, occurrence, user_id
                              ORDER BY due_at, CASE WHEN status = {_SENT} THEN 0 ELSE 1 END, arm) AS rk
    FROM camp_deliveries_all WHERE status <> '{Status.SKIPPED}')
SELECT campaign, occurrence, user_id, max(CASE WHEN status = {_SENT} THEN 1 ELSE 0 END) AS sent,
       coalesce(min(sent_at), min(due_at)) AS t0, coalesce(max(CASE WHEN rk = 1 THEN arm END), '') AS arm
FROM d GROUP BY campaign, occurrence, user_id""")

    def sent_grants_frame(self) -> pd.DataFrame:
        """(campaign, occurrence, user_id, packet, at) of the red packets granted with a delivery that was sent;
        `at`: the later of the grant and the send (a share pays from then on)."""
        return self.frame("SELECT g.campaign, d.occurrence, g.user_id, g.packet, CASE WHEN d.sent_at > g.granted_at "
                          "THEN d.sent_at ELSE g.granted_at END AS at FROM camp_red_packets g JOIN camp_deliveries_all d "
                          f"ON d.idempotency_key = g.idempotency_key WHERE d.status = {_SENT}")

    def issued_coupons_frame(self) -> pd.DataFrame:
        """(coupon_id, campaign, occurrence, user_id, min_spend, scope, usable_from, usable_to) of the coupons
        issued, whatever became of them since (redeemed, expired). Money as text: exact through a DataFrame."""
        states = ", ".join(f"'{s}'" for s in (CouponState.ISSUED, CouponState.REDEEMED, CouponState.EXPIRED))
        return self.frame("SELECT c.coupon_id, c.campaign, d.occurrence, c.user_id, CAST(c.min_spend AS text) AS "
                          "min_spend, c.scope, c.usable_from, c.usable_to FROM camp_coupons c JOIN camp_deliveries_all d "
                          f"ON d.coupon_id = c.coupon_id WHERE c.state IN ({states})")
