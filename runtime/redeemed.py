"""`redeemed(CODE)`: the ledger's redeemed coupons -> the warehouse session's TEMP table `camp_redeemed`
(user_id text, code text), which the audience SQL reads (compiler.sql.REDEEMED).

The table lists the campaign's coupons of the codes the query reads, redeemed (`camp sync`) by the query's
as-of time; for a journey's follow-up step only those issued in that journey (the coupon's delivery has
the journey's occurrence). Without a ledger the table is empty: nobody has redeemed anything yet. Like the
cohort, it lives in the session only (a read-only DuckDB file works) and nothing is written to the warehouse.
"""

from __future__ import annotations

from datetime import datetime

from compiler.sql import REDEEMED
from runtime.ledger import Ledger
from runtime.warehouse import Warehouse


def load_redeemed(wh: Warehouse, lg: Ledger | None, campaign: str, codes: list[str], as_of: datetime,
                  occurrence: str | None = None) -> int:
    """Fill `camp_redeemed` in this warehouse session when the query reads it (`codes` not empty), replacing
    what an earlier query of the session (another campaign's) left there; returns how many (user, code) pairs
    it holds."""
    if not codes:
        return 0
    wh.backend.fresh_temp_table(wh.conn, REDEEMED, "user_id text, code text")
    pairs = lg.redeemed_pairs(campaign, codes, as_of, occurrence) if lg is not None else []
    if pairs:
        wh.bulk_insert(REDEEMED, ["user_id", "code"], pairs)
    return len(pairs)
