"""The ledger: what camp decided and sent, the source of truth of every run.

    connection.py  Ledger: one database session (DuckDB file or PostgreSQL), transactions, the decision lock,
                   migrations; open_ledger(url) opens and migrates
    migrations.py  the versioned schema (MIGRATIONS), CHECK constraints built from the enums
    status.py      Status (a delivery's), RunStatus, CouponState: StrEnums, the only spelling of each status
"""

from __future__ import annotations

from runtime.ledger.connection import Ledger, open_ledger
from runtime.ledger.migrations import MIGRATIONS
from runtime.ledger.status import CouponState, RunStatus, Status

__all__ = ["MIGRATIONS", "CouponState", "Ledger", "RunStatus", "Status", "open_ledger"]
