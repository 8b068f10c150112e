"""The shop's share events (camp.toml `[red_packets]`) -> red packet payouts in the ledger (runtime.shares).

The shares made from the earliest red packet granted up to as-of are read from the warehouse in one query
(a share before any grant could pay nothing), the ledger skips those it recorded already (by share id), and the
rest are paid in the order they were made, in one locked ledger transaction. A share that reaches the warehouse
late is paid by the next sync; a rerun pays nothing twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlglot import exp

from compiler.config import Shares
from runtime.ledger import Ledger
from runtime.shares import PacketBudget, Payout, Share, pay_shares
from runtime.warehouse import connect


def sync_shares(ledger: Ledger, warehouse_url: str, source: Shares, as_of: datetime,
                budgets: dict[str, PacketBudget]) -> list[Payout]:
    """Pay the warehouse's shares at or before `as_of` the ledger does not know yet; returns their payouts."""
    since = ledger.first_grant_at()
    if since is None:
        return []
    wh = connect(warehouse_url, read_only=True)
    try:
        rows = wh.execute(wh.backend.sql(_query(source, wh.dialect)), (since, as_of)).fetchall()
    finally:
        wh.close()
    shares = [Share(str(sid), str(user), at, packet) for sid, user, at, packet in rows if sid is not None]
    return pay_shares(ledger, shares, budgets)


def _query(source: Shares, dialect: str) -> str:
    def q(name: str) -> str:
        return exp.to_identifier(name, quoted=True).sql(dialect=dialect)

    packet = f"CAST({q(source.packet_column)} AS text)" if source.packet_column else "CAST(NULL AS text)"
    return (f"SELECT CAST({q(source.id_column)} AS text), CAST({q(source.user_column)} AS text), "
            f"{q(source.time_column)}, {packet} FROM {exp.to_table(source.table).sql(dialect=dialect)} "
            f"WHERE {q(source.time_column)} >= ? AND {q(source.time_column)} <= ?")
