"""The shop's orders -> the coupons' lifecycle in the ledger: which issued coupons an order redeemed (with its
time, amount, the discount and whether it kept to the coupon's scope, validity and minimum spend), and which
expired unused.

The outstanding coupons (issued, neither redeemed nor expired) go into a TEMP table of a warehouse session
(`camp_sync_coupons`, with the values their scopes allow in `camp_sync_scopes`; it works on a read-only DuckDB
file and on PostgreSQL alike, and nothing is written to the warehouse). One query finds each coupon's first
order carrying its id at or before as-of, scanning orders from the earliest outstanding issue on: the cost
follows the outstanding coupons, not the shop's history. The result moves to the ledger in one frame and one
transaction records it (`CouponLedger.record_sync`): only coupons still issued change, so a rerun changes
nothing. An order that arrives late is still matched while its coupon is outstanding, which is until the
coupon's validity ended `late_data` ago; then the coupon is expired.

The coupon is redeemed whatever the order: the shop took it. The note says how the order kept to the coupon,
checked in this order: `out of scope: FIELD=VALUE` (the first scoped field whose value the coupon does not
allow), `outside validity` (ordered before usable_from or from usable_to on), `below min spend`, else `ok`.
The discount is the coupon's value, at most the order's amount.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from sqlglot import exp

from compiler.config import Redemptions
from runtime.ledger import Ledger
from runtime.ledger.redemptions import FOUND_COLS
from runtime.warehouse import Warehouse, connect

COUPONS, SCOPES = "camp_sync_coupons", "camp_sync_scopes"
_COUPON_COLS = ["coupon_id", "scope_id", "usable_from", "usable_to", "value", "min_spend"]


@dataclass(frozen=True)
class SyncResult:
    """What one sync changed: coupons redeemed (every note), those of them out of scope, outside validity or
    below their minimum spend, coupons expired, and coupons the ledger already knew redeemed."""

    redeemed: int
    out_of_scope: int
    outside_validity: int
    below_min_spend: int
    expired: int
    already_known: int


def sync_coupons(ledger: Ledger, warehouse_url: str, config: Redemptions, as_of: datetime) -> SyncResult:
    """Record in the ledger the redemptions the warehouse's orders show at `as_of`, and the expiries."""
    outstanding = ledger.outstanding_coupons(as_of)
    found = pd.DataFrame(columns=FOUND_COLS)
    if len(outstanding):
        wh = connect(warehouse_url, read_only=True)
        try:
            found = _redeeming_orders(wh, config, outstanding, as_of)
        finally:
            wh.close()
    counts, known = ledger.record_sync(found, as_of, as_of - timedelta(minutes=config.late_data_minutes))
    by = {c.outcome: c.n for c in counts}
    return SyncResult(redeemed=sum(n for outcome, n in by.items() if outcome != "expired"),
                      out_of_scope=sum(n for outcome, n in by.items() if outcome.startswith("out of scope")),
                      outside_validity=by.get("outside validity", 0), below_min_spend=by.get("below min spend", 0),
                      expired=by.get("expired", 0), already_known=known)


def _redeeming_orders(wh: Warehouse, config: Redemptions, outstanding: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """FOUND_COLS of each outstanding coupon's first order at or before as_of, from the warehouse."""
    scope_ids, scopes = pd.factorize(outstanding["scope"])  # a few distinct scopes: one per campaign's code
    allowed = [(i, field, str(v)) for i, text in enumerate(scopes) for field, values in json.loads(text).items()
               if field in config.scope_columns for v in values]
    coupons = outstanding.assign(scope_id=scope_ids)[_COUPON_COLS]
    wh.execute(f"CREATE TEMP TABLE {COUPONS} (coupon_id text, scope_id bigint, usable_from timestamptz, "
               "usable_to timestamptz, value text, min_spend text)")  # money as text: exact through the frame
    wh.bulk_insert(COUPONS, _COUPON_COLS, coupons)
    wh.execute(f"CREATE TEMP TABLE {SCOPES} (scope_id bigint, field text, value text)")
    wh.bulk_insert(SCOPES, ["scope_id", "field", "value"], allowed)
    fields = sorted({field for _, field, _ in allowed})
    since = min(outstanding["issued_at"].tolist())  # datetimes (pandas Timestamps from DuckDB)
    return wh.frame(wh.backend.sql(_query(config, fields, wh.dialect)), (since, as_of))


def _query(config: Redemptions, fields: list[str], dialect: str) -> str:
    """The first order per outstanding coupon (ties: the larger amount), and its note; `?`s: since, as-of.
    A scope's values are compared as text; money comes back as text (exact through the DataFrame)."""
    def q(name: str) -> str:
        return exp.to_identifier(name, quoted=True).sql(dialect=dialect)

    def lit(text: str) -> str:
        return exp.Literal.string(text).sql(dialect=dialect)

    picked = "".join(f", CAST(o.{q(config.scope_columns[f])} AS text) AS f{i}" for i, f in enumerate(fields))
    scoped = [f"WHEN EXISTS (SELECT 1 FROM {SCOPES} s WHERE s.scope_id = h.scope_id AND s.field = {lit(f)}) AND NOT "
              f"EXISTS (SELECT 1 FROM {SCOPES} s WHERE s.scope_id = h.scope_id AND s.field = {lit(f)} AND s.value = "
              f"h.f{i}) THEN {lit(f'out of scope: {f}=')} || coalesce(h.f{i}, 'NULL')" for i, f in enumerate(fields)]
    return f"""
WITH h AS (
  SELECT c.coupon_id, c.scope_id, c.usable_from, c.usable_to, CAST(c.value AS decimal(18, 2)) AS value,
    CAST(c.min_spend AS decimal(18, 2)) AS min_spend,
    o.{q(config.time_column)} AS order_at, o.{q(config.amount_column)} AS amount{picked},
    row_number() OVER (PARTITION BY c.coupon_id ORDER BY o.{q(config.time_column)},
                       o.{q(config.amount_column)} DESC NULLS LAST) AS n
  FROM {exp.to_table(config.table).sql(dialect=dialect)} o JOIN {COUPONS} c ON o.{q(config.coupon_column)} = c.coupon_id
  WHERE o.{q(config.time_column)} >= ? AND o.{q(config.time_column)} <= ?
)
SELECT coupon_id, order_at, CAST(amount AS text) AS amount,
  CAST(CASE WHEN amount < value THEN amount ELSE value END AS text) AS discount,
  CASE {' '.join(scoped)}
    WHEN order_at < usable_from OR order_at >= usable_to THEN 'outside validity'
    WHEN min_spend IS NOT NULL AND (amount IS NULL OR amount < min_spend) THEN 'below min spend'
    ELSE 'ok' END AS redemption
FROM h WHERE n = 1"""
