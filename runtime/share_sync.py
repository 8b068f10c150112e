"""The shop's share events (camp.toml `[red_packets]`) -> red packet payouts in the ledger (runtime.shares).

Incremental: the ledger keeps a watermark per source (`camp_sync_marks`, key `shares:<table>`), the time of the
latest share a sync has read (event time, as streaming systems keep one). A sync reads, in one query, the shares
made from the watermark less the source's late-data allowance (`[red_packets] late_data`, "3d" by default) up to
its as-of, never before the earliest red packet granted (a share before any grant could pay nothing); so what it
reads grows with the shares made since the last sync plus the allowance, not with the history. The ledger skips
the share ids it recorded already, the rest are paid in the order they were made in one locked ledger
transaction, and then the watermark moves to the latest share read (never back). A crash between the two leaves
the watermark behind: the next sync reads the same shares again and pays nothing twice. Because the watermark is
a share's time, not the sync's as-of, a sync `--as-of` a future time moves it no further than the data.

A share that reaches the warehouse late is paid by the next sync when it was made at or after the watermark less
the allowance (as the next share of its grant). One made before that is never read by a sync; `full` (`camp sync
--full`) reads every share since the first grant and records each unknown one made before the watermark less the
allowance as refused (`runtime.shares.TOO_LATE`): reported in the sync's counts, recorded once, never paid.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlglot import exp

from compiler.config import Shares
from runtime.ledger import Ledger
from runtime.shares import PacketBudget, Payout, Share, pay_shares
from runtime.warehouse import connect


def source_key(source: Shares) -> str:
    """The watermark's key of a share source."""
    return f"shares:{source.table}"


def sync_shares(ledger: Ledger, warehouse_url: str, source: Shares, as_of: datetime,
                budgets: dict[str, PacketBudget], full: bool = False) -> list[Payout]:
    """Pay the warehouse's shares at or before `as_of` the ledger does not know yet (those within the late-data
    allowance; with `full`, the older ones too, refused); returns their payouts."""
    first = ledger.first_grant_at()
    if first is None:
        return []
    mark = ledger.watermark(source_key(source))
    cutoff = mark - timedelta(minutes=source.late_data_minutes) if mark is not None else None
    since = first if full or cutoff is None else max(first, cutoff)
    shares = read_shares(warehouse_url, source, since, as_of)
    paid = pay_shares(ledger, shares, budgets, too_late=cutoff)
    if shares:
        ledger.advance_watermark(source_key(source), max(s.shared_at for s in shares), datetime.now(UTC))
    return paid


def read_shares(warehouse_url: str, source: Shares, since: datetime, until: datetime) -> list[Share]:
    """The source's shares made from `since` to `until` (both included), with an id."""
    wh = connect(warehouse_url, read_only=True)
    try:
        rows = wh.execute(wh.backend.sql(_query(source, wh.dialect)), (since, until)).fetchall()
    finally:
        wh.close()
    return [Share(str(sid), str(user), at, packet) for sid, user, at, packet in rows if sid is not None]


def _query(source: Shares, dialect: str) -> str:
    def q(name: str) -> str:
        return exp.to_identifier(name, quoted=True).sql(dialect=dialect)

    packet = f"CAST({q(source.packet_column)} AS text)" if source.packet_column else "CAST(NULL AS text)"
    return (f"SELECT CAST({q(source.id_column)} AS text), CAST({q(source.user_column)} AS text), "
            f"{q(source.time_column)}, {packet} FROM {exp.to_table(source.table).sql(dialect=dialect)} "
            f"WHERE {q(source.time_column)} >= ? AND {q(source.time_column)} <= ?")
