"""Load the UCI Online Retail data into the workspace database.

    python examples/online_retail/load.py [--csv data/online_retail.csv.gz] [--url duckdb:///retail.duckdb]

Only lines with a CustomerID are loaded (406,829 of 541,909). InvoiceDate is UK local time.
amount = Quantity x UnitPrice, exact (DECIMAL); cancellations (invoice C...) keep their
negative quantities and amounts. A customer's country is the one on their latest line
(ties: the alphabetically first).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from runtime.warehouse import connect, workspace_url  # noqa: E402

LINES = """
CREATE TABLE invoice_lines AS
SELECT CAST(CAST("CustomerID" AS DOUBLE) AS BIGINT) AS customer_id,
       timezone('Europe/London', CAST("InvoiceDate" AS TIMESTAMP)) AS invoiced_at,
       "InvoiceNo" AS invoice,
       "StockCode" AS stock_code,
       CAST("Quantity" AS DECIMAL(18, 4)) AS quantity,
       CAST("UnitPrice" AS DECIMAL(18, 4)) AS unit_price,
       CAST(CAST("Quantity" AS DECIMAL(18, 4)) * CAST("UnitPrice" AS DECIMAL(18, 4)) AS DECIMAL(18, 4)) AS amount,
       starts_with("InvoiceNo", 'C') AS cancelled,
       "Country" AS country
FROM read_csv(?, header = true, all_varchar = true)
WHERE "CustomerID" IS NOT NULL AND "CustomerID" <> ''
"""
CUSTOMERS = """
CREATE TABLE customers AS
SELECT customer_id, first(country ORDER BY invoiced_at DESC, country) AS country
FROM invoice_lines GROUP BY customer_id
"""


def load(csv: Path, url: str) -> dict[str, int]:
    """Into a DuckDB database (the example's embedded default)."""
    if not url.startswith("duckdb://"):
        raise SystemExit("load.py writes DuckDB databases: --url duckdb:///path.duckdb")
    db = connect(url)
    try:
        for table in ("customers", "invoice_lines"):
            db.execute(f"DROP TABLE IF EXISTS {table}")
        db.execute(LINES, [str(csv)])
        db.execute(CUSTOMERS)
        db.execute("ALTER TABLE invoice_lines DROP COLUMN country")
        return {t: db.rows(f"SELECT COUNT(*) FROM {t}")[0][0] for t in ("customers", "invoice_lines")}
    finally:
        db.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--csv", type=Path, default=HERE / "data" / "online_retail.csv.gz")
    ap.add_argument("--url", default=workspace_url("duckdb:///retail.duckdb", HERE))
    args = ap.parse_args()
    counts = load(args.csv, args.url)
    print(f"loaded {counts['customers']:,} customers and {counts['invoice_lines']:,} invoice lines into {args.url}")


if __name__ == "__main__":
    main()
