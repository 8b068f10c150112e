"""The ledger: what camp decided and sent, the source of truth of every run.

    store.py       Ledger: the named queries, typed rows in and out; open_ledger(url) opens and migrates;
                   open_existing_ledger(url) the same for one that exists, else None, creating nothing
    redemptions.py CouponLedger (Ledger's base): the outstanding coupons and a sync's record (`camp sync`)
    labels.py      LabelLedger (Ledger's base): materialised labels' history intervals and the materialisations made
    resources.py   ResourceLedger (Ledger's base): points credits and their issue, red packet grants and share
                   payouts, a campaign's forecast and actual spend
    tags.py        TagLedger (Ledger's base): manual tags (`camp tag`) and their audit trail
    scratch.py     ScratchLedger (a Ledger): what `camp simulate` writes differently (stopped decisions apart,
                   snapshots of the recipients read back only)
    connection.py  Connection: one session (DuckDB file or PostgreSQL), `?` statements, transactions, the
                   decision lock, migrations
    backend.py     DuckDB, Postgres: every difference between the engines (the warehouse session's too)
    migrations.py  the versioned schema (MIGRATIONS), CHECK constraints built from the enums
    status.py      Status (a delivery's), RunStatus, CouponState, PointsState, ShareState: StrEnums, the only spelling of each
    rows.py        the typed rows the store returns

Names are loaded on first use, so `from runtime.ledger.status import Status` (the CLI's option choices)
does not load the database drivers.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ loads them
    from runtime.ledger.migrations import MIGRATIONS
    from runtime.ledger.status import CouponState, RunStatus, Status
    from runtime.ledger.store import Ledger, open_existing_ledger, open_ledger

_WHERE = {"Ledger": "store", "open_ledger": "store", "open_existing_ledger": "store", "MIGRATIONS": "migrations", "Status": "status",
          "RunStatus": "status", "CouponState": "status"}

__all__ = ["MIGRATIONS", "CouponState", "Ledger", "RunStatus", "Status", "open_existing_ledger", "open_ledger"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
