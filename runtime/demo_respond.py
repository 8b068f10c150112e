"""`camp demo respond`: after runs, the demo shop's next days of orders, with a planted effect per campaign.

    respond(data_url, ledger_url, entry_steps, days, seed, effects) -> Responded

For every exposure in the ledger (a user in one occurrence of a campaign's entry step; t0 = the entry send, or
the due time when it was not sent: the holdout), the user converts with the campaign's planted rate (treated or
holdout) and then orders once at a time in [t0, t0 + days). A treated converter holding a coupon of that
delivery uses it in six cases out of ten: the order carries the coupon id (what `camp sync` reads), is made
within three days of t0 and spends at least the coupon's minimum. On top of that, every user of the shop orders
organically on each of the days with a small probability. Rows are made by DuckDB SQL from hashes of (seed,
campaign, occurrence, user): the same ledger, days and seed give the same orders; every call appends them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

from runtime.warehouse import connect

ORDER_COLUMNS = ["user_id", "created_at", "amount", "brand", "category", "shop", "coupon_used", "coupon_id"]
DEFAULT_EFFECT = (Decimal("0.08"), Decimal("0.05"))  # treated, holdout conversion
ORGANIC_PER_DAY = Decimal("0.002")  # a user's chance of an organic order on any one day


@dataclass
class Responded:
    planted: int  # orders of converters
    redeemed: int  # of them, orders carrying an issued coupon's id
    organic: int
    exposures: int
    seconds: float


def respond(data_url: str, ledger_url: str, entry_steps: dict[str, str], days: int, seed: int,
            effects: dict[str, tuple[Decimal, Decimal]] | None = None,
            organic: Decimal = ORGANIC_PER_DAY) -> Responded:
    """Append the orders (see the module docstring) to the shop at `data_url`. entry_steps: campaign -> its first
    step; effects: campaign -> (treated, holdout) conversion rates (DEFAULT_EFFECT otherwise)."""
    if not 1 <= days <= 366:
        raise ValueError("--days must be between 1 and 366")
    start = time.perf_counter()
    effects = effects or {}
    ledger = connect(ledger_url, read_only=True)
    try:
        keys = [f"{c}/{s}" for c, s in sorted(entry_steps.items())]
        exposures = ledger.frame(
            "WITH first_send AS (SELECT campaign, occurrence, user_id, MIN(sent_at) AS first_sent "
            "FROM camp_deliveries WHERE status = 'sent' GROUP BY campaign, occurrence, user_id) "
            "SELECT d.campaign, d.occurrence, d.user_id, d.status, d.coupon_id, "
            "COALESCE(f.first_sent, d.due_at) AS t0, CAST(c.min_spend AS text) AS min_spend "
            "FROM camp_deliveries d LEFT JOIN first_send f ON f.campaign = d.campaign "
            "AND f.occurrence = d.occurrence AND f.user_id = d.user_id "
            "LEFT JOIN camp_coupons c ON c.coupon_id = d.coupon_id AND c.state IN ('issued', 'redeemed') "
            f"WHERE d.campaign || '/' || d.step IN ({', '.join(_text(k) for k in keys) or 'NULL'})")
    finally:
        ledger.close()
    shop = connect(data_url)
    try:
        users = shop.frame('SELECT "user_id" FROM "users"')
        scratch = connect("duckdb:///:memory:")
        try:
            made = _orders(scratch, exposures, users, days, seed, effects, organic)
        finally:
            scratch.close()
        shop.bulk_insert("orders", ORDER_COLUMNS, made[ORDER_COLUMNS])
    finally:
        shop.close()
    planted = int((made["kind"] == "planted").sum())
    return Responded(planted=planted, redeemed=int(made["coupon_id"].notna().sum()), organic=len(made) - planted,
                     exposures=len(exposures), seconds=time.perf_counter() - start)


def _text(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


def _orders(db, exposures, users, days: int, seed: int, effects: dict[str, tuple[Decimal, Decimal]],
            organic: Decimal):
    s = int(seed)
    conn = db.conn
    conn.register("exposures_", exposures)
    conn.register("users_", users)
    campaigns = sorted(set(exposures["campaign"])) if len(exposures) else []
    rates = ", ".join(f"({_text(c)}, {effects.get(c, DEFAULT_EFFECT)[0]}, {effects.get(c, DEFAULT_EFFECT)[1]})"
                      for c in campaigns) or "(NULL, 0, 0)"
    window = days * 86400

    def h(*parts: str | int) -> str:
        return "hash(" + ", ".join(str(p) for p in parts) + f", {s})"

    key = "x.campaign, x.occurrence, x.user_id"
    sql = f"""
WITH rates(campaign, treated, holdout) AS (VALUES {rates}),
exposed AS (
  SELECT x.*, CASE WHEN x.status = 'holdout' THEN r.holdout ELSE r.treated END AS rate,
    x.status <> 'holdout' AND x.coupon_id IS NOT NULL AND {h(key, 3)} % 10 < 6 AS uses_coupon
  FROM (SELECT * FROM exposures_ WHERE t0 IS NOT NULL) x JOIN rates r ON r.campaign = x.campaign
),
planted AS (
  SELECT u.user_id,
    x.t0 + to_seconds(({h(key, 2)} % CASE WHEN x.uses_coupon THEN LEAST({window}, 3 * 86400)
                                          ELSE {window} END)::BIGINT) AS created_at,
    GREATEST(((2000 + {h(key, 4)} % 60000) / 100)::DECIMAL(18, 2),
             CASE WHEN x.uses_coupon THEN COALESCE(CAST(x.min_spend AS DECIMAL(18, 2)), 0) ELSE 0 END)::DECIMAL(18, 2) AS amount,
    x.uses_coupon, CASE WHEN x.uses_coupon THEN x.coupon_id END AS coupon_id, 'planted' AS kind
  FROM exposed x JOIN users_ u ON CAST(u.user_id AS VARCHAR) = x.user_id
  WHERE ({h(key, 1)} % 1000000) < x.rate * 1000000
),
organic AS (
  SELECT u.user_id,
    (SELECT COALESCE(MIN(t0), TIMESTAMPTZ '2026-12-01 00:00:00+00') FROM exposures_)
      + to_seconds((d * 86400 + {h('u.user_id', 'd', 6)} % 86400)::BIGINT) AS created_at,
    ((2000 + {h('u.user_id', 'd', 7)} % 60000) / 100)::DECIMAL(18, 2) AS amount,
    FALSE AS uses_coupon, NULL::VARCHAR AS coupon_id, 'organic' AS kind
  FROM users_ u, range(0, {days}) r(d)
  WHERE {h('u.user_id', 'd', 5)} % 1000000 < {organic} * 1000000
)
SELECT user_id, created_at, amount,
  (['Shiseido', 'Lancôme', 'SK-II', '完美日记'])[1 + ({h('user_id', 'created_at', 8)} % 4)::INTEGER] AS brand,
  (['beauty', 'beauty', 'apparel', 'shoes'])[1 + ({h('user_id', 'created_at', 9)} % 4)::INTEGER] AS category,
  'shop_' || ({h('user_id', 'created_at', 10)} % 12)::VARCHAR AS shop,
  uses_coupon AS coupon_used, coupon_id, kind
FROM (SELECT * FROM planted UNION ALL SELECT * FROM organic) o
ORDER BY created_at, user_id"""
    return db.frame(sql)
