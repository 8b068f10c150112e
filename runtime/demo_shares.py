"""After runs, the demo shop's red packet shares (`camp demo respond --share P`), so that `camp sync` pays the
packets' decay rule on something planted.

    plant_shares(wh, grants, source, days, seed, share) -> int   (share rows written)

Each red packet granted with a delivery that was sent (the ledger's `sent_grants_frame`: only a treated user
holds one) is shared with probability `share`; a sharer then shares k more times, k drawn from 0 to 4. Each
share is a row of the schema's shares events (camp.toml `[red_packets]`: `source`): the user, a time drawn
uniformly inside the `days` after the grant's send (a minute clear of both ends), a unique share id
(`demo/SEED/CAMPAIGN/OCCURRENCE/USER/PACKET/J`), and the packet's name when the events have a packet field.
Every draw is a hash of (seed, campaign, occurrence, user, packet): the same seed gives the same shares.

The share ids written are listed in `camp_demo_shares` of the warehouse; a second call first removes the
shares the first wrote, so responding again replaces, never adds (the ledger pays a share id once: shares
already paid stay paid).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlglot import exp

from compiler.config import Shares
from runtime.demo_response import _uniform
from runtime.warehouse import Warehouse

MARK = "camp_demo_shares"  # (share_id) of the shares a response wrote
MORE = 4  # a sharer shares again 0 to MORE times
_CLEAR = timedelta(minutes=1)


def plant_shares(wh: Warehouse, grants: pd.DataFrame, source: Shares, days: int, seed: int, share: float) -> int:
    """`grants`: (campaign, occurrence, user_id, packet, at) of the sent red packet grants; returns the number of
    share rows written to `source.table`."""
    _forget(wh, source)
    if grants.empty:
        return 0
    g: Any = grants.copy()
    g["key"] = (g["campaign"] + "/" + g["occurrence"].astype(str) + "/" + g["user_id"].astype(str) + "/"
                + g["packet"].astype(str))
    g = g[_uniform(g["key"], seed, "share") < share]
    if g.empty:
        return 0
    times = (1 + (_uniform(g["key"], seed, "more") * (MORE + 1)).astype(np.int64)).clip(1, MORE + 1)
    rows: Any = g.loc[g.index.repeat(times)].copy()
    rows["j"] = rows.groupby(level=0).cumcount() + 1
    rows["share_key"] = rows["key"] + "/" + rows["j"].astype(str)
    room = (timedelta(days=days) - 2 * _CLEAR).total_seconds()
    offset = (_uniform(rows["share_key"], seed, "share-when") * room).astype(np.int64)
    rows["shared_at"] = pd.to_datetime(rows["at"], utc=True) + pd.to_timedelta(offset, unit="s") + _CLEAR
    rows["share_id"] = f"demo/{seed}/" + rows["share_key"]
    cols = {source.user_column: rows["user_id"].astype(np.int64).to_numpy(),
            source.time_column: rows["shared_at"].to_numpy(), source.id_column: rows["share_id"].to_numpy()}
    if source.packet_column:
        cols[source.packet_column] = rows["packet"].to_numpy()
    frame = pd.DataFrame(cols)
    wh.bulk_insert(source.table, list(frame.columns), frame)
    wh.bulk_insert(MARK, ["share_id"], frame[[source.id_column]].set_axis(["share_id"], axis=1))
    return len(frame)


def _forget(wh: Warehouse, source: Shares) -> None:
    """Remove the shares an earlier response wrote, so responding again replaces them."""
    table = exp.to_table(source.table).sql(dialect=wh.dialect)
    sid = exp.to_identifier(source.id_column, quoted=True).sql(dialect=wh.dialect)
    wh.execute(f"CREATE TABLE IF NOT EXISTS {MARK} (share_id text)")
    wh.execute(f"DELETE FROM {table} WHERE CAST({sid} AS text) IN (SELECT share_id FROM {MARK})")
    wh.execute(f"DELETE FROM {MARK}")
