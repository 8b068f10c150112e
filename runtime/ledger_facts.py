"""The ledger's facts an audience query reads -> TEMP tables of the warehouse session, filled just before the
query (the snapshot of a run, `camp audience`, `camp tag --audience`, `camp tags`):

    camp_redeemed    (user_id text, code text)  `redeemed(CODE)`: the campaign's coupons of the codes the query
                     reads, redeemed (`camp sync`) by the query's as-of time; for a journey's follow-up step only
                     those issued in that journey (the coupon's delivery has the journey's occurrence)
    camp_manual_tags (user_id text, tag text)   `tagged "x"`: the ledger's manual tags (`camp tag`) of the tags
                     the query reads, as they are now

Without a ledger both are empty: nobody has redeemed anything or been tagged by hand yet. Like the cohort, they
live in the session only (a read-only DuckDB file works) and nothing is written to the warehouse. Each call
replaces what an earlier query of the session (another campaign's) left there.
"""

from __future__ import annotations

from datetime import datetime

from compiler.sql import MANUAL_TAGS, REDEEMED
from runtime.ledger import Ledger
from runtime.warehouse import Warehouse


def load_ledger_facts(wh: Warehouse, lg: Ledger | None, campaign: str, codes: list[str], tags: list[str],
                      as_of: datetime, occurrence: str | None = None) -> None:
    """Fill the tables the query reads: `codes` (AudienceSQL.redeemed_codes) and `tags` (AudienceSQL.tag_names
    of a query compiled with manual_tags); none, and nothing is created."""
    load_redeemed(wh, lg, campaign, codes, as_of, occurrence)
    load_manual_tags(wh, lg, tags)


def load_redeemed(wh: Warehouse, lg: Ledger | None, campaign: str, codes: list[str], as_of: datetime,
                  occurrence: str | None = None) -> int:
    """Fill `camp_redeemed` when the query reads it (`codes` not empty); how many (user, code) pairs it holds."""
    if not codes:
        return 0
    pairs = lg.redeemed_pairs(campaign, codes, as_of, occurrence) if lg is not None else []
    return _fill(wh, REDEEMED, ["user_id", "code"], pairs)


def load_manual_tags(wh: Warehouse, lg: Ledger | None, tags: list[str] | None) -> int:
    """Fill `camp_manual_tags` when the query reads it (`tags` not empty; None: every manual tag); how many
    (user, tag) holdings it holds, each with when it began (`tagged "x" for 30d`)."""
    if tags is not None and not tags:
        return 0
    held = lg.manual_tag_pairs(tags) if lg is not None else []
    return _fill(wh, MANUAL_TAGS, ["user_id", "tag", "since"], held, {"since": "timestamptz"})


def _fill(wh: Warehouse, table: str, columns: list[str], rows: list[tuple], types: dict[str, str] | None = None
          ) -> int:
    """A fresh TEMP table of text columns (or of `types`) holding `rows`."""
    wh.backend.fresh_temp_table(wh.conn, table, ", ".join(f"{c} {(types or {}).get(c, 'text')}" for c in columns))
    if rows:
        wh.bulk_insert(table, columns, rows)
    return len(rows)
